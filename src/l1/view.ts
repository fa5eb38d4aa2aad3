// What consensus needs to know about L1: which L1 blocks are final enough to anchor L2 blocks to, and the validator
// set the staking registry names for an epoch as of such a block. The L1 mirror (src/l1/mirror.ts) implements it over
// an L1 RPC with a confirmation depth; every answer is about one L1 block hash, so all honest nodes that see the same
// canonical L1 chain answer the same. The driver and the block executor depend on this interface only.
import type { Hex } from "../../consensus/bytes.ts";
import type { Deposit } from "../chain/block.ts";

/** An L1 block an L2 block is anchored to. */
export interface L1Ref {
  readonly number: bigint;
  readonly hash: Hex;
}

/** The registry's view of one epoch, as of one L1 block. */
export interface L1Epoch {
  /** `SequencerRegistry.currentEpoch()` at the block. */
  readonly epoch: bigint;
  /** `validatorSet(epoch)` at the block: members in set order (power descending, then consensus address ascending). */
  readonly members: readonly L1Member[];
  /** The set id the contract computed (`computeValidatorSetId` of the members). */
  readonly setId: Hex;
}

export interface L1Member {
  /** 48-byte compressed BLS public key. */
  readonly publicKey: Hex;
  readonly votingPower: bigint;
  /** libp2p peer id string (for the admission list). */
  readonly peerId: string;
  /** The operator's L1 address (fees and rewards go there). */
  readonly operator: Hex;
}

export type L1Answer<T> =
  | { readonly kind: "ok"; readonly value: T }
  /** Not known yet (the mirror lags, or the L1 RPC is unreachable): try again later; never a reason to reject. */
  | { readonly kind: "unknown"; readonly reason: string }
  /** Known and wrong: not on the canonical chain at confirmation depth, or not a block at all. */
  | { readonly kind: "invalid"; readonly reason: string };

export interface L1View {
  /** The newest L1 block at confirmation depth this node has seen, or null before the first one. */
  confirmedHead(): L1Ref | null;
  /** Whether `ref` is a canonical L1 block at confirmation depth (by number and hash). */
  checkConfirmed(ref: L1Ref): Promise<L1Answer<true>>;
  /** The registry's current epoch and its set as of the L1 block `ref` (which must be confirmed). */
  epochAt(ref: L1Ref): Promise<L1Answer<L1Epoch>>;
  /**
   * The portal's deposits with nonces from `fromNonce` on, emitted at or below the confirmed L1 block `ref`, in nonce
   * order, at most `max`: what a block anchored at `ref` must include. Empty when the genesis names no portal.
   * `scanFrom`: an L1 block at or before every such deposit (the parent's `depositsScanFrom`, default 0), where the
   * portal's events need to be read from.
   */
  depositsAt(ref: L1Ref, fromNonce: bigint, max: number, scanFrom?: bigint): Promise<L1Answer<Deposit[]>>;
  /**
   * Batches each member of registry epoch `epoch`'s set (in set order) posted to the batch inbox during that epoch, as
   * of the confirmed L1 block `ref` (a block after the epoch ended, so the counts are final). Zeros when the genesis
   * names no batch inbox.
   */
  batchesPosted(ref: L1Ref, epoch: bigint): Promise<L1Answer<readonly bigint[]>>;
}
