// Derivation (docs/hard-finality.md "Derivation"): rebuilds the chain from L1 alone, with no p2p peer. Reads the
// BatchSubmitted events of the genesis' batch inbox from the genesis L1 origin on, in confirmed L1 blocks only, fetches
// each batch transaction's input, decodes submitBatch's `data` (src/l1/batch.ts) and feeds the commits in height order
// to the driver's applyCommits, which verifies every certificate against the validator set of its height and
// re-executes every block: a forged batch is refused there, and the next batch covering the same heights is used.
// Batches at or below the head are skipped (overlaps and duplicates); a batch beyond a gap waits, in a bounded buffer,
// for the batch that fills it.
// Blob batches (BlobBatchSubmitted): the blobs come from a Beacon API (`l1.beaconUrl`), each checked against the
// event's versioned hash (the hash of its KZG commitment) before its bytes are decoded like calldata.
import type { Address, PublicClient } from "viem";
import { type Batch, type BatchError, commitsOfBatch, decodeBlobBatch } from "../l1/batch.ts";
import {
  type FinalityMetrics,
  type InboxBatchEvent,
  LOG_RANGE_BLOCKS,
  readBatchEvents,
  readCalldataBatch,
} from "../l1/batcher.ts";
import { BeaconError, fetchEventBlobs } from "../l1/beacon.ts";
import type { Kzg } from "../l1/kzg.ts";
import { PassInFlight } from "../l1/passes.ts";
import { firstLine } from "../l1/sender.ts";
import type { CommitCandidate, CommitsApplied } from "./driver.ts";
import type { Logger } from "./log.ts";

export interface DeriveParams {
  readonly pollMs: number;
  /** Batches held beyond a gap; more are dropped and read from L1 again once the gap is filled. */
  readonly maxBufferedBatches: number;
}

export const DEFAULT_DERIVE_PARAMS: DeriveParams = { pollMs: 1_000, maxBufferedBatches: 64 };

interface Buffered {
  readonly event: InboxBatchEvent;
  readonly commits: readonly CommitCandidate[];
}

export interface DeriveStatus {
  /** Next L1 block to read events from. */
  readonly l1Cursor: bigint;
  readonly bufferedBatches: number;
  readonly derivedHeight: number;
  readonly lastError: string | null;
}

export class L1Derivation {
  private cursor: bigint;
  /** The L1 block to read again from once the gap closes (batches beyond the buffer were dropped), or null. */
  private rewindTo: bigint | null = null;
  private readonly buffer: Buffered[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly passes = new PassInFlight();
  private derived = 0;
  private lastError: string | null = null;

  constructor(
    private readonly params: DeriveParams,
    private readonly m: {
      readonly chainId: bigint;
      readonly inbox: Address;
      readonly client: PublicClient;
      /** The newest confirmed L1 block number (the mirror's), null before the first. */
      readonly confirmedHead: () => bigint | null;
      /** The genesis L1 origin: no batch of this chain is older. */
      readonly fromBlock: bigint;
      readonly headHeight: () => number;
      readonly applyCommits: (commits: readonly CommitCandidate[]) => Promise<CommitsApplied>;
      readonly log: Logger;
      readonly metrics: FinalityMetrics;
      /** Beacon API base URL for blob batches (config l1.beaconUrl); null: blob batches are skipped. */
      readonly beaconUrl: string | null;
      /** KZG for checking blobs (src/l1/kzg.ts sharedKzg), used only for blob batches. */
      readonly kzg: () => Kzg;
    },
  ) {
    this.cursor = m.fromBlock;
  }

  /** Whether the "no beacon URL" warning was logged (once per process: every blob batch would repeat it). */
  private warnedNoBeacon = false;

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.params.pollMs);
    void this.tick();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  status(): DeriveStatus {
    return {
      l1Cursor: this.cursor,
      bufferedBatches: this.buffer.length,
      derivedHeight: this.derived,
      lastError: this.lastError,
    };
  }

  /** Consecutive failed passes, and when the next may run: a beacon node that keeps failing costs a KZG commitment per blob
   * per try, so tries back off (2, 4, 8 ... 30 s). */
  private failures = 0;
  private nextTryMs = 0;

  async tick(): Promise<void> {
    if (this.timer === null || Date.now() < this.nextTryMs) return;
    await this.passes.run(() => this.guardedPass());
  }

  /** Resolves when the pass in flight, if any, has ended: the node waits for it (a while) before closing the store. */
  idle(): Promise<void> {
    return this.passes.idle();
  }

  private async guardedPass(): Promise<void> {
    try {
      await this.pass();
      this.lastError = null;
      this.failures = 0;
    } catch (error) {
      // Stopped meanwhile, and the store closed under a pass that outlived the node's wait: the next start derives
      // from its cursor again.
      if (this.timer === null) {
        this.m.log.debug({ err: firstLine(error) }, "derivation pass cut short: the node is stopping");
        return;
      }
      this.lastError = firstLine(error);
      this.failures += 1;
      this.nextTryMs = Date.now() + Math.min(30_000, 1_000 * 2 ** this.failures);
      this.m.log.warn({ err: firstLine(error), l1Cursor: this.cursor.toString() }, "derivation pass failed");
    }
  }

  private async pass(): Promise<void> {
    // Apply what the buffer already holds first: the driver may have been waiting for its L1 view.
    if (!(await this.applyBuffered())) return;
    const confirmed = this.m.confirmedHead();
    if (confirmed === null || confirmed < this.cursor) return;
    const to = this.cursor + LOG_RANGE_BLOCKS - 1n < confirmed ? this.cursor + LOG_RANGE_BLOCKS - 1n : confirmed;
    const events = await readBatchEvents(this.m.client, this.m.inbox, this.cursor, to);
    let handled: { l1Block: bigint; logIndex: number } | null = this.skipThrough;
    for (const event of events) {
      if (this.timer === null) return;
      const skip = this.skipThrough;
      if (skip !== null && event.l1Block === skip.l1Block && event.logIndex <= skip.logIndex) continue;
      if (event.lastHeight <= this.m.headHeight()) {
        this.m.metrics.derivedBatches.inc({ outcome: "skipped" });
        handled = { l1Block: event.l1Block, logIndex: event.logIndex };
        continue;
      }
      let commits: CommitCandidate[] | null;
      try {
        commits = await this.readBatch(event);
      } catch (error) {
        // The L1 or the beacon node could not answer: read on from this event at the next pass.
        this.cursor = event.l1Block;
        this.skipThrough = handled !== null && handled.l1Block === event.l1Block ? handled : null;
        throw error;
      }
      handled = { l1Block: event.l1Block, logIndex: event.logIndex };
      if (commits === null) continue;
      this.hold({ event, commits });
      if (!(await this.applyBuffered())) {
        // The driver is waiting (its L1 view lags): read on from the next event later.
        this.cursor = event.l1Block;
        this.skipThrough = handled;
        return;
      }
    }
    this.cursor = to + 1n;
    this.skipThrough = null;
  }

  /** Events already handled in the block the cursor stopped at (a pass that stopped midway resumes after them). */
  private skipThrough: { l1Block: bigint; logIndex: number } | null = null;

  /**
   * The commits of one batch event, or null when it is not a well-formed batch of this chain (or a blob batch
   * without a beacon URL). Throws when the L1 or the beacon node cannot answer (try again later).
   */
  private async readBatch(event: InboxBatchEvent): Promise<CommitCandidate[] | null> {
    const refuse = (reason: string) => {
      this.m.metrics.derivedBatches.inc({ outcome: "invalid" });
      this.m.log.warn(
        { index: event.index.toString(), first: event.firstHeight, last: event.lastHeight, tx: event.txHash, reason },
        "skipped an L1 batch",
      );
      return null;
    };
    let batch: Batch;
    if (event.kind === "blobs") {
      const blobs = await this.readBlobs(event);
      if (blobs === null) return null;
      try {
        batch = await decodeBlobBatch(blobs);
      } catch (error) {
        return refuse(`${(error as BatchError).code ?? "error"}: ${firstLine(error)}`);
      }
    } else {
      const read = await readCalldataBatch(this.m.client, this.m.inbox, event);
      if (!read.ok) return refuse(read.reason);
      batch = read.batch;
    }
    try {
      const commits = commitsOfBatch(batch, this.m.chainId);
      const first = batch.firstHeight;
      if (first !== event.firstHeight || first + commits.length - 1 !== event.lastHeight) {
        return refuse(`batch holds heights ${first}..${first + commits.length - 1}, the event says otherwise`);
      }
      return commits;
    } catch (error) {
      return refuse(`${(error as BatchError).code ?? "error"}: ${firstLine(error)}`);
    }
  }

  /**
   * The checked blobs of a blob batch event, or null when there is no beacon URL. Throws BeaconError (or KzgError)
   * when they cannot be had now, including a beacon node's answer that does not match the event: the blobs are on
   * the L1's data-availability layer, so the batch is not refused for it.
   */
  private async readBlobs(event: InboxBatchEvent & { kind: "blobs" }): Promise<readonly Uint8Array[] | null> {
    const beaconUrl = this.m.beaconUrl;
    if (beaconUrl === null) {
      this.m.metrics.derivedBatches.inc({ outcome: "no_beacon" });
      if (!this.warnedNoBeacon) {
        this.warnedNoBeacon = true;
        this.m.log.warn(
          { index: event.index.toString(), first: event.firstHeight, last: event.lastHeight, tx: event.txHash },
          "skipped a blob batch: reading blobs needs l1.beaconUrl (derivation waits for another batch of these heights)",
        );
      }
      return null;
    }
    const result = await fetchEventBlobs({ client: this.m.client, beaconUrl, kzg: this.m.kzg }, event);
    if (!result.ok) {
      this.m.metrics.derivedBatches.inc({ outcome: "bad_blobs" });
      throw new BeaconError(
        "bad_response",
        `beacon blobs of batch ${event.index} refused: ${result.code}: ${result.reason}`,
        {
          url: beaconUrl,
        },
      );
    }
    return result.blobs;
  }

  private hold(entry: Buffered): void {
    this.buffer.push(entry);
    this.buffer.sort((a, b) => a.event.firstHeight - b.event.firstHeight);
    while (this.buffer.length > this.params.maxBufferedBatches) {
      const dropped = this.buffer.pop() as Buffered;
      const at = dropped.event.l1Block;
      this.rewindTo = this.rewindTo === null || at < this.rewindTo ? at : this.rewindTo;
    }
  }

  /**
   * Feeds buffered batches that reach the head to the driver. False when the driver is waiting for its L1 view (try
   * again later); true otherwise.
   */
  private async applyBuffered(): Promise<boolean> {
    for (;;) {
      const head = this.m.headHeight();
      // Drop what the head has passed; find a batch that starts at or before head + 1.
      for (let i = this.buffer.length - 1; i >= 0; i--) {
        const b = this.buffer[i] as Buffered;
        if (b.event.lastHeight <= head) this.buffer.splice(i, 1);
      }
      const next = this.buffer.find((b) => b.event.firstHeight <= head + 1);
      if (next === undefined) {
        if (this.buffer.length === 0 && this.rewindTo !== null) {
          // The gap closed and some batches were dropped for room: read their L1 blocks again.
          if (this.rewindTo < this.cursor) this.cursor = this.rewindTo;
          this.rewindTo = null;
          this.skipThrough = null;
        }
        return true;
      }
      const commits = next.commits.slice(head + 1 - next.event.firstHeight);
      const result = await this.m.applyCommits(commits);
      const reached = this.m.headHeight();
      if (reached > this.derived) {
        this.derived = reached;
        this.m.metrics.derivedHeight.set(reached);
      }
      if (result.applied === commits.length) {
        this.m.metrics.derivedBatches.inc({ outcome: "applied" });
        this.m.log.info(
          {
            first: next.event.firstHeight,
            last: next.event.lastHeight,
            head: reached,
            index: next.event.index.toString(),
            kind: next.event.kind,
          },
          "derived a batch from L1",
        );
        this.buffer.splice(this.buffer.indexOf(next), 1);
        continue;
      }
      if (result.waiting) return false;
      // Refused by the driver (a certificate or a block that does not verify), or the head moved meanwhile (sync
      // from peers committed the same heights): drop it; another batch covering these heights may follow.
      if (reached < next.event.lastHeight) {
        this.m.metrics.derivedBatches.inc({ outcome: "refused" });
        this.m.log.warn(
          { first: next.event.firstHeight, last: next.event.lastHeight, head: reached, tx: next.event.txHash },
          "the driver refused a batch from L1",
        );
      }
      this.buffer.splice(this.buffer.indexOf(next), 1);
    }
  }
}
