// Merkle Patricia proof checks: the client verifies proofs of a block's transactions and receipts (the ordered trie of
// src/chain/ordered-trie.ts, which the node proves entries of) and EIP-1186 state proofs (eth_getProof) against roots a
// certificate committed to, with @ethereumjs/mpt. Pure: no Node APIs (runs in browsers).
import { verifyMerkleProof } from "@ethereumjs/mpt";
import { fromHex, type Hex, isHex, keccak256 } from "../../consensus/bytes.ts";
import { EMPTY_TRIE_ROOT } from "../chain/ordered-trie.ts";

export { buildOrderedTrie, type OrderedTrie, orderedTrieKey } from "../chain/ordered-trie.ts";

/**
 * Bounds on a proof a client accepts. A path in a trie of 32-byte hashed keys has at most 64 branch levels plus
 * extensions and a leaf; an ordered trie's keys are shorter still. A node is a branch (< 600 bytes) or a leaf holding
 * a value: a transaction (<= 128 KiB) or a receipt, whose logs can be large.
 */
export const MAX_PROOF_NODES = 80;
export const MAX_PROOF_NODE_BYTES = 8 * 1024 * 1024;
export const MAX_PROOF_BYTES = 16 * 1024 * 1024;

export type TrieProofResult =
  | { readonly ok: true; readonly value: Uint8Array | null }
  | { readonly ok: false; readonly message: string };

/**
 * The value the trie of root `root` holds at `key` (raw key: callers hash it for secure tries), proven by `proof`;
 * null for a valid proof of absence. `{ ok: false }` when the proof is malformed, oversized, does not start at the
 * root or misses a node on the path. Never throws.
 */
export async function verifyTrieProof(root: Hex, key: Uint8Array, proof: unknown): Promise<TrieProofResult> {
  if (!isHex(root, 32)) return { ok: false, message: `root ${String(root).slice(0, 20)} is not 32-byte hex` };
  if (!Array.isArray(proof)) return { ok: false, message: "the proof is not an array of hex nodes" };
  if (proof.length > MAX_PROOF_NODES) {
    return { ok: false, message: `${proof.length} proof nodes exceed the limit ${MAX_PROOF_NODES}` };
  }
  const nodes: Uint8Array[] = [];
  let total = 0;
  for (const [i, node] of proof.entries()) {
    if (!isHex(node)) return { ok: false, message: `proof node ${i} is not hex` };
    const bytes = fromHex(node);
    total += bytes.length;
    if (bytes.length > MAX_PROOF_NODE_BYTES || total > MAX_PROOF_BYTES) {
      return { ok: false, message: `proof node ${i} makes the proof too large (${total} bytes)` };
    }
    nodes.push(bytes);
  }
  // The empty trie holds nothing; the library would look its root node up in the proof and fail.
  if (root.toLowerCase() === EMPTY_TRIE_ROOT) return { ok: true, value: null };
  try {
    // `root` makes the library require that the first node hashes to it; without it any proof would pass.
    const value = await verifyMerkleProof(key, nodes, { root: fromHex(root) });
    return { ok: true, value };
  } catch (error) {
    return { ok: false, message: `the proof does not lead from root ${root} to the key (${errorText(error)})` };
  }
}

/** The key of an address or a storage slot in the Ethereum state tries (secure tries: keys are hashed). */
export function secureTrieKey(bytes: Uint8Array): Uint8Array {
  return keccak256(bytes);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
