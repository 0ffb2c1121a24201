// SPDX-License-Identifier: GPL-2.0-only
/*
 * Filters the boot keyboard's LED output report: any report turning the
 * Caps Lock LED (bit 1) on is refused with -EPERM before it reaches the
 * device; other LED reports pass.
 *
 * The report arrives in two shapes: from hid-input's LED worker as the bare
 * 1-byte report, from a hidraw write() with the report-ID byte (0 for an
 * unnumbered report) in front.
 */
#include "hidvm_fixture.h"

#define LED_CAPSLOCK 0x02

SEC("struct_ops/hid_hw_output_report")
int BPF_PROG(block_capslock_led, struct hid_bpf_ctx *hctx, __u64 source)
{
	__u8 *data;
	__u8 leds;

	data = hid_bpf_get_data(hctx, 0, 2);
	if (data && data[0] == 0) {
		leds = data[1];
	} else {
		data = hid_bpf_get_data(hctx, 0, 1);
		if (!data)
			return 0;
		leds = data[0];
	}
	if (leds & LED_CAPSLOCK)
		return -EPERM;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops keyboard_block_capslock_led = {
	.hid_hw_output_report = (void *)block_capslock_led,
};
