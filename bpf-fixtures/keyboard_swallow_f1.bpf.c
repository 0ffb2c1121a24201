// SPDX-License-Identifier: GPL-2.0-only
/*
 * Swallows F1 on the boot keyboard: the F1 usage (0x3a) is removed from the
 * key array (bytes 2-7); other keys in the same report pass through.
 */
#include "hidvm_fixture.h"

#define USAGE_F1 0x3a

SEC("struct_ops/hid_device_event")
int BPF_PROG(swallow_f1_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 8);
	int i;

	if (!data)
		return 0;
	for (i = 2; i < 8; i++)
		if (data[i] == USAGE_F1)
			data[i] = 0;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops keyboard_swallow_f1 = {
	.hid_device_event = (void *)swallow_f1_event,
};
