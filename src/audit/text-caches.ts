// SPDX-License-Identifier: Apache-2.0
// The texts that repeat in every audit record, made once: interned names (reasons, protocols, and
// per policy generation its rules, policies and version, all flat and hashed, as the JSON-lines
// encoder reads them character by character), and direct-mapped caches of address and
// millisecond-time texts. Pure: owns its caches, touches nothing else.
import { Reason } from '../abi/generated.js';
import { reasonLabel } from '../abi/records.js';
import { formatAddress } from '../policy/ir/cidr.js';
import { protocolLabel } from '../policy/ir/protocols.js';
import { ruleName, rulePolicy, type RuleNames } from './rule-names.js';

/**
 * The same string, flat and internalized: V8 keeps concatenations as trees ("cons strings") that
 * every later character read has to walk; a property key is always a flat, hashed string. For
 * names that end up in every record (rules, policies, interfaces), read character by character
 * by the JSON-lines encoder.
 */
export const intern = (s: string): string => Object.keys({ [s]: 0 })[0] ?? s;
const REASON_NAMES = Array.from({ length: Reason.COUNT }, (_, r) => intern(reasonLabel(r)));
export const reasonName = (r: number): string => REASON_NAMES[r] ?? String(r);
export const PROTOCOLS = Array.from({ length: 256 }, (_, p) => intern(protocolLabel(p)));
const OCTET_CODES = Array.from({ length: 256 }, (_, i) => Array.from(String(i), (c) => c.charCodeAt(0)));
const fromCodes = String.fromCharCode;
const codes = new Uint8Array(16);

/** Dotted-quad text as one flat string (one allocation; a concatenation would make a tree of five). */
function dottedQuad(a: number, b: number, c: number, d: number): string {
  let n = 0;
  for (const v of [a, b, c, d]) {
    if (n > 0) codes[n++] = 0x2e;
    const digits = OCTET_CODES[v]!;
    for (let i = 0; i < digits.length; i++) codes[n++] = digits[i]!;
  }
  const k = codes;
  switch (n) {
    case 7: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!);
    case 8: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!);
    case 9: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!);
    case 10: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!);
    case 11: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!);
    case 12: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!);
    case 13: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!, k[12]!);
    case 14: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!, k[12]!, k[13]!);
    default: return fromCodes(k[0]!, k[1]!, k[2]!, k[3]!, k[4]!, k[5]!, k[6]!, k[7]!, k[8]!, k[9]!, k[10]!, k[11]!, k[12]!, k[13]!, k[14]!);
  }
}

/** Session-start times from the coarse clock may trail the precise one by a tick. */


/** Names for one policy generation, built lazily and kept while its rule names are in the context. */
export class GenerationNames {
  private readonly rules: (string | undefined)[] = [];
  private readonly policies: (string | undefined)[] = [];
  readonly version: string | undefined;
  private readonly joined: string | undefined;

  constructor(readonly ruleNames: RuleNames | undefined) {
    this.version = ruleNames ? intern(ruleNames.version) : undefined;
    this.joined = ruleNames ? intern(ruleNames.policies.join('+')) : undefined;
  }

  rule(index: number): string {
    return (this.rules[index] ??= intern(ruleName(this.ruleNames, index)));
  }

  policy(index: number): string | undefined {
    if (this.policies[index] === undefined) {
      const p = this.ruleNames && rulePolicy(this.ruleNames, index);
      this.policies[index] = p === undefined ? this.joined : intern(p);
    }
    return this.policies[index];
  }
}

/** Direct-mapped caches for text that repeats: addresses and millisecond timestamps. */
export class TextCaches {
  private readonly v4Keys = new Int32Array(4096);
  private readonly v4Vals: (string | undefined)[] = new Array(4096).fill(undefined);
  private readonly v6Keys = new Int32Array(1024 * 4);
  private readonly v6Vals: (string | undefined)[] = new Array(1024).fill(undefined);
  private readonly msKeys = new Float64Array(64).fill(-1);
  private readonly msVals: string[] = new Array(64).fill('');

  /** The text of the 16-byte address (IPv4 mapped) at `at` in `a`. */
  address(family: number, a: Uint8Array, at = 0): string {
    if (family === 4) {
      const v = (a[at + 12]! << 24) | (a[at + 13]! << 16) | (a[at + 14]! << 8) | a[at + 15]!;
      const i = Math.imul(v, 0x9e3779b1) >>> 20;
      const hit = this.v4Vals[i];
      if (hit !== undefined && this.v4Keys[i] === v) return hit;
      const text = dottedQuad(a[at + 12]!, a[at + 13]!, a[at + 14]!, a[at + 15]!);
      this.v4Keys[i] = v;
      this.v4Vals[i] = text;
      return text;
    }
    const w0 = (a[at]! << 24) | (a[at + 1]! << 16) | (a[at + 2]! << 8) | a[at + 3]!;
    const w1 = (a[at + 4]! << 24) | (a[at + 5]! << 16) | (a[at + 6]! << 8) | a[at + 7]!;
    const w2 = (a[at + 8]! << 24) | (a[at + 9]! << 16) | (a[at + 10]! << 8) | a[at + 11]!;
    const w3 = (a[at + 12]! << 24) | (a[at + 13]! << 16) | (a[at + 14]! << 8) | a[at + 15]!;
    const i = Math.imul(w0 ^ Math.imul(w1, 0x85ebca6b) ^ Math.imul(w2, 0xc2b2ae35) ^ Math.imul(w3, 0x27d4eb2f), 0x9e3779b1) >>> 22;
    const k = this.v6Keys;
    const hit = this.v6Vals[i];
    if (hit !== undefined && k[i * 4] === w0 && k[i * 4 + 1] === w1 && k[i * 4 + 2] === w2 && k[i * 4 + 3] === w3) return hit;
    const text = formatAddress(6, at === 0 && a.length === 16 ? a : a.subarray(at, at + 16));
    k[i * 4] = w0;
    k[i * 4 + 1] = w1;
    k[i * 4 + 2] = w2;
    k[i * 4 + 3] = w3;
    this.v6Vals[i] = text;
    return text;
  }

  /** RFC 3339 UTC with milliseconds, for a wall-clock time in ms. */
  time(ms: number): string {
    const i = ms & 63;
    if (this.msKeys[i] === ms) return this.msVals[i]!;
    const text = new Date(ms).toISOString();
    this.msKeys[i] = ms;
    this.msVals[i] = text;
    return text;
  }
}
