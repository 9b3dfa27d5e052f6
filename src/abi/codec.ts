// SPDX-License-Identifier: Apache-2.0
// Encoders and decoders for the structs of bpf/include/abi.h. Every offset comes from the
// generated layouts (src/abi/generated.ts); nothing here restates a C layout by hand.
// Integers are host byte order (little-endian on every platform doorstep supports).
import { Layouts } from './generated.js';

export type StructName = keyof typeof Layouts;
type FieldsOf<N extends StructName> = keyof (typeof Layouts)[N]['fields'];
export type FieldValue = number | bigint | Uint8Array;

interface Field {
  offset: number;
  size: number;
  elem: number;
  count: number;
}

function fieldOf(name: StructName, f: string): Field {
  const fields = Layouts[name].fields as Record<string, Field>;
  const field = fields[f];
  if (!field) throw new Error(`ABI: ${name} has no field ${f}`);
  return field;
}

export function sizeOf(name: StructName): number {
  return Layouts[name].size;
}

function writeScalar(buf: Buffer, at: number, width: number, v: number | bigint): void {
  switch (width) {
    case 1:
      buf.writeUInt8(Number(v), at);
      return;
    case 2:
      buf.writeUInt16LE(Number(v), at);
      return;
    case 4:
      buf.writeUInt32LE(Number(v), at);
      return;
    case 8:
      buf.writeBigUInt64LE(BigInt(v), at);
      return;
    default:
      throw new Error(`ABI: no scalar of width ${width}`);
  }
}

function readScalar(buf: Buffer, at: number, width: number): number {
  switch (width) {
    case 1:
      return buf.readUInt8(at);
    case 2:
      return buf.readUInt16LE(at);
    case 4:
      return buf.readUInt32LE(at);
    case 8:
      return Number(buf.readBigUInt64LE(at));
    default:
      throw new Error(`ABI: no scalar of width ${width}`);
  }
}

/** Write the given fields of struct `name` at `offset` (other bytes untouched; zero-filled buffers recommended). */
export function writeStruct<N extends StructName>(
  name: N,
  buf: Buffer,
  offset: number,
  values: Partial<Record<FieldsOf<N>, FieldValue>>,
): void {
  for (const [key, v] of Object.entries(values) as [string, FieldValue | undefined][]) {
    if (v === undefined) continue;
    const f = fieldOf(name, key);
    if (v instanceof Uint8Array) {
      if (v.length !== f.size) throw new Error(`ABI: ${name}.${key} takes ${f.size} bytes, got ${v.length}`);
      buf.set(v, offset + f.offset);
    } else {
      writeScalar(buf, offset + f.offset, f.elem, v);
    }
  }
}

export function encodeStruct<N extends StructName>(name: N, values: Partial<Record<FieldsOf<N>, FieldValue>>): Buffer {
  const buf = Buffer.alloc(sizeOf(name));
  writeStruct(name, buf, 0, values);
  return buf;
}

/** A scalar field as a number (u64 as a Number: exact below 2^53). */
export function readField<N extends StructName>(name: N, buf: Buffer, offset: number, key: FieldsOf<N>): number {
  const f = fieldOf(name, key as string);
  return readScalar(buf, offset + f.offset, f.elem);
}

/** A u64 field exactly, as a bigint. */
export function readBigField<N extends StructName>(name: N, buf: Buffer, offset: number, key: FieldsOf<N>): bigint {
  const f = fieldOf(name, key as string);
  return buf.readBigUInt64LE(offset + f.offset);
}

/** An array field as a copy of its bytes. */
export function readBytes<N extends StructName>(name: N, buf: Buffer, offset: number, key: FieldsOf<N>): Uint8Array {
  const f = fieldOf(name, key as string);
  return Uint8Array.prototype.slice.call(buf, offset + f.offset, offset + f.offset + f.size);
}

/** Element `i` of an integer-array field. */
export function readElement<N extends StructName>(name: N, buf: Buffer, offset: number, key: FieldsOf<N>, i: number): number {
  const f = fieldOf(name, key as string);
  if (i < 0 || i >= f.count) throw new RangeError(`ABI: ${name}.${String(key)}[${i}] out of range`);
  return readScalar(buf, offset + f.offset + i * f.elem, f.elem);
}

/** Offset and element size of an array field, for arrays of structs. */
export function arrayField<N extends StructName>(name: N, key: FieldsOf<N>): { offset: number; count: number; stride: number } {
  const f = fieldOf(name, key as string);
  return { offset: f.offset, count: f.count, stride: f.count ? f.size / f.count : 0 };
}

/** Byte offset of a field, for hot loops that write many records of one struct. */
export function offsetOf<N extends StructName>(name: N, key: FieldsOf<N>): number {
  return fieldOf(name, key as string).offset;
}
