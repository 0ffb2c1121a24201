// SPDX-License-Identifier: GPL-2.0-only
/*
 * Answers GET_REPORT of the report_id_mouse's feature report 3 itself, with
 * "03 42 43", instead of the device's "03 11 22": a positive return is the
 * number of bytes returned to the caller, and the device is not asked
 * (include/feature_answer.h).
 */
#include "hidvm_fixture.h"
#include "feature_answer.h"

SEC("struct_ops/hid_hw_request")
int BPF_PROG(feature_answer, struct hid_bpf_ctx *hctx, unsigned char reportnum,
	     enum hid_report_type rtype, enum hid_class_request reqtype, __u64 source)
{
	return hidvm_feature_answer(hctx, reportnum, rtype, reqtype);
}

SEC(".struct_ops.link")
struct hid_bpf_ops report_id_mouse_feature_answer = {
	.hid_hw_request = (void *)feature_answer,
};
