# hidvm: HID-BPF lifecycle tests on gcc and LLVM kernels in QEMU.
#
#   make vm-test   set up, build what is missing, run every scenario on every
#                  kernel cell, print the scenario x cell matrix
#   make test      set up, build, run the whole test suite with nextest
#                  (what .ci/run does)
#   make lint      rustfmt, clippy, and actionlint/zizmor on the workflows when
#                  installed (.ci/lint-workflows --install installs them)
#   make install   install hidvm (with its data and guest agent) into
#                  ~/.cargo/bin, usable from any directory; PREFIX=<dir>
#                  installs into <dir>/bin
#
# KERNEL_SRC=<dir>  build a kernel tree of your own (>= 6.11) instead of
#                   Debian's linux-source-6.12 (same as HIDVM_KERNEL_SRC).

CARGO ?= cargo
HIDVM = $(CARGO) run --release --locked -p hidvm --
ifneq ($(KERNEL_SRC),)
export HIDVM_KERNEL_SRC := $(KERNEL_SRC)
endif

.PHONY: setup setup-base build vm-test test check bench clean-runs install lint

# Packages, the kernel sources of other Debian suites (linux-source-7.3),
# and the hid-tools userspace image (Debian + PyPI, built once, cached).
setup: setup-base
	$(HIDVM) userspace

# Packages and kernel sources: what the first kernel build needs.
setup-base:
	@.ci/setup
	$(HIDVM) fetch

build: setup
	$(HIDVM) build

# The userspace image (needed by the hid-tools subset, at the end) is built
# while the first kernel builds, not before it: a sooner first verdict.
vm-test: setup-base
	$(HIDVM) vm-test --build-userspace

# Kernels are built first (with progress on the terminal), so the test
# processes find them cached; each test would otherwise build on demand.
# --workspace: the guest agent's unit tests run on the host too.
test: build
	$(CARGO) nextest run --locked --profile ci --workspace

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	.ci/lint-workflows --if-installed

check:
	$(HIDVM) check

bench: setup
	$(HIDVM) bench

clean-runs:
	rm -rf target/hidvm/runs

# The binary carries hidvm's data and the guest agent (harness/build.rs;
# HIDVM_BUNDLE=1 is also what harness/.cargo/config.toml sets for it).
install:
	HIDVM_BUNDLE=1 $(CARGO) install --locked --path harness $(if $(PREFIX),--root $(PREFIX))
