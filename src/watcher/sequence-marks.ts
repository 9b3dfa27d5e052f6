// SPDX-License-Identifier: Apache-2.0
// Replay protection that does not trust clocks: per key of a policy bucket, the highest sequence
// number of a signed set this enforcer accepted, and that set's signature (the same set seen again,
// after a restart or a new watch, is not a replay). A set is accepted only above the mark, or as the
// very set that made it. The marks live in the state dir (one file per bucket, written atomically)
// so an older signed set put back while the agent restarts is refused too; an in-memory store with
// the same semantics serves the unit tests.
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile, writeAtomic } from '../host/state-store.js';
import type { PolicyEnvelope } from '../fleet/policy-envelope.js';

/** The highest set accepted under a key: its sequence, and its signature value. */
export interface SequenceMark {
  sequence: number;
  signature: string;
}

export type SequenceMarks = ReadonlyMap<string, SequenceMark>;

/** Where the marks are kept between runs. */
export interface SequenceMarkStore {
  /** The marks kept; a store that cannot be read reports it through `onProblem` and gives none. */
  load(onProblem: (message: string) => void): Map<string, SequenceMark>;
  save(marks: SequenceMarks): void;
}

/** Why the signed `envelope` under `key` is a replay against `mark`, or undefined when it is not. */
export function replayProblem(envelope: PolicyEnvelope, mark: SequenceMark | undefined): string | undefined {
  const sequence = envelope.sequence ?? 0;
  if (!mark || sequence > mark.sequence) return undefined;
  if (sequence === mark.sequence && envelope.signature?.value === mark.signature) return undefined;
  const what = envelope.removed ? 'tombstone' : 'set';
  return sequence === mark.sequence
    ? `has sequence ${sequence}, the number of another set this enforcer accepted: a ${what} signed twice with one number is refused; publish it again (\`doorstep apply --nats\` takes the next number)`
    : `has sequence ${sequence}, not above ${mark.sequence} accepted before: a replayed older ${what}; publish it again (\`doorstep apply --nats\` takes the next number)`;
}

/** The mark `envelope` makes once accepted. */
export const markOf = (envelope: PolicyEnvelope): SequenceMark => ({ sequence: envelope.sequence ?? 0, signature: envelope.signature?.value ?? '' });

export class MemoryMarkStore implements SequenceMarkStore {
  private kept = new Map<string, SequenceMark>();
  load(): Map<string, SequenceMark> {
    return new Map(this.kept);
  }
  save(marks: SequenceMarks): void {
    this.kept = new Map(marks);
  }
}

const fileSchema = z.strictObject({
  format: z.literal(1),
  bucket: z.string(),
  marks: z.record(z.string(), z.strictObject({ sequence: z.number().int().nonnegative(), signature: z.string() })),
});

/** The marks of `bucket` in `<stateDir>/sequences.<bucket>.json`. */
export class FileMarkStore implements SequenceMarkStore {
  readonly path: string;
  constructor(stateDir: string, private readonly bucket: string) {
    this.path = join(stateDir, `sequences.${bucket}.json`);
  }

  load(onProblem: (message: string) => void): Map<string, SequenceMark> {
    const kept = readJsonFile(this.path, fileSchema, onProblem, '; replays older than this run are not recognised');
    return new Map(Object.entries(kept?.marks ?? {}));
  }

  save(marks: SequenceMarks): void {
    writeAtomic(this.path, JSON.stringify({ format: 1, bucket: this.bucket, marks: Object.fromEntries(marks) }));
  }
}
