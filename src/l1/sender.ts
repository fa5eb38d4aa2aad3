// Sending the operator's L1 transactions: one at a time per account (the batcher, the output proposer and the work
// reports share it and its nonces), simulated first so contract refusals come back named, with a fee cap, and replaced
// with higher fees when not mined in time. Blob transactions (EIP-4844 batches) go the same way, with their KZG
// commitments and proofs computed off the main thread (src/l1/kzg.ts) and their blob fee capped and bumped too.
import type { Counter } from "prom-client";
import {
  type Abi,
  type Address,
  bytesToHex,
  type Chain,
  commitmentsToVersionedHashes,
  createWalletClient,
  decodeErrorResult,
  encodeFunctionData,
  type Hex,
  hexToBytes,
  type PublicClient,
  type Kzg as ViemKzg,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { Logger } from "../node/log.ts";
import { l1Chain, stakingRevert } from "./deploy.ts";
import { FINALITY_ERRORS } from "./deploy-finality.ts";
import type { Kzg } from "./kzg.ts";
import { createL1Transport } from "./status.ts";

/** What the sender counts (src/l1/batcher.ts FinalityMetrics has them). */
export interface L1SenderMetrics {
  readonly l1Transactions: Counter<"kind" | "outcome">;
  readonly l1Resubmissions: Counter<"kind">;
}

export interface L1SenderParams {
  /** Highest maxFeePerGas this node pays, in wei; above it the transaction waits. Caps maxFeePerBlobGas too. */
  readonly maxFeePerGasWei: bigint;
  /** A transaction not mined after this long is sent again with the same nonce and higher fees. */
  readonly resubmitAfterMs: number;
  /** Replacements of one transaction before the sender gives up (the caller tries again later). */
  readonly maxResubmits: number;
  readonly requestTimeoutMs: number;
}

export const DEFAULT_L1_SENDER_PARAMS: Omit<L1SenderParams, "maxFeePerGasWei"> = {
  resubmitAfterMs: 60_000,
  maxResubmits: 4,
  requestTimeoutMs: 15_000,
};

export interface ContractCall {
  readonly address: Address;
  readonly abi: Abi;
  readonly functionName: string;
  readonly args: readonly unknown[];
}

/**
 * The blobs of a blob transaction (0x hex, 131072 bytes each; the call reads them with `blobhash(i)`) with their KZG
 * commitments and proofs (L1Sender.prepareBlobs).
 */
export interface BlobPayload {
  readonly blobs: readonly Hex[];
  readonly commitments: readonly Hex[];
  readonly proofs: readonly Hex[];
  readonly versionedHashes: readonly Hex[];
}

export type SendOutcome =
  | {
      readonly kind: "mined";
      readonly txHash: Hex;
      readonly l1Block: bigint;
      readonly gasUsed: bigint;
      readonly resubmits: number;
    }
  /** The contract refuses the call (named error from the gas estimate): retrying the same call will not help. */
  | { readonly kind: "refused"; readonly reason: string; readonly error: string | null }
  /** The L1's fees are above the configured cap: nothing was sent. */
  | { readonly kind: "fee_cap"; readonly reason: string }
  /** Transport, nonce or a reverted transaction: may succeed later. */
  | { readonly kind: "failed"; readonly reason: string }
  /** The caller's `stillWanted` said no once the transaction's turn in the queue came: nothing was sent. */
  | { readonly kind: "withdrawn"; readonly reason: string }
  /**
   * The node stopped (stop()) before the transaction was seen mined: what was sent may still be mined. Not a failure:
   * the next start reads the L1 and goes on from what it finds there.
   */
  | { readonly kind: "stopped"; readonly reason: string };

/** Fees grow by this factor on each replacement (geth needs at least +10% on both fee fields). */
const FEE_BUMP_NUM = 5n;
const FEE_BUMP_DEN = 4n;
/** geth's blob pool replaces a blob transaction only for at least twice its blob fee. */
const BLOB_FEE_BUMP = 2n;
/** maxFeePerBlobGas starts at this multiple of the blob base fee: room for a few blocks of rising blob fees. */
const BLOB_FEE_HEADROOM = 2n;
const RECEIPT_POLL_MS = 500;

/**
 * Sends contract calls from the operator account one at a time (a mutex: the batcher and the output proposer share
 * the account and its nonces). Simulates (gas estimate) first, so contract refusals come back named and cost nothing.
 */
export class L1Sender {
  private readonly account;
  private chain: Chain | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly params: L1SenderParams,
    private readonly m: {
      readonly rpcUrl: string;
      /** The operator's secp256k1 key (keys/operator.json): it pays the gas. */
      readonly operatorKey: Uint8Array;
      readonly client: PublicClient;
      readonly log: Logger;
      readonly sleep?: (ms: number) => Promise<void>;
      readonly metrics?: L1SenderMetrics;
      /** KZG for blob transactions (src/l1/kzg.ts sharedKzg); without it a blob send fails. */
      readonly kzg?: () => Kzg;
    },
  ) {
    this.account = privateKeyToAccount(`0x${Buffer.from(m.operatorKey).toString("hex")}`);
  }

  get address(): Address {
    return this.account.address;
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Never throws. `kind` labels logs and metrics ("batch", "output"). With `blobs`, a blob transaction (type 3) that
   * carries them: in the same nonce sequence, one transaction at a time like the others. `stillWanted` is asked when
   * the transaction's turn comes (the queue may hold others): false withdraws it unsent.
   */
  send(kind: string, call: ContractCall, blobs?: BlobPayload, stillWanted?: () => boolean): Promise<SendOutcome> {
    const run = this.tail.then(() =>
      stillWanted === undefined || stillWanted()
        ? this.sendNow(kind, call, blobs)
        : ({ kind: "withdrawn", reason: "no longer wanted when its turn came" } as const),
    );
    this.tail = run.catch(() => undefined);
    return run.then(
      (outcome) => {
        this.m.metrics?.l1Transactions.inc({ kind, outcome: outcome.kind });
        return outcome;
      },
      (error: unknown) => ({ kind: "failed", reason: firstLine(error) }) as const,
    );
  }

  private sleep(ms: number): Promise<void> {
    return this.m.sleep?.(ms) ?? new Promise((r) => setTimeout(r, ms));
  }

  /**
   * Commitments and proofs of `blobs`, computed in the KZG worker (seconds: callers do it before their last check that
   * the transaction is still wanted). Throws KzgError, or a plain Error when the sender has no KZG.
   */
  async prepareBlobs(blobs: readonly Hex[]): Promise<BlobPayload> {
    if (this.m.kzg === undefined) throw new Error("no KZG library configured for blob transactions");
    const kzg = this.m.kzg();
    const commitments = await kzg.commitments(blobs);
    const proofs = await kzg.proofs(blobs, commitments);
    return {
      blobs,
      commitments,
      proofs,
      versionedHashes: commitmentsToVersionedHashes({ commitments: commitments as Hex[], to: "hex" }),
    };
  }

  /** The lookup viem's serializer asks the prepared commitments and proofs from. */
  private sidecarsOf(payload: BlobPayload): { blobs: readonly Hex[]; versionedHashes: Hex[]; kzg: ViemKzg } {
    const { commitments, proofs } = payload;
    if (commitments.length !== payload.blobs.length || proofs.length !== payload.blobs.length) {
      throw new RangeError("a blob payload needs one commitment and one proof per blob");
    }
    const byBlob = new Map<string, { commitment: Uint8Array; proof: Uint8Array }>();
    for (const [i, blob] of payload.blobs.entries()) {
      byBlob.set(blob.toLowerCase(), {
        commitment: hexToBytes(commitments[i] as Hex),
        proof: hexToBytes(proofs[i] as Hex),
      });
    }
    // viem computes sidecars through a synchronous `kzg`: answer from what the worker computed.
    const lookup = (blob: Uint8Array) => {
      const found = byBlob.get(bytesToHex(blob));
      if (found === undefined) throw new Error("viem asked for the KZG commitment of an unknown blob");
      return found;
    };
    return {
      blobs: payload.blobs,
      versionedHashes: [...payload.versionedHashes],
      kzg: {
        blobToKzgCommitment: (blob) => lookup(blob).commitment,
        computeBlobKzgProof: (blob) => lookup(blob).proof,
      },
    };
  }

  private async sendNow(kind: string, call: ContractCall, payload?: BlobPayload): Promise<SendOutcome> {
    const client = this.m.client;
    const data = encodeFunctionData({ abi: call.abi, functionName: call.functionName, args: call.args } as never);
    let blob: { blobs: readonly Hex[]; versionedHashes: Hex[]; kzg: ViemKzg } | null = null;
    if (payload !== undefined) blob = this.sidecarsOf(payload);
    let gas: bigint;
    try {
      gas = await client.estimateContractGas({
        address: call.address,
        abi: call.abi,
        functionName: call.functionName,
        args: call.args,
        account: this.account,
        // The call reads blobhash(i): without the hashes it would see no blobs and revert.
        ...(blob === null ? {} : { blobVersionedHashes: blob.versionedHashes }),
      } as never);
    } catch (error) {
      const revert = revertOf(error);
      if (revert !== null) {
        return { kind: "refused", reason: `${revert.name}(${revert.args.map(String).join(", ")})`, error: revert.name };
      }
      return { kind: "failed", reason: `gas estimate: ${firstLine(error)}` };
    }
    let maxFeePerGas: bigint;
    let maxPriorityFeePerGas: bigint;
    let nonce: number;
    let chain: Chain;
    try {
      const fees = await client.estimateFeesPerGas();
      maxFeePerGas = fees.maxFeePerGas;
      maxPriorityFeePerGas = fees.maxPriorityFeePerGas;
      nonce = await client.getTransactionCount({ address: this.account.address, blockTag: "pending" });
      chain = await this.l1Chain();
    } catch (error) {
      return { kind: "failed", reason: `fees or nonce: ${firstLine(error)}` };
    }
    const cap = this.params.maxFeePerGasWei;
    if (maxFeePerGas > cap) {
      const block = await client.getBlock({ blockTag: "latest" }).catch(() => null);
      const baseFee = block?.baseFeePerGas ?? maxFeePerGas;
      if (baseFee + maxPriorityFeePerGas > cap) {
        return { kind: "fee_cap", reason: `L1 fees ${maxFeePerGas} wei/gas exceed the cap ${cap}` };
      }
      maxFeePerGas = cap;
    }
    let maxFeePerBlobGas = 0n;
    if (blob !== null) {
      let blobBaseFee: bigint;
      try {
        blobBaseFee = await client.getBlobBaseFee();
      } catch (error) {
        return { kind: "failed", reason: `blob base fee: ${firstLine(error)}` };
      }
      if (blobBaseFee > cap) {
        return { kind: "fee_cap", reason: `L1 blob base fee ${blobBaseFee} wei/gas exceeds the cap ${cap}` };
      }
      const wanted = blobBaseFee * BLOB_FEE_HEADROOM > 0n ? blobBaseFee * BLOB_FEE_HEADROOM : 1n;
      maxFeePerBlobGas = wanted > cap ? cap : wanted;
    }
    const wallet = createWalletClient({
      account: this.account,
      chain,
      transport: createL1Transport(this.m.rpcUrl, this.params.requestTimeoutMs),
    });
    const hashes: Hex[] = [];
    // 20% above the estimate: the state may change between the estimate and inclusion.
    const gasLimit = (gas * 6n) / 5n;
    for (let attempt = 0; attempt <= this.params.maxResubmits && !this.stopped; attempt++) {
      if (attempt > 0) {
        if (blob !== null) {
          const nextBlobFee = maxFeePerBlobGas * BLOB_FEE_BUMP;
          if (nextBlobFee > cap) {
            this.m.log.warn(
              { kind, nonce, blobFee: nextBlobFee.toString(), cap: cap.toString() },
              "L1 blob fee bump would exceed the cap",
            );
            break;
          }
          maxFeePerBlobGas = nextBlobFee;
        }
        const bumped = (maxFeePerGas * FEE_BUMP_NUM) / FEE_BUMP_DEN;
        const nextFee = bumped > cap ? cap : bumped;
        const nextTip = (maxPriorityFeePerGas * FEE_BUMP_NUM) / FEE_BUMP_DEN + 1n;
        // A replacement needs +10% (geth): up to the cap, and no further.
        if (nextFee * 10n < maxFeePerGas * 11n) {
          this.m.log.warn(
            { kind, nonce, fee: nextFee.toString(), cap: cap.toString() },
            "L1 fee bump would exceed the cap",
          );
          break;
        }
        maxFeePerGas = nextFee;
        maxPriorityFeePerGas = nextTip > nextFee ? nextFee : nextTip;
        this.m.metrics?.l1Resubmissions.inc({ kind });
        this.m.log.warn(
          {
            kind,
            nonce,
            attempt,
            maxFeePerGas: maxFeePerGas.toString(),
            ...(blob === null ? {} : { maxFeePerBlobGas: maxFeePerBlobGas.toString() }),
            pending: hashes,
          },
          "L1 transaction not mined in time: replacing it with higher fees",
        );
      }
      try {
        hashes.push(
          await wallet.sendTransaction({
            to: call.address,
            data,
            gas: gasLimit,
            nonce,
            maxFeePerGas,
            maxPriorityFeePerGas,
            chain,
            ...(blob === null ? {} : { type: "eip4844", blobs: blob.blobs, kzg: blob.kzg, maxFeePerBlobGas }),
          } as never),
        );
      } catch (error) {
        // A replacement can lose to the original being mined meanwhile ("nonce too low"): look for a receipt.
        const found = await this.findReceipt(hashes);
        if (found !== null) return this.minedOutcome(found, hashes.length - 1);
        if (hashes.length === 0) return { kind: "failed", reason: `send: ${firstLine(error)}` };
        this.m.log.warn({ kind, nonce, err: firstLine(error) }, "L1 replacement transaction refused");
      }
      const deadline = Date.now() + this.params.resubmitAfterMs;
      while (Date.now() < deadline && !this.stopped) {
        const found = await this.findReceipt(hashes);
        if (found !== null) return this.minedOutcome(found, hashes.length - 1);
        await this.sleep(RECEIPT_POLL_MS);
      }
    }
    const found = await this.findReceipt(hashes);
    if (found !== null) return this.minedOutcome(found, hashes.length - 1);
    if (this.stopped) {
      return { kind: "stopped", reason: `stopped with ${hashes.length} transaction(s) with nonce ${nonce} pending` };
    }
    return { kind: "failed", reason: `not mined after ${hashes.length} transaction(s) with nonce ${nonce}` };
  }

  private minedOutcome(
    r: { hash: Hex; status: string; blockNumber: bigint; gasUsed: bigint },
    resubmits: number,
  ): SendOutcome {
    if (r.status !== "success") return { kind: "failed", reason: `transaction ${r.hash} reverted` };
    return { kind: "mined", txHash: r.hash, l1Block: r.blockNumber, gasUsed: r.gasUsed, resubmits };
  }

  private async findReceipt(
    hashes: readonly Hex[],
  ): Promise<{ hash: Hex; status: string; blockNumber: bigint; gasUsed: bigint } | null> {
    for (const hash of hashes) {
      const receipt = await this.m.client.getTransactionReceipt({ hash }).catch(() => null);
      if (receipt !== null) {
        return { hash, status: receipt.status, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed };
      }
    }
    return null;
  }

  private async l1Chain(): Promise<Chain> {
    if (this.chain === null) this.chain = l1Chain(this.m.rpcUrl, await this.m.client.getChainId());
    return this.chain;
  }
}

/** The contract error a viem call failed with (the finality contracts' and the registry's), or null. */
export function revertOf(error: unknown): { name: string; args: readonly unknown[] } | null {
  const named = stakingRevert(error);
  if (named !== null) return named;
  // Raw revert data somewhere in the cause chain (estimateGas without an ABI match).
  let e: unknown = error;
  for (let i = 0; i < 8 && e !== null && typeof e === "object"; i++) {
    const data = (e as { data?: unknown }).data;
    if (typeof data === "string" && data.startsWith("0x") && data.length >= 10) {
      try {
        const decoded = decodeErrorResult({ abi: FINALITY_ERRORS as Abi, data: data as Hex });
        return { name: decoded.errorName, args: decoded.args ?? [] };
      } catch {
        return null;
      }
    }
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
