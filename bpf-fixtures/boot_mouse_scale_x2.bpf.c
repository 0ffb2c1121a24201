// SPDX-License-Identifier: GPL-2.0-only
/*
 * Doubles the boot mouse's X and Y movement (bytes 1 and 2, signed 8-bit),
 * saturating at the descriptor's logical range -127..127.
 */
#include "hidvm_fixture.h"

static __always_inline __u8 scale(__u8 v)
{
	int x = (__s8)v * 2;

	if (x > 127)
		x = 127;
	if (x < -127)
		x = -127;
	return (__u8)x;
}

SEC("struct_ops/hid_device_event")
int BPF_PROG(scale_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 4);

	if (!data)
		return 0;
	data[1] = scale(data[1]);
	data[2] = scale(data[2]);
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops boot_mouse_scale_x2 = {
	.hid_device_event = (void *)scale_event,
};
