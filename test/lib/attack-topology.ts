// SPDX-License-Identifier: Apache-2.0
// The attack tests' network: attacker ─ enforcer ─ router ─ sink, four namespaces joined by veth
// pairs. The enforcer forwards (IPv4 and IPv6) and holds the enforced interface `src0` facing the
// attacker, with a VLAN subinterface `src0.100` where the kernel has 802.1Q (the attacker sends
// its tagged frames raw, so it needs none); the router forwards to the sink's network, where
// the sink holds two addresses per family (a host and "another host" behind the router). Fixed
// MACs, addresses in 10.77.0.0/16 and fd00:77::/32; namespace names carry a per-run token.
// `destroy()` (NamespaceOwner) removes everything and is safe to call twice.
import { execIn, ip, NamespaceOwner, runToken } from '../../src/demo/topology.js';

export const VLAN = 100;

/** One attacker-facing link (untagged, or the VLAN): the attacker's and the enforcer's ends. */
export interface AttackLink {
  name: 'plain' | 'vlan';
  vlan: number | undefined;
  attacker4: string;
  attacker6: string;
  enforcer4: string;
  enforcer6: string;
  /** A prefix offered by the attacker's router advertisement on this link. */
  raPrefix: string;
}

export const LINKS: readonly AttackLink[] = [
  { name: 'plain', vlan: undefined, attacker4: '10.77.1.2', attacker6: 'fd00:77:1::2', enforcer4: '10.77.1.1', enforcer6: 'fd00:77:1::1', raPrefix: 'fd00:77:99::' },
  { name: 'vlan', vlan: VLAN, attacker4: '10.77.2.2', attacker6: 'fd00:77:2::2', enforcer4: '10.77.2.1', enforcer6: 'fd00:77:2::1', raPrefix: 'fd00:77:98::' },
];

export const NET = {
  attackerMac: '02:77:00:00:00:02',
  enforcerMac: '02:77:00:00:00:01',
  /** The attacker's link-local address (spoofed: nothing checks it). */
  attackerLinkLocal: 'fe80::77:2',
  /** The sink: the host behind the router, and another address of it ("another host"). */
  sink4: '10.77.9.2',
  other4: '10.77.9.3',
  sink6: 'fd00:77:9::2',
  other6: 'fd00:77:9::3',
  /** The router's address on the enforcer's other link. */
  routerLink6: 'fd00:77:8::2',
  sinkNet4: '10.77.9.0/24',
  sinkNet6: 'fd00:77:9::/64',
  /** The attacker's sources: its links, spoofed floods (10.200/16, fd00:200::/64), IPv4-mapped, link-local. */
  attackerSources: [/^10\.77\.[12]\./, /^10\.200\./, /^fd00:77:[12]:/, /^fd00:200:/, /^::ffff:/, /^fe80:/],
};

export class AttackTopology extends NamespaceOwner {
  readonly token = runToken();
  readonly attacker: string;
  readonly enforcer: string;
  readonly router: string;
  readonly sink: string;
  /** Whether the kernel forwards what passes on VLAN 100 (it has 802.1Q): set by create(). */
  vlanForwarded = false;
  /** The enforced interface (what the agent attaches to). */
  readonly enforced: { ns: string; ifname: string };

  constructor(prefix = 'dsx') {
    super();
    this.attacker = `${prefix}-att-${this.token}`;
    this.enforcer = `${prefix}-enf-${this.token}`;
    this.router = `${prefix}-rtr-${this.token}`;
    this.sink = `${prefix}-snk-${this.token}`;
    this.enforced = { ns: this.enforcer, ifname: 'src0' };
  }

  create(): this {
    try {
      for (const ns of [this.attacker, this.enforcer, this.router, this.sink]) {
        ip('netns', 'add', ns);
        this.namespaces.push(ns);
        execIn(ns, 'ip', ['link', 'set', 'lo', 'up']);
      }
      const link = (a: string, aNs: string, b: string, bNs: string, macs: string[] = []) =>
        ip('link', 'add', a, 'netns', aNs, ...(macs[0] ? ['address', macs[0]] : []), 'type', 'veth', 'peer', 'name', b, 'netns', bNs, ...(macs[1] ? ['address', macs[1]] : []));
      link('eth0', this.attacker, 'src0', this.enforcer, [NET.attackerMac, NET.enforcerMac]);
      link('up0', this.enforcer, 'dn0', this.router);
      link('lan0', this.router, 'eth0', this.sink);

      const cmd = (ns: string, ...args: string[]) => execIn(ns, args[0]!, args.slice(1));
      const addr = (ns: string, dev: string, ...cidrs: string[]) => {
        for (const c of cidrs) cmd(ns, 'ip', ...(c.includes(':') ? ['-6'] : []), 'addr', 'add', c, 'dev', dev, ...(c.includes(':') ? ['nodad'] : []));
        cmd(ns, 'ip', 'link', 'set', dev, 'up');
      };
      const [plain, vlan] = LINKS as [AttackLink, AttackLink];
      // the enforcer: forwarding, no reverse-path filter (spoofed sources are the point), and
      // router advertisements accepted even while forwarding (accept_ra=2), on the enforced links
      // (one passing the engine would show as a route and an address) and on the router side
      // (the control that shows it would)
      cmd(this.enforcer, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
      // VLAN 100 where the kernel has 802.1Q; without it tagged frames still meet the engine
      // (and the capture on src0), but the kernel forwards none of them
      try {
        cmd(this.enforcer, 'ip', 'link', 'add', 'link', 'src0', 'name', `src0.${VLAN}`, 'type', 'vlan', 'id', String(VLAN));
        this.vlanForwarded = true;
      } catch {
        this.vlanForwarded = false;
      }
      for (const dev of ['src0', 'up0', ...(this.vlanForwarded ? [`src0.${VLAN}`] : [])]) {
        const conf = dev.replace('.', '/');
        cmd(this.enforcer, 'sysctl', '-qw', `net.ipv4.conf.${conf}.rp_filter=0`, `net.ipv6.conf.${conf}.accept_ra=2`, `net.ipv6.conf.${conf}.autoconf=1`);
      }
      addr(this.enforcer, 'src0', `${plain.enforcer4}/24`, `${plain.enforcer6}/64`);
      if (this.vlanForwarded) addr(this.enforcer, `src0.${VLAN}`, `${vlan.enforcer4}/24`, `${vlan.enforcer6}/64`);
      addr(this.enforcer, 'up0', '10.77.8.1/24', 'fd00:77:8::1/64');
      cmd(this.enforcer, 'ip', 'route', 'add', NET.sinkNet4, 'via', '10.77.8.2');
      cmd(this.enforcer, 'ip', '-6', 'route', 'add', NET.sinkNet6, 'via', 'fd00:77:8::2');

      addr(this.attacker, 'eth0', `${plain.attacker4}/24`, `${plain.attacker6}/64`);

      cmd(this.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
      addr(this.router, 'dn0', '10.77.8.2/24', 'fd00:77:8::2/64');
      addr(this.router, 'lan0', '10.77.9.1/24', 'fd00:77:9::1/64');
      cmd(this.router, 'ip', 'route', 'add', 'default', 'via', '10.77.8.1');
      cmd(this.router, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd00:77:8::1');

      addr(this.sink, 'eth0', `${NET.sink4}/24`, `${NET.other4}/24`, `${NET.sink6}/64`, `${NET.other6}/64`);
      cmd(this.sink, 'ip', 'route', 'add', 'default', 'via', '10.77.9.1');
      cmd(this.sink, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd00:77:9::1');
      return this;
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** The enforcer's IPv6 default routes, and its addresses made from router advertisements (SLAAC). */
  enforcerRaState(): { defaultRoutes: string; raAddresses: string[] } {
    const defaultRoutes = execIn(this.enforcer, 'ip', ['-6', 'route', 'show', 'default']).trim();
    const raAddresses = execIn(this.enforcer, 'ip', ['-6', '-o', 'addr', 'show', 'scope', 'global', 'dynamic'])
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    return { defaultRoutes, raAddresses };
  }
}
