// The pieces the light client checks with, against the node's own definitions and @ethereumjs: the ordered tries the
// node proves from have the root src/execution/receipts.ts orderedTrieRoot puts in headers (the chain's root is
// authoritative) and @ethereumjs/mpt's root, their proofs are mpt's createMerkleProof node for node and verify with
// mpt's verifier, absent keys prove absent; the client's globalStateRoot is the executor's; receipts encoded by
// @ethereumjs/vm decode to what was encoded.
import { createMerkleProof, createMPT } from "@ethereumjs/mpt";
import { RLP } from "@ethereumjs/rlp";
import { encodeReceipt } from "@ethereumjs/vm";
import { describe, expect, it } from "vitest";
import { fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { orderedTrieRoot } from "../../src/chain/ordered-trie.ts";
import { globalStateRoot as executorStateRoot } from "../../src/execution/vm.ts";
import { globalStateRoot } from "../../src/light-client/client.ts";
import { decodeAccount, decodeReceipt, EMPTY_TRIE_ROOT, transactionType } from "../../src/light-client/rlp.ts";
import { buildOrderedTrie, MAX_PROOF_NODES, orderedTrieKey, verifyTrieProof } from "../../src/light-client/trie.ts";
import { logsBloom } from "../../src/rpc/bloom.ts";

/** Entries of varied sizes, some below 32 bytes (inlined in their parent node), some far above. */
function values(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => {
    const seed = keccak256(utf8(`entry ${i}`));
    return i % 5 === 0 ? seed.subarray(0, 3 + (i % 7)) : new Uint8Array(40 + ((i * 37) % 300)).fill(seed[0] as number);
  });
}

describe("ordered-trie proofs", () => {
  it("build the root orderedTrieRoot and @ethereumjs/mpt compute, and mpt's proofs node for node", async () => {
    for (const n of [0, 1, 2, 15, 16, 17, 127, 128, 129, 300]) {
      const vs = values(n);
      const trie = buildOrderedTrie(vs);
      const reference = await createMPT();
      for (const [i, v] of vs.entries()) await reference.put(orderedTrieKey(i), v);
      expect(trie.root, `n = ${n}`).toBe(orderedTrieRoot(vs));
      expect(trie.root, `n = ${n}`).toBe(toHex(reference.root()));
      for (const index of [0, 1, 7, 16, 127, 128, 299]) {
        if (index >= n || (vs[index] as Uint8Array).length < 32) continue;
        // Values of 32+ bytes make every node on the path hash-referenced, the case of transactions and receipts.
        const expected = (await createMerkleProof(reference, orderedTrieKey(index))).map((node) => toHex(node));
        expect(trie.prove(index), `n = ${n}, index ${index}`).toEqual(expected);
      }
    }
  });

  it("prove every entry and prove an index past the end absent", async () => {
    const vs = values(130);
    const trie = buildOrderedTrie(vs);
    // Every entry, short values (inlined leaves) included, proves with mpt's verifier.
    for (const index of vs.keys()) {
      const proof = trie.prove(index);
      const result = await verifyTrieProof(trie.root, orderedTrieKey(index), proof);
      expect(result).toEqual({ ok: true, value: vs[index] });
      // The same nodes do not prove the neighbour's value under the key of `index`.
      const other = await verifyTrieProof(trie.root, orderedTrieKey(index === 0 ? 1 : index - 1), proof);
      if (other.ok) expect(other.value).not.toEqual(vs[index]);
    }
    const absent = await verifyTrieProof(trie.root, orderedTrieKey(500), trie.prove(129));
    expect(absent.ok).toBe(true);
    if (absent.ok) expect(absent.value).toBeNull();
    expect(() => trie.prove(130)).toThrow(RangeError);
    expect(() => buildOrderedTrie([]).prove(0)).toThrow(RangeError);
  });

  it("refuse proofs that are malformed, truncated, oversized or for another root, without throwing", async () => {
    const vs = values(40);
    const trie = buildOrderedTrie(vs);
    const proof = trie.prove(7);
    const key = orderedTrieKey(7);
    expect((await verifyTrieProof(trie.root, key, proof.slice(0, -1))).ok).toBe(false);
    expect((await verifyTrieProof(trie.root, key, [])).ok).toBe(false);
    expect((await verifyTrieProof(orderedTrieRoot(values(41)), key, proof)).ok).toBe(false);
    expect((await verifyTrieProof(trie.root, key, ["0xzz"])).ok).toBe(false);
    expect((await verifyTrieProof(trie.root, key, "0x00")).ok).toBe(false);
    expect((await verifyTrieProof(trie.root, key, Array(MAX_PROOF_NODES + 1).fill(proof[0]))).ok).toBe(false);
    const flipped = proof.map((node, i) => (i === proof.length - 1 ? (`${node.slice(0, -2)}00` as Hex) : node));
    expect((await verifyTrieProof(trie.root, key, flipped)).ok).toBe(false);
    // The empty trie: an empty proof shows any key absent.
    expect(await verifyTrieProof(EMPTY_TRIE_ROOT, key, [])).toEqual({ ok: true, value: null });
  });
});

describe("the client's copies of node definitions", () => {
  it("globalStateRoot equals the executor's, and refuses what the executor refuses", () => {
    const one = [{ vm: 1, root: toHex(keccak256(utf8("evm"))) }];
    const two = [...one, { vm: 2, root: toHex(keccak256(utf8("svm"))) }];
    expect(globalStateRoot(one)).toBe(executorStateRoot(one));
    expect(globalStateRoot(two)).toBe(executorStateRoot(two));
    expect(globalStateRoot([])).toBeNull();
    expect(globalStateRoot([...two].reverse())).toBeNull();
    expect(() => executorStateRoot([...two].reverse())).toThrow(RangeError);
  });

  it("decodes receipts as @ethereumjs/vm encodes them: legacy and typed, success and failure, logs", () => {
    const logs = [
      { address: `0x${"11".repeat(20)}` as Hex, topics: [toHex(keccak256(utf8("T")))], data: "0x0102" as Hex },
      { address: `0x${"22".repeat(20)}` as Hex, topics: [], data: "0x" as Hex },
    ];
    const raw = logs.map((l) => [fromHex(l.address), l.topics.map((t) => fromHex(t)), fromHex(l.data)]) as never;
    for (const [type, status] of [
      [0, 1],
      [1, 0],
      [2, 1],
      [4, 0],
    ] as const) {
      const encoded = encodeReceipt(
        { status, cumulativeBlockGasUsed: 123_456n, bitvector: fromHex(logsBloom(logs)), logs: raw },
        type,
      );
      expect(decodeReceipt(encoded)).toEqual({
        type,
        status,
        cumulativeGasUsed: 123_456n,
        logsBloom: logsBloom(logs),
        logs,
      });
    }
    expect(decodeReceipt(new Uint8Array(0))).toBeNull();
    expect(decodeReceipt(Uint8Array.of(2, 0xc0))).toBeNull();
    expect(transactionType(RLP.encode([1, 2]))).toBe(0);
    expect(transactionType(Uint8Array.of(2, 0xc0))).toBe(2);
  });

  it("decodes accounts and refuses non-canonical ones", () => {
    const root = toHex(keccak256(utf8("root")));
    const code = toHex(keccak256(utf8("code")));
    const leaf = RLP.encode([5n, 10n ** 18n, fromHex(root), fromHex(code)]);
    expect(decodeAccount(leaf)).toEqual({ nonce: 5n, balance: 10n ** 18n, storageRoot: root, codeHash: code });
    expect(decodeAccount(RLP.encode([Uint8Array.of(0, 5), 1n, fromHex(root), fromHex(code)]))).toBeNull();
    expect(decodeAccount(RLP.encode([1n, 1n, fromHex(root)]))).toBeNull();
    expect(decodeAccount(uintBytes(1, 4))).toBeNull();
  });
});
