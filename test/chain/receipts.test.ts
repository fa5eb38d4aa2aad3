// Stored receipts (src/chain/receipts.ts): version 3 keeps the SVM receipts' balances; blocks stored as version 2,
// before balances were kept, still read, with none. Neither version's extra fields reach the receipts trie: an SVM
// receipt's leaf is the same whatever the stored version.
import { describe, expect, it } from "vitest";
import { concatBytes, uintBytes } from "../../consensus/bytes.ts";
import { encode, list } from "../../consensus/codec.ts";
import { decodeBlockReceipts, encodeReceipts } from "../../src/chain/receipts.ts";
import {
  type StoredSvmReceipt,
  storedSvmReceiptCodecV2,
  storedSvmReceiptLeaf,
} from "../../src/execution/svm/receipt.ts";

const receipt: StoredSvmReceipt = {
  signature: new Uint8Array(64).fill(5),
  status: 0,
  fee: 5_000n,
  computeUnits: 150n,
  error: "",
  logs: ["Program 11111111111111111111111111111111 invoke [1]", "Program 11111111111111111111111111111111 success"],
  preBalances: [10_000_000_000n, 0n, 1n],
  postBalances: [8_999_995_000n, 1_000_000_000n, 1n],
};

describe("stored receipts", () => {
  it("round-trips the SVM receipts' balances (version 3)", () => {
    const bytes = encodeReceipts([], [receipt]);
    expect(bytes[0]).toBe(3);
    expect(decodeBlockReceipts(bytes)).toEqual({ evm: [], svm: [receipt] });
  });

  it("reads version 2 (no balances) as receipts with none, and the leaf does not depend on the version", () => {
    const { preBalances: _pre, postBalances: _post, ...v2 } = receipt;
    const bytes = concatBytes(
      Uint8Array.of(2),
      uintBytes(0, 4),
      encode(list(storedSvmReceiptCodecV2, 10), [v2], "svm"),
    );
    const decoded = decodeBlockReceipts(bytes);
    expect(decoded.svm).toEqual([{ ...v2, preBalances: [], postBalances: [] }]);
    expect(storedSvmReceiptLeaf(decoded.svm[0] as StoredSvmReceipt)).toEqual(storedSvmReceiptLeaf(receipt));
    // Any other version is refused.
    expect(() => decodeBlockReceipts(concatBytes(Uint8Array.of(4), bytes.subarray(1)))).toThrow(/version/);
  });
});
