// SVM receipts in a block: what the header's receiptsRoot commits to for each SVM entry, and what the node stores so
// that getTransaction / getSignatureStatuses answer after a restart (docs/svm.md "Receipts").
//
//   committed leaf: 0x53 || status u8 (0 ok, 1 err) | fee u64 | computeUnits u64 | error (u32 len || utf8) | logsHash bytes32
//   logsHash = keccak256(u32 count || (u32 len || utf8)*) of the program logs
//
// Logs are committed by hash only (they can be 10 kB per transaction): the stored receipt keeps them, and anyone can
// check them against the root. The SVM entry's index key in the transaction index is signatureIndexKey(signature).
import { concatBytes, type Hex, keccak256, toHex, utf8 } from "../../../consensus/bytes.ts";
import {
  bytes,
  type Codec,
  encode,
  hex32,
  type Infer,
  list,
  mapped,
  struct,
  u8,
  u64,
  varBytes,
} from "../../../consensus/codec.ts";
import type { SvmReceipt } from "./executor.ts";

/** The SVM envelope byte, also the first byte of an SVM receipt leaf (src/chain/block.ts SVM_TX_PREFIX). */
export const SVM_RECEIPT_PREFIX = 0x53;
/** Solana's errors render in well under this; longer renderings are cut (deterministically, by UTF-16 units). */
export const MAX_SVM_ERROR_CHARS = 512;
/** litesvm caps logs at 10,000 bytes per transaction (SVM_LOG_BYTES_LIMIT); one line is at least one byte. */
export const MAX_SVM_LOG_LINES = 10_000;
const MAX_SVM_LOG_LINE_BYTES = 10_000;

function text(maxBytes: number): Codec<string> {
  return mapped(
    varBytes(maxBytes),
    `u32 length (<= ${maxBytes}) || utf8`,
    (wire, fail) => {
      try {
        return new TextDecoder("utf-8", { fatal: true }).decode(wire);
      } catch {
        return fail("not UTF-8");
      }
    },
    (value) => utf8(value),
  );
}

const errorText = text(4 * MAX_SVM_ERROR_CHARS);
const logsCodec = list(text(MAX_SVM_LOG_LINE_BYTES), MAX_SVM_LOG_LINES);

export const svmReceiptLeafCodec = struct({
  status: u8,
  fee: u64,
  computeUnits: u64,
  error: errorText,
  logsHash: hex32,
});

const storedSvmReceiptFieldsV2 = {
  signature: bytes(64),
  status: u8,
  fee: u64,
  computeUnits: u64,
  error: errorText,
  logs: logsCodec,
};

/** A stored SVM receipt as stored receipts version 2 kept it (src/chain/receipts.ts): no balances. */
export const storedSvmReceiptCodecV2 = struct(storedSvmReceiptFieldsV2);

/** Account keys a Solana transaction names at most (its static keys; 64 fit in its 1,232 bytes at most). */
const MAX_SVM_ACCOUNT_KEYS = 256;

/**
 * A stored SVM receipt (in the block's stored receipts, src/chain/receipts.ts): the leaf's fields, the logs whose hash
 * the leaf commits to, and the lamports of each static account key before and after the transaction (what Solana's
 * getTransaction shows as preBalances / postBalances; not in the leaf).
 */
export const storedSvmReceiptCodec = struct({
  ...storedSvmReceiptFieldsV2,
  preBalances: list(u64, MAX_SVM_ACCOUNT_KEYS),
  postBalances: list(u64, MAX_SVM_ACCOUNT_KEYS),
});
export type StoredSvmReceipt = Infer<typeof storedSvmReceiptCodec>;

function clipError(error: string | null): string {
  return (error ?? "").slice(0, MAX_SVM_ERROR_CHARS);
}

/** Logs beyond the codec's bounds are cut (litesvm's own limit keeps real ones far below). */
function clipLogs(logs: readonly string[]): string[] {
  return logs.slice(0, MAX_SVM_LOG_LINES).map((l) => (utf8(l).length > MAX_SVM_LOG_LINE_BYTES ? l.slice(0, 2500) : l));
}

export function svmLogsHash(logs: readonly string[]): Hex {
  return toHex(keccak256(encode(logsCodec, clipLogs(logs), "logs")));
}

/** The receipts-trie leaf of an SVM receipt: 0x53 || codec(status, fee, computeUnits, error, logsHash). */
export function encodeSvmReceiptLeaf(r: SvmReceipt): Uint8Array {
  return concatBytes(
    Uint8Array.of(SVM_RECEIPT_PREFIX),
    encode(
      svmReceiptLeafCodec,
      {
        status: r.status === "ok" ? 0 : 1,
        fee: r.fee,
        computeUnits: r.computeUnits,
        error: clipError(r.error),
        logsHash: svmLogsHash(r.logs),
      },
      "svmReceipt",
    ),
  );
}

/** The receipts-trie leaf of a stored SVM receipt (what encodeSvmReceiptLeaf gave when the block was executed). */
export function storedSvmReceiptLeaf(r: StoredSvmReceipt): Uint8Array {
  return concatBytes(
    Uint8Array.of(SVM_RECEIPT_PREFIX),
    encode(
      svmReceiptLeafCodec,
      { status: r.status, fee: r.fee, computeUnits: r.computeUnits, error: r.error, logsHash: svmLogsHash(r.logs) },
      "svmReceipt",
    ),
  );
}

export function toStoredSvmReceipt(r: SvmReceipt, signatureBytes: Uint8Array): StoredSvmReceipt {
  return {
    signature: signatureBytes,
    status: r.status === "ok" ? 0 : 1,
    fee: r.fee,
    computeUnits: r.computeUnits,
    error: clipError(r.error),
    logs: clipLogs(r.logs),
    preBalances: [...r.preBalances],
    postBalances: [...r.postBalances],
  };
}

const SIGNATURE_INDEX_DOMAIN = utf8("lumia-svm/tx-index/");

/**
 * The 32-byte key an SVM transaction has in the node's transaction index (the same bucket as EVM hashes; the domain
 * keeps it apart from every keccak256 of a raw transaction).
 */
export function signatureIndexKey(signatureBytes: Uint8Array): Hex {
  if (signatureBytes.length !== 64) throw new RangeError(`signature of ${signatureBytes.length} bytes`);
  return toHex(keccak256(concatBytes(SIGNATURE_INDEX_DOMAIN, signatureBytes)));
}
