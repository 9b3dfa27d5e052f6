// SPDX-License-Identifier: Apache-2.0
// The native flood sender (packetFlood, native/src/flood.cc) that bench:flood relies on: frames
// sent from the client namespace through a veth reach the engine a real agent attached on the
// server side, exactly as many as it says it sent, counted by the rule that denies them; spoofed
// floods really vary their sources (they split between two rules by source prefix), and a bad
// interface is an error, not a silent 0.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { execIn } from '../../src/demo/topology.js';
import { frame } from '../../src/engine/frame.js';
import { packetFlood } from '../../bench/lib/packet-flood.js';
import { AgentRig, type AgentProcess, sleep } from '../lib/agent-rig.js';

const POLICY = `apiVersion: doorstep/v1
kind: NetworkPolicy
metadata: { name: flood }
spec:
  defaultAction: deny
  rules:
    - { name: low-half, action: allow, from: [10.64.0.0/11], protocol: udp, ports: [9999] }
    - { name: deny-flood, action: deny, from: [any], protocol: udp, ports: [9999] }
`;

interface Status {
  policy: { version: string | null } | null;
  rules: Record<string, { packets: number }>;
}

describe('e2e: the AF_PACKET flood sender', () => {
  const rig = new AgentRig('dsp');
  let agent: AgentProcess;
  const status = () => rig.cliJson<Status>(['status']);
  const hits = () => {
    const rules = status().rules;
    return { denied: rules['flood/deny-flood']?.packets ?? 0, low: rules['flood/low-half']?.packets ?? 0 };
  };

  /** Wait until both rules together have counted at least `n` packets (counters, not sleeps), then read them. */
  async function countedReach(n: number, ms = 15_000): Promise<{ denied: number; low: number }> {
    const deadline = Date.now() + ms;
    let seen = hits();
    while (seen.denied + seen.low < n && Date.now() < deadline) {
      await sleep(50);
      seen = hits();
    }
    return seen;
  }

  function wire(src: string): Buffer {
    const mac = (ns: string, dev: string) => {
      const [link] = JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' })) as { address: string }[];
      return Buffer.from(link!.address.split(':').map((h) => parseInt(h, 16)));
    };
    const f = frame({ src, dst: rig.topo.server.v4, proto: 17, sport: 40000, dport: 9999, payload: 18 });
    mac(rig.topo.server.ns, rig.topo.server.ifname).copy(f, 0);
    mac(rig.topo.client.ns, rig.topo.client.ifname).copy(f, 6);
    return f;
  }

  /** The server namespace's IP counters (/proc/net/snmp follows the reader's namespace). */
  function ipCounters(): { InReceives: number; InHdrErrors: number } {
    const [names, values] = execIn(rig.topo.server.ns, 'cat', ['/proc/net/snmp'])
      .split('\n')
      .filter((l) => l.startsWith('Ip: '))
      .map((l) => l.split(/\s+/).slice(1));
    const get = (name: string) => Number(values![names!.indexOf(name)]);
    return { InReceives: get('InReceives'), InHdrErrors: get('InHdrErrors') };
  }

  const send = (f: Buffer, count: number, spoofBits = 0) =>
    packetFlood({ netns: `/run/netns/${rig.topo.client.ns}`, ifname: rig.topo.client.ifname, frames: f, frameSize: f.length, count, maxSeconds: 10, spoofBits });

  before(async () => {
    rig.writePolicy('flood.yaml', POLICY);
    agent = rig.startAgent(['--audit', `${rig.dir}/audit.jsonl`]);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = rig.cli(['status', '-o', 'json']);
      if (r.code === 0 && (JSON.parse(r.stdout) as Status).policy?.version) break;
      if (Date.now() > deadline) throw new Error(`the agent did not install its policy: ${agent.stderr}`);
      await sleep(100);
    }
  });

  after(async () => {
    await agent?.terminate();
    rig.cleanup();
  });

  it('delivers exactly the frames it reports sent, to the engine on the other end', async () => {
    const start = hits();
    const r = await send(wire(rig.topo.client.v4), 5_000);
    assert.equal(r.sent, 5_000);
    assert.ok(r.wallNs > 0 && r.userNs + r.systemNs > 0, 'it reports its own time');
    const end = await countedReach(start.denied + start.low + 5_000);
    assert.equal(end.denied - start.denied, 5_000, 'the deny rule counted every frame, and no more');
    assert.equal(end.low, start.low);
  });

  it('varies the source per frame when spoofing, with a header checksum the stack accepts', async () => {
    const start = hits();
    const ipBefore = ipCounters();
    const r = await send(wire('10.64.0.0'), 4_000, 22);
    assert.equal(r.sent, 4_000);
    const end = await countedReach(start.denied + start.low + 4_000);
    const low = end.low - start.low;
    const high = end.denied - start.denied;
    assert.equal(low + high, 4_000, 'every frame counted once');
    // sources are drawn from 10.64.0.0/10; the allow rule takes its lower half (10.64.0.0/11):
    // without the rewrite every frame would go one way
    assert.ok(low > 1_500 && high > 1_500, `split ${low} / ${high}`);
    // the allowed half reached the server's IP layer, none of it dropped for a bad header checksum
    const ipAfter = ipCounters();
    assert.equal(ipAfter.InHdrErrors - ipBefore.InHdrErrors, 0);
    assert.ok(ipAfter.InReceives - ipBefore.InReceives >= low, `IP took in ${ipAfter.InReceives - ipBefore.InReceives} of ${low}`);
  });

  it('sends at the nice value it is given (the bench yields the CPU it shares with the agent), and refuses one out of range', async () => {
    const f = wire(rig.topo.client.v4);
    const r = await packetFlood({ netns: `/run/netns/${rig.topo.client.ns}`, ifname: rig.topo.client.ifname, frames: f, frameSize: f.length, count: 100, nice: 19 });
    assert.equal(r.sent, 100);
    assert.throws(() => packetFlood({ ifname: rig.topo.client.ifname, frames: f, frameSize: f.length, count: 1, nice: 20 }), RangeError);
  });

  it('rejects an interface that does not exist in the namespace', async () => {
    await assert.rejects(
      packetFlood({ netns: `/run/netns/${rig.topo.client.ns}`, ifname: rig.topo.server.ifname, frames: wire(rig.topo.client.v4), frameSize: 60, count: 1 }),
      /if_nametoindex/,
    );
  });
});
