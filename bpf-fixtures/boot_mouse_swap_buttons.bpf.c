// SPDX-License-Identifier: GPL-2.0-only
/*
 * Swaps the left and right buttons of the boot mouse (byte 0, bits 0 and 1;
 * see the boot_mouse model in guest-image/proto/src/devices.rs).
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(swap_buttons_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 4);
	__u8 b;

	if (!data)
		return 0;
	b = data[0];
	data[0] = (b & ~0x03) | ((b & 0x01) << 1) | ((b & 0x02) >> 1);
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops boot_mouse_swap_buttons = {
	.hid_device_event = (void *)swap_buttons_event,
};
