// SPDX-License-Identifier: Apache-2.0
// Real captured frames for the hostile differential: the Ethernet frames of gopacket's test corpus
// as Debian ships it (golang-github-google-gopacket-dev, installed by scripts/bootstrap.sh): its
// classic pcap files, and the packets its decoder tests spell out as Go byte literals (IPv6
// extension headers, neighbour discovery, GRE, VXLAN, SCTP, VLAN stacks and more, captured on real
// networks). Read only; a missing corpus is an error, never an empty list.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const GOPACKET_ROOT = '/usr/share/gocode/src/github.com/google/gopacket';

export interface CapturedFrame {
  /** file (and index or variable name) it came from */
  source: string;
  frame: Buffer;
}

const LINKTYPE_ETHERNET = 1;
const ETHERTYPES = new Set([0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x9100]);

/** The records of a classic pcap file whose link type is Ethernet (either byte order). */
export function pcapFrames(bytes: Buffer, source: string): CapturedFrame[] {
  const magic = bytes.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && bytes.readUInt32BE(0) !== 0xa1b2c3d4 && bytes.readUInt32BE(0) !== 0xa1b23c4d) return [];
  const u32 = (off: number) => (le ? bytes.readUInt32LE(off) : bytes.readUInt32BE(off));
  if (u32(20) !== LINKTYPE_ETHERNET) return [];
  const out: CapturedFrame[] = [];
  for (let off = 24, i = 0; off + 16 <= bytes.length; i++) {
    const caplen = u32(off + 8);
    const start = off + 16;
    if (start + caplen > bytes.length) break;
    out.push({ source: `${source}#${i}`, frame: Buffer.from(bytes.subarray(start, start + caplen)) });
    off = start + caplen;
  }
  return out;
}

/** `var name = []byte{ 0x.., … }` literals of a Go file that hold an Ethernet frame. */
export function goByteLiterals(text: string, source: string): CapturedFrame[] {
  const out: CapturedFrame[] = [];
  for (const m of text.matchAll(/(\w+)\s*(?::=|=)\s*\[\]byte\s*\{([^}]*)\}/g)) {
    const bytes = [...(m[2] ?? '').matchAll(/0x([0-9a-fA-F]{1,2})\b/g)].map((b) => parseInt(b[1]!, 16));
    if (bytes.length < 34) continue;
    const frame = Buffer.from(bytes);
    if (!ETHERTYPES.has(frame.readUInt16BE(12))) continue;
    out.push({ source: `${source}:${m[1]}`, frame });
  }
  return out;
}

/** Every Ethernet frame of the corpus, in a stable order. */
export function capturedFrames(root = GOPACKET_ROOT): CapturedFrame[] {
  if (!existsSync(root)) throw new Error(`${root} is missing: install golang-github-google-gopacket-dev (scripts/bootstrap.sh does)`);
  const frames: CapturedFrame[] = [];
  const pcaps = join(root, 'pcap');
  for (const f of readdirSync(pcaps).filter((n) => n.endsWith('.pcap')).sort()) frames.push(...pcapFrames(readFileSync(join(pcaps, f)), `pcap/${f}`));
  const layers = join(root, 'layers');
  for (const f of readdirSync(layers).filter((n) => n.endsWith('_test.go')).sort()) {
    frames.push(...goByteLiterals(readFileSync(join(layers, f), 'utf8'), `layers/${f}`));
  }
  return frames;
}
