// SPDX-License-Identifier: Apache-2.0
// The audit stream's provisioning: the stream that takes `<stream>.>`, created when it does not
// exist (limits retention, file storage, discard old, one replica, the sink's age, size and
// duplicate window), used as it is when it does; and whether a failure was a refusal (a
// permission, a JetStream API error) rather than no answer. Touches only JetStream's API on the
// connection it is given.
import { DiscardPolicy, JetStreamApiCodes, JetStreamApiError, jetstreamManager, RetentionPolicy, StorageType, type StreamInfo } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';

export interface AuditStreamLimits {
  maxAgeMs: number;
  maxBytes: number;
  /** JetStream drops a message whose id it stored this recently (a retry after a lost ack). */
  duplicateWindowMs: number;
  /** How long one API call may take. */
  timeoutMs: number;
}

/** The stream's info: the existing one, or the one made now. */
export async function ensureAuditStream(nc: NatsConnection, stream: string, limits: AuditStreamLimits): Promise<StreamInfo> {
  const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: limits.timeoutMs });
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    return await jsm.streams.add({
      name: stream,
      subjects: [`${stream}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(limits.maxAgeMs),
      max_bytes: limits.maxBytes,
      duplicate_window: nanos(limits.duplicateWindowMs),
      num_replicas: 1,
    });
  }
}

/** The server refused (a permission, a JetStream API error), as opposed to not answering. */
export function isRefusal(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof JetStreamApiError || e.name === 'PermissionViolationError') return true;
  }
  return false;
}
