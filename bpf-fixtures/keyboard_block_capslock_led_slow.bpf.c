// SPDX-License-Identifier: GPL-2.0-only
/*
 * keyboard_block_capslock_led for races: the same filter (an output report
 * lighting Caps Lock is refused with EPERM), after spinning a while
 * (hidvm_spin). LED changes reach the program from the input layer's work
 * item, a few dozen times a round at most: a program that returns at once
 * is almost never in flight when a release or UHID_DESTROY comes.
 */
#include "hidvm_fixture.h"
#include "capslock_led_filter.h"

SEC("struct_ops/hid_hw_output_report")
int BPF_PROG(block_capslock_led_slow, struct hid_bpf_ctx *hctx, __u64 source)
{
	hidvm_spin(50000);
	return hidvm_block_capslock_led(hctx);
}

SEC(".struct_ops.link")
struct hid_bpf_ops keyboard_block_capslock_led_slow = {
	.hid_hw_output_report = (void *)block_capslock_led_slow,
};
