/* SPDX-License-Identifier: GPL-2.0-only */
/* Classification of a new (or stale) session against the active policy version.
 *
 * A fixed number of lookups whatever the rule count: source class and destination class (LPM),
 * service class (array), pair class (hash), rule (hash), rule action (array). Every table is read
 * from the slot named by the version's meta, so one packet sees exactly one version. */
#ifndef DOORSTEP_CLASSIFY_H
#define DOORSTEP_CLASSIFY_H

#include "maps.h"
#include "parse.h"

struct ds_decision {
	__u32 rule;
	__u8 action;
	__u8 reason;
	__u8 log;
	__u8 pad;
};

/* The active version, or NULL when none is installed. */
static __always_inline struct ds_policy_meta *ds_active_meta(void)
{
	__u32 zero = 0;
	void *inner = bpf_map_lookup_elem(&ds_active, &zero);
	if (!inner)
		return NULL;
	return bpf_map_lookup_elem(inner, &zero);
}

static __always_inline __u32 ds_addr_class(void *outer4, void *outer6, __u32 slot, const __u8 *addr,
					   __u8 family)
{
	__u32 *cls;

	if (family == DS_FAMILY_IPV4) {
		void *lpm = bpf_map_lookup_elem(outer4, &slot);
		if (!lpm)
			return 0;
		struct ds_lpm4_key k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, addr + 12, 4);
		cls = bpf_map_lookup_elem(lpm, &k);
	} else {
		void *lpm = bpf_map_lookup_elem(outer6, &slot);
		if (!lpm)
			return 0;
		struct ds_lpm6_key k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, addr, 16);
		cls = bpf_map_lookup_elem(lpm, &k);
	}
	return cls ? *cls : 0;
}

/* The service index: kind * DS_SVC_SPAN + value, as documented in abi.h. */
static __always_inline __u32 ds_svc_index(const struct ds_session_key *k)
{
	switch (k->proto) {
	case IPPROTO_TCP:
		return DS_SVC_TCP * DS_SVC_SPAN + k->dport;
	case IPPROTO_UDP:
		return DS_SVC_UDP * DS_SVC_SPAN + k->dport;
	case IPPROTO_SCTP:
		return DS_SVC_SCTP * DS_SVC_SPAN + k->dport;
	case IPPROTO_ICMP:
		return DS_SVC_ICMP * DS_SVC_SPAN + k->dport;
	case IPPROTO_ICMPV6:
		return DS_SVC_ICMPV6 * DS_SVC_SPAN + k->dport;
	default:
		return DS_SVC_OTHER * DS_SVC_SPAN + k->proto;
	}
}

/* Rule index deciding `k` under the version in `slot` (0 = the policy default). */
static __always_inline __u32 ds_match_rule(__u32 slot, const struct ds_session_key *k)
{
	__u32 src = ds_addr_class(&ds_src4, &ds_src6, slot, k->src, k->family);
	if (!src)
		return 0;
	__u32 dst = ds_addr_class(&ds_dst4, &ds_dst6, slot, k->dst, k->family);
	if (!dst)
		return 0;

	void *svc_map = bpf_map_lookup_elem(&ds_svc, &slot);
	if (!svc_map)
		return 0;
	__u32 svc_index = ds_svc_index(k);
	__u32 *svc = bpf_map_lookup_elem(svc_map, &svc_index);
	if (!svc || !*svc)
		return 0;

	void *pair_map = bpf_map_lookup_elem(&ds_pair, &slot);
	if (!pair_map)
		return 0;
	struct ds_pair_key pk = { .src_class = src, .dst_class = dst };
	__u32 *pair = bpf_map_lookup_elem(pair_map, &pk);
	if (!pair)
		return 0;

	void *verdict_map = bpf_map_lookup_elem(&ds_verdict, &slot);
	if (!verdict_map)
		return 0;
	struct ds_verdict_key vk = { .pair_class = *pair, .svc_class = *svc };
	__u32 *rule = bpf_map_lookup_elem(verdict_map, &vk);
	return rule ? *rule : 0;
}

/* Management prefixes always pass (checked before the policy). */
static __always_inline int ds_failsafe_match(const struct ds_session_key *k)
{
	struct ds_failsafe_key fk = { .prefixlen = 128 };
	__builtin_memcpy(fk.addr, k->src, 16);
	struct ds_failsafe_value *fv = bpf_map_lookup_elem(&ds_failsafe, &fk);
	if (!fv)
		return 0;
	if (fv->proto && fv->proto != k->proto)
		return 0;
	if (fv->port_hi && (k->dport < fv->port_lo || k->dport > fv->port_hi))
		return 0;
	return 1;
}

/* Decide a session: failsafe, then the active policy, else default deny. */
static __always_inline void ds_classify(const struct ds_policy_meta *meta, const struct ds_session_key *k,
					struct ds_decision *d)
{
	d->rule = 0;
	d->log = 1;
	if (ds_failsafe_match(k)) {
		d->action = DS_ACTION_ALLOW;
		d->reason = DS_REASON_FAILSAFE;
		return;
	}
	d->action = DS_ACTION_DENY;
	if (!meta) {
		d->reason = DS_REASON_NO_POLICY;
		return;
	}
	d->reason = DS_REASON_POLICY;
	__u32 slot = meta->slot;
	__u32 rule = ds_match_rule(slot, k);
	void *rules_map = bpf_map_lookup_elem(&ds_rules, &slot);
	if (!rules_map)
		return; /* cannot happen once published; fail closed */
	struct ds_rule_value *rv = bpf_map_lookup_elem(rules_map, &rule);
	if (!rv)
		return;
	d->rule = rule;
	d->action = rv->action;
	d->log = rv->log;
}

/* Count a packet against the rule that decided it. */
static __always_inline void ds_rule_count(const struct ds_policy_meta *meta, __u32 rule, __u64 len)
{
	__u32 slot = meta->slot;
	void *stats_map = bpf_map_lookup_elem(&ds_rule_stats, &slot);
	if (!stats_map)
		return;
	struct ds_stat *st = bpf_map_lookup_elem(stats_map, &rule);
	if (!st)
		return;
	st->packets++;
	st->bytes += len;
}

#endif /* DOORSTEP_CLASSIFY_H */
