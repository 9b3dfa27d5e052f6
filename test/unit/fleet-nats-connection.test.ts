// SPDX-License-Identifier: Apache-2.0
// The agent's NATS connection after a server dies in the middle of a connect handshake (a fleet
// losing its servers one after the other): the reconnect goes on to the next attempt on the fact
// of the closed socket, not when the handshake timeout ends. A fake server in this process speaks
// just enough of the protocol (INFO, PONG) and closes the socket of the attempt it is told to.
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { failDeadHandshakes } from '../../src/fleet/nats-connection.js';

const INFO = `INFO ${JSON.stringify({ server_id: 'FAKE', server_name: 'fake', version: '2.10.0', proto: 1, headers: true, max_payload: 1048576, host: '127.0.0.1', port: 0 })}\r\n`;

describe('NATS connection: a server that dies during the handshake', () => {
  const sockets: Socket[] = [];
  /** Attempts (1-based) whose socket the server closes as soon as the client's PING arrives. */
  const dieDuringHandshake = new Set<number>();
  const server = createServer((socket) => {
    sockets.push(socket);
    const attempt = sockets.length;
    socket.write(INFO);
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (!text.includes('PING\r\n')) return;
      text = text.slice(text.lastIndexOf('PING\r\n') + 6);
      if (dieDuringHandshake.has(attempt)) socket.destroy();
      else socket.write('PONG\r\n');
    });
    socket.on('error', () => undefined);
  });
  let port = 0;
  let nc: NatsConnection | undefined;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    await nc?.close().catch(() => undefined);
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  // the handshake timeout (120 s) is far longer than the test may take (30 s): only the closed socket can end it
  it('reconnects at once on the next attempt, without waiting for the handshake timeout', { timeout: 30_000 }, async () => {
    nc = await connect({ servers: `nats://127.0.0.1:${port}`, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 100, timeout: 120_000 });
    failDeadHandshakes(nc);
    const events: string[] = [];
    const reconnected = new Promise<void>((resolve) => {
      void (async () => {
        for await (const s of nc!.status()) {
          events.push(s.type);
          if (s.type === 'reconnect') return resolve();
        }
      })();
    });
    dieDuringHandshake.add(2);
    sockets[0]!.destroy(); // the server the client was connected to goes away
    await reconnected;
    assert.equal(sockets.length, 3, 'attempt 2 died in its handshake; attempt 3 connected');
    assert.ok(events.filter((e) => e === 'disconnect').length >= 2, `a disconnect for the connection and one for the handshake: ${events.join(', ')}`);
    // the connection works: a PING answered by the fake server
    await nc.flush();
  });
});
