// SPDX-License-Identifier: GPL-2.0-only
/* doorstep's XDP policy engine: one program per enforced interface.
 *
 * parse → (fragment join) → (ICMP error relation) → session cache → classify on miss or stale
 * generation → cache the verdict → session event → verdict. The topic headers do the work. */
#include "include/maps.h"
#include "include/parse.h"
#include "include/classify.h"
#include "include/session.h"
#include "include/audit.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int ds_non_ip_verdict(struct ds_cpu_stats *st, __u64 len)
{
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);
	__u8 action = cfg && (cfg->flags & DS_SETTING_PASS_NON_IP) ? DS_ACTION_ALLOW : DS_ACTION_DENY;
	return ds_finish(st, action, DS_REASON_NON_IP, len);
}

SEC("xdp.frags")
int ds_xdp_ingress(struct xdp_md *ctx)
{
	struct ds_cpu_stats *st = ds_stats_this_cpu();
	__u64 len = bpf_xdp_get_buff_len(ctx);
	/* coarse (tick) time for session timestamps: a fine clock read costs ~20 ns under kvm-clock */
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ds_packet pkt = {};

	ds_count(st, DS_CTR_RX_PACKETS);
	if (st)
		st->counters[DS_CTR_RX_BYTES] += len;

	switch (ds_parse(ctx, &pkt, len)) {
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

	if (pkt.frag != DS_FRAG_NONE) {
		ds_count(st, DS_CTR_FRAGMENTS);
		if (ds_frag_track(&pkt, now) < 0) {
			ds_count(st, DS_CTR_FRAG_UNKNOWN);
			return ds_finish(st, DS_ACTION_DENY, DS_REASON_FRAG_UNKNOWN, len);
		}
	}

	struct ds_policy_meta *meta = ds_active_meta();

	if (pkt.icmp_error && meta && ds_icmp_related(&pkt, meta->generation)) {
		ds_count(st, DS_CTR_ICMP_RELATED);
		return ds_finish(st, DS_ACTION_ALLOW, DS_REASON_ICMP_RELATED, len);
	}

	struct ds_session_value d = {};
	ds_session_decide(st, meta, &pkt.key, now, len, &d);
	if (meta && d.reason == DS_REASON_POLICY)
		ds_rule_count(meta, d.rule, len);
	return ds_finish(st, d.action, d.reason, len);
}
