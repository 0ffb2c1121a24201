// SPDX-License-Identifier: GPL-2.0-only
/*
 * Report descriptor fix-up for the report_id_mouse model (the Rapoo M50
 * pattern): its button field has 5 bits but Usage Maximum (byte 17) says 3,
 * hiding the side buttons. Patching it to 5 exposes BTN_SIDE and BTN_EXTRA.
 * Attaching re-probes the device with the new descriptor; releasing the
 * link re-probes it with the original one.
 */
#include "hidvm_fixture.h"

SEC("struct_ops/hid_rdesc_fixup")
int BPF_PROG(side_buttons_fixup, struct hid_bpf_ctx *hctx)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 18);

	if (!data)
		return 0;
	/* Only touch the descriptor we know: Usage Maximum (3) at 16..17. */
	if (data[16] == 0x29 && data[17] == 0x03)
		data[17] = 0x05;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops report_id_mouse_side_buttons = {
	.hid_rdesc_fixup = (void *)side_buttons_fixup,
};
