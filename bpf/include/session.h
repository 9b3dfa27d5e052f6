/* SPDX-License-Identifier: GPL-2.0-only */
/* The session cache, fragment tracking, ICMP-error relation and expected replies.
 *
 * A cached decision is trusted only while its generation equals the active one; otherwise the
 * packet is re-classified and the entry replaced (whole-value update, so readers never see a
 * half-written decision). Denies are cached like allows.
 *
 * Replies: a session allowed on a source interface leaves its expected reply in ds_replies, keyed
 * with the role and tenant of the interface the reply will arrive on — the fabric of its own
 * tenant (while some interface is a fabric), and, when its destination lies in a network a tenant
 * serves here (ds_tenantnet_v2), a source interface of that tenant (hairpin). */
#ifndef DOORSTEP_SESSION_H
#define DOORSTEP_SESSION_H

#include "audit.h"
#include "classify.h"

static __always_inline __u32 ds_setting_flags(void)
{
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);
	return cfg ? cfg->flags : 0;
}

/* Events a second per CPU per rule for denied sessions (0: no limit). */
static __always_inline __u32 ds_deny_event_budget(void)
{
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);
	return cfg ? cfg->deny_event_budget : 0;
}

/* May one more denied session emit its event under budget `b`, this second? Otherwise it is
 * counted as held back. Plain increments: `b` belongs to this CPU. */
static __always_inline int ds_budget_admit(struct ds_budget *b, __u64 now, __u32 budget)
{
	if (now - b->window_start >= 1000000000ULL) {
		b->window_start = now;
		b->window_events = 0;
	}
	if (b->window_events < budget) {
		b->window_events++;
		return 1;
	}
	b->held++;
	return 0;
}

/* The event of a denied session, under the budget of its rule on this CPU (or of this CPU's
 * denies without a counted rule): 1 to emit it, 0 when it is held back (counted). */
static __always_inline int ds_deny_event_admit(struct ds_cpu_stats *st, const struct ds_policy_meta *meta,
					       const struct ds_session_value *nv, __u64 now)
{
	__u32 budget = ds_deny_event_budget();
	struct ds_budget *b = NULL;

	if (!budget)
		return 1;
	if (meta && nv->reason == DS_REASON_POLICY) {
		struct ds_rule_stat *row = ds_rule_row(meta, nv->rule);
		if (row)
			b = &row->budget;
	}
	if (!b && st)
		b = &st->deny_budget;
	if (!b || ds_budget_admit(b, now, budget))
		return 1;
	ds_count(st, DS_CTR_EVENTS_HELD);
	return 0;
}

/* The word of ds_deny_filter that holds `k`'s bit, and the bit (a hash of the whole key). */
static __always_inline __u64 *ds_deny_filter_word(const struct ds_session_key *k, __u64 *bit)
{
	const __u32 *w = (const __u32 *)k;
	__u32 h = 0x9e3779b9;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*k) / 4); i++) {
		h ^= w[i];
		h *= 0x85ebca6b;
		h ^= h >> 13;
	}
	__u32 word = (h >> 6) & (DS_DENY_FILTER_WORDS - 1);
	*bit = 1ULL << (h & 63);
	return bpf_map_lookup_elem(&ds_deny_filter, &word);
}

static __always_inline __u32 ds_generation(const struct ds_policy_meta *meta)
{
	return meta ? meta->generation : 0;
}

/* The tenant of an interface (ds_ifaces; 0 past DS_IFACES_MAX). */
static __always_inline __u32 ds_iface_tenant(__u32 ifindex)
{
	struct ds_iface *ifc = bpf_map_lookup_elem(&ds_ifaces, &ifindex);
	return ifc ? ifc->tenant : 0;
}

/* ds_classify as a global function of engine.bpf.c: the verifier checks the classifier once, on
 * its own, rather than inlined into every path of its callers (new sessions, the forward flows of
 * replies, explain). Returns 0, or -1 without a flow or a decision to fill. */
__noinline int ds_classify_flow(const struct ds_policy_meta *meta, const struct ds_session_key *k, __u32 tenant,
				struct ds_decision *d);

static __always_inline void ds_frag_key_of(const struct ds_packet *pkt, struct ds_frag_key *fk)
{
	__builtin_memcpy(fk->src, pkt->key.src, 16);
	__builtin_memcpy(fk->dst, pkt->key.dst, 16);
	fk->id = pkt->frag_id;
	fk->ifindex = pkt->key.ifindex;
	fk->vlan_outer = pkt->key.vlan_outer;
	fk->vlan_inner = pkt->key.vlan_inner;
	fk->proto = pkt->frag_proto;
	fk->family = pkt->key.family;
}

/* A first fragment that passes: remember its upper-layer protocol and ports under the datagram's
 * identity. Only passing ones: the later fragments of a dropped first fragment drop as unknown,
 * and so denied traffic never takes a place in ds_frags from an allowed datagram. */
static __always_inline void ds_frag_record(const struct ds_packet *pkt, __u64 now)
{
	struct ds_frag_key fk = {};
	struct ds_frag_value fv = {
		.last_seen = now, .sport = pkt->key.sport, .dport = pkt->key.dport, .proto = pkt->key.proto,
	};

	if (pkt->frag != DS_FRAG_FIRST)
		return;
	ds_frag_key_of(pkt, &fk);
	bpf_map_update_elem(&ds_frags, &fk, &fv, BPF_ANY);
}

/* A later fragment: borrow its first fragment's protocol and ports, or fail (-1) when no first
 * fragment of the datagram passed. */
static __always_inline int ds_frag_follow(struct ds_packet *pkt, __u64 now)
{
	struct ds_frag_key fk = {};
	ds_frag_key_of(pkt, &fk);

	struct ds_frag_value *fv = bpf_map_lookup_elem(&ds_frags, &fk);
	if (!fv)
		return -1;
	fv->last_seen = now;
	pkt->key.proto = fv->proto;
	pkt->key.sport = fv->sport;
	pkt->key.dport = fv->dport;
	return 0;
}

/* The other half of an ICMP/ICMPv6 echo exchange: for `dport` (type << 8 | code) an echo request
 * (`from_request`) or an echo reply, the reply or request with the same code into `*out`.
 * Returns -1 when `dport` is not of that type. */
static __always_inline int ds_echo_turn(__u8 proto, __u16 dport, int from_request, __u16 *out)
{
	__u8 request = proto == IPPROTO_ICMP ? DS_ICMP_ECHO : ICMPV6_ECHO_REQUEST;
	__u8 reply = proto == IPPROTO_ICMP ? DS_ICMP_ECHOREPLY : ICMPV6_ECHO_REPLY;

	if ((dport >> 8) != (from_request ? request : reply))
		return -1;
	*out = (__u16)(from_request ? reply : request) << 8 | (dport & 0xff);
	return 0;
}

/* Does the error travel towards the endpoint that sent the quoted packet (its destination is the
 * quote's source)? Only then can it be about that endpoint's session, as conntrack relates it. */
static __always_inline int ds_error_towards_sender(const struct ds_packet *pkt)
{
	const __u32 *d = (const __u32 *)pkt->key.dst;
	const __u32 *s = (const __u32 *)pkt->quoted.src;
	return d[0] == s[0] && d[1] == s[1] && d[2] == s[2] && d[3] == s[3];
}

/* Is the quoted packet the reply of a session that arrived on this interface, allowed under the
 * current version? The session is the quote reversed; for a quoted ICMP message only an echo
 * reply is a reply (of the echo request with its identifier), so an error quoting the peer's
 * echo request never matches the pinger's own session. */
static __always_inline int ds_icmp_related(const struct ds_packet *pkt, __u32 generation)
{
	const struct ds_session_key *q = &pkt->quoted;
	struct ds_session_key rev = {};
	struct ds_session_value *s;

	__builtin_memcpy(rev.src, q->dst, 16);
	__builtin_memcpy(rev.dst, q->src, 16);
	rev.ifindex = q->ifindex;
	rev.vlan_outer = q->vlan_outer;
	rev.vlan_inner = q->vlan_inner;
	rev.proto = q->proto;
	rev.family = q->family;
	if (q->proto == IPPROTO_ICMP || q->proto == IPPROTO_ICMPV6) {
		if (ds_echo_turn(q->proto, q->dport, 0, &rev.dport) < 0)
			return 0;
		rev.sport = q->sport;  /* echo identifier */
	} else {
		rev.sport = q->dport;
		rev.dport = q->sport;
	}
	s = bpf_map_lookup_elem(&ds_sessions, &rev);
	return s && s->generation == generation && s->action == DS_ACTION_ALLOW;
}

/* The reply an interface of role `side` and tenant `tenant` will see for the forward flow `f`
 * (allowed on a source interface): the tuple reversed; for an ICMP echo request, the echo reply
 * with the same identifier. Returns -1 when no reply is expected (other ICMP messages). */
static __always_inline int ds_reply_key_of(const struct ds_session_key *f, __u32 tenant, __u8 side, struct ds_reply_key *r)
{
	__builtin_memcpy(r->src, f->dst, 16);
	__builtin_memcpy(r->dst, f->src, 16);
	r->tenant = tenant;
	r->side = side;
	r->proto = f->proto;
	r->family = f->family;
	if (f->proto == IPPROTO_ICMP || f->proto == IPPROTO_ICMPV6) {
		if (ds_echo_turn(f->proto, f->dport, 1, &r->dport) < 0)
			return -1;
		r->sport = f->sport; /* echo identifier */
		return 0;
	}
	r->sport = f->dport;
	r->dport = f->sport;
	return 0;
}

/* A packet as a reply key: its own tuple, with the role and tenant of its ingress interface. */
static __always_inline void ds_reply_key_from_packet(const struct ds_session_key *k, __u32 tenant, __u8 side, struct ds_reply_key *r)
{
	__builtin_memcpy(r->src, k->src, 16);
	__builtin_memcpy(r->dst, k->dst, 16);
	r->tenant = tenant;
	r->side = side;
	r->sport = k->sport;
	r->dport = k->dport;
	r->proto = k->proto;
	r->family = k->family;
}

/* Remember the reply of an allowed forward session (best effort: a full map evicts the oldest). */
static __always_inline void ds_reply_remember(const struct ds_session_key *f, __u32 tenant, __u8 side)
{
	struct ds_reply_key r = {};
	if (ds_reply_key_of(f, tenant, side, &r) == 0)
		bpf_map_update_elem(&ds_replies, &r, f, BPF_ANY);
}

/* Remember where the replies of a session allowed on an interface of `tenant` will arrive. From a
 * source interface: on its tenant's fabric (DS_SETTING_TRACK_REPLIES), and, when its destination
 * lies in a network served by a tenant here, on that tenant's source interfaces
 * (DS_SETTING_TENANT_NETS; any tenant, its own included: a flow hairpinned within one tenant is
 * answered the same way). From a fabric: on its tenant's source interfaces. */
static __always_inline void ds_replies_remember(const struct ds_session_key *f, __u32 tenant, __u32 flags, int source_side)
{
	/* allowed on a fabric (inbound, by policy): its replies leave through the tenant's source
	 * interfaces and pass there as replies, without a rule of their own */
	if (!source_side) {
		if (flags & DS_SETTING_TRACK_REPLIES)
			ds_reply_remember(f, tenant, DS_ROLE_SOURCE);
		return;
	}
	if (flags & DS_SETTING_TRACK_REPLIES)
		ds_reply_remember(f, tenant, DS_ROLE_FABRIC);
	if (flags & DS_SETTING_TENANT_NETS) {
		struct ds_prefix_key pk = { .prefixlen = 8 + 128, .family = f->family };
		__builtin_memcpy(pk.addr, f->dst, 16);
		__u32 *served_by = bpf_map_lookup_elem(&ds_tenantnet_v2, &pk);
		if (served_by)
			ds_reply_remember(f, *served_by, DS_ROLE_SOURCE);
	}
}

/* Is `rk` the reply of a session allowed on a source interface under `meta` (the active
 * version)? A forward session from an older version is classified again (the reply of a flow the
 * new version denies is no reply), from its own interface's tenant. Writes nothing. */
static __always_inline int ds_reply_allowed(const struct ds_policy_meta *meta, const struct ds_reply_key *rk)
{
	struct ds_session_key *fwd = bpf_map_lookup_elem(&ds_replies, rk);
	struct ds_session_value *s;
	struct ds_decision d;

	if (!fwd)
		return 0;
	s = bpf_map_lookup_elem(&ds_sessions, fwd);
	if (!s)
		return 0;
	if (s->generation == ds_generation(meta))
		return s->action == DS_ACTION_ALLOW;
	return ds_classify_flow(meta, fwd, ds_iface_tenant(fwd->ifindex), &d) == 0 && d.action == DS_ACTION_ALLOW;
}

/* A packet on an interface of role `side` and `tenant` that is the reply of an allowed session. */
static __always_inline int ds_is_reply(const struct ds_policy_meta *meta, const struct ds_session_key *k, __u32 tenant, __u8 side)
{
	struct ds_reply_key rk = {};
	ds_reply_key_from_packet(k, tenant, side, &rk);
	return ds_reply_allowed(meta, &rk);
}

/* An ICMP error that quotes a packet of a session allowed from the source side, arriving where
 * that session's replies arrive (path MTU, unreachable from beyond the edge or from a hairpinned
 * tenant network), under the current version. */
static __always_inline int ds_icmp_reply_related(const struct ds_packet *pkt, __u32 tenant, __u8 side, __u32 generation)
{
	struct ds_reply_key r = {};
	struct ds_session_key *fwd;
	struct ds_session_value *s;

	if (ds_reply_key_of(&pkt->quoted, tenant, side, &r) != 0)
		return 0;
	fwd = bpf_map_lookup_elem(&ds_replies, &r);
	if (!fwd)
		return 0;
	s = bpf_map_lookup_elem(&ds_sessions, fwd);
	return s && s->generation == generation && s->action == DS_ACTION_ALLOW;
}

/* The agent's summary epoch (ds_settings.summary_epoch; 0: no summaries). */
static __always_inline __u32 ds_summary_epoch(void)
{
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);
	return cfg ? cfg->summary_epoch : 0;
}

/* The first packet of session `k` in summary epoch `epoch` (before it is counted): keep the
 * counters at the epoch's start (a session never marked keeps base 0, so its first summary counts
 * from its first packet) and the previous base, and push the key to ds_dirty for the agent. Once
 * per session and epoch; never for a new session's first packet. Behind the compare in
 * ds_session_touch: the cached path pays only the epoch read and the compare. */
static __always_inline void ds_session_mark(struct ds_cpu_stats *st, struct ds_session_value *s, const struct ds_session_key *k,
				       __u32 epoch)
{
	struct ds_dirty *rec;

	s->mark_flags = s->mark && s->mark + 1 == epoch ? DS_MARK_PREV_ADJACENT : 0;
	s->prev_packets = s->base_packets;
	s->prev_bytes = s->base_bytes;
	if (s->mark) {
		s->base_packets = s->packets;
		s->base_bytes = s->bytes;
	}
	s->mark = epoch;
	if (!epoch || !k)
		return;
	/* written in place (no stack: this call's frame adds to the program's), no wake-up: the
	 * agent drains at its tick */
	rec = bpf_ringbuf_reserve(&ds_dirty, sizeof(*rec), 0);
	if (!rec) {
		ds_count(st, DS_CTR_DIRTY_LOST);
		return;
	}
	__builtin_memcpy(&rec->key, k, sizeof(rec->key));
	rec->epoch = epoch;
	rec->pad = 0;
	bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

/* Plain increments: XDP runs a flow on one CPU (RSS hashes it to one queue, and the ifindex is
 * part of the key), so the read-modify-write is not shared; atomics would cost ~10 ns a packet.
 * The summary mark costs the cached path one settings read and a compare. */
static __always_inline void ds_session_touch(struct ds_cpu_stats *st, struct ds_session_value *s,
					     const struct ds_session_key *k, __u64 now, __u64 len)
{
	__u32 epoch = ds_summary_epoch();

	if (s->mark != epoch)
		ds_session_mark(st, s, k, epoch);
	s->last_seen = now;
	s->packets++;
	s->bytes += len;
}

/* A re-classified session's new value `nv` carries on its traffic and summary marks from `s`,
 * this packet included (marked like a packet of a cached session). */
static __always_inline void ds_session_carry(struct ds_cpu_stats *st, struct ds_session_value *nv,
					     const struct ds_session_value *s, const struct ds_session_key *k,
					     __u64 now, __u64 len)
{
	nv->first_seen = s->first_seen;
	nv->packets = s->packets;
	nv->bytes = s->bytes;
	nv->mark = s->mark;
	nv->mark_flags = s->mark_flags;
	nv->base_packets = s->base_packets;
	nv->base_bytes = s->base_bytes;
	nv->prev_packets = s->prev_packets;
	nv->prev_bytes = s->prev_bytes;
	ds_session_touch(st, nv, k, now, len);
}

/* This CPU's scratch session value (ds_scratch). */
static __always_inline struct ds_session_value *ds_value_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ds_scratch, &zero);
}

static __always_inline void ds_reply_decision(struct ds_decision *out)
{
	out->action = DS_ACTION_ALLOW;
	out->reason = DS_REASON_REPLY;
	out->rule = 0;
}

/* Look the flow up, (re-)classify on a miss or a stale generation, emit the session event.
 * Fills `out` (action, reason, rule) with the decision that applies to this packet. Settings are
 * read on this classify path (and, on the cached path, the summary epoch only):
 * - on a source interface, while replies are expected there (a fabric, DS_SETTING_TRACK_REPLIES,
 *   or tenant networks, DS_SETTING_TENANT_NETS), a packet that is the reply of a session allowed
 *   in from the fabric or hairpinned to this interface's tenant passes as `reply`, without a
 *   session of its own; so does a packet whose cached deny (DS_SESSION_REPLY_CHECK, left only
 *   then) has since become one;
 * - an allowed new or re-classified session leaves its expected replies (ds_replies_remember). */
static __always_inline void ds_session_decide(struct ds_cpu_stats *st, const struct ds_policy_meta *meta,
					      const struct ds_session_key *k, __u64 now, __u64 len,
					      struct ds_decision *out, int source_side, __u32 tenant)
{
	__u32 generation = ds_generation(meta);
	/* The filter says where to look first: a clear bit proves the flow was never denied (only
	 * ds_sessions can hold it); a set bit means it probably was (ds_denies first, ds_sessions if
	 * not there). So a packet pays one probe of a large hash, allowed or denied, cached or new,
	 * but for another key's bit. */
	__u64 bit = 0;
	__u64 *filter = ds_deny_filter_word(k, &bit);
	int maybe_denied = !filter || (*filter & bit);
	struct ds_session_value *s = NULL;
	int was_denied = 0;
	if (maybe_denied) {
		s = bpf_map_lookup_elem(&ds_denies, k);
		was_denied = s != NULL;
	}
	if (!s)
		s = bpf_map_lookup_elem(&ds_sessions, k);

	if (s && s->generation == generation) {
		if ((s->flags & DS_SESSION_REPLY_CHECK) && ds_is_reply(meta, k, tenant, DS_ROLE_SOURCE)) {
			ds_reply_decision(out);
			return;
		}
		ds_count(st, DS_CTR_CACHE_HITS);
		ds_session_touch(st, s, k, now, len);
		out->action = s->action;
		out->reason = s->reason;
		out->rule = s->rule;
		return;
	}

	__u32 flags = ds_setting_flags();
	int expect_replies = source_side && (flags & (DS_SETTING_TENANT_NETS | DS_SETTING_TRACK_REPLIES));
	if (expect_replies && ds_is_reply(meta, k, tenant, DS_ROLE_SOURCE)) {
		ds_reply_decision(out);
		return;
	}

	struct ds_decision d = {}; /* as it stays if the classifier had no flow: deny */
	ds_classify_flow(meta, k, tenant, &d);

	/* the new value is built in this CPU's scratch, not on the stack: with the summary marks it
	 * would take the program past the verifier's 512-byte combined stack */
	struct ds_session_value *nv = ds_value_scratch();
	if (!nv) {
		out->action = d.action;
		out->reason = d.reason;
		out->rule = d.rule;
		return;
	}
	__builtin_memset(nv, 0, sizeof(*nv));
	nv->first_seen = now;
	nv->last_seen = now;
	nv->packets = 1;
	nv->bytes = len;
	nv->rule = d.rule;
	nv->generation = generation;
	nv->action = d.action;
	nv->reason = d.reason;
	nv->flags = (d.log ? DS_SESSION_LOG : 0) |
		    (expect_replies && d.action == DS_ACTION_DENY ? DS_SESSION_REPLY_CHECK : 0);
	__u8 kind = DS_EVENT_SESSION_NEW;
	int emit = d.log;

	if (s) {
		ds_count(st, DS_CTR_CACHE_STALE);
		kind = DS_EVENT_SESSION_CHANGED;
		ds_session_carry(st, nv, s, k, now, len);
		/* same outcome under the new version: nothing to audit */
		emit = (d.log || (s->flags & DS_SESSION_LOG)) &&
		       (s->action != d.action || s->rule != d.rule || s->reason != d.reason);
	} else {
		ds_count(st, DS_CTR_CACHE_MISSES);
	}
	/* a session whose verdict changed moves to the other cache */
	if (s && was_denied != (nv->action == DS_ACTION_DENY))
		bpf_map_delete_elem(was_denied ? (void *)&ds_denies : (void *)&ds_sessions, k);
	long err;
	if (nv->action == DS_ACTION_ALLOW) {
		err = bpf_map_update_elem(&ds_sessions, k, nv, BPF_ANY);
	} else {
		if (filter && !(*filter & bit))
			__sync_fetch_and_or(filter, bit);
		err = bpf_map_update_elem(&ds_denies, k, nv, BPF_ANY);
	}
	if (err != 0)
		ds_count(st, DS_CTR_SESSION_FULL);
	else if (nv->action == DS_ACTION_ALLOW)
		ds_replies_remember(k, tenant, flags, source_side);
	if (emit && (nv->action == DS_ACTION_ALLOW || ds_deny_event_admit(st, meta, nv, now)))
		ds_emit(st, k, nv, kind, len);
	out->action = nv->action;
	out->reason = nv->reason;
	out->rule = nv->rule;
}

#endif /* DOORSTEP_SESSION_H */
