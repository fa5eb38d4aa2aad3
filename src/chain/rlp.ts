// RLP encoding of byte strings and lists into one array (yellow paper, appendix B).
//
// @ethereumjs/rlp's encode builds every item's header with Uint8Array.from and joins each list with a concatenation
// of copies, so a trie node of 17 children costs some 20 small arrays and a copy of every child per level. This one
// measures the item first, then writes it into a single array. It takes only bytes and lists of them (what trie
// nodes and transaction fields are): callers turn numbers into minimal big-endian bytes themselves. Pure: no Node
// APIs (the light client imports the ordered trie, which uses it).

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
