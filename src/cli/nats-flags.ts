// SPDX-License-Identifier: Apache-2.0
// The flags every fleet command shares: where NATS is and how to authenticate to it.
import type { Command } from 'commander';
import type { NatsAuth } from '../fleet/nats-connection.js';

export interface NatsFlags {
  nats: string;
  natsCreds?: string;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
}

/** `--nats URL` (required unless `optional`) and the credentials and TLS files. */
export function addNatsFlags(cmd: Command, what: 'BUCKET' | 'STREAM', optional = false): Command {
  const url = `--nats <url>`;
  const help = `NATS: nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT]/${what}`;
  (optional ? cmd.option(url, help) : cmd.requiredOption(url, help))
    .option('--nats-creds <file>', 'NATS credentials file (JWT and NKey seed)')
    .option('--nats-tls-ca <file>', "CA bundle for the NATS servers' certificates (turns TLS on)")
    .option('--nats-tls-cert <file>', 'client certificate for NATS')
    .option('--nats-tls-key <file>', 'client key for NATS');
  return cmd;
}

export function natsAuthOf(f: Omit<NatsFlags, 'nats'>): NatsAuth {
  return {
    ...(f.natsCreds && { creds: f.natsCreds }),
    ...(f.natsTlsCa && { tlsCa: f.natsTlsCa }),
    ...(f.natsTlsCert && { tlsCert: f.natsTlsCert }),
    ...(f.natsTlsKey && { tlsKey: f.natsTlsKey }),
  };
}
