// SPDX-License-Identifier: GPL-2.0-only
/* Never loaded. Compiled with -g only so that every type of include/abi.h, and the map contract of
 * include/contract.h, land in BTF, from which scripts/gen-abi.ts generates src/abi/generated.ts.
 * A type reaches BTF only through a variable: test/unit/abi.test.ts fails when a struct or enum
 * of abi.h has none below. */
#include "include/abi.h"


enum ds_limits ds_btf_limits;
enum ds_action ds_btf_action;
enum ds_reason ds_btf_reason;
enum ds_svc_kind ds_btf_svc_kind;
enum ds_counter ds_btf_counter;
enum ds_event_kind ds_btf_event_kind;
enum ds_setting_flag ds_btf_setting_flag;
enum ds_session_flag ds_btf_session_flag;
enum ds_mark_flag ds_btf_mark_flag;
enum ds_family ds_btf_family;
enum ds_digest ds_btf_digest;
struct ds_session_key ds_btf_session_key;
struct ds_session_value ds_btf_session_value;
struct ds_deny_entry ds_btf_deny_entry;
struct ds_flow_filter_entry ds_btf_flow_filter_entry;
struct ds_dirty ds_btf_dirty;
struct ds_frag_key ds_btf_frag_key;
struct ds_frag_value ds_btf_frag_value;
struct ds_event ds_btf_event;
struct ds_stat ds_btf_stat;
struct ds_budget ds_btf_budget;
struct ds_sketch ds_btf_sketch;
struct ds_rule_stat ds_btf_rule_stat;
struct ds_flood_sample ds_btf_flood_sample;
struct ds_memo ds_btf_memo;
struct ds_cpu_stats ds_btf_cpu_stats;
struct ds_policy_meta ds_btf_policy_meta;
enum ds_row_kind ds_btf_row_kind;
struct ds_addr_class ds_btf_addr_class;
struct ds_v4_top ds_btf_v4_top;
struct ds_v4_slot ds_btf_v4_slot;
struct ds_lpm6_key ds_btf_lpm6_key;
struct ds_target_key ds_btf_target_key;
struct ds_verdict_key ds_btf_verdict_key;
struct ds_verdict_value ds_btf_verdict_value;
struct ds_prefix_key ds_btf_prefix_key;
struct ds_failsafe_value ds_btf_failsafe_value;
struct ds_settings ds_btf_settings;
enum ds_explain_flag ds_btf_explain_flag;
struct ds_explain_result ds_btf_explain_result;
enum ds_iface_role ds_btf_iface_role;
enum ds_iface_flag ds_btf_iface_flag;
struct ds_iface ds_btf_iface;
struct ds_reply_key ds_btf_reply_key;
struct ds_target_value ds_btf_target_value;
struct ds_tenant_target_key ds_btf_tenant_target_key;
struct ds_explain_input ds_btf_explain_input;
struct ds_abi ds_btf_abi;

/* the map contract: one variable per map (DS_MAP and its kin) */
#include "include/contract.h"
