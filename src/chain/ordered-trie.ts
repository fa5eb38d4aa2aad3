// The Ethereum ordered trie (key rlp(index) -> value): what a header's transactionsRoot and receiptsRoot commit to.
// One builder serves the execution core (roots), the JSON-RPC (proofs of one entry, lumia_getTransactionCertificate)
// and the tests. Pure: no Node APIs (the light client imports it too).
import { RLP } from "@ethereumjs/rlp";
import { compareBytes, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { encodeRlp } from "./rlp.ts";

/** keccak256(rlp("")). */
export const EMPTY_TRIE_ROOT: Hex = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";

/** The trie key of entry `index` of a transactions or receipts trie. */
export function orderedTrieKey(index: number): Uint8Array {
  return RLP.encode(index);
}

/** An ordered trie (rlp(index) -> value) built to answer proofs; node side. */
export interface OrderedTrie {
  readonly root: Hex;
  readonly size: number;
  /** The nodes from the root to entry `index`'s leaf (hash-referenced nodes; inlined ones are inside their parent). */
  prove(index: number): Hex[];
}

type TrieNode = Uint8Array | TrieNode[];

/** A node as built: its RLP, what its parent holds (itself inline under 32 bytes, else its hash) and its children. */
interface Built {
  readonly encoded: Uint8Array;
  readonly reference: TrieNode;
  readonly raw: TrieNode[];
  /** Branch: child per nibble; extension: the one child; leaf: none. */
  readonly children: readonly (Built | undefined)[];
  /** Nibbles an extension skips. */
  readonly skip: number;
}

/** keccak-256; the node passes a faster implementation than the pure default (src/execution/keccak.ts). */
export type Keccak256 = (data: Uint8Array) => Uint8Array;

function made(raw: TrieNode[], children: readonly (Built | undefined)[], skip: number, hash: Keccak256): Built {
  const encoded = encodeRlp(raw);
  return { encoded, reference: encoded.length < 32 ? raw : hash(encoded), raw, children, skip };
}

/** Hex-prefix encoding of a nibble path (yellow paper, appendix C). */
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

interface Entry {
  readonly path: Uint8Array;
  readonly value: Uint8Array;
}

/** The node of `entries` (sorted by path, distinct) below `depth` nibbles: src/execution/receipts.ts's construction. */
function build(entries: readonly Entry[], depth: number, hash: Keccak256): Built {
  const first = entries[0] as Entry;
  if (entries.length === 1) return made([hexPrefix(first.path.subarray(depth), true), first.value], [], 0, hash);
  const last = entries[entries.length - 1] as Entry;
  let shared = 0;
  while (
    depth + shared < first.path.length &&
    depth + shared < last.path.length &&
    first.path[depth + shared] === last.path[depth + shared]
  ) {
    shared++;
  }
  if (shared > 0) {
    const child = build(entries, depth + shared, hash);
    return made([hexPrefix(first.path.subarray(depth, depth + shared), false), child.reference], [child], shared, hash);
  }
  const raw: TrieNode[] = Array.from({ length: 17 }, () => new Uint8Array(0));
  const children: (Built | undefined)[] = Array.from({ length: 16 }, () => undefined);
  let start = 0;
  if (first.path.length === depth) {
    raw[16] = first.value;
    start = 1;
  }
  while (start < entries.length) {
    const nibble = (entries[start] as Entry).path[depth] as number;
    let end = start + 1;
    while (end < entries.length && (entries[end] as Entry).path[depth] === nibble) end++;
    const child = build(entries.slice(start, end), depth + 1, hash);
    raw[nibble] = child.reference;
    children[nibble] = child;
    start = end;
  }
  return made(raw, children, 0, hash);
}

const EMPTY_TRIE: OrderedTrie = {
  root: EMPTY_TRIE_ROOT,
  size: 0,
  prove: (index) => {
    throw new RangeError(`entry ${index} is not in an empty trie`);
  },
};

/**
 * The ordered trie of `values`, kept so that entries can be proven. One pass over the sorted keys, a few ms for 500
 * entries: @ethereumjs/mpt inserting one key at a time took ~270 ms on this machine, CPU time a node would take from
 * consensus for every block. Tests check the root and the proofs against @ethereumjs/mpt.
 */
export function buildOrderedTrie(values: readonly Uint8Array[], hash: Keccak256 = keccak256): OrderedTrie {
  if (values.length === 0) return EMPTY_TRIE;
  const entries = values.map((value, index) => ({ path: nibblesOf(orderedTrieKey(index)), value }));
  entries.sort((a, b) => compareBytes(a.path, b.path));
  const root = build(entries, 0, hash);
  return {
    root: toHex(hash(root.encoded)),
    size: values.length,
    prove(index) {
      if (!Number.isInteger(index) || index < 0 || index >= values.length) {
        throw new RangeError(`entry ${index} is not in a trie of ${values.length}`);
      }
      const path = nibblesOf(orderedTrieKey(index));
      const proof: Hex[] = [toHex(root.encoded)];
      let node = root;
      let depth = 0;
      for (;;) {
        let next: Built | undefined;
        if (node.children.length === 16) {
          if (depth === path.length) break;
          next = node.children[path[depth] as number];
          depth += 1;
        } else if (node.children.length === 1) {
          next = node.children[0];
          depth += node.skip;
        }
        if (next === undefined) break;
        if (next.encoded.length >= 32) proof.push(toHex(next.encoded));
        node = next;
      }
      return proof;
    },
  };
}

/** Root of the ordered trie of `values` (the empty trie root for none): Ethereum's transactionsRoot / receiptsRoot. */
export function orderedTrieRoot(values: readonly Uint8Array[], hash: Keccak256 = keccak256): Hex {
  return buildOrderedTrie(values, hash).root;
}
