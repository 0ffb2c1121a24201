// SPDX-License-Identifier: GPL-2.0-only
/*
 * Remaps Caps Lock to Left Ctrl on the boot keyboard (keyboard model:
 * byte 0 modifiers, bytes 2-7 key usages): a Caps Lock usage (0x39) in the
 * key array is removed and the Left Ctrl modifier bit (bit 0) set instead.
 */
#include "hidvm_fixture.h"

#define USAGE_CAPSLOCK 0x39
#define MOD_LEFTCTRL 0x01

SEC("struct_ops/hid_device_event")
int BPF_PROG(capslock_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 8);
	int i;

	if (!data)
		return 0;
	for (i = 2; i < 8; i++) {
		if (data[i] == USAGE_CAPSLOCK) {
			data[i] = 0;
			data[0] |= MOD_LEFTCTRL;
		}
	}
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops keyboard_capslock_to_ctrl = {
	.hid_device_event = (void *)capslock_event,
};
