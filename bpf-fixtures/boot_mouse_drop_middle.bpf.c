// SPDX-License-Identifier: GPL-2.0-only
/*
 * Drops every boot mouse report with the middle button (byte 0, bit 2)
 * pressed: a negative return from hid_device_event discards the report
 * before hidraw and hid-input see it.
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(drop_middle_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 4);

	if (!data)
		return 0;
	if (data[0] & 0x04)
		return -1;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops boot_mouse_drop_middle = {
	.hid_device_event = (void *)drop_middle_event,
};
