// SPDX-License-Identifier: GPL-2.0-only
/*
 * Negates the Y axis of the boot mouse (hidvm-proto device model
 * `boot_mouse`): 4-byte reports without a report ID,
 *   byte 0: buttons 1-3 (bits 0-2), byte 1: X, byte 2: Y, byte 3: wheel,
 * X/Y/wheel are signed 8-bit relative values.
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(invert_y_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 4);

	if (!data)
		return 0; /* report shorter than expected: leave it alone */

	data[2] = (__u8)(-(__s8)data[2]);
	return 0;
}

/* hid_id is set by the agent before load; `.struct_ops.link` makes attach
 * return a bpf_link whose release unregisters the program. */
SEC(".struct_ops.link")
struct hid_bpf_ops boot_mouse_invert_y = {
	.hid_device_event = (void *)invert_y_event,
};
