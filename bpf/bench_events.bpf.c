// SPDX-License-Identifier: GPL-2.0-only
/* Benchmark only (`npm run bench:audit`): an event source for the audit pipeline. Each run emits
 * session events for new, varied flows through the engine's own ds_emit, into the engine's own
 * ds_events ring buffer and ds_stats counters (the loader reuses the engine's pinned maps), so
 * sequence numbers, lost reservations and counters behave exactly as in ds_xdp_ingress. Run it
 * with BPF_PROG_TEST_RUN, repeat 1: the frame's first two bytes (u16, host order) say how many
 * events to emit. One run emits many because a run with repeat > 1 costs milliseconds (the kernel
 * swaps the XDP dispatcher and waits for RCU, twice). Never attach it. */
#include "include/classify.h"
#include "include/audit.h"

char LICENSE[] SEC("license") = "GPL";

/* A few destination services, as a workload-facing enforcer sees them. */
static const __u16 ds_bench_ports[8] = { 443, 80, 443, 53, 22, 8080, 443, 5432 };

static __always_inline __u32 ds_bench_mix(__u64 n)
{
	__u32 x = (__u32)n * 0x9E3779B1u;
	x ^= x >> 15;
	x *= 0x85EBCA6Bu;
	return x ^ (x >> 13);
}

/* One event for flow number `n` of this CPU (a bpf_loop callback). */
static long ds_bench_emit_one(__u64 index, void *data)
{
	__u32 ifindex = *(__u32 *)data;
	struct ds_cpu_stats *st = ds_stats_this_cpu();
	struct ds_policy_meta *meta = ds_active_meta();
	struct ds_session_key k = {};
	struct ds_session_value v = {};

	if (!st)
		return 1;
	__u64 n = st->event_seq; /* this CPU's flow counter: one new flow per event */
	__u32 h = ds_bench_mix(n);
	__u32 rules = meta ? meta->rule_count : 0;

	if ((n & 15) == 15) {
		/* every 16th flow is IPv6: 2001:db8:<h>::<n> → fd00:20::<port> */
		k.family = DS_FAMILY_IPV6;
		k.src[0] = 0x20; k.src[1] = 0x01; k.src[2] = 0x0d; k.src[3] = 0xb8;
		k.src[4] = h >> 24; k.src[5] = h >> 16; k.src[6] = h >> 8; k.src[7] = h;
		k.src[14] = n >> 8; k.src[15] = n;
		k.dst[0] = 0xfd; k.dst[3] = 0x20; k.dst[15] = h & 7;
	} else {
		/* IPv4 mapped: 198.18.0.0/15 (benchmarking space) → 10.20.<0..15>.<1..8> */
		k.family = DS_FAMILY_IPV4;
		k.src[10] = 0xff; k.src[11] = 0xff;
		k.src[12] = 198; k.src[13] = 18 | ((h >> 16) & 1); k.src[14] = h >> 8; k.src[15] = h;
		k.dst[10] = 0xff; k.dst[11] = 0xff;
		k.dst[12] = 10; k.dst[13] = 20; k.dst[14] = (h >> 20) & 15; k.dst[15] = 1 + ((h >> 24) & 7);
	}
	k.ifindex = ifindex;
	k.dport = ds_bench_ports[(h >> 28) & 7];
	k.proto = k.dport == 53 ? 17 : 6;
	k.sport = 1024 + (__u16)(n % 60000);

	v.generation = meta ? meta->generation : 0;
	v.reason = meta ? DS_REASON_POLICY : DS_REASON_NO_POLICY;
	v.rule = rules ? 1 + h % rules : 0;
	v.action = (h >> 27) & 1 ? DS_ACTION_ALLOW : DS_ACTION_DENY;
	ds_emit(st, &k, &v, DS_EVENT_SESSION_NEW, 60 + (h & 1023));
	return 0;
}

SEC("xdp")
int ds_bench_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 ifindex = ctx->ingress_ifindex;

	if (data + sizeof(__u16) > end)
		return XDP_ABORTED;
	__u32 count = *(__u16 *)data;
	bpf_loop(count, ds_bench_emit_one, &ifindex, 0);
	return XDP_PASS;
}
