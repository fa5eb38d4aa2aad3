// Byte helpers shared by every layer. Pure: no Node APIs (consensus/ also runs in browsers).
import { keccak_256 } from "@noble/hashes/sha3.js";

/** A 0x-prefixed lowercase hex string. */
export type Hex = `0x${string}`;

const HEX_RE = /^0x([0-9a-fA-F]{2})*$/;

export function isHex(value: unknown, byteLength?: number): value is Hex {
  if (typeof value !== "string" || !HEX_RE.test(value)) return false;
  return byteLength === undefined || value.length === 2 + 2 * byteLength;
}

/** Char codes of the two hex digits of each byte value. */
const HEX_HIGH = new Uint16Array(256);
const HEX_LOW = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  const digits = i.toString(16).padStart(2, "0");
  HEX_HIGH[i] = digits.charCodeAt(0);
  HEX_LOW[i] = digits.charCodeAt(1);
}
/** Bytes converted per String.fromCharCode call (its arguments go on the stack). */
const HEX_CHUNK = 4096;
const hexScratch = new Uint16Array(2 + 2 * HEX_CHUNK);
hexScratch[0] = 0x30; // "0"
hexScratch[1] = 0x78; // "x"

/**
 * One flat string. Appending two digits at a time (`out += ...`) built a rope of one node per byte that V8 keeps as
 * such while the string lives: about 1 KB for a 32-byte hash kept in a map, against 90 bytes flat.
 */
export function toHex(bytes: Uint8Array): Hex {
  if (bytes.length > HEX_CHUNK) {
    let out = "0x";
    for (let start = 0; start < bytes.length; start += HEX_CHUNK) {
      out += toHex(bytes.subarray(start, start + HEX_CHUNK)).slice(2);
    }
    return out as Hex;
  }
  for (let i = 0, j = 2; i < bytes.length; i++, j += 2) {
    const b = bytes[i] as number;
    hexScratch[j] = HEX_HIGH[b] as number;
    hexScratch[j + 1] = HEX_LOW[b] as number;
  }
  return String.fromCharCode.apply(null, hexScratch.subarray(0, 2 + 2 * bytes.length) as unknown as number[]) as Hex;
}

/** Value of each ASCII hex digit by char code, -1 for every other code below 128. */
const HEX_VALUES = (() => {
  const values = new Int8Array(128).fill(-1);
  for (let i = 0; i < 16; i++) {
    values[i.toString(16).charCodeAt(0)] = i;
    values[i.toString(16).toUpperCase().charCodeAt(0)] = i;
  }
  return values;
})();

/** Decodes 0x-prefixed hex. Throws RangeError on malformed input (callers at trust boundaries check isHex first). */
export function fromHex(hex: string): Uint8Array {
  // What HEX_RE accepts, checked digit by digit while decoding (hashes, keys and whole transactions pass here).
  if (hex.length % 2 !== 0 || hex.charCodeAt(0) !== 48 || hex.charCodeAt(1) !== 120) throw malformedHex(hex);
  const out = new Uint8Array((hex.length - 2) / 2);
  for (let i = 0, j = 2; i < out.length; i++, j += 2) {
    const hi = HEX_VALUES[hex.charCodeAt(j)] ?? -1;
    const lo = HEX_VALUES[hex.charCodeAt(j + 1)] ?? -1;
    if (hi < 0 || lo < 0) throw malformedHex(hex);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function malformedHex(hex: string): RangeError {
  return new RangeError(`not 0x-prefixed even-length hex: ${hex.slice(0, 20)}`);
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lexicographic byte order: negative if a < b. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function keccak256(data: Uint8Array): Uint8Array {
  return keccak_256(data);
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Big-endian unsigned integer of `width` bytes. Throws RangeError when the value does not fit. */
export function uintBytes(value: number | bigint, width: number): Uint8Array {
  let v = BigInt(value);
  if (v < 0n || v >= 1n << BigInt(8 * width)) throw new RangeError(`${value} does not fit in ${width} bytes`);
  const out = new Uint8Array(width);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function readUint(bytes: Uint8Array, offset: number, width: number): bigint {
  let v = 0n;
  for (let i = 0; i < width; i++) v = (v << 8n) | BigInt(bytes[offset + i] as number);
  return v;
}
