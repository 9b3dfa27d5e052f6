/* SPDX-License-Identifier: GPL-2.0-only */
/* Packet parsing: Ethernet, up to two VLAN tags, IPv4 (options, fragments), IPv6 (extension
 * headers, fragments), TCP, UDP, SCTP, ICMP, ICMPv6 (including the session an error quotes).
 *
 * Contract (after xdp-tools' parsing helpers): every helper bounds-checks before it reads, and
 * the parser reports DS_PARSE_MALFORMED for anything truncated or inconsistent — never a guess. */
#ifndef DOORSTEP_PARSE_H
#define DOORSTEP_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#define DS_ETH_P_QINQ_OLD 0x9100

/* ICMPv4 types (linux/icmp.h drags in libc socket headers, so not included) */
#define DS_ICMP_ECHOREPLY 0
#define DS_ICMP_DEST_UNREACH 3
#define DS_ICMP_ECHO 8
#define DS_ICMP_TIME_EXCEEDED 11
#define DS_ICMP_PARAMETERPROB 12

#define DS_IP_MF 0x2000
#define DS_IP_OFFSET 0x1FFF
#define DS_ND_SOLICIT 135   /* neighbour solicitation */
#define DS_ND_ADVERT 136    /* neighbour advertisement */
#define DS_ND_MIN_LEN 24    /* ICMPv6 header (4) + reserved/flags (4) + target (16) */

/* No header is read past this offset into the datagram: XDP's linear data is at most a page, and
 * the verifier wants every variable packet offset bounded. */
#define DS_LINEAR_MAX 8192

/* What the parser found. */
enum ds_parse_result {
	DS_PARSE_IP = 0,        /* an IPv4/IPv6 packet, fields in struct ds_packet */
	DS_PARSE_ARP = 1,
	DS_PARSE_ND = 2,        /* IPv6 neighbour discovery in its link-scope form (the failsafe) */
	DS_PARSE_NON_IP = 3,
	DS_PARSE_MALFORMED = 4,
};

enum ds_frag_state {
	DS_FRAG_NONE = 0,
	DS_FRAG_FIRST = 1,      /* offset 0, more fragments follow: carries the ports */
	DS_FRAG_LATER = 2,      /* offset > 0: no transport header */
};

/* Everything the pipeline needs from one packet. */
struct ds_packet {
	struct ds_session_key key;    /* the flow: addresses, ifindex, VLANs, ports, proto, family */
	struct ds_session_key quoted; /* for ICMP errors: the flow the error quotes, as sent */
	__u32 frag_id;
	__u8 frag;                    /* enum ds_frag_state */
	__u8 icmp_error;              /* 1 when `quoted` is valid */
	__u8 frag_proto;              /* a fragment's identity protocol: IPv4's protocol field, or the
				       * IPv6 fragment header's next header (the same in every fragment) */
	__u8 pad;
};

struct ds_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* A generic 2-byte-prefixed IPv6 extension header. */
struct ds_ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ds_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;              /* offset (13 bits, 8-byte units) << 3 | M flag */
	__be32 identification;
};

#define DS_IPV6_FRAG_MF 0x0001
#define DS_IPV6_FRAG_OFFSET 0xFFF8

/* `n` bytes at `off` into a datagram of `dlen` bytes that starts at `base`, or NULL when they do
 * not lie inside both the datagram and the frame's linear data: every header is bounded by the
 * datagram's own length, so trailing bytes (Ethernet padding) are never parsed. */
static __always_inline void *ds_bytes(void *base, void *end, __u32 dlen, __u32 off, __u32 n)
{
	if (off > DS_LINEAR_MAX || off + n > dlen)
		return NULL;
	void *p = base + off;
	if (p + n > end)
		return NULL;
	return p;
}

static __always_inline void ds_addr_from_v4(__u8 *dst16, __be32 v4)
{
	__u32 *w = (__u32 *)dst16;
	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000FFFF);
	w[3] = v4;
}

static __always_inline void ds_addr_from_v6(__u8 *dst16, const struct in6_addr *a)
{
	__builtin_memcpy(dst16, a, 16);
}

/* The ICMP messages that quote the packet they are about (docs/datapath.md, "ICMP errors"):
 * source quench (deprecated) and redirect (changes routes) are not among them. */
static __always_inline int ds_is_icmp_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == DS_ICMP_DEST_UNREACH || type == DS_ICMP_TIME_EXCEEDED || type == DS_ICMP_PARAMETERPROB;
	return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG ||
	       type == ICMPV6_TIME_EXCEED || type == ICMPV6_PARAMPROB;
}

static __always_inline int ds_is_echo(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == DS_ICMP_ECHO || type == DS_ICMP_ECHOREPLY;
	return type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY;
}

/* ICMP/ICMPv6 fields from the first 8 header bytes: type/code as the "port", echo identifier. */
static __always_inline void ds_icmp_fields(const __u8 *h, __u8 proto, struct ds_session_key *k)
{
	k->dport = ((__u16)h[0] << 8) | h[1];
	k->sport = ds_is_echo(proto, h[0]) ? (((__u16)h[4] << 8) | h[5]) : 0;
}

/* Transport fields of `proto` at `off` into `k` (ports or ICMP type/code/id). Returns 0, or -1
 * when the header does not lie whole inside the datagram (TCP: its options too). Other protocols
 * carry no ports. */
static __always_inline int ds_parse_l4(void *base, void *end, __u32 dlen, __u32 off, __u8 proto,
				       struct ds_session_key *k)
{
	switch (proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = ds_bytes(base, end, dlen, off, sizeof(*th));
		if (!th || th->doff < 5 || off + th->doff * 4 > dlen)
			return -1;
		k->sport = bpf_ntohs(th->source);
		k->dport = bpf_ntohs(th->dest);
		return 0;
	}
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP: {
		/* UDP's 8 bytes, SCTP's 12-byte common header: the ports come first in both */
		__be16 *ports = ds_bytes(base, end, dlen, off, proto == IPPROTO_SCTP ? 12 : 8);
		if (!ports)
			return -1;
		k->sport = bpf_ntohs(ports[0]);
		k->dport = bpf_ntohs(ports[1]);
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum, then 4 bytes (echo: identifier, sequence) */
		__u8 *ih = ds_bytes(base, end, dlen, off, 8);
		if (!ih)
			return -1;
		ds_icmp_fields(ih, proto, k);
		return 0;
	}
	default:
		return 0;
	}
}

/* Ports of a quoted transport header: an ICMP error guarantees only its first 8 bytes, so unlike
 * ds_parse_l4 this reads ports without requiring the whole header. */
static __always_inline int ds_parse_quoted_l4(void *base, void *end, __u32 dlen, __u32 off, __u8 proto,
					      struct ds_session_key *q)
{
	__u8 *h;

	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP:
		h = ds_bytes(base, end, dlen, off, 8);
		if (!h)
			return -1;
		q->sport = ((__u16)h[0] << 8) | h[1];
		q->dport = ((__u16)h[2] << 8) | h[3];
		return 0;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		h = ds_bytes(base, end, dlen, off, 8);
		if (!h)
			return -1;
		ds_icmp_fields(h, proto, q);
		return 0;
	default:
		return 0;
	}
}

/* The IPv6 extension-header walk of docs/datapath.md ("IPv6 extension headers"), from `*off`
 * (just past the fixed header) with `*next` its next header. Walks hop-by-hop (first only),
 * destination options, routing, AH and one fragment header, at most DS_MAX_IPV6_EXT of them;
 * anything else is the upper-layer protocol. Leaves `*off`/`*next` at the upper layer, or at the
 * fragment header's payload of a later fragment (the walk stops there). Fills the fragment
 * fields of `pkt` when `pkt` is not NULL (a packet), and takes a quote's routing header as it is.
 * Returns the number of headers walked, or -1 when the chain is malformed. */
static __always_inline int ds_walk_ipv6_ext(void *base, void *end, __u32 dlen, __u32 *off, __u8 *next,
					    struct ds_packet *pkt, __u8 *later)
{
	int seen_frag = 0;
	int i;

#pragma unroll
	for (i = 0; i < DS_MAX_IPV6_EXT; i++) {
		__u8 nh = *next;
		__u32 len;

		if (nh == IPPROTO_FRAGMENT) {
			struct ds_ipv6_frag *fh = ds_bytes(base, end, dlen, *off, sizeof(*fh));
			if (!fh || seen_frag)
				return -1;
			seen_frag = 1;
			__u16 fo = bpf_ntohs(fh->frag_off);
			*next = fh->nexthdr;
			*off += sizeof(*fh);
			if (fo & DS_IPV6_FRAG_OFFSET) {
				*later = 1;
			}
			if (pkt) {
				pkt->frag_id = bpf_ntohl(fh->identification);
				pkt->frag_proto = fh->nexthdr;
				if (fo & DS_IPV6_FRAG_OFFSET)
					pkt->frag = DS_FRAG_LATER;
				else if (fo & DS_IPV6_FRAG_MF)
					pkt->frag = DS_FRAG_FIRST;
				/* else an atomic fragment (RFC 6946): a whole datagram, parsed as one */
			}
			if (*later)
				return i + 1;
			continue;
		}
		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_DSTOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_AH)
			return i;
		if (nh == IPPROTO_HOPOPTS && i != 0)
			return -1; /* hop-by-hop only directly after the IPv6 header */
		__u8 *ext = ds_bytes(base, end, dlen, *off, 4);
		if (!ext)
			return -1;
		/* routing with segments left: the destination address is not the final one */
		if (nh == IPPROTO_ROUTING && pkt && ext[3] != 0)
			return -1;
		len = nh == IPPROTO_AH ? ((__u32)ext[1] + 2) * 4 : ((__u32)ext[1] + 1) * 8;
		if (*off + len > dlen)
			return -1;
		*next = ext[0];
		*off += len;
	}
	/* still inside the chain after the bound */
	if (*next == IPPROTO_HOPOPTS || *next == IPPROTO_DSTOPTS || *next == IPPROTO_ROUTING ||
	    *next == IPPROTO_AH || *next == IPPROTO_FRAGMENT)
		return -1;
	return i;
}

/* The flow an ICMP error quotes, from `off` (8 bytes into the ICMP header) to `dlen`, the outer
 * datagram's end, both counted from the frame's start: its IP header (IPv6: with its extension
 * headers) and the first 8 bytes of its transport header. Leaves pkt->icmp_error at 0 when the
 * quote is absent, truncated, of a later fragment, or not a known shape. A global function: the
 * verifier checks it once, on its own, rather than once per path of the packet's own parse (the
 * two extension-header walks would multiply). Returns 0, or -1 without a packet. */
__noinline int ds_parse_quote(struct xdp_md *ctx, __u32 off, __u32 dlen, struct ds_packet *pkt)
{
	if (!ctx || !pkt)
		return -1;
	void *base = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ds_session_key *q = &pkt->quoted;

	if (pkt->key.family == DS_FAMILY_IPV4) {
		struct iphdr *iph = ds_bytes(base, end, dlen, off, sizeof(*iph));
		if (!iph || iph->version != 4 || iph->ihl < 5)
			return 0;
		if (bpf_ntohs(iph->frag_off) & DS_IP_OFFSET)
			return 0;
		q->proto = iph->protocol;
		q->family = DS_FAMILY_IPV4;
		ds_addr_from_v4(q->src, iph->saddr);
		ds_addr_from_v4(q->dst, iph->daddr);
		if (ds_parse_quoted_l4(base, end, dlen, off + iph->ihl * 4, q->proto, q) < 0)
			return 0;
	} else {
		struct ipv6hdr *ip6 = ds_bytes(base, end, dlen, off, sizeof(*ip6));
		if (!ip6 || ip6->version != 6)
			return 0;
		__u32 pos = off + sizeof(*ip6);
		__u8 next = ip6->nexthdr;
		__u8 later = 0;
		if (ds_walk_ipv6_ext(base, end, dlen, &pos, &next, NULL, &later) < 0 || later)
			return 0;
		q->proto = next;
		q->family = DS_FAMILY_IPV6;
		ds_addr_from_v6(q->src, &ip6->saddr);
		ds_addr_from_v6(q->dst, &ip6->daddr);
		if (ds_parse_quoted_l4(base, end, dlen, pos, q->proto, q) < 0)
			return 0;
	}
	q->ifindex = pkt->key.ifindex;
	q->vlan_outer = pkt->key.vlan_outer;
	q->vlan_inner = pkt->key.vlan_inner;
	pkt->icmp_error = 1;
	return 0;
}

static __always_inline int ds_is_link_local(const __u8 *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* ff02::1:ff00:0/104, the solicited-node groups: where duplicate address detection sends. */
static __always_inline int ds_is_solicited_node(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;
	return w[0] == bpf_htonl(0xff020000) && w[1] == 0 && w[2] == bpf_htonl(1) && a[12] == 0xff;
}

/* Is the unicast destination of a neighbour-discovery message on this link, so that it can reach
 * no routed host? The kernel's FIB, from the ingress interface, says so: not forwarded (one of this
 * host's addresses, or no route at all), forwarding off on the interface, or a connected route
 * (no gateway) out of the ingress interface itself. Anything else, and any lookup error, is not. */
static __always_inline int ds_nd_dst_on_link(struct xdp_md *ctx, const struct ds_session_key *k)
{
	struct bpf_fib_lookup fib = {};
	__u32 ifindex = ctx->ingress_ifindex;

	fib.family = 10; /* AF_INET6 */
	fib.l4_protocol = IPPROTO_ICMPV6;
	fib.ifindex = ifindex;
	/* a link-local source makes the kernel answer "not forwarded" before it looks at the
	 * destination; the source only matters to source-specific routes, which it cannot have */
	if (!ds_is_link_local(k->src))
		__builtin_memcpy(fib.ipv6_src, k->src, 16);
	__builtin_memcpy(fib.ipv6_dst, k->dst, 16);
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED || rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
		return 1;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return 0;
	/* a gateway replaces the destination; a connected route leaves it as it was */
	const __u32 *d = (const __u32 *)k->dst;
	return fib.ifindex == ifindex && fib.ipv6_dst[0] == d[0] && fib.ipv6_dst[1] == d[1] &&
	       fib.ipv6_dst[2] == d[2] && fib.ipv6_dst[3] == d[3];
}

/* Neighbour discovery in the form RFC 4861 gives it, the only ICMPv6 the failsafe passes: a
 * solicitation or advertisement, code 0, hop limit 255, whole options, from a unicast source (the
 * unspecified one only for duplicate address detection, to a solicited-node group), to a
 * link-local address, a link-scope group (ff02::/16), or a unicast address on this link
 * (ds_nd_dst_on_link): never a way to a routed host. The caller has checked that ICMPv6 follows
 * the IPv6 header directly. */
static __always_inline int ds_is_nd_failsafe(struct xdp_md *ctx, const struct ds_session_key *k, __u8 hop_limit,
					     __u32 msg_len)
{
	__u8 type = k->dport >> 8;
	const __u32 *s = (const __u32 *)k->src;

	if ((type != DS_ND_SOLICIT && type != DS_ND_ADVERT) || (k->dport & 0xff) || hop_limit != 255)
		return 0;
	if (msg_len < DS_ND_MIN_LEN || (msg_len - DS_ND_MIN_LEN) % 8)
		return 0;
	if (k->src[0] == 0xff)
		return 0;
	if (!(s[0] | s[1] | s[2] | s[3]))
		return type == DS_ND_SOLICIT && ds_is_solicited_node(k->dst);
	if (k->dst[0] == 0xff)
		return k->dst[1] == 0x02;
	return ds_is_link_local(k->dst) || ds_nd_dst_on_link(ctx, k);
}

/* After the IP header: transport fields, the ND failsafe (`nd_ok`: ICMPv6 directly behind the
 * IPv6 header), or an ICMP error's quote. `base` is the IP header, `l3_off` its offset in the frame. */
static __always_inline int ds_parse_transport(struct xdp_md *ctx, struct ds_packet *pkt, void *base, void *end,
					      __u32 l3_off, __u32 dlen, __u32 off, __u8 hop_limit, int nd_ok)
{
	if (pkt->frag == DS_FRAG_LATER)
		return DS_PARSE_IP;
	if (ds_parse_l4(base, end, dlen, off, pkt->key.proto, &pkt->key) < 0)
		return DS_PARSE_MALFORMED;

	__u8 proto = pkt->key.proto;
	__u8 family_icmp = pkt->key.family == DS_FAMILY_IPV4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	if (proto != family_icmp)
		return DS_PARSE_IP;
	if (nd_ok && ds_is_nd_failsafe(ctx, &pkt->key, hop_limit, dlen - off))
		return DS_PARSE_ND;
	if (pkt->frag == DS_FRAG_NONE && ds_is_icmp_error(proto, pkt->key.dport >> 8))
		ds_parse_quote(ctx, l3_off + off + 8, l3_off + dlen, pkt);
	return DS_PARSE_IP;
}

static __always_inline int ds_parse_ipv4(struct xdp_md *ctx, struct ds_packet *pkt, void *l3, void *end, __u32 l3_off,
					 __u64 l3_len)
{
	struct iphdr *iph = l3;

	if ((void *)(iph + 1) > end || iph->version != 4 || iph->ihl < 5)
		return DS_PARSE_MALFORMED;
	__u32 hlen = iph->ihl * 4;
	__u32 tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen || tot > l3_len)
		return DS_PARSE_MALFORMED;

	pkt->key.family = DS_FAMILY_IPV4;
	pkt->key.proto = iph->protocol;
	pkt->frag_proto = iph->protocol;
	ds_addr_from_v4(pkt->key.src, iph->saddr);
	ds_addr_from_v4(pkt->key.dst, iph->daddr);

	__u16 frag_off = bpf_ntohs(iph->frag_off);
	if (frag_off & (DS_IP_MF | DS_IP_OFFSET)) {
		pkt->frag_id = bpf_ntohs(iph->id);
		if (frag_off & DS_IP_OFFSET) {
			/* RFC 1858: a TCP fragment at offset 8 can only exist to overwrite the header */
			if ((frag_off & DS_IP_OFFSET) == 1 && iph->protocol == IPPROTO_TCP)
				return DS_PARSE_MALFORMED;
			pkt->frag = DS_FRAG_LATER;
		} else {
			pkt->frag = DS_FRAG_FIRST;
		}
	}
	return ds_parse_transport(ctx, pkt, l3, end, l3_off, tot, hlen, 0, 0);
}

static __always_inline int ds_parse_ipv6(struct xdp_md *ctx, struct ds_packet *pkt, void *l3, void *end, __u32 l3_off,
					 __u64 l3_len)
{
	struct ipv6hdr *ip6 = l3;

	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return DS_PARSE_MALFORMED;
	__u32 dlen = sizeof(*ip6) + (__u32)bpf_ntohs(ip6->payload_len);
	if (dlen > l3_len)
		return DS_PARSE_MALFORMED;

	pkt->key.family = DS_FAMILY_IPV6;
	ds_addr_from_v6(pkt->key.src, &ip6->saddr);
	ds_addr_from_v6(pkt->key.dst, &ip6->daddr);

	__u32 off = sizeof(*ip6);
	__u8 next = ip6->nexthdr;
	__u8 later = 0;
	int walked = ds_walk_ipv6_ext(l3, end, dlen, &off, &next, pkt, &later);
	if (walked < 0)
		return DS_PARSE_MALFORMED;
	pkt->key.proto = next;
	return ds_parse_transport(ctx, pkt, l3, end, l3_off, dlen, off, ip6->hop_limit, walked == 0);
}

/* A frame of a device without a link-layer header (WireGuard, TUN): the IP header's version
 * says the family. */
static __always_inline int ds_parse_l3(struct xdp_md *ctx, struct ds_packet *pkt, __u64 frame_len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *version = data;

	if ((void *)(version + 1) > end)
		return DS_PARSE_MALFORMED;
	switch (*version >> 4) {
	case 4:
		return ds_parse_ipv4(ctx, pkt, data, end, 0, frame_len);
	case 6:
		return ds_parse_ipv6(ctx, pkt, data, end, 0, frame_len);
	default:
		return DS_PARSE_MALFORMED;
	}
}

/* Parse the frame; `frame_len` is the whole frame (all fragments of a multi-buffer frame); `l3`:
 * the interface has no link-layer header (DS_IFACE_L3). */
static __always_inline int ds_parse(struct xdp_md *ctx, struct ds_packet *pkt, __u64 frame_len, int l3)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *pos;
	__u16 proto;

	pkt->key.ifindex = ctx->ingress_ifindex;
	if (l3)
		return ds_parse_l3(ctx, pkt, frame_len);
	if ((void *)(eth + 1) > end)
		return DS_PARSE_MALFORMED;
	pos = eth + 1;
	proto = bpf_ntohs(eth->h_proto);

#pragma unroll
	for (int i = 0; i < DS_MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD && proto != DS_ETH_P_QINQ_OLD)
			break;
		struct ds_vlan_hdr *vh = pos;
		if ((void *)(vh + 1) > end)
			return DS_PARSE_MALFORMED;
		__u16 vid = bpf_ntohs(vh->tci) & 0x0FFF;
		if (i == 0)
			pkt->key.vlan_outer = vid;
		else
			pkt->key.vlan_inner = vid;
		proto = bpf_ntohs(vh->proto);
		pos = vh + 1;
	}
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD || proto == DS_ETH_P_QINQ_OLD)
		return DS_PARSE_MALFORMED; /* a third tag */

	__u64 l3_off = pos - data;
	if (frame_len < l3_off)
		return DS_PARSE_MALFORMED;
	__u64 l3_len = frame_len - l3_off;

	switch (proto) {
	case ETH_P_IP:
		return ds_parse_ipv4(ctx, pkt, pos, end, l3_off, l3_len);
	case ETH_P_IPV6:
		return ds_parse_ipv6(ctx, pkt, pos, end, l3_off, l3_len);
	case ETH_P_ARP:
		return DS_PARSE_ARP;
	default:
		return DS_PARSE_NON_IP;
	}
}

#endif /* DOORSTEP_PARSE_H */
