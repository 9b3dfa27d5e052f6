/* SPDX-License-Identifier: GPL-2.0-only */
/* The engine's maps as user space knows them: each map's name and the abi.h types of its key and
 * value (a ring buffer: of its records; a map of maps: of its inner maps). Declared once, here:
 *
 *  - bpf/abi_btf.c includes this file, so every line below becomes a struct ds_contract_* in
 *    its BTF, from which scripts/gen-abi.ts generates MapName, MapTypes and SLOT_TABLES of
 *    src/abi/generated.ts (the TypeScript never spells a map name itself);
 *  - bpf/include/maps.h defines the maps; test/unit/abi.test.ts checks that the engine object's
 *    maps are exactly these, each with these BTF key and value type NAMES (several keys share a
 *    size: ds_session_key, ds_reply_key and ds_frag_key are all 48 bytes), and inner-map
 *    templates (which carry sizes only, see maps.h) with these types' sizes;
 *  - Engine.open refuses pins whose maps' kernel BTF names or sizes differ from the object's,
 *    or whose ds_abi stamp is not DS_ABI_VERSION (DS_E_ABI_MISMATCH).
 *
 * Change a map's key or value layout: change its type here and in maps.h, bump DS_ABI_VERSION,
 * then `npm run build && npm run gen:abi`.
 */
#ifndef DOORSTEP_CONTRACT_H
#define DOORSTEP_CONTRACT_H

#include "abi.h"

/* A map with keys and values (per-CPU maps: the value of one CPU). */
#define DS_MAP(name, K, V) struct ds_contract_map__##name { K key; V value; } ds_contract_map__##name
/* A ring buffer of records. */
#define DS_RINGBUF(name, R) struct ds_contract_ringbuf__##name { R value; } ds_contract_ringbuf__##name
/* A map of maps: K and V are its inner maps' key and value. */
#define DS_MAP_OF_MAPS(name, K, V) struct ds_contract_mapofmaps__##name { K key; V value; } ds_contract_mapofmaps__##name
/* A per-policy table: a map of DS_SLOTS maps, one per policy slot; K and V are its inner maps'. */
#define DS_SLOT_TABLE(name, K, V) struct ds_contract_slottable__##name { K key; V value; } ds_contract_slottable__##name

/* global maps */
DS_MAP(ds_abi, __u32, struct ds_abi);
DS_MAP(ds_sessions, struct ds_session_key, struct ds_session_value);
DS_MAP(ds_denies, __u32, struct ds_deny_entry);
DS_MAP(ds_flow_filter, __u32, struct ds_flow_filter_entry);
DS_MAP(ds_flow_coarse, __u32, __u64);
DS_MAP(ds_flood_samples, __u32, struct ds_flood_sample);
DS_MAP(ds_frags, struct ds_frag_key, struct ds_frag_value);
DS_RINGBUF(ds_events, struct ds_event);
DS_RINGBUF(ds_dirty, struct ds_dirty);
DS_MAP(ds_scratch, __u32, struct ds_deny_entry);
DS_MAP(ds_memo, __u32, struct ds_memo);
DS_MAP(ds_stats, __u32, struct ds_cpu_stats);
DS_MAP(ds_failsafe_v2, struct ds_prefix_key, struct ds_failsafe_value);
DS_MAP(ds_tenantnet_v2, struct ds_prefix_key, __u32);
DS_MAP(ds_rule_stats, __u32, struct ds_rule_stat);
DS_MAP(ds_settings, __u32, struct ds_settings);
DS_MAP(ds_ifaces, __u32, struct ds_iface);
DS_MAP(ds_replies, struct ds_reply_key, struct ds_session_key);

/* the active version's descriptor */
DS_MAP_OF_MAPS(ds_active, __u32, struct ds_policy_meta);

/* per-policy tables, in the order a version's inner maps are filled */
DS_SLOT_TABLE(ds_src4_top, __u32, struct ds_v4_top);
DS_SLOT_TABLE(ds_src4_long, __u32, struct ds_v4_slot);
DS_SLOT_TABLE(ds_dst4_top, __u32, struct ds_v4_top);
DS_SLOT_TABLE(ds_dst4_long, __u32, struct ds_v4_slot);
DS_SLOT_TABLE(ds_src6, struct ds_lpm6_key, struct ds_addr_class);
DS_SLOT_TABLE(ds_dst6, struct ds_lpm6_key, struct ds_addr_class);
DS_SLOT_TABLE(ds_svc, __u32, __u32);
DS_SLOT_TABLE(ds_target, struct ds_target_key, struct ds_target_value);
DS_SLOT_TABLE(ds_tenant, __u32, __u32);
DS_SLOT_TABLE(ds_tenant_tgt, struct ds_tenant_target_key, __u32);
DS_SLOT_TABLE(ds_verdict, struct ds_verdict_key, struct ds_verdict_value);

#endif /* DOORSTEP_CONTRACT_H */
