// SPDX-License-Identifier: Apache-2.0
// Policy analysis (src/policy/tools/lint.ts): a corpus of policies with known findings, and properties
// checked against the reference evaluator (src/policy/tables/evaluate.ts, first match over the IR, which
// shares no code with the class tables lint reasons on) on random policies with tenants:
// - removing a rule reported unmatchable, shadowed or redundant changes no verdict on random
//   packets, nor on any finding's example flow;
// - a shadowed rule's example meets it, and an earlier rule decides it;
// - an overlap's example meets both rules, the earlier decides it, and their actions differ;
// - every other rule is needed: removing it flips the verdict of the example lint gives for it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileIr } from '../../src/policy/compile.js';
import { parseCidr } from '../../src/policy/ir/cidr.js';
import { evaluate } from '../../src/policy/tables/evaluate.js';
import type { FlowTuple, IrRule, PolicyIr } from '../../src/policy/ir/ir.js';
import { flowText, lintPolicy, ruleEntries, type LintFinding } from '../../src/policy/tools/lint.js';
import { buildClassTables } from '../../src/policy/tables/tables.js';
import { addr16, type FrameSpec } from '../lib/packet.js';
import { prng, Random, randomPacket, randomPolicy, randomTenant } from '../lib/random-policy.js';

const doc = (rules: string[], defaultAction = 'deny') =>
  `apiVersion: doorstep/v1\nkind: NetworkPolicy\nmetadata: { name: p }\nspec:\n  defaultAction: ${defaultAction}\n  rules:\n${rules.map((r) => `    - ${r}`).join('\n')}\n`;

function lint(text: string) {
  const { ir, model } = compileIr([{ file: 'p.yaml', text }]);
  return { ir, report: lintPolicy(ir, buildClassTables(ir), ruleEntries(model)) };
}

const kinds = (findings: LintFinding[]) => findings.map((f) => `${f.kind} ${f.rules.map((r) => r.id.split('/')[1]).join(',')}`).sort();

/** The IR without rule `index` (the others keep their order; indexes are not compared). */
function without(ir: PolicyIr, index: number): PolicyIr {
  return { ...ir, rules: ir.rules.filter((r) => r.index !== index) };
}

/** Does `rule` alone match the flow? */
function meets(ir: PolicyIr, rule: IrRule, t: FlowTuple): boolean {
  return evaluate({ ...ir, rules: [rule] }, t).rule === rule.index;
}

function tupleOf(spec: FrameSpec, tenant: number): FlowTuple {
  const v4 = isIPv4(spec.src);
  const t: FlowTuple = { family: v4 ? 4 : 6, src: v4 ? addr16(spec.src).subarray(12) : addr16(spec.src), dst: v4 ? addr16(spec.dst).subarray(12) : addr16(spec.dst), protocol: spec.proto, tenant };
  if ([6, 17, 132].includes(spec.proto)) t.dport = spec.dport ?? 0;
  if (spec.proto === 1 || spec.proto === 58) {
    t.icmpType = spec.icmpType ?? 0;
    t.icmpCode = spec.icmpCode ?? 0;
  }
  return t;
}

describe('lint: a corpus of known findings', () => {
  it('finds a rule shadowed by a broader earlier one, with a witness that shows it', () => {
    const { ir, report } = lint(doc([
      '{ name: web, action: allow, from: [10.0.0.0/8], to: [10.1.0.0/16], protocol: tcp, ports: [80, 443] }',
      '{ name: web-one, action: deny, from: [10.2.0.0/16], to: [10.1.2.0/24], protocol: tcp, ports: [443] }',
    ]));
    // and the pair is an overlap: the allow comes first, so the deny never decides
    assert.deepEqual(kinds(report.findings), ['overlap web,web-one', 'shadowed web-one,web']);
    const f = report.findings.find((x) => x.kind === 'shadowed')!;
    assert.equal(evaluate(ir, f.example!).rule, 1);
    assert.ok(meets(ir, ir.rules[1]!, f.example!));
    assert.match(f.message, /p\.yaml:\d+/);
  });

  it('finds a deny that the default repeats, and an allow/deny pair only order decides', () => {
    const { ir, report } = lint(doc([
      '{ name: block-feed, action: deny, from: [192.0.2.0/24], to: [any], protocol: udp }',
      '{ name: dns, action: allow, from: [any], to: [10.0.0.53/32], protocol: udp, ports: [53] }',
    ]));
    // block-feed decides 192.0.2.x → 10.0.0.53 udp/53 against dns's allow: needed, and an overlap;
    // elsewhere it repeats the default, which does not make it redundant
    assert.deepEqual(kinds(report.findings), ['overlap block-feed,dns']);
    const o = report.findings[0]!;
    assert.ok(meets(ir, ir.rules[0]!, o.example!) && meets(ir, ir.rules[1]!, o.example!));
    assert.equal(evaluate(ir, o.example!).rule, 1);
    assert.equal(report.needed.length, 2);

    const alone = lint(doc(['{ name: block-feed, action: deny, from: [192.0.2.0/24], to: [any], protocol: udp }']));
    assert.deepEqual(kinds(alone.report.findings), ['redundant block-feed']);
  });

  it('finds a redundant rule in front of a later rule of the same action', () => {
    const { report } = lint(doc([
      '{ name: narrow, action: allow, from: [10.1.0.0/24], to: [10.9.0.1/32], protocol: tcp, ports: [22] }',
      '{ name: broad, action: allow, from: [10.0.0.0/8], to: [10.9.0.0/24], protocol: tcp }',
    ]));
    assert.deepEqual(kinds(report.findings), ['redundant narrow,broad']);
  });

  it('finds port ranges that never decide, and a rule that can never match', () => {
    const { report } = lint(doc([
      '{ name: ssh, action: deny, from: [any], to: [10.0.0.0/8], protocol: tcp, ports: [22] }',
      '{ name: admin, action: allow, from: [10.5.0.0/16], to: [10.0.0.1/32], protocol: tcp, ports: [22, 8443] }',
      '{ name: mixed, action: allow, from: [10.0.0.0/8], to: ["fd00::/64"], protocol: tcp }',
    ]));
    assert.deepEqual(kinds(report.findings), ['dead-ports admin', 'overlap ssh,admin', 'unmatchable mixed']);
    assert.match(report.findings.find((f) => f.kind === 'dead-ports')!.message, /port range 22 never decides/);
  });

  it('finds a group or CIDR in a rule that never decides a flow', () => {
    const { report } = lint(
      doc([
        '{ name: block-a, action: deny, from: [10.1.0.0/16], to: [10.9.0.1/32], protocol: tcp, ports: [22] }',
        '{ name: ops-ssh, action: allow, from: [partners, 10.1.2.0/24], to: [10.9.0.1/32], protocol: tcp, ports: [22] }',
        '{ name: web, action: allow, from: [10.2.0.0/16], to: [internal, "fd00:9::/64"], protocol: tcp, ports: [443] }',
      ]) + '---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: { name: partners }\nspec: { cidrs: [192.0.2.0/24] }\n---\napiVersion: doorstep/v1\nkind: AddressGroup\nmetadata: { name: internal }\nspec: { cidrs: [10.9.0.0/24] }\n',
    );
    // 10.1.2.0/24 is all under block-a; an IPv6 destination for IPv4 sources reaches nothing
    assert.deepEqual(kinds(report.findings), ['dead-address ops-ssh', 'dead-address web', 'overlap block-a,ops-ssh']);
    const dead = report.findings.filter((f) => f.kind === 'dead-address');
    assert.deepEqual(dead.map((f) => [f.side, f.addresses]), [['from', ['10.1.2.0/24']], ['to', ['fd00:9::/64']]]);
    assert.match(dead[0]!.message, /from entry 10\.1\.2\.0\/24 never decides a flow/);
  });

  it('reasons per tenant: a rule scoped to one tenant does not shadow the same rule for another', () => {
    const { report } = lint(doc([
      '{ name: a-web, action: allow, from: [any], to: [10.0.0.0/8], protocol: tcp, ports: [80], tenants: [vpc-a] }',
      '{ name: b-web, action: allow, from: [any], to: [10.0.0.0/8], protocol: tcp, ports: [80], tenants: [vpc-b] }',
      '{ name: all-web, action: allow, from: [any], to: [10.0.0.0/8], protocol: tcp, ports: [80] }',
    ]));
    // a-web and b-web are redundant (all-web allows the same), never shadowed; all-web is needed
    assert.deepEqual(kinds(report.findings), ['redundant a-web,all-web', 'redundant b-web,all-web']);
  });

  it('finds nothing in a policy whose every rule matters', () => {
    const { report } = lint(doc([
      '{ name: web, action: allow, from: [any], to: [10.1.0.0/16], protocol: tcp, ports: [443] }',
      '{ name: dns, action: allow, from: [any], to: [10.0.0.53/32], protocol: udp, ports: [53] }',
    ]));
    assert.deepEqual(report.findings, []);
    assert.equal(report.needed.length, 2);
    assert.match(flowText(report.needed[0]!.example), /→ 10\.1\.\d+\.\d+ tcp\/443/);
  });
});

describe('doorstep lint and validate', () => {
  const main = join(import.meta.dirname, '../../src/cli/main.js');
  const dir = mkdtempSync(join(tmpdir(), 'doorstep-lint-'));
  const file = join(dir, 'p.yaml');
  writeFileSync(file, doc([
    '{ name: web, action: allow, from: [10.0.0.0/8], to: [10.1.0.0/16], protocol: tcp, ports: [80, 443] }',
    '{ name: web-one, action: deny, from: [10.2.0.0/16], to: [10.1.2.0/24], protocol: tcp, ports: [443] }',
  ]));
  const cli = (args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });

  it('lint names each finding with file:line and an example; --strict exits 3 on findings', () => {
    try {
      const table = cli(['lint', file]);
      assert.equal(table.status, 0, table.stderr);
      assert.match(table.stdout, new RegExp(`${file}:\\d+: shadowed: rule p/web-one \\(${file}:\\d+\\) is shadowed: .* e\\.g\\. 10\\.2\\.\\d+\\.\\d+ → 10\\.1\\.2\\.\\d+ tcp/443 is decided by p/web`));
      assert.match(table.stdout, /lint: 2 rules, \d+ cells: 1 shadowed, 1 overlap/);
      const strict = cli(['lint', file, '--strict', '-o', 'json']);
      assert.equal(strict.status, 3);
      const json = JSON.parse(strict.stdout) as { findings: { kind: string; example?: { src: string; text: string } }[] };
      assert.deepEqual(json.findings.map((f) => f.kind).sort(), ['overlap', 'shadowed']);
      assert.match(json.findings[0]!.example!.src, /^10\.2\./);
      const validate = cli(['validate', file]);
      assert.equal(validate.status, 0, validate.stderr);
      assert.match(validate.stdout, /warning: .*shadowed: rule p\/web-one/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lint: properties against the reference evaluator', () => {
  it('holds on random policies with tenants', () => {
    const r = new Random(prng(0x11e7));
    let checked = 0;
    const seen = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const p = randomPolicy(r, 16, { tenants: i % 2 === 0 });
      let ir: PolicyIr;
      let model: ReturnType<typeof compileIr>['model'];
      try {
        ({ ir, model } = compileIr([{ file: 'p.yaml', text: p.yaml }]));
      } catch {
        continue; // a random policy the validator refuses
      }
      const report = lintPolicy(ir, buildClassTables(ir), ruleEntries(model));
      const packets = Array.from({ length: 150 }, () => tupleOf(randomPacket(r, p), randomTenant(r, p)));
      const examples = [...report.findings.flatMap((f) => (f.example ? [f.example] : [])), ...report.needed.map((n) => n.example)];
      const flows = [...packets, ...examples];
      const context = () => `policy ${i}:\n${p.yaml}\nfindings:\n${report.findings.map((f) => f.message).join('\n')}`;
      const removable = new Set<number>();
      for (const f of report.findings) {
        seen.set(f.kind, (seen.get(f.kind) ?? 0) + 1);
        const [first, second] = f.rules;
        const rule = ir.rules[first!.index - 1]!;
        if (f.kind === 'unmatchable' || f.kind === 'shadowed' || f.kind === 'redundant') removable.add(rule.index);
        if (f.kind === 'shadowed') {
          assert.ok(meets(ir, rule, f.example!), `shadowed example does not meet ${rule.id}\n${context()}`);
          const d = evaluate(ir, f.example!).rule;
          assert.ok(d !== 0 && d < rule.index && d === second!.index, `shadowed example decided by ${d}\n${context()}`);
        }
        if (f.kind === 'redundant') assert.equal(evaluate(ir, f.example!).rule, rule.index, context());
        if (f.kind === 'dead-address') {
          // no flow from (to) the entry is decided by the rule: random packets and the entry's own bounds
          const inside = f.addresses!.flatMap((text) => {
            const c = parseCidr(text) as { family: 4 | 6; addr: Uint8Array; len: number };
            const last = Uint8Array.from(c.addr);
            for (let b = c.len; b < c.addr.length * 8; b++) last[b >> 3]! |= 0x80 >> (b & 7);
            return [c.addr, last].map((addr) => ({ family: c.family, addr }));
          });
          for (const t of flows) for (const a of inside) {
            if (a.family !== t.family) continue;
            const moved = f.side === 'from' ? { ...t, src: a.addr } : { ...t, dst: a.addr };
            assert.notEqual(evaluate(ir, moved).rule, rule.index, `dead ${f.side} entry ${f.addresses!.join(',')} of ${rule.id} decides ${flowText(moved)}\n${context()}`);
          }
        }
        if (f.kind === 'overlap') {
          const later = ir.rules[second!.index - 1]!;
          assert.ok(meets(ir, rule, f.example!) && meets(ir, later, f.example!), `overlap example misses a rule\n${context()}`);
          assert.equal(evaluate(ir, f.example!).rule, rule.index, context());
          assert.notEqual(rule.action, later.action, context());
        }
      }
      for (const index of removable) {
        const fewer = without(ir, index);
        for (const t of flows) assert.equal(evaluate(fewer, t).action, evaluate(ir, t).action, `removing rule ${index} changed ${flowText(t)}\n${context()}`);
      }
      for (const n of report.needed) {
        assert.ok(!removable.has(n.rule), context());
        assert.equal(evaluate(ir, n.example).rule, n.rule, `needed example of ${n.rule} not decided by it\n${context()}`);
        assert.notEqual(evaluate(without(ir, n.rule), n.example).action, evaluate(ir, n.example).action, `removing needed rule ${n.rule} flips nothing\n${context()}`);
      }
      // every rule is accounted for: needed, or removable
      assert.equal(report.needed.length + removable.size, ir.rules.length, context());
      checked++;
    }
    assert.ok(checked > 300, `only ${checked} random policies compiled`);
    for (const kind of ['shadowed', 'redundant', 'overlap', 'dead-address', 'dead-ports']) assert.ok((seen.get(kind) ?? 0) > 3, `only ${seen.get(kind) ?? 0} ${kind} findings: the property saw too few`);
  });
});
