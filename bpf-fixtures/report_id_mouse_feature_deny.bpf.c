// SPDX-License-Identifier: GPL-2.0-only
/*
 * Filters GET_REPORT of the report_id_mouse's vendor feature report 3: the
 * request fails with -EACCES without reaching the device. Other requests
 * continue to the next program and the device (return 0).
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_hw_request")
int BPF_PROG(feature_deny, struct hid_bpf_ctx *hctx, unsigned char reportnum,
	     enum hid_report_type rtype, enum hid_class_request reqtype, __u64 source)
{
	if (reportnum == 3 && rtype == HID_FEATURE_REPORT && reqtype == HID_REQ_GET_REPORT)
		return -EACCES;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops report_id_mouse_feature_deny = {
	.hid_hw_request = (void *)feature_deny,
};
