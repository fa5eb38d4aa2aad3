// RLP encoding of byte strings and lists into one array (yellow paper, appendix B), and decoding without copies.
//
// @ethereumjs/rlp's encode builds every item's header with Uint8Array.from and joins each list with a concatenation
// of copies, so a trie node of 17 children costs some 20 small arrays and a copy of every child per level. This one
// measures the item first, then writes it into a single array. It takes only bytes and lists of them (what trie
// nodes and transaction fields are): callers turn numbers into minimal big-endian bytes themselves. Pure: no Node
// APIs (the light client imports the ordered trie, which uses it).
//
// @ethereumjs/rlp's decode copies every list payload and every string out of its input (Uint8Array.slice), so a
// transaction's fields were copied twice and each copy was a fresh ArrayBuffer for the collector: ~5% of a validator's
// CPU under load. decodeRlp accepts and refuses exactly the inputs that decode does and returns views into its input.

export type RlpItem = Uint8Array | readonly RlpItem[];

/** Bytes that a length needs, big-endian without leading zeros. */
function lengthBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x100) {
    n = Math.floor(n / 0x100);
    bytes++;
  }
  return bytes;
}

function headerLength(payload: number): number {
  return payload <= 55 ? 1 : 1 + lengthBytes(payload);
}

/** Encoded length of `item`; pushes the payload length of every list, in pre-order, for the writing pass. */
function measure(item: RlpItem, listPayloads: number[]): number {
  if (item instanceof Uint8Array) {
    if (item.length === 1 && (item[0] as number) < 0x80) return 1;
    return headerLength(item.length) + item.length;
  }
  const slot = listPayloads.length;
  listPayloads.push(0);
  let payload = 0;
  for (const child of item) payload += measure(child, listPayloads);
  listPayloads[slot] = payload;
  return headerLength(payload) + payload;
}

function writeHeader(out: Uint8Array, at: number, payload: number, short: number, long: number): number {
  if (payload <= 55) {
    out[at] = short + payload;
    return at + 1;
  }
  const n = lengthBytes(payload);
  out[at] = long + n;
  for (let i = n, rest = payload; i >= 1; i--, rest = Math.floor(rest / 0x100)) out[at + i] = rest % 0x100;
  return at + 1 + n;
}

interface Cursor {
  next: number;
}

function write(item: RlpItem, out: Uint8Array, at: number, listPayloads: readonly number[], cursor: Cursor): number {
  if (item instanceof Uint8Array) {
    if (item.length === 1 && (item[0] as number) < 0x80) {
      out[at] = item[0] as number;
      return at + 1;
    }
    const start = writeHeader(out, at, item.length, 0x80, 0xb7);
    out.set(item, start);
    return start + item.length;
  }
  const payload = listPayloads[cursor.next++] as number;
  let position = writeHeader(out, at, payload, 0xc0, 0xf7);
  for (const child of item) position = write(child, out, position, listPayloads, cursor);
  return position;
}

/** RLP of `item`: a byte string, or a list of items. Byte for byte what @ethereumjs/rlp's encode gives for them. */
export function encodeRlp(item: RlpItem): Uint8Array {
  const listPayloads: number[] = [];
  const out = new Uint8Array(measure(item, listPayloads));
  write(item, out, 0, listPayloads, { next: 0 });
  return out;
}

/** Input that is not one canonical RLP item (the messages are @ethereumjs/rlp's). */
export class RlpDecodeError extends Error {
  override readonly name = "RlpDecodeError";
}

/**
 * The item `input` encodes, as @ethereumjs/rlp's decode gives it (the same inputs accepted, the same refused, an empty
 * input decodes to empty bytes), but its byte strings are views into `input` (subarray), not copies: they change if
 * `input` does, and keep it alive. Throws RlpDecodeError.
 */
export function decodeRlp(input: Uint8Array): RlpItem {
  if (input.length === 0) return new Uint8Array(0);
  const out: { item: RlpItem; end: number } = { item: input, end: 0 };
  decodeAt(input, 0, input.length, out);
  if (out.end !== input.length) throw new RlpDecodeError("invalid RLP: remainder must be zero");
  return out.item;
}

/** A length field: big-endian, no leading zero (very long ones exceed any input and are refused by the caller). */
function lengthField(input: Uint8Array, from: number, to: number): number {
  if (input[from] === 0) throw new RlpDecodeError("invalid RLP: extra zeros");
  let n = 0;
  for (let i = from; i < to; i++) n = n * 256 + (input[i] as number);
  return n;
}

function outOfBounds(): RlpDecodeError {
  return new RlpDecodeError("invalid RLP (safeSlice): end slice of Uint8Array out-of-bounds");
}

/** Decodes the item at `start` of an enclosing payload that ends at `limit` (> start) into `out`. */
function decodeAt(input: Uint8Array, start: number, limit: number, out: { item: RlpItem; end: number }): void {
  const available = limit - start;
  const first = input[start] as number;
  if (first <= 0x7f) {
    out.item = input.subarray(start, start + 1);
    out.end = start + 1;
    return;
  }
  if (first <= 0xb7) {
    const length = first - 0x7f; // header and payload
    if (length > available) throw outOfBounds();
    if (length === 2 && (input[start + 1] as number) < 0x80) {
      throw new RlpDecodeError("invalid RLP encoding: invalid prefix, single byte < 0x80 are not prefixed");
    }
    out.item = input.subarray(start + 1, start + length);
    out.end = start + length;
    return;
  }
  if (first <= 0xbf) {
    const header = first - 0xb6; // the first byte and the length field
    if (available - 1 < header) throw new RlpDecodeError("invalid RLP: not enough bytes for string length");
    const length = lengthField(input, start + 1, start + header);
    if (length <= 55) throw new RlpDecodeError("invalid RLP: expected string length to be greater than 55");
    if (header + length > available) throw outOfBounds();
    out.item = input.subarray(start + header, start + header + length);
    out.end = start + header + length;
    return;
  }
  let header: number;
  let total: number;
  if (first <= 0xf7) {
    header = 1;
    total = first - 0xbf;
    if (total > available) throw outOfBounds();
  } else {
    header = first - 0xf6;
    if (header > available) throw outOfBounds();
    const length = lengthField(input, start + 1, start + header);
    if (length < 56) throw new RlpDecodeError("invalid RLP: encoded list too short");
    total = header + length;
    if (total > available) throw new RlpDecodeError("invalid RLP: total length is larger than the data");
  }
  const items: RlpItem[] = [];
  const end = start + total;
  for (let at = start + header; at < end; ) {
    decodeAt(input, at, end, out);
    items.push(out.item);
    at = out.end;
  }
  out.item = items;
  out.end = end;
}
