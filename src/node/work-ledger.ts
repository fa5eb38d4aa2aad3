// Work accounting per registry epoch, from the committed chain alone, so that every honest node computes the same
// work report and the epoch's validators can sign it for the L1 Rewards contract (consensus/signing.ts
// workReportDigest, docs/l1.md "Work reports").
//
// Which epoch a height belongs to: the set deciding height H was fixed by the L1 origin of block H - 2
// (src/node/membership.ts), so H counts for the registry epoch current at origin(H - 2) (the genesis origin for
// H <= 2). Per epoch and per validator of that epoch's set (set order = the registry's member order):
//   blocksProposed   - committed heights of the epoch whose header names it as proposer;
//   precommitsSigned - heights of the epoch whose canonical certificate (carried by the next block, lastCertificate)
//                      has its bit set;
//   batchesPosted    - batches it posted to the L1 batch inbox during the epoch (the inbox counts them per registry
//                      epoch and sequencer), read at the L1 origin that put the next epoch in force: final by then.
// An epoch is complete when the first height of a later epoch is committed: that block carries the certificate of the
// epoch's last height. The ledger persists its cursor and open tallies in <dataDir>/work after every height, and the
// last completed reports; a restart resumes from the cursor.
import { Level } from "level";
import { type Hex, toHex } from "../../consensus/bytes.ts";
import { certificateSigners, decodeCertificate } from "../../consensus/certificate.ts";
import { type WorkReportEntry, workReportDigest } from "../../consensus/signing.ts";
import { type BlockHeader, decodeBlockHead } from "../chain/block.ts";
import type { Genesis } from "../config/genesis.ts";
import type { L1Ref, L1View } from "../l1/view.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import type { Logger } from "./log.ts";

/** How many completed reports the ledger keeps (older ones are on L1 or forfeited). */
export const MAX_KEPT_REPORTS = 64;
/** Heights accounted per catchUp() call before it yields (a long catch-up must not starve the event loop). */
const HEIGHTS_PER_SLICE = 256;

export interface WorkReportMember {
  readonly address: Hex;
  readonly publicKey: Hex;
  readonly votingPower: bigint;
}

/** A completed epoch's report: what the epoch's validators sign. */
export interface WorkReport {
  readonly epoch: bigint;
  readonly firstHeight: number;
  readonly lastHeight: number;
  /** The L2 set that decided the epoch's heights (its id is the registry's set id of the epoch when submittable). */
  readonly setId: Hex;
  readonly members: readonly WorkReportMember[];
  readonly entries: readonly WorkReportEntry[];
  /** workReportDigest(chainId, epoch, entries). */
  readonly digest: Hex;
  /**
   * False when the L1 contract would refuse it: epoch 0, or the chain's set for the epoch is not the registry's
   * (e.g. a genesis set the registry never had).
   */
  readonly submittable: boolean;
}

interface Tally {
  epoch: string;
  setId: Hex;
  /** The registry's set id of the epoch (from the origin that put the epoch in force). */
  registrySetId: Hex;
  firstHeight: number;
  lastHeight: number;
  proposed: Record<string, number>;
  /** By set index. */
  signed: number[];
  /** Counted from a later height than the epoch's first (the ledger started there): it gives no report. */
  partial?: boolean;
}

interface LedgerState {
  /** Last accounted height (0: none). */
  cursor: number;
  /** Epoch of the cursor height (decimal), "" before the first height. */
  cursorEpoch: string;
  /** L1 origins of heights cursor - 1 and cursor (the genesis origin stands for heights <= 0). */
  origins: { number: string; hash: Hex }[];
  open: Tally[];
}

const STATE_KEY = "state";
const reportKey = (epoch: bigint) => `report/${epoch.toString().padStart(20, "0")}`;

export class WorkLedger {
  private state: LedgerState;
  private readonly reports = new Map<bigint, WorkReport>();
  private readonly epochByOrigin = new Map<Hex, { epoch: bigint; setId: Hex }>();
  private running: Promise<void> | null = null;
  private readonly listeners = new Set<(report: WorkReport) => void>();

  private constructor(
    private readonly m: {
      readonly genesis: Genesis;
      readonly store: ChainStore;
      readonly l1: L1View;
      readonly log: Logger;
    },
    private readonly db: Level<string, string>,
    state: LedgerState,
    reports: readonly WorkReport[],
  ) {
    this.state = state;
    for (const r of reports) this.reports.set(r.epoch, r);
  }

  static async open(m: {
    readonly dbPath: string;
    readonly genesis: Genesis;
    readonly store: ChainStore;
    readonly l1: L1View;
    readonly log: Logger;
  }): Promise<WorkLedger> {
    const db = new Level<string, string>(m.dbPath, { valueEncoding: "utf8" });
    await db.open();
    const saved = await db.get(STATE_KEY);
    const origin = m.genesis.l1?.origin ?? { number: 0n, hash: `0x${"00".repeat(32)}` as Hex };
    const genesisOrigin = { number: origin.number.toString(), hash: origin.hash };
    let state: LedgerState =
      saved === undefined
        ? { cursor: 0, cursorEpoch: "", origins: [genesisOrigin, genesisOrigin], open: [] }
        : (JSON.parse(saved) as LedgerState);
    if (state.cursor > m.store.headHeight) {
      // The chain store is behind the ledger (a data dir restored from an older copy): account again from scratch.
      m.log.warn({ cursor: state.cursor, head: m.store.headHeight }, "work ledger is ahead of the chain: recounting");
      state = { cursor: 0, cursorEpoch: "", origins: [genesisOrigin, genesisOrigin], open: [] };
    }
    const reports: WorkReport[] = [];
    for await (const [, value] of db.iterator({
      gte: "report/",
      lt: "report0",
      reverse: true,
      limit: MAX_KEPT_REPORTS,
    })) {
      reports.push(reportFromJson(value));
    }
    return new WorkLedger(m, db, state, reports);
  }

  /** Called with each report when its epoch completes (after it is persisted). */
  onReport(listener: (report: WorkReport) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The completed report of `epoch`, if this node has it. */
  report(epoch: bigint): WorkReport | undefined {
    return this.reports.get(epoch);
  }

  /** Completed reports this node keeps, newest first. */
  recentReports(): WorkReport[] {
    return [...this.reports.values()].sort((a, b) => (a.epoch < b.epoch ? 1 : -1));
  }

  get accountedHeight(): number {
    return this.state.cursor;
  }

  /**
   * Accounts every committed height after the cursor. Concurrent calls share one run. Stops early (and resolves) when
   * the L1 view cannot answer an origin's epoch yet: the next call resumes.
   */
  catchUp(): Promise<void> {
    if (this.running === null) {
      this.running = this.run().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  async close(): Promise<void> {
    await this.running;
    await this.db.close();
  }

  private async run(): Promise<void> {
    let done = 0;
    if (!(await this.skipMissingHistory())) return;
    while (this.state.cursor < this.m.store.headHeight) {
      if (!(await this.account(this.state.cursor + 1))) return;
      if (++done % HEIGHTS_PER_SLICE === 0) await new Promise((r) => setImmediate(r));
    }
  }

  /**
   * A ledger behind the history the store keeps (a node that started from a peer's state, or a lost ledger on a node
   * that prunes history) cannot count the heights that are gone: it starts at the third whole height, and the epoch
   * in progress there is counted as partial (it gives no report: its counts would miss heights). False while that
   * height is not committed yet or the L1 view cannot tell its epoch.
   */
  private async skipMissingHistory(): Promise<boolean> {
    const from = this.m.store.historyKeptFrom;
    if (this.state.cursor + 1 >= from) return true;
    const start = from + 2;
    if (this.m.store.headHeight < start) return false;
    const heads = await Promise.all(
      [start - 2, start - 1, start].map(async (h) => {
        const bytes = await this.m.store.getBlock(h);
        if (bytes === undefined) throw new Error(`committed block ${h} is missing from the store`);
        return decodeBlockHead(bytes).header;
      }),
    );
    const [twoBack, oneBack, first] = heads as [BlockHeader, BlockHeader, BlockHeader];
    const epochInfo = await this.epochAt(twoBack.l1Origin);
    if (epochInfo === null) return false;
    const epoch = epochInfo.epoch.toString();
    const origin = (h: BlockHeader) => ({ number: h.l1Origin.number.toString(), hash: h.l1Origin.hash });
    const next: LedgerState = {
      cursor: start,
      cursorEpoch: epoch,
      origins: [origin(oneBack), origin(first)],
      open: [
        {
          epoch,
          setId: first.validatorSetId,
          registrySetId: epochInfo.setId,
          firstHeight: start,
          lastHeight: start,
          proposed: {},
          signed: [],
          partial: true,
        },
      ],
    };
    await this.db.put(STATE_KEY, JSON.stringify(next));
    this.state = next;
    this.m.log.warn(
      { from: start, epoch, before: from },
      "work ledger starts where this node's history begins: the epoch in progress gives no report",
    );
    return true;
  }

  /** Accounts height `h` (cursor + 1). False when the L1 view cannot tell its epoch yet. */
  private async account(h: number): Promise<boolean> {
    const bytes = await this.m.store.getBlock(h);
    if (bytes === undefined) throw new Error(`committed block ${h} is missing from the store`);
    const block = decodeBlockHead(bytes);
    const header = block.header;
    const [originTwoBack] = this.state.origins;
    if (originTwoBack === undefined) throw new Error("work ledger state has no origins");
    const epochInfo = await this.epochAt({ number: BigInt(originTwoBack.number), hash: originTwoBack.hash });
    if (epochInfo === null) return false;
    const epoch = epochInfo.epoch;
    const next: LedgerState = structuredClone(this.state);
    let tally = next.open.find((t) => t.epoch === epoch.toString());
    if (tally === undefined) {
      tally = {
        epoch: epoch.toString(),
        setId: header.validatorSetId,
        registrySetId: epochInfo.setId,
        firstHeight: h,
        lastHeight: h,
        proposed: {},
        signed: [],
      };
      next.open.push(tally);
    }
    if (tally.setId !== header.validatorSetId) {
      // The set changes only at an epoch's start (membership.ts); anything else is a bug worth hearing about.
      this.m.log.error(
        { height: h, epoch: epoch.toString(), tallied: tally.setId, header: header.validatorSetId },
        "a height of the epoch is decided by another set than the epoch's first height",
      );
    }
    tally.lastHeight = h;
    const proposer = header.proposer.toLowerCase();
    tally.proposed[proposer] = (tally.proposed[proposer] ?? 0) + 1;
    const completed: WorkReport[] = [];
    if (h > 1) {
      // The block carries the canonical certificate of h - 1, whose epoch is the cursor's.
      const cert = decodeCertificate(block.lastCertificate);
      const prev = next.open.find((t) => t.epoch === next.cursorEpoch);
      if (prev === undefined)
        throw new Error(`work ledger has no tally for epoch ${next.cursorEpoch} of height ${h - 1}`);
      const set = await this.m.store.getValidatorSet(cert.validatorSetId);
      if (set === undefined) throw new Error(`validator set ${cert.validatorSetId} of height ${h - 1} is not stored`);
      for (const i of certificateSigners(cert, set)) prev.signed[i] = (prev.signed[i] ?? 0) + 1;
      // Every tally older than this height's epoch now has all its certificates.
      const origin = { number: BigInt(originTwoBack.number), hash: originTwoBack.hash };
      for (const t of next.open.filter((t) => BigInt(t.epoch) < epoch)) {
        if (t.partial === true) {
          this.m.log.info(
            { epoch: t.epoch, heights: `${t.firstHeight}-${t.lastHeight}` },
            "epoch counted from a later height than its first: no work report",
          );
          continue;
        }
        const report = await this.complete(t, origin);
        if (report === null) return false;
        completed.push(report);
      }
      next.open = next.open.filter((t) => BigInt(t.epoch) >= epoch);
    }
    next.cursor = h;
    next.cursorEpoch = epoch.toString();
    next.origins = [
      next.origins[1] ?? originTwoBack,
      { number: header.l1Origin.number.toString(), hash: header.l1Origin.hash },
    ];
    const ops: { type: "put"; key: string; value: string }[] = [
      { type: "put", key: STATE_KEY, value: JSON.stringify(next) },
    ];
    for (const r of completed) ops.push({ type: "put", key: reportKey(r.epoch), value: reportToJson(r) });
    await this.db.batch(ops);
    this.state = next;
    for (const r of completed) {
      this.reports.set(r.epoch, r);
      while (this.reports.size > MAX_KEPT_REPORTS) this.reports.delete(minKey(this.reports));
      this.m.log.info(
        {
          epoch: r.epoch.toString(),
          heights: `${r.firstHeight}-${r.lastHeight}`,
          digest: r.digest,
          submittable: r.submittable,
        },
        "epoch work report complete",
      );
      for (const listener of this.listeners) listener(r);
    }
    return true;
  }

  /** The report of a completed tally; null when the L1 view cannot give the epoch's batch counts yet. */
  private async complete(t: Tally, after: L1Ref): Promise<WorkReport | null> {
    const set = await this.m.store.getValidatorSet(t.setId);
    if (set === undefined) throw new Error(`validator set ${t.setId} of epoch ${t.epoch} is not stored`);
    const epoch = BigInt(t.epoch);
    const submittable = epoch > 0n && t.setId === t.registrySetId;
    let batches: readonly bigint[] = [];
    if (submittable) {
      const answer = await this.m.l1.batchesPosted(after, epoch);
      if (answer.kind !== "ok") {
        this.m.log.debug({ epoch: t.epoch, reason: answer.reason }, "work ledger waits for the epoch's batch counts");
        return null;
      }
      batches = answer.value;
    }
    const members = set.validators.map((v) => ({
      address: v.address.toLowerCase() as Hex,
      publicKey: toHex(v.publicKey),
      votingPower: v.votingPower,
    }));
    const entries = members.map((m, i) => ({
      blocksProposed: BigInt(t.proposed[m.address] ?? 0),
      precommitsSigned: BigInt(t.signed[i] ?? 0),
      batchesPosted: batches[i] ?? 0n,
    }));
    if (!submittable && epoch > 0n) {
      this.m.log.warn(
        { epoch: t.epoch, chainSet: t.setId, registrySet: t.registrySetId },
        "the chain's set for this epoch is not the registry's: its work report cannot be submitted",
      );
    }
    return {
      epoch,
      firstHeight: t.firstHeight,
      lastHeight: t.lastHeight,
      setId: t.setId,
      members,
      entries,
      digest: toHex(workReportDigest(this.m.genesis.chainId, epoch, entries)),
      submittable,
    };
  }

  private async epochAt(origin: L1Ref): Promise<{ epoch: bigint; setId: Hex } | null> {
    const key = origin.hash.toLowerCase() as Hex;
    const cached = this.epochByOrigin.get(key);
    if (cached !== undefined) return cached;
    const answer = await this.m.l1.epochAt(origin);
    if (answer.kind !== "ok") {
      const level = answer.kind === "invalid" ? "error" : "debug";
      this.m.log[level]({ origin: origin.number.toString(), reason: answer.reason }, "work ledger waits for L1");
      return null;
    }
    const value = { epoch: answer.value.epoch, setId: answer.value.setId.toLowerCase() as Hex };
    this.epochByOrigin.set(key, value);
    if (this.epochByOrigin.size > 16) this.epochByOrigin.delete(this.epochByOrigin.keys().next().value as Hex);
    return value;
  }
}

function minKey(map: ReadonlyMap<bigint, unknown>): bigint {
  let min: bigint | null = null;
  for (const k of map.keys()) if (min === null || k < min) min = k;
  return min ?? 0n;
}

function reportToJson(r: WorkReport): string {
  return JSON.stringify(r, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
}

function reportFromJson(text: string): WorkReport {
  return JSON.parse(text, (_, v) => (typeof v === "string" && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v));
}

/** The report as JSON-RPC returns it (lumia_getWorkReport). */
export function workReportJson(r: WorkReport): Record<string, unknown> {
  return {
    epoch: `0x${r.epoch.toString(16)}`,
    firstHeight: `0x${r.firstHeight.toString(16)}`,
    lastHeight: `0x${r.lastHeight.toString(16)}`,
    validatorSetId: r.setId,
    digest: r.digest,
    submittable: r.submittable,
    entries: r.members.map((m, i) => {
      const e = r.entries[i];
      return {
        address: m.address,
        publicKey: m.publicKey,
        votingPower: `0x${m.votingPower.toString(16)}`,
        blocksProposed: `0x${(e?.blocksProposed ?? 0n).toString(16)}`,
        precommitsSigned: `0x${(e?.precommitsSigned ?? 0n).toString(16)}`,
        batchesPosted: `0x${(e?.batchesPosted ?? 0n).toString(16)}`,
      };
    }),
  };
}
