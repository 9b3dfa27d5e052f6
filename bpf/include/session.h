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

#define DS_EEXIST 17 /* what bpf_map_update_elem(BPF_NOEXIST) returns, negated, for a key present */

static __always_inline __u32 ds_setting_flags(void)
{
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);
	return cfg ? cfg->flags : 0;
}

static __always_inline __u32 ds_generation(const struct ds_policy_meta *meta)
{
	return meta ? meta->generation : 0;
}

/* Room left in budget `b`'s current one-second window for `limit` sessions (a window that has
 * ended is started afresh). Plain writes: `b` belongs to this CPU. */
static __always_inline int ds_window_room(struct ds_budget *b, __u64 now, __u32 limit)
{
	if (now - b->window_start >= 1000000000ULL) {
		b->window_start = now;
		b->window_events = 0;
	}
	return b->window_events < limit;
}

/* The multilinear constants of ds_hash_words: odd, 64-bit (enum ds_digest, in halves). */
#define DS_U64(hi, lo) ((__u64)(hi) << 32 | (__u32)(lo))
#define DS_DIGEST_K(i) DS_U64(DS_DIGEST_K##i##_HI, DS_DIGEST_K##i##_LO)
#define DS_HASH_K(i)                                                                                   \
	((i) == 0 ? DS_DIGEST_K(0) : (i) == 1 ? DS_DIGEST_K(1) : (i) == 2 ? DS_DIGEST_K(2) : (i) == 3 ? DS_DIGEST_K(3) : \
	 (i) == 4 ? DS_DIGEST_K(4) : (i) == 5 ? DS_DIGEST_K(5) : (i) == 6 ? DS_DIGEST_K(6) : (i) == 7 ? DS_DIGEST_K(7) : \
	 (i) == 8 ? DS_DIGEST_K(8) : (i) == 9 ? DS_DIGEST_K(9) : (i) == 10 ? DS_DIGEST_K(10) : DS_DIGEST_K(11))

/* A hash of `n` (at most 12) 32-bit words: multilinear, a sum of their products with odd 64-bit
 * constants, whose high 32 bits depend on every input bit. The products do not depend on each
 * other, so they run in parallel, unlike a chain of mixing rounds. */
static __always_inline __u64 ds_hash_words64(const __u32 *w, int n, __u64 seed)
{
	__u64 h = seed;

#pragma unroll
	for (int i = 0; i < 12; i++)
		if (i < n)
			h += (__u64)w[i] * DS_HASH_K(i);
	return h;
}

static __always_inline __u32 ds_hash_words(const __u32 *w, int n, __u64 seed)
{
	return (__u32)(ds_hash_words64(w, n, seed) >> 32);
}

/* Add a source address to a HyperLogLog sketch of interval `epoch` (reset first if it holds an
 * older interval): the hash's low 5 bits pick the register, the rank is the number of leading
 * zeros of the other 27 bits plus one (28 when they are all zero); a register keeps its highest. */
static __always_inline void ds_sketch_add(struct ds_sketch *sk, const __u8 *src, __u32 epoch)
{
	__u32 h = ds_hash_words((const __u32 *)src, 4, 0x5851f42d4c957f2dULL);
	__u32 x = h & ~(__u32)(DS_SKETCH_REGISTERS - 1);
	__u8 rank = 1;

	if (sk->epoch != epoch) {
		__builtin_memset(sk->regs, 0, sizeof(sk->regs));
		sk->epoch = epoch;
	}
	if (!x) {
		rank = 28;
	} else {
		if (!(x & 0xFFFF0000u)) { rank += 16; x <<= 16; }
		if (!(x & 0xFF000000u)) { rank += 8; x <<= 8; }
		if (!(x & 0xF0000000u)) { rank += 4; x <<= 4; }
		if (!(x & 0xC0000000u)) { rank += 2; x <<= 2; }
		if (!(x & 0x80000000u)) rank += 1;
	}
	__u32 i = h & (DS_SKETCH_REGISTERS - 1);
	if (sk->regs[i] < rank)
		sk->regs[i] = rank;
}

/* Remember the source of a held-back session in a random slot of this CPU's sample (called for
 * one held-back session in DS_FLOOD_SAMPLE_EVERY of each rule). */
static __always_inline void ds_flood_sample_put(const struct ds_session_key *k, __u32 rule, __u32 generation,
						__u8 counted, __u32 epoch)
{
	__u32 slot = bpf_get_prandom_u32() & (DS_FLOOD_SAMPLES - 1);
	struct ds_flood_sample *fs = bpf_map_lookup_elem(&ds_flood_samples, &slot);

	if (!fs)
		return;
	__builtin_memcpy(fs->src, k->src, 16);
	fs->rule = rule;
	fs->generation = generation;
	fs->epoch = epoch;
	fs->family = k->family;
	fs->counted = counted;
}

/* A new denied session (decision `d` under `generation`), under the admission budget of its rule
 * on this CPU (or of this CPU's denies without a counted rule) and this CPU's cap for all rules: 1
 * to admit it (cache it in ds_denies and, if it logs, emit its event); 0 to decide it
 * statelessly, without a cache entry or an event, counting it as held back (with its source
 * sketched and sampled) when it logs. Asked before the session's value is built: a held-back one
 * never needs it. Not inlined: inlined, its registers spilled into ds_xdp_ingress's frame, past the
 * verifier's 512-byte combined stack. */
static __noinline int ds_deny_admit(struct ds_cpu_stats *st, const struct ds_policy_meta *meta,
				    const struct ds_session_key *k, const struct ds_decision *d, __u64 now)
{
	__u32 generation = ds_generation(meta);
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);

	if (!cfg || !st || !(cfg->deny_event_budget | cfg->deny_event_cap))
		return 1;
	struct ds_budget *b = &st->deny_budget;
	struct ds_sketch *sk = &st->deny_sketch;
	__u8 counted = 0;
	if (meta && d->reason == DS_REASON_POLICY) {
		struct ds_rule_stat *row = ds_rule_row(meta, d->rule);
		if (row) {
			b = &row->budget;
			sk = &row->sketch;
			counted = 1;
		}
	}
	if ((!cfg->deny_event_budget || ds_window_room(b, now, cfg->deny_event_budget)) &&
	    (!cfg->deny_event_cap || ds_window_room(&st->deny_cap, now, cfg->deny_event_cap))) {
		b->window_events++;
		st->deny_cap.window_events++;
		return 1;
	}
	ds_count(st, DS_CTR_STATELESS);
	if (d->log) {
		b->held++;
		ds_count(st, DS_CTR_EVENTS_HELD);
		ds_sketch_add(sk, k->src, cfg->flood_epoch);
		if (!(b->held & (DS_FLOOD_SAMPLE_EVERY - 1)))
			ds_flood_sample_put(k, d->rule, generation, counted, cfg->flood_epoch);
	}
	return 0;
}

/* The flow's digest: in its high half the hash that places it in ds_flow_filter (entry
 * ds_flow_index(h), bit position h & 31) and its ds_denies bucket (ds_deny_bucket). Not a secret:
 * flows of one bucket are told apart by the flow kept in each way (ds_deny_lookup). */
static __always_inline __u64 ds_flow_digest(const struct ds_session_key *k)
{
	return ds_hash_words64((const __u32 *)k, sizeof(*k) / 4, DS_U64(DS_DIGEST_SEED_HI, DS_DIGEST_SEED_LO));
}

/* The part of a flow's digest that places it in ds_flow_filter. */
static __always_inline __u32 ds_flow_hash_of(__u64 digest)
{
	return (__u32)(digest >> 32);
}

/* The first way of the flow's ds_denies bucket: the top bits of its filter hash times an odd
 * constant (Fibonacci hashing), so flows that share a filter entry spread over the buckets.
 * `shift` is ds_settings.deny_bucket_shift (33 - log2 of the entries, so 2^(32 - shift) buckets);
 * user space computes the same (src/engine/deny-buckets.ts). */
static __always_inline __u32 ds_deny_bucket(__u64 digest, __u32 shift)
{
	return ((ds_flow_hash_of(digest) * (__u32)DS_DIGEST_BUCKET_MULTIPLIER) >> (shift & 31)) << 1;
}

static __always_inline __u32 ds_deny_shift(void)
{
	__u32 zero = 0;
	struct ds_settings *cfg = bpf_map_lookup_elem(&ds_settings, &zero);
	return cfg ? cfg->deny_bucket_shift : 31;
}

/* The word of a flow that holds its family (with its ports and protocol): 0 in an empty way. */
#define DS_KEY_TAG_WORD 5
_Static_assert(__builtin_offsetof(struct ds_session_key, family) / 8 == DS_KEY_TAG_WORD, "the family's word");

/* Are two flows the same? Six 8-byte compares (the keys' padding is always zero), the word with
 * the family first: a reader that snapshotted a way's decision before this compare took a
 * decision of flow `b` (ds_deny_store clears that word first and writes it last). */
static __always_inline int ds_key_equal(const struct ds_session_key *a, const struct ds_session_key *b)
{
	const volatile __u64 *x = (const volatile __u64 *)a;
	const __u64 *y = (const __u64 *)b;

	if (x[DS_KEY_TAG_WORD] != y[DS_KEY_TAG_WORD])
		return 0;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* Way `i` of ds_denies when it holds flow `k`, else NULL. */
static __always_inline struct ds_deny_entry *ds_deny_way(__u32 i, const struct ds_session_key *k)
{
	struct ds_deny_entry *e = bpf_map_lookup_elem(&ds_denies, &i);

	return e && ds_key_equal(&e->key, k) ? e : NULL;
}

/* The way of ds_denies that holds flow `k`, whose digest is `digest`, or NULL. */
static __always_inline struct ds_deny_entry *ds_deny_find(const struct ds_session_key *k, __u64 digest)
{
	__u32 i = ds_deny_bucket(digest, ds_deny_shift());
	struct ds_deny_entry *e = ds_deny_way(i, k);

	return e ? e : ds_deny_way(i + 1, k);
}

/* The denied session of flow `k`, or NULL. Its fields are read after the compare: for traffic
 * counters and adopting it, where a way rewritten meanwhile by another CPU costs a session's
 * count a packet, never a verdict or a rule's count (ds_deny_hit). */
static __always_inline struct ds_session_value *ds_deny_lookup(const struct ds_session_key *k, __u64 digest)
{
	struct ds_deny_entry *e = ds_deny_find(k, digest);

	return e ? &e->value : NULL;
}

/* A cached deny's decision for this packet: way `i`'s generation, flags, rule, action and reason
 * read first, then its flow compared with `k`: when it is `k`'s, `*snap` holds `k`'s decision even
 * if another CPU rewrote the way meanwhile (ds_deny_store, x86's loads and stores in order), and
 * the rule counted for the packet is always its own. Returns the way's value, or NULL. */
struct ds_deny_snap {
	__u32 rule;
	__u32 generation;
	__u8 action;
	__u8 reason;
	__u8 flags;
};
static __always_inline struct ds_session_value *ds_deny_hit_way(__u32 i, const struct ds_session_key *k, struct ds_deny_snap *snap)
{
	struct ds_deny_entry *e = bpf_map_lookup_elem(&ds_denies, &i);

	if (!e)
		return NULL;
	const volatile struct ds_session_value *v = &e->value;
	snap->rule = v->rule;
	snap->generation = v->generation;
	snap->action = v->action;
	snap->reason = v->reason;
	snap->flags = v->flags;
	return ds_key_equal(&e->key, k) ? &e->value : NULL;
}

static __always_inline struct ds_session_value *ds_deny_hit(const struct ds_session_key *k, __u64 digest, struct ds_deny_snap *snap)
{
	__u32 i = ds_deny_bucket(digest, ds_deny_shift());
	struct ds_session_value *s = ds_deny_hit_way(i, k, snap);

	return s ? s : ds_deny_hit_way(i + 1, k, snap);
}

/* Write session `n` into way `w`: the word of the flow that holds its family cleared first and
 * written last (compiler barriers; x86 makes stores visible in program order), so a reader on
 * another CPU that compares the flow after reading the decision never takes one flow's decision
 * for another's. */
static __always_inline void ds_deny_store(struct ds_deny_entry *w, const struct ds_deny_entry *n)
{
	volatile __u64 *tag = (volatile __u64 *)&w->key + DS_KEY_TAG_WORD;

	*tag = 0;
	asm volatile("" ::: "memory");
	__builtin_memcpy(&w->value, &n->value, sizeof(n->value));
	__builtin_memcpy(&w->key, &n->key, DS_KEY_TAG_WORD * 8);
	asm volatile("" ::: "memory");
	*tag = ((const __u64 *)&n->key)[DS_KEY_TAG_WORD];
}

/* Cache denied session `n` (digest `digest`) in its bucket: in the way that holds its flow
 * (-EEXIST instead under BPF_NOEXIST), else an empty way, else the way seen least recently. Not
 * inlined: two ways' pointers live across it. */
static __noinline long ds_deny_put(struct ds_deny_entry *n, __u64 digest, __u64 flags)
{
	__u32 i = ds_deny_bucket(digest, ds_deny_shift());
	struct ds_deny_entry *a = bpf_map_lookup_elem(&ds_denies, &i);
	i++;
	struct ds_deny_entry *b = bpf_map_lookup_elem(&ds_denies, &i);
	struct ds_deny_entry *w;

	if (!a || !b || !n)
		return -2; /* -ENOENT */
	int held = 1;

	if (ds_key_equal(&a->key, &n->key)) {
		w = a;
	} else if (ds_key_equal(&b->key, &n->key)) {
		w = b;
	} else {
		held = 0;
		w = !a->key.family ? a : !b->key.family ? b : a->value.last_seen <= b->value.last_seen ? a : b;
	}
	if (held && flags == BPF_NOEXIST)
		return -DS_EEXIST;
	ds_deny_store(w, n);
	return 0;
}

/* Empty the way of ds_denies that holds flow `k`: -ENOENT when none does. */
static __always_inline long ds_deny_delete(const struct ds_session_key *k, __u64 digest)
{
	struct ds_deny_entry *e = ds_deny_find(k, digest);

	if (!e)
		return -2; /* -ENOENT */
	*((volatile __u64 *)&e->key + DS_KEY_TAG_WORD) = 0;
	return 0;
}

static __always_inline __u32 ds_flow_index(__u32 h)
{
	return (h >> 5) & (DS_FLOW_FILTER_ENTRIES - 1);
}

/* The flow's bit in a bank of its entry: its deny bit, or (allowed) its allow bit. */
static __always_inline __u64 ds_flow_bit(__u32 h, int allowed)
{
	return (1ULL << (h & 31)) << (allowed ? 32 : 0);
}

/* What ds_flow_filter says of the flow at entry i, bit position p: its deny bit in bank 0 and 1
 * (DS_FLOW_DENY0, DS_FLOW_DENY1), its allow bit (DS_FLOW_ALLOW0, DS_FLOW_ALLOW1); 0 without a read
 * of the entry when the entry's coarse bit is clear. Four bits, not the entry: a pointer kept
 * live across ds_session_decide took ds_xdp_ingress's stack past the verifier's 512 bytes. */
#define DS_FLOW_DENY0 1
#define DS_FLOW_DENY1 2
#define DS_FLOW_ALLOW0 4
#define DS_FLOW_ALLOW1 8
static __always_inline __u32 ds_flow_probe(__u32 i, __u32 p)
{
	__u32 key = (i & (DS_FLOW_FILTER_ENTRIES - 1)) >> 6;
	__u64 *cw = bpf_map_lookup_elem(&ds_flow_coarse, &key);

	if (!cw || !(*cw & (1ULL << (i & 63))))
		return 0;
	key = i;
	struct ds_flow_filter_entry *fe = bpf_map_lookup_elem(&ds_flow_filter, &key);
	if (!fe)
		return 0;
	__u64 b0 = fe->bank[0] >> (p & 31), b1 = fe->bank[1] >> (p & 31);
	return (__u32)((b0 & 1) | (b1 & 1) << 1 | ((b0 >> 32) & 1) << 2 | ((b1 >> 32) & 1) << 3);
}

/* Set `bit` in both banks of entry i where it is missing, and the entry's coarse bit (noinline:
 * its map keys live in a frame of its own; it runs on inserts, and on a hit that lacks a bank). Plain
 * writes, not atomics: a bit lost to another CPU's write of the same word (or to the agent's
 * rewrite of the coarse level) costs its flow one classification (the insert then finds the
 * entry, ds_session_recover), never a verdict, and it is set again on the next packet. */
static __noinline void ds_flow_filter_mark(__u32 i, __u64 bit)
{
	__u32 key = i & (DS_FLOW_FILTER_ENTRIES - 1);
	struct ds_flow_filter_entry *fe = bpf_map_lookup_elem(&ds_flow_filter, &key);

	if (!fe)
		return;
	if (!(fe->bank[0] & bit))
		fe->bank[0] |= bit;
	if (!(fe->bank[1] & bit))
		fe->bank[1] |= bit;
	key = (i & (DS_FLOW_FILTER_ENTRIES - 1)) >> 6;
	__u64 *cw = bpf_map_lookup_elem(&ds_flow_coarse, &key);
	__u64 cbit = 1ULL << (i & 63);
	if (cw && !(*cw & cbit))
		*cw |= cbit;
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
 * and so denied traffic never takes a place in ds_frags from an allowed datagram. Not inlined (the
 * caller's stack budget is spent); ds_frag_record calls it for first fragments only. */
static __noinline void ds_frag_remember(const struct ds_packet *pkt, __u64 now)
{
	struct ds_frag_key fk = {};
	struct ds_frag_value fv = {
		.last_seen = now, .sport = pkt->key.sport, .dport = pkt->key.dport, .proto = pkt->key.proto,
	};

	ds_frag_key_of(pkt, &fk);
	bpf_map_update_elem(&ds_frags, &fk, &fv, BPF_ANY);
}

static __always_inline void ds_frag_record(const struct ds_packet *pkt, __u64 now)
{
	if (pkt->frag == DS_FRAG_FIRST)
		ds_frag_remember(pkt, now);
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
 * answered the same way). From a fabric: on its tenant's source interfaces. Not inlined (the
 * caller's stack budget is spent); called once per allowed new session. */
static __noinline void ds_replies_remember(const struct ds_session_key *f, __u32 tenant, __u32 flags, int source_side)
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
	rec->digest = ds_flow_digest(k);
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

/* Is replacing cached session `e` by `nv` (a re-classification) audited: did either decision ask
 * for events, and did the outcome change? The same outcome under a new version is not. */
static __always_inline int ds_change_audited(const struct ds_session_value *e, const struct ds_session_value *nv)
{
	return ((nv->flags | e->flags) & DS_SESSION_LOG) &&
	       (e->action != nv->action || e->rule != nv->rule || e->reason != nv->reason);
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

/* This CPU's scratch session, its flow beside its value (ds_scratch). */
static __always_inline struct ds_deny_entry *ds_entry_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ds_scratch, &zero);
}

/* ds_memo: this CPU's last source-free decision (struct ds_memo), or NULL. */
static __always_inline struct ds_memo *ds_memo_this_cpu(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&ds_memo, &zero);
}

/* Does `m` hold the decision for `k` from `tenant` under `generation`? Everything the classifier
 * reads before the source: destination address, protocol and port (the service), family, tenant,
 * and the version. */
static __always_inline int ds_memo_holds(const struct ds_memo *m, const struct ds_session_key *k, __u32 tenant,
					 __u32 generation)
{
	const __u64 *a = (const __u64 *)m->dst, *b = (const __u64 *)k->dst;

	return m->generation == generation && m->tenant == tenant && m->dport == k->dport && m->proto == k->proto &&
	       m->family == k->family && a[0] == b[0] && a[1] == b[1];
}

/* Decide a new session from `tenant` (ds_memo's decision, else the classifier's), as a global
 * function of engine.bpf.c, verified once on its own. Returns 0, or -1 without a flow or a
 * decision to fill. */
__noinline int ds_decide_flow(const struct ds_policy_meta *meta, const struct ds_session_key *k, __u32 tenant,
			      __u32 flags, struct ds_decision *d);

static __always_inline void ds_reply_decision(struct ds_decision *out)
{
	out->action = DS_ACTION_ALLOW;
	out->reason = DS_REASON_REPLY;
	out->rule = 0;
}

/* The session caches by verdict: ds_sessions by flow, ds_denies by the flow's `digest`. Each call
 * names its map, never a pointer chosen at run time: the verifier then inlines a lookup or calls
 * the map's own update directly, where a chosen pointer would cost an indirect call each (a
 * retpoline here). */
static __always_inline struct ds_session_value *ds_cache_lookup(int allowed, const struct ds_session_key *k, __u64 digest)
{
	if (allowed)
		return bpf_map_lookup_elem(&ds_sessions, k);
	return ds_deny_lookup(k, digest);
}

/* Cache session `e` (its flow and value) by its verdict's map. */
static __always_inline long ds_cache_update(int allowed, struct ds_deny_entry *e, __u64 digest, __u64 flags)
{
	if (allowed)
		return bpf_map_update_elem(&ds_sessions, &e->key, &e->value, flags);
	return ds_deny_put(e, digest, flags);
}

/* Remove flow `k`'s session from a cache. */
static __always_inline long ds_cache_delete(int allowed, const struct ds_session_key *k, __u64 digest)
{
	if (allowed)
		return bpf_map_delete_elem(&ds_sessions, k);
	return ds_deny_delete(k, digest);
}

/* A session new to the filter that is about to be cached in one cache may still have an entry in
 * the other (its bits aged away while it was idle, and a later version changed its verdict): that
 * entry is moved, as a re-classified session's: `nv` carries its traffic on, and it leaves the
 * other cache. Returns -1 when there was none, 1 when the change is to be audited, 2 when not.
 * Not inlined (the caller's stack budget is spent); called once per cached new session. */
static __noinline int ds_session_adopt(struct ds_cpu_stats *st, struct ds_deny_entry *n, __u64 digest, __u64 now,
					__u64 len)
{
	const struct ds_session_key *k = &n->key;
	struct ds_session_value *nv = &n->value;
	int other_allowed = nv->action != DS_ACTION_ALLOW;
	struct ds_session_value *e = ds_cache_lookup(other_allowed, k, digest);

	if (!e)
		return -1;
	int audit = ds_change_audited(e, nv);
	ds_session_carry(st, nv, e, k, now, len);
	ds_cache_delete(other_allowed, k, digest);
	return audit ? 1 : 2;
}

/* A new session's insert found its key cached after all (its filter bit aged away while it was
 * idle): the entry carries on. When it holds the same decision (`nv`'s generation, action, rule
 * and reason), it is touched as on a cache hit: returns 0. Otherwise (an older version decided
 * it) it is replaced by `nv` with its traffic carried over, as a re-classified session: returns 1
 * when the change is to be audited, 2 when not. 3 when the entry was evicted meanwhile and `nv`
 * is cached as the new session it is. A negative error if nothing could be written.
 * Not inlined: the verifier's stack budget for the caller is spent. */
static __noinline long ds_session_recover(struct ds_cpu_stats *st, struct ds_deny_entry *n, __u64 digest, __u64 now,
					  __u64 len)
{
	const struct ds_session_key *k = &n->key;
	struct ds_session_value *nv = &n->value;
	int allowed = nv->action == DS_ACTION_ALLOW;
	struct ds_session_value *e = ds_cache_lookup(allowed, k, digest);

	/* evicted since, or (ds_denies) the digest's entry holds another flow: cache `nv` after all,
	 * as the new session it is (replacing that other flow's, denied too) */
	if (!e) {
		long err = ds_cache_update(allowed, n, digest, BPF_ANY);
		return err ? err : 3;
	}
	if (e->generation == nv->generation && e->action == nv->action && e->rule == nv->rule && e->reason == nv->reason) {
		ds_session_touch(st, e, k, now, len);
		return 0;
	}
	int audit = ds_change_audited(e, nv);
	ds_session_carry(st, nv, e, k, now, len);
	long err = ds_cache_update(allowed, n, digest, BPF_ANY);
	return err ? err : audit ? 1 : 2;
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
	/* The filter says which cache to probe: its deny bit, ds_denies (first); its allow bit,
	 * ds_sessions; neither, no probe at all: a new flow, classified at once (a flood of spoofed
	 * sources pays no lookup in a large hash). A cached flow pays one probe, but for another
	 * key's bit. */
	__u64 digest = ds_flow_digest(k);
	__u32 h = ds_flow_hash_of(digest);
	__u32 fi = ds_flow_index(h);
	__u32 seen = ds_flow_probe(fi, h);
	struct ds_session_value *s = NULL;
	struct ds_deny_snap snap = {};
	int was_denied = 0;
	if (seen & (DS_FLOW_DENY0 | DS_FLOW_DENY1)) {
		s = ds_deny_hit(k, digest, &snap);
		was_denied = s != NULL;
	}
	if (!s && (seen & (DS_FLOW_ALLOW0 | DS_FLOW_ALLOW1))) {
		s = bpf_map_lookup_elem(&ds_sessions, k);
		if (s) {
			snap.rule = s->rule;
			snap.generation = s->generation;
			snap.action = s->action;
			snap.reason = s->reason;
			snap.flags = s->flags;
		}
	}

	if (s && snap.generation == generation) {
		/* the snapshot goes straight into `out`: kept across the calls below, it took the
		 * program past the verifier's 512-byte combined stack */
		out->action = snap.action;
		out->reason = snap.reason;
		out->rule = snap.rule;
		if ((snap.flags & DS_SESSION_REPLY_CHECK) && ds_is_reply(meta, k, tenant, DS_ROLE_SOURCE)) {
			ds_reply_decision(out);
			return;
		}
		ds_count(st, DS_CTR_CACHE_HITS);
		ds_session_touch(st, s, k, now, len);
		/* kept while in use: written only where a bank lacks it */
		if (((seen >> (was_denied ? 0 : 2)) & 3) != 3)
			ds_flow_filter_mark(fi, ds_flow_bit(h, !was_denied));
		return;
	}

	__u32 flags = ds_setting_flags();
	int expect_replies = source_side && (flags & (DS_SETTING_TENANT_NETS | DS_SETTING_TRACK_REPLIES));
	if (expect_replies && ds_is_reply(meta, k, tenant, DS_ROLE_SOURCE)) {
		ds_reply_decision(out);
		return;
	}

	/* decided into `out` (zeroed by the caller: as it stays if the classifier had no flow, deny);
	 * a decision of its own would take the program past the verifier's 512-byte combined stack */
	struct ds_decision *d = out;
	ds_decide_flow(meta, k, tenant, flags, d);

	/* a new denied session past its budget is decided statelessly: no entry, no event */
	if (!s && d->action == DS_ACTION_DENY && !ds_deny_admit(st, meta, k, d, now)) {
		ds_count(st, DS_CTR_CACHE_MISSES);
		return;
	}

	/* the new value is built in this CPU's scratch, not on the stack: with the summary marks it
	 * would take the program past the verifier's 512-byte combined stack */
	struct ds_deny_entry *ne = ds_entry_scratch();
	if (!ne)
		return;
	struct ds_session_value *nv = &ne->value;
	__builtin_memcpy(&ne->key, k, sizeof(ne->key));
	__builtin_memset(nv, 0, sizeof(*nv));
	nv->first_seen = now;
	nv->last_seen = now;
	nv->packets = 1;
	nv->bytes = len;
	nv->rule = d->rule;
	nv->generation = generation;
	nv->action = d->action;
	nv->reason = d->reason;
	nv->flags = (d->log ? DS_SESSION_LOG : 0) |
		    (expect_replies && d->action == DS_ACTION_DENY ? DS_SESSION_REPLY_CHECK : 0);
	__u8 kind = DS_EVENT_SESSION_NEW;
	int emit = d->log;

	if (s) {
		ds_count(st, DS_CTR_CACHE_STALE);
		kind = DS_EVENT_SESSION_CHANGED;
		ds_session_carry(st, nv, s, k, now, len);
		emit = ds_change_audited(s, nv); /* nv holds d's decision, its log flag included */
	} else {
		ds_count(st, DS_CTR_CACHE_MISSES);
	}
	/* a session whose verdict changed moves to the other cache */
	if (s && was_denied != (nv->action == DS_ACTION_DENY))
		ds_cache_delete(!was_denied, k, digest);
	int allowed = nv->action == DS_ACTION_ALLOW;
	/* A flow new to the filter may still be cached (its bits aged away while it was idle). In the
	 * cache of its verdict, the insert fails and the entry carries on (ds_session_recover). A
	 * denied one (admitted: budgeted) also takes over an entry of the allowed cache, so no stale
	 * allowed entry stays listed; an allowed one does not look (that probe would cost every new
	 * allowed session a second cache miss): a stale denied entry may stay behind, unreachable
	 * unless a bit of its own leads a packet to it, which then finds it stale and re-classifies,
	 * and a move into a cache never overwrites a live entry there (BPF_NOEXIST). */
	if (!s && !allowed) {
		int moved = ds_session_adopt(st, ne, digest, now, len);
		if (moved > 0) {
			kind = DS_EVENT_SESSION_CHANGED;
			emit = moved == 1;
		}
	}
	long err = ds_cache_update(allowed, ne, digest, s && was_denied == !allowed ? BPF_ANY : BPF_NOEXIST);
	if (err == -DS_EEXIST) {
		long r = ds_session_recover(st, ne, digest, now, len);
		err = r < 0 ? r : 0;
		if (r >= 0 && r != 3) {
			kind = DS_EVENT_SESSION_CHANGED;
			emit = r == 1;
		}
	}
	ds_flow_filter_mark(fi, ds_flow_bit(h, allowed));
	if (err != 0)
		ds_count(st, DS_CTR_SESSION_FULL);
	else if (allowed)
		ds_replies_remember(k, tenant, flags, source_side);
	if (emit)
		ds_emit(st, k, nv, kind, len);
}

#endif /* DOORSTEP_SESSION_H */
