// SPDX-License-Identifier: GPL-2.0-only
/* The benchmarks' floors. ds_xdp_floor: the engine's parser plus one hash lookup, nothing else;
 * the datapath benchmark prints the engine's cost as a ratio of its, and never attaches it.
 * ds_xdp_drop: drops every frame at once; bench:flood attaches it beside the enforcers, as the
 * least receive CPU any XDP program can cost on its path. */
#include "include/parse.h"

char LICENSE[] SEC("license") = "GPL";

// Same key and value as ds_sessions, so the one lookup costs what the engine's first lookup does.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ds_session_key);
	__type(value, struct ds_session_value);
} ds_floor SEC(".maps");

SEC("xdp.frags")
int ds_xdp_floor(struct xdp_md *ctx)
{
	struct ds_packet pkt = {};

	if (ds_parse(ctx, &pkt, bpf_xdp_get_buff_len(ctx), 0) != DS_PARSE_IP)
		return XDP_DROP;
	struct ds_session_value *s = bpf_map_lookup_elem(&ds_floor, &pkt.key);
	return s && s->action == DS_ACTION_DENY ? XDP_DROP : XDP_PASS;
}

SEC("xdp.frags")
int ds_xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}
