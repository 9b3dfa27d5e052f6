// SPDX-License-Identifier: Apache-2.0
// Address parsing, canonical text and prefix-set merging (src/policy/ir/cidr.ts, cidr-set.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, parseCidr, type CidrParse } from '../../src/policy/ir/cidr.js';
import { ANY_CIDRS, mergeCidrs } from '../../src/policy/ir/cidr-set.js';
import type { Cidr } from '../../src/policy/ir/ir.js';

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if ('problem' in parsed) throw new Error(parsed.problem);
  return parsed;
}

function problemOf(parsed: CidrParse): string {
  assert.ok('problem' in parsed, 'expected a problem');
  return parsed.problem;
}

const texts = (list: Cidr[]) => list.map((c) => c.text);

test('parses IPv4 prefixes and bare addresses into network-order bytes', () => {
  const c = cidr('10.20.0.0/16');
  assert.equal(c.family, 4);
  assert.deepEqual([...c.addr], [10, 20, 0, 0]);
  assert.equal(c.len, 16);
  assert.equal(c.text, '10.20.0.0/16');
  assert.equal(cidr('192.0.2.7').text, '192.0.2.7/32');
  assert.equal(cidr('0.0.0.0/0').len, 0);
  assert.equal(cidr('255.255.255.255/32').text, '255.255.255.255/32');
});

test('parses IPv6 and writes it in RFC 5952 form', () => {
  assert.equal(cidr('2001:DB8:0:0:0:0:0:0/32').text, '2001:db8::/32');
  assert.equal(cidr('2001:db8::1').text, '2001:db8::1/128');
  assert.equal(cidr('2001:db8:0:1:0:0:0:1').text, '2001:db8:0:1::1/128');
  assert.equal(cidr('2001:0:0:1:0:0:0:1').text, '2001:0:0:1::1/128', 'the longest zero run is compressed');
  assert.equal(cidr('2001:db8:0:0:1:0:0:1').text, '2001:db8::1:0:0:1/128', 'of equal runs, the first');
  assert.equal(cidr('2001:db8:0:1:1:1:1:1').text, '2001:db8:0:1:1:1:1:1/128', 'a single zero group stays');
  assert.equal(cidr('::/0').text, '::/0');
  assert.equal(cidr('::1').text, '::1/128');
  assert.equal(cidr('::ffff:1.2.3.4').text, '::ffff:102:304/128');
  assert.deepEqual([...cidr('2001:db8::/32').addr], [0x20, 0x01, 0x0d, 0xb8, ...new Array(12).fill(0)]);
});

test('refuses host bits and says which prefix to write', () => {
  assert.match(problemOf(parseCidr('10.0.0.1/8')), /host bits set; write 10\.0\.0\.0\/8 .* or 10\.0\.0\.1\/32/);
  assert.match(problemOf(parseCidr('2001:db8::1/32')), /write 2001:db8::\/32/);
});

test('refuses malformed addresses and lengths', () => {
  for (const bad of ['300.1.1.1', '10.0.0', '10.0.0.0.0', '010.0.0.0/8', 'fe80::1%eth0', 'a.b.c.d', '::g']) {
    assert.match(problemOf(parseCidr(bad)), /not an IP address or CIDR/, bad);
  }
  for (const bad of ['10.0.0.0/33', '10.0.0.0/08', '1.2.3.4/', '::/129', '10.0.0.0/-1', '10.0.0.0/1a']) {
    assert.match(problemOf(parseCidr(bad)), /invalid prefix length/, bad);
  }
});

test('the IPv4 fast path agrees with the general parser', () => {
  // Random dotted quads (some invalid, some with host bits) against an arithmetic model.
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < 5000; i++) {
    const octets = [next() % 300, next() % 256, next() % 256, next() % 256];
    const len = next() % 40;
    const text = `${octets.join('.')}${next() % 3 === 0 ? '' : `/${len}`}`;
    const parsed = parseCidr(text);
    const valid = octets[0]! <= 255 && (!text.includes('/') || len <= 32);
    if (!valid) {
      assert.ok('problem' in parsed, text);
      continue;
    }
    const value = octets.reduce((a, o) => a * 256 + o, 0);
    const l = text.includes('/') ? len : 32;
    const aligned = l === 32 || value % 2 ** (32 - l) === 0;
    assert.equal('problem' in parsed, !aligned, text);
    if (!('problem' in parsed)) assert.deepEqual([...parsed.addr], octets, text);
  }
});

test('prefix containment is family-aware', () => {
  const net = cidr('10.0.0.0/8');
  assert.ok(cidrContains(net, 4, new Uint8Array([10, 1, 2, 3])));
  assert.ok(!cidrContains(net, 4, new Uint8Array([11, 0, 0, 0])));
  assert.ok(!cidrContains(net, 6, new Uint8Array(16)));
  assert.ok(cidrContains(cidr('10.0.0.0/9'), 4, new Uint8Array([10, 127, 255, 255])));
  assert.ok(!cidrContains(cidr('10.0.0.0/9'), 4, new Uint8Array([10, 128, 0, 0])));
  assert.ok(cidrContains(ANY_CIDRS[1]!, 6, cidr('2001:db8::1').addr));
});

test('merging collapses overlaps and sibling pairs into the minimal prefix list', () => {
  assert.deepEqual(texts(mergeCidrs(['10.0.0.0/8', '10.1.0.0/16'].map(cidr))), ['10.0.0.0/8']);
  assert.deepEqual(texts(mergeCidrs(['10.0.1.0/24', '10.0.0.0/24'].map(cidr))), ['10.0.0.0/23']);
  assert.deepEqual(texts(mergeCidrs(['10.0.1.0/24', '10.0.2.0/24'].map(cidr))), ['10.0.1.0/24', '10.0.2.0/24'], 'adjacent but not siblings');
  assert.deepEqual(
    texts(mergeCidrs(['10.0.0.0/25', '10.0.0.128/26', '10.0.0.192/26', '10.0.1.0/24'].map(cidr))),
    ['10.0.0.0/23'],
  );
  assert.deepEqual(texts(mergeCidrs(['0.0.0.0/1', '128.0.0.0/1'].map(cidr))), ['0.0.0.0/0']);
  assert.deepEqual(texts(mergeCidrs(['10.0.0.0/8', '10.0.0.0/8'].map(cidr))), ['10.0.0.0/8']);
});

test('merging sorts IPv4 before IPv6, then by address', () => {
  const merged = mergeCidrs(['2001:db8::/32', '192.0.2.0/24', '2001:db8:1::/48', '10.0.0.0/8', '::1'].map(cidr));
  assert.deepEqual(texts(merged), ['10.0.0.0/8', '192.0.2.0/24', '::1/128', '2001:db8::/32']);
});

test('merging IPv6 collapses siblings and ranges', () => {
  assert.deepEqual(texts(mergeCidrs(['2001:db8::/33', '2001:db8:8000::/33'].map(cidr))), ['2001:db8::/32']);
  assert.deepEqual(texts(mergeCidrs(['::/1', '8000::/1'].map(cidr))), ['::/0']);
  assert.deepEqual(texts(mergeCidrs(['2001:db8::1', '2001:db8::2', '2001:db8::3'].map(cidr))), ['2001:db8::1/128', '2001:db8::2/127']);
});

test('merging covers exactly the same addresses (random check)', () => {
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let round = 0; round < 200; round++) {
    const inputs: Cidr[] = [];
    for (let i = 0; i < 8; i++) {
      const len = 20 + (next() % 9);
      const value = (0x0a000000 + ((next() % 4096) << 8)) >>> 0;
      const network = (value & (-1 << (32 - len))) >>> 0;
      inputs.push(cidr(`${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${len}`));
    }
    const merged = mergeCidrs(inputs);
    for (let i = 1; i < merged.length; i++) assert.ok(merged[i - 1]!.text !== merged[i]!.text);
    for (let probe = 0; probe < 200; probe++) {
      const v = (0x0a000000 + (next() % (1 << 21))) >>> 0;
      const addr = new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
      assert.equal(
        merged.some((c) => cidrContains(c, 4, addr)),
        inputs.some((c) => cidrContains(c, 4, addr)),
      );
    }
    assert.deepEqual(texts(mergeCidrs(merged)), texts(merged), 'merging is idempotent');
  }
});
