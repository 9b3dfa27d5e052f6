// SPDX-License-Identifier: Apache-2.0
// The contract between policy sources and the network controller: a source turns where policy
// lives (a folder, the local API, a NATS bucket) into a stream of candidate policy sets. The
// controller validates and compiles each set as a whole; a source never installs anything.
import type { PolicySource as PolicyText } from '../policy/parse/documents.js';

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

export interface PolicySourceHandle {
  /** Begin delivering candidates; the first one as soon as it is available. */
  start(deliver: (candidate: PolicyCandidate) => void): Promise<void>;
  close(): Promise<void>;
}
