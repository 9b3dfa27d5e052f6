// SPDX-License-Identifier: Apache-2.0
// JetStream set-up and inspection for the cluster tests, run where the servers are reachable
// (FleetRig.js runs it in the management namespace); prints one JSON line.
//   node js-tool.js SERVERS replicate R TTL_MS POLICY_BUCKET STATUS_BUCKET MEMBERS_BUCKET STREAM
//     the fleet's buckets and audit stream with R replicas (as an operator creates them first)
//   node js-tool.js SERVERS consumers STREAM   every consumer of STREAM: name, filter, the server it lives on
//   node js-tool.js SERVERS leader STREAM      the server leading STREAM
//   node js-tool.js SERVERS answers STREAM MS  waits (at most MS) until JetStream answers STREAM's info:
//     `at`, the wall time (ms) of that first answer (the servers may still be starting)
// SERVERS: nats://HOST:PORT[,nats://HOST:PORT…]
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';

const [servers, op, ...args] = process.argv.slice(2) as [string, string, ...string[]];
const probing = op === 'answers';
const nc = await connect({ servers: servers.split(','), timeout: 5000, ...(probing && { waitOnFirstConnect: true, reconnectTimeWait: 100 }) });
try {
  // the stream's info, answered by its leader (no account info first: that needs the meta leader)
  const jsm = await jetstreamManager(nc, probing ? { timeout: 1000, checkAPI: false } : { timeout: 10_000 });
  if (probing) {
    for (const end = Date.now() + Number(args[1]); ; await new Promise((r) => setTimeout(r, 50))) {
      try {
        await jsm.streams.info(args[0] as string);
        console.log(JSON.stringify({ at: Date.now() }));
        break;
      } catch (err) {
        if (Date.now() > end) throw err;
      }
    }
  } else if (op === 'replicate') {
    const [r, ttl, policy, status, members, stream] = args as [string, string, string, string, string, string];
    const replicas = Number(r);
    const kvm = new Kvm(nc);
    await kvm.create(policy, { history: 10, replicas });
    await kvm.create(status, { history: 1, ttl: Number(ttl), replicas });
    await kvm.create(members, { history: 1, replicas });
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], retention: RetentionPolicy.Limits, storage: StorageType.File, num_replicas: replicas });
    console.log(JSON.stringify({ replicas }));
  } else if (op === 'consumers') {
    const out: { name: string; filter: string; leader: string | undefined }[] = [];
    for await (const c of jsm.consumers.list(args[0] as string)) out.push({ name: c.name, filter: c.config.filter_subject ?? '', leader: c.cluster?.leader });
    console.log(JSON.stringify(out));
  } else if (op === 'leader') {
    console.log(JSON.stringify({ leader: (await jsm.streams.info(args[0] as string)).cluster?.leader }));
  } else throw new Error(`unknown operation ${op}`);
} finally {
  await nc.close();
}
