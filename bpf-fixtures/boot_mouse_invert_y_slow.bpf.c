// SPDX-License-Identifier: GPL-2.0-only
/*
 * boot_mouse_invert_y for races: the same rewrite (Y negated), after
 * spinning a while (hidvm_spin), so a release or UHID_DESTROY racing a
 * report flood finds the program running (the race step counts a round
 * only when the kernel saw the program in flight during the release or
 * destroy).
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(invert_y_slow_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data;

	hidvm_spin(5000);
	data = hid_bpf_get_data(hctx, 0, 4);
	if (!data)
		return 0;

	data[2] = (__u8)(-(__s8)data[2]);
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops boot_mouse_invert_y_slow = {
	.hid_device_event = (void *)invert_y_slow_event,
};
