// Blocks: the value consensus decides on. The block hash is keccak256 of the encoded header, and it is the value id
// precommitted and certified, so a certificate commits to everything the header commits to: the parent (the chain),
// the transactions and the post-execution state root.
//
// Header, 1 + 8 + 8 + 8 + 32 + 20 + 32 + 32 + 32 = 173 bytes:
//   version u8 (= 1) | chainId u64 | height u64 | timestampMs u64 | parentHash bytes32 | proposer bytes20 |
//   validatorSetId bytes32 | transactionsRoot bytes32 | stateRoot bytes32
// Block: header | u32 count | (u32 length | transaction bytes)*
//
// parentHash of height 1 is the genesis hash, so chains of different genesis never mix. Until the execution core lands,
// transactions are opaque payloads and stateRoot is the zero hash; transactionsRoot = keccak256 of the concatenated
// keccak256 of each transaction (the execution core replaces it with a trie root, with a header version bump).
import { concatBytes, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import {
  DecodeError,
  decode,
  encode,
  hex32,
  hexBytes,
  type Infer,
  list,
  struct,
  u64,
  u64Number,
  varBytes,
  versioned,
} from "../../consensus/codec.ts";

export const BLOCK_VERSION = 1;
export const ZERO_HASH: Hex = `0x${"00".repeat(32)}`;
/** Hard caps of the wire format; the configured limits (consensus.maxBlockBytes, ...) are lower. */
export const MAX_TRANSACTION_BYTES = 128 * 1024;
export const MAX_BLOCK_TRANSACTIONS = 100_000;
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024;

export const headerSchema = versioned(
  BLOCK_VERSION,
  struct({
    chainId: u64,
    height: u64Number,
    timestampMs: u64Number,
    parentHash: hex32,
    proposer: hexBytes(20),
    validatorSetId: hex32,
    transactionsRoot: hex32,
    stateRoot: hex32,
  }),
);

export type BlockHeader = Infer<typeof headerSchema>;

export const blockSchema = struct({
  header: headerSchema,
  transactions: list(varBytes(MAX_TRANSACTION_BYTES), MAX_BLOCK_TRANSACTIONS),
});

export type Block = Infer<typeof blockSchema>;

export const HEADER_LENGTH = headerSchema.fixedSize ?? 0;

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

/** Hash of an encoded block without decoding the body: the header is its first HEADER_LENGTH bytes. */
export function blockHashOfEncoded(bytes: Uint8Array): Hex {
  return toHex(keccak256(bytes.subarray(0, HEADER_LENGTH)));
}

export function transactionsRoot(transactions: readonly Uint8Array[]): Hex {
  if (transactions.length === 0) return toHex(keccak256(new Uint8Array(0)));
  return toHex(keccak256(concatBytes(...transactions.map((tx) => keccak256(tx)))));
}

export type BlockProblemCode =
  | "wrong_chain"
  | "wrong_height"
  | "wrong_parent"
  | "wrong_validator_set"
  | "unknown_proposer"
  | "timestamp_not_after_parent"
  | "timestamp_in_future"
  | "transactions_root"
  | "state_root"
  | "too_large"
  | "too_many_transactions";

export interface BlockProblem {
  readonly code: BlockProblemCode;
  readonly message: string;
}

export interface BlockContext {
  readonly chainId: bigint;
  readonly height: number;
  readonly parentHash: Hex;
  readonly parentTimestampMs: number;
  readonly validatorSetId: Hex;
  readonly isValidator: (address: Hex) => boolean;
  readonly nowMs: number;
  /** How far ahead of the local clock a proposer's timestamp may be. */
  readonly maxClockDriftMs: number;
  readonly maxBlockBytes: number;
  readonly maxBlockTransactions: number;
}

/**
 * The checks a validator makes before prevoting a block (the paper's valid(v)), short of execution. Returns null when
 * valid. Everything here is deterministic except the future-timestamp bound, which only delays a block that is early.
 */
export function checkBlock(block: Block, encodedLength: number, ctx: BlockContext): BlockProblem | null {
  const h = block.header;
  if (h.chainId !== ctx.chainId) return problem("wrong_chain", `chain id ${h.chainId}, expected ${ctx.chainId}`);
  if (h.height !== ctx.height) return problem("wrong_height", `height ${h.height}, expected ${ctx.height}`);
  if (h.parentHash !== ctx.parentHash) {
    return problem("wrong_parent", `parent ${h.parentHash}, expected ${ctx.parentHash}`);
  }
  if (h.validatorSetId !== ctx.validatorSetId) {
    return problem("wrong_validator_set", `validator set ${h.validatorSetId}, expected ${ctx.validatorSetId}`);
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
  const root = transactionsRoot(block.transactions);
  if (h.transactionsRoot !== root) return problem("transactions_root", `root ${h.transactionsRoot}, computed ${root}`);
  if (h.stateRoot !== ZERO_HASH) return problem("state_root", `state root ${h.stateRoot} before execution exists`);
  return null;
}

function problem(code: BlockProblemCode, message: string): BlockProblem {
  return { code, message };
}
