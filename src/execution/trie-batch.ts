// Applies a block's worth of key changes to a Merkle Patricia trie at once, hashing each changed node once.
//
// @ethereumjs/mpt's put() walks the path from the root, decodes every node on it, and re-encodes and re-hashes the
// whole path, for every key: a block that changes 500 accounts hashes the root and the upper branches 500 times and
// writes every intermediate version of them. Here the changes are applied to decoded nodes in memory first (a node
// is read from the store once, when a change first reaches it), and only the final version of each changed node is
// encoded and hashed, bottom-up. Same encoding as the Yellow Paper's (and ethereumjs'): the roots are identical, which
// test/execution/trie-batch.test.ts checks against @ethereumjs/mpt on random batches.
import type { MerklePatriciaTrie } from "@ethereumjs/mpt";
import { RLP } from "@ethereumjs/rlp";
import { fromHex } from "../../consensus/bytes.ts";
import { EMPTY_TRIE_ROOT } from "../chain/ordered-trie.ts";
import { encodeRlp } from "../chain/rlp.ts";
import { fastKeccak256 } from "./keccak.ts";

type Raw = Uint8Array | Raw[];

/** A node not read yet: only its hash is known. */
interface HashedNode {
  readonly kind: "hashed";
  readonly hash: Uint8Array;
}
interface LeafNode {
  readonly kind: "leaf";
  /** Nibbles of the key's remainder. */
  readonly path: Uint8Array;
  readonly value: Uint8Array;
  /** How the parent refers to this node (hash, or the inline list) while it is unchanged since it was read. */
  readonly ref?: Raw;
}
interface ExtensionNode {
  readonly kind: "extension";
  readonly path: Uint8Array;
  readonly child: TrieNode;
  readonly ref?: Raw;
}
interface BranchNode {
  readonly kind: "branch";
  readonly children: readonly (TrieNode | null)[];
  readonly value: Uint8Array | null;
  readonly ref?: Raw;
}
type TrieNode = HashedNode | LeafNode | ExtensionNode | BranchNode;

/** Where the trie's nodes are read: by node hash. */
export interface TrieNodeReader {
  get(hash: Uint8Array): Promise<Uint8Array | undefined>;
}

export interface TrieBatchResult {
  readonly root: Uint8Array;
  /** The new nodes the new root reaches, hash -> encoding (nodes shorter than 32 bytes are inlined in their parent). */
  readonly nodes: [Uint8Array, Uint8Array][];
}

const EMPTY = new Uint8Array(0);
const EMPTY_TRIE_ROOT_BYTES = fromHex(EMPTY_TRIE_ROOT);

/** Thrown when a node the batch must read is not in the store; its message matches ethereumjs' ("Missing node"). */
export class MissingTrieNodeError extends Error {
  constructor(readonly hash: Uint8Array) {
    super(`Missing node in DB: ${Buffer.from(hash).toString("hex")}`);
    this.name = "MissingTrieNodeError";
  }
}

/**
 * Applies `updates` (key -> value, null deletes the key) to the trie of `root` and returns the new root and the new
 * nodes. Later updates of the same key win.
 */
export async function applyTrieBatch(
  root: Uint8Array,
  updates: Iterable<readonly [key: Uint8Array, value: Uint8Array | null]>,
  reader: TrieNodeReader,
): Promise<TrieBatchResult> {
  const load = async (node: HashedNode): Promise<Exclude<TrieNode, HashedNode>> => {
    const bytes = await reader.get(node.hash);
    if (bytes === undefined) throw new MissingTrieNodeError(node.hash);
    const decoded = fromRaw(RLP.decode(bytes) as Raw, node.hash);
    if (decoded === null || decoded.kind === "hashed") throw new Error("a trie node decodes as a reference");
    return decoded;
  };

  const insert = async (node: TrieNode | null, path: Uint8Array, value: Uint8Array): Promise<TrieNode> => {
    if (node === null) return { kind: "leaf", path, value };
    const n = node.kind === "hashed" ? await load(node) : node;
    if (n.kind === "branch") {
      if (path.length === 0) return equalBytes(n.value, value) ? node : { kind: "branch", children: n.children, value };
      const i = path[0] as number;
      const before = n.children[i] ?? null;
      const after = await insert(before, path.subarray(1), value);
      if (after === before) return node;
      const children = n.children.slice();
      children[i] = after;
      return { kind: "branch", children, value: n.value };
    }
    const common = commonPrefix(n.path, path);
    if (n.kind === "leaf" && common === n.path.length && common === path.length) {
      return equalBytes(n.value, value) ? node : { kind: "leaf", path, value };
    }
    if (n.kind === "extension" && common === n.path.length) {
      const child = await insert(n.child, path.subarray(common), value);
      return child === n.child ? node : { kind: "extension", path: n.path, child };
    }
    // The paths part at `common`: a branch there holds the old node's remainder and the new value.
    const children: (TrieNode | null)[] = new Array(16).fill(null);
    let branchValue: Uint8Array | null = null;
    const oldRest = n.path.subarray(common);
    if (n.kind === "leaf") {
      if (oldRest.length === 0) branchValue = n.value;
      else children[oldRest[0] as number] = { kind: "leaf", path: oldRest.subarray(1), value: n.value };
    } else {
      const after = oldRest.subarray(1);
      children[oldRest[0] as number] =
        after.length === 0 ? n.child : { kind: "extension", path: after, child: n.child };
    }
    const newRest = path.subarray(common);
    if (newRest.length === 0) branchValue = value;
    else children[newRest[0] as number] = { kind: "leaf", path: newRest.subarray(1), value };
    const branch: BranchNode = { kind: "branch", children, value: branchValue };
    return common === 0 ? branch : { kind: "extension", path: path.subarray(0, common), child: branch };
  };

  /** Returns `node` itself when the key is absent (nothing changes). */
  const remove = async (node: TrieNode | null, path: Uint8Array): Promise<TrieNode | null> => {
    if (node === null) return null;
    const n = node.kind === "hashed" ? await load(node) : node;
    if (n.kind === "leaf") return equalNibbles(n.path, path) ? null : node;
    if (n.kind === "extension") {
      if (commonPrefix(n.path, path) !== n.path.length) return node;
      const child = await remove(n.child, path.subarray(n.path.length));
      return child === n.child ? node : join(n.path, child);
    }
    let children = n.children;
    let value = n.value;
    if (path.length === 0) {
      if (value === null) return node;
      value = null;
    } else {
      const i = path[0] as number;
      const before = n.children[i] ?? null;
      const after = await remove(before, path.subarray(1));
      if (after === before) return node;
      const copy = n.children.slice();
      copy[i] = after;
      children = copy;
    }
    // A branch keeps two or more entries; with one left it merges into its remaining entry.
    let count = value === null ? 0 : 1;
    let only = -1;
    for (let i = 0; i < 16; i++) {
      if (children[i] !== null && children[i] !== undefined) {
        count++;
        only = i;
      }
    }
    if (count >= 2) return { kind: "branch", children, value };
    if (count === 0) return null;
    if (value !== null) return { kind: "leaf", path: EMPTY, value };
    return join(Uint8Array.of(only), children[only] ?? null);
  };

  /** `prefix` followed by `child`, in normal form (no extension above a leaf or another extension). */
  const join = async (prefix: Uint8Array, child: TrieNode | null): Promise<TrieNode | null> => {
    if (child === null) return null;
    const c = child.kind === "hashed" ? await load(child) : child;
    if (c.kind === "leaf") return { kind: "leaf", path: concatNibbles(prefix, c.path), value: c.value };
    if (c.kind === "extension") return { kind: "extension", path: concatNibbles(prefix, c.path), child: c.child };
    return prefix.length === 0 ? child : { kind: "extension", path: prefix, child };
  };

  let top: TrieNode | null = equalBytes(root, EMPTY_TRIE_ROOT_BYTES) ? null : { kind: "hashed", hash: root };
  for (const [key, value] of updates) {
    const path = toNibbles(key);
    top = value === null || value.length === 0 ? await remove(top, path) : await insert(top, path, value);
  }
  if (top === null) return { root: EMPTY_TRIE_ROOT_BYTES, nodes: [] };
  if (top.kind === "hashed") return { root: top.hash, nodes: [] };
  if (top.ref instanceof Uint8Array) return { root: top.ref, nodes: [] };

  const nodes: [Uint8Array, Uint8Array][] = [];
  const refOf = (node: TrieNode, isRoot: boolean): Raw => {
    if (node.kind === "hashed") return node.hash;
    if (node.ref !== undefined && !isRoot) return node.ref;
    let raw: Raw[];
    if (node.kind === "leaf") raw = [hexPrefix(node.path, true), node.value];
    else if (node.kind === "extension") raw = [hexPrefix(node.path, false), refOf(node.child, false)];
    else {
      raw = node.children.map((c) => (c === null ? EMPTY : refOf(c, false)));
      raw.push(node.value ?? EMPTY);
    }
    const encoded = encodeRlp(raw);
    if (encoded.length < 32 && !isRoot) return raw;
    const h = fastKeccak256(encoded);
    nodes.push([h, encoded]);
    return h;
  };
  return { root: refOf(top, true) as Uint8Array, nodes };
}

/**
 * Applies `updates` (hashed keys, as the trie stores them) to an ethereumjs trie as one batch: writes the new nodes to
 * its database and moves it to the new root, which it returns.
 */
export async function applyBatchToTrie(
  trie: MerklePatriciaTrie,
  updates: readonly (readonly [Uint8Array, Uint8Array | null])[],
): Promise<Uint8Array> {
  const db = trie.database();
  const { root, nodes } = await applyTrieBatch(trie.root(), updates, {
    get: async (hash) => (await db.get(hash)) as Uint8Array | undefined,
  });
  await db.batch(nodes.map(([key, value]) => ({ type: "put" as const, key, value })));
  trie.root(root);
  return root;
}

/** A decoded node or child reference; `ref` is how its parent refers to it. Empty bytes: no node. */
function fromRaw(raw: Raw, ref: Raw): TrieNode | null {
  if (raw instanceof Uint8Array) {
    if (raw.length === 0) return null;
    if (raw.length === 32) return { kind: "hashed", hash: raw };
    throw new Error(`a trie child reference of ${raw.length} bytes`);
  }
  if (raw.length === 17) {
    const children: (TrieNode | null)[] = [];
    for (let i = 0; i < 16; i++) children.push(fromRaw(raw[i] as Raw, raw[i] as Raw));
    const value = raw[16];
    if (!(value instanceof Uint8Array)) throw new Error("a branch value that is a list");
    return { kind: "branch", children, value: value.length === 0 ? null : value, ref };
  }
  if (raw.length === 2) {
    const [encodedPath, second] = raw as [Raw, Raw];
    if (!(encodedPath instanceof Uint8Array) || encodedPath.length === 0) throw new Error("a trie node path");
    const flag = (encodedPath[0] as number) >> 4;
    const nibbles = toNibbles(encodedPath);
    const path = nibbles.subarray(flag & 1 ? 1 : 2);
    if (flag >= 2) {
      if (!(second instanceof Uint8Array)) throw new Error("a leaf value that is a list");
      return { kind: "leaf", path, value: second, ref };
    }
    const child = fromRaw(second, second);
    if (child === null) throw new Error("an extension without a child");
    return { kind: "extension", path, child, ref };
  }
  throw new Error(`a trie node of ${raw.length} items`);
}

function toNibbles(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length * 2);
  for (let i = 0; i < key.length; i++) {
    const b = key[i] as number;
    out[2 * i] = b >> 4;
    out[2 * i + 1] = b & 15;
  }
  return out;
}

/** Hex-prefix encoding (Yellow Paper, appendix C). */
function hexPrefix(path: Uint8Array, leaf: boolean): Uint8Array {
  const odd = path.length % 2 === 1;
  const out = new Uint8Array(1 + (path.length >> 1));
  const flag = (leaf ? 2 : 0) + (odd ? 1 : 0);
  let i = 0;
  if (odd) {
    out[0] = (flag << 4) | (path[0] as number);
    i = 1;
  } else {
    out[0] = flag << 4;
  }
  for (let o = 1; i < path.length; i += 2, o++) out[o] = ((path[i] as number) << 4) | (path[i + 1] as number);
  return out;
}

function commonPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function equalNibbles(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && commonPrefix(a, b) === a.length;
}

function equalBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  if (a === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function concatNibbles(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
