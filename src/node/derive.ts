// Derivation (docs/hard-finality.md "Derivation"): rebuilds the chain from L1 alone, with no p2p peer. Reads the
// BatchSubmitted events of the genesis' batch inbox from the genesis L1 origin on, in confirmed L1 blocks only, fetches
// each batch transaction's input, decodes submitBatch's `data` (src/l1/batch.ts) and feeds the commits in height order
// to the driver's applyCommits, which verifies every certificate against the validator set of its height and
// re-executes every block: a forged batch is refused there, and the next batch covering the same heights is used.
// Batches at or below the head are skipped (overlaps and duplicates); a batch beyond a gap waits, in a bounded buffer,
// for the batch that fills it.
// Blob batches (BlobBatchSubmitted): the blobs come from a Beacon API (`l1.beaconUrl`), each checked against the
// event's versioned hash (the hash of its KZG commitment) before its bytes are decoded like calldata.
import {
  type Address,
  commitmentToVersionedHash,
  decodeFunctionData,
  type Hex,
  keccak256,
  type PublicClient,
} from "viem";
import { fromHex } from "../../consensus/bytes.ts";
import { BatchInbox } from "../../staking-contracts/artifacts.ts";
import {
  type Batch,
  BatchError,
  BLOB_BYTES,
  blobsToBatchData,
  commitsOfBatch,
  decodeBatchData,
  INBOX_MAX_BLOB_BATCH_BYTES,
  INBOX_MAX_BLOBS,
} from "../l1/batch.ts";
import { type FinalityMetrics, type InboxBatchEvent, LOG_RANGE_BLOCKS, readBatchEvents } from "../l1/batcher.ts";
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

// ---------------------------------------------------------------------------------------------------------------------
// Blobs from a Beacon API

/** Most bytes read from one Beacon API response: every blob of a block (21 at most today) in hex, with room to spare. */
export const MAX_BEACON_RESPONSE_BYTES = 32 * 1024 * 1024;
/** Most blobs taken from one response (more is not a block's worth: a faulty beacon node). */
export const MAX_BEACON_BLOBS = 64;
export const BEACON_TIMEOUT_MS = 20_000;
const ZERO_ROOT = `0x${"00".repeat(32)}`;

export type BeaconErrorCode = "unreachable" | "http_status" | "too_large" | "bad_response";

/** The Beacon API could not serve the blobs (down, unsynced, pruned, or not a beacon node): try again later. */
export class BeaconError extends Error {
  override readonly name = "BeaconError";
  constructor(
    readonly code: BeaconErrorCode,
    message: string,
    readonly context: { readonly url: string; readonly status?: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The blobs of a batch in the event's order, or why the beacon node's answer cannot be used: `missing` (a versioned
 * hash has no blob), `commitment_mismatch` (a blob served for a hash commits to something else), `bad_proof` (a
 * sidecar's proof does not verify). The batch itself is fine (the L1 guarantees its blobs were published); only this
 * answer is refused.
 */
export type BlobFetchResult =
  | { readonly ok: true; readonly blobs: readonly Uint8Array[]; readonly route: "blobs" | "blob_sidecars" }
  | { readonly ok: false; readonly code: "missing" | "commitment_mismatch" | "bad_proof"; readonly reason: string };

async function beaconGet(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    throw new BeaconError("unreachable", `beacon request failed: ${firstLine(cause)}`, { url }, { cause });
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    return { status: res.status, body: null };
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_BEACON_RESPONSE_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new BeaconError("too_large", `beacon response of ${declared} bytes`, { url, status: res.status });
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body?.getReader();
  if (reader === undefined) throw new BeaconError("bad_response", "beacon response without a body", { url });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > MAX_BEACON_RESPONSE_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw new BeaconError("too_large", `beacon response over ${MAX_BEACON_RESPONSE_BYTES} bytes`, { url });
      }
      chunks.push(value);
    }
  } catch (cause) {
    if (cause instanceof BeaconError) throw cause;
    throw new BeaconError("unreachable", `beacon response broke off: ${firstLine(cause)}`, { url }, { cause });
  }
  try {
    return { status: 200, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) };
  } catch (cause) {
    throw new BeaconError("bad_response", "beacon response is not JSON", { url, status: 200 }, { cause });
  }
}

const BLOB_HEX_LENGTH = 2 + 2 * BLOB_BYTES;
const isBlobHex = (x: unknown): x is Hex =>
  typeof x === "string" && x.length === BLOB_HEX_LENGTH && /^0x[0-9a-fA-F]*$/.test(x);
const isHex = (x: unknown, bytes: number): x is Hex =>
  typeof x === "string" && x.length === 2 + 2 * bytes && /^0x[0-9a-fA-F]*$/.test(x);

function dataArray(body: unknown, url: string): unknown[] {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new BeaconError("bad_response", "beacon response has no data array", { url });
  if (data.length > MAX_BEACON_BLOBS) {
    throw new BeaconError("too_large", `beacon response holds ${data.length} blobs`, { url });
  }
  return data;
}

/**
 * Fetches the blobs with `versionedHashes` from the Beacon API at `beaconUrl` for beacon block `blockId` and checks
 * each against its hash. Tries GET /eth/v1/beacon/blobs/{id} first (Fulu; blobs only: the commitment of each is
 * computed here), then, where that route does not exist, /eth/v1/beacon/blob_sidecars/{id} (Deneb/Electra: commitment
 * and proof served, the proof is verified). Peer-caused bad answers come back as a typed result; a beacon node that
 * cannot answer throws BeaconError; a KZG worker failure throws KzgError.
 */
export async function fetchBatchBlobs(o: {
  readonly beaconUrl: string;
  readonly blockId: string;
  readonly versionedHashes: readonly Hex[];
  readonly kzg: Kzg;
  readonly timeoutMs?: number;
}): Promise<BlobFetchResult> {
  const base = o.beaconUrl.replace(/\/+$/, "");
  const timeoutMs = o.timeoutMs ?? BEACON_TIMEOUT_MS;
  const wanted = o.versionedHashes.map((h) => h.toLowerCase());
  const found = new Map<string, Uint8Array>();
  const result = (route: "blobs" | "blob_sidecars", served: number): BlobFetchResult => {
    const missing = wanted.filter((h) => !found.has(h));
    if (missing.length === 0) return { ok: true, blobs: wanted.map((h) => found.get(h) as Uint8Array), route };
    // A node that filtered by hash and served as many blobs as asked served wrong ones.
    const code = route === "blobs" && served === wanted.length ? "commitment_mismatch" : "missing";
    return { ok: false, code, reason: `${missing.length} of ${wanted.length} blobs not served (${missing[0]} ...)` };
  };

  const blobsUrl = `${base}/eth/v1/beacon/blobs/${o.blockId}?versioned_hashes=${wanted.join(",")}`;
  const blobs = await beaconGet(blobsUrl, timeoutMs);
  if (blobs.status === 200) {
    const served = dataArray(blobs.body, blobsUrl).filter(isBlobHex);
    if (served.length > 0) {
      const commitments = await o.kzg.commitments(served);
      for (const [i, blob] of served.entries()) {
        const hash = commitmentToVersionedHash({ commitment: commitments[i] as Hex, to: "hex" }).toLowerCase();
        if (wanted.includes(hash)) found.set(hash, fromHex(blob));
      }
    }
    return result("blobs", served.length);
  }
  // Only "no such route" falls back; anything else (block unknown, node syncing) is for later.
  if (![400, 404, 405, 410, 501].includes(blobs.status)) {
    throw new BeaconError("http_status", `beacon answered ${blobs.status}`, { url: blobsUrl, status: blobs.status });
  }
  const sidecarsUrl = `${base}/eth/v1/beacon/blob_sidecars/${o.blockId}`;
  const sidecars = await beaconGet(sidecarsUrl, timeoutMs);
  if (sidecars.status !== 200) {
    throw new BeaconError(
      "http_status",
      `beacon answered ${blobs.status} for blobs and ${sidecars.status} for blob sidecars`,
      { url: sidecarsUrl, status: sidecars.status },
    );
  }
  const matched: { hash: string; blob: Hex; commitment: Hex; proof: Hex }[] = [];
  for (const item of dataArray(sidecars.body, sidecarsUrl)) {
    const { blob, kzg_commitment: commitment, kzg_proof: proof } = (item ?? {}) as Record<string, unknown>;
    if (!isBlobHex(blob) || !isHex(commitment, 48) || !isHex(proof, 48)) continue;
    const hash = commitmentToVersionedHash({ commitment, to: "hex" }).toLowerCase();
    if (wanted.includes(hash) && !matched.some((m) => m.hash === hash)) matched.push({ hash, blob, commitment, proof });
  }
  if (matched.length > 0) {
    const verdicts = await o.kzg.verify(
      matched.map((m) => m.blob),
      matched.map((m) => m.commitment),
      matched.map((m) => m.proof),
    );
    const bad = matched.find((_, i) => verdicts[i] !== true);
    if (bad !== undefined) {
      return { ok: false, code: "bad_proof", reason: `the proof of the blob for ${bad.hash} does not verify` };
    }
    for (const m of matched) found.set(m.hash, fromHex(m.blob));
  }
  return result("blob_sidecars", matched.length);
}

/**
 * The batch a blob batch's blobs carry (checked blobs, in the event's order). Throws only BatchError, like
 * decodeBatchData.
 */
export function decodeBlobBatch(blobs: readonly Uint8Array[]): Batch {
  if (blobs.length > INBOX_MAX_BLOBS) throw new BatchError("too_large", `${blobs.length} blobs`);
  return decodeBatchData(blobsToBatchData(blobs), INBOX_MAX_BLOB_BATCH_BYTES);
}

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
        batch = decodeBlobBatch(blobs);
      } catch (error) {
        return refuse(`${(error as BatchError).code ?? "error"}: ${firstLine(error)}`);
      }
    } else {
      const tx = await this.m.client.getTransaction({ hash: event.txHash });
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
        batch = decodeBatchData(fromHex(data));
      } catch (error) {
        return refuse(`${(error as BatchError).code ?? "error"}: ${firstLine(error)}`);
      }
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
    const blockId = await this.beaconBlockId(event.l1Block);
    const result = await fetchBatchBlobs({
      beaconUrl,
      blockId,
      versionedHashes: event.blobHashes,
      kzg: this.m.kzg(),
    });
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

  /**
   * The Beacon API block id of L1 block `n`: its beacon block root, which is the parentBeaconBlockRoot of block n + 1
   * (EIP-4788). An L1 without a beacon chain (anvil: the root is zero) serves blobs by execution block number.
   */
  private async beaconBlockId(n: bigint): Promise<string> {
    const next = await this.m.client.getBlock({ blockNumber: n + 1n });
    const root = next.parentBeaconBlockRoot;
    return root === undefined || root === null || root === ZERO_ROOT ? n.toString() : root;
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
