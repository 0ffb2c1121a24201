// SPDX-License-Identifier: GPL-2.0-only
/*
 * Deliberately invalid: writes one byte past the 4-byte window it asked
 * hid_bpf_get_data() for. The verifier must refuse it; the harness
 * self-test checks that the refusal and the verifier log reach the user.
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(oob_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 4);

	if (!data)
		return 0;
	data[4] = 0; /* out of bounds: offset 4 of a 4-byte region */
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops verifier_rejects_oob_write = {
	.hid_device_event = (void *)oob_event,
};
