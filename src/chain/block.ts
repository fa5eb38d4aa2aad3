// Blocks: the value consensus decides on. The block hash is keccak256 of the encoded header, and it is the value id
// precommitted and certified, so a certificate commits to everything the header commits to: the parent (the chain),
// the transactions, the receipts and the post-execution state root of every VM.
//
// Header (version 6), layout in docs/protocol.md "Blocks":
//   version u8 | chainId u64 | height u64 | timestampMs u64 | parentHash bytes32 | l1Origin (u64 | bytes32) | proposer bytes20 |
//   validatorSetId bytes32 | nextValidatorSetId bytes32 | lastCertificateHash bytes32 | depositsHash bytes32 |
//   nextDepositNonce u64 | transactionsRoot bytes32 | receiptsRoot bytes32 | stateRoot bytes32 | gasLimit u64 |
//   gasUsed u64 | baseFeePerGas u64 | logsBloom bytes256 | vmRoots: u32 count | (vm u8 | root bytes32)*
// Block: header | lastCertificate (u32 length | encoded certificate) | deposits: u32 count | deposit* |
//        u32 count | (u32 length | transaction entry)*
// Transaction entry: a raw signed Ethereum transaction (EIP-2718 typed or legacy RLP), or the DCN SVM envelope
// 0x53 || Solana wire transaction (0x53 is no EIP-2718 type in use and no RLP list prefix). Canonical order: every
// EVM entry, then every SVM entry (docs/svm.md "Blocks").
// Deposit: nonce u64 | l1BlockNumber u64 | from bytes20 | to bytes20 | asset u8 | amount u256
//
// validatorSetId names the set that decides (signs) this height; nextValidatorSetId the set that decides the next
// one. A certificate of height h therefore commits to the set of h+1, and a light client that trusts the set of h can
// follow a change of set without trusting whoever serves it the new members.
//
// lastCertificate is the certificate of the parent (empty for height 1, with lastCertificateHash zero; else
// lastCertificateHash = keccak256 of its bytes): the proposer's choice among the certificates +2/3 of the parent's
// set could form, made canonical by this block. Certificates a node formed itself differ in their signer bitmaps
// from node to node; the one in the next block is the same everywhere, so work accounting (who signed what) and
// the certificate each node serves for a height below its head are deterministic.
//
// deposits are the L1 portal's deposits the block must include (forced inclusion): exactly those with nonces from the
// parent's nextDepositNonce on whose L1 block is at or below l1Origin, in nonce order, at most MAX_BLOCK_DEPOSITS;
// depositsHash = keccak256 of their encoded list and nextDepositNonce the nonce after the last one. The list follows
// from the parent and the origin alone, so the proposer has no choice in it (docs/hard-finality.md "Deposits").
//
// l1Origin is the L1 block the block is anchored to: for a subnet that follows the L1 registry (genesis `l1`), a
// confirmed L1 block no older than the parent's origin (the genesis origin for height 1), from which the registry's
// epoch and set are read; {0, zero hash} for a subnet without an L1 anchor.
//
// parentHash of height 1 is the genesis hash, so chains of different genesis never mix. stateRoot is the global root
// over vmRoots (src/execution: keccak256 of the sorted (vm id || root) list); transactionsRoot and receiptsRoot are
// Ethereum ordered-trie roots, so receipt proofs verify with standard tools.
import { type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import {
  DecodeError,
  decode,
  encode,
  hex32,
  hexBytes,
  type Infer,
  list,
  Reader,
  struct,
  u8,
  u64,
  u64Number,
  u256,
  varBytes,
  versioned,
} from "../../consensus/codec.ts";
import { orderedTrieRoot } from "./ordered-trie.ts";

export const BLOCK_VERSION = 6;
export const MAX_VMS = 8;
export const ZERO_HASH: Hex = `0x${"00".repeat(32)}`;
/** Hard caps of the wire format; the configured limits (consensus.maxBlockBytes, ...) are lower. */
export const MAX_TRANSACTION_BYTES = 128 * 1024;
export const MAX_BLOCK_TRANSACTIONS = 100_000;
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024;
/** A certificate of 65535 validators (the u16 limit) is 8,383 bytes. */
export const MAX_LAST_CERTIFICATE_BYTES = 16 * 1024;
/** Deposits one block includes at most; more wait for the next block (still in nonce order). */
export const MAX_BLOCK_DEPOSITS = 64;
/** Portal asset ids (staking-contracts/src/Portal.sol). */
export const DEPOSIT_ASSET = { eth: 0, lumia: 1 } as const;

/** First byte of an SVM entry in `transactions` (docs/svm.md "Envelope"). */
export const SVM_TX_PREFIX = 0x53;

/** Whether a block entry is the SVM envelope (0x53 || Solana wire transaction). */
export function isSvmEntry(entry: Uint8Array): boolean {
  return entry[0] === SVM_TX_PREFIX;
}

export const depositSchema = struct({
  nonce: u64,
  l1BlockNumber: u64,
  from: hexBytes(20),
  to: hexBytes(20),
  asset: u8,
  amount: u256,
});

export type Deposit = Infer<typeof depositSchema>;
const depositsSchema = list(depositSchema, MAX_BLOCK_DEPOSITS);

/** keccak256 of the encoded deposit list (u32 count, then each deposit): what the header commits to. */
export function depositsHash(deposits: readonly Deposit[]): Hex {
  return toHex(keccak256(encode(depositsSchema, deposits, "deposits")));
}

export const EMPTY_DEPOSITS_HASH: Hex = depositsHash([]);

export const headerSchema = versioned(
  BLOCK_VERSION,
  struct({
    chainId: u64,
    height: u64Number,
    timestampMs: u64Number,
    parentHash: hex32,
    l1Origin: struct({ number: u64, hash: hex32 }),
    proposer: hexBytes(20),
    validatorSetId: hex32,
    nextValidatorSetId: hex32,
    lastCertificateHash: hex32,
    depositsHash: hex32,
    nextDepositNonce: u64,
    transactionsRoot: hex32,
    receiptsRoot: hex32,
    stateRoot: hex32,
    gasLimit: u64,
    gasUsed: u64,
    baseFeePerGas: u64,
    logsBloom: hexBytes(256),
    vmRoots: list(struct({ vm: u8, root: hex32 }), MAX_VMS),
  }),
);

export type BlockHeader = Infer<typeof headerSchema>;

const lastCertificateSchema = varBytes(MAX_LAST_CERTIFICATE_BYTES);

export const blockSchema = struct({
  header: headerSchema,
  lastCertificate: lastCertificateSchema,
  deposits: depositsSchema,
  transactions: list(varBytes(MAX_TRANSACTION_BYTES), MAX_BLOCK_TRANSACTIONS),
});

export type Block = Infer<typeof blockSchema>;

export function encodeHeader(header: BlockHeader): Uint8Array {
  return encode(headerSchema, header, "header");
}

export function encodeBlock(block: Block): Uint8Array {
  return encode(blockSchema, block, "block");
}

/** Throws only DecodeError (codes truncated, trailing_bytes, too_long, invalid_value). */
export function decodeBlock(bytes: Uint8Array): Block {
  if (bytes.length > MAX_BLOCK_BYTES) {
    throw new DecodeError("too_long", "block", `${bytes.length} bytes exceed the maximum ${MAX_BLOCK_BYTES}`);
  }
  return decode(blockSchema, bytes, "block");
}

export function blockHash(header: BlockHeader): Hex {
  return toHex(keccak256(encodeHeader(header)));
}

/** Hash of an encoded block without decoding the transactions: the header is its prefix. Throws DecodeError. */
export function blockHashOfEncoded(bytes: Uint8Array): Hex {
  const reader = new Reader(bytes);
  headerSchema.decodeFrom(reader, "header", {});
  return toHex(keccak256(bytes.subarray(0, reader.offset)));
}

/**
 * The header and last certificate of an encoded block (its prefix), without reading the deposits and transactions:
 * for readers of stored blocks that need nothing else. Checks only what it reads. Throws DecodeError.
 */
export function decodeBlockHead(bytes: Uint8Array): Pick<Block, "header" | "lastCertificate"> {
  const reader = new Reader(bytes);
  const header = headerSchema.decodeFrom(reader, "block.header", {});
  const lastCertificate = lastCertificateSchema.decodeFrom(reader, "block.lastCertificate", {});
  return { header, lastCertificate };
}

export const EMPTY_BLOOM: Hex = `0x${"00".repeat(256)}`;

export type BlockProblemCode =
  | "wrong_chain"
  | "wrong_height"
  | "wrong_parent"
  | "wrong_validator_set"
  | "wrong_next_validator_set"
  | "wrong_last_certificate"
  | "wrong_deposits"
  | "wrong_l1_origin"
  | "l1_origin_not_confirmed"
  | "l1_origin_too_old"
  | "unknown_proposer"
  | "timestamp_not_after_parent"
  | "timestamp_in_future"
  | "wrong_gas_limit"
  | "wrong_base_fee"
  | "gas_used_above_limit"
  | "too_large"
  | "too_many_transactions"
  /** an EVM entry after an SVM entry: the canonical order is every EVM entry, then every SVM entry */
  | "wrong_transaction_order"
  | "invalid_transaction"
  | "execution_mismatch";

/**
 * Codes that depend on what only the judging node sees: its clock (`timestamp_in_future`) and its L1 view
 * (`l1_origin_not_confirmed`, `l1_origin_too_old`). Another validator may judge the same block valid, so refusing it
 * is right but does not show the proposer misbehaved: its peer is not scored down for them.
 */
const VIEW_DEPENDENT: ReadonlySet<BlockProblemCode> = new Set([
  "timestamp_in_future",
  "l1_origin_not_confirmed",
  "l1_origin_too_old",
]);

/** Whether a block refused for `code` shows its proposer misbehaved (every honest validator refuses it alike). */
export function blamesProposer(code: BlockProblemCode): boolean {
  return !VIEW_DEPENDENT.has(code);
}

export interface BlockProblem {
  readonly code: BlockProblemCode;
  readonly message: string;
}

export interface BlockContext {
  readonly chainId: bigint;
  readonly height: number;
  readonly parentHash: Hex;
  readonly parentTimestampMs: number;
  /** The parent's L1 origin (the genesis origin for height 1; {0, zero hash} without an L1 anchor). */
  readonly parentL1Origin: { readonly number: bigint; readonly hash: Hex };
  /** The parent's nextDepositNonce (0 for height 1). */
  readonly parentDepositNonce: bigint;
  /** Whether the subnet follows the L1 registry (genesis `l1`); if not, every origin is the parent's. */
  readonly l1Anchored: boolean;
  readonly validatorSetId: Hex;
  /** The set that decides height + 1. */
  readonly nextValidatorSetId: Hex;
  readonly gasLimit: bigint;
  readonly baseFeePerGas: bigint;
  readonly isValidator: (address: Hex) => boolean;
  readonly nowMs: number;
  /** How far ahead of the local clock a proposer's timestamp may be. */
  readonly maxClockDriftMs: number;
  readonly maxBlockBytes: number;
  readonly maxBlockTransactions: number;
}

/**
 * The body against what the header commits to: the parent certificate (lastCertificateHash) and the deposits
 * (depositsHash), and with `transactions` the transactions (transactionsRoot, which executing the block checks anyway).
 * Null when they match: with the header certified, the whole block is.
 */
export function bodyProblem(block: Block, transactions: boolean): BlockProblem | null {
  const h = block.header;
  if (h.height === 1) {
    if (block.lastCertificate.length !== 0 || h.lastCertificateHash !== ZERO_HASH) {
      return problem("wrong_last_certificate", "height 1 has no parent certificate");
    }
  } else if (toHex(keccak256(block.lastCertificate)) !== h.lastCertificateHash) {
    return problem("wrong_last_certificate", "lastCertificateHash is not the hash of the block's last certificate");
  }
  if (depositsHash(block.deposits) !== h.depositsHash) {
    return problem("wrong_deposits", "depositsHash is not the hash of the block's deposits");
  }
  if (transactions && orderedTrieRoot(block.transactions) !== h.transactionsRoot) {
    return problem("execution_mismatch", "transactionsRoot is not the root of the block's transactions");
  }
  return null;
}

/**
 * The checks a validator makes on a block before executing it (execution then checks the roots, gas used and bloom).
 * Returns null when valid. Everything here is deterministic except the future-timestamp bound, which only delays a
 * block that is early (the driver checks it again when its clock reaches it).
 */
export function checkBlock(block: Block, encodedLength: number, ctx: BlockContext): BlockProblem | null {
  const h = block.header;
  if (h.chainId !== ctx.chainId) return problem("wrong_chain", `chain id ${h.chainId}, expected ${ctx.chainId}`);
  if (h.height !== ctx.height) return problem("wrong_height", `height ${h.height}, expected ${ctx.height}`);
  if (h.parentHash !== ctx.parentHash) {
    return problem("wrong_parent", `parent ${h.parentHash}, expected ${ctx.parentHash}`);
  }
  const origin = h.l1Origin;
  const parentOrigin = ctx.parentL1Origin;
  if (!ctx.l1Anchored && (origin.number !== parentOrigin.number || origin.hash !== parentOrigin.hash)) {
    return problem("wrong_l1_origin", `L1 origin ${origin.number} on a subnet without an L1 anchor`);
  }
  if (origin.number < parentOrigin.number) {
    return problem("wrong_l1_origin", `L1 origin ${origin.number} is older than the parent's ${parentOrigin.number}`);
  }
  if (origin.number === parentOrigin.number && origin.hash !== parentOrigin.hash) {
    return problem("wrong_l1_origin", `L1 origin ${origin.number} has another hash than the parent's`);
  }
  if (h.validatorSetId !== ctx.validatorSetId) {
    return problem("wrong_validator_set", `validator set ${h.validatorSetId}, expected ${ctx.validatorSetId}`);
  }
  if (h.nextValidatorSetId !== ctx.nextValidatorSetId) {
    return problem(
      "wrong_next_validator_set",
      `next validator set ${h.nextValidatorSetId}, expected ${ctx.nextValidatorSetId}`,
    );
  }
  const body = bodyProblem(block, false);
  if (body !== null) return body;
  const expectedNonce = ctx.parentDepositNonce + BigInt(block.deposits.length);
  for (const [i, d] of block.deposits.entries()) {
    if (d.nonce !== ctx.parentDepositNonce + BigInt(i)) {
      return problem(
        "wrong_deposits",
        `deposit ${i} has nonce ${d.nonce}, expected ${ctx.parentDepositNonce + BigInt(i)}`,
      );
    }
    if (d.l1BlockNumber > h.l1Origin.number) {
      return problem("wrong_deposits", `deposit ${d.nonce} is from L1 block ${d.l1BlockNumber}, after the origin`);
    }
  }
  if (h.nextDepositNonce !== expectedNonce) {
    return problem("wrong_deposits", `nextDepositNonce ${h.nextDepositNonce}, expected ${expectedNonce}`);
  }
  if (!ctx.isValidator(h.proposer)) return problem("unknown_proposer", `proposer ${h.proposer} is not a validator`);
  if (h.timestampMs <= ctx.parentTimestampMs) {
    return problem("timestamp_not_after_parent", `timestamp ${h.timestampMs} <= parent ${ctx.parentTimestampMs}`);
  }
  if (h.timestampMs > ctx.nowMs + ctx.maxClockDriftMs) {
    return problem("timestamp_in_future", `timestamp ${h.timestampMs} is ahead of local time ${ctx.nowMs}`);
  }
  if (encodedLength > ctx.maxBlockBytes) {
    return problem("too_large", `${encodedLength} bytes exceed the block limit ${ctx.maxBlockBytes}`);
  }
  if (block.transactions.length > ctx.maxBlockTransactions) {
    return problem(
      "too_many_transactions",
      `${block.transactions.length} transactions exceed the limit ${ctx.maxBlockTransactions}`,
    );
  }
  const firstSvm = block.transactions.findIndex(isSvmEntry);
  if (firstSvm >= 0) {
    for (let i = firstSvm + 1; i < block.transactions.length; i++) {
      if (!isSvmEntry(block.transactions[i] as Uint8Array)) {
        return problem("wrong_transaction_order", `EVM transaction ${i} follows SVM transaction ${firstSvm}`);
      }
    }
  }
  if (h.gasLimit !== ctx.gasLimit)
    return problem("wrong_gas_limit", `gas limit ${h.gasLimit}, expected ${ctx.gasLimit}`);
  if (h.baseFeePerGas !== ctx.baseFeePerGas) {
    return problem("wrong_base_fee", `base fee ${h.baseFeePerGas}, expected ${ctx.baseFeePerGas}`);
  }
  if (h.gasUsed > h.gasLimit) return problem("gas_used_above_limit", `gas used ${h.gasUsed} > limit ${h.gasLimit}`);
  return null;
}

export function problem(code: BlockProblemCode, message: string): BlockProblem {
  return { code, message };
}
