// SPDX-License-Identifier: Apache-2.0
// The capability check reads CapEff and names what is missing (the kernel side: test/e2e/service.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DoorstepError } from '../../src/errors.js';
import { checkCapabilities, effectiveCapabilities, missingCapabilities } from '../../src/engine/capabilities.js';

// CapEff lines as the kernel prints them: full root, and the unit's four (bits 12, 21, 38, 39)
const ROOT = 'Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n';
const UNIT = 'CapEff:\t000000c000201000\n';
const NO_BPF = 'CapEff:\t0000004000201000\n';
const NOTHING = 'CapEff:\t0000000000000000\n';

describe('capabilities', () => {
  it('reads the effective set', () => {
    assert.equal(effectiveCapabilities(UNIT), (1n << 12n) | (1n << 21n) | (1n << 38n) | (1n << 39n));
    assert.equal(effectiveCapabilities('Name: x\n'), undefined);
  });

  it('passes with full root and with exactly the unit\'s capabilities', () => {
    checkCapabilities(ROOT);
    checkCapabilities(UNIT);
  });

  it('names the missing capability, with DS_E_CAPABILITY', () => {
    assert.deepEqual(missingCapabilities(effectiveCapabilities(NO_BPF)!), ['CAP_BPF']);
    assert.throws(() => checkCapabilities(NO_BPF), (err: unknown) => err instanceof DoorstepError && err.code === 'DS_E_CAPABILITY' && /missing capability CAP_BPF /.test(err.message) && /\+bpf/.test(err.hint ?? ''));
  });

  it('names every missing one, in a stable order', () => {
    assert.deepEqual(missingCapabilities(0n), ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON', 'CAP_SYS_ADMIN']);
    assert.throws(() => checkCapabilities(NOTHING), /missing capabilities CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN/);
  });
});
