// SPDX-License-Identifier: GPL-2.0-only
/*
 * Filters the boot keyboard's LED output report: any report turning the
 * Caps Lock LED (bit 1) on is refused with -EPERM before it reaches the
 * device; other LED reports pass (include/capslock_led_filter.h).
 */
#include "hidvm_fixture.h"
#include "capslock_led_filter.h"

SEC("struct_ops/hid_hw_output_report")
int BPF_PROG(block_capslock_led, struct hid_bpf_ctx *hctx, __u64 source)
{
	return hidvm_block_capslock_led(hctx);
}

SEC(".struct_ops.link")
struct hid_bpf_ops keyboard_block_capslock_led = {
	.hid_hw_output_report = (void *)block_capslock_led,
};
