/* SPDX-License-Identifier: GPL-2.0-only */
/* Every map of the engine. Names follow ds_<noun> (kernel object names are at most 15 chars).
 *
 * Global maps live as long as the engine's pins. Per-policy tables are ARRAY_OF_MAPS with one
 * entry per slot: the controller fills fresh inner maps for the inactive slot, then publishes the
 * version by replacing ds_active[0] — one atomic pointer swap (see docs/datapath.md). */
#ifndef DOORSTEP_MAPS_H
#define DOORSTEP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

/* ---- global maps ---- */

// The ABI version of the engine that created these pins (struct ds_abi, one entry). Written once by
// the controller and frozen; read by the next controller before it adopts the pins. Never read by
// the datapath.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ds_abi);
} ds_abi SEC(".maps");

// Session cache of allowed sessions: flow → cached decision and traffic. Written by the datapath,
// read by the CLI. Denied traffic never inserts here, so no flood of it evicts an allowed session.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DS_SESSIONS_DEFAULT);
	__type(key, struct ds_session_key);
	__type(value, struct ds_session_value);
} ds_sessions SEC(".maps");

// Session cache of denied sessions, 2-way buckets chosen by the flow's digest (struct
// ds_deny_entry): a flood of denied flows evicts only denied sessions. A session moves between the
// two caches when a new version changes its verdict.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DS_DENIES_DEFAULT);
	__type(key, __u32);
	__type(value, struct ds_deny_entry);
} ds_denies SEC(".maps");

// Which cache may hold a flow (struct ds_flow_filter_entry): a flow whose bits are clear is in
// neither cache and is classified without a probe, so a flood of new flows (spoofed sources) pays
// no lookup in a large hash; a cached flow probes the cache its bit names (ds_denies first). Set
// (plain writes) by the datapath, cleared one bank at a time by the agent.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DS_FLOW_FILTER_ENTRIES);
	__type(key, __u32);
	__type(value, struct ds_flow_filter_entry);
} ds_flow_filter SEC(".maps");

// The coarse level of ds_flow_filter: bit i of word i / 64 is set when entry i may hold a bit.
// A flow whose entry's coarse bit is clear is new without a read of the entry: 4 KiB that stay in
// the CPU's cache, where a read at a random place of the 512 KiB filter is a cache miss (~80 ns
// of a spoofed flood's packet). Set by the datapath with the entry's bits; rewritten from the
// filter by the agent's aging.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DS_FLOW_COARSE_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} ds_flow_coarse SEC(".maps");

// Sources of held-back denied sessions, sampled: each one overwrites a random slot of its CPU's
// array, so the array holds a sample of the most recent ones (tagged with the flood interval).
// Written by the datapath, read by the agent for a flood record's top sources and prefixes.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DS_FLOOD_SAMPLES);
	__type(key, __u32);
	__type(value, struct ds_flood_sample);
} ds_flood_samples SEC(".maps");

// Fragment tracking: datagram → first fragment's ports. Written and read by the datapath.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DS_FRAGS_MAX);
	__type(key, struct ds_frag_key);
	__type(value, struct ds_frag_value);
} ds_frags SEC(".maps");

// Session events (struct ds_event) for the audit pipeline. Written by the datapath only.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DS_EVENTS_BYTES);
} ds_events SEC(".maps");

// Sessions marked in a summary epoch (struct ds_dirty): the keys of the sessions with traffic
// since the last summary tick, so the agent summarizes those and never walks the caches. Written
// by the datapath without wake-ups; drained by the agent at each tick. Full: counted
// (DS_CTR_DIRTY_LOST), and the agent scans the caches once instead.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DS_DIRTY_BYTES);
} ds_dirty SEC(".maps");

// Per-CPU scratch for the session a new or re-classified session is written with, its flow beside
// its value as ds_denies keeps them (too large for the program's stack beside the classifier's
// frame). Datapath only; XDP runs in softirq and does not nest on a CPU, so one packet at a time
// uses a CPU's copy.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ds_deny_entry);
} ds_scratch SEC(".maps");

// The last source-free decision of the classifier, per CPU (struct ds_memo). Datapath only.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ds_memo);
} ds_memo SEC(".maps");

// Per-CPU counters, event sequence and per-reason stats. Written by the datapath, read by userspace.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ds_cpu_stats);
} ds_stats SEC(".maps");

// Management prefixes that always pass (keyed with the family). Written by the controller. v2: the
// family joined the key (an engine pinned by an older version lacks this map and is refused).
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, DS_FAILSAFE_MAX);
	__type(key, struct ds_prefix_key);
	__type(value, struct ds_failsafe_value);
} ds_failsafe_v2 SEC(".maps");

// Networks served by tenants on this enforcer (keyed with the family) → tenant id (__u32). Written by the controller
// (Engine.setTenantNetworks), read by the datapath: an allowed session towards one of them is
// hairpinned out of that tenant's source interface, where its reply is expected (ds_replies).
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, DS_TENANT_NETS_MAX);
	__type(key, struct ds_prefix_key);
	__type(value, __u32);
} ds_tenantnet_v2 SEC(".maps");

// Per-rule packets and bytes: one row per CPU per slot, [slot][cpu][rule]. A version counts rule
// r on CPU c at stats_base + c * stats_stride + r (its meta says where; the controller zeroes the
// rows before publishing). A plain array of per-CPU rows rather than a per-CPU array: one memory
// access instead of two (no per-element pointer), and an inlined lookup. The loader sizes it to
// DS_SLOTS * capacity * possible CPUs.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DS_SLOTS * DS_RULE_STATS_DEFAULT);
	__type(key, __u32);
	__type(value, struct ds_rule_stat);
} ds_rule_stats SEC(".maps");

// Runtime settings (one entry). Written by the controller.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ds_settings);
} ds_settings SEC(".maps");

// Interface roles and tenants, by ifindex (all zero: every interface is a source). Controller-written.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DS_IFACES_MAX);
	__type(key, __u32);
	__type(value, struct ds_iface);
} ds_ifaces SEC(".maps");

// Expected replies of sessions allowed on source interfaces (on a fabric, or hairpinned) → the
// forward session's key. Written and read by the datapath.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DS_REPLIES_DEFAULT);
	__type(key, struct ds_reply_key);
	__type(value, struct ds_session_key);
} ds_replies SEC(".maps");

/* ---- per-policy tables: inner-map templates, then the slot arrays ----
 * Inner templates give sizes, not BTF types: clang emits only forward declarations for types
 * reached through inner-map definitions, and the inner maps are created by the controller
 * without BTF anyway. The layouts still come from abi.h (via src/abi/generated.ts). */

// The active version's descriptor (frozen once written).
struct ds_inner_meta {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct ds_policy_meta));
};

// IPv4 /16 → (class of the best prefix <= /16, lengths present below it).
struct ds_inner_v4_top {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DS_V4_TOP_ENTRIES);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct ds_v4_top));
};

// IPv4 (prefix, length 17..32) → class and verdict-row summary, open addressing (see abi.h).
struct ds_inner_v4_long {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct ds_v4_slot));
};

// IPv6 address → class and verdict-row summary (longest prefix wins).
struct ds_inner_lpm6 {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(struct ds_lpm6_key));
	__uint(value_size, sizeof(struct ds_addr_class));
};

// Service index (kind * DS_SVC_SPAN + value) → service class. Fixed size, no BPF_F_INNER_MAP:
// that lets the verifier inline lookups into it.
struct ds_inner_svc {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DS_SVC_ENTRIES);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
};

// (destination class, service class) → target class and, if tenant-scoped rules are among them, scoped id.
struct ds_inner_target {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(struct ds_target_key));
	__uint(value_size, sizeof(struct ds_target_value));
};

// Tenant id (ds_iface.tenant) → tenant class: only tenants some rule is scoped to.
struct ds_inner_tenant {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
};

// (scoped id, tenant class) → the target class for that tenant.
struct ds_inner_tenant_tgt {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(struct ds_tenant_target_key));
	__uint(value_size, sizeof(__u32));
};

// (source class or 0 for the wildcard row, target class) → first matching rule, action, log flag.
struct ds_inner_verdict {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(struct ds_verdict_key));
	__uint(value_size, sizeof(struct ds_verdict_value));
};

#define DS_SLOT_MAP(name, inner)                          \
	struct {                                          \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); \
		__uint(max_entries, DS_SLOTS);            \
		__type(key, __u32);                       \
		__array(values, struct inner);            \
	} name SEC(".maps")

// ds_active[0] → the active version's ds_policy_meta; empty = no policy (default deny).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct ds_inner_meta);
} ds_active SEC(".maps");

DS_SLOT_MAP(ds_src4_top, ds_inner_v4_top);
DS_SLOT_MAP(ds_src4_long, ds_inner_v4_long);
DS_SLOT_MAP(ds_dst4_top, ds_inner_v4_top);
DS_SLOT_MAP(ds_dst4_long, ds_inner_v4_long);
DS_SLOT_MAP(ds_src6, ds_inner_lpm6);
DS_SLOT_MAP(ds_dst6, ds_inner_lpm6);
DS_SLOT_MAP(ds_svc, ds_inner_svc);
DS_SLOT_MAP(ds_target, ds_inner_target);
DS_SLOT_MAP(ds_tenant, ds_inner_tenant);
DS_SLOT_MAP(ds_tenant_tgt, ds_inner_tenant_tgt);
DS_SLOT_MAP(ds_verdict, ds_inner_verdict);

#endif /* DOORSTEP_MAPS_H */
