import { MerklePatriciaTrie } from "@ethereumjs/mpt";
import { RLP } from "@ethereumjs/rlp";
import { describe, expect, it } from "vitest";
import { concatBytes, fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { orderedTrieRoot } from "../../src/chain/ordered-trie.ts";
import { decodeRevertReason } from "../../src/execution/receipts.ts";
import { EMPTY_TRIE_ROOT, EVM_VM, globalStateRoot, vmRootsProblem } from "../../src/execution/vm.ts";

async function referenceRoot(values: Uint8Array[]): Promise<Hex> {
  const trie = new MerklePatriciaTrie();
  for (const [i, v] of values.entries()) await trie.put(RLP.encode(i), v);
  return toHex(trie.root());
}

function abiError(reason: string): Uint8Array {
  const bytes = utf8(reason);
  const padded = new Uint8Array(Math.ceil(bytes.length / 32) * 32);
  padded.set(bytes);
  return concatBytes(fromHex("0x08c379a0"), uintBytes(32n, 32), uintBytes(bytes.length, 32), padded);
}

describe("orderedTrieRoot", () => {
  it("equals @ethereumjs/mpt's root for every size around the rlp(index) key boundaries", async () => {
    for (const n of [0, 1, 2, 15, 16, 17, 127, 128, 129, 255, 256, 257, 600]) {
      // Short values make nodes below 32 bytes, which are inlined in their parent instead of hashed.
      const values = Array.from({ length: n }, (_, i) =>
        i % 5 === 0 ? Uint8Array.of(i & 0xff) : keccak256(uintBytes(i, 4)).subarray(0, 1 + (i % 40)),
      );
      expect({ n, root: orderedTrieRoot(values) }).toEqual({ n, root: await referenceRoot(values) });
    }
    expect(orderedTrieRoot([])).toBe(EMPTY_TRIE_ROOT);
  });
});

describe("decodeRevertReason", () => {
  it("decodes Error(string) and Panic(uint256), and gives null for anything else", () => {
    expect(decodeRevertReason(abiError("insufficient balance"))).toBe("insufficient balance");
    expect(decodeRevertReason(abiError(""))).toBe("");
    expect(decodeRevertReason(abiError("ünïcödé ✓"))).toBe("ünïcödé ✓");
    expect(decodeRevertReason(concatBytes(fromHex("0x4e487b71"), uintBytes(0x11n, 32)))).toBe("Panic(0x11)");
    expect(decodeRevertReason(new Uint8Array(0))).toBeNull();
    expect(decodeRevertReason(fromHex("0xdeadbeef"))).toBeNull();
    expect(decodeRevertReason(concatBytes(fromHex("0x12345678"), uintBytes(42n, 32)))).toBeNull(); // custom error
  });

  it("never throws on truncated or lying ABI data, and caps the reason length", () => {
    const good = abiError("a reason that is long enough to need two words of data");
    for (let cut = 0; cut < good.length; cut++) {
      const reason = decodeRevertReason(good.subarray(0, cut));
      expect(reason === null || typeof reason === "string").toBe(true);
    }
    const lyingLength = concatBytes(fromHex("0x08c379a0"), uintBytes(32n, 32), uintBytes(2n ** 255n, 32));
    expect(decodeRevertReason(lyingLength)).toBeNull();
    const lyingOffset = concatBytes(fromHex("0x08c379a0"), uintBytes(2n ** 64n, 32));
    expect(decodeRevertReason(lyingOffset)).toBeNull();
    expect(decodeRevertReason(abiError("x".repeat(5000)))?.length).toBe(1024);
  });
});

describe("globalStateRoot", () => {
  it("is keccak256 over (vm id u8 || root) in id order", () => {
    const evm = toHex(keccak256(utf8("evm"))) as Hex;
    const svm = toHex(keccak256(utf8("svm"))) as Hex;
    expect(globalStateRoot([{ vm: EVM_VM.id, root: evm }])).toBe(
      toHex(keccak256(concatBytes(Uint8Array.of(1), fromHex(evm)))),
    );
    expect(
      globalStateRoot([
        { vm: 1, root: evm },
        { vm: 2, root: svm },
      ]),
    ).toBe(toHex(keccak256(concatBytes(Uint8Array.of(1), fromHex(evm), Uint8Array.of(2), fromHex(svm)))));
  });

  it("refuses unsorted, duplicate, out-of-range or malformed lists", () => {
    const r = EMPTY_TRIE_ROOT;
    expect(vmRootsProblem([])).not.toBeNull();
    expect(
      vmRootsProblem([
        { vm: 2, root: r },
        { vm: 1, root: r },
      ]),
    ).not.toBeNull();
    expect(
      vmRootsProblem([
        { vm: 1, root: r },
        { vm: 1, root: r },
      ]),
    ).not.toBeNull();
    expect(vmRootsProblem([{ vm: 256, root: r }])).not.toBeNull();
    expect(vmRootsProblem([{ vm: 1, root: "0x1234" }])).not.toBeNull();
    expect(vmRootsProblem([{ vm: 1, root: r }])).toBeNull();
    expect(() => globalStateRoot([])).toThrow(RangeError);
  });
});
