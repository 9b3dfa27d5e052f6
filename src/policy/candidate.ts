// SPDX-License-Identifier: Apache-2.0
// A candidate policy set: what the compiler is handed as a whole, the documents as text with where
// they came from. Policy sources (src/watcher) deliver candidates, the fleet's envelopes
// (src/fleet/policy-envelope.ts) assemble them, the controller compiles them. Types only.
import type { PolicySource as PolicyText } from './parse/documents.js';

export type { PolicyText };

/** One candidate policy set: every document, as text, that together make the policy. */
export interface PolicyCandidate {
  /** Where it came from, for audit records and `doorstep status`: `file:/path`, `api`, `nats:…`. */
  origin: string;
  /** The documents, each with the name errors will cite (a file path for folders). */
  sources: PolicyText[];
  /** Monotonic revision within the origin (a NATS KV revision, an API request counter). */
  revision?: number;
  /**
   * What the source itself found wrong with the set (an envelope that is unsigned or signed by a
   * key this enforcer does not trust): the controller rejects the candidate as a whole.
   */
  refusals?: { code: 'DS_E_POLICY_SIGNATURE' | 'DS_E_POLICY_SOURCE'; file: string; message: string }[];
}
