// SPDX-License-Identifier: Apache-2.0
// The contract between policy sources and the network controller: a source turns where policy
// lives (a folder, the local API, a NATS bucket) into a stream of candidate policy sets
// (src/policy/candidate.ts). The controller validates and compiles each set as a whole; a source
// never installs anything.
import type { PolicyCandidate } from '../policy/candidate.js';

export type { PolicyCandidate, PolicyText } from '../policy/candidate.js';

export interface PolicySourceHandle {
  /** Begin delivering candidates; the first one as soon as it is available. */
  start(deliver: (candidate: PolicyCandidate) => void): Promise<void>;
  close(): Promise<void>;
}
