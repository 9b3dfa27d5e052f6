// SPDX-License-Identifier: Apache-2.0
// A bounded traffic peer, run inside a namespace by tests and the demo:
//   peer serve  <tcp|udp> <host> <port> <seconds> [echo] → prints {"bytes":N,"datagrams":N,"connections":N} on exit;
//                with `echo` it sends every byte back (the reply path)
//   peer send   <tcp|udp> <host> <port> <count> <size> <timeoutMs> [echo] → prints {"sent":N,"connected":bool,"echoed":N};
//                with `echo` it waits (up to timeoutMs) for the bytes to come back
//   peer stream udp <host> <port> <perSecond> <seconds> → numbered datagrams (u32 seq, u64 send time in
//                CLOCK_MONOTONIC ns) at a steady rate; prints {"sent":N,"first":ns,"last":ns} on exit
//   peer sink   udp <host> <port> <seconds>   → prints `progress <count> <highest seq> <its sentNs>` as datagrams arrive
//                (at most a line per turn of its event loop), and {"received":[[seq, sentNs], …]} on exit
// Every loop is bounded in count and time; the server exits after <seconds> or on SIGTERM.
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';

const [mode, proto, host = '', portText = '0', a = '0', b = '0', c = '1000', d = ''] = process.argv.slice(2);
const port = Number(portText);

function serve(): void {
  const seconds = Number(a);
  const echo = b === 'echo';
  const totals = { bytes: 0, datagrams: 0, connections: 0 };
  const finish = () => {
    process.stdout.write(`${JSON.stringify(totals)}\n`);
    process.exit(0);
  };
  if (proto === 'tcp') {
    const server = createServer((sock) => {
      totals.connections++;
      sock.on('data', (data) => {
        totals.bytes += data.length;
        if (echo) sock.write(data);
      });
      sock.on('error', () => undefined);
    });
    server.listen(port, host, () => process.stdout.write('ready\n'));
  } else {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    sock.on('message', (m, from) => {
      totals.datagrams++;
      totals.bytes += m.length;
      if (echo) sock.send(m, from.port, from.address);
    });
    sock.bind(port, host, () => process.stdout.write('ready\n'));
  }
  setTimeout(finish, seconds * 1000).unref();
  process.on('SIGTERM', finish);
}

function send(): void {
  const count = Number(a);
  const size = Number(b);
  const timeoutMs = Number(c);
  const echo = d === 'echo';
  const payload = Buffer.alloc(size, 0x78);
  let echoed = 0;
  let finished = false;
  let connected = false;
  let sentBytes = 0;
  const done = (sent: number, connected: boolean) => {
    if (finished) return;
    finished = true;
    process.stdout.write(`${JSON.stringify({ sent, connected, ...(echo && { echoed }) })}\n`);
    process.exit(0);
  };
  setTimeout(() => done(sentBytes, connected), timeoutMs);
  if (proto === 'tcp') {
    const sock = connect({ host, port });
    let sent = 0;
    sock.on('connect', () => {
      connected = true;
      for (let i = 0; i < count; i++) {
        sock.write(payload);
        sent += size;
      }
      sentBytes = sent;
      if (!echo) sock.end(() => done(sent, true));
    });
    sock.on('data', (data) => {
      echoed += data.length;
      if (echoed >= sent && sent > 0) sock.end(() => done(sent, true));
    });
    sock.on('error', () => done(sent, connected));
  } else {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    let sent = 0;
    sock.on('message', (m) => {
      echoed += m.length;
      if (sent >= count && echoed >= count * size) done(sent * size, true);
    });
    const next = () => {
      if (sent >= count) {
        if (!echo) setTimeout(() => done(sent * size, true), 50);
        else if (echoed >= count * size) done(sent * size, true);
        return;
      }
      sock.send(payload, port, host, () => {
        sent++;
        sentBytes = sent * size;
        connected = true;
        setImmediate(next);
      });
    };
    next();
  }
}

/** Numbered datagrams, so a receiver can tell exactly which ones arrived, and when each was sent. */
function stream(): void {
  const perSecond = Number(a);
  const seconds = Number(b);
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const started = process.hrtime.bigint();
  let sent = 0;
  let first = 0n;
  let last = 0n;
  const finish = () => {
    process.stdout.write(`${JSON.stringify({ sent, first: String(first), last: String(last) })}\n`);
    process.exit(0);
  };
  const tick = () => {
    const now = process.hrtime.bigint();
    if (now - started > BigInt(seconds * 1e9)) return finish();
    const due = Math.floor((Number(now - started) / 1e9) * perSecond);
    for (; sent < due; sent++) {
      const d = Buffer.alloc(64);
      const at = process.hrtime.bigint();
      d.writeUInt32BE(sent, 0);
      d.writeBigUInt64BE(at, 4);
      if (sent === 0) first = at;
      last = at;
      sock.send(d, port, host);
    }
    setTimeout(tick, 1);
  };
  process.on('SIGTERM', finish);
  tick();
}

function sink(): void {
  const seconds = Number(a);
  const received: [number, string][] = [];
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const finish = () => {
    process.stdout.write(`${JSON.stringify({ received })}\n`);
    process.exit(0);
  };
  // progress for a waiting test: one line per turn of the event loop that received something
  let highest = -1;
  let highestSent = '0';
  let pending = false;
  const progress = () => {
    pending = false;
    process.stdout.write(`progress ${received.length} ${highest} ${highestSent}\n`);
  };
  sock.on('message', (m) => {
    if (m.length < 12) return;
    const seq = m.readUInt32BE(0);
    const sent = String(m.readBigUInt64BE(4));
    received.push([seq, sent]);
    if (seq > highest) [highest, highestSent] = [seq, sent];
    if (!pending) {
      pending = true;
      setImmediate(progress);
    }
  });
  sock.bind(port, host, () => {
    sock.setRecvBufferSize(4 << 20); // a busy receiver must not drop what the engine passed
    process.stdout.write('ready\n');
  });
  setTimeout(finish, seconds * 1000).unref();
  process.on('SIGTERM', finish);
}

if (mode === 'serve') serve();
else if (mode === 'send') send();
else if (mode === 'stream' && proto === 'udp') stream();
else if (mode === 'sink' && proto === 'udp') sink();
else {
  process.stderr.write('usage: peer serve|send tcp|udp host port …\n');
  process.exit(2);
}
