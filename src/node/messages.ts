// Gossip payloads and request/response bodies of the node, built from consensus/codec.ts schemas. Layouts are
// documented in docs/protocol.md ("Node messages"). Every decoder throws only DecodeError.
import { certificateSchema } from "../../consensus/certificate.ts";
import {
  bytes,
  decode,
  encode,
  hex32,
  type Infer,
  list,
  struct,
  u16,
  u64,
  u64Number,
  varBytes,
  versioned,
} from "../../consensus/codec.ts";
import { SIGNATURE_LENGTH, signedProposalSchema, signedVoteSchema } from "../../consensus/wire.ts";
import { MAX_BLOCK_BYTES, MAX_TRANSACTION_BYTES } from "../chain/block.ts";
import { validatorSetSchema } from "../storage/codecs.ts";

export const MESSAGE_VERSION = 1;

/** Topic names and request protocols, per chain so that two subnets never exchange messages. */
export function topics(chainId: bigint) {
  const base = `/lumia/dcn/${chainId}`;
  return {
    proposals: `${base}/proposals/1`,
    votes: `${base}/votes/1`,
    certificates: `${base}/certificates/1`,
    evidence: `${base}/evidence/1`,
    transactions: `${base}/transactions/2`,
    workReports: `${base}/work-reports/1`,
  } as const;
}

export function protocols(chainId: bigint) {
  const base = `/lumia/dcn/${chainId}`;
  return {
    status: `${base}/sync/status/1`,
    blocks: `${base}/sync/blocks/1`,
    heightState: `${base}/sync/height-state/1`,
    snapshot: `${base}/sync/snapshot/1`,
    stateNodes: `${base}/sync/state-nodes/1`,
    lightClient: `${base}/sync/light-client/1`,
  } as const;
}

/** A proposal with the body of the block it proposes: validators need both to prevote. */
export const proposalMessageSchema = versioned(
  MESSAGE_VERSION,
  struct({ proposal: signedProposalSchema, block: varBytes(MAX_BLOCK_BYTES) }),
);
export type ProposalMessage = Infer<typeof proposalMessageSchema>;

/** Announces a commit: the certificate alone; a node without the block fetches it by height. */
export const certificateMessageSchema = versioned(MESSAGE_VERSION, struct({ certificate: certificateSchema }));

/**
 * One validator's signature over an epoch's work report digest (docs/l1.md "Work reports"). `signerIndex` is its index
 * in the epoch's set; `sentAtMs` only makes a re-sent copy a new gossip message (gossipsub drops exact repeats).
 */
export const workSignatureSchema = versioned(
  MESSAGE_VERSION,
  struct({
    epoch: u64,
    signerIndex: u16,
    digest: hex32,
    signature: bytes(SIGNATURE_LENGTH),
    sentAtMs: u64Number,
  }),
);
export type WorkSignature = Infer<typeof workSignatureSchema>;
export const WORK_SIGNATURE_BYTES = 1 + 8 + 2 + 32 + SIGNATURE_LENGTH + 8;
export const encodeWorkSignature = (m: WorkSignature): Uint8Array => encode(workSignatureSchema, m, "workSignature");
export const decodeWorkSignature = (b: Uint8Array): WorkSignature => decode(workSignatureSchema, b, "workSignature");

/** Entries of one transaction gossip message at most. */
export const MAX_GOSSIP_BATCH_TRANSACTIONS = 256;
/** Bytes of one transaction gossip message at most: room for the largest entry plus its framing. */
export const MAX_GOSSIP_BATCH_BYTES = 256 * 1024;

/**
 * Transaction gossip: block entries (a raw signed Ethereum transaction, or 0x53 || Solana wire transaction) that a
 * node admitted within one turn of its event loop, in admission order.
 */
export const transactionBatchSchema = versioned(
  MESSAGE_VERSION,
  list(varBytes(MAX_TRANSACTION_BYTES), MAX_GOSSIP_BATCH_TRANSACTIONS),
);
/** Framing of a batch: version u8 and count u32, then a u32 length per entry. */
export const TRANSACTION_BATCH_OVERHEAD = 5;
export const TRANSACTION_BATCH_ENTRY_OVERHEAD = 4;
export const encodeTransactionBatch = (entries: readonly Uint8Array[]): Uint8Array =>
  encode(transactionBatchSchema, entries, "transactions");
export const decodeTransactionBatch = (b: Uint8Array): readonly Uint8Array[] =>
  decode(transactionBatchSchema, b, "transactions");

/** Status: the responder's committed head. Request body is empty. */
export const statusSchema = versioned(MESSAGE_VERSION, struct({ headHeight: u64Number, headHash: hex32 }));
export type Status = Infer<typeof statusSchema>;

export const MAX_BLOCKS_PER_REQUEST = 256;

export const blocksRequestSchema = versioned(MESSAGE_VERSION, struct({ fromHeight: u64Number, maxCount: u16 }));
export type BlocksRequest = Infer<typeof blocksRequestSchema>;

export const blocksResponseSchema = versioned(
  MESSAGE_VERSION,
  list(struct({ block: varBytes(MAX_BLOCK_BYTES), certificate: certificateSchema }), MAX_BLOCKS_PER_REQUEST),
);
export type BlocksResponse = Infer<typeof blocksResponseSchema>;

/**
 * Height-state pull: a node that makes no progress asks peers for what they hold at its height (proposals with
 * blocks, prevotes and precommits of recent rounds and of the proof-of-lock round) or, when they are past it, the
 * certificate. It replaces Tendermint's periodic re-gossip, which gossipsub's duplicate filter would swallow.
 */
export const heightStateRequestSchema = versioned(MESSAGE_VERSION, struct({ height: u64Number, round: u64Number }));
export type HeightStateRequest = Infer<typeof heightStateRequestSchema>;

export const MAX_HEIGHT_STATE_VOTES = 4096;
export const MAX_HEIGHT_STATE_PROPOSALS = 16;

export const heightStateResponseSchema = versioned(
  MESSAGE_VERSION,
  struct({
    proposals: list(
      struct({ proposal: signedProposalSchema, block: varBytes(MAX_BLOCK_BYTES) }),
      MAX_HEIGHT_STATE_PROPOSALS,
    ),
    votes: list(signedVoteSchema, MAX_HEIGHT_STATE_VOTES),
  }),
);
export type HeightStateResponse = Infer<typeof heightStateResponseSchema>;

/**
 * State sync's starting point: the server's head and the set (with its proposer priorities) deciding the next height.
 * The header of `height` names that set's id (nextValidatorSetId); the priorities are taken on trust from the server.
 */
export const snapshotOfferSchema = versioned(
  MESSAGE_VERSION,
  struct({ height: u64Number, nextValidatorSet: validatorSetSchema }),
);
export type SnapshotOffer = Infer<typeof snapshotOfferSchema>;

/** Largest state value: a Solana account's data is at most 10 MiB, plus its encoding. */
export const MAX_STATE_VALUE_BYTES = 11 * 1024 * 1024;
/** Keys one state-nodes request may name. */
export const MAX_STATE_NODES_PER_REQUEST = 512;
/** A state node's key: a trie node's hash (32 bytes), or "c" || code hash for contract code (33 bytes). */
const stateKeySchema = varBytes(33);
export const stateNodesRequestSchema = versioned(MESSAGE_VERSION, list(stateKeySchema, MAX_STATE_NODES_PER_REQUEST));
/** The values of the first keys asked for, in order (empty: the server has no such node); the rest is asked again. */
export const stateNodesResponseSchema = versioned(
  MESSAGE_VERSION,
  list(varBytes(MAX_STATE_VALUE_BYTES), MAX_STATE_NODES_PER_REQUEST),
);
export const encodeSnapshotOffer = (o: SnapshotOffer): Uint8Array => encode(snapshotOfferSchema, o, "snapshotOffer");
export const decodeSnapshotOffer = (b: Uint8Array): SnapshotOffer => decode(snapshotOfferSchema, b, "snapshotOffer");
export const encodeStateNodesRequest = (keys: readonly Uint8Array[]): Uint8Array =>
  encode(stateNodesRequestSchema, keys, "stateNodesRequest");
export const decodeStateNodesRequest = (b: Uint8Array): readonly Uint8Array[] =>
  decode(stateNodesRequestSchema, b, "stateNodesRequest");
export const encodeStateNodesResponse = (values: readonly Uint8Array[]): Uint8Array =>
  encode(stateNodesResponseSchema, values, "stateNodes");
export const decodeStateNodesResponse = (b: Uint8Array): readonly Uint8Array[] =>
  decode(stateNodesResponseSchema, b, "stateNodes");

export const encodeProposalMessage = (m: ProposalMessage): Uint8Array => encode(proposalMessageSchema, m, "proposal");
export const decodeProposalMessage = (b: Uint8Array): ProposalMessage => decode(proposalMessageSchema, b, "proposal");
export const encodeStatus = (s: Status): Uint8Array => encode(statusSchema, s, "status");
export const decodeStatus = (b: Uint8Array): Status => decode(statusSchema, b, "status");
export const encodeBlocksRequest = (r: BlocksRequest): Uint8Array => encode(blocksRequestSchema, r, "blocksRequest");
export const decodeBlocksRequest = (b: Uint8Array): BlocksRequest => decode(blocksRequestSchema, b, "blocksRequest");
export const encodeBlocksResponse = (r: BlocksResponse): Uint8Array => encode(blocksResponseSchema, r, "blocks");
export const decodeBlocksResponse = (b: Uint8Array): BlocksResponse => decode(blocksResponseSchema, b, "blocks");
export const encodeHeightStateRequest = (r: HeightStateRequest): Uint8Array =>
  encode(heightStateRequestSchema, r, "heightStateRequest");
export const decodeHeightStateRequest = (b: Uint8Array): HeightStateRequest =>
  decode(heightStateRequestSchema, b, "heightStateRequest");
export const encodeHeightStateResponse = (r: HeightStateResponse): Uint8Array =>
  encode(heightStateResponseSchema, r, "heightState");
export const decodeHeightStateResponse = (b: Uint8Array): HeightStateResponse =>
  decode(heightStateResponseSchema, b, "heightState");

export function encodeCertificateMessage(certificate: Infer<typeof certificateSchema>): Uint8Array {
  return encode(certificateMessageSchema, { certificate }, "certificateMessage");
}
export function decodeCertificateMessage(b: Uint8Array): Infer<typeof certificateSchema> {
  return decode(certificateMessageSchema, b, "certificateMessage").certificate;
}
