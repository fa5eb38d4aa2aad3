// The batcher: posts every committed height to the L1 BatchInbox (docs/hard-finality.md "Batches"), and the L1
// transaction sender it shares with the output proposer (src/l1/outputs.ts).
//
// Who posts: the validators of the current set take turns like the work reports do. The turn holding the next inbox
// index (BatchInbox.batchCount at the L1 head; turns below) is due to the member at set index (turn mod n) as soon as
// the range is ready, to the next member `staggerMs` later, and so on; each first re-reads the inbox at the L1 head
// and skips when the range has been posted meanwhile. "Ready" is read from the chain, so every node agrees on it: the
// oldest pending block is older than `batchMaxAgeMs` (header timestamps), or `batchMinBlocks` are pending. Pending
// heights are those after the last posted one up to head - 1: below the head, the store's certificate is the
// canonical one (the next block carries it), so a batch never holds a certificate that a later block replaces.
//
// A turn is `batchesPerTurn` consecutive inbox indexes: turn r ([r * k, (r + 1) * k)) is due to member r mod n, so
// members share the posting (and its gas) in runs of k batches; every validator must use the same k, as it uses the
// same batchMinBlocks, batchMaxAgeMs and staggerMs. A pass posts what is left of its turn as consecutive batches, one
// L1 transaction each with consecutive nonces, all in flight at once (L1Sender.sendSequence): the first, then each
// next one that is due as well (full, or ready by the same rule).
//
// The inbox does not order or dedupe ranges; the posted height is the highest height reached contiguously from 1 by
// the BatchSubmitted and BlobBatchSubmitted events. A batch goes as calldata or in blobs (l1.batchTransport, "auto":
// whichever is cheaper per byte at the moment; blobs also when one block is too large for calldata). Events in blocks
// the L1 mirror has not confirmed are re-read on every pass, so a batch reorged out of the L1 is posted again.

import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { type Address, decodeFunctionData, type Hex, keccak256, type PublicClient } from "viem";
import { bytesEqual, fromHex } from "../../consensus/bytes.ts";
import { encodeCertificate } from "../../consensus/certificate.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import { BatchInbox } from "../../staking-contracts/artifacts.ts";
import { decodeBlockHead } from "../chain/block.ts";
import type { Logger } from "../node/log.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import {
  type Batch,
  type BatchError,
  type BatchItem,
  type BatchTransport,
  type BatchTransportMode,
  batchDataToBlobs,
  chooseBatchTransport,
  decodeBatchData,
  decodeBlobBatch,
  INBOX_MAX_BLOBS,
  MAX_BATCH_BLOCKS,
  MAX_BATCH_DATA_BYTES,
  MAX_BLOB_BATCH_DATA_BYTES,
  type PackedBatch,
  packBatch,
} from "./batch.ts";
import { type BlobFetchResult, fetchEventBlobs } from "./beacon.ts";
import type { Kzg } from "./kzg.ts";
import { PassInFlight } from "./passes.ts";
import { type BlobPayload, firstLine, type L1Sender } from "./sender.ts";

// ---------------------------------------------------------------------------------------------------------------------
// Metrics

export interface FinalityMetrics {
  readonly batcherPostedHeight: Gauge;
  readonly batcherPendingBlocks: Gauge;
  readonly batcherBatches: Counter<"outcome">;
  readonly batcherBatchBytes: Histogram;
  readonly batcherBatchBlocks: Histogram;
  readonly batcherBlobs: Counter;
  readonly batcherGarbageBatches: Counter;
  readonly l1Transactions: Counter<"kind" | "outcome">;
  readonly l1Resubmissions: Counter<"kind">;
  readonly outputHeight: Gauge;
  readonly outputProposals: Counter<"outcome">;
  readonly finalizedHeight: Gauge;
  readonly derivedHeight: Gauge;
  readonly derivedBatches: Counter<"outcome">;
}

/** Registered with the node's other metrics (src/node/metrics.ts), documented in docs/metrics.md. */
export function createFinalityMetrics(registry: Registry): FinalityMetrics {
  const r = [registry];
  return {
    batcherPostedHeight: new Gauge({
      name: "dcn_batcher_posted_height",
      help: "Highest L2 height posted to the L1 batch inbox contiguously from height 1 (at the L1 head)",
      registers: r,
    }),
    batcherPendingBlocks: new Gauge({
      name: "dcn_batcher_pending_blocks",
      help: "Committed heights below the head not yet posted to the batch inbox",
      registers: r,
    }),
    batcherBatches: new Counter({
      name: "dcn_batcher_batches_total",
      help: "Batches this node tried to post, by outcome",
      labelNames: ["outcome"],
      registers: r,
    }),
    batcherBatchBytes: new Histogram({
      name: "dcn_batcher_batch_bytes",
      help: "Compressed size of each batch this node posted",
      buckets: [1024, 4096, 16_384, 32_768, 65_536, 98_304, 122_880, 253_952, 507_904, 761_855],
      registers: r,
    }),
    batcherBatchBlocks: new Histogram({
      name: "dcn_batcher_batch_blocks",
      help: "Blocks in each batch this node posted",
      buckets: [1, 4, 16, 64, 256, 1024, 4096],
      registers: r,
    }),
    batcherBlobs: new Counter({
      name: "dcn_batcher_blobs_total",
      help: "Blobs in the blob batches this node posted (EIP-4844)",
      registers: r,
    }),
    batcherGarbageBatches: new Counter({
      name: "dcn_batcher_garbage_batches_total",
      help: "Batches in the inbox whose data is not this chain's blocks (their heights are posted again)",
      registers: r,
    }),
    l1Transactions: new Counter({
      name: "dcn_l1_transactions_total",
      help: "L1 transactions of the batcher and the output proposer, by kind and outcome",
      labelNames: ["kind", "outcome"],
      registers: r,
    }),
    l1Resubmissions: new Counter({
      name: "dcn_l1_resubmissions_total",
      help: "L1 transactions sent again with the same nonce and higher fees because they were not mined in time",
      labelNames: ["kind"],
      registers: r,
    }),
    outputHeight: new Gauge({
      name: "dcn_output_height",
      help: "L2 height of the newest output in the L1 output oracle (at the L1 head)",
      registers: r,
    }),
    outputProposals: new Counter({
      name: "dcn_output_proposals_total",
      help: "Outputs this node tried to propose, by outcome",
      labelNames: ["outcome"],
      registers: r,
    }),
    finalizedHeight: new Gauge({
      name: "dcn_finalized_height",
      help: "Highest L2 height covered by an output in an L1-finalized block (the RPC's finalized tag)",
      registers: r,
    }),
    derivedHeight: new Gauge({
      name: "dcn_derive_height",
      help: "Highest L2 height this node committed from L1 batches (derivation)",
      registers: r,
    }),
    derivedBatches: new Counter({
      name: "dcn_derive_batches_total",
      help: "L1 batches read by derivation, by outcome",
      labelNames: ["outcome"],
      registers: r,
    }),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Turns

/**
 * This node's place in the rotation for the job numbered `rotation` (batch index, output height / interval): 0 = its
 * turn now, k = after k staggers; null when it is not in `set`.
 */
export function turnOf(set: ValidatorSet, ownAddress: Hex, rotation: bigint): number | null {
  const n = set.validators.length;
  const own = set.validators.findIndex((v) => v.address.toLowerCase() === ownAddress.toLowerCase());
  if (own < 0 || n === 0) return null;
  return (own - Number(rotation % BigInt(n)) + n) % n;
}

/**
 * Whether a member whose slot began at `slotMs` may still send: within the first half of its stagger, or always when
 * it is the last of `members` in the rotation (or there is no stagger).
 */
export function withinPostingWindow(
  nowMs: number,
  slotMs: number,
  staggerMs: number,
  turn: number,
  members: number,
): boolean {
  if (staggerMs <= 0 || turn >= members - 1) return true;
  return nowMs - slotMs <= staggerMs / 2;
}

/** Height ranges seen in the inbox: the contiguous prefix from height 1 and a bounded list of ranges beyond a gap. */
export class PostedRanges {
  contiguous = 0;
  private ahead: { first: number; last: number }[] = [];
  constructor(private readonly maxAhead = 1024) {}

  add(first: number, last: number): void {
    if (last <= this.contiguous) return;
    if (first <= this.contiguous + 1) {
      this.contiguous = last;
      this.absorb();
      return;
    }
    this.ahead.push({ first, last });
    this.ahead.sort((a, b) => a.first - b.first);
    // Far ahead of a gap: forget the farthest (a later pass reads it again once the gap is filled).
    if (this.ahead.length > this.maxAhead) this.ahead.length = this.maxAhead;
  }

  clone(): PostedRanges {
    const c = new PostedRanges(this.maxAhead);
    c.contiguous = this.contiguous;
    c.ahead = this.ahead.map((r) => ({ ...r }));
    return c;
  }

  private absorb(): void {
    let changed = true;
    while (changed) {
      changed = false;
      this.ahead = this.ahead.filter((r) => {
        if (r.last <= this.contiguous) return false;
        if (r.first <= this.contiguous + 1) {
          this.contiguous = r.last;
          changed = true;
          return false;
        }
        return true;
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Reading the inbox

/** L1 blocks per eth_getLogs request (providers commonly cap ranges at 1k-10k). */
export const LOG_RANGE_BLOCKS = 2_000n;

interface InboxEventCommon {
  readonly index: bigint;
  readonly firstHeight: number;
  readonly lastHeight: number;
  readonly l1Block: bigint;
  readonly txHash: Hex;
  readonly logIndex: number;
}

/** A BatchSubmitted (calldata: the data is the transaction's input) or BlobBatchSubmitted (blobs) event. */
export type InboxBatchEvent =
  | (InboxEventCommon & { readonly kind: "calldata"; readonly dataHash: Hex })
  | (InboxEventCommon & { readonly kind: "blobs"; readonly blobHashes: readonly Hex[] });

/** Batch events (calldata and blob) of `inbox` in [fromBlock, toBlock], in L1 order, in chunks of LOG_RANGE_BLOCKS. */
export async function readBatchEvents(
  client: PublicClient,
  inbox: Address,
  fromBlock: bigint,
  toBlock: bigint,
): Promise<InboxBatchEvent[]> {
  const out: InboxBatchEvent[] = [];
  for (let from = fromBlock; from <= toBlock; from += LOG_RANGE_BLOCKS) {
    const to = from + LOG_RANGE_BLOCKS - 1n < toBlock ? from + LOG_RANGE_BLOCKS - 1n : toBlock;
    // Both events in one request, so they come back in L1 order.
    const logs = await client.getContractEvents({
      address: inbox,
      abi: BatchInbox.abi,
      fromBlock: from,
      toBlock: to,
      strict: true,
    });
    for (const log of logs) {
      if (log.eventName !== "BatchSubmitted" && log.eventName !== "BlobBatchSubmitted") continue;
      const a = log.args as {
        index: bigint;
        firstHeight: bigint;
        lastHeight: bigint;
        dataHash?: Hex;
        blobHashes?: readonly Hex[];
      };
      if (log.blockNumber === null || log.transactionHash === null || log.logIndex === null) continue;
      // Heights beyond 2^53 cannot be ours (nor decoded by the node): skip rather than lose precision.
      if (a.lastHeight > BigInt(Number.MAX_SAFE_INTEGER)) continue;
      const common: InboxEventCommon = {
        index: a.index,
        firstHeight: Number(a.firstHeight),
        lastHeight: Number(a.lastHeight),
        l1Block: log.blockNumber,
        txHash: log.transactionHash,
        logIndex: log.logIndex,
      };
      if (log.eventName === "BatchSubmitted" && a.dataHash !== undefined) {
        out.push({ ...common, kind: "calldata", dataHash: a.dataHash });
      } else if (a.blobHashes !== undefined && a.blobHashes.length >= 1 && a.blobHashes.length <= INBOX_MAX_BLOBS) {
        out.push({ ...common, kind: "blobs", blobHashes: a.blobHashes });
      }
    }
  }
  return out;
}

/**
 * The batch a calldata event's transaction carries (BatchInbox takes only direct calls from the sender: the data is
 * the transaction's input), or why it carries none. Throws when the L1 cannot answer.
 */
export async function readCalldataBatch(
  client: PublicClient,
  inbox: Address,
  event: InboxBatchEvent & { kind: "calldata" },
): Promise<{ readonly ok: true; readonly batch: Batch } | { readonly ok: false; readonly reason: string }> {
  const tx = await client.getTransaction({ hash: event.txHash });
  if (tx.to?.toLowerCase() !== inbox.toLowerCase()) return { ok: false, reason: "not a direct call to the inbox" };
  let data: Hex;
  try {
    const call = decodeFunctionData({ abi: BatchInbox.abi, data: tx.input });
    if (call.functionName !== "submitBatch") return { ok: false, reason: `${call.functionName} is not submitBatch` };
    data = (call.args as readonly [bigint, bigint, Hex])[2];
  } catch (error) {
    return { ok: false, reason: `input does not decode: ${firstLine(error)}` };
  }
  if (keccak256(data) !== event.dataHash)
    return { ok: false, reason: "input data does not match the event's dataHash" };
  try {
    return { ok: true, batch: await decodeBatchData(fromHex(data)) };
  } catch (error) {
    return { ok: false, reason: `${(error as BatchError).code ?? "error"}: ${firstLine(error)}` };
  }
}

/**
 * Whether a batch event's range counts as posted: `posted` (it holds this chain's blocks), `garbage` (it does not:
 * the range is posted again), `unchecked` (cannot be told now; counts as posted).
 */
export type PostedVerdict = "posted" | "garbage" | "unchecked";

/** Verdicts kept (by transaction and log index), so an unconfirmed event re-read at every pass is checked once. */
const MAX_VERDICTS = 4_096;
/**
 * Batches in L1 blocks older than this (about a day of 12 s slots) are not checked: the members of that time checked
 * them and posted again what was garbage. A node that starts reads every batch since genesis, and checking each would
 * fetch each.
 */
export const CHECK_WITHIN_L1_BLOCKS = 7_200n;

/**
 * The inbox's posted height at the L1 head: events up to the confirmed block are read once and kept; those above it
 * are read again on every call (they may still be reorged away). With `check`, an event of the last
 * CHECK_WITHIN_L1_BLOCKS whose batch is garbage does not count.
 */
export class InboxReader {
  private readonly confirmed = new PostedRanges();
  private scannedTo: bigint;
  private readonly verdicts = new Map<string, PostedVerdict>();

  constructor(
    private readonly m: {
      readonly client: PublicClient;
      readonly inbox: Address;
      /** The first L1 block that may hold a batch of this chain (the genesis L1 origin). */
      readonly fromBlock: bigint;
      readonly confirmedHead: () => bigint | null;
      readonly check?: (event: InboxBatchEvent) => Promise<PostedVerdict>;
    },
  ) {
    this.scannedTo = m.fromBlock - 1n;
  }

  /** The posted height by the batches of confirmed L1 blocks alone (0 before the first read): no reorg undoes it. */
  get confirmedPostedHeight(): number {
    return this.confirmed.contiguous;
  }

  async postedHeight(): Promise<{ height: number; l1Head: bigint }> {
    const head = await this.m.client.getBlockNumber({ cacheTime: 0 });
    const confirmed = this.m.confirmedHead() ?? this.m.fromBlock - 1n;
    const stable = confirmed < head ? confirmed : head;
    if (stable > this.scannedTo) {
      for (const e of await readBatchEvents(this.m.client, this.m.inbox, this.scannedTo + 1n, stable)) {
        if (await this.counts(e, head)) this.confirmed.add(e.firstHeight, e.lastHeight);
      }
      this.scannedTo = stable;
    }
    const ranges = this.confirmed.clone();
    if (head > this.scannedTo) {
      for (const e of await readBatchEvents(this.m.client, this.m.inbox, this.scannedTo + 1n, head)) {
        if (await this.counts(e, head)) ranges.add(e.firstHeight, e.lastHeight);
      }
    }
    return { height: ranges.contiguous, l1Head: head };
  }

  private async counts(event: InboxBatchEvent, l1Head: bigint): Promise<boolean> {
    // Ranges at or below the contiguous posted height change nothing: not checked; nor are old batches.
    if (this.m.check === undefined || event.lastHeight <= this.confirmed.contiguous) return true;
    if (l1Head - event.l1Block > CHECK_WITHIN_L1_BLOCKS) return true;
    const key = `${event.txHash}:${event.logIndex}`;
    let verdict = this.verdicts.get(key);
    if (verdict === undefined) {
      verdict = await this.m.check(event);
      if (verdict !== "unchecked") {
        this.verdicts.set(key, verdict);
        if (this.verdicts.size > MAX_VERDICTS) {
          for (const old of this.verdicts.keys()) {
            this.verdicts.delete(old);
            if (this.verdicts.size <= MAX_VERDICTS) break;
          }
        }
      }
    }
    return verdict !== "garbage";
  }
}

/**
 * The batcher's check of a posted batch (InboxReader's `check`): a batch of heights below this node's head is
 * `posted` only when its blocks are this node's, byte for byte, and its last certificate is this node's canonical
 * one, else `garbage` (logged and counted). `unchecked` (counts as posted, as before the check): ranges this node has
 * not committed below its head, and blob batches when there is no beacon URL or the beacon node cannot serve them now
 * (a beacon outage does not stop the batcher).
 */
export function postedBatchCheck(m: {
  readonly client: PublicClient;
  readonly inbox: Address;
  readonly chainId: bigint;
  readonly store: Pick<ChainStore, "headHeight" | "getRange">;
  /** The Beacon API (l1.beaconUrl) and KZG, to read blob batches; null: blob batches are not checked. */
  readonly beacon: { readonly url: string; readonly kzg: () => Kzg } | null;
  readonly log: Logger;
  readonly metrics: Pick<FinalityMetrics, "batcherGarbageBatches">;
}): (event: InboxBatchEvent) => Promise<PostedVerdict> {
  return async (event) => {
    if (event.lastHeight >= m.store.headHeight) return "unchecked";
    const garbage = (reason: string): PostedVerdict => {
      m.metrics.batcherGarbageBatches.inc();
      m.log.warn(
        { index: event.index.toString(), first: event.firstHeight, last: event.lastHeight, tx: event.txHash, reason },
        "a posted batch does not hold this chain's blocks: its heights count as not posted",
      );
      return "garbage";
    };
    let batch: Batch;
    if (event.kind === "calldata") {
      const read = await readCalldataBatch(m.client, m.inbox, event);
      if (!read.ok) return garbage(read.reason);
      batch = read.batch;
    } else {
      if (m.beacon === null) return "unchecked";
      let fetched: BlobFetchResult;
      try {
        fetched = await fetchEventBlobs({ client: m.client, beaconUrl: m.beacon.url, kzg: m.beacon.kzg }, event);
      } catch (error) {
        m.log.debug({ index: event.index.toString(), err: firstLine(error) }, "posted blob batch not checked");
        return "unchecked";
      }
      // The blobs are on the L1's data-availability layer: a beacon answer that does not match is the beacon's fault.
      if (!fetched.ok) return "unchecked";
      try {
        batch = await decodeBlobBatch(fetched.blobs);
      } catch (error) {
        return garbage(`${(error as BatchError).code ?? "error"}: ${firstLine(error)}`);
      }
    }
    if (batch.chainId !== m.chainId) return garbage(`a batch of chain ${batch.chainId}`);
    const count = event.lastHeight - event.firstHeight + 1;
    if (batch.firstHeight !== event.firstHeight || batch.blocks.length !== count) {
      return garbage(`holds heights ${batch.firstHeight}..${batch.firstHeight + batch.blocks.length - 1}`);
    }
    // Below the head, so the store has every height (read in runs: getRange returns at most 4096).
    let last: BatchItem | undefined;
    for (let height = event.firstHeight; height <= event.lastHeight; ) {
      const own = await m.store.getRange(height, event.lastHeight - height + 1, Number.MAX_SAFE_INTEGER);
      if (own.length === 0) return "unchecked";
      for (const item of own) {
        const posted = batch.blocks[item.height - event.firstHeight] as Uint8Array;
        if (!bytesEqual(item.block, posted)) return garbage(`block ${item.height} is not this chain's`);
      }
      last = own.at(-1);
      height += own.length;
    }
    if (last === undefined || !bytesEqual(encodeCertificate(last.certificate), batch.lastCertificate)) {
      return garbage(`the certificate of height ${event.lastHeight} is not the canonical one`);
    }
    return "posted";
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The batcher

export interface BatcherParams {
  /** Post once this many heights are pending... */
  readonly batchMinBlocks: number;
  /** ...or once the oldest pending block is this old (by its header timestamp). */
  readonly batchMaxAgeMs: number;
  /** Between two validators' turns. */
  readonly staggerMs: number;
  /** How often the batcher looks at the inbox and the chain. */
  readonly pollMs: number;
  /** Calldata, blobs, or whichever is cheaper per byte when the batch is posted (config l1.batchTransport). */
  readonly transport: BatchTransportMode;
  /**
   * Inbox indexes per turn (config l1.batchesPerTurn): a member posts up to this many batches at once, one L1
   * transaction each, all in flight (under load, more than one batch per L1 block).
   */
  readonly batchesPerTurn: number;
}

export type BatcherPhase = "idle" | "waiting" | "posting" | "backoff";

export interface BatcherStatus {
  readonly postedHeight: number;
  readonly pendingBlocks: number;
  readonly phase: BatcherPhase;
  readonly lastTx: Hex | null;
  /** How the last batch this node posted went. */
  readonly lastTransport: BatchTransport | null;
  readonly lastError: string | null;
}

export class Batcher {
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly passes = new PassInFlight();
  private failures = 0;
  private nextAttemptMs = 0;
  private state: {
    posted: number;
    pending: number;
    phase: BatcherPhase;
    lastTx: Hex | null;
    lastTransport: BatchTransport | null;
    lastError: string | null;
  } = { posted: 0, pending: 0, phase: "idle", lastTx: null, lastTransport: null, lastError: null };

  constructor(
    private readonly params: BatcherParams,
    private readonly m: {
      readonly chainId: bigint;
      readonly inbox: Address;
      readonly reader: InboxReader;
      readonly client: PublicClient;
      readonly store: Pick<ChainStore, "headHeight" | "getBlock" | "getRange" | "validatorSetFor">;
      readonly sender: L1Sender;
      /** This validator's consensus address (its place in the rotation). */
      readonly ownAddress: Hex;
      readonly log: Logger;
      readonly metrics: FinalityMetrics;
      readonly nowMs: () => number;
    },
  ) {
    if (!(params.batchMinBlocks >= 1 && params.batchMinBlocks <= MAX_BATCH_BLOCKS)) {
      throw new RangeError(`batchMinBlocks must be 1..${MAX_BATCH_BLOCKS}, got ${params.batchMinBlocks}`);
    }
    if (!(Number.isInteger(params.batchesPerTurn) && params.batchesPerTurn >= 1)) {
      throw new RangeError(`batchesPerTurn must be a positive integer, got ${params.batchesPerTurn}`);
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.params.pollMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  status(): BatcherStatus {
    return {
      postedHeight: this.state.posted,
      pendingBlocks: this.state.pending,
      phase: this.state.phase,
      lastTx: this.state.lastTx,
      lastTransport: this.state.lastTransport,
      lastError: this.state.lastError,
    };
  }

  /** One pass (the timer calls it; tests may too). Never throws. */
  async tick(): Promise<void> {
    if (this.timer === null) return;
    await this.passes.run(() => this.guardedPass());
  }

  /** Resolves when the pass in flight, if any, has ended: the node waits for it (a while) before closing the store. */
  /**
   * The lowest height this batcher may still post (history pruning keeps it): the first one no batch in a confirmed
   * L1 block holds. A batch in a block the L1 may still reorg away would have to be posted again.
   */
  historyNeededFrom(): number {
    return this.m.reader.confirmedPostedHeight + 1;
  }

  idle(): Promise<void> {
    return this.passes.idle();
  }

  private async guardedPass(): Promise<void> {
    try {
      await this.pass();
    } catch (error) {
      // Stopped meanwhile, and the node closed the store or the L1 sender under a pass that outlived its wait; the
      // next start reads what was posted from the L1.
      if (this.timer === null) {
        this.m.log.debug({ err: firstLine(error) }, "batcher pass cut short: the node is stopping");
        return;
      }
      this.state.lastError = firstLine(error);
      this.m.log.warn({ err: firstLine(error) }, "batcher pass failed");
    }
  }

  private async pass(): Promise<void> {
    const { height: posted } = await this.m.reader.postedHeight();
    const head = this.m.store.headHeight;
    // Below the head only: the head's certificate may still be replaced by the one the next block carries.
    const last = head - 1;
    const pending = Math.max(0, last - posted);
    this.state.posted = posted;
    this.state.pending = pending;
    this.m.metrics.batcherPostedHeight.set(posted);
    this.m.metrics.batcherPendingBlocks.set(pending);
    if (pending === 0) {
      this.state.phase = "idle";
      return;
    }
    const now = this.m.nowMs();
    if (now < this.nextAttemptMs) {
      this.state.phase = "backoff";
      return;
    }
    // Readiness from two headers; the blocks themselves are read only when this node is about to post.
    const firstBytes = await this.m.store.getBlock(posted + 1);
    if (firstBytes === undefined) return;
    const timestampOf = (bytes: Uint8Array) => decodeBlockHead(bytes).header.timestampMs;
    let readyAtMs = timestampOf(firstBytes) + this.params.batchMaxAgeMs;
    if (pending >= this.params.batchMinBlocks) {
      const nth = await this.m.store.getBlock(posted + this.params.batchMinBlocks);
      if (nth !== undefined) readyAtMs = Math.min(readyAtMs, timestampOf(nth));
    }
    if (now < readyAtMs) {
      this.state.phase = "waiting";
      return;
    }
    const batchCount = (await this.m.client.readContract({
      address: this.m.inbox,
      abi: BatchInbox.abi,
      functionName: "batchCount",
    })) as bigint;
    const set = this.m.store.validatorSetFor(this.m.store.headHeight + 1);
    // Turn r is inbox indexes [r * batchesPerTurn, (r + 1) * batchesPerTurn): what is left of it may go now.
    const perTurn = BigInt(this.params.batchesPerTurn);
    const turn = turnOf(set, this.m.ownAddress, batchCount / perTurn);
    const leftInTurn = Number(perTurn - (batchCount % perTurn));
    if (turn === null) {
      this.state.phase = "idle";
      return;
    }
    const slotMs = readyAtMs + turn * this.params.staggerMs;
    if (now < slotMs) {
      this.state.phase = "waiting";
      return;
    }
    const transport = await this.transportFor(posted + 1);
    if (transport === null) {
      this.state.lastError = "l1.batchTransport is blobs, but the L1's latest block has no blob fields (before Cancun)";
      this.m.metrics.batcherBatches.inc({ outcome: "no_blobs" });
      this.m.log.error({}, this.state.lastError);
      this.backoff();
      return;
    }
    const maxDataBytes = transport === "blobs" ? MAX_BLOB_BATCH_DATA_BYTES : MAX_BATCH_DATA_BYTES;
    const batches = await this.packTurn(posted, last, transport, now, leftInTurn);
    if (batches.length === 0) {
      this.state.lastError = `block ${posted + 1} does not fit a ${maxDataBytes}-byte ${transport} batch`;
      this.m.metrics.batcherBatches.inc({ outcome: "too_large" });
      this.m.log.error({ height: posted + 1, bytes: firstBytes.length, transport }, "block too large for a batch");
      this.backoff();
      return;
    }
    // KZG commitments and proofs take seconds: before the last look at the inbox, not after it.
    const payloads: (BlobPayload | null)[] = [];
    for (const packed of batches) {
      if (transport !== "blobs") {
        payloads.push(null);
        continue;
      }
      try {
        payloads.push(await this.m.sender.prepareBlobs(batchDataToBlobs(packed.data)));
      } catch (error) {
        this.m.log.warn({ first: packed.firstHeight, err: firstLine(error) }, "blob batch not prepared");
        if (payloads.length > 0) break;
        this.state.lastError = `KZG: ${firstLine(error)}`;
        this.m.metrics.batcherBatches.inc({ outcome: "failed" });
        this.backoff();
        return;
      }
    }
    batches.length = payloads.length;
    const first = batches[0] as PackedBatch;
    // Someone may have posted since the pass began (the previous poster's transaction was mined late).
    const again = await this.m.reader.postedHeight();
    if (again.height >= first.firstHeight) return;
    // Post only in the first half of this node's slot (KZG and the sender's queue take time): later, the next member
    // could find the range still unposted (this transaction not mined yet) and post it too. The last member of the
    // rotation has no successor and always posts, so some member posts. Asked again when the sender's turn comes.
    const members = set.validators.length;
    const inWindow = () => withinPostingWindow(this.m.nowMs(), slotMs, this.params.staggerMs, turn, members);
    if (!inWindow()) {
      this.windowPassed(first.firstHeight, turn, slotMs);
      return;
    }
    this.state.phase = "posting";
    for (const [k, packed] of batches.entries()) {
      const blobs = payloads[k] ?? null;
      this.m.log.info(
        {
          first: packed.firstHeight,
          last: packed.lastHeight,
          bytes: packed.data.length,
          rawBytes: packed.rawBytes,
          compressions: packed.compressions,
          transport,
          ...(blobs === null ? {} : { blobs: blobs.blobs.length }),
          turn,
          batchIndex: (batchCount + BigInt(k)).toString(),
        },
        "posting a batch to L1",
      );
    }
    // One transaction per batch, consecutive nonces, all in flight at once: they can be mined in one L1 block.
    const outcomes = await this.m.sender.sendSequence(
      batches.map((packed, k) => {
        const range = [BigInt(packed.firstHeight), BigInt(packed.lastHeight)] as const;
        const blobs = payloads[k] ?? null;
        return blobs === null
          ? {
              kind: "batch",
              call: {
                address: this.m.inbox,
                abi: BatchInbox.abi,
                functionName: "submitBatch",
                args: [...range, `0x${Buffer.from(packed.data).toString("hex")}`],
              },
            }
          : {
              kind: "blob_batch",
              call: {
                address: this.m.inbox,
                abi: BatchInbox.abi,
                functionName: "submitBlobBatch",
                args: [...range, BigInt(blobs.blobs.length)],
              },
              blobs,
            };
      }),
      inWindow,
    );
    let failed = false;
    let allMined = true;
    for (const [k, packed] of batches.entries()) {
      const outcome = outcomes[k] ?? { kind: "failed", reason: "no outcome" };
      const blobs = payloads[k] ?? null;
      if (outcome.kind === "withdrawn") {
        // After batches all sent, the window closed; after one not sent, that one's outcome says why.
        if (allMined) this.windowPassed(packed.firstHeight, turn, slotMs);
        break;
      }
      if (outcome.kind !== "mined") allMined = false;
      this.m.metrics.batcherBatches.inc({ outcome: outcome.kind });
      switch (outcome.kind) {
        case "mined":
          this.state.lastTx = outcome.txHash;
          this.state.lastTransport = transport;
          this.m.metrics.batcherBatchBytes.observe(packed.data.length);
          if (blobs !== null) this.m.metrics.batcherBlobs.inc(blobs.blobs.length);
          this.m.metrics.batcherBatchBlocks.observe(packed.lastHeight - packed.firstHeight + 1);
          this.m.log.info(
            {
              first: packed.firstHeight,
              last: packed.lastHeight,
              tx: outcome.txHash,
              transport,
              l1Block: outcome.l1Block.toString(),
              gas: outcome.gasUsed.toString(),
              resubmits: outcome.resubmits,
            },
            "batch posted to L1",
          );
          break;
        case "stopped":
          this.m.log.info(
            { first: packed.firstHeight, last: packed.lastHeight, reason: outcome.reason },
            "batch left pending: the node is stopping",
          );
          break;
        case "refused":
        case "fee_cap":
        case "failed":
          failed = true;
          this.state.lastError = outcome.reason;
          this.m.log.warn(
            { first: packed.firstHeight, last: packed.lastHeight, outcome: outcome.kind, reason: outcome.reason },
            "batch not posted",
          );
          break;
      }
    }
    if (failed) {
      this.backoff();
      return;
    }
    if (outcomes.some((o) => o.kind === "mined")) {
      this.failures = 0;
      this.state.lastError = null;
    }
    if (this.state.phase === "posting") this.state.phase = "idle";
  }

  /**
   * The batches this pass posts, consecutive from `posted + 1`: the first always (empty only when block posted + 1
   * alone does not fit `transport`), then up to `max` in all while the next one is due as well: full (blocks are left
   * after it), or ready by the age and count rule.
   */
  private async packTurn(
    posted: number,
    last: number,
    transport: BatchTransport,
    now: number,
    max: number,
  ): Promise<PackedBatch[]> {
    const maxDataBytes = transport === "blobs" ? MAX_BLOB_BATCH_DATA_BYTES : MAX_BATCH_DATA_BYTES;
    // Brotli shrinks blocks by 1.6x (random transactions) to ~5x (empty blocks): this much raw input always fills a
    // calldata batch (8x six blobs: a full blob batch of any but the most compressible blocks), and the store's
    // first block comes back even when it alone is larger.
    const readBytes = transport === "calldata" ? 32 * MAX_BATCH_DATA_BYTES : 8 * MAX_BLOB_BATCH_DATA_BYTES;
    const batches: PackedBatch[] = [];
    // Blocks read and not packed yet: the next batch starts with them, and the store is read only for the rest.
    let items: BatchItem[] = [];
    let itemBytes = 0;
    while (batches.length < max) {
      const next = (items.at(-1)?.height ?? batches.at(-1)?.lastHeight ?? posted) + 1;
      if (itemBytes < readBytes && next <= last) {
        const more = await this.m.store.getRange(
          next,
          Math.min(last - next + 1, MAX_BATCH_BLOCKS),
          readBytes - itemBytes,
        );
        for (const item of more) itemBytes += item.block.length;
        items = items.concat(more);
      }
      const first = items[0];
      if (first === undefined) break;
      const packed = await packBatch(this.m.chainId, items.slice(0, MAX_BATCH_BLOCKS), maxDataBytes);
      // A block too large for this transport: a later turn sends it (in blobs, in auto mode).
      if (packed === null) break;
      if (batches.length > 0 && packed.lastHeight === last) {
        const count = last - first.height + 1;
        const readyAtMs = decodeBlockHead(first.block).header.timestampMs + this.params.batchMaxAgeMs;
        if (count < this.params.batchMinBlocks && now < readyAtMs) break;
      }
      batches.push(packed);
      const used = items.slice(0, packed.lastHeight - first.height + 1);
      for (const item of used) itemBytes -= item.block.length;
      items = items.slice(used.length);
    }
    return batches;
  }

  /** Leaves the batch to the next member: ready too late in this node's slot. */
  private windowPassed(first: number, turn: number, slotMs: number): void {
    this.state.phase = "waiting";
    this.m.metrics.batcherBatches.inc({ outcome: "window_passed" });
    this.m.log.info(
      { first, turn, lateMs: this.m.nowMs() - slotMs },
      "batch not posted: the next member's turn is near",
    );
  }

  /**
   * How this turn's batches go (chooseBatchTransport). Reads the L1's latest block and blob base fee unless the mode is
   * calldata, and in auto mode block `firstHeight`, to know whether it fits calldata at all.
   */
  private async transportFor(firstHeight: number): Promise<BatchTransport | null> {
    const mode = this.params.transport;
    if (mode === "calldata") return "calldata";
    const block = await this.m.client.getBlock({ blockTag: "latest" });
    const hasBlobs = block.excessBlobGas !== undefined && block.excessBlobGas !== null;
    const blobBaseFeeWei = hasBlobs ? await this.m.client.getBlobBaseFee() : null;
    if (mode === "blobs" || blobBaseFeeWei === null) {
      return chooseBatchTransport({ mode, blobBaseFeeWei, gasPriceWei: 0n, firstBlockFitsCalldata: true });
    }
    const tip = await this.m.client.estimateMaxPriorityFeePerGas();
    const gasPriceWei = (block.baseFeePerGas ?? 0n) + tip;
    // The store returns the first block even when it alone is over the byte limit.
    const first = await this.m.store.getRange(firstHeight, 1, 0);
    const firstBlockFitsCalldata =
      first.length === 0 || (await packBatch(this.m.chainId, first, MAX_BATCH_DATA_BYTES)) !== null;
    return chooseBatchTransport({ mode, blobBaseFeeWei, gasPriceWei, firstBlockFitsCalldata });
  }

  private backoff(): void {
    this.failures += 1;
    this.state.phase = "backoff";
    this.nextAttemptMs = this.m.nowMs() + Math.min(60_000, 1_000 * 2 ** this.failures);
  }
}
