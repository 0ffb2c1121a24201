// SPDX-License-Identifier: GPL-2.0-only
/*
 * Acme Wheel Mouse (USB 1234:5678): its wheel counts the wrong way.
 * Reverse the wheel; leave buttons and X/Y alone.
 *
 * Written the way udev-hid-bpf and the kernel's drivers/hid/bpf/progs/
 * write programs: hidvm compiles it unchanged, per kernel cell, with that
 * kernel's vmlinux.h and the tree's hid_bpf.h / hid_bpf_helpers.h.
 *
 * Report (no report ID), from the descriptor:
 *   byte 0: buttons 1-3 (bits 0-2), byte 1: X, byte 2: Y, byte 3: wheel
 */

#include "vmlinux.h"
#include "hid_bpf.h"
#include "hid_bpf_helpers.h"
#include <bpf/bpf_tracing.h>

#define VID_ACME 0x1234
#define PID_WHEEL_MOUSE 0x5678

HID_BPF_CONFIG(
	HID_DEVICE(BUS_USB, HID_GROUP_GENERIC, VID_ACME, PID_WHEEL_MOUSE)
);

SEC(HID_BPF_DEVICE_EVENT)
int BPF_PROG(acme_reverse_wheel, struct hid_bpf_ctx *hctx)
{
	__u8 *data = hid_bpf_get_data(hctx, 0 /* offset */, 4 /* size */);

	if (!data)
		return 0; /* EPERM check */

	data[3] = (__u8)(-(__s8)data[3]);
	return 0;
}

HID_BPF_OPS(acme_wheel_mouse) = {
	.hid_device_event = (void *)acme_reverse_wheel,
};

SEC("syscall")
int probe(struct hid_bpf_probe_args *ctx)
{
	/* The mouse interface has a 52-byte descriptor; the keyboard
	 * interface of the same receiver does not. */
	bpf_printk("acme: probe: %d-byte report descriptor", ctx->rdesc_size);
	ctx->retval = ctx->rdesc_size != 52;
	if (ctx->retval)
		ctx->retval = -EINVAL;

	return 0;
}

char _license[] SEC("license") = "GPL";
