// Sending the operator's L1 transactions (the batcher, the output proposer and the work reports share the account and
// its nonces): queued so that nonces are consecutive, several in flight at once, simulated first so contract refusals
// come back named, with a fee cap, and replaced with higher fees when not mined in time. Blob transactions (EIP-4844
// batches) go the same way, with their KZG commitments and proofs computed off the main thread (src/l1/kzg.ts) and
// their blob fee capped and bumped too.
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
  type Transport,
  type Kzg as ViemKzg,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { Logger } from "../node/log.ts";
import { l1Chain, stakingRevert } from "./deploy.ts";
import { FINALITY_ERRORS } from "./deploy-finality.ts";
import type { Kzg } from "./kzg.ts";
import { createL1Transport, l1EndpointName } from "./status.ts";

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

/** One transaction of a sequence (L1Sender.sendSequence). */
export interface SendItem {
  /** Labels logs and metrics ("batch", "output"). */
  readonly kind: string;
  readonly call: ContractCall;
  /** A blob transaction (type 3) carrying these. */
  readonly blobs?: BlobPayload;
}

/** A transaction broadcast and not yet seen mined: what its replacements need. */
interface InFlight {
  readonly kind: string;
  readonly nonce: number;
  readonly chain: Chain;
  readonly wallet: ReturnType<typeof createWalletClient>;
  readonly to: Address;
  readonly data: Hex;
  readonly gasLimit: bigint;
  readonly blob: { blobs: readonly Hex[]; versionedHashes: Hex[]; kzg: ViemKzg } | null;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  maxFeePerBlobGas: bigint;
  /** Every version sent (the first, then its replacements): any of them may be the one mined. */
  readonly hashes: Hex[];
}

/**
 * Sends contract calls from the operator account (the batcher, the output proposer and the work reports share the
 * account and its nonces). Sends are queued: each waits until the ones before it are broadcast, so nonces are
 * consecutive, then waits for its receipt alongside them (several transactions of the account can be in flight).
 * Simulates (gas estimate) first, so contract refusals come back named and cost nothing.
 */
export class L1Sender {
  private readonly account;
  private chain: Chain | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /**
   * The nonce after the last one this sender broadcast, while that is ahead of the L1 node's pending count (a node
   * behind a load balancer may not count a transaction it was just sent). Forgotten when a send fails, so a nonce
   * that never reached a pool cannot leave a gap: the node's count is trusted again.
   */
  private nextNonce: number | null = null;
  /**
   * Transactions broadcast and not yet mined or given up, by pool: geth keeps an account's blob and other
   * transactions apart and refuses one kind while the other is pending, so a send of one kind waits for the other's.
   */
  private readonly inFlight = { blob: new Set<Promise<unknown>>(), plain: new Set<Promise<unknown>>() };
  private transport: Transport | undefined;

  constructor(
    private readonly params: L1SenderParams,
    private readonly m: {
      readonly rpcUrl: string;
      /** Endpoints used in turn when the one in use fails (config `l1.fallbackRpcUrls`). */
      readonly fallbackRpcUrls?: readonly string[];
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

  /** One transport for every send, so that a failover to a fallback endpoint lasts beyond the send that made it. */
  private walletTransport(): Transport {
    this.transport ??= createL1Transport(
      [this.m.rpcUrl, ...(this.m.fallbackRpcUrls ?? [])],
      this.params.requestTimeoutMs,
      false,
      {
        onSwitch: (from, to, error) =>
          this.m.log.warn(
            { from: l1EndpointName(from), to: l1EndpointName(to), error: error === null ? null : firstLine(error) },
            error === null
              ? "sending through the primary L1 endpoint again"
              : "L1 endpoint failed: sending through the next",
          ),
      },
    );
    return this.transport;
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Never throws. `kind` labels logs and metrics ("batch", "output"). With `blobs`, a blob transaction (type 3) that
   * carries them, in the same nonce sequence as the others. `stillWanted` is asked when the transaction's turn comes
   * (the queue may hold others): false withdraws it unsent. Resolves once the transaction is mined or given up.
   */
  async send(kind: string, call: ContractCall, blobs?: BlobPayload, stillWanted?: () => boolean): Promise<SendOutcome> {
    const [outcome] = await this.sendSequence([{ kind, call, ...(blobs === undefined ? {} : { blobs }) }], stillWanted);
    return outcome ?? { kind: "failed", reason: "no outcome" };
  }

  /**
   * Sends `items` in order with consecutive nonces, all in flight at once (a batcher's turn posts several batches
   * this way: they can be mined in one L1 block). Each is broadcast once the one before it was (and once the
   * account's transactions of the other kind, blob or not, are mined: geth pools them apart); an item that is not
   * broadcast (refused, fee cap, failure, or `stillWanted` false when its turn comes) withdraws the items after it,
   * so the sequence never leaves a later item waiting on a nonce that will not be used. Never throws; one outcome per
   * item, in order, once every broadcast item is mined or given up.
   */
  sendSequence(items: readonly SendItem[], stillWanted?: () => boolean): Promise<SendOutcome[]> {
    const turn = this.tail.then(async () => {
      const followed: Promise<SendOutcome>[] = [];
      let withdrawn: string | null = null;
      for (const item of items) {
        const blob = item.blobs !== undefined;
        const other = blob ? this.inFlight.plain : this.inFlight.blob;
        if (withdrawn === null && other.size > 0) await Promise.all(other);
        if (withdrawn === null && stillWanted !== undefined && !stillWanted()) {
          withdrawn = "no longer wanted when its turn came";
        }
        if (withdrawn !== null) {
          followed.push(Promise.resolve({ kind: "withdrawn", reason: withdrawn }));
          continue;
        }
        const sent = await this.broadcast(item).catch(
          (error: unknown): SendOutcome => ({ kind: "failed", reason: firstLine(error) }),
        );
        if ("nonce" in sent) {
          const mined = this.follow(sent).catch(
            (error: unknown): SendOutcome => ({ kind: "failed", reason: firstLine(error) }),
          );
          const pool = blob ? this.inFlight.blob : this.inFlight.plain;
          pool.add(mined);
          void mined.then(() => pool.delete(mined));
          followed.push(mined);
        } else {
          followed.push(Promise.resolve(sent));
          withdrawn = `not sent: the ${item.kind} transaction before it was not sent (${sent.kind})`;
        }
      }
      return followed;
    });
    // The next send's turn comes once these are broadcast, not mined.
    this.tail = turn.catch(() => undefined);
    return turn.then(
      async (followed) => {
        const outcomes = await Promise.all(followed);
        for (const [i, outcome] of outcomes.entries()) {
          this.m.metrics?.l1Transactions.inc({ kind: items[i]?.kind ?? "unknown", outcome: outcome.kind });
        }
        return outcomes;
      },
      (error: unknown) => items.map(() => ({ kind: "failed", reason: firstLine(error) }) as const),
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

  /**
   * Simulates, prices and broadcasts `item` with the next nonce. Returns the transaction in flight, or the outcome
   * when nothing was broadcast.
   */
  private async broadcast(item: SendItem): Promise<InFlight | SendOutcome> {
    const { kind, call } = item;
    if (this.stopped) return { kind: "stopped", reason: "the sender stopped before this transaction was sent" };
    const client = this.m.client;
    const data = encodeFunctionData({ abi: call.abi, functionName: call.functionName, args: call.args } as never);
    const blob = item.blobs === undefined ? null : this.sidecarsOf(item.blobs);
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
      const counted = await client.getTransactionCount({ address: this.account.address, blockTag: "pending" });
      nonce = this.nextNonce !== null && this.nextNonce > counted ? this.nextNonce : counted;
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
    const tx: InFlight = {
      kind,
      nonce,
      chain,
      wallet: createWalletClient({
        account: this.account,
        chain,
        transport: this.walletTransport(),
      }),
      to: call.address,
      data,
      // 20% above the estimate: the state may change between the estimate and inclusion.
      gasLimit: (gas * 6n) / 5n,
      blob,
      maxFeePerGas,
      maxPriorityFeePerGas,
      maxFeePerBlobGas,
      hashes: [],
    };
    try {
      tx.hashes.push(await this.sendVersion(tx));
    } catch (error) {
      this.nextNonce = null;
      return { kind: "failed", reason: `send: ${firstLine(error)}` };
    }
    this.nextNonce = nonce + 1;
    return tx;
  }

  private sendVersion(tx: InFlight): Promise<Hex> {
    return tx.wallet.sendTransaction({
      account: this.account,
      to: tx.to,
      data: tx.data,
      gas: tx.gasLimit,
      nonce: tx.nonce,
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
      chain: tx.chain,
      ...(tx.blob === null
        ? {}
        : { type: "eip4844", blobs: tx.blob.blobs, kzg: tx.blob.kzg, maxFeePerBlobGas: tx.maxFeePerBlobGas }),
    } as never);
  }

  /** Waits for `tx` to be mined, replacing it with higher fees each time it is not mined in time. */
  private async follow(tx: InFlight): Promise<SendOutcome> {
    const { kind, nonce, hashes } = tx;
    const cap = this.params.maxFeePerGasWei;
    for (let attempt = 0; attempt <= this.params.maxResubmits && !this.stopped; attempt++) {
      if (attempt > 0) {
        if (tx.blob !== null) {
          const nextBlobFee = tx.maxFeePerBlobGas * BLOB_FEE_BUMP;
          if (nextBlobFee > cap) {
            this.m.log.warn(
              { kind, nonce, blobFee: nextBlobFee.toString(), cap: cap.toString() },
              "L1 blob fee bump would exceed the cap",
            );
            break;
          }
          tx.maxFeePerBlobGas = nextBlobFee;
        }
        const bumped = (tx.maxFeePerGas * FEE_BUMP_NUM) / FEE_BUMP_DEN;
        const nextFee = bumped > cap ? cap : bumped;
        const nextTip = (tx.maxPriorityFeePerGas * FEE_BUMP_NUM) / FEE_BUMP_DEN + 1n;
        // A replacement needs +10% (geth): up to the cap, and no further.
        if (nextFee * 10n < tx.maxFeePerGas * 11n) {
          this.m.log.warn(
            { kind, nonce, fee: nextFee.toString(), cap: cap.toString() },
            "L1 fee bump would exceed the cap",
          );
          break;
        }
        tx.maxFeePerGas = nextFee;
        tx.maxPriorityFeePerGas = nextTip > nextFee ? nextFee : nextTip;
        this.m.metrics?.l1Resubmissions.inc({ kind });
        this.m.log.warn(
          {
            kind,
            nonce,
            attempt,
            maxFeePerGas: tx.maxFeePerGas.toString(),
            ...(tx.blob === null ? {} : { maxFeePerBlobGas: tx.maxFeePerBlobGas.toString() }),
            pending: hashes,
          },
          "L1 transaction not mined in time: replacing it with higher fees",
        );
        try {
          hashes.push(await this.sendVersion(tx));
        } catch (error) {
          // A replacement can lose to the original being mined meanwhile ("nonce too low"): look for a receipt.
          const found = await this.findReceipt(hashes);
          if (found !== null) return this.minedOutcome(found, hashes.length - 1);
          this.m.log.warn({ kind, nonce, err: firstLine(error) }, "L1 replacement transaction refused");
        }
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
    // Given up: the node's pending count is trusted again for the next nonce.
    this.nextNonce = null;
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
