// Derivation (docs/hard-finality.md "Derivation"): rebuilds the chain from L1 alone, with no p2p peer. Reads the
// BatchSubmitted events of the genesis' batch inbox from the genesis L1 origin on, in confirmed L1 blocks only, fetches
// each batch transaction's input, decodes submitBatch's `data` (src/l1/batch.ts) and feeds the commits in height order
// to the driver's applyCommits, which verifies every certificate against the validator set of its height and
// re-executes every block: a forged batch is refused there, and the next batch covering the same heights is used.
// Batches at or below the head are skipped (overlaps and duplicates); a batch beyond a gap waits, in a bounded buffer,
// for the batch that fills it.
import { type Address, decodeFunctionData, type Hex, keccak256, type PublicClient } from "viem";
import { fromHex } from "../../consensus/bytes.ts";
import { BatchInbox } from "../../staking-contracts/artifacts.ts";
import { type BatchError, commitsOfBatch, decodeBatchData } from "../l1/batch.ts";
import { type FinalityMetrics, type InboxBatchEvent, LOG_RANGE_BLOCKS, readBatchEvents } from "../l1/batcher.ts";
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
  private busy = false;
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
    },
  ) {
    this.cursor = m.fromBlock;
  }

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

  async tick(): Promise<void> {
    if (this.busy || this.timer === null) return;
    this.busy = true;
    try {
      await this.pass();
      this.lastError = null;
    } catch (error) {
      this.lastError = firstLine(error);
      this.m.log.warn({ err: firstLine(error), l1Cursor: this.cursor.toString() }, "derivation pass failed");
    } finally {
      this.busy = false;
    }
  }

  private async pass(): Promise<void> {
    // Apply what the buffer already holds first: the driver may have been waiting for its L1 view.
    if (!(await this.applyBuffered())) return;
    const confirmed = this.m.confirmedHead();
    if (confirmed === null || confirmed < this.cursor) return;
    const to = this.cursor + LOG_RANGE_BLOCKS - 1n < confirmed ? this.cursor + LOG_RANGE_BLOCKS - 1n : confirmed;
    const events = await readBatchEvents(this.m.client, this.m.inbox, this.cursor, to);
    for (const event of events) {
      if (this.timer === null) return;
      if (event.lastHeight <= this.m.headHeight()) {
        this.m.metrics.derivedBatches.inc({ outcome: "skipped" });
        continue;
      }
      const commits = await this.readBatch(event);
      if (commits === null) continue;
      this.hold({ event, commits });
      if (!(await this.applyBuffered())) {
        // The driver is waiting (its L1 view lags): read on from the next event later.
        this.cursor = event.l1Block;
        this.skipThrough = { l1Block: event.l1Block, logIndex: event.logIndex };
        return;
      }
    }
    this.cursor = to + 1n;
    this.skipThrough = null;
  }

  /** Events already handled in the block the cursor stopped at (a pass that stopped midway resumes after them). */
  private skipThrough: { l1Block: bigint; logIndex: number } | null = null;

  /** The commits of one batch event, or null when its transaction is not a well-formed batch of this chain. */
  private async readBatch(event: InboxBatchEvent): Promise<CommitCandidate[] | null> {
    const skip = this.skipThrough;
    if (skip !== null && event.l1Block === skip.l1Block && event.logIndex <= skip.logIndex) return null;
    const tx = await this.m.client.getTransaction({ hash: event.txHash });
    const refuse = (reason: string) => {
      this.m.metrics.derivedBatches.inc({ outcome: "invalid" });
      this.m.log.warn(
        { index: event.index.toString(), first: event.firstHeight, last: event.lastHeight, tx: event.txHash, reason },
        "skipped an L1 batch",
      );
      return null;
    };
    // BatchInbox takes only direct calls from the sender (NotDirectCall): the data is the transaction's input.
    if (tx.to?.toLowerCase() !== this.m.inbox.toLowerCase()) return refuse("not a direct call to the inbox");
    let data: Hex;
    try {
      const call = decodeFunctionData({ abi: BatchInbox.abi, data: tx.input });
      if (call.functionName !== "submitBatch") return refuse(`${call.functionName} is not submitBatch`);
      data = (call.args as readonly [bigint, bigint, Hex])[2];
    } catch (error) {
      return refuse(`input does not decode: ${firstLine(error)}`);
    }
    if (keccak256(data) !== event.dataHash) return refuse("input data does not match the event's dataHash");
    try {
      const batch = decodeBatchData(fromHex(data));
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
