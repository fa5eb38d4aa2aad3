// Keeps, of an execution's new nodes, only those the new state root reaches. A trie updated one key at a time hashes
// every intermediate version of a path, so most of what it writes is superseded within the same block; without this
// filter those orphans would be stored until their state generation is dropped (src/node/state-pruner.ts). The EVM
// and SVM state now flush as one batch per trie (./trie-batch.ts), which writes final nodes only; the filter still
// guards every path that writes. Walking
// from the root through new nodes only is enough: a committed node's children are committed, so a new node is
// reachable only through new ancestors. walkState (below) walks a whole state instead, reading every node: the copy
// step of state pruning.
import { CODEHASH_PREFIX } from "@ethereumjs/statemanager";
import { KECCAK256_NULL_S } from "@ethereumjs/util";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import { EMPTY_TRIE_ROOT } from "../chain/ordered-trie.ts";

/** Code is stored under "c" || keccak256(code): 33-byte keys, never trie nodes. */
const CODE_KEY_HEX_LENGTH = 2 + 2 * 33;

// The nodes are read in place, without decoding them into arrays of copies (RLP.decode copies every item): this
// runs over every node a block writes. `item` reads the RLP header at `at` into these three.
let itemStart = 0;
let itemEnd = 0;
let itemIsList = false;

function malformed(what: string): Error {
  return new Error(`trie node is not valid RLP: ${what}`);
}

/** Reads the header of the RLP item at `at` (which must end by `limit`): payload [itemStart, itemEnd), itemIsList. */
function item(b: Uint8Array, at: number, limit: number): void {
  if (at >= limit) throw malformed("truncated");
  const p = b[at] as number;
  let start: number;
  let length: number;
  if (p < 0x80) {
    start = at;
    length = 1;
    itemIsList = false;
  } else if (p <= 0xb7 || (p >= 0xc0 && p <= 0xf7)) {
    itemIsList = p >= 0xc0;
    start = at + 1;
    length = p - (itemIsList ? 0xc0 : 0x80);
  } else {
    itemIsList = p >= 0xf8;
    const n = p - (itemIsList ? 0xf7 : 0xb7);
    if (at + 1 + n > limit) throw malformed("truncated length");
    length = 0;
    for (let i = 1; i <= n; i++) length = length * 256 + (b[at + i] as number);
    start = at + 1 + n;
  }
  if (start + length > limit) throw malformed("truncated payload");
  itemStart = start;
  itemEnd = start + length;
}

/** Item positions of the node being walked: where each item's header starts, its payload, whether it is a list. */
const MAX_ITEMS = 17;
const heads = new Int32Array(MAX_ITEMS + 1);
const starts = new Int32Array(MAX_ITEMS);
const ends = new Int32Array(MAX_ITEMS);
const lists = new Uint8Array(MAX_ITEMS);

/** Splits the list `node` (its whole encoding) into items; returns their count (at most 17, else throws). */
function split(node: Uint8Array): number {
  item(node, 0, node.length);
  if (!itemIsList) throw new Error("trie node is not an RLP list");
  if (itemEnd !== node.length) throw malformed("bytes after the node");
  let at = itemStart;
  const end = itemEnd;
  let count = 0;
  while (at < end) {
    if (count === MAX_ITEMS) throw new Error("trie node with more than 17 items");
    item(node, at, end);
    heads[count] = at;
    starts[count] = itemStart;
    ends[count] = itemEnd;
    lists[count] = itemIsList ? 1 : 0;
    count++;
    at = itemEnd;
  }
  heads[count] = end;
  return count;
}

/**
 * The subset of `writes` reachable from `stateRoot`: for the EVM (`evmAccounts`, the default) through the account trie
 * and the storage tries below its leaves, plus all code; otherwise (the SVM: leaves are opaque account encodings)
 * through the one trie. Throws on a node that does not decode as a trie node (a broken invariant: the trie produced it).
 */
export function reachableWrites(
  stateRoot: Hex,
  writes: ReadonlyMap<string, Uint8Array>,
  evmAccounts = true,
): Map<string, Uint8Array> {
  const kept = new Map<string, Uint8Array>();
  if (evmAccounts) for (const [key, value] of writes) if (key.length === CODE_KEY_HEX_LENGTH) kept.set(key, value);
  // Explicit stack of nodes to walk (a written node, or a child inlined in its parent), each with whether it belongs
  // to the account trie: a path is at most 64 nibbles deep, but storage tries hang below account leaves.
  const nodes: Uint8Array[] = [];
  const inAccounts: boolean[] = [];
  /** A written node not walked yet goes on the stack; a committed one (or an empty slot) ends the walk there. */
  const follow = (key: string, accounts: boolean): void => {
    const bytes = writes.get(key);
    if (bytes === undefined || kept.has(key)) return;
    kept.set(key, bytes);
    nodes.push(bytes);
    inAccounts.push(accounts);
  };
  /** A child reference: a 32-byte hash, an inlined node (a list shorter than 32 bytes), or empty. */
  const child = (node: Uint8Array, i: number, accounts: boolean): void => {
    if (lists[i] === 1) {
      nodes.push(node.subarray(heads[i], heads[i + 1]));
      inAccounts.push(accounts);
    } else if ((ends[i] as number) - (starts[i] as number) === 32) {
      follow(toHex(node.subarray(starts[i], ends[i])), accounts);
    }
  };
  /** An account leaf's value, RLP([nonce, balance, storageRoot, codeHash]): its storage trie is walked too. */
  const storageOf = (node: Uint8Array, i: number): void => {
    if (lists[i] === 1 || ends[i] === starts[i]) return;
    const value = node.subarray(starts[i], ends[i]);
    if (split(value) !== 4 || lists[2] === 1) throw new Error("account leaf is not [nonce, balance, root, code]");
    if ((ends[2] as number) - (starts[2] as number) === 32) follow(toHex(value.subarray(starts[2], ends[2])), false);
  };
  follow(toHex(fromHex(stateRoot)), evmAccounts);
  for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
    const accounts = inAccounts.pop() as boolean;
    const count = split(node);
    if (count === 17) {
      // storageOf splits the value, so the children go first.
      for (let i = 0; i < 16; i++) child(node, i, accounts);
      if (accounts) storageOf(node, 16);
    } else if (count === 2) {
      if (lists[0] === 1 || ends[0] === starts[0]) throw new Error("trie node without a path");
      const isLeaf = (node[starts[0] as number] as number) >> 4 >= 2;
      if (!isLeaf) child(node, 1, accounts);
      else if (accounts) storageOf(node, 1);
    } else {
      throw new Error(`trie node with ${count} items`);
    }
  }
  return kept;
}

/** Code is stored under this prefix and its hash, as the state manager writes it ("0x63"). */
const CODE_KEY_PREFIX = toHex(CODEHASH_PREFIX);

/** What one node refers to, taken out synchronously (split's scratch arrays are shared) before anything awaits. */
interface Refs {
  /** `root`: a storage trie's root (contracts with equal storage share the trie). */
  readonly nodes: { readonly key: string; readonly accounts: boolean; readonly root?: boolean }[];
  readonly inline: { readonly bytes: Uint8Array; readonly accounts: boolean }[];
  readonly code: string[];
}

function refsOf(node: Uint8Array, accounts: boolean, refs: Refs): void {
  const child = (i: number): void => {
    if (lists[i] === 1) refs.inline.push({ bytes: node.subarray(heads[i], heads[i + 1]), accounts });
    else if ((ends[i] as number) - (starts[i] as number) === 32) {
      refs.nodes.push({ key: toHex(node.subarray(starts[i], ends[i])), accounts });
    }
  };
  const accountOf = (i: number): void => {
    if (lists[i] === 1 || ends[i] === starts[i]) return;
    const value = node.subarray(starts[i], ends[i]);
    if (split(value) !== 4 || lists[2] === 1 || lists[3] === 1) {
      throw new Error("account leaf is not [nonce, balance, root, code]");
    }
    if ((ends[2] as number) - (starts[2] as number) === 32) {
      const root = toHex(value.subarray(starts[2], ends[2]));
      if (root !== EMPTY_TRIE_ROOT) refs.nodes.push({ key: root, accounts: false, root: true });
    }
    if ((ends[3] as number) - (starts[3] as number) === 32) {
      const codeHash = toHex(value.subarray(starts[3], ends[3]));
      if (codeHash !== KECCAK256_NULL_S) refs.code.push(`${CODE_KEY_PREFIX}${codeHash.slice(2)}`);
    }
  };
  const count = split(node);
  if (count === 17) {
    for (let i = 0; i < 16; i++) child(i);
    if (accounts) accountOf(16);
  } else if (count === 2) {
    if (lists[0] === 1 || ends[0] === starts[0]) throw new Error("trie node without a path");
    const isLeaf = (node[starts[0] as number] as number) >> 4 >= 2;
    if (!isLeaf) child(1);
    else if (accounts) accountOf(1);
  } else {
    throw new Error(`trie node with ${count} items`);
  }
}

/**
 * Queues what the trie node `node` refers to, looking into its inlined children the same way: each stored child (by
 * hash) on `nodes`, and in the EVM account trie (`accounts`) each storage trie root and code key its account leaves
 * name on `nodes` / `code`, once (`seen` remembers them: contracts with equal storage or code share them). Nodes
 * inside a trie are not remembered: with hashed keys two positions of one trie never hold the same subtree. Throws on
 * a node that does not decode as a trie node.
 */
export function queueRefs(
  node: Uint8Array,
  accounts: boolean,
  seen: Set<string>,
  nodes: { key: string; accounts: boolean }[],
  code: string[],
): void {
  const inline = [{ bytes: node, accounts }];
  for (let next = inline.pop(); next !== undefined; next = inline.pop()) {
    // refsOf fills shared scratch arrays: its refs are taken out before the next call.
    const refs: Refs = { nodes: [], inline: [], code: [] };
    refsOf(next.bytes, next.accounts, refs);
    for (const r of refs.nodes) {
      if (r.root === true) {
        if (seen.has(r.key)) continue;
        seen.add(r.key);
      }
      nodes.push({ key: r.key, accounts: r.accounts });
    }
    for (const r of refs.inline) inline.push(r);
    for (const key of refs.code) {
      if (seen.has(key)) continue;
      seen.add(key);
      code.push(key);
    }
  }
}

/**
 * Visits every stored node of the state under `root`: for the EVM (`evmAccounts`) the account trie, the storage tries
 * below its leaves and the code its accounts name ("0x63" || code hash, as the state manager stores code), otherwise
 * (the SVM) the one trie. `read` gives a node's bytes ("0x" hex key); a node it does not have throws (the state is not
 * whole). `seen` remembers the tries walked (their roots) and the code keys, and is filled: a trie or code already in
 * it is not visited again, so several roots share one walk and contracts with equal storage share a storage trie.
 * Nodes inside a trie are not remembered: with hashed keys two positions of one trie never hold the same subtree
 * (a node encodes the rest of its keys' paths), so the memory is per contract, not per node. `code` receives each code
 * key once. Returns the number of trie nodes read.
 */
export async function walkState(
  root: Hex,
  evmAccounts: boolean,
  read: (key: string) => Promise<Uint8Array | undefined>,
  seen: Set<string>,
  code: (key: string) => Promise<void>,
): Promise<number> {
  const pending: { key: string; accounts: boolean }[] = [];
  const codeKeys: string[] = [];
  const start = root.toLowerCase();
  let nodes = 0;
  if (start !== EMPTY_TRIE_ROOT && !seen.has(start)) {
    seen.add(start);
    pending.push({ key: start, accounts: evmAccounts });
  }
  for (let at = pending.pop(); at !== undefined; at = pending.pop()) {
    const bytes = await read(at.key);
    if (bytes === undefined) throw new Error(`state node ${at.key} under root ${start} is missing`);
    nodes++;
    queueRefs(bytes, at.accounts, seen, pending, codeKeys);
    for (let key = codeKeys.pop(); key !== undefined; key = codeKeys.pop()) await code(key);
  }
  return nodes;
}
