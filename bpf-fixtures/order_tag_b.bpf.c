// SPDX-License-Identifier: GPL-2.0-only
/*
 * Ordering fixture B: writes 0x0b into the first zero byte among bytes 1-3
 * of the boot mouse report. With order_tag_a/b/c attached, injecting
 * "00 00 00 00" shows the order the programs ran in, e.g. "00 0a 0b 0c".
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(tag_b_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 4);

	if (!data)
		return 0;
	if (!data[1])
		data[1] = 0x0b;
	else if (!data[2])
		data[2] = 0x0b;
	else if (!data[3])
		data[3] = 0x0b;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops order_tag_b = {
	.hid_device_event = (void *)tag_b_event,
};
