// A small schema-combinator binary codec: one schema value gives both the TypeScript type (`Infer<typeof schema>`) and
// the encoder/decoder. Pure: no Node APIs (consensus/ also runs in browsers).
//
// Layouts are fixed and big-endian:
//   u8, u16, u32            1, 2, 4 bytes, unsigned big-endian; in memory a `number`
//   u64                     8 bytes, unsigned big-endian; in memory a `bigint`
//   u64Number               8 bytes like u64; in memory a `number`, decoding rejects values above 2^53 - 1
//   bytes(n)                exactly n raw bytes; in memory a Uint8Array of length n
//   hexBytes(n), hex32      exactly n raw bytes; in memory a lowercase 0x-prefixed Hex string
//   varBytes(maxLen)        u32 length L (L <= maxLen) then L raw bytes
//   list(item, maxItems)    u32 count C (C <= maxItems) then C items
//   nullable(codec)         u8 flag (0 = null, 1 = present) then codec's fixed-size payload; zeros when null
//   versioned(v, codec)     u8 version (must equal v) then codec; the version does not appear in the type
//   bitmap(field)           ceil(n/8) bytes where n is the value of an earlier sibling field of the struct;
//                           bit i is byte i >> 3, mask 1 << (i & 7); bits >= n must be zero
//   struct({a, b, ...})     fields in declaration order, nothing between them
//
// Decoding untrusted bytes throws only DecodeError (code + field path); anything else escaping `decode` is a bug.
// Encoding a value that does not fit its schema throws EncodeError: that is a programming error of the caller.
import { fromHex, type Hex, isHex, toHex } from "./bytes.ts";

export type DecodeErrorCode = "truncated" | "trailing_bytes" | "too_long" | "invalid_value";

/** Raised for malformed input bytes. `path` names the field, e.g. `vote.value` or `cert.signers`. */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
  readonly code: DecodeErrorCode;
  readonly path: string;
  constructor(code: DecodeErrorCode, path: string, detail: string) {
    super(`${path}: ${code}: ${detail}`);
    this.code = code;
    this.path = path;
  }
}

/** Raised when a value given to `encode` does not fit its schema (a caller bug, not a peer fault). */
export class EncodeError extends Error {
  override readonly name = "EncodeError";
  readonly path: string;
  constructor(path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.path = path;
  }
}

/** Cursor over the input of one `decode` call. */
export class Reader {
  offset = 0;
  constructor(readonly bytes: Uint8Array) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** A view of the next `n` bytes (callers copy when they keep them). */
  take(n: number, path: string): Uint8Array {
    if (n > this.remaining) throw new DecodeError("truncated", path, `need ${n} bytes, have ${this.remaining}`);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  uint(width: number, path: string): number {
    const b = this.take(width, path);
    let v = 0;
    for (let i = 0; i < width; i++) v = v * 256 + (b[i] as number);
    return v;
  }
}

/** Growable output buffer of one `encode` call. */
export class Writer {
  private buf: Uint8Array;
  length = 0;
  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let capacity = this.buf.length * 2;
    while (capacity < this.length + n) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  write(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }

  /** Big-endian unsigned integer of `width` bytes; the caller has range-checked `value`. */
  uint(value: number | bigint, width: number): void {
    this.reserve(width);
    if (typeof value === "number" && width <= 6) {
      let v = value;
      for (let i = width - 1; i >= 0; i--) {
        this.buf[this.length + i] = v % 256;
        v = Math.floor(v / 256);
      }
    } else {
      let v = BigInt(value);
      for (let i = width - 1; i >= 0; i--) {
        this.buf[this.length + i] = Number(v & 0xffn);
        v >>= 8n;
      }
    }
    this.length += width;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Sibling fields already decoded (or, when encoding, the whole struct value): lets `bitmap` find its size. */
export type Siblings = Readonly<Record<string, unknown>>;

export interface Codec<T> {
  /** Encoded size in bytes when it does not depend on the value, else null. */
  readonly fixedSize: number | null;
  /** Short description of the layout, for docs and error messages. */
  readonly describe: string;
  encodeInto(writer: Writer, value: T, path: string, siblings: Siblings): void;
  decodeFrom(reader: Reader, path: string, siblings: Siblings): T;
}

export type Infer<C> = C extends Codec<infer T> ? T : never;

/** true when A and B are the same type: `const ok: Same<Infer<typeof schema>, Declared> = true` pins a schema to an interface. */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const NO_SIBLINGS: Siblings = Object.freeze({});

export function encode<T>(codec: Codec<T>, value: T, rootPath = "value"): Uint8Array {
  const writer = new Writer(codec.fixedSize ?? 256);
  codec.encodeInto(writer, value, rootPath, NO_SIBLINGS);
  return writer.finish();
}

/** Decodes exactly `bytes` (trailing bytes are an error). Throws only DecodeError. */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array, rootPath = "value"): T {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError("invalid_value", rootPath, "input is not a Uint8Array");
  if (codec.fixedSize !== null && bytes.length > codec.fixedSize) {
    throw new DecodeError("trailing_bytes", rootPath, `expected ${codec.fixedSize} bytes, got ${bytes.length}`);
  }
  const reader = new Reader(bytes);
  const value = codec.decodeFrom(reader, rootPath, NO_SIBLINGS);
  if (reader.remaining !== 0) {
    throw new DecodeError("trailing_bytes", rootPath, `${reader.remaining} bytes left after ${reader.offset}`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------------
// Integers

function uintNumber(width: 1 | 2 | 4): Codec<number> {
  const max = 2 ** (8 * width) - 1;
  return {
    fixedSize: width,
    describe: `u${8 * width}`,
    encodeInto(writer, value, path) {
      if (!Number.isInteger(value) || value < 0 || value > max)
        throw new EncodeError(path, `${value} is not a u${8 * width}`);
      writer.uint(value, width);
    },
    decodeFrom(reader, path) {
      return reader.uint(width, path);
    },
  };
}

export const u8: Codec<number> = uintNumber(1);
export const u16: Codec<number> = uintNumber(2);
export const u32: Codec<number> = uintNumber(4);

const U64_MAX = (1n << 64n) - 1n;

export const u64: Codec<bigint> = {
  fixedSize: 8,
  describe: "u64",
  encodeInto(writer, value, path) {
    if (typeof value !== "bigint" || value < 0n || value > U64_MAX)
      throw new EncodeError(path, `${value} is not a u64`);
    writer.uint(value, 8);
  },
  decodeFrom(reader, path) {
    const b = reader.take(8, path);
    let v = 0n;
    for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(b[i] as number);
    return v;
  },
};

/** u64 on the wire, a safe integer (<= 2^53 - 1) in memory. */
export const u64Number: Codec<number> = {
  fixedSize: 8,
  describe: "u64",
  encodeInto(writer, value, path) {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new EncodeError(path, `${value} is not a safe non-negative integer`);
    writer.uint(value, 8);
  },
  decodeFrom(reader, path) {
    const hi = reader.uint(4, path);
    const lo = reader.uint(4, path);
    if (hi > 0x1fffff) throw new DecodeError("invalid_value", path, "u64 above 2^53 - 1");
    return hi * 2 ** 32 + lo;
  },
};

// ---------------------------------------------------------------------------------------------------------------------
// Byte strings

export function bytes(n: number): Codec<Uint8Array> {
  return {
    fixedSize: n,
    describe: `bytes${n}`,
    encodeInto(writer, value, path) {
      if (!(value instanceof Uint8Array) || value.length !== n) {
        throw new EncodeError(
          path,
          `expected ${n} bytes, got ${value instanceof Uint8Array ? value.length : typeof value}`,
        );
      }
      writer.write(value);
    },
    decodeFrom(reader, path) {
      return reader.take(n, path).slice();
    },
  };
}

/** n raw bytes on the wire, a lowercase 0x-prefixed Hex string in memory. */
export function hexBytes(n: number): Codec<Hex> {
  return {
    fixedSize: n,
    describe: `bytes${n}`,
    encodeInto(writer, value, path) {
      if (!isHex(value, n))
        throw new EncodeError(path, `expected 0x-hex of ${n} bytes, got ${String(value).slice(0, 20)}`);
      writer.write(fromHex(value));
    },
    decodeFrom(reader, path) {
      return toHex(reader.take(n, path));
    },
  };
}

export const hex32: Codec<Hex> = hexBytes(32);

/** 32-byte big-endian unsigned integer (EVM balances and prices). */
export const u256: Codec<bigint> = {
  fixedSize: 32,
  describe: "u256 (32 bytes, big-endian)",
  encodeInto(writer, value, path) {
    if (typeof value !== "bigint" || value < 0n || value >= 1n << 256n)
      throw new EncodeError(path, `${value} is not a u256`);
    writer.uint(value, 32);
  },
  decodeFrom(reader, path) {
    let v = 0n;
    for (const b of reader.take(32, path)) v = (v << 8n) | BigInt(b);
    return v;
  },
};

/** u32 length prefix then the bytes; longer than `maxLen` is `too_long`. */
export function varBytes(maxLen: number): Codec<Uint8Array> {
  return {
    fixedSize: null,
    describe: `u32 length (<= ${maxLen}) || bytes`,
    encodeInto(writer, value, path) {
      if (!(value instanceof Uint8Array)) throw new EncodeError(path, "expected a Uint8Array");
      if (value.length > maxLen) throw new EncodeError(path, `${value.length} bytes exceed the maximum ${maxLen}`);
      writer.uint(value.length, 4);
      writer.write(value);
    },
    decodeFrom(reader, path) {
      const length = reader.uint(4, `${path}.length`);
      if (length > maxLen) throw new DecodeError("too_long", path, `${length} bytes exceed the maximum ${maxLen}`);
      return reader.take(length, path).slice();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Composites

/** u32 count prefix then the items; more than `maxItems` is `too_long`. */
export function list<T>(item: Codec<T>, maxItems: number): Codec<readonly T[]> {
  return {
    fixedSize: null,
    describe: `u32 count (<= ${maxItems}) || ${item.describe}[]`,
    encodeInto(writer, value, path, siblings) {
      if (!Array.isArray(value)) throw new EncodeError(path, "expected an array");
      if (value.length > maxItems) throw new EncodeError(path, `${value.length} items exceed the maximum ${maxItems}`);
      writer.uint(value.length, 4);
      for (let i = 0; i < value.length; i++) item.encodeInto(writer, value[i] as T, `${path}[${i}]`, siblings);
    },
    decodeFrom(reader, path, siblings) {
      const count = reader.uint(4, `${path}.length`);
      if (count > maxItems) throw new DecodeError("too_long", path, `${count} items exceed the maximum ${maxItems}`);
      // Each item takes at least one byte unless the item codec is zero-sized: refuse counts the input cannot hold
      // before allocating.
      if (item.fixedSize !== null && item.fixedSize * count > reader.remaining) {
        throw new DecodeError("truncated", path, `${count} items of ${item.fixedSize} bytes, ${reader.remaining} left`);
      }
      const out: T[] = [];
      for (let i = 0; i < count; i++) out.push(item.decodeFrom(reader, `${path}[${i}]`, siblings));
      return out;
    },
  };
}

export type StructFields = Readonly<Record<string, Codec<unknown>>>;
export type InferStruct<F extends StructFields> = { readonly [K in keyof F]: Infer<F[K]> };

/** Fields in declaration order. Decoding returns a fresh plain object with exactly these keys. */
export function struct<F extends StructFields>(fields: F): Codec<InferStruct<F>> {
  const entries = Object.entries(fields);
  let fixedSize: number | null = 0;
  for (const [, c] of entries) fixedSize = fixedSize === null || c.fixedSize === null ? null : fixedSize + c.fixedSize;
  return {
    fixedSize,
    describe: `{ ${entries.map(([k, c]) => `${k}: ${c.describe}`).join(", ")} }`,
    encodeInto(writer, value, path) {
      if (typeof value !== "object" || value === null) throw new EncodeError(path, "expected an object");
      const record = value as Siblings;
      for (const [key, c] of entries) c.encodeInto(writer, record[key], `${path}.${key}`, record);
    },
    decodeFrom(reader, path) {
      const out: Record<string, unknown> = {};
      for (const [key, c] of entries) out[key] = c.decodeFrom(reader, `${path}.${key}`, out);
      return out as InferStruct<F>;
    },
  };
}

/**
 * Maps a wire codec to a different in-memory type. `fromWire` validates the decoded wire value and calls `fail(reason)`
 * to reject it (reported as `invalid_value`); `toWire` converts back and may throw EncodeError.
 */
export function mapped<W, T>(
  inner: Codec<W>,
  describe: string,
  fromWire: (wire: W, fail: (reason: string) => never) => T,
  toWire: (value: T, path: string) => W,
): Codec<T> {
  return {
    fixedSize: inner.fixedSize,
    describe,
    encodeInto(writer, value, path, siblings) {
      inner.encodeInto(writer, toWire(value, path), path, siblings);
    },
    decodeFrom(reader, path, siblings) {
      const fail = (reason: string): never => {
        throw new DecodeError("invalid_value", path, reason);
      };
      return fromWire(inner.decodeFrom(reader, path, siblings), fail);
    },
  };
}

/** Accepts only values for which `check` returns null; otherwise `invalid_value` with the returned reason. */
export function refine<T>(inner: Codec<T>, check: (value: T) => string | null): Codec<T> {
  return {
    fixedSize: inner.fixedSize,
    describe: inner.describe,
    encodeInto(writer, value, path, siblings) {
      const problem = check(value);
      if (problem !== null) throw new EncodeError(path, problem);
      inner.encodeInto(writer, value, path, siblings);
    },
    decodeFrom(reader, path, siblings) {
      const value = inner.decodeFrom(reader, path, siblings);
      const problem = check(value);
      if (problem !== null) throw new DecodeError("invalid_value", path, problem);
      return value;
    },
  };
}

/** A closed set of string tags carried as u8 codes, e.g. `enumU8({ prevote: 1, precommit: 2 })`. */
export function enumU8<K extends string>(codes: Readonly<Record<K, number>>): Codec<K> {
  const byCode = new Map<number, K>();
  for (const key of Object.keys(codes) as K[]) byCode.set(codes[key], key);
  return {
    fixedSize: 1,
    describe: `u8 (${Object.entries(codes)
      .map(([k, c]) => `${String(c)} = ${k}`)
      .join(", ")})`,
    encodeInto(writer, value, path) {
      const code = Object.hasOwn(codes, value) ? codes[value] : undefined;
      if (code === undefined) throw new EncodeError(path, `unknown tag ${String(value)}`);
      writer.uint(code, 1);
    },
    decodeFrom(reader, path) {
      const code = reader.uint(1, path);
      const key = byCode.get(code);
      if (key === undefined) throw new DecodeError("invalid_value", path, `unknown code ${code}`);
      return key;
    },
  };
}

/**
 * u8 presence flag then the fixed-size payload; a null value is flag 0 and zero bytes. Decoding rejects flags other
 * than 0/1 and a null with nonzero payload, so every value has exactly one encoding.
 */
export function nullable<T>(inner: Codec<T>): Codec<T | null> {
  const size = inner.fixedSize;
  if (size === null) throw new TypeError("nullable() needs a fixed-size codec");
  return {
    fixedSize: 1 + size,
    describe: `u8 flag (0 = nil, 1 = present) || ${inner.describe} (zeros when nil)`,
    encodeInto(writer, value, path, siblings) {
      if (value === null) {
        writer.uint(0, 1);
        writer.zeros(size);
      } else {
        writer.uint(1, 1);
        inner.encodeInto(writer, value, path, siblings);
      }
    },
    decodeFrom(reader, path, siblings) {
      const flag = reader.uint(1, `${path}.flag`);
      if (flag === 1) return inner.decodeFrom(reader, path, siblings);
      if (flag !== 0) throw new DecodeError("invalid_value", `${path}.flag`, `flag ${flag} is neither 0 nor 1`);
      const payload = reader.take(size, path);
      for (const b of payload) if (b !== 0) throw new DecodeError("invalid_value", path, "nil with nonzero payload");
      return null;
    },
  };
}

/** A u8 version byte that must equal `version`, then `inner`. The version is not part of the in-memory type. */
export function versioned<T>(version: number, inner: Codec<T>): Codec<T> {
  return {
    fixedSize: inner.fixedSize === null ? null : 1 + inner.fixedSize,
    describe: `u8 version (= ${version}) || ${inner.describe}`,
    encodeInto(writer, value, path, siblings) {
      writer.uint(version, 1);
      inner.encodeInto(writer, value, path, siblings);
    },
    decodeFrom(reader, path, siblings) {
      const v = reader.uint(1, `${path}.version`);
      if (v !== version)
        throw new DecodeError("invalid_value", `${path}.version`, `unknown version ${v}, expected ${version}`);
      return inner.decodeFrom(reader, path, siblings);
    },
  };
}

/** Byte length of a bitmap of `n` bits. */
export function bitmapByteLength(n: number): number {
  return Math.ceil(n / 8);
}

/** Problem with a bitmap of `n` bits (wrong length or bits set at positions >= n), or null when canonical. */
export function bitmapProblem(bits: Uint8Array, n: number): string | null {
  const expected = bitmapByteLength(n);
  if (bits.length !== expected) return `bitmap of ${n} bits must be ${expected} bytes, got ${bits.length}`;
  if (n % 8 !== 0 && expected > 0) {
    const last = bits[expected - 1] as number;
    if (last >> (n % 8) !== 0) return `bits at positions >= ${n} are set`;
  }
  return null;
}

/**
 * A bitmap whose bit count is the value of the earlier sibling field `sizeField` (a number) of the enclosing struct.
 * Occupies ceil(n/8) bytes; bit i is byte i >> 3 under mask 1 << (i & 7); bits at positions >= n must be zero.
 */
export function bitmap(sizeField: string): Codec<Uint8Array> {
  const sizeOf = (siblings: Siblings, path: string, fail: (detail: string) => Error): number => {
    const n = siblings[sizeField];
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0)
      throw fail(`${path}: sibling ${sizeField} is not a count`);
    return n;
  };
  return {
    fixedSize: null,
    describe: `bitmap of ceil(${sizeField}/8) bytes`,
    encodeInto(writer, value, path, siblings) {
      const n = sizeOf(siblings, path, (d) => new EncodeError(path, d));
      if (!(value instanceof Uint8Array)) throw new EncodeError(path, "expected a Uint8Array");
      const problem = bitmapProblem(value, n);
      if (problem !== null) throw new EncodeError(path, problem);
      writer.write(value);
    },
    decodeFrom(reader, path, siblings) {
      const n = sizeOf(siblings, path, (d) => new DecodeError("invalid_value", path, d));
      const bits = reader.take(bitmapByteLength(n), path).slice();
      const problem = bitmapProblem(bits, n);
      if (problem !== null) throw new DecodeError("invalid_value", path, problem);
      return bits;
    },
  };
}
