// Keeps, of an execution's new nodes, only those the new state root reaches. A trie updated one key at a time hashes
// every intermediate version of a path, so most of what it writes is superseded within the same block; without this
// filter those orphans would be stored forever (nothing is pruned). The EVM and SVM state now flush as one batch per
// trie (./trie-batch.ts), which writes final nodes only; the filter still guards every path that writes. Walking
// from the root through new nodes only is enough: a committed node's children are committed, so a new node is
// reachable only through new ancestors.
import { RLP } from "@ethereumjs/rlp";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";

type Decoded = Uint8Array | Decoded[];

/** Code is stored under "c" || keccak256(code): 33-byte keys, never trie nodes. */
const CODE_KEY_HEX_LENGTH = 2 + 2 * 33;

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
  // Explicit stack: a path is at most 64 nibbles deep, but storage tries hang below account leaves.
  const stack: { ref: Decoded; accounts: boolean }[] = [{ ref: fromHex(stateRoot), accounts: evmAccounts }];
  const followValue = (value: Decoded, accounts: boolean) => {
    if (!accounts || !(value instanceof Uint8Array) || value.length === 0) return;
    const account = RLP.decode(value) as Decoded;
    if (!Array.isArray(account) || account.length !== 4)
      throw new Error("account leaf is not [nonce, balance, root, code]");
    stack.push({ ref: account[2] as Decoded, accounts: false });
  };
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { ref, accounts } = item;
    let node: Decoded;
    if (Array.isArray(ref)) {
      node = ref; // inlined child (encoding shorter than 32 bytes)
    } else {
      if (ref.length !== 32) continue; // empty slot
      const key = toHex(ref);
      const bytes = writes.get(key);
      if (bytes === undefined || kept.has(key)) continue; // committed before, or already walked
      kept.set(key, bytes);
      node = RLP.decode(bytes) as Decoded;
    }
    if (!Array.isArray(node)) throw new Error("trie node is not an RLP list");
    if (node.length === 17) {
      for (let i = 0; i < 16; i++) stack.push({ ref: node[i] as Decoded, accounts });
      followValue(node[16] as Decoded, accounts);
    } else if (node.length === 2) {
      const path = node[0];
      if (!(path instanceof Uint8Array) || path.length === 0) throw new Error("trie node without a path");
      const isLeaf = (path[0] as number) >> 4 >= 2;
      if (isLeaf) followValue(node[1] as Decoded, accounts);
      else stack.push({ ref: node[1] as Decoded, accounts });
    } else {
      throw new Error(`trie node with ${node.length} items`);
    }
  }
  return kept;
}
