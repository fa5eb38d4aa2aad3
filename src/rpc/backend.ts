// The narrow view of the node the JSON-RPC server needs. The node implements it over its chain store, execution core
// and mempool; tests implement it over in-memory data. Heights are committed heights: every committed block carries a
// BLS certificate, so "latest" is already soft-final.
import type { Hex } from "../../consensus/bytes.ts";
import type { Block } from "../chain/block.ts";
import type { StoredReceipt, StoredSvmReceipt } from "../chain/receipts.ts";
import type { AccountProof } from "../execution/core.ts";
import type { SimulatedBlock, SimulatedBlockRequest, SimulateOptions } from "../execution/simulate.ts";
import type { TraceOptions } from "../execution/tracers.ts";

export interface RpcAccount {
  nonce: bigint;
  balance: bigint;
  codeHash: Hex;
  storageRoot: Hex;
}
export interface RpcCallRequest {
  from?: Hex;
  to?: Hex | null;
  data?: Hex;
  value?: bigint;
  gas?: bigint;
  gasPrice?: bigint;
  maxFeePerGas?: bigint;
  maxPriorityFeePerGas?: bigint;
  /** EIP-2930 access list the call runs with. */
  accessList?: readonly RpcAccessListEntry[];
  /** eth_createAccessList: report what the call touched in the result's `accessList`. */
  reportAccessList?: boolean;
  /** Accounts changed for this call only, before it runs. */
  stateOverrides?: RpcStateOverrides;
  /** Fields of the block the call runs in, replaced. */
  blockOverrides?: RpcBlockOverrides;
}
/** One account's override: fields replaced; `state` replaces the whole storage, `stateDiff` only the slots given. */
export interface RpcAccountOverride {
  balance?: bigint;
  nonce?: bigint;
  code?: Hex;
  state?: readonly (readonly [Hex, Hex])[];
  stateDiff?: readonly (readonly [Hex, Hex])[];
}
export type RpcStateOverrides = readonly (RpcAccountOverride & { readonly address: Hex })[];
export interface RpcBlockOverrides {
  number?: number;
  timestampMs?: number;
  gasLimit?: bigint;
  feeRecipient?: Hex;
  prevRandao?: Hex;
  baseFeePerGas?: bigint;
}
export interface RpcAccessListEntry {
  readonly address: Hex;
  readonly storageKeys: readonly Hex[];
}
export interface RpcCallResult {
  status: 0 | 1;
  returnData: Hex;
  gasUsed: bigint;
  revertReason: string | null;
  /**
   * Why the call failed when it was not a REVERT: it could not start (intrinsic gas above the gas given...) or halted
   * (out of gas, invalid opcode...), when the backend knows. Answered as -32000 with this text, as geth does.
   */
  error?: string | null;
  /**
   * With `reportAccessList`: the addresses and slots the call touched, without the sender, the recipient (or created
   * contract) and the precompiles (geth's access-list tracer).
   */
  accessList?: readonly RpcAccessListEntry[];
}
export interface RpcPendingTx {
  hash: Hex;
  raw: Uint8Array;
  from: Hex;
}
export type RpcSendResult = { ok: true; hash: Hex } | { ok: false; code: string; message: string };
export interface RpcBackend {
  readonly chainId: bigint;
  readonly clientVersion: string;
  /** Latest committed (= soft-final, certified) height. */
  headHeight(): number;
  blockByHeight(height: number): Promise<{ hash: Hex; block: Block } | undefined>;
  blockByHash(hash: Hex): Promise<{ hash: Hex; block: Block } | undefined>;
  receipts(height: number): Promise<readonly StoredReceipt[] | undefined>;
  /**
   * The receipts-trie leaves of the block's SVM entries (they follow the EVM receipts in the receipts root); a backend
   * without the SVM has none.
   */
  svmReceiptLeaves?(height: number): Promise<readonly Uint8Array[]>;
  transactionLocation(hash: Hex): Promise<{ height: number; index: number } | undefined>;
  account(height: number, address: Hex): Promise<RpcAccount | null>;
  code(height: number, address: Hex): Promise<Hex>;
  /** 32-byte value. */
  storageAt(height: number, address: Hex, slot: Hex): Promise<Hex>;
  call(height: number, request: RpcCallRequest): Promise<RpcCallResult>;
  nextBaseFee(): bigint;
  /** Codes: the mempool's (nonce_too_low, insufficient_funds, fee_too_low, underpriced_replacement, malformed, ...). */
  sendRawTransaction(raw: Uint8Array): Promise<RpcSendResult>;
  /** Next nonce counting queued transactions. */
  pendingNonce(address: Hex): Promise<bigint>;
  pendingTransaction(hash: Hex): RpcPendingTx | undefined;
  /** EIP-1186 account and storage proof against the EVM state root of `height`. */
  proof(height: number, address: Hex, slots: readonly Hex[]): Promise<RpcAccountProof>;
  /** The soft-finality certificate of a committed height, with the set that signed it. */
  certificate(height: number): Promise<RpcCertificate | undefined>;
  /** A validator set by id (membership and voting power). */
  validatorSet(id: Hex): Promise<RpcValidatorSet | undefined>;
  /** Where the deciding set changed, ascending by height; the first entry is the genesis set from height 1. */
  validatorSetHistory(): Promise<readonly RpcValidatorSetChange[]>;
  /** Node status for lumia_status. */
  status(): unknown;
  /** eth_syncing: the catch-up under way (heights), or null when this node is not behind (always null when absent). */
  syncing?(): { startingBlock: number; currentBlock: number; highestBlock: number } | null;
  /**
   * debug_traceTransaction / debug_traceBlockBy*: replays committed block `height` with a tracer on its EVM
   * transaction `index` (null: on each), and gives the traces in block order. Absent when the debug API is off.
   */
  traceBlock?(height: number, index: number | null, options: TraceOptions): Promise<unknown[]>;
  /** eth_simulateV1: the blocks of calls on the state after `height` (src/execution/simulate.ts). */
  simulate?(
    height: number,
    blocks: readonly SimulatedBlockRequest[],
    options: SimulateOptions,
  ): Promise<readonly SimulatedBlock[]>;
  /** debug_traceCall: the trace of a call on the state after `height`. Absent when the debug API is off. */
  traceCall?(height: number, request: RpcCallRequest, options: TraceOptions): Promise<unknown>;
  /** txpool_status: the pool's EVM transactions runnable now (`pending`) and waiting behind a nonce gap (`queued`). */
  txpoolStatus?(): { pending: number; queued: number };
  /** txpool_contentFrom: one sender's pooled transactions (raw), runnable run then waiting ones, in nonce order. */
  txpoolContentFrom?(address: Hex): { pending: readonly Uint8Array[]; queued: readonly Uint8Array[] };
  /** net_peerCount: the peers this node is connected to (0 when absent). */
  peerCount?(): number;
  /**
   * lumia_getStake / lumia_getRewards: a staker's position on the L1 staking contracts at the L1 mirror's confirmed
   * block, as JSON (amounts in wei as decimal strings), or why it is not available. Absent without an L1 mirror.
   */
  stakerReport?(
    address: Hex,
    withClaims: boolean,
  ): Promise<{ ok: true; value: unknown } | { ok: false; reason: string; busy?: true }>;
  /**
   * lumia_getWorkReport: the work report of a registry epoch (null: the newest complete one) with its signatures and
   * L1 submission state, as JSON; null when this node has none. Absent on a subnet not anchored to L1.
   */
  workReport?(epoch: bigint | null): Promise<unknown>;
  /**
   * The "finalized" block tag: the highest height covered by an L1 output in an L1-finalized block
   * (docs/hard-finality.md). Absent (or 0) until then: the genesis.
   */
  finalizedHeight?(): number;
  /**
   * Calls `listener` after each commit from now on, in height order, each height exactly once (a synced batch too);
   * returns the unsubscribe. A throwing listener is logged and skipped: it never reaches consensus.
   */
  onCommitted(listener: (event: CommittedEvent) => void): () => void;
  /** Calls `listener` for each transaction this node's mempool accepts; returns the unsubscribe. */
  onPendingTransaction(listener: (tx: RpcPendingTx) => void): () => void;
}

/** A committed block with what subscriptions send: its header, receipts (logs) and certificate. */
export interface CommittedEvent {
  readonly height: number;
  readonly hash: Hex;
  readonly block: Block;
  readonly receipts: readonly StoredReceipt[];
  /** The block's Solana transactions' receipts (signatureSubscribe); none on a backend without the SVM. */
  readonly svmReceipts?: readonly StoredSvmReceipt[];
  /** undefined only for a backend without consensus certificates. */
  readonly certificate: RpcCertificate | undefined;
}

/** EIP-1186 shape, as the execution core produces it. */
export type RpcAccountProof = AccountProof;

export interface RpcCertificate {
  /** The encoded certificate (docs/protocol.md), what a light client verifies. */
  readonly encoded: Hex;
  readonly height: number;
  readonly round: number;
  readonly blockHash: Hex;
  readonly validatorSetId: Hex;
  /** Indices (in the set's order) of the validators whose precommits are aggregated. */
  readonly signers: readonly number[];
  readonly signingPower: bigint;
  readonly totalPower: bigint;
}

/** The set `id` decides every height from `fromHeight` until the next change. */
export interface RpcValidatorSetChange {
  readonly fromHeight: number;
  readonly id: Hex;
}

export interface RpcValidatorSet {
  readonly id: Hex;
  readonly totalVotingPower: bigint;
  readonly validators: readonly { readonly address: Hex; readonly publicKey: Hex; readonly votingPower: bigint }[];
}
