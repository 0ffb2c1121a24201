// SPDX-License-Identifier: GPL-2.0-only
/*
 * The race step's window tracer: one instance per traced function (a
 * kernel function, or a HID-BPF struct_ops program), loaded by the agent
 * with the attach target set at run time (bpf_program__set_attach_target)
 * and its `cfg` written before load. `enter` (fentry) and `leave` (fexit)
 * each put one record into the ring buffer every instance shares:
 * which instance (tag), entry or exit, the kernel's monotonic clock, the
 * CPU and thread, and the device the call is about.
 *
 * Records are ordered by a sequence number every instance takes from one
 * shared counter with an atomic fetch-and-add: the order of those
 * operations is the order in which they happened, whatever the kernel's
 * clocksource (a guest that could not calibrate its TSC runs on jiffies,
 * 4 ms ticks, and two calls in the same tick would look simultaneous by
 * the clock). The clock is recorded too, for durations.
 *
 * No kernel types are needed: the first argument is read with
 * bpf_get_func_arg() and the device is found by following `derefs` 64-bit
 * loads at the given offsets (computed by the agent from the kernel's BTF):
 *   dispatch_hid_bpf_*(hdev, ...), hid_bpf_destroy_device(hdev): none;
 *   hid_bpf_reg/unreg(kdata): kdata->hdev (struct hid_bpf_ops);
 *   a struct_ops program (u64 *args): args[0] is the struct hid_bpf_ctx
 *   pointer, then ctx->hid.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_DEREFS 3

struct config {
	__u32 tag;
	__u32 derefs;
	__u32 off[MAX_DEREFS];
	__u32 pad;
};

/* Written by the agent before load (the object's only .rodata). */
const volatile struct config cfg = {};

struct record {
	__u64 seq;
	__u64 ts;
	__u64 dev;
	__u32 tag;
	__u32 exit;
	__u32 cpu;
	__u32 tid;
};

/* Both created by the agent once per race and shared by every instance. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} records SEC(".maps");

/* [0]: records lost (ring buffer full); [1]: the sequence counter. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int emit(void *ctx, __u32 exit)
{
	__u32 zero = 0, one = 1;
	__u64 *counter = bpf_map_lookup_elem(&counters, &one);
	__u64 seq = counter ? __sync_fetch_and_add(counter, 1) : 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 dev = 0;
	struct record *r;
	int i;

	if (bpf_get_func_arg(ctx, 0, &dev))
		dev = 0;
	for (i = 0; i < MAX_DEREFS; i++) {
		if (i >= cfg.derefs || !dev)
			break;
		if (bpf_probe_read_kernel(&dev, sizeof(dev), (void *)(dev + cfg.off[i])))
			dev = 0;
	}

	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r || !counter) {
		__u64 *n = bpf_map_lookup_elem(&counters, &zero);

		if (n)
			__sync_fetch_and_add(n, 1);
		if (r)
			bpf_ringbuf_discard(r, 0);
		return 0;
	}
	r->seq = seq;
	r->ts = now;
	r->dev = dev;
	r->tag = cfg.tag;
	r->exit = exit;
	r->cpu = bpf_get_smp_processor_id();
	r->tid = (__u32)bpf_get_current_pid_tgid();
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("fentry")
int enter(void *ctx)
{
	return emit(ctx, 0);
}

SEC("fexit")
int leave(void *ctx)
{
	return emit(ctx, 1);
}

char _license[] SEC("license") = "GPL";
