/* SPDX-License-Identifier: GPL-2.0-only */
/* doorstep ABI: every struct, enum and constant that crosses the kernel/user boundary.
 *
 * This header is the single source of truth. The TypeScript codecs in src/abi/generated.ts are
 * generated from the BTF of bpf/abi_btf.c (which includes only this file), and a test checks that
 * the generated file is current and that the engine object's map key/value types match it.
 *
 * Rules: explicit padding in every struct, _Static_assert on every size, multi-byte integers in
 * host byte order unless the field says otherwise, addresses always 16 bytes (IPv4 as ::ffff:a.b.c.d).
 * Enums are only ever appended to; a value once shipped keeps its meaning.
 */
#ifndef DOORSTEP_ABI_H
#define DOORSTEP_ABI_H

#include <linux/types.h>

/* Limits and fixed sizes. Enum (not #define) so they reach BTF and the generated TypeScript. */
enum ds_limits {
	DS_ABI_VERSION = 9,           /* of the maps' layouts (bpf/include/contract.h); pins carry it in ds_abi */
	DS_SLOTS = 2,                 /* policy slots: active and being written */
	DS_SESSIONS_DEFAULT = 262144, /* allowed-session cache entries unless the loader says otherwise */
	DS_DENIES_DEFAULT = 262144,   /* denied-session cache entries unless the loader says otherwise (a power of two, at least 4) */
	DS_FLOW_FILTER_ENTRIES = 32768, /* ds_flow_filter: 2 banks × (32 deny + 32 allow bits) each: 2^20 bits a kind and bank (512 KiB) */
	DS_FLOW_COARSE_WORDS = 512,   /* ds_flow_coarse: one bit per ds_flow_filter entry, in u64 words (4 KiB) */
	DS_FRAGS_MAX = 16384,         /* in-flight fragmented datagrams tracked */
	DS_EVENTS_BYTES = 16777216,   /* ring buffer size (16 MiB) */
	DS_FAILSAFE_MAX = 256,        /* management prefixes */
	DS_SVC_SPAN = 65536,          /* values per service kind */
	DS_SVC_ENTRIES = 393216,      /* DS_SVC_KIND_COUNT * DS_SVC_SPAN */
	DS_MAX_VLAN_TAGS = 2,
	DS_MAX_IPV6_EXT = 8,          /* extension headers walked before giving up (malformed) */
	DS_RULE_STATS_DEFAULT = 65536,/* per-rule counters per slot unless the loader says otherwise */
	DS_V4_TOP_ENTRIES = 65536,    /* IPv4 address classes: one entry per /16 */
	DS_V4_LONG_MIN = 17,          /* prefixes longer than /16 live in the long table */
	DS_V4_MAX_PROBES = 64,        /* long-table slots probed per (prefix, length) at most; typically 1 */
	DS_V4_HASH_MUL1 = 0x7FEB352D, /* ds_v4_slot_hash() constants (mirrored in src/policy/tables/image.ts) */
	DS_V4_HASH_MUL2 = 0x68E31DA5,
	DS_IFACES_MAX = 65536,        /* interface roles: indexed by ifindex; a higher ifindex is a source interface */
	DS_REPLIES_DEFAULT = 262144,  /* expected replies of allowed sessions (fabric and hairpin) */
	DS_TENANT_NETS_MAX = 4096,    /* networks served by tenants on this enforcer (hairpin replies) */
	DS_SKETCH_REGISTERS = 32,     /* HyperLogLog registers of a distinct-sources sketch (ds_sketch) */
	DS_FLOOD_SAMPLES = 256,       /* held-back sessions' sources sampled per CPU (ds_flood_samples) */
	DS_FLOOD_SAMPLE_EVERY = 8,    /* one held-back session in this many (per CPU and rule) is sampled */
	DS_DIRTY_BYTES = 16777216,    /* ds_dirty ring buffer size (16 MiB: 262,144 struct ds_dirty records) */
};

/* Verdicts. Numerically equal to the rule actions in the compiled tables. */
enum ds_action {
	DS_ACTION_DENY = 0,
	DS_ACTION_ALLOW = 1,
};

/* Why a verdict was reached. Only ever appended to. */
enum ds_reason {
	DS_REASON_NONE = 0,
	DS_REASON_POLICY = 1,        /* a rule, or the policy's default action, decided */
	DS_REASON_NO_POLICY = 2,     /* no policy installed yet: default deny */
	DS_REASON_FAILSAFE = 3,      /* ARP, IPv6 neighbour discovery, or a management prefix */
	DS_REASON_MALFORMED = 4,     /* truncated or malformed headers */
	DS_REASON_FRAG_UNKNOWN = 5,  /* non-first fragment whose first fragment was not seen */
	DS_REASON_ICMP_RELATED = 6,  /* ICMP error quoting a session the engine allowed */
	DS_REASON_NON_IP = 7,        /* neither IP nor ARP (passed only if DS_SETTING_PASS_NON_IP) */
	DS_REASON_REPLY = 8,         /* the reply of an allowed session: on a fabric, of one allowed on a
				      * source interface; on a source interface, of one allowed in from the
				      * fabric or hairpinned to the interface's tenant */
	DS_REASON_COUNT = 9,
};

/* Service kinds: the first dimension of the service index (kind * DS_SVC_SPAN + value). */
enum ds_svc_kind {
	DS_SVC_TCP = 0,    /* value = destination port */
	DS_SVC_UDP = 1,
	DS_SVC_SCTP = 2,
	DS_SVC_ICMP = 3,   /* value = type << 8 | code */
	DS_SVC_ICMPV6 = 4,
	DS_SVC_OTHER = 5,  /* value = IP protocol number */
	DS_SVC_KIND_COUNT = 6,
};

/* Per-CPU global counters: index into ds_counters. */
enum ds_counter {
	DS_CTR_RX_PACKETS = 0,
	DS_CTR_RX_BYTES = 1,
	DS_CTR_PASS_PACKETS = 2,
	DS_CTR_PASS_BYTES = 3,
	DS_CTR_DROP_PACKETS = 4,
	DS_CTR_DROP_BYTES = 5,
	DS_CTR_CACHE_HITS = 6,        /* session found with the current generation */
	DS_CTR_CACHE_MISSES = 7,      /* no session: classified */
	DS_CTR_CACHE_STALE = 8,       /* session from an older generation: re-classified */
	DS_CTR_PARSE_ERRORS = 9,
	DS_CTR_EVENTS = 10,           /* events written to the ring buffer */
	DS_CTR_EVENTS_LOST = 11,      /* events dropped because the ring buffer was full */
	DS_CTR_FRAGMENTS = 12,        /* fragments seen (first and later) */
	DS_CTR_FRAG_UNKNOWN = 13,
	DS_CTR_ICMP_RELATED = 14,
	DS_CTR_FAILSAFE = 15,
	DS_CTR_SESSION_FULL = 16,     /* session insert failed (verdict still applied) */
	DS_CTR_REPLIES = 17,          /* packets passed as replies of allowed sessions (fabric or hairpin) */
	DS_CTR_EVENTS_HELD = 18,      /* denied sessions whose event the budget held back (counted per rule too) */
	DS_CTR_STATELESS = 19,        /* new denied sessions past the budget: decided without a cache entry */
	DS_CTR_DIRTY_LOST = 20,       /* sessions marked for a summary epoch whose ds_dirty record found the ring full */
	DS_CTR_COUNT = 21,
};

/* Event kinds. */
enum ds_event_kind {
	DS_EVENT_SESSION_NEW = 1,     /* first packet of a session */
	DS_EVENT_SESSION_CHANGED = 2, /* re-classified under a new generation with a different outcome */
};

/* Settings flags (struct ds_settings.flags). */
enum ds_setting_flag {
	DS_SETTING_PASS_NON_IP = 1,   /* pass non-IP, non-ARP frames (e.g. LACP, LLDP) instead of dropping */
	DS_SETTING_TRACK_REPLIES = 2, /* some interface is a fabric: remember the expected reply of each allowed session */
	DS_SETTING_TENANT_NETS = 4,   /* ds_tenantnet_v2 is not empty: remember hairpin replies, check them on source interfaces */
	DS_SETTING_FAILSAFE = 8,      /* ds_failsafe_v2 is not empty: new sessions look their source up there first */
};

/* What an enforced interface faces (struct ds_iface.role). */
enum ds_iface_role {
	DS_ROLE_SOURCE = 0,  /* the source network: policy on every new session (the default) */
	DS_ROLE_FABRIC = 1,  /* towards the edge: replies of sessions allowed from a source pass, the rest meets policy */
};

/* Interface flags (struct ds_iface.flags). */
enum ds_iface_flag {
	DS_IFACE_L3 = 1,     /* no link-layer header: a frame starts at its IP header (WireGuard, TUN devices) */
};

/* Session flags (struct ds_session_value.flags). */
enum ds_session_flag {
	DS_SESSION_LOG = 1,           /* the deciding rule asked for audit events */
	DS_SESSION_REPLY_CHECK = 2,   /* denied on a source interface while replies were expected there (a
				       * fabric or tenant networks): it may become the reply of an allowed
				       * session, so a cached deny checks ds_replies before it applies */
};

/* Summary mark flags (struct ds_session_value.mark_flags). */
enum ds_mark_flag {
	DS_MARK_PREV_ADJACENT = 1,    /* prev_* is the base of epoch mark - 1: the session was marked in
				       * the epoch just before its last mark */
};

/* Address families as the datapath records them. */
enum ds_family {
	DS_FAMILY_IPV4 = 4,
	DS_FAMILY_IPV6 = 6,
};

/* The flow digest (ds_flow_digest in session.h): the seed plus the flow's twelve 32-bit words
 * times odd 64-bit multipliers, mod 2^64, and the multiplier that picks a ds_denies bucket from
 * the digest's high half (ds_deny_bucket). In 32-bit halves, so that they reach BTF and the
 * generated TypeScript: user space finds a denied flow's bucket with the same arithmetic
 * (src/engine/deny-buckets.ts). */
enum ds_digest {
	DS_DIGEST_SEED_LO = 0x7f4a7c15,
	DS_DIGEST_SEED_HI = 0x9e3779b9,
	DS_DIGEST_K0_LO = 0x7f4a7c15,
	DS_DIGEST_K0_HI = 0x9e3779b9,
	DS_DIGEST_K1_LO = 0x27d4eb4f,
	DS_DIGEST_K1_HI = 0xc2b2ae3d,
	DS_DIGEST_K2_LO = 0x9e3779f9,
	DS_DIGEST_K2_HI = 0x165667b1,
	DS_DIGEST_K3_LO = 0x6659fd93,
	DS_DIGEST_K3_HI = 0xd6e8feb8,
	DS_DIGEST_K4_LO = 0xed558ccd,
	DS_DIGEST_K4_HI = 0xff51afd7,
	DS_DIGEST_K5_LO = 0x1a85ec53,
	DS_DIGEST_K5_HI = 0xc4ceb9fe,
	DS_DIGEST_K6_LO = 0x133111eb,
	DS_DIGEST_K6_HI = 0x94d049bb,
	DS_DIGEST_K7_LO = 0x1ce4e5b9,
	DS_DIGEST_K7_HI = 0xbf58476d,
	DS_DIGEST_K8_LO = 0x4f6cdd1d,
	DS_DIGEST_K8_HI = 0x2545f491,
	DS_DIGEST_K9_LO = 0x1e98df25,
	DS_DIGEST_K9_HI = 0x9fb21c65,
	DS_DIGEST_K10_LO = 0xd192ed03,
	DS_DIGEST_K10_HI = 0xd1b54a32,
	DS_DIGEST_K11_LO = 0x108ef2d9,
	DS_DIGEST_K11_HI = 0xaef17502,
	DS_DIGEST_BUCKET_MULTIPLIER = 0x9e3779b1,
};

/* ds_abi value: the ABI version (DS_ABI_VERSION) of the engine that created the pins, written by
 * the controller when it creates them, then frozen. An engine adopts pins only of its own version. */
struct ds_abi {
	__u32 version;
	__u32 pad;
};
_Static_assert(sizeof(struct ds_abi) == 8, "ds_abi size");

/* ds_sessions key: one flow as it arrives on one interface (and VLAN). */
struct ds_session_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 ifindex;
	__u16 vlan_outer;   /* 0 when untagged */
	__u16 vlan_inner;
	__u16 sport;        /* tcp/udp/sctp ports; ICMP: echo identifier (else 0) */
	__u16 dport;        /* ICMP: type << 8 | code */
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};
_Static_assert(sizeof(struct ds_session_key) == 48, "ds_session_key size");

/* ds_flow_filter value: which session cache may hold a flow. A key hashes to one entry and a bit
 * position p (0..31): bit p of a bank says "maybe in ds_denies", bit 32 + p "maybe in ds_sessions";
 * a bit clear in both banks proves the flow is in neither cache (so a new flow is classified
 * without probing either). The datapath sets a session's bit in both banks when it caches the
 * session, and again when a cached session finds its bit missing from one; the agent clears the
 * banks in turn (Engine.ageFlowFilter), so a bit goes only from a session idle for two agings. */
struct ds_flow_filter_entry {
	__u64 bank[2];
};
_Static_assert(sizeof(struct ds_flow_filter_entry) == 16, "ds_flow_filter_entry size");

/* ds_sessions value: the cached decision and the session's traffic, written by the datapath.
 *
 * Summary marks: the first packet of a session in a summary epoch (ds_settings.summary_epoch)
 * other than `mark` marks it: the previous base moves to prev_*, the counters before this packet
 * become the base (a session never marked, mark 0, keeps base 0: it counts from its first
 * packet), mark becomes the epoch, and the key goes to ds_dirty. So the agent reads, for a
 * session marked in epoch E, its traffic in E: (packets, bytes) - base while mark == E, or
 * base - prev once it was marked again in epoch E + 1 (DS_MARK_PREV_ADJACENT). A new session starts
 * unmarked (mark 0): its second packet marks it. */
struct ds_session_value {
	__u64 first_seen;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 last_seen;
	__u64 packets;
	__u64 bytes;
	__u32 rule;         /* deciding rule index (0 = policy default) when reason is POLICY */
	__u32 generation;   /* policy generation that decided; 0 = none installed */
	__u8 action;        /* enum ds_action */
	__u8 reason;        /* enum ds_reason */
	__u8 flags;         /* enum ds_session_flag */
	__u8 mark_flags;    /* enum ds_mark_flag */
	__u32 mark;         /* the summary epoch of the last mark; 0 = never marked */
	__u64 base_packets; /* packets and bytes before the first packet of epoch `mark` */
	__u64 base_bytes;
	__u64 prev_packets; /* the base of the mark before (DS_MARK_PREV_ADJACENT: of epoch mark - 1) */
	__u64 prev_bytes;
};
_Static_assert(sizeof(struct ds_session_value) == 80, "ds_session_value size");

/* ds_denies entry: a denied session, its flow beside its value. ds_denies is an array of 2-way
 * buckets (entries 2b and 2b + 1 form bucket b), the bucket chosen by the flow's 64-bit digest
 * (ds_flow_digest in session.h; ds_deny_bucket): an array's lookup costs no hash of the key and no
 * call, where an LRU hash's cost a cached deny ~9 ns of its ~50 here. A lookup compares `key` with
 * the packet's flow, so two flows of one bucket never share a session; a new one takes an empty
 * way, else the way seen least recently (both denied: an allowed session is never here). A way
 * whose `key.family` is 0 is empty. Written by the datapath in an order that lets a reader on
 * another CPU tell a way being rewritten (ds_deny_store); the agent reads the flow from `key`, and
 * finds a marked session's bucket from the digest in its ds_dirty record. */
struct ds_deny_entry {
	struct ds_session_key key;
	struct ds_session_value value;
};
_Static_assert(sizeof(struct ds_deny_entry) == 128, "ds_deny_entry size");

/* ds_dirty record: a session marked in a summary epoch (pushed once per session and epoch in
 * which it had traffic, new sessions from their second packet on). Read by the agent at each
 * summary tick. */
struct ds_dirty {
	struct ds_session_key key;
	__u32 epoch;        /* the summary epoch it was marked in */
	__u32 pad;
	__u64 digest;       /* the flow's digest (ds_flow_digest): its ds_denies bucket */
};
_Static_assert(sizeof(struct ds_dirty) == 64, "ds_dirty size");

/* ds_ifaces value, indexed by ifindex: the interface's role and tenant (the source VPC it
 * serves, as tenantId() of src/policy/ir/tenants.ts names it; 0 = none). Rules scoped to tenants
 * apply by this tenant, and replies are matched within one tenant, so overlapping tenant ranges
 * stay apart. */
struct ds_iface {
	__u32 tenant;
	__u8 role;          /* enum ds_iface_role */
	__u8 flags;         /* enum ds_iface_flag */
	__u8 pad[2];
};
_Static_assert(sizeof(struct ds_iface) == 8, "ds_iface size");

/* ds_replies key: the reply expected for an allowed session (the forward tuple reversed; ICMP
 * echo: the reply type), on an interface of role `side` and tenant `tenant`: for a session allowed
 * on a source interface, a fabric interface of its tenant, or (hairpin) a source interface of the
 * tenant whose network holds the destination; for one allowed in on a fabric, a source interface
 * of the fabric's tenant. The side keeps them apart: a fabric's expected reply never passes on a
 * source interface, nor the reverse. */
struct ds_reply_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 tenant;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 side;          /* enum ds_iface_role of the interface the reply arrives on */
	__u8 pad[5];
};
_Static_assert(sizeof(struct ds_reply_key) == 48, "ds_reply_key size");

/* ds_frags key: one fragmented datagram. */
struct ds_frag_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 id;           /* IPv4 identification or IPv6 fragment identification */
	__u32 ifindex;
	__u16 vlan_outer;
	__u16 vlan_inner;
	__u8 proto;         /* identity protocol: IPv4's protocol field; IPv6's fragment header's next header */
	__u8 family;
	__u8 pad[2];
};
_Static_assert(sizeof(struct ds_frag_key) == 48, "ds_frag_key size");

/* ds_frags value: the first fragment's upper-layer protocol and ports, so later fragments join
 * its session. */
struct ds_frag_value {
	__u64 last_seen;
	__u16 sport;
	__u16 dport;
	__u8 proto;         /* the upper-layer protocol (IPv6: behind the fragmentable part's headers) */
	__u8 pad[3];
};
_Static_assert(sizeof(struct ds_frag_value) == 16, "ds_frag_value size");

/* Ring-buffer record: one per new (or changed) session. */
struct ds_event {
	__u64 time_ns;      /* bpf_ktime_get_ns() */
	__u64 seq;          /* per-CPU sequence number, starting at 1, counting lost events too */
	__u8 src[16];
	__u8 dst[16];
	__u32 ifindex;
	__u32 rule;
	__u32 generation;
	__u32 cpu;
	__u32 len;          /* packet length in bytes */
	__u16 vlan_outer;
	__u16 vlan_inner;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 action;
	__u8 reason;
	__u8 kind;          /* enum ds_event_kind */
	__u8 pad[3];
};
_Static_assert(sizeof(struct ds_event) == 88, "ds_event size");

/* A (packets, bytes) pair: per-reason statistics. */
struct ds_stat {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct ds_stat) == 16, "ds_stat size");

/* The admission budget of new denied sessions on one CPU, for one rule (or, in ds_cpu_stats, for
 * denies no counted rule decided: no policy, a rule past the counters' capacity): at most
 * ds_settings.deny_event_budget a second, and at most ds_settings.deny_event_cap a second for all
 * rules of the CPU together (ds_cpu_stats.deny_cap). An admitted session is cached in ds_denies
 * and, if its rule logs, emits its event. One past the budget is decided statelessly: no cache
 * entry, no event; if its rule logs it is counted in `held` (a later packet of its flow is
 * decided, and counted, again), so events plus held equal the logged denied sessions exactly. */
struct ds_budget {
	__u64 window_start;   /* bpf_ktime_get_coarse_ns() when the current second began */
	__u32 window_events;  /* sessions admitted in it */
	__u32 pad;
	__u64 held;           /* logged sessions held back, ever (monotonic) */
};
_Static_assert(sizeof(struct ds_budget) == 24, "ds_budget size");

/* The distinct sources of one rule's held-back sessions on one CPU over one flood interval
 * (ds_settings.flood_epoch): HyperLogLog registers, reset by the datapath when it first writes
 * them in a new interval. Register i holds the highest rank (leading zeros + 1) of the hashes of
 * the sources that fell in it (ds_sketch_add). The agent merges CPUs by maximum. */
struct ds_sketch {
	__u32 epoch;          /* the interval the registers belong to */
	__u32 pad;
	__u8 regs[DS_SKETCH_REGISTERS];
};
_Static_assert(sizeof(struct ds_sketch) == 40, "ds_sketch size");

/* ds_rule_stats value: one rule's packets and bytes on one CPU, its deny budget and the sketch
 * of its held-back sessions' sources. */
struct ds_rule_stat {
	__u64 packets;
	__u64 bytes;
	struct ds_budget budget;
	struct ds_sketch sketch;
};
_Static_assert(sizeof(struct ds_rule_stat) == 80, "ds_rule_stat size");

/* ds_flood_samples value (per CPU, written at a random index): the source of a held-back session,
 * so the agent can name a flood's top sources and prefixes. */
struct ds_flood_sample {
	__u8 src[16];
	__u32 rule;           /* deciding rule (counted = 1), as in ds_event */
	__u32 generation;
	__u32 epoch;          /* ds_settings.flood_epoch when it was written */
	__u8 family;          /* 0: the slot was never written */
	__u8 counted;         /* 1: `rule` is a counted rule of `generation`; 0: no counted rule */
	__u8 pad[2];
};
_Static_assert(sizeof(struct ds_flood_sample) == 32, "ds_flood_sample size");

/* ds_stats value (one per CPU): every global counter in one place, so the datapath pays one
 * per-CPU lookup per packet. by_reason is indexed reason * 2 + action. */
struct ds_cpu_stats {
	__u64 counters[DS_CTR_COUNT];
	__u64 event_seq;    /* last event sequence number used on this CPU */
	struct ds_stat by_reason[DS_REASON_COUNT * 2];
	struct ds_budget deny_budget; /* denies no counted rule decided (no policy, beyond capacity) */
	struct ds_budget deny_cap;    /* all new denied sessions of this CPU (ds_settings.deny_event_cap) */
	struct ds_sketch deny_sketch; /* sources of held-back denies no counted rule decided */
};
_Static_assert(sizeof(struct ds_cpu_stats) == 552, "ds_cpu_stats size");

/* The active policy's descriptor: the single inner map of ds_active, created per version,
 * written once and frozen before it is made active. */
struct ds_policy_meta {
	__u32 generation;   /* > 0, increases with every install */
	__u32 slot;         /* which slot of the table maps holds this version */
	__u32 rule_count;   /* rules 1..rule_count; index 0 is the default */
	__u32 stats_base;   /* ds_rule_stats index of CPU 0's rule 0 for this version */
	__u32 stats_stride; /* entries between one CPU's row and the next */
	__u32 stats_count;  /* rules 0..stats_count-1 are counted (capacity permitting) */
	__u8 default_action;/* enum ds_action when no rule matches (rule 0) */
	__u8 default_log;
	__u8 src4_bits;     /* ds_src4_long holds 1 << src4_bits slots */
	__u8 dst4_bits;     /* ds_dst4_long holds 1 << dst4_bits slots */
};
_Static_assert(sizeof(struct ds_policy_meta) == 28, "ds_policy_meta size");

/* ds_verdict value: the first matching rule and what it does. */
struct ds_verdict_value {
	__u32 rule;         /* rule index, 1..rule_count */
	__u8 action;        /* enum ds_action */
	__u8 log;           /* emit session events */
	__u8 pad[2];
};
_Static_assert(sizeof(struct ds_verdict_value) == 8, "ds_verdict_value size");

/* How much of a source class's own row of the verdict table its address entry carries. */
enum ds_row_kind {
	DS_ROW_NONE = 0,    /* no own entries: only the wildcard row can match */
	DS_ROW_ONE = 1,     /* exactly one, carried inline: no verdict lookup */
	DS_ROW_MANY = 2,    /* look (class, target) up in ds_verdict */
};

/* What an address maps to, in every address table: its class and, for source addresses, a
 * summary of the class's verdict row — most source groups are used by one rule, and then a new
 * session needs no verdict lookup at all. Destination entries leave the row NONE. */
struct ds_addr_class {
	__u32 cls;
	__u32 row_target;                    /* DS_ROW_ONE: the one entry's target class */
	struct ds_verdict_value row_verdict; /* DS_ROW_ONE: the one entry's verdict */
	__u8 row;                            /* enum ds_row_kind */
	__u8 pad[3];
};
_Static_assert(sizeof(struct ds_addr_class) == 20, "ds_addr_class size");

/* IPv4 address classes, part 1 (ds_src4_top / ds_dst4_top, indexed by the top 16 bits): the class
 * of the longest prefix of length <= 16 covering this /16 (cls 0: none), and which longer lengths
 * occur inside it (bit i = length 17 + i), so a lookup probes only lengths that exist. */
struct ds_v4_top {
	struct ds_addr_class c;
	__u32 lengths;
};
_Static_assert(sizeof(struct ds_v4_top) == 24, "ds_v4_top size");

/* IPv4 address classes, part 2 (ds_src4_long / ds_dst4_long): an open-addressing table in an
 * array of 1 << bits slots. The prefix (address in host order, host bits zero) of length 17..32
 * lives in the first free slot from ds_v4_slot_hash(prefix, length), at most DS_V4_MAX_PROBES
 * slots on; len 0 marks an empty slot. One slot is one cache line's half: a probe costs one
 * memory access, where a BPF hash costs two (bucket, then element). */
struct ds_v4_slot {
	__u32 prefix;
	__u32 len;
	struct ds_addr_class c;
	__u32 pad;
};
_Static_assert(sizeof(struct ds_v4_slot) == 32, "ds_v4_slot size");

/* The home slot of (prefix, len) in a table of 1 << bits slots. */
static inline __u32 ds_v4_slot_hash(__u32 prefix, __u32 len, __u32 bits)
{
	__u32 h = (prefix ^ (len * (__u32)DS_V4_HASH_MUL1)) * (__u32)DS_V4_HASH_MUL2;
	return bits ? h >> (32 - bits) : 0;
}

/* IPv6 address classes (ds_src6 / ds_dst6, LPM tries) → struct ds_addr_class. Address bytes in
 * network order. */
struct ds_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};
_Static_assert(sizeof(struct ds_lpm6_key) == 20, "ds_lpm6_key size");

/* ds_target key: (destination class, service class) → struct ds_target_value. Usually small:
 * what is being reached, not who reaches it. */
struct ds_target_key {
	__u32 dst_class;
	__u32 svc_class;
};
_Static_assert(sizeof(struct ds_target_key) == 8, "ds_target_key size");

/* ds_target value: the target class (the rules matching destination and service that apply to
 * every tenant; 0 = none), and, when some of the rules matching both are scoped to tenants,
 * `scoped` != 0: the packet's tenant class (ds_tenant) then refines the target through
 * ds_tenant_tgt. A policy without tenant-scoped rules has scoped 0 everywhere: no tenant lookup.
 * `source_free` = 1 when no source class has an entry of its own for this target (and scoped is
 * 0): every source then meets the wildcard row's decision, carried here as `any` (rule 0: the
 * policy default), so a new session skips the source lookup and the verdict lookup (a flood of
 * spoofed sources at a port denied to everyone pays neither). */
struct ds_target_value {
	__u32 target;
	__u32 scoped;
	struct ds_verdict_value any;
	__u8 source_free;
	__u8 pad[3];
};
_Static_assert(sizeof(struct ds_target_value) == 20, "ds_target_value size");

/* ds_memo value (per CPU, one entry): the decision of the last new session that the classifier made
 * without its source (no source class was read: a target every source meets alike, or none), under
 * what it did read. A flood of spoofed sources at one destination and port meets it on every packet:
 * one read instead of the classifier's tables. Valid only under `generation`, for the same
 * destination address, protocol, port and tenant; never for a failsafe source. Written and read by
 * the datapath only. */
struct ds_memo {
	__u8 dst[16];
	__u32 generation;     /* 0: empty */
	__u32 tenant;         /* ds_iface.tenant of the ingress interface */
	__u16 dport;          /* as in ds_session_key */
	__u8 proto;
	__u8 family;
	struct ds_verdict_value decision; /* rule 0: the policy default */
};
_Static_assert(sizeof(struct ds_memo) == 36, "ds_memo size");

/* ds_tenant_tgt key: (scoped id of a ds_target_value, tenant class) → target class (__u32): the
 * rules of that destination and service that apply to the tenant. Present only where a rule
 * scoped to the tenant is among them; a miss means the target of the ds_target_value.
 * ds_tenant maps a tenant id (ds_iface.tenant) → tenant class (__u32); a tenant no rule names
 * has no entry (class 0: only the rules for every tenant apply). */
struct ds_tenant_target_key {
	__u32 scoped;
	__u32 tenant_class;
};
_Static_assert(sizeof(struct ds_tenant_target_key) == 8, "ds_tenant_target_key size");

/* ds_verdict key: (source class, target class) → struct ds_verdict_value. Source class 0 is the
 * wildcard row (rules whose source is "any"), consulted when the source's own row has no entry. */
struct ds_verdict_key {
	__u32 src_class;
	__u32 target_class;
};
_Static_assert(sizeof(struct ds_verdict_key) == 8, "ds_verdict_key size");

/* An IPv4 or IPv6 prefix in one LPM trie, the family first so that families never mix: an IPv4
 * prefix never matches an IPv6 packet from an IPv4-mapped address. prefixlen counts the family
 * byte and the address (16 bytes, IPv4 mapped): 8 + 96 + length for IPv4, 8 + length for IPv6.
 * The key of ds_failsafe_v2 and ds_tenantnet_v2. */
struct ds_prefix_key {
	__u32 prefixlen;
	__u8 family;        /* enum ds_family */
	__u8 addr[16];
	__u8 pad[3];
};
_Static_assert(sizeof(struct ds_prefix_key) == 24, "ds_prefix_key size");

/* ds_failsafe_v2 value: management prefixes that always pass. */
struct ds_failsafe_value {
	__u8 proto;         /* 0 = any protocol */
	__u8 pad;
	__u16 port_lo;      /* destination ports; 0..0 = any */
	__u16 port_hi;
	__u8 pad2[2];
};
_Static_assert(sizeof(struct ds_failsafe_value) == 8, "ds_failsafe_value size");

/* ds_settings value: runtime settings written by the controller. */
struct ds_settings {
	__u32 flags;              /* enum ds_setting_flag */
	__u32 generation_hwm;     /* highest generation ever published; controller-owned, datapath ignores */
	__u32 deny_event_budget;  /* new denied sessions admitted a second per CPU per rule; 0 = no limit */
	__u32 deny_event_cap;     /* new denied sessions admitted a second per CPU, all rules; 0 = no limit */
	__u32 flood_epoch;        /* the agent's flood interval (ds_sketch, ds_flood_sample); it moves it on */
	__u32 summary_epoch;      /* the agent's summary epoch (bumped every summary tick); 0 = no summaries: nothing marked */
	__u32 deny_bucket_shift;  /* 33 - log2(ds_denies' entries), written by the loader: ds_deny_bucket's shift */
	__u32 pad;
};
_Static_assert(sizeof(struct ds_settings) == 32, "ds_settings size");

/* Facts about an explained packet that ds_xdp_explain reports but does not decide, because they
 * depend on session state it does not read (struct ds_explain_result.flags). */
enum ds_explain_flag {
	DS_EXPLAIN_ICMP_ERROR = 1,  /* an ICMP error with a parsed quote: ds_xdp_ingress passes it
				     * (icmp-related) when the quoted flow is a session it allowed */
	DS_EXPLAIN_FRAG_FIRST = 2,  /* a first fragment: ds_xdp_ingress also records its ports */
	DS_EXPLAIN_FRAG_LATER = 4,  /* a later fragment: it follows its first fragment's session;
				     * reported as deny/frag-unknown (what applies when none was seen) */
};

/* What ds_xdp_explain writes at the start of the packet (moved 64 bytes into the headroom)
 * before it returns XDP_PASS: the verdict the active policy tables give this packet as a new
 * session. Read from BPF_PROG_TEST_RUN's data_out by Engine.explain; never seen on a wire. */
struct ds_explain_result {
	__u32 rule;         /* deciding rule index (0 = policy default) when reason is POLICY */
	__u32 generation;   /* active policy generation; 0 = none installed */
	__u8 action;        /* enum ds_action */
	__u8 reason;        /* enum ds_reason */
	__u8 log;           /* the decision asks for an audit event */
	__u8 flags;         /* enum ds_explain_flag */
	struct ds_session_key key; /* the flow as parsed (family 0 when not IP) */
	__u32 tenant;       /* the tenant the packet was explained for (from ds_explain_input) */
};
_Static_assert(sizeof(struct ds_explain_result) == 64, "ds_explain_result size");

/* What ds_xdp_explain reads in front of the frame (and strips before it parses): who sent the
 * packet, which ds_xdp_ingress learns from the ingress interface (ds_ifaces) but a test run
 * cannot name without a real interface of that tenant. Written by Engine.explain. */
struct ds_explain_input {
	__u32 tenant;       /* tenant id as in ds_iface.tenant; 0 = none */
	__u32 pad;
};
_Static_assert(sizeof(struct ds_explain_input) == 8, "ds_explain_input size");

#endif /* DOORSTEP_ABI_H */
