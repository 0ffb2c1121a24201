// SPDX-License-Identifier: GPL-2.0-only
/*
 * Not a device program: a SEC("syscall") program the race step's
 * `inject_bpf` racer runs with BPF_PROG_TEST_RUN to inject one input
 * report into a device through the HID-BPF kfunc hid_bpf_input_report(),
 * as the kernel's HID selftests do (tools/testing/selftests/hid/progs/hid.c,
 * hid_user_input_report).
 *
 * Why not UHID_INPUT2: uhid handles UHID_INPUT2 and UHID_DESTROY of one
 * device under the same mutex (uhid->devlock), so a report injected through
 * uhid can never be inside the device's programs while UHID_DESTROY runs
 * hid_bpf_destroy_device(). hid_bpf_input_report() finds the device by
 * hid_id (a reference of its own) and takes only driver_input_lock, which
 * hid_destroy_device() takes after hid_bpf_destroy_device(), in
 * hid_remove_device() -> device_del() -> hid_device_remove().
 */
#include "hidvm_fixture.h"

extern struct hid_bpf_ctx *hid_bpf_allocate_context(unsigned int hid_id) __ksym;
extern void hid_bpf_release_context(struct hid_bpf_ctx *ctx) __ksym;
extern int hid_bpf_input_report(struct hid_bpf_ctx *ctx, enum hid_report_type type, __u8 *data,
				const size_t buf__sz) __ksym;

/* The agent's `InjectArgs` (guest-image/agent/src/steps/race.rs). The
 * data comes first: the verifier lets a kfunc take the context's memory
 * only at offset 0 ("dereference of modified ctx ptr" otherwise). */
struct hidvm_inject_args {
	__u8 data[64];
	__u32 hid;
	__u32 size;
	__s32 retval;
};

#define ENODEV 19
#define E2BIG 7

SEC("syscall")
int inject(struct hidvm_inject_args *args)
{
	struct hid_bpf_ctx *ctx;
	const size_t size = args->size;

	if (size > sizeof(args->data)) {
		args->retval = -E2BIG;
		return 0;
	}

	ctx = hid_bpf_allocate_context(args->hid);
	if (!ctx) {
		/* no device with that hid_id (any more) */
		args->retval = -ENODEV;
		return 0;
	}

	args->retval = hid_bpf_input_report(ctx, HID_INPUT_REPORT, args->data, size);
	hid_bpf_release_context(ctx);
	return 0;
}
