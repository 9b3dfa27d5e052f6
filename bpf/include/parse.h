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
#define DS_ICMP_SOURCE_QUENCH 4
#define DS_ICMP_ECHO 8
#define DS_ICMP_TIME_EXCEEDED 11
#define DS_ICMP_PARAMETERPROB 12

#define DS_IP_MF 0x2000
#define DS_IP_OFFSET 0x1FFF
#define DS_IPPROTO_MH 135
#define DS_ND_FIRST 133 /* router solicitation */
#define DS_ND_LAST 137  /* redirect */

/* What the parser found. */
enum ds_parse_result {
	DS_PARSE_IP = 0,        /* an IPv4/IPv6 packet, fields in struct ds_packet */
	DS_PARSE_ARP = 1,
	DS_PARSE_ND = 2,        /* IPv6 neighbour discovery (hop limit 255) */
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
	__u8 pad[2];
};

struct ds_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct ds_sctp_hdr {
	__be16 source;
	__be16 dest;
	__be32 vtag;
	__be32 checksum;
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

static __always_inline int ds_is_icmp_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == DS_ICMP_DEST_UNREACH || type == DS_ICMP_TIME_EXCEEDED ||
		       type == DS_ICMP_PARAMETERPROB || type == DS_ICMP_SOURCE_QUENCH;
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

/* Transport fields of `proto` at `l4` into `k` (ports or ICMP type/code/id).
 * Returns 0, or -1 when the header is truncated. Other protocols carry no ports. */
static __always_inline int ds_parse_l4(void *l4, void *end, __u8 proto, struct ds_session_key *k,
				       __u8 *icmp_type)
{
	switch (proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end || th->doff < 5)
			return -1;
		k->sport = bpf_ntohs(th->source);
		k->dport = bpf_ntohs(th->dest);
		return 0;
	}
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return -1;
		k->sport = bpf_ntohs(uh->source);
		k->dport = bpf_ntohs(uh->dest);
		return 0;
	}
	case IPPROTO_SCTP: {
		struct ds_sctp_hdr *sh = l4;
		if ((void *)(sh + 1) > end)
			return -1;
		k->sport = bpf_ntohs(sh->source);
		k->dport = bpf_ntohs(sh->dest);
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum, then 4 bytes (echo: identifier, sequence) */
		__u8 *ih = l4;
		if ((void *)(ih + 8) > end)
			return -1;
		*icmp_type = ih[0];
		ds_icmp_fields(ih, proto, k);
		return 0;
	}
	default:
		return 0;
	}
}

/* Ports of a quoted transport header: an ICMP error guarantees only its first 8 bytes, so unlike
 * ds_parse_l4 this reads ports without requiring the whole header. */
static __always_inline int ds_parse_quoted_l4(void *l4, void *end, __u8 proto, struct ds_session_key *q)
{
	__u8 *h = l4;

	if ((void *)(h + 8) > end)
		return -1;
	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP:
		q->sport = ((__u16)h[0] << 8) | h[1];
		q->dport = ((__u16)h[2] << 8) | h[3];
		return 0;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		ds_icmp_fields(h, proto, q);
		return 0;
	default:
		return 0;
	}
}

/* The flow an ICMP error quotes: its IP header plus the first 8 bytes of its payload.
 * Leaves pkt->icmp_error at 0 when the quote is absent, truncated or not a known shape. */
static __always_inline void ds_parse_quote(struct ds_packet *pkt, void *inner, void *end)
{
	struct ds_session_key *q = &pkt->quoted;

	if (pkt->key.family == DS_FAMILY_IPV4) {
		struct iphdr *iph = inner;
		if ((void *)(iph + 1) > end || iph->version != 4 || iph->ihl < 5)
			return;
		if (bpf_ntohs(iph->frag_off) & DS_IP_OFFSET)
			return;
		void *l4 = inner + (iph->ihl * 4);
		q->proto = iph->protocol;
		q->family = DS_FAMILY_IPV4;
		ds_addr_from_v4(q->src, iph->saddr);
		ds_addr_from_v4(q->dst, iph->daddr);
		if (l4 > end || ds_parse_quoted_l4(l4, end, q->proto, q) < 0)
			return;
	} else {
		struct ipv6hdr *ip6 = inner;
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return;
		q->proto = ip6->nexthdr;
		q->family = DS_FAMILY_IPV6;
		ds_addr_from_v6(q->src, &ip6->saddr);
		ds_addr_from_v6(q->dst, &ip6->daddr);
		if (ds_parse_quoted_l4(ip6 + 1, end, q->proto, q) < 0)
			return;
	}
	q->ifindex = pkt->key.ifindex;
	q->vlan_outer = pkt->key.vlan_outer;
	q->vlan_inner = pkt->key.vlan_inner;
	pkt->icmp_error = 1;
}

/* After the IP header: transport fields, or ICMP error quoting, or the ND failsafe. */
static __always_inline int ds_parse_transport(struct ds_packet *pkt, void *l4, void *end, __u8 hop_limit)
{
	__u8 icmp_type = 0;

	if (pkt->frag == DS_FRAG_LATER)
		return DS_PARSE_IP;
	if (ds_parse_l4(l4, end, pkt->key.proto, &pkt->key, &icmp_type) < 0)
		return DS_PARSE_MALFORMED;

	__u8 proto = pkt->key.proto;
	__u8 family_icmp = pkt->key.family == DS_FAMILY_IPV4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	if (proto != family_icmp)
		return DS_PARSE_IP;
	if (proto == IPPROTO_ICMPV6 && icmp_type >= DS_ND_FIRST && icmp_type <= DS_ND_LAST &&
	    hop_limit == 255)
		return DS_PARSE_ND;
	if (pkt->frag == DS_FRAG_NONE && ds_is_icmp_error(proto, icmp_type))
		ds_parse_quote(pkt, l4 + 8, end);
	return DS_PARSE_IP;
}

static __always_inline int ds_parse_ipv4(struct ds_packet *pkt, void *l3, void *end, __u64 l3_len)
{
	struct iphdr *iph = l3;

	if ((void *)(iph + 1) > end || iph->version != 4 || iph->ihl < 5)
		return DS_PARSE_MALFORMED;
	__u32 hlen = iph->ihl * 4;
	__u32 tot = bpf_ntohs(iph->tot_len);
	if (tot < hlen || tot > l3_len || l3 + hlen > end)
		return DS_PARSE_MALFORMED;

	pkt->key.family = DS_FAMILY_IPV4;
	pkt->key.proto = iph->protocol;
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
	return ds_parse_transport(pkt, l3 + hlen, end, 0);
}

static __always_inline int ds_is_ipv6_ext(__u8 next)
{
	return next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
	       next == DS_IPPROTO_MH || next == IPPROTO_AH || next == IPPROTO_FRAGMENT;
}

static __always_inline int ds_parse_ipv6(struct ds_packet *pkt, void *l3, void *end, __u64 l3_len)
{
	struct ipv6hdr *ip6 = l3;

	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return DS_PARSE_MALFORMED;
	if (sizeof(*ip6) + (__u64)bpf_ntohs(ip6->payload_len) > l3_len)
		return DS_PARSE_MALFORMED;

	pkt->key.family = DS_FAMILY_IPV6;
	ds_addr_from_v6(pkt->key.src, &ip6->saddr);
	ds_addr_from_v6(pkt->key.dst, &ip6->daddr);

	void *pos = ip6 + 1;
	__u8 next = ip6->nexthdr;
	int i;

#pragma unroll
	for (i = 0; i < DS_MAX_IPV6_EXT; i++) {
		if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
		    next == DS_IPPROTO_MH) {
			struct ds_ipv6_ext *ext = pos;
			if ((void *)(ext + 1) > end)
				return DS_PARSE_MALFORMED;
			next = ext->nexthdr;
			pos += ((__u32)ext->hdrlen + 1) * 8;
		} else if (next == IPPROTO_AH) {
			struct ds_ipv6_ext *ext = pos;
			if ((void *)(ext + 1) > end)
				return DS_PARSE_MALFORMED;
			next = ext->nexthdr;
			pos += ((__u32)ext->hdrlen + 2) * 4;
		} else if (next == IPPROTO_FRAGMENT) {
			struct ds_ipv6_frag *fh = pos;
			if ((void *)(fh + 1) > end || pkt->frag_id != 0 || pkt->frag != DS_FRAG_NONE)
				return DS_PARSE_MALFORMED;
			__u16 off = bpf_ntohs(fh->frag_off);
			next = fh->nexthdr;
			pos = fh + 1;
			pkt->frag_id = bpf_ntohl(fh->identification);
			if (off & DS_IPV6_FRAG_OFFSET)
				pkt->frag = DS_FRAG_LATER;
			else if (off & DS_IPV6_FRAG_MF)
				pkt->frag = DS_FRAG_FIRST;
			/* else an atomic fragment (RFC 6946): a whole datagram, parsed as one */
			if (pkt->frag == DS_FRAG_LATER)
				break;
		} else {
			break;
		}
	}
	/* still inside the chain after the bound (a later fragment stops the walk on purpose) */
	if (pkt->frag != DS_FRAG_LATER && ds_is_ipv6_ext(next))
		return DS_PARSE_MALFORMED;
	pkt->key.proto = next;
	if (pos > end)
		return DS_PARSE_MALFORMED;
	return ds_parse_transport(pkt, pos, end, ip6->hop_limit);
}

/* Parse the frame; `frame_len` is the whole frame (all fragments of a multi-buffer frame). */
static __always_inline int ds_parse(struct xdp_md *ctx, struct ds_packet *pkt, __u64 frame_len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *pos;
	__u16 proto;

	if ((void *)(eth + 1) > end)
		return DS_PARSE_MALFORMED;
	pos = eth + 1;
	proto = bpf_ntohs(eth->h_proto);
	pkt->key.ifindex = ctx->ingress_ifindex;

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
		return ds_parse_ipv4(pkt, pos, end, l3_len);
	case ETH_P_IPV6:
		return ds_parse_ipv6(pkt, pos, end, l3_len);
	case ETH_P_ARP:
		return DS_PARSE_ARP;
	default:
		return DS_PARSE_NON_IP;
	}
}

#endif /* DOORSTEP_PARSE_H */
