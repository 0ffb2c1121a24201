/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The Caps Lock LED filter of keyboard_block_capslock_led and its _slow
 * twin: -EPERM for an LED output report that turns Caps Lock (bit 1) on,
 * 0 for any other.
 *
 * The report arrives in two shapes: from hid-input's LED worker as the bare
 * 1-byte report, from a hidraw write() with the report-ID byte (0 for an
 * unnumbered report) in front.
 */
#ifndef HIDVM_CAPSLOCK_LED_FILTER_H
#define HIDVM_CAPSLOCK_LED_FILTER_H

#define LED_CAPSLOCK 0x02

static __always_inline int hidvm_block_capslock_led(struct hid_bpf_ctx *hctx)
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

#endif
