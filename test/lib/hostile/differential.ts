// SPDX-License-Identifier: Apache-2.0
// The hostile differential's runner: runs of frames through the XDP engine (BPF_PROG_TEST_RUN)
// and through the reference datapath, from the same empty state and configuration. Per frame it
// compares the verdict; per run, the counts by reason and verdict and the whole session table.
// A run that differs is replayed frame by frame (counters and sessions read after each frame) to
// name every frame that differs, grouped by the doc sentence the reference decided by.
import { Action, Limits, Reason, SessionFlag } from '../../../src/abi/generated.js';
import type { CpuStats, ReasonName, SessionValue } from '../../../src/abi/records.js';
import type { NativeEngine, FailsafeEntry } from '../../../src/engine/engine.js';
import type { PolicyImage } from '../../../src/policy/tables/image.js';
import type { PolicyIr } from '../../../src/policy/ir/ir.js';
import { hex } from '../reference/bytes.js';
import type { Outcome, ReferenceDatapath, RefSession } from '../reference/datapath.js';
import { engineSessionKey } from '../reference/keys.js';
import type { Step } from './sequences.js';
import type { Topology } from './topology.js';

export interface Interface {
  /** The ingress ifindex given to the test run (0: none, the run's default). */
  engine: number;
  /** The ifindex the datapath sees (1 for the default). */
  ref: number;
}

export interface Run {
  /** Index into the compiled policies, or null: none installed. */
  policy: number | null;
  failsafe: readonly FailsafeEntry[];
  /** Interface roles (by the ifindex both sides see) and tenant networks of the run. */
  topology: Topology;
  steps: Step[];
}

export interface Disagreement {
  count: number;
  /** The first frame that showed it. */
  example: string;
}

const REASONS = (Object.keys(Reason) as (ReasonName | 'COUNT')[]).filter((n): n is ReasonName => n !== 'COUNT');

/** Reason × verdict packet counts, as "REASON/pass". */
function byReason(s: CpuStats): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of REASONS) {
    out.set(`${r}/pass`, s.byReason[r].pass.packets);
    out.set(`${r}/drop`, s.byReason[r].drop.packets);
  }
  return out;
}

function delta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) if (v !== before.get(k)) out.set(k, v - (before.get(k) ?? 0));
  return out;
}

const show = (m: Map<string, number>) => [...m].map(([k, v]) => `${k}+${v}`).join(' ') || 'nothing';

/** Why an engine session differs from the reference's, or null. */
function sessionDiff(got: SessionValue | null, want: RefSession | undefined): string | null {
  if (!got && !want) return null;
  if (!got) return `no session in the engine; reference ${want!.action}/${want!.reason} rule ${want!.rule}`;
  if (!want) return `engine session ${got.action === Action.ALLOW ? 'allow' : 'deny'} reason ${got.reason} rule ${got.rule}; none in the reference`;
  const problems: string[] = [];
  if (got.action !== (want.action === 'allow' ? Action.ALLOW : Action.DENY)) problems.push(`action ${got.action}≠${want.action}`);
  if (got.reason !== Reason[want.reason]) problems.push(`reason ${got.reason}≠${want.reason}`);
  if (want.reason === 'POLICY' && got.rule !== want.rule) problems.push(`rule ${got.rule}≠${want.rule}`);
  if (got.generation !== want.generation) problems.push(`generation ${got.generation}≠${want.generation}`);
  if (got.packets !== want.packets) problems.push(`packets ${got.packets}≠${want.packets}`);
  if (((got.flags & SessionFlag.REPLY_CHECK) !== 0) !== want.replyCheck) problems.push(`reply-check ${(got.flags & SessionFlag.REPLY_CHECK) !== 0}≠${want.replyCheck}`);
  return problems.length ? problems.join(', ') : null;
}

export class HostileDifferential {
  readonly frames = new Map<string, number>();
  readonly reasons = new Map<string, number>();
  readonly disagreements = new Map<string, Disagreement>();
  framesRun = 0;
  replays = 0;

  constructor(
    private readonly engine: NativeEngine,
    private readonly ref: ReferenceDatapath,
    private readonly ifaces: readonly Interface[],
    private readonly policies: readonly { ir: PolicyIr; image: PolicyImage }[],
    /** Printed with every example: what reproduces it. */
    private readonly origin: string,
  ) {
    // which of a full bucket's denied sessions the engine evicted: the one it no longer holds
    ref.setDenyCache(Limits.DENIES_DEFAULT, (candidates) => candidates.find((c) => !engine.lookupSession(c.key)) ?? null);
  }

  private apply(policy: number | null): void {
    if (policy === null) {
      this.engine.uninstall();
      this.ref.setPolicy(null);
      return;
    }
    const p = this.policies[policy]!;
    const { generation } = this.engine.install(p.image);
    this.ref.setPolicy({ ir: p.ir, generation });
  }

  private start(run: Run): void {
    this.engine.clearFlowState();
    this.ref.clearFlowState();
    this.engine.setFailsafe([...run.failsafe]);
    this.ref.setFailsafe(run.failsafe);
    this.engine.setInterfaceRoles(run.topology.roles);
    this.ref.setInterfaceRoles(run.topology.roles);
    this.engine.setTenantNetworks(run.topology.nets);
    this.ref.setTenantNetworks(run.topology.nets);
    this.apply(run.policy);
  }

  private record(group: string, example: string): void {
    const d = this.disagreements.get(group);
    if (d) d.count++;
    else this.disagreements.set(group, { count: 1, example });
  }

  /**
   * Run `run` (number `index`); replay it frame by frame when anything differs. Each frame adds
   * one to one (reason, verdict) counter, so the counters are read only where the reference's
   * (reason, verdict) changes from one frame to the next: a stretch of frames that all expect
   * the same pair and together add exactly that many to it got it frame by frame.
   */
  execute(index: number, run: Run): void {
    this.start(run);
    let stats = byReason(this.engine.stats());
    let stretch = '';
    let length = 0;
    let counted = 0;
    const stretchHolds = () => {
      const now = byReason(this.engine.stats());
      const moved = delta(stats, now);
      stats = now;
      return length === 0 ? moved.size === 0 : moved.size === 1 && moved.get(stretch) === length;
    };
    let differs = false;
    for (const step of run.steps) {
      if (step.kind !== 'frame') {
        differs = !stretchHolds();
        length = 0;
        if (differs) break;
        this.apply(step.kind === 'install' ? step.policy : null);
        stats = byReason(this.engine.stats());
        continue;
      }
      const iface = this.ifaces[step.iface]!;
      const frame = Buffer.from(step.frame.buffer, step.frame.byteOffset, step.frame.length);
      const want = this.ref.run(step.frame, iface.ref);
      this.count(step.cls, want);
      counted++;
      const cell = `${want.reason}/${want.verdict}`;
      if (cell !== stretch) {
        // the stretch before this frame ends: check it before the engine runs the frame
        if (!stretchHolds()) {
          differs = true;
          break;
        }
        [stretch, length] = [cell, 0];
      }
      length++;
      differs = this.engine.testRun(frame, { ingressIfindex: iface.engine }).verdict !== want.verdict;
      if (differs) break;
    }
    differs ||= !stretchHolds() || this.suspectSessions().length > 0;
    if (differs) this.replay(index, run, counted);
  }

  private count(cls: string, want: Outcome): void {
    this.framesRun++;
    this.frames.set(cls, (this.frames.get(cls) ?? 0) + 1);
    this.reasons.set(want.reason, (this.reasons.get(want.reason) ?? 0) + 1);
  }

  /** Session keys (engine form) whose entries differ between the engine and the reference now, each with how. */
  private suspectSessions(): string[] {
    this.ref.settleEvictions();
    const suspects: string[] = [];
    const seen = new Set<string>();
    for (const s of this.engine.sessions()) {
      const key = engineSessionKey(s.key);
      seen.add(key);
      const why = sessionDiff(s.value, this.ref.sessions.get(key));
      if (why) suspects.push(`${key}: ${why}`);
    }
    for (const [key, want] of this.ref.sessions) if (!seen.has(key)) suspects.push(`${key}: ${sessionDiff(null, want)}`);
    return suspects;
  }

  /** Frame by frame from the same start: record each frame that differs, then start both sides afresh. */
  private replay(index: number, run: Run, counted: number): void {
    this.replays++;
    this.start(run);
    let stats = byReason(this.engine.stats());
    let frames = 0;
    run.steps.forEach((step, i) => {
      if (step.kind !== 'frame') {
        this.apply(step.kind === 'install' ? step.policy : null);
        stats = byReason(this.engine.stats());
        return;
      }
      const iface = this.ifaces[step.iface]!;
      const got = this.engine.testRun(Buffer.from(step.frame), { ingressIfindex: iface.engine });
      const want = this.ref.run(step.frame, iface.ref);
      if (++frames > counted) this.count(step.cls, want);
      const now = byReason(this.engine.stats());
      const moved = show(delta(stats, now));
      stats = now;
      const problems: string[] = [];
      if (got.verdict !== want.verdict || moved !== `${want.reason}/${want.verdict}+1`) problems.push(`engine ${moved}`);
      const refSession = want.session ? this.ref.sessions.get(want.session) : undefined;
      const sessionProblem = refSession ? sessionDiff(this.engine.lookupSession(refSession.key), refSession) : null;
      if (sessionProblem) problems.push(`session: ${sessionProblem}`);
      if (problems.length === 0) return;
      const group = `${want.because} → reference ${want.reason}/${want.verdict}; ${problems.join('; ').replace(/(rule|packets) \d+≠\d+/g, '$1')}`;
      this.record(group, `${this.origin}, run ${index}, step ${i}, class ${step.cls}, ifindex ${iface.ref}: ${hex(step.frame)}`);
      // both sides forget their state, so what follows is compared afresh
      this.engine.clearFlowState();
      this.ref.clearFlowState();
    });
    const left = this.suspectSessions();
    if (left.length) this.record(`session table differs at the end of a run (${left.length} keys)`, `${this.origin}, run ${index}: ${left[0]}`);
  }
}
