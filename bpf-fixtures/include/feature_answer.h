/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The answer of report_id_mouse_feature_answer and its _slow twin: a
 * GET_REPORT of feature report 3 is answered with "03 42 43" (3 bytes
 * returned to the caller, the device not asked); any other request goes to
 * the device (0).
 */
#ifndef HIDVM_FEATURE_ANSWER_H
#define HIDVM_FEATURE_ANSWER_H

static __always_inline int hidvm_feature_answer(struct hid_bpf_ctx *hctx, unsigned char reportnum,
						enum hid_report_type rtype, enum hid_class_request reqtype)
{
	__u8 *data;

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

#endif
