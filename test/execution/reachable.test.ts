// reachableWrites (src/execution/reachable.ts) reads trie nodes in place. Checked against the plain definition (every
// node decoded with RLP.decode, walked from the root through new nodes) on tries built one key at a time, which
// leave many superseded nodes behind: an account trie whose leaves hold storage tries, inlined nodes, and the SVM's
// single trie; then malformed nodes.
import { MerklePatriciaTrie } from "@ethereumjs/mpt";
import { RLP } from "@ethereumjs/rlp";
import { MapDB, ValueEncoding } from "@ethereumjs/util";
import { describe, expect, it } from "vitest";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import { reachableWrites } from "../../src/execution/reachable.ts";

type Decoded = Uint8Array | Decoded[];

/** The definition: decode every node, follow hashes present in `writes`, inline lists, and account storage roots. */
function reference(stateRoot: Hex, writes: ReadonlyMap<string, Uint8Array>, evmAccounts: boolean): Set<string> {
  const kept = new Set<string>();
  if (evmAccounts) for (const key of writes.keys()) if (key.length === 68) kept.add(key);
  const stack: { ref: Decoded; accounts: boolean }[] = [{ ref: fromHex(stateRoot), accounts: evmAccounts }];
  while (stack.length > 0) {
    const { ref, accounts } = stack.pop() as { ref: Decoded; accounts: boolean };
    let node: Decoded;
    if (Array.isArray(ref)) node = ref;
    else {
      if (ref.length !== 32) continue;
      const key = toHex(ref);
      const bytes = writes.get(key);
      if (bytes === undefined || kept.has(key)) continue;
      kept.add(key);
      node = RLP.decode(bytes) as Decoded;
    }
    const follow = (value: Decoded) => {
      if (!accounts || !(value instanceof Uint8Array) || value.length === 0) return;
      stack.push({ ref: (RLP.decode(value) as Decoded[])[2] as Decoded, accounts: false });
    };
    const items = node as Decoded[];
    if (items.length === 17) {
      for (let i = 0; i < 16; i++) stack.push({ ref: items[i] as Decoded, accounts });
      follow(items[16] as Decoded);
    } else if (((items[0] as Uint8Array)[0] as number) >> 4 >= 2) follow(items[1] as Decoded);
    else stack.push({ ref: items[1] as Decoded, accounts });
  }
  return kept;
}

/** Deterministic bytes. */
function bytesOf(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A trie over a shared map of every node ever written (superseded versions included), keyed as the overlay keys. */
function trieOn(nodes: Map<string, Uint8Array>): MerklePatriciaTrie {
  return new MerklePatriciaTrie({
    db: new MapDB(nodes as unknown as Map<string, Uint8Array>),
    valueEncoding: ValueEncoding.Bytes,
  });
}

function asWrites(nodes: Map<string, Uint8Array>, extra: [string, Uint8Array][] = []): Map<string, Uint8Array> {
  const writes = new Map<string, Uint8Array>();
  for (const [key, value] of nodes) writes.set(`0x${key}`, value);
  for (const [key, value] of extra) writes.set(key, value);
  return writes;
}

describe("reachableWrites", () => {
  it("keeps exactly the new nodes the root reaches, through account leaves into storage tries, and all code", async () => {
    const nodes = new Map<string, Uint8Array>();
    const accounts = trieOn(nodes);
    for (let a = 0; a < 120; a++) {
      let storageRoot = fromHex("0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");
      if (a % 3 === 0) {
        const storage = trieOn(nodes);
        // Short keys and values make some nodes shorter than 32 bytes: inlined in their parent.
        for (let s = 0; s < 1 + (a % 11); s++)
          await storage.put(bytesOf(a * 100 + s, a % 2 === 0 ? 32 : 2), bytesOf(s, 1 + (s % 3)));
        storageRoot = storage.root();
      }
      const account = RLP.encode([bytesOf(a, 1), bytesOf(a + 7, 9), storageRoot, bytesOf(a + 9, 32)]);
      await accounts.put(bytesOf(a + 1000, 32), account);
    }
    // Updates leave superseded nodes behind, as a trie updated key by key does.
    for (let a = 0; a < 120; a += 7)
      await accounts.put(
        bytesOf(a + 1000, 32),
        RLP.encode([
          bytesOf(a, 2),
          bytesOf(a, 3),
          fromHex("0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"),
          bytesOf(a, 32),
        ]),
      );
    const code: [string, Uint8Array][] = [[toHex(new Uint8Array([0x63, ...bytesOf(5, 32)])), bytesOf(6, 40)]];
    const writes = asWrites(nodes, code);
    const root = toHex(accounts.root());
    const kept = reachableWrites(root, writes);
    const expected = reference(root, writes, true);
    expect(new Set(kept.keys())).toEqual(expected);
    expect(kept.size).toBeLessThan(writes.size); // the superseded nodes are left out
    expect(kept.size).toBeGreaterThan(120);
    for (const [key, value] of kept) expect(value).toBe(writes.get(key));
    // A node committed before (not among the writes) ends the walk: drop the root's first child from the writes.
    const smaller = new Map(writes);
    const [firstChild] = [...kept.keys()].filter((k) => k !== root && k.length === 66);
    smaller.delete(firstChild as string);
    expect(new Set(reachableWrites(root, smaller).keys())).toEqual(reference(root, smaller, true));
  });

  it("walks a trie with opaque leaves (the SVM) without looking into them", async () => {
    const nodes = new Map<string, Uint8Array>();
    const trie = trieOn(nodes);
    for (let i = 0; i < 200; i++) await trie.put(bytesOf(i, 32), bytesOf(i + 1, 1 + (i % 90)));
    const writes = asWrites(nodes);
    const root = toHex(trie.root());
    expect(new Set(reachableWrites(root, writes, false).keys())).toEqual(reference(root, writes, false));
  });

  it("throws on a written node that is not a trie node", () => {
    const root = toHex(bytesOf(1, 32));
    const cases: Uint8Array[] = [
      RLP.encode(bytesOf(2, 40)), // a string, not a list
      RLP.encode([bytesOf(1, 1), bytesOf(2, 1), bytesOf(3, 1)]), // three items
      RLP.encode([new Uint8Array(0), bytesOf(2, 32)]), // no path
      new Uint8Array([0xc5, 0x82, 0x01]), // truncated
      new Uint8Array([...RLP.encode([bytesOf(1, 1), bytesOf(2, 1)]), 0x00]), // trailing byte
      RLP.encode([new Uint8Array([0x20]), RLP.encode([bytesOf(1, 1), bytesOf(2, 1)])]), // an account leaf of 2 items
    ];
    for (const node of cases) expect(() => reachableWrites(root, new Map([[root, node]]))).toThrow();
  });
});
