// applyTrieBatch against @ethereumjs/mpt: random puts, updates and deletes, applied as one batch per round here, must
// give after every round the root of a trie freshly built by ethereumjs from the live keys and, for hashed keys
// (what the node uses), the root of an ethereumjs trie that applied the same operations one key at a time. Each
// round reads only the nodes earlier rounds of the batch code wrote, so a node it forgot to write fails the next round
// ("Missing node"); at the end ethereumjs reads every key back from those nodes alone.
//
// With keys of different lengths (a key that ends at a branch), ethereumjs' incremental root depends on the history:
// deleting "f48b62" from {f4, f40c, f48b62} gives another root than inserting {f4, f40c} afresh. The batch code gives
// the fresh root, the one the Yellow Paper defines. Account and storage tries have 32-byte hashed keys only.
import { MerklePatriciaTrie } from "@ethereumjs/mpt";
import { RLP } from "@ethereumjs/rlp";
import { describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { fastKeccak256 } from "../../src/execution/keccak.ts";
import { applyTrieBatch, MissingTrieNodeError } from "../../src/execution/trie-batch.ts";

const EMPTY_ROOT = fastKeccak256(RLP.encode(new Uint8Array(0)));

/** Deterministic xorshift32: the failing seed reproduces. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function bytes(random: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
}

class NodeStore {
  readonly nodes = new Map<string, Uint8Array>();
  readonly reader = { get: async (hash: Uint8Array) => this.nodes.get(toHex(hash)) };
  add(nodes: readonly [Uint8Array, Uint8Array][]): void {
    for (const [h, encoded] of nodes) {
      expect(toHex(fastKeccak256(encoded))).toBe(toHex(h));
      this.nodes.set(toHex(h), encoded);
    }
  }
}

/**
 * `keyBytes`: fixed 32-byte keys (hashed-key tries: the account trie) or 1-3 byte keys (keys that end at branches,
 * short nodes inlined in their parent). `valueBytes`: values from 1 to this many bytes.
 */
async function fuzz(seed: number, keyBytes: "hashed" | "short", valueBytes: number, rounds: number) {
  const random = rng(seed);
  const reference = new MerklePatriciaTrie();
  const store = new NodeStore();
  let root = EMPTY_ROOT;
  const live = new Map<string, { key: Uint8Array; value: Uint8Array }>();
  const newKey = () => (keyBytes === "hashed" ? bytes(random, 32) : bytes(random, 1 + Math.floor(random() * 3)));
  const newValue = () => bytes(random, 1 + Math.floor(random() * valueBytes));
  for (let round = 0; round < rounds; round++) {
    const ops: [Uint8Array, Uint8Array | null][] = [];
    const count = 1 + Math.floor(random() * 40);
    const existing = [...live.values()];
    for (let i = 0; i < count; i++) {
      const r = random();
      const pick = existing[Math.floor(random() * existing.length)];
      if (r < 0.45 || pick === undefined) ops.push([newKey(), newValue()]);
      else if (r < 0.7) ops.push([pick.key, newValue()]);
      else if (r < 0.75)
        ops.push([pick.key, pick.value]); // same value: nothing changes
      else if (r < 0.95) ops.push([pick.key, null]);
      else ops.push([newKey(), null]); // absent key
    }
    for (const [key, value] of ops) {
      if (value === null) {
        await reference.del(key);
        live.delete(toHex(key));
      } else {
        await reference.put(key, value);
        live.set(toHex(key), { key, value });
      }
    }
    const result = await applyTrieBatch(root, ops, store.reader);
    store.add(result.nodes);
    root = result.root;
    if (keyBytes === "short" || round % 10 === 9) {
      const fresh = new MerklePatriciaTrie();
      for (const { key, value } of live.values()) await fresh.put(key, value);
      expect(toHex(root), `seed ${seed} round ${round}: fresh`).toBe(toHex(fresh.root()));
    }
    if (keyBytes === "hashed") expect(toHex(root), `seed ${seed} round ${round}`).toBe(toHex(reference.root()));
  }
  // Every live key reads back from the batch's nodes alone.
  const check = new MerklePatriciaTrie();
  for (const [key, value] of store.nodes) await check.database().put(Buffer.from(key.slice(2), "hex"), value);
  check.root(root);
  for (const { key, value } of live.values())
    expect(toHex((await check.get(key)) ?? new Uint8Array())).toBe(toHex(value));
  return live.size;
}

describe("applyTrieBatch", () => {
  it("matches @ethereumjs/mpt on hashed keys with account-sized values", async () => {
    for (let seed = 1; seed <= 12; seed++) await fuzz(seed, "hashed", 90, 30);
  });

  it("matches on short keys (values at branches) and short values (inlined nodes)", async () => {
    for (let seed = 100; seed <= 111; seed++) await fuzz(seed, "short", 3, 25);
  });

  it("empties the trie back to the empty root and writes nothing for an unchanged trie", async () => {
    const store = new NodeStore();
    const keys = [1, 2, 3].map((i) => fastKeccak256(Uint8Array.of(i)));
    const filled = await applyTrieBatch(
      EMPTY_ROOT,
      keys.map((k) => [k, Uint8Array.of(7, 7)] as const),
      store.reader,
    );
    store.add(filled.nodes);
    const same = await applyTrieBatch(
      filled.root,
      keys.map((k) => [k, Uint8Array.of(7, 7)] as const),
      store.reader,
    );
    expect(toHex(same.root)).toBe(toHex(filled.root));
    expect(same.nodes).toEqual([]);
    const emptied = await applyTrieBatch(
      filled.root,
      keys.map((k) => [k, null] as const),
      store.reader,
    );
    expect(toHex(emptied.root)).toBe(toHex(EMPTY_ROOT));
  });

  it("names the missing node when the store lacks one", async () => {
    const missing = fastKeccak256(Uint8Array.of(1));
    await expect(
      applyTrieBatch(missing, [[fastKeccak256(Uint8Array.of(2)), Uint8Array.of(1)]], { get: async () => undefined }),
    ).rejects.toBeInstanceOf(MissingTrieNodeError);
  });
});
