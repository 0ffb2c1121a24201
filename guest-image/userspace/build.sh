#!/bin/bash
# The guest userspace of `hidvm hid-tools` and `hidvm shell`: Debian
# bookworm (mmdebstrap, `essential` + the packages below) with the hashed
# PyPI lock installed offline from a wheelhouse, packed read-only with
# mkfs.erofs. Run by `hidvm userspace` (part of `make setup`), which owns
# the cache key (a hash of this script and requirements.lock) and renames
# the result into place; never at test time.
#
#   OUT=<image> WHEELS=<wheelhouse dir> KEY=<cache key> build.sh
#
# writes $OUT, $OUT.dpkg-manifest and $OUT.pip-manifest. Needs root (or
# MODE=unshare with uidmap and subuids), mmdebstrap, mkfs.erofs and the
# network (Debian mirror; PyPI only while the wheelhouse of this lock is
# not cached).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${OUT:?OUT=<image file> is required}" "${WHEELS:?WHEELS=<wheelhouse dir> is required}"
SUITE=bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MODE=${MODE:-root}
# python3, udev (systemd-udevd, udevadm, hwdb), libevdev2 (the libevdev
# Python binding loads it), kmod (modprobe, modinfo, depmod), bpftool (for
# `hidvm shell`). `essential` + the merged-usr hook: minbase would add apt,
# and mmdebstrap's default merged-/usr handling installs usrmerge, which
# pulls ~50 MB of perl.
PACKAGES=python3,libevdev2,udev,kmod,bpftool
# Removed after the install (a dpkg path-exclude broke passwd's unpack).
DOCS="usr/share/doc/* usr/share/man/* usr/share/locale/* usr/share/info/* usr/share/lintian/*"
# Uncompressed: under TCG decompression costs CPU, and under memory
# pressure the lz4 image's decompression worker thrashed (soft lockups).
EROFS_OPTS=""
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
lock=$here/requirements.lock
read -r _ _ pip_url pip_hash < <(grep '^# installer:' "$lock")
pip_whl=${pip_url##*/}

# 1. The wheelhouse, for this lock alone: PyPI only the first time. pip
# itself runs from its wheel (`python3 pip.whl/pip`): no python3-pip needed.
if [ ! -f "$WHEELS/.complete" ]; then
    rm -rf "$WHEELS.tmp"; mkdir -p "$WHEELS.tmp"
    grep -v '^#' "$lock" > "$WHEELS.tmp/requirements.txt"
    "$PY" - "$pip_url" "${pip_hash#sha256:}" "$WHEELS.tmp/$pip_whl" <<'PYEOF'
import hashlib, sys, urllib.request
url, want, dest = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=120).read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"{url}: sha256 {got}, the lock says {want}")
open(dest, "wb").write(data)
PYEOF
    env -u PIP_FIND_LINKS -u PIP_INDEX_URL PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$PY" "$WHEELS.tmp/$pip_whl/pip" download -q --only-binary=:all: --no-deps \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux_2_36_x86_64 --platform manylinux2014_x86_64 \
        --require-hashes -d "$WHEELS.tmp" -r "$WHEELS.tmp/requirements.txt"
    touch "$WHEELS.tmp/.complete"
    rm -rf "$WHEELS"; mv "$WHEELS.tmp" "$WHEELS"
fi

# 2. The root filesystem. Every .pyc is rewritten unchecked-hash: the
# image's mtimes are all 0 (-T0), so timestamp .pycs would all be stale and
# Python would recompile the stdlib, pytest and hid-tools at every start;
# the image is immutable, so nothing needs checking, and the bytes are the
# same every build.
export SOURCE_DATE_EPOCH=1700000000
work=$(mktemp -d "$(dirname "$OUT")/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mmdebstrap --mode="$MODE" --variant=essential --include="$PACKAGES" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='Acquire::Languages "none"' \
    --customize-hook='mkdir -p "$1/wheels"' \
    --customize-hook="sync-in $WHEELS /wheels" \
    --customize-hook="chroot \"\$1\" python3 /wheels/$pip_whl/pip install -q --no-index --find-links /wheels --require-hashes --break-system-packages --no-warn-script-location -r /wheels/requirements.txt" \
    --customize-hook='rm -rf "$1/wheels"' \
    --customize-hook="cd \"\$1\" && rm -rf $DOCS" \
    --customize-hook='chroot "$1" python3 -m compileall -q -f -j0 --invalidation-mode unchecked-hash /usr/lib/python3 /usr/lib/python3.11 /usr/local/lib/python3.11 >/dev/null' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version}\n" > "$1/etc/hidvm-dpkg.manifest"' \
    --customize-hook='mkdir -p "$1/hidvm" "$1/sys/fs/bpf" "$1/usr/lib/modules"; rm -rf "$1/var/cache/apt"/* "$1/var/lib/apt/lists"/* "$1/var/log"/*' \
    "$SUITE" "$root" "$MIRROR" >"$work/mmdebstrap.log" 2>&1 || { tail -30 "$work/mmdebstrap.log" >&2; exit 1; }
chroot "$root" python3 - > "$root/etc/hidvm-pip.manifest" <<'PYEOF'
import importlib.metadata as m
for d in sorted(m.distributions(), key=lambda d: d.metadata["Name"].lower()):
    print(d.metadata["Name"], d.version)
PYEOF

# 3. erofs: -T0 and a UUID from the cache key keep the bytes independent
# of the build time.
uuid=$(echo "${KEY:-$(basename "$OUT")}" | sha256sum | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
# shellcheck disable=SC2086
mkfs.erofs $EROFS_OPTS -T0 -U "$uuid" --all-root "$work/image" "$root" >"$work/mkfs.log" 2>&1 || { cat "$work/mkfs.log" >&2; exit 1; }
cp "$root/etc/hidvm-dpkg.manifest" "$OUT.dpkg-manifest"
cp "$root/etc/hidvm-pip.manifest" "$OUT.pip-manifest"
mv "$work/image" "$OUT"
echo "rootfs $(du -s --apparent-size --block-size=1M "$root" | cut -f1) MB, $(find "$root" | wc -l) files; image $(stat -c %s "$OUT") bytes"
