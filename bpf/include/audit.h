/* SPDX-License-Identifier: GPL-2.0-only */
/* Counters and session events. Events never block the verdict: a full ring buffer drops the
 * event, counts it, and the per-CPU sequence number leaves a gap the reader can see. */
#ifndef DOORSTEP_AUDIT_H
#define DOORSTEP_AUDIT_H

#include "maps.h"
#include "parse.h"

static __always_inline struct ds_cpu_stats *ds_stats_this_cpu(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ds_stats, &zero);
}

static __always_inline void ds_count(struct ds_cpu_stats *st, __u32 counter)
{
	if (st && counter < DS_CTR_COUNT)
		st->counters[counter]++;
}

/* Account the final verdict and turn it into an XDP return code. */
static __always_inline int ds_finish(struct ds_cpu_stats *st, __u8 action, __u8 reason, __u64 len)
{
	int pass = action == DS_ACTION_ALLOW;

	if (st) {
		st->counters[pass ? DS_CTR_PASS_PACKETS : DS_CTR_DROP_PACKETS]++;
		st->counters[pass ? DS_CTR_PASS_BYTES : DS_CTR_DROP_BYTES] += len;
		__u32 i = (__u32)reason * 2 + (pass ? 1 : 0);
		if (i < DS_REASON_COUNT * 2) {
			st->by_reason[i].packets++;
			st->by_reason[i].bytes += len;
		}
	}
	return pass ? XDP_PASS : XDP_DROP;
}

/* One session event. The sequence number is taken before the reservation, so a lost event is
 * a visible gap. */
static __always_inline void ds_emit(struct ds_cpu_stats *st, const struct ds_session_key *k,
				    const struct ds_session_value *v, __u8 kind, __u64 len)
{
	if (!st)
		return;
	__u64 seq = ++st->event_seq;
	struct ds_event *e = bpf_ringbuf_reserve(&ds_events, sizeof(*e), 0);
	if (!e) {
		st->counters[DS_CTR_EVENTS_LOST]++;
		return;
	}
	e->time_ns = bpf_ktime_get_ns(); /* exact time for the audit record; once per session */
	e->seq = seq;
	__builtin_memcpy(e->src, k->src, 16);
	__builtin_memcpy(e->dst, k->dst, 16);
	e->ifindex = k->ifindex;
	e->rule = v->rule;
	e->generation = v->generation;
	e->cpu = bpf_get_smp_processor_id();
	e->len = len;
	e->vlan_outer = k->vlan_outer;
	e->vlan_inner = k->vlan_inner;
	e->sport = k->sport;
	e->dport = k->dport;
	e->proto = k->proto;
	e->family = k->family;
	e->action = v->action;
	e->reason = v->reason;
	e->kind = kind;
	e->pad[0] = 0;
	e->pad[1] = 0;
	e->pad[2] = 0;
	bpf_ringbuf_submit(e, 0);
	st->counters[DS_CTR_EVENTS]++;
}

#endif /* DOORSTEP_AUDIT_H */
