// SPDX-License-Identifier: Apache-2.0
// WireGuard without a kernel: the key store (made once, 0600, the public key `wg pubkey` prints),
// the configuration text both ways (a tunnel's `wg syncconf` file, `wg show dump` read back, the
// edge's peer list), and the underlay summary that tells WireGuard from clear text.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DoorstepError } from '../../src/errors.js';
import { resolveConfig } from '../../src/controller/config.js';
import { packageRoot } from '../../src/paths.js';
import { edgePeersOf, tunnelStatus } from '../../src/placement/tunnel-status.js';
import { edgePeerLists, parseWgDump, tunnelConf } from '../../src/placement/wireguard-conf.js';
import { loadOrCreateKeyPair, newWireguardPrivateKey, wireguardPublicKey, WIREGUARD_KEY_FILE } from '../../src/placement/wireguard-keys.js';
import { summariseUnderlay } from '../../src/demo/underlay-capture.js';
import { isWireguardKey } from '../../src/placement/placement.js';

const dir = mkdtempSync(join(tmpdir(), 'doorstep-wg-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// a pair `wg genkey | tee /dev/stderr | wg pubkey` printed
const PRIVATE = 'SKARDozxHOeJzw+s+sNl5tlvygqchkebzN+/8fo6VHE=';
const PUBLIC = '0QoirTw4UK51+iIgrun/zidLvLgvys0cAdKP/uxyDGE=';

describe('WireGuard key store', () => {
  it('derives the public key wg pubkey derives, and makes clamped keys', () => {
    assert.equal(wireguardPublicKey(PRIVATE), PUBLIC);
    for (let i = 0; i < 20; i++) {
      const k = Buffer.from(newWireguardPrivateKey(), 'base64');
      assert.equal(k.length, 32);
      assert.equal(k[0]! & 7, 0);
      assert.equal(k[31]! & 0xc0, 0x40);
      assert.ok(isWireguardKey(k.toString('base64')));
    }
  });

  it('makes the key pair on the first start (0600), reads the same one after, and refuses a broken file', () => {
    const state = mkdtempSync(join(dir, 'state-'));
    const first = loadOrCreateKeyPair(state);
    assert.equal(first.created, true);
    assert.equal(statSync(first.path).mode & 0o777, 0o600);
    const again = loadOrCreateKeyPair(state);
    assert.deepEqual([again.created, again.privateKey, again.publicKey], [false, first.privateKey, first.publicKey]);
    writeFileSync(join(state, WIREGUARD_KEY_FILE), 'hello\n');
    assert.throws(() => loadOrCreateKeyPair(state), (e: unknown) => e instanceof DoorstepError && e.code === 'DS_E_STATE_DIR' && /does not hold a WireGuard private key/.test(e.message));
  });
});

describe('WireGuard configuration text', () => {
  const p = resolveConfig({ config: join(packageRoot, 'examples/placement/infra.yaml') }).placement!;
  const t = p.tunnels[0]!;

  it('a tunnel: our key and port, the edge as the one peer', () => {
    assert.equal(
      tunnelConf(PRIVATE, t),
      `[Interface]\nPrivateKey = ${PRIVATE}\nListenPort = 51820\n\n[Peer]\nPublicKey = ${t.wireguard!.peerPublicKey}\nEndpoint = 10.240.0.1:51821\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n`,
    );
  });

  it('reads wg show dump, and says a handshake is pending until one came', () => {
    const dump = `${PRIVATE}\t${PUBLIC}\t51820\toff\n${t.wireguard!.peerPublicKey}\t(none)\t10.240.0.1:51821\t0.0.0.0/0\t0\t0\t148\t25\n`;
    const state = parseWgDump(dump);
    assert.deepEqual(state, { publicKey: PUBLIC, listenPort: 51820, peers: [{ publicKey: t.wireguard!.peerPublicKey, endpoint: '10.240.0.1:51821', allowedIps: ['0.0.0.0/0'], latestHandshake: 0, rxBytes: 0, txBytes: 148 }] });
    const id = { implementation: 'wireguard-go', publicKey: PUBLIC };
    assert.equal(tunnelStatus(p, t, id, state, true, 1000).handshake, 'pending');
    const shook = parseWgDump(dump.replace('\t0\t0\t148', '\t990\t92\t148'));
    assert.deepEqual([tunnelStatus(p, t, id, shook, true, 1000).handshake, tunnelStatus(p, t, id, shook, true, 990 + 181).handshake], ['established', 'stale']);
    assert.equal(tunnelStatus(p, t, id, shook, true, 1000).endpoint, '10.240.0.11:51820');
  });

  it("the edge's peer lists: per edge port, each tunnel's networks and address inside it", () => {
    const lists = edgePeerLists(edgePeersOf('infra-eu-1', p, PUBLIC));
    assert.deepEqual([...lists.keys()], [51821, 51822]);
    assert.equal(
      lists.get(51821),
      `# the peers of the edge's WireGuard interface listening on port 51821\n\n# infra-eu-1 dswg101 (tenant vpc-a)\n[Peer]\nPublicKey = ${PUBLIC}\nEndpoint = 10.240.0.11:51820\nAllowedIPs = 10.1.0.0/24, 169.254.101.2/32\n`,
    );
  });
});

describe('underlay summary', () => {
  const eth = (payload: Buffer, sport: number, dport: number) => {
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(sport, 0);
    udp.writeUInt16BE(dport, 2);
    const ip = Buffer.from([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 240, 0, 11, 10, 240, 0, 1]);
    const head = Buffer.alloc(14);
    head.writeUInt16BE(0x0800, 12);
    return Buffer.concat([head, ip, udp, payload]);
  };
  const ports = new Set([51820]);
  const marker = Buffer.alloc(16, 0x78);
  const inner: [string, string] = ['10.1.0.10', '10.9.0.10'];

  it('WireGuard to the port counts as WireGuard; VXLAN carrying the flow counts as other, and in clear', () => {
    const wg = eth(Buffer.concat([Buffer.from([4, 0, 0, 0]), Buffer.alloc(40, 0xab)]), 51820, 51820);
    const innerHeader = Buffer.from([0x45, 0, 0, 60, 0, 0, 0, 0, 64, 6, 0, 0, 10, 1, 0, 10, 10, 9, 0, 10]);
    const vxlan = eth(Buffer.concat([Buffer.alloc(8), Buffer.alloc(14), innerHeader, marker]), 40000, 4789);
    const s = summariseUnderlay([wg, vxlan], ports, inner, marker);
    assert.deepEqual([s.packets, s.wireguard, s.other, s.clear], [2, 1, 1, 1]);
    assert.deepEqual(s.udp, ['10.240.0.11:40000 → 10.240.0.1:4789', '10.240.0.11:51820 → 10.240.0.1:51820']);
    const notWg = eth(Buffer.from([9, 9, 9, 9]), 51820, 51820);
    assert.equal(summariseUnderlay([notWg], ports, inner, marker).other, 1, 'the port alone does not make it WireGuard');
  });
});
