// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the datapath tests: compile a YAML policy to an image, open an unpinned
// engine, turn a frame spec into the flow tuple and session key the datapath will use, and make
// interfaces whose ifindexes test runs can arrive on.
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach } from 'node:test';
import type { SessionKey } from '../../src/abi/records.js';
import { ip, runToken } from '../../src/demo/topology.js';
import { NativeEngine } from '../../src/engine/engine.js';
import { compileSources } from '../../src/policy/compile.js';
import { buildImage, type PolicyImage } from '../../src/policy/tables/image.js';
import type { PolicyIr } from '../../src/policy/ir/ir.js';
import { tupleOf } from '../../src/engine/frame.js';
import { addr16, type FrameSpec } from './packet.js';

/** BPF_PROG_TEST_RUN without a context runs on the loopback device's queue. */
export const TEST_IFINDEX = 1;

export function compileYaml(text: string, file = 'test.yaml'): { ir: PolicyIr; image: PolicyImage } {
  const { ir, tables } = compileSources([{ file, text }]);
  return { ir, image: buildImage(ir, tables) };
}

export function openTestEngine(): NativeEngine {
  return NativeEngine.open({ pinRoot: null, sessionEntries: 1 << 18 });
}

export { tupleOf };

const ICMP = new Set([1, 58]);

export function sessionKeyOf(spec: FrameSpec, ifindex = TEST_IFINDEX): SessionKey {
  const t = tupleOf(spec);
  const echoTypes = spec.proto === 1 ? [0, 8] : [128, 129];
  const echo = ICMP.has(spec.proto) && echoTypes.includes(t.icmpType ?? -1);
  return {
    family: t.family,
    src: addr16(spec.src),
    dst: addr16(spec.dst),
    ifindex,
    vlanOuter: spec.vlans?.[0] ?? 0,
    vlanInner: spec.vlans?.[1] ?? 0,
    proto: spec.proto,
    sport: ICMP.has(spec.proto) ? (echo ? (spec.icmpId ?? 0) : 0) : (t.sport ?? 0),
    dport: ICMP.has(spec.proto) ? ((t.icmpType ?? 0) << 8) | (t.icmpCode ?? 0) : (t.dport ?? 0),
  };
}

/** Wait until `predicate` holds or `ms` pass (for asynchronously delivered events). */
export async function waitFor(predicate: () => boolean, ms = 2000): Promise<boolean> {
  const until = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/**
 * Wait until the event reader has delivered every event the datapath wrote so far (its EVENTS
 * counter, read now): after that no event of the frames already run is on its way, so a count of
 * the events read is final. `ms` is a deadline, not a pause; a reader that falls short fails.
 */
export async function allEventsRead(engine: NativeEngine, events: readonly unknown[], ms = 2000): Promise<void> {
  const written = engine.stats().counters.EVENTS;
  if (!(await waitFor(() => events.length >= written, ms))) assert.fail(`read ${events.length} of the ${written} events the datapath wrote`);
}

/**
 * Interfaces whose ifindexes BPF_PROG_TEST_RUN can give as the ingress interface: veth pairs in
 * the host namespace, down and without addresses, so they carry no traffic. Both ends of a pair
 * count. Names are `ds<tag><letter><token>`, unique per run; `remove()` deletes them and is safe
 * to call after a failed creation or twice.
 */
export class TestInterfaces {
  readonly names: string[];
  readonly ifindex: number[] = [];

  constructor(tag: string, count: number) {
    const token = runToken();
    this.names = Array.from({ length: count + (count % 2) }, (_, i) => `ds${tag}${String.fromCharCode(97 + i)}${token}`);
    try {
      for (let i = 0; i < this.names.length; i += 2) ip('link', 'add', this.names[i]!, 'type', 'veth', 'peer', 'name', this.names[i + 1]!);
      for (const n of this.names) this.ifindex.push(Number(/^(\d+):/.exec(ip('-o', 'link', 'show', 'dev', n))?.[1]));
    } catch (err) {
      this.remove();
      throw err;
    }
  }

  remove(): void {
    for (let i = 0; i < this.names.length; i += 2) {
      try {
        ip('link', 'del', this.names[i]!); // the peer goes with it
      } catch {
        // never created, or already gone
      }
    }
  }
}

/**
 * The hooks of a suite whose tests run frames arriving on interfaces: `count` TestInterfaces for
 * the suite, and for each test a fresh unpinned engine handed to `setup` (with the interfaces'
 * ifindexes), closed after the test. Returns the ifindex of interface `i`.
 */
export function withTestInterfaces(tag: string, count: number, setup: (engine: NativeEngine, ifindex: readonly number[]) => void): (i: number) => number {
  let ifaces: TestInterfaces | undefined;
  let engine: NativeEngine | undefined;
  before(() => {
    ifaces = new TestInterfaces(tag, count);
  });
  after(() => ifaces?.remove());
  beforeEach(() => {
    engine = openTestEngine();
    setup(engine, ifaces?.ifindex ?? []);
  });
  afterEach(() => engine?.close());
  return (i) => ifaces?.ifindex[i] as number;
}
