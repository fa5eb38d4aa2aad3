// The Solana JSON-RPC subset the node serves next to the Ethereum methods (same port; no name collides), enough for
// @solana/kit clients unchanged: getLatestBlockhash, sendTransaction, getSignatureStatuses, getAccountInfo,
// getBalance, getTransaction, getSlot, getBlockHeight, getMinimumBalanceForRentExemption, getEpochInfo, getVersion,
// getHealth, getGenesisHash, getFeeForMessage, isBlockhashValid (docs/svm.md "JSON-RPC").
//
// Slots are L2 heights; every committed height is certified (soft-final). Commitment: "processed" and "confirmed"
// (and no commitment) read the committed head; "finalized" reads the height the L1-finalized outputs cover (the EVM
// RPC's "finalized" tag: 0, the genesis, until one exists). Solana's own default would be "finalized"; here a client
// that names none sees the certified head, which is what this chain's wallets want.
import {
  getBase58Decoder,
  getBase58Encoder,
  getCompiledTransactionMessageDecoder,
  getTransactionDecoder,
} from "@solana/kit";
import { z } from "zod";
import type { Hex } from "../../consensus/bytes.ts";
import { SVM_TX_PREFIX } from "../chain/block.ts";
import type { SvmAccount } from "../execution/svm/account.ts";
import type { StoredSvmReceipt } from "../execution/svm/receipt.ts";
import { MAX_SVM_TX_BYTES } from "../execution/svm/tx.ts";
import { type MethodDef, method, optional, required } from "./dispatch.ts";
import { ErrorCode, failure, type Outcome, success } from "./errors.ts";

/** Solana's RPC error codes (solana-rpc-client-api custom_error.rs) the node uses. */
export const SolanaErrorCode = {
  /** JSON_RPC_SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE */
  preflightFailure: -32002,
  /** JSON_RPC_SERVER_ERROR_TRANSACTION_SIGNATURE_VERIFICATION_FAILURE */
  signatureVerificationFailure: -32003,
  /** JSON_RPC_SERVER_ERROR_BLOCK_NOT_AVAILABLE */
  blockNotAvailable: -32004,
  /** JSON_RPC_SERVER_ERROR_NODE_UNHEALTHY: used for a full pool */
  nodeUnhealthy: -32005,
} as const;

/** Solana's MAX_PROCESSING_AGE: a blockhash is valid for the next 150 blocks. */
export const SVM_BLOCKHASH_VALID_BLOCKS = 150;
const SLOTS_PER_EPOCH = 432_000;
/** Solana's Rent defaults (litesvm uses them): (128 + data bytes) * 3,480 lamports/byte-year * 2 years. */
const RENT_ACCOUNT_OVERHEAD_BYTES = 128;
const RENT_LAMPORTS_PER_BYTE_YEAR = 3_480;
const RENT_EXEMPTION_YEARS = 2;
const MAX_ACCOUNT_DATA_BYTES = 10 * 1024 * 1024;
/** Signatures one getSignatureStatuses may ask for (Solana: 256). */
export const MAX_SIGNATURE_STATUSES = 256;
/** Solana refuses base58 account data above this. */
const MAX_BASE58_DATA_BYTES = 128;
const LAMPORTS_PER_SIGNATURE = 5_000;

export type SolanaCommitment = "processed" | "confirmed" | "finalized";

/** A committed SVM transaction: where it is, its wire bytes and its stored receipt. */
export interface SolanaTransactionRecord {
  readonly height: number;
  /** Seconds (the block's timestamp). */
  readonly blockTime: number;
  readonly wire: Uint8Array;
  readonly receipt: StoredSvmReceipt;
}

export type SolanaSendResult =
  | { readonly ok: true; readonly signature: string }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** The node as the Solana methods see it. Heights are committed heights (slots). */
export interface SolanaRpcBackend {
  headHeight(): number;
  /** The height covered by an L1-finalized output (0 before one). */
  finalizedHeight(): number;
  /** The blockhash of committed `height` (clients sign with it), null when unknown. */
  blockhashAt(height: number): Promise<string | null>;
  /** The account at committed `height`; `address` is a base58 32-byte pubkey (checked by the caller). */
  account(height: number, address: string): Promise<SvmAccount | null>;
  /** A committed transaction by its first signature (64 bytes), undefined when unknown. */
  transaction(signature: Uint8Array): Promise<SolanaTransactionRecord | undefined>;
  /** Pools and gossips an SVM entry (0x53 || wire bytes); codes are the pool's (src/mempool/svm-lane.ts). */
  submit(entry: Uint8Array): Promise<SolanaSendResult>;
  readonly genesisHash: Hex;
}

const base58Encoder = getBase58Encoder();
const base58Decoder = getBase58Decoder();
const transactionDecoder = getTransactionDecoder();
const messageDecoder = getCompiledTransactionMessageDecoder();

/** The static account keys (base58) of a Solana transaction's wire bytes; none when they do not decode. */
export function svmAccountKeys(wire: Uint8Array): string[] {
  try {
    return messageDecoder.decode(transactionDecoder.decode(wire).messageBytes).staticAccounts.map(String);
  } catch {
    return [];
  }
}

function base58Bytes(value: string): Uint8Array | null {
  try {
    return new Uint8Array(base58Encoder.encode(value));
  } catch {
    return null;
  }
}

const pubkey = z.string().refine((v) => v.length >= 32 && v.length <= 44 && base58Bytes(v)?.length === 32, {
  message: "Invalid param: not a base58 32-byte public key",
});
const signatureParam = z.string().refine((v) => v.length >= 64 && v.length <= 88 && base58Bytes(v)?.length === 64, {
  message: "Invalid param: not a base58 64-byte signature",
});
const commitmentField = z.enum(["processed", "confirmed", "finalized"]).optional();
const commitmentConfig = z.looseObject({ commitment: commitmentField, minContextSlot: z.number().int().optional() });
const accountConfig = z.looseObject({
  commitment: commitmentField,
  encoding: z.string().optional(),
  dataSlice: z.looseObject({ offset: z.number().int().min(0), length: z.number().int().min(0) }).optional(),
  minContextSlot: z.number().int().optional(),
});
const sendConfig = z.looseObject({
  encoding: z.enum(["base58", "base64"]).optional(),
  skipPreflight: z.boolean().optional(),
  preflightCommitment: commitmentField,
  maxRetries: z.number().int().min(0).optional(),
  minContextSlot: z.number().int().optional(),
});
const transactionConfig = z.looseObject({
  commitment: commitmentField,
  encoding: z.string().optional(),
  maxSupportedTransactionVersion: z.number().int().min(0).optional(),
});

/** A Rust Debug rendering of a TransactionError (litesvm) as Solana's JSON form; the text itself when unparsable. */
export function transactionErrorJson(text: string): unknown {
  let i = 0;
  const ws = () => {
    while (text[i] === " ") i++;
  };
  const ident = (): string => {
    const start = i;
    while (i < text.length && /[A-Za-z0-9_]/.test(text[i] as string)) i++;
    return text.slice(start, i);
  };
  const value = (): unknown => {
    ws();
    if (text[i] === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) throw new Error("unterminated string");
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const name = ident();
    if (name === "") throw new Error(`unexpected ${text[i]}`);
    if (/^[0-9]+$/.test(name)) return Number(name);
    ws();
    if (text[i] === "(") {
      i++;
      const items: unknown[] = [];
      for (;;) {
        ws();
        if (text[i] === ")") break;
        items.push(value());
        ws();
        if (text[i] === ",") i++;
      }
      i++;
      return { [name]: items.length === 1 ? items[0] : items };
    }
    if (text[i] === "{") {
      i++;
      const fields: Record<string, unknown> = {};
      for (;;) {
        ws();
        if (text[i] === "}") break;
        const key = ident();
        ws();
        if (text[i] !== ":") throw new Error("expected :");
        i++;
        fields[key] = value();
        ws();
        if (text[i] === ",") i++;
      }
      i++;
      return { [name]: fields };
    }
    return name;
  };
  try {
    const out = value();
    ws();
    return i === text.length ? out : text;
  } catch {
    return text;
  }
}

function errOf(receipt: StoredSvmReceipt): unknown {
  return receipt.status === 0 ? null : transactionErrorJson(receipt.error);
}

function sendRefusal(code: string, message: string): Outcome & { ok: false } {
  switch (code) {
    case "bad_signature":
      return failure(
        SolanaErrorCode.signatureVerificationFailure,
        `Transaction signature verification failure: ${message}`,
      );
    case "malformed":
    case "too_large":
    case "unsupported_type":
      return failure(ErrorCode.invalidParams, `failed to deserialize solana_transaction::Transaction: ${message}`);
    case "stale_blockhash":
      return failure(
        SolanaErrorCode.preflightFailure,
        `Transaction simulation failed: Blockhash not found (${message})`,
      );
    case "already_processed":
      return failure(
        SolanaErrorCode.preflightFailure,
        `Transaction simulation failed: This transaction has already been processed (${message})`,
      );
    case "unknown_payer":
      return failure(
        SolanaErrorCode.preflightFailure,
        `Transaction simulation failed: Attempt to debit an account but found no record of a prior credit. (${message})`,
      );
    case "insufficient_funds":
      return failure(
        SolanaErrorCode.preflightFailure,
        `Transaction simulation failed: Insufficient funds for fee (${message})`,
      );
    case "pool_full":
    case "rate_limited":
      return failure(SolanaErrorCode.nodeUnhealthy, `Transaction pool is full: ${message}`);
    default:
      return failure(ErrorCode.server, `${code}: ${message}`);
  }
}

function decodeBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** An account as getAccountInfo and accountNotification show it, its data in `encoding` (base64 or base58). */
export function solanaAccountJson(account: SvmAccount, encoding: string, slice?: { offset: number; length: number }) {
  const data = slice === undefined ? account.data : account.data.subarray(slice.offset, slice.offset + slice.length);
  return {
    data:
      encoding === "base58" ? [base58Decoder.decode(data), "base58"] : [Buffer.from(data).toString("base64"), encoding],
    executable: account.executable,
    lamports: Number(account.lamports),
    owner: base58Decoder.decode(account.owner),
    rentEpoch: Number(account.rentEpoch),
    space: account.data.length,
  };
}

/** The Solana methods over `backend`, to merge into the server's method table. */
export function createSolanaMethods(backend: SolanaRpcBackend): Map<string, MethodDef> {
  const heightFor = (commitment: SolanaCommitment | undefined): number =>
    commitment === "finalized" ? Math.min(backend.finalizedHeight(), backend.headHeight()) : backend.headHeight();
  const context = (slot: number) => ({ slot, apiVersion: SOLANA_API_VERSION });

  const methods: Record<string, MethodDef> = {
    getHealth: method([], () => success("ok")),
    getVersion: method([], () => success({ "solana-core": SOLANA_CORE_VERSION, "feature-set": 0 })),
    getGenesisHash: method([], () => success(base58Decoder.decode(Buffer.from(backend.genesisHash.slice(2), "hex")))),
    getSlot: method([optional("config", commitmentConfig)], (config) => success(heightFor(config?.commitment))),
    getBlockHeight: method([optional("config", commitmentConfig)], (config) => success(heightFor(config?.commitment))),
    getEpochInfo: method([optional("config", commitmentConfig)], (config) => {
      const slot = heightFor(config?.commitment);
      return success({
        absoluteSlot: slot,
        blockHeight: slot,
        epoch: Math.floor(slot / SLOTS_PER_EPOCH),
        slotIndex: slot % SLOTS_PER_EPOCH,
        slotsInEpoch: SLOTS_PER_EPOCH,
        transactionCount: null,
      });
    }),
    getLatestBlockhash: method([optional("config", commitmentConfig)], async (config) => {
      const height = heightFor(config?.commitment);
      const blockhash = await backend.blockhashAt(height);
      if (blockhash === null)
        return failure(ErrorCode.internal, `the blockhash of committed height ${height} is missing`);
      return success({
        context: context(height),
        value: { blockhash, lastValidBlockHeight: height + SVM_BLOCKHASH_VALID_BLOCKS },
      });
    }),
    isBlockhashValid: method(
      [required("blockhash", pubkey), optional("config", commitmentConfig)],
      async (blockhash, config) => {
        const head = backend.headHeight();
        let valid = false;
        for (let h = head; h >= 0 && h > head - SVM_BLOCKHASH_VALID_BLOCKS; h--) {
          if ((await backend.blockhashAt(h)) === blockhash) {
            valid = true;
            break;
          }
        }
        return success({ context: context(heightFor(config?.commitment)), value: valid });
      },
    ),
    getMinimumBalanceForRentExemption: method(
      [
        required("dataLength", z.number().int().min(0).max(MAX_ACCOUNT_DATA_BYTES)),
        optional("config", commitmentConfig),
      ],
      (dataLength) =>
        success((RENT_ACCOUNT_OVERHEAD_BYTES + dataLength) * RENT_LAMPORTS_PER_BYTE_YEAR * RENT_EXEMPTION_YEARS),
    ),
    getFeeForMessage: method(
      [required("message", z.string().max(4 * MAX_SVM_TX_BYTES)), optional("config", commitmentConfig)],
      (message, config) => {
        const bytes = decodeBase64(message);
        if (bytes === null || bytes.length === 0) return failure(ErrorCode.invalidParams, "message is not base64");
        try {
          const decoded = messageDecoder.decode(bytes);
          const fee = decoded.header.numSignerAccounts * LAMPORTS_PER_SIGNATURE;
          return success({ context: context(heightFor(config?.commitment)), value: fee });
        } catch (error) {
          return failure(ErrorCode.invalidParams, `invalid message: ${(error as Error).message}`);
        }
      },
    ),
    getBalance: method([required("pubkey", pubkey), optional("config", commitmentConfig)], async (address, config) => {
      const height = heightFor(config?.commitment);
      const account = await backend.account(height, address);
      return success({ context: context(height), value: Number(account?.lamports ?? 0n) });
    }),
    getAccountInfo: method([required("pubkey", pubkey), optional("config", accountConfig)], async (address, config) => {
      const encoding = config?.encoding ?? "base64";
      if (encoding !== "base64" && encoding !== "base58") {
        return failure(
          ErrorCode.invalidParams,
          `encoding ${encoding} is not supported by this node: use base64 (jsonParsed and base64+zstd are not served)`,
        );
      }
      const height = heightFor(config?.commitment);
      const account = await backend.account(height, address);
      if (account !== null && encoding === "base58" && account.data.length > MAX_BASE58_DATA_BYTES) {
        return failure(
          ErrorCode.invalidRequest,
          "Encoded binary (base 58) data should be less than 128 bytes, please use Base64 encoding.",
        );
      }
      return success({
        context: context(height),
        value: account === null ? null : solanaAccountJson(account, encoding, config?.dataSlice),
      });
    }),
    sendTransaction: method(
      [required("transaction", z.string().max(4 * MAX_SVM_TX_BYTES)), optional("config", sendConfig)],
      async (encoded, config) => {
        const encoding = config?.encoding ?? "base58";
        const wire = encoding === "base64" ? decodeBase64(encoded) : base58Bytes(encoded);
        if (wire === null || wire.length === 0) {
          return failure(ErrorCode.invalidParams, `failed to decode the transaction: invalid ${encoding}`);
        }
        const entry = new Uint8Array(wire.length + 1);
        entry[0] = SVM_TX_PREFIX;
        entry.set(wire, 1);
        const sent = await backend.submit(entry);
        if (sent.ok) return success(sent.signature);
        // Solana answers a resend of a transaction it holds with its signature: so does this node.
        if (sent.code === "known") {
          try {
            const tx = transactionDecoder.decode(wire);
            const first = Object.values(tx.signatures)[0];
            if (first !== null && first !== undefined) return success(base58Decoder.decode(first));
          } catch {
            // fall through to the refusal
          }
        }
        return sendRefusal(sent.code, sent.message);
      },
    ),
    getSignatureStatuses: method(
      [
        required("signatures", z.array(signatureParam).max(MAX_SIGNATURE_STATUSES)),
        optional("config", z.looseObject({ searchTransactionHistory: z.boolean().optional() })),
      ],
      async (signatures) => {
        const head = backend.headHeight();
        const finalized = backend.finalizedHeight();
        const value = await Promise.all(
          signatures.map(async (s) => {
            const record = await backend.transaction(base58Bytes(s) as Uint8Array);
            if (record === undefined) return null;
            const err = errOf(record.receipt);
            const isFinal = record.height <= finalized;
            return {
              slot: record.height,
              confirmations: isFinal ? null : head - record.height,
              err,
              status: err === null ? { Ok: null } : { Err: err },
              confirmationStatus: isFinal ? "finalized" : "confirmed",
            };
          }),
        );
        return success({ context: context(head), value });
      },
    ),
    getTransaction: method(
      [required("signature", signatureParam), optional("config", z.union([z.string(), transactionConfig]))],
      async (signature, rawConfig) => {
        const config = typeof rawConfig === "string" ? { encoding: rawConfig } : rawConfig;
        const encoding = config?.encoding ?? "json";
        if (encoding !== "json" && encoding !== "base64" && encoding !== "base58") {
          return failure(
            ErrorCode.invalidParams,
            `encoding ${encoding} is not supported by this node: use json or base64 (jsonParsed is not served)`,
          );
        }
        const record = await backend.transaction(base58Bytes(signature) as Uint8Array);
        if (record === undefined) return success(null);
        if (config?.commitment === "finalized" && record.height > backend.finalizedHeight()) return success(null);
        const tx = transactionDecoder.decode(record.wire);
        const message = messageDecoder.decode(tx.messageBytes);
        // Blocks carry legacy and v0 transactions only (src/execution/svm/tx.ts refuses the rest).
        if (message.version !== "legacy" && message.version !== 0) {
          return failure(ErrorCode.internal, `stored transaction of version ${String(message.version)}`);
        }
        if (message.version === 0 && config?.maxSupportedTransactionVersion === undefined) {
          return failure(
            -32015,
            'Transaction version (0) is not supported by the requesting client. Please try the request again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
          );
        }
        const err = errOf(record.receipt);
        const transaction =
          encoding === "json"
            ? {
                signatures: Object.values(tx.signatures).map((sig) => (sig === null ? "" : base58Decoder.decode(sig))),
                message: {
                  accountKeys: message.staticAccounts.map(String),
                  header: {
                    numRequiredSignatures: message.header.numSignerAccounts,
                    numReadonlySignedAccounts: message.header.numReadonlySignerAccounts,
                    numReadonlyUnsignedAccounts: message.header.numReadonlyNonSignerAccounts,
                  },
                  instructions: (message.instructions ?? []).map((ix) => ({
                    programIdIndex: ix.programAddressIndex,
                    accounts: [...(ix.accountIndices ?? [])],
                    data: base58Decoder.decode(ix.data ?? new Uint8Array()),
                    stackHeight: null,
                  })),
                  recentBlockhash: String(message.lifetimeToken),
                  ...(message.version === 0 ? { addressTableLookups: [] } : {}),
                },
              }
            : encoding === "base64"
              ? [Buffer.from(record.wire).toString("base64"), "base64"]
              : [base58Decoder.decode(record.wire), "base58"];
        return success({
          slot: record.height,
          blockTime: record.blockTime,
          version: message.version,
          transaction,
          meta: {
            err,
            status: err === null ? { Ok: null } : { Err: err },
            fee: Number(record.receipt.fee),
            // Lamports of each static account key, in key order (empty for blocks stored before they were kept).
            preBalances: record.receipt.preBalances.map(Number),
            postBalances: record.receipt.postBalances.map(Number),
            innerInstructions: [],
            preTokenBalances: [],
            postTokenBalances: [],
            logMessages: [...record.receipt.logs],
            rewards: [],
            loadedAddresses: { writable: [], readonly: [] },
            computeUnitsConsumed: Number(record.receipt.computeUnits),
          },
        });
      },
    ),
  };
  return new Map(Object.entries(methods));
}

/** What getVersion reports: the Solana runtime litesvm embeds, tagged with this node. */
export const SOLANA_CORE_VERSION = "2.2.0-lumia";
const SOLANA_API_VERSION = "2.2.0";
