// Types of the consensus core. Everything here is plain data: no classes, no I/O.
import type { Hex } from "./bytes.ts";

/** Identifies a proposed value: the 32-byte block hash (the header commits to the post-execution state root). */
export type ValueId = Hex;

export type VoteType = "prevote" | "precommit";

/** A vote as the state machine produces it, before signing. `value: null` is a vote for nil. */
export interface Vote {
  readonly type: VoteType;
  readonly height: number;
  readonly round: number;
  readonly value: ValueId | null;
  readonly validatorIndex: number;
}

export interface SignedVote extends Vote {
  /** Signature over `voteDigest(chainId, vote)`: 96-byte compressed BLS12-381 G2 point. */
  readonly signature: Uint8Array;
}

/** A proposal as the state machine produces it, before signing. `polRound` is -1 when there is no proof-of-lock round. */
export interface Proposal {
  readonly height: number;
  readonly round: number;
  readonly polRound: number;
  readonly value: ValueId;
  readonly proposerIndex: number;
}

export interface SignedProposal extends Proposal {
  /** Signature over `proposalDigest(chainId, proposal)`. */
  readonly signature: Uint8Array;
}

export interface Validator {
  /** Consensus address: last 20 bytes of keccak256(publicKey). Ties in proposer priority break on it. */
  readonly address: Hex;
  /** 48-byte compressed BLS12-381 G1 public key. */
  readonly publicKey: Uint8Array;
  readonly votingPower: bigint;
  /** CometBFT proposer priority (int64 semantics). */
  readonly proposerPriority: bigint;
}

/**
 * An ordered validator set as used at one height. Order: voting power descending, then address ascending
 * (CometBFT's order). `id` commits to the ordered (publicKey, votingPower) list, not to proposer priorities.
 * Priorities are CometBFT's state after the increment that selected `proposerIndex`, the round-0 proposer.
 */
export interface ValidatorSet {
  readonly validators: readonly Validator[];
  readonly totalVotingPower: bigint;
  readonly id: Hex;
  readonly proposerIndex: number;
}

/** Evidence that one validator signed two conflicting messages at the same (height, round, type). */
export type Evidence =
  | { readonly kind: "duplicateVote"; readonly first: SignedVote; readonly second: SignedVote }
  | { readonly kind: "duplicateProposal"; readonly first: SignedProposal; readonly second: SignedProposal };

/** A signature scheme over 32-byte digests, aggregatable over one message (BLS min-pk in production). */
export interface SignatureScheme {
  readonly name: string;
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  aggregateSignatures(signatures: readonly Uint8Array[]): Uint8Array;
  /** Verifies one aggregate signature of `publicKeys` over the same `message` (fastAggregateVerify). */
  verifyAggregate(publicKeys: readonly Uint8Array[], message: Uint8Array, signature: Uint8Array): boolean;
  /**
   * Optional: whether every `signatures[i]` is `publicKeys[i]`'s signature over the one `message`, in one check that
   * costs less than checking them one by one (random linear combination: an invalid signature cannot be cancelled by
   * another one). False when any is invalid, without saying which.
   */
  verifySameMessage?(
    publicKeys: readonly Uint8Array[],
    message: Uint8Array,
    signatures: readonly Uint8Array[],
  ): boolean;
}

/** Holds a private key. Signing is deterministic for BLS: the same message gives the same signature. */
export interface Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}
