// SPDX-License-Identifier: GPL-2.0-only
/*
 * report_id_mouse_feature_answer for races: the same answer to GET_REPORT
 * of feature 3 (03 42 43), after spinning a while (hidvm_spin), so a
 * release or UHID_DESTROY racing a feature flood finds the program running
 * (with the fast program the window was open in 3 to 14 of 50 rounds).
 */
#include "hidvm_fixture.h"
#include "feature_answer.h"

SEC("struct_ops/hid_hw_request")
int BPF_PROG(feature_answer_slow, struct hid_bpf_ctx *hctx, unsigned char reportnum,
	     enum hid_report_type rtype, enum hid_class_request reqtype, __u64 source)
{
	hidvm_spin(5000);
	return hidvm_feature_answer(hctx, reportnum, rtype, reqtype);
}

SEC(".struct_ops.link")
struct hid_bpf_ops report_id_mouse_feature_answer_slow = {
	.hid_hw_request = (void *)feature_answer_slow,
};
