// SPDX-License-Identifier: GPL-2.0-only
/* doorstep's XDP policy engine: one program per enforced interface.
 *
 * ds_xdp_ingress: parse → (fragment join) → (ICMP error relation) → (fabric) reply → session
 * cache → (source, tenant networks set) hairpin reply → classify on miss or stale generation →
 * cache the verdict → session event → verdict.
 * ds_xdp_explain: the same parser and classifier against the same (active) tables, for
 * BPF_PROG_TEST_RUN only: writes no map, and reports its decision in the packet (`doorstep
 * explain`). The topic headers do the work. */
#include "include/maps.h"
#include "include/parse.h"
#include "include/classify.h"
#include "include/session.h"
#include "include/audit.h"

char LICENSE[] SEC("license") = "GPL";

/* Frames neither IP nor ARP: dropped unless the controller set DS_SETTING_PASS_NON_IP. */
static __always_inline __u8 ds_non_ip_action(void)
{
	return ds_setting_flags() & DS_SETTING_PASS_NON_IP ? DS_ACTION_ALLOW : DS_ACTION_DENY;
}

/* An ICMP error travelling towards the sender of the packet it quotes, where that packet is the
 * reply of a session of this interface, or a packet of an allowed session whose replies arrive on
 * this interface: on a fabric, of sessions allowed from its tenant's sources; on a source
 * interface, of sessions allowed in from its tenant's fabric or hairpinned to its tenant.
 * `generation` is 0 while no policy is installed (failsafe sessions). */
static __always_inline int ds_icmp_error_related(const struct ds_packet *pkt, int fabric, __u32 tenant, __u32 generation)
{
	if (!ds_error_towards_sender(pkt))
		return 0;
	if (ds_icmp_related(pkt, generation))
		return 1;
	/* a source interface expects replies only while a fabric or tenant networks exist */
	if (!fabric && !(ds_setting_flags() & (DS_SETTING_TRACK_REPLIES | DS_SETTING_TENANT_NETS)))
		return 0;
	return ds_icmp_reply_related(pkt, tenant, fabric ? DS_ROLE_FABRIC : DS_ROLE_SOURCE, generation);
}

static __always_inline int ds_non_ip_verdict(struct ds_cpu_stats *st, __u64 len)
{
	return ds_finish(st, ds_non_ip_action(), DS_REASON_NON_IP, len);
}

SEC("xdp.frags")
int ds_xdp_ingress(struct xdp_md *ctx)
{
	struct ds_cpu_stats *st = ds_stats_this_cpu();
	__u64 len = bpf_xdp_get_buff_len(ctx);
	/* coarse (tick) time for session timestamps: a fine clock read costs ~20 ns under kvm-clock */
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ds_packet pkt = {};
	__u32 ifindex = ctx->ingress_ifindex;
	struct ds_iface *ifc = bpf_map_lookup_elem(&ds_ifaces, &ifindex); /* NULL past DS_IFACES_MAX: a source */

	ds_count(st, DS_CTR_RX_PACKETS);
	if (st)
		st->counters[DS_CTR_RX_BYTES] += len;

	switch (ds_parse(ctx, &pkt, len, ifc && (ifc->flags & DS_IFACE_L3))) {
	case DS_PARSE_IP:
		break;
	case DS_PARSE_ARP:
	case DS_PARSE_ND:
		ds_count(st, DS_CTR_FAILSAFE);
		return ds_finish(st, DS_ACTION_ALLOW, DS_REASON_FAILSAFE, len);
	case DS_PARSE_NON_IP:
		return ds_non_ip_verdict(st, len);
	default:
		ds_count(st, DS_CTR_PARSE_ERRORS);
		return ds_finish(st, DS_ACTION_DENY, DS_REASON_MALFORMED, len);
	}

	if (pkt.frag != DS_FRAG_NONE)
		ds_count(st, DS_CTR_FRAGMENTS);
	if (pkt.frag == DS_FRAG_LATER && ds_frag_follow(&pkt, now) < 0) {
		ds_count(st, DS_CTR_FRAG_UNKNOWN);
		return ds_finish(st, DS_ACTION_DENY, DS_REASON_FRAG_UNKNOWN, len);
	}

	struct ds_policy_meta *meta = ds_active_meta();
	__u32 tenant = ifc ? ifc->tenant : 0;
	int fabric = ifc && ifc->role == DS_ROLE_FABRIC;

	if (pkt.icmp_error && ds_icmp_error_related(&pkt, fabric, tenant, ds_generation(meta))) {
		ds_count(st, DS_CTR_ICMP_RELATED);
		return ds_finish(st, DS_ACTION_ALLOW, DS_REASON_ICMP_RELATED, len);
	}

	if (fabric && ds_is_reply(meta, &pkt.key, tenant, DS_ROLE_FABRIC)) {
		ds_count(st, DS_CTR_REPLIES);
		ds_frag_record(&pkt, now);
		return ds_finish(st, DS_ACTION_ALLOW, DS_REASON_REPLY, len);
	}

	/* everything else meets policy (a hairpin reply on a source interface aside); allowed
	 * sessions from a source side leave their replies */
	struct ds_decision d = {};
	ds_session_decide(st, meta, &pkt.key, now, len, &d, !fabric, tenant);
	if (d.reason == DS_REASON_REPLY)
		ds_count(st, DS_CTR_REPLIES);
	else if (meta && d.reason == DS_REASON_POLICY)
		ds_rule_count(meta, d.rule, len);
	if (d.action == DS_ACTION_ALLOW)
		ds_frag_record(&pkt, now);
	return ds_finish(st, d.action, d.reason, len);
}

/* ds_xdp_explain's two steps are global functions: the verifier checks each once, on its own,
 * instead of once per parser outcome of the caller. Inlined like ds_xdp_ingress (~400,000
 * verified instructions), explain's extra branches took it past the verifier's 1,000,000; as
 * global functions it costs ~280,000 (~0.25 s of engine load here). */

/* Parse the frame into `pkt` (enum ds_parse_result), exactly as ds_xdp_ingress does. */
__noinline int ds_explain_parse(struct xdp_md *ctx, struct ds_packet *pkt)
{
	if (!pkt)
		return DS_PARSE_MALFORMED;
	return ds_parse(ctx, pkt, bpf_xdp_get_buff_len(ctx), 0);
}

/* Declared in session.h: ds_classify, verified once. */
__noinline int ds_classify_flow(const struct ds_policy_meta *meta, const struct ds_session_key *k, __u32 tenant,
				struct ds_decision *d)
{
	if (!k || !d)
		return -1;
	ds_classify(meta, k, tenant, d);
	return 0;
}

/* Declared in session.h: a new session's decision, from this CPU's ds_memo when it holds one for
 * the flow (the same destination, protocol, port, family, tenant and version), else from the
 * classifier, kept in the memo when the classifier read no source. Never the memo's for a failsafe
 * source (the classifier passes it before the policy; checked first while management prefixes
 * exist). Without a version (generation 0) nothing is kept. A function of its own: inlined, its
 * branches multiplied ds_xdp_ingress's verified instructions by half. */
__noinline int ds_decide_flow(const struct ds_policy_meta *meta, const struct ds_session_key *k, __u32 tenant,
			      __u32 flags, struct ds_decision *d)
{
	if (!k || !d)
		return -1;
	__u32 generation = ds_generation(meta);
	struct ds_memo *m = generation ? ds_memo_this_cpu() : NULL;

	if (m && ds_memo_holds(m, k, tenant, generation) && !((flags & DS_SETTING_FAILSAFE) && ds_failsafe_match(k))) {
		d->rule = m->decision.rule;
		d->action = m->decision.action;
		d->log = m->decision.log;
		d->reason = DS_REASON_POLICY;
		return 0;
	}
	ds_classify(meta, k, tenant, d);
	if (m && d->source_free && d->reason == DS_REASON_POLICY) {
		__builtin_memcpy(m->dst, k->dst, 16);
		m->generation = generation;
		m->tenant = tenant;
		m->dport = k->dport;
		m->proto = k->proto;
		m->family = k->family;
		m->decision.rule = d->rule;
		m->decision.action = d->action;
		m->decision.log = d->log;
	}
	return 0;
}

/* Classify one flow from `tenant` against the active version, from one read of ds_active, so
 * generation and verdict belong to the same version (explain). */
static __always_inline int ds_classify_active(const struct ds_session_key *k, __u32 tenant, struct ds_explain_result *r)
{
	struct ds_policy_meta *meta = ds_active_meta();
	struct ds_decision d = {};

	if (ds_classify_flow(meta, k, tenant, &d) < 0)
		return -1;
	r->generation = ds_generation(meta);
	r->rule = d.rule;
	r->action = d.action;
	r->reason = d.reason;
	r->log = d.log;
	return 0;
}

/* Explain one frame, sent from a tenant: the decision ds_xdp_ingress reaches for it as the first
 * packet of a new session arriving on a source interface of that tenant, from the same parser and
 * classifier over the same active tables. The input is struct ds_explain_input followed by the
 * frame; the input is stripped before parsing. Reads ds_settings, ds_failsafe_v2, ds_active and the
 * slot tables; writes no map (no session, fragment, counter, per-rule statistic or event). Moves
 * the frame's start 64 bytes into the headroom and writes struct ds_explain_result there, then
 * returns XDP_PASS (XDP_ABORTED if it cannot). Meant for BPF_PROG_TEST_RUN only: attached to an
 * interface it would corrupt every frame. */
SEC("xdp.frags")
int ds_xdp_explain(struct xdp_md *ctx)
{
	struct ds_explain_result r = { .log = 1 };
	struct ds_packet pkt = {};
	struct ds_explain_input *in = (void *)(long)ctx->data;

	if ((void *)(in + 1) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	r.tenant = in->tenant;
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*in)))
		return XDP_ABORTED;

	int parsed = ds_explain_parse(ctx, &pkt);

	if (parsed == DS_PARSE_IP && pkt.frag != DS_FRAG_LATER) {
		if (ds_classify_active(&pkt.key, r.tenant, &r) < 0)
			return XDP_ABORTED;
	} else {
		r.generation = ds_generation(ds_active_meta());
		r.action = DS_ACTION_DENY;
		switch (parsed) {
		case DS_PARSE_IP:
			/* a later fragment: its ports live in ds_frags, which explain does not read */
			r.reason = DS_REASON_FRAG_UNKNOWN;
			break;
		case DS_PARSE_ARP:
		case DS_PARSE_ND:
			r.action = DS_ACTION_ALLOW;
			r.reason = DS_REASON_FAILSAFE;
			break;
		case DS_PARSE_NON_IP:
			r.action = ds_non_ip_action();
			r.reason = DS_REASON_NON_IP;
			break;
		default:
			r.reason = DS_REASON_MALFORMED;
			break;
		}
	}
	if (parsed == DS_PARSE_IP) {
		if (pkt.icmp_error)
			r.flags |= DS_EXPLAIN_ICMP_ERROR;
		if (pkt.frag == DS_FRAG_FIRST)
			r.flags |= DS_EXPLAIN_FRAG_FIRST;
		if (pkt.frag == DS_FRAG_LATER)
			r.flags |= DS_EXPLAIN_FRAG_LATER;
	}
	__builtin_memcpy(&r.key, &pkt.key, sizeof(r.key));

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(r)))
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + sizeof(r) > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, &r, sizeof(r));
	return XDP_PASS;
}
