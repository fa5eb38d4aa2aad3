// Receipt pieces: the Ethereum ordered-trie roots a header commits to, logs bloom aggregation and revert reasons.
import { RLP } from "@ethereumjs/rlp";
import { compareBytes, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";

const EMPTY_TRIE_ROOT_HEX: Hex = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";

export const BLOOM_BYTES = 256;
const ERROR_SELECTOR = "0x08c379a0"; // Error(string)
const PANIC_SELECTOR = "0x4e487b71"; // Panic(uint256)
/** Revert reasons kept in receipts are cut to this many bytes of UTF-8. */
export const MAX_REVERT_REASON_BYTES = 1024;

type TrieNode = Uint8Array | TrieNode[];

/** Hex-prefix encoding of a nibble path (Ethereum yellow paper, appendix C). */
function hexPrefix(nibbles: Uint8Array, leaf: boolean): Uint8Array {
  const odd = nibbles.length % 2;
  const out = new Uint8Array(1 + (nibbles.length - odd) / 2);
  out[0] = ((leaf ? 2 : 0) + odd) << 4;
  let i = 0;
  if (odd === 1) out[0] |= nibbles[i++] as number;
  for (let o = 1; i < nibbles.length; i += 2, o++) out[o] = ((nibbles[i] as number) << 4) | (nibbles[i + 1] as number);
  return out;
}

function nibblesOf(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) {
    out[2 * i] = (bytes[i] as number) >> 4;
    out[2 * i + 1] = (bytes[i] as number) & 0x0f;
  }
  return out;
}

/** How a child appears inside its parent: inline when its encoding is shorter than 32 bytes, else by hash. */
function reference(node: TrieNode): TrieNode {
  const encoded = RLP.encode(node);
  return encoded.length < 32 ? node : keccak256(encoded);
}

interface Entry {
  readonly path: Uint8Array;
  readonly value: Uint8Array;
}

/** The node for `entries` (sorted by path, distinct) below `depth` nibbles. */
function build(entries: readonly Entry[], depth: number): TrieNode {
  const first = entries[0] as Entry;
  if (entries.length === 1) return [hexPrefix(first.path.subarray(depth), true), first.value];
  const last = entries[entries.length - 1] as Entry;
  // Sorted entries: the prefix shared by the first and the last is shared by all.
  let shared = 0;
  while (
    depth + shared < first.path.length &&
    depth + shared < last.path.length &&
    first.path[depth + shared] === last.path[depth + shared]
  ) {
    shared++;
  }
  if (shared > 0) {
    return [hexPrefix(first.path.subarray(depth, depth + shared), false), reference(build(entries, depth + shared))];
  }
  const branch: TrieNode[] = Array.from({ length: 17 }, () => new Uint8Array(0));
  let start = 0;
  if (first.path.length === depth) {
    branch[16] = first.value;
    start = 1;
  }
  while (start < entries.length) {
    const nibble = (entries[start] as Entry).path[depth] as number;
    let end = start + 1;
    while (end < entries.length && (entries[end] as Entry).path[depth] === nibble) end++;
    branch[nibble] = reference(build(entries.slice(start, end), depth + 1));
    start = end;
  }
  return branch;
}

/**
 * Root of the trie mapping rlp(index) -> value, as Ethereum's transactionsRoot and receiptsRoot; the empty trie root
 * for an empty list. Built in one pass over the sorted keys: @ethereumjs/mpt inserts one key at a time and took
 * ~75 ms for 500 entries, this takes a few.
 */
export function orderedTrieRoot(values: readonly Uint8Array[]): Hex {
  if (values.length === 0) return EMPTY_TRIE_ROOT_HEX;
  const entries = values.map((value, index) => ({ path: nibblesOf(RLP.encode(index)), value }));
  entries.sort((a, b) => compareBytes(a.path, b.path));
  return toHex(keccak256(RLP.encode(build(entries, 0))));
}

/** Bitwise OR of 256-byte blooms into `into`. */
export function orBloom(into: Uint8Array, bloom: Uint8Array): void {
  for (let i = 0; i < BLOOM_BYTES; i++) into[i] = (into[i] as number) | (bloom[i] as number);
}

function word(data: Uint8Array, offset: number): bigint | null {
  if (offset + 32 > data.length) return null;
  return BigInt(toHex(data.subarray(offset, offset + 32)));
}

/**
 * The human-readable reason of reverted return data: the string of `Error(string)`, `Panic(0x..)` for a compiler
 * panic code, null otherwise (including malformed ABI, which a contract can return on purpose).
 */
export function decodeRevertReason(returnData: Uint8Array): string | null {
  if (returnData.length < 4) return null;
  const selector = toHex(returnData.subarray(0, 4));
  const body = returnData.subarray(4);
  if (selector === PANIC_SELECTOR) {
    const code = word(body, 0);
    return code === null ? null : `Panic(0x${code.toString(16)})`;
  }
  if (selector !== ERROR_SELECTOR) return null;
  const offset = word(body, 0);
  if (offset === null || offset > BigInt(body.length)) return null;
  const length = word(body, Number(offset));
  if (length === null) return null;
  const start = Number(offset) + 32;
  if (length > BigInt(body.length - start)) return null;
  const bytes = body.subarray(start, start + Math.min(Number(length), MAX_REVERT_REASON_BYTES));
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}
