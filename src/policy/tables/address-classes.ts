// SPDX-License-Identifier: Apache-2.0
// One address dimension (source or destination, one family) of the class tables: the distinct
// prefixes of all rules' address sets, each mapped to the class of rules whose set contains it —
// its own rules plus those of every enclosing prefix. Found with one sort by (address, length)
// and a stack sweep (enclosing prefixes come first in that order), never pairwise.
// IPv4 runs on numbers in typed arrays: a 1,000,000-prefix dimension must stay well under a second.

import { DoorstepError } from '../../errors.js';
import type { Cidr, IrRule, PrefixClass } from '../ir/ir.js';
import { cidrContains, ipv4Number } from '../ir/cidr.js';
import type { RuleSetInterner } from './rule-sets.js';

/** The distinct prefixes of one dimension, sorted by (address, length), with the rules listing each. */
export interface SortedPrefixes {
  cidrs: Cidr[];
  /** Rules that list prefix p: ownRules[ownStart[p] .. ownStart[p + 1]), ascending. */
  ownStart: Int32Array;
  ownRules: Int32Array;
  /** True when prefix `outer` contains prefix `inner` (both indexes into `cidrs`). */
  contains(outer: number, inner: number): boolean;
}

export type Side = 'src' | 'dst';

/** `rules` must be in index order (as in the IR). */
export function sortPrefixes(rules: readonly IrRule[], side: Side, family: 4 | 6): SortedPrefixes {
  return family === 4 ? sortPrefixes4(rules, side) : sortPrefixes6(rules, side);
}

/** Each prefix's class: interned set of the rules whose address set contains the prefix. */
export function assignClasses(prefixes: SortedPrefixes, interner: RuleSetInterner, ruleCount: number): PrefixClass[] {
  const { cidrs, ownStart, ownRules, contains } = prefixes;
  const count = cidrs.length;
  const classes = new Int32Array(count);
  const stack = new Int32Array(count);
  let depth = 0;
  // (enclosing class, own rules) → class: the same extension is common, and memoizing it skips the union.
  const extendOne = new Map<number, number>();
  const extendMany = new Map<string, number>();
  for (let p = 0; p < count; p++) {
    while (depth > 0 && !contains(stack[depth - 1]!, p)) depth--;
    const parent = depth > 0 ? classes[stack[depth - 1]!]! : 0;
    const start = ownStart[p]!;
    const end = ownStart[p + 1]!;
    let cls: number;
    if (end - start === 1) {
      const rule = ownRules[start]!;
      if (parent === 0) cls = interner.internOne(rule);
      else {
        const key = parent * (ruleCount + 1) + rule;
        cls = extendOne.get(key) ?? 0;
        if (cls === 0) {
          cls = interner.internUnion(parent, [rule]);
          extendOne.set(key, cls);
        }
      }
    } else {
      const own = ownRules.subarray(start, end);
      if (parent === 0) cls = interner.intern(own);
      else {
        const key = `${parent}:${own.join(',')}`;
        cls = extendMany.get(key) ?? 0;
        if (cls === 0) {
          cls = interner.internUnion(parent, own);
          extendMany.set(key, cls);
        }
      }
    }
    classes[p] = cls;
    stack[depth++] = p;
  }
  const out: PrefixClass[] = new Array(count);
  for (let p = 0; p < count; p++) out[p] = { cidr: cidrs[p]!, cls: classes[p]! };
  return out;
}

/** Entry index bits in the 64-bit sort key of sortPrefixes4. */
const ENTRY_BITS = 26;
const ENTRY_MASK = 2 ** ENTRY_BITS - 1;
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

function sortPrefixes4(rules: readonly IrRule[], side: Side): SortedPrefixes {
  let total = 0;
  for (const rule of rules) for (const c of rule[side]) if (c.family === 4) total++;
  if (total > ENTRY_MASK) {
    throw new DoorstepError('DS_E_TABLE_BUDGET', `the ${side}4 address sets list ${total.toLocaleString('en-US')} prefixes in all; the compiler handles up to ${ENTRY_MASK.toLocaleString('en-US')}`, {
      hint: 'merge address groups that rules share, or split the policy',
    });
  }
  // One 64-bit key per (rule, prefix) entry: address (high word), then length and entry index
  // (low word). A native sort of the keys orders entries by (address, length, rule) at once.
  const keys = new BigUint64Array(total);
  const words = new Uint32Array(keys.buffer);
  const [low, high] = LITTLE_ENDIAN ? [0, 1] : [1, 0];
  const owners = new Int32Array(total);
  const refs: Cidr[] = new Array(total);
  let e = 0;
  for (const rule of rules) {
    for (const c of rule[side]) {
      if (c.family !== 4) continue;
      words[2 * e + high] = ipv4Number(c.addr);
      words[2 * e + low] = (c.len << ENTRY_BITS) | e;
      owners[e] = rule.index;
      refs[e] = c;
      e++;
    }
  }
  keys.sort();

  const cidrs: Cidr[] = new Array(total); // trimmed below: growing a million-entry array costs more
  const addr = new Uint32Array(total);
  const len = new Uint8Array(total);
  const ownStart = new Int32Array(total + 1);
  const ownRules = new Int32Array(total);
  let count = 0;
  for (let k = 0; k < total; k++) {
    const a = words[2 * k + high]!;
    const lowWord = words[2 * k + low]!;
    const l = lowWord >>> ENTRY_BITS;
    const entry = lowWord & ENTRY_MASK;
    if (count === 0 || addr[count - 1] !== a || len[count - 1] !== l) {
      cidrs[count] = refs[entry]!;
      addr[count] = a;
      len[count] = l;
      ownStart[count] = k;
      count++;
    }
    ownRules[k] = owners[entry]!; // entries of one prefix come in entry order, so rules ascend
  }
  ownStart[count] = total;
  cidrs.length = count;
  const contains = (outer: number, inner: number): boolean => {
    const l = len[outer]!;
    return l <= len[inner]! && (l === 0 || ((addr[outer]! ^ addr[inner]!) >>> (32 - l)) === 0);
  };
  return { cidrs, ownStart: ownStart.subarray(0, count + 1), ownRules, contains };
}

function sortPrefixes6(rules: readonly IrRule[], side: Side): SortedPrefixes {
  const entries: { key: string; owner: number; cidr: Cidr }[] = [];
  for (const rule of rules) {
    for (const c of rule[side]) if (c.family === 6) entries.push({ key: prefixKey6(c), owner: rule.index, cidr: c });
  }
  const keys = [...new Set(entries.map((x) => x.key))].sort();
  const idOf = new Map(keys.map((k, i) => [k, i]));
  const count = keys.length;
  const prefixOf = new Int32Array(entries.length);
  const owners = new Int32Array(entries.length);
  const ownStart = new Int32Array(count + 1);
  const cidrs: Cidr[] = new Array(count);
  entries.forEach((x, i) => {
    const p = idOf.get(x.key)!;
    prefixOf[i] = p;
    owners[i] = x.owner;
    if (ownStart[p + 1] === 0) cidrs[p] = x.cidr;
    ownStart[p + 1] = ownStart[p + 1]! + 1;
  });
  const ownRules = fillOwnRules(ownStart, prefixOf, owners);
  const contains = (outer: number, inner: number): boolean => {
    const o = cidrs[outer]!;
    const i = cidrs[inner]!;
    return o.len <= i.len && cidrContains(o, 6, i.addr);
  };
  return { cidrs, ownStart, ownRules, contains };
}

/** Sorts like (address, length): fixed-width hex of the address, then of the length. */
function prefixKey6(c: Cidr): string {
  let key = '';
  for (const byte of c.addr) key += byte.toString(16).padStart(2, '0');
  return key + c.len.toString(16).padStart(2, '0');
}

/** Turns per-prefix counts (in ownStart[p + 1]) into offsets and fills the owners in entry order. */
function fillOwnRules(ownStart: Int32Array, prefixOf: Int32Array, owners: Int32Array): Int32Array {
  for (let p = 1; p < ownStart.length; p++) ownStart[p]! += ownStart[p - 1]!;
  const next = ownStart.slice(0, ownStart.length - 1);
  const ownRules = new Int32Array(prefixOf.length);
  for (let i = 0; i < prefixOf.length; i++) ownRules[next[prefixOf[i]!]!++] = owners[i]!;
  return ownRules;
}
