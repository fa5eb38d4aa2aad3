// Stored receipts of a committed block (bucket receiptsByHeight): what eth_getTransactionReceipt and eth_getLogs
// answer from, plus the typed RLP receipt the receipts trie commits to (for receipt proofs).
//
// Layout: version u8 (= 3) | u32 count | receipt* | u32 count | svmReceipt* (src/execution/svm/receipt.ts: signature,
//   status, fee, computeUnits, error, logs, preBalances, postBalances; one per SVM entry, after the EVM ones as in the
//   block; version 2, still read, had no balances), receipt = txHash bytes32 | type u8 | from bytes20 |
//   to (u8 flag | bytes20) | contractAddress (u8 flag | bytes20) | status u8 | gasUsed u64 | cumulativeGasUsed u64 |
//   effectiveGasPrice bytes32 | logs: u32 count | (address bytes20 | topics: u32 count | bytes32* | data u32 len | bytes)* |
//   revertReason u32 len | utf8 | encoded u32 len | typed RLP receipt
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import {
  type Codec,
  decode,
  encode,
  hex32,
  hexBytes,
  type Infer,
  list,
  mapped,
  nullable,
  struct,
  u8,
  u64,
  u256,
  varBytes,
  versioned,
} from "../../consensus/codec.ts";
import type { ExecutedReceipt } from "../execution/core.ts";
import { type StoredSvmReceipt, storedSvmReceiptCodec, storedSvmReceiptCodecV2 } from "../execution/svm/receipt.ts";

const MAX_RECEIPTS = 100_000;
const MAX_LOGS = 10_000;
const MAX_LOG_DATA = 1024 * 1024;

const hexData: Codec<Hex> = mapped(
  varBytes(MAX_LOG_DATA),
  "u32 length || bytes",
  (wire) => toHex(wire),
  (value) => fromHex(value),
);

const text: Codec<string> = mapped(
  varBytes(64 * 1024),
  "u32 length || utf8",
  (wire) => new TextDecoder().decode(wire),
  (value) => new TextEncoder().encode(value),
);

const receiptSchema = struct({
  transactionHash: hex32,
  type: u8,
  from: hexBytes(20),
  to: nullable(hexBytes(20)),
  contractAddress: nullable(hexBytes(20)),
  status: u8,
  gasUsed: u64,
  cumulativeGasUsed: u64,
  effectiveGasPrice: u256,
  logs: list(struct({ address: hexBytes(20), topics: list(hex32, 4), data: hexData }), MAX_LOGS),
  revertReason: text,
  encoded: varBytes(MAX_LOG_DATA * 4),
});

export const receiptsSchema = versioned(
  3,
  struct({ evm: list(receiptSchema, MAX_RECEIPTS), svm: list(storedSvmReceiptCodec, MAX_RECEIPTS) }),
);
/** Version 2, written before the SVM receipts kept balances: still read (their balances read as none). */
const receiptsSchemaV2 = versioned(
  2,
  struct({ evm: list(receiptSchema, MAX_RECEIPTS), svm: list(storedSvmReceiptCodecV2, MAX_RECEIPTS) }),
);
export type StoredReceipt = Infer<typeof receiptSchema>;
export type { StoredSvmReceipt };

export function encodeReceipts(
  receipts: readonly ExecutedReceipt[],
  svmReceipts: readonly StoredSvmReceipt[] = [],
): Uint8Array {
  const evm = receipts.map((r) => ({
    transactionHash: r.transactionHash,
    type: r.type,
    from: r.from,
    to: r.to,
    contractAddress: r.contractAddress,
    status: r.status,
    gasUsed: r.gasUsed,
    cumulativeGasUsed: r.cumulativeGasUsed,
    effectiveGasPrice: r.effectiveGasPrice,
    logs: r.logs.map((l) => ({ address: l.address, topics: l.topics, data: l.data })),
    revertReason: r.revertReason ?? "",
    encoded: r.encoded,
  }));
  return encode(receiptsSchema, { evm, svm: svmReceipts }, "receipts");
}

/** A block's receipts of both VMs, in block order (the SVM ones follow the EVM entries). Throws DecodeError. */
export function decodeBlockReceipts(bytes: Uint8Array): {
  readonly evm: readonly StoredReceipt[];
  readonly svm: readonly StoredSvmReceipt[];
} {
  if (bytes[0] === 2) {
    const old = decode(receiptsSchemaV2, bytes, "receipts");
    return { evm: old.evm, svm: old.svm.map((r) => ({ ...r, preBalances: [], postBalances: [] })) };
  }
  return decode(receiptsSchema, bytes, "receipts");
}

/** The EVM receipts, in block order. Throws DecodeError. */
export function decodeReceipts(bytes: Uint8Array): readonly StoredReceipt[] {
  return decodeBlockReceipts(bytes).evm;
}

/** The SVM receipts, in block order (they follow the EVM entries). Throws DecodeError. */
export function decodeSvmReceipts(bytes: Uint8Array): readonly StoredSvmReceipt[] {
  return decodeBlockReceipts(bytes).svm;
}
