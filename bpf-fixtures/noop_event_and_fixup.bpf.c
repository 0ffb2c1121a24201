// SPDX-License-Identifier: GPL-2.0-only
/*
 * A program that does nothing, on both hooks the kernel's own programs
 * use: it stands in for a real program in self-tests ("the scenario fails
 * when its program is replaced by a no-op"). No HID_BPF_CONFIG and no
 * probe, so it attaches to any device.
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(noop_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	return 0;
}

SEC("struct_ops/hid_rdesc_fixup")
int BPF_PROG(noop_rdesc_fixup, struct hid_bpf_ctx *hctx)
{
	return 0; /* keep the descriptor as it is */
}

SEC(".struct_ops.link")
struct hid_bpf_ops noop_event_and_fixup = {
	.hid_device_event = (void *)noop_event,
	.hid_rdesc_fixup = (void *)noop_rdesc_fixup,
};
