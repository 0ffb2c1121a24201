// SPDX-License-Identifier: GPL-2.0-only
/*
 * A user's program (udev-hid-bpf format) whose HID_BPF_CONFIG names the
 * boot_mouse model's bus, vendor and product, but group MULTITOUCH: the
 * kernel gives a uhid boot mouse group GENERIC, so udev-hid-bpf would never
 * load it there. Only the guest can see the group, so the host's check
 * before boot lets it through and every attach path in the guest must
 * refuse it (self-test attach_paths_match_hid_bpf_config).
 */
#include "vmlinux.h"
#include "hid_bpf.h"
#include "hid_bpf_helpers.h"
#include <bpf/bpf_tracing.h>

HID_BPF_CONFIG(
	HID_DEVICE(BUS_USB, HID_GROUP_MULTITOUCH, 0x1d6b, 0x0101)
);

SEC(HID_BPF_DEVICE_EVENT)
int BPF_PROG(wrong_group_invert_y, struct hid_bpf_ctx *hctx)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 4);

	if (!data)
		return 0;
	data[2] = (__u8)(-(__s8)data[2]);
	return 0;
}

HID_BPF_OPS(wrong_group_mouse) = {
	.hid_device_event = (void *)wrong_group_invert_y,
};

char _license[] SEC("license") = "GPL";
