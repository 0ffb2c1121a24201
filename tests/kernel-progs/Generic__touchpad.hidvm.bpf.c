// SPDX-License-Identifier: GPL-2.0-only
/*
 * hidvm stand-in for what udev-hid-bpf adds around the kernel's
 * drivers/hid/bpf/progs/Generic__touchpad.bpf.c, so that hidvm can load it
 * and run its probe (see Generic__touchpad.toml for why):
 *
 * - the program itself, included unchanged from the kernel tree under test
 *   (hidvm puts the tree's drivers/hid/bpf/progs/ on the include path);
 * - HID_REPORT_DESCRIPTOR, which udev-hid-bpf fills in from its own parse of
 *   the device's report descriptor before loading: here, the feature
 *   reports of the scenario's touchpad (descriptors/Generic__touchpad.rdesc.hex),
 *   written out by hand -- only what the probe reads (it walks the feature
 *   reports only). Bit offsets count from the start of the report, its
 *   report ID byte included, as the probe's EXTRACT_BITS() over the
 *   GET_REPORT buffer (byte 0 = report ID) requires;
 * - a struct_ops map whose hook does nothing: the kernel's program has no
 *   HID_BPF_OPS (it only exports a udev property from its probe), and hidvm
 *   attaches struct_ops maps only.
 */

#include "Generic__touchpad.bpf.c"

struct hid_rdesc_descriptor HID_REPORT_DESCRIPTOR = {
	.num_feature_reports = 2,
	.feature_reports = {
		[0] = {
			/* report 2: Contact Count Maximum (4 bits), Pad Type (4 bits) */
			.report_id = 2,
			.size_in_bits = 16,
			.num_fields = 2,
			.fields = {
				[0] = {
					.field_type = HID_FIELD_VARIABLE,
					.bits_start = 8,
					.bits_end = 12,
					.usage_page = HidUsagePage_Digitizers,
					.usage_id = HidUsage_Dig_ContactCountMaximum,
					.logical_minimum = 0,
					.logical_maximum = 15,
				},
				[1] = {
					.field_type = HID_FIELD_VARIABLE,
					.bits_start = 12,
					.bits_end = 16,
					.usage_page = HidUsagePage_Digitizers,
					.usage_id = HidUsage_Dig_PadType,
					.logical_minimum = 0,
					.logical_maximum = 15,
				},
			},
		},
		[1] = {
			/* report 3: the 256-byte certification blob (0xff0000c5) */
			.report_id = 3,
			.size_in_bits = 2056,
			.num_fields = 1,
			.fields = {
				[0] = {
					.field_type = HID_FIELD_VARIABLE,
					.bits_start = 8,
					.bits_end = 2056,
					.usage_page = 0xff00,
					.usage_id = 0xc5,
					.logical_minimum = 0,
					.logical_maximum = 255,
				},
			},
		},
	},
};

SEC(HID_BPF_DEVICE_EVENT)
int BPF_PROG(hidvm_touchpad_noop, struct hid_bpf_ctx *hctx)
{
	return 0;
}

HID_BPF_OPS(hidvm_generic_touchpad) = {
	.hid_device_event = (void *)hidvm_touchpad_noop,
};
