// SPDX-License-Identifier: GPL-2.0-only
/*
 * report_id_mouse_feature_answer for races: the same answer to GET_REPORT
 * of feature 3 (03 42 43), after spinning a while (hidvm_spin), so a
 * release or UHID_DESTROY racing a feature flood finds the program running
 * (with the fast program the window was open in 3 to 14 of 50 rounds).
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_hw_request")
int BPF_PROG(feature_answer_slow, struct hid_bpf_ctx *hctx, unsigned char reportnum,
	     enum hid_report_type rtype, enum hid_class_request reqtype, __u64 source)
{
	__u8 *data;

	hidvm_spin(5000);
	if (reportnum != 3 || rtype != HID_FEATURE_REPORT || reqtype != HID_REQ_GET_REPORT)
		return 0;
	data = hid_bpf_get_data(hctx, 0, 3);
	if (!data)
		return 0;
	data[0] = 3;
	data[1] = 0x42;
	data[2] = 0x43;
	return 3;
}

SEC(".struct_ops.link")
struct hid_bpf_ops report_id_mouse_feature_answer_slow = {
	.hid_hw_request = (void *)feature_answer_slow,
};
