/* SPDX-License-Identifier: GPL-2.0-only */
/* Classification of a new (or stale) session against the active policy version.
 *
 * A fixed number of lookups whatever the rule count: destination and source classes, service
 * class (array), target (hash), then the rule (inline in the source's entry, or one or two verdict
 * hash lookups); where tenant-scoped rules meet the destination and service, two more (the
 * tenant's class, its target). Every table is read from the slot named by the version's meta, so
 * one packet sees exactly one version. */
#ifndef DOORSTEP_CLASSIFY_H
#define DOORSTEP_CLASSIFY_H

#include "maps.h"
#include "parse.h"

struct ds_decision {
	__u32 rule;
	__u8 action;
	__u8 reason;
	__u8 log;
	__u8 source_free; /* 1: decided by the policy without reading the source's class (ds_memo may keep it) */
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

/* One probe sequence in an IPv4 long table (a bpf_loop callback, so the verifier checks the
 * probe loop once instead of once per prefix length). */
struct ds_probe {
	void *table;
	__u32 prefix;
	__u32 len;
	__u32 home;
	__u32 mask;
	__u32 found;   /* 1 when `key` holds the slot of (prefix, len) */
	__u32 key;
};

static long ds_probe_step(__u64 i, void *data)
{
	struct ds_probe *p = data;
	__u32 key = (p->home + (__u32)i) & p->mask;
	struct ds_v4_slot *slot = bpf_map_lookup_elem(p->table, &key);

	if (!slot || !slot->len)
		return 1; /* an empty slot ends the probe sequence */
	if (slot->len == p->len && slot->prefix == p->prefix) {
		p->found = 1;
		p->key = key;
		return 1;
	}
	return 0;
}

/* IPv4: the /16's entry gives the class of the best short prefix and which longer lengths exist
 * below it; probe those, longest first, in the open-addressing long table. At most 1 array read
 * + 16 × DS_V4_MAX_PROBES slot reads; typically 1 array read and 1–2 slot reads (measured at a
 * million prefixes: mean displacement 0.3 slots). NULL when no prefix covers the address. */
static __always_inline struct ds_addr_class *ds_v4_class(void *top_outer, void *long_outer, __u32 slot,
							 __u32 bits, const __u8 *addr)
{
	void *top_map = bpf_map_lookup_elem(top_outer, &slot);
	if (!top_map)
		return 0;
	__u32 host = ((__u32)addr[0] << 24) | ((__u32)addr[1] << 16) | ((__u32)addr[2] << 8) | addr[3];
	__u32 index = host >> 16;
	struct ds_v4_top *top = bpf_map_lookup_elem(top_map, &index);
	if (!top)
		return 0;
	__u32 lengths = top->lengths;
	if (lengths) {
		void *long_map = bpf_map_lookup_elem(long_outer, &slot);
		if (!long_map)
			return 0;
		struct ds_probe p = { .table = long_map, .mask = (1u << bits) - 1 };
#pragma unroll
		for (int i = 15; i >= 0; i--) {
			if (!(lengths & (1u << i)))
				continue;
			p.len = DS_V4_LONG_MIN + i;
			p.prefix = host & (0xFFFFFFFFu << (32 - p.len));
			p.home = ds_v4_slot_hash(p.prefix, p.len, bits);
			bpf_loop(DS_V4_MAX_PROBES, ds_probe_step, &p, 0);
			if (p.found) {
				struct ds_v4_slot *hit = bpf_map_lookup_elem(long_map, &p.key);
				if (!hit)
					return 0;
				/* keep clang from forming &hit->c before the null check (the verifier refuses it) */
				asm volatile("" : "+r"(hit));
				return &hit->c;
			}
		}
	}
	return top->c.cls ? &top->c : 0;
}

static __always_inline struct ds_addr_class *ds_v6_class(void *outer, __u32 slot, const __u8 *addr)
{
	void *lpm = bpf_map_lookup_elem(outer, &slot);
	if (!lpm)
		return 0;
	struct ds_lpm6_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(lpm, &k);
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

/* Where rules scoped to tenants meet a destination and service (`scoped` of its ds_target_value):
 * the target for the packet's tenant, or 0 when no rule there is scoped to that tenant. */
static __always_inline __u32 ds_tenant_target(__u32 slot, __u32 scoped, __u32 tenant)
{
	void *tenant_map = bpf_map_lookup_elem(&ds_tenant, &slot);
	if (!tenant_map)
		return 0;
	__u32 *cls = bpf_map_lookup_elem(tenant_map, &tenant);
	if (!cls)
		return 0;
	void *target_map = bpf_map_lookup_elem(&ds_tenant_tgt, &slot);
	if (!target_map)
		return 0;
	struct ds_tenant_target_key key = { .scoped = scoped, .tenant_class = *cls };
	__u32 *target = bpf_map_lookup_elem(target_map, &key);
	return target ? *target : 0;
}

/* The first rule matching `k` from `tenant` under the version in `slot`, or NULL (the policy
 * default decides). dst class × service class → target (small table); where no source has an
 * entry of its own under that target (source_free), its decision for every source; else refined
 * by the tenant where tenant-scoped rules are among them, then the source's row for that target:
 * inline in its address entry when the row has one entry, else one lookup in ds_verdict; last,
 * the wildcard row for rules whose source is "any". */
static __always_inline struct ds_verdict_value *ds_match_rule(const struct ds_policy_meta *meta,
							     const struct ds_session_key *k, __u32 tenant,
							     __u8 *source_free)
{
	__u32 slot = meta->slot;
	struct ds_addr_class *src, *dst;

	*source_free = 1; /* until the source's class is read below */

	if (k->family == DS_FAMILY_IPV4)
		dst = ds_v4_class(&ds_dst4_top, &ds_dst4_long, slot, meta->dst4_bits, k->dst + 12);
	else
		dst = ds_v6_class(&ds_dst6, slot, k->dst);
	if (!dst)
		return 0;

	void *svc_map = bpf_map_lookup_elem(&ds_svc, &slot);
	if (!svc_map)
		return 0;
	__u32 svc_index = ds_svc_index(k);
	__u32 *svc = bpf_map_lookup_elem(svc_map, &svc_index);
	if (!svc || !*svc)
		return 0;

	void *target_map = bpf_map_lookup_elem(&ds_target, &slot);
	if (!target_map)
		return 0;
	struct ds_target_key tk = { .dst_class = dst->cls, .svc_class = *svc };
	struct ds_target_value *tv = bpf_map_lookup_elem(target_map, &tk);
	if (!tv)
		return 0;
	if (tv->source_free)
		return tv->any.rule ? &tv->any : 0;
	__u32 target = tv->target;
	if (tv->scoped && tenant) {
		/* tenant 0 (none) is in no tenant class: only the rules for every tenant apply */
		__u32 own = ds_tenant_target(slot, tv->scoped, tenant);
		if (own)
			target = own;
	}
	if (!target)
		return 0;

	*source_free = 0;
	if (k->family == DS_FAMILY_IPV4)
		src = ds_v4_class(&ds_src4_top, &ds_src4_long, slot, meta->src4_bits, k->src + 12);
	else
		src = ds_v6_class(&ds_src6, slot, k->src);

	void *verdict_map = bpf_map_lookup_elem(&ds_verdict, &slot);
	if (!verdict_map)
		return 0;
	struct ds_verdict_key vk = { .src_class = 0, .target_class = target };
	if (src && src->row == DS_ROW_ONE && src->row_target == target)
		return &src->row_verdict;
	if (src && src->row == DS_ROW_MANY) {
		vk.src_class = src->cls;
		struct ds_verdict_value *v = bpf_map_lookup_elem(verdict_map, &vk);
		if (v)
			return v;
		vk.src_class = 0;
	}
	return bpf_map_lookup_elem(verdict_map, &vk);
}

/* Management prefixes always pass (checked before the policy). */
static __always_inline int ds_failsafe_match(const struct ds_session_key *k)
{
	struct ds_prefix_key fk = { .prefixlen = 8 + 128, .family = k->family };
	__builtin_memcpy(fk.addr, k->src, 16);
	struct ds_failsafe_value *fv = bpf_map_lookup_elem(&ds_failsafe_v2, &fk);
	if (!fv)
		return 0;
	if (fv->proto && fv->proto != k->proto)
		return 0;
	if (fv->port_hi && (k->dport < fv->port_lo || k->dport > fv->port_hi))
		return 0;
	return 1;
}

/* Decide a session from `tenant` (ds_iface.tenant of its ingress interface): failsafe (only
 * while management prefixes are configured: DS_SETTING_FAILSAFE), then the active policy, else
 * default deny. */
static __always_inline void ds_classify(const struct ds_policy_meta *meta, const struct ds_session_key *k,
					__u32 tenant, struct ds_decision *d)
{
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);

	d->rule = 0;
	d->log = 1;
	d->source_free = 0;
	if (cfg && (cfg->flags & DS_SETTING_FAILSAFE) && ds_failsafe_match(k)) {
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
	__u8 source_free = 0;
	struct ds_verdict_value *v = ds_match_rule(meta, k, tenant, &source_free);
	d->source_free = source_free;
	if (v) {
		d->rule = v->rule;
		d->action = v->action;
		d->log = v->log;
	} else {
		d->action = meta->default_action;
		d->log = meta->default_log;
	}
}

/* This CPU's counters of `rule` under `meta`, or NULL beyond the loader's capacity. */
static __always_inline struct ds_rule_stat *ds_rule_row(const struct ds_policy_meta *meta, __u32 rule)
{
	if (rule >= meta->stats_count)
		return NULL;
	__u32 key = meta->stats_base + bpf_get_smp_processor_id() * meta->stats_stride + rule;
	return bpf_map_lookup_elem(&ds_rule_stats, &key);
}

/* Count a packet against the rule that decided it (beyond capacity: in the totals only). */
static __always_inline void ds_rule_count(const struct ds_policy_meta *meta, __u32 rule, __u64 len)
{
	struct ds_rule_stat *st = ds_rule_row(meta, rule);
	if (!st)
		return;
	st->packets++;
	st->bytes += len;
}

#endif /* DOORSTEP_CLASSIFY_H */
