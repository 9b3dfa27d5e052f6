// SPDX-License-Identifier: Apache-2.0
// The errors nats.js and its JetStream client throw (a call that timed out, nobody answering a
// JetStream request, JetStream not enabled, a connection lost or closed, a refused permission), turned into doorstep's
// DS_E_NATS (exit 6) with what was being done and what to check. Anything else is left as it
// is: a bug stays a bug (exit 1).
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  PermissionViolationError,
  ProtocolError,
  RequestError,
  TimeoutError,
} from '@nats-io/transport-node';
import { DoorstepError } from '../errors.js';

const NATS_ERRORS = [TimeoutError, NoRespondersError, RequestError, ConnectionError, ClosedConnectionError, DrainingConnectionError, PermissionViolationError, ProtocolError, JetStreamError, JetStreamApiError, jserrors.JetStreamNotEnabled];

export function isNatsError(err: unknown): err is Error {
  return NATS_ERRORS.some((E) => err instanceof E);
}

/** `err` as DS_E_NATS when NATS threw it, saying what was being done (`doing`); otherwise `err` unchanged. */
export function natsFailure(err: unknown, doing: string): unknown {
  if (!isNatsError(err)) return err;
  return new DoorstepError('DS_E_NATS', `${doing}: ${err.name}: ${err.message}`, {
    hint: 'NATS or its JetStream did not answer in time (a server lost, no JetStream leader yet): try again; `doorstep fleet status` shows the fleet',
    cause: err,
  });
}
