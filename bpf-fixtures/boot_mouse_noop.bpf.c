// SPDX-License-Identifier: GPL-2.0-only
/*
 * Attaches to the boot mouse and changes nothing. Used where a program must
 * be attached but must not rewrite (lifecycle stress) and by the harness
 * self-test proving a fixture that stops rewriting is caught.
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_device_event")
int BPF_PROG(noop_event, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops boot_mouse_noop = {
	.hid_device_event = (void *)noop_event,
};
