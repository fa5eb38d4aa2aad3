// The L1 mirror: the node's L1View over an Ethereum JSON-RPC endpoint (viem, HTTP or WebSocket). A timer polls the
// head, keeps the canonical chain near it as a bounded map number -> hash, and follows reorgs by walking back from its
// tip to the highest block whose hash still matches (the fork point), then refilling forward. A block is confirmed
// once `confirmations` blocks sit on top of it; answers about a block are about its hash, so every honest node that
// sees the same canonical L1 answers alike. Registry reads are eth_calls AT the block hash (EIP-1898), cached by hash.
// Failures never reach callers: they become "unknown" answers, a counter, a log line and exponential backoff.
// The newest confirmed block is saved in a small level DB of its own, so a restart resumes there (and notices a
// reorg that happened while it was down) instead of starting blind.
import { peerIdFromMultihash } from "@libp2p/peer-id";
import { Level } from "level";
import * as Digest from "multiformats/hashes/digest";
import type { Registry } from "prom-client";
import {
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  ContractFunctionZeroDataError,
  createPublicClient,
  type PublicClient,
  type Transport,
} from "viem";
import { fromHex, type Hex } from "../../consensus/bytes.ts";
import { computeValidatorSetId, ValidatorSetError } from "../../consensus/validator-set.ts";
import { BatchInbox, Portal, SequencerRegistry } from "../../staking-contracts/artifacts.ts";
import type { Deposit } from "../chain/block.ts";
import {
  epochAtBlock,
  readStakerReport,
  resolveStakingContracts,
  type StakerReport,
  type StakingContracts,
  stakerReportJson,
} from "./staker.ts";
import {
  type IndexContext,
  levelIndexStore,
  memoryIndexStore,
  STAKER_INDEX_LIMITS,
  StakerIndex,
} from "./staker-index.ts";
import {
  closeL1Client,
  createL1Metrics,
  createL1Transport,
  isWebSocketUrl,
  L1_NOT_CONFIGURED,
  type L1Metrics,
  type L1Status,
  l1EndpointName,
  shortError,
} from "./status.ts";
import type { L1Answer, L1Epoch, L1Member, L1Ref, L1View } from "./view.ts";

export const L1_MIRROR_LIMITS = {
  /** Blocks of the canonical chain kept near the head: the deepest reorg the mirror follows block by block. */
  windowBlocks: 1024,
  /** Hashes of older blocks fetched for checkConfirmed (deep, so they do not change). */
  oldBlockCacheEntries: 4096,
  /** Epoch answers cached by block hash. */
  epochCacheEntries: 256,
  /** More than the registry allows (100 validators, 128 candidates): anything above is not our registry. */
  maxMembers: 128,
  /** Block headers requested concurrently (one JSON-RPC batch over HTTP). */
  fetchConcurrency: 64,
  defaultRequestTimeoutMs: 5_000,
  defaultMaxBackoffMs: 60_000,
  /** L1 blocks per eth_getLogs request when reading portal deposits (providers cap log ranges). */
  depositScanBlocks: 2_000n,
  /** Staker reports (lumia_getStake / lumia_getRewards) read from the L1 at once; more wait, up to stakerReadsQueued. */
  stakerReadsInFlight: 4,
  stakerReadsQueued: 64,
  /** Staker reports kept for the confirmed block they were read at (by address and kind). */
  stakerReportCacheEntries: 1024,
} as const;

const RESUME_KEY = "resume";

export interface L1MirrorOptions {
  readonly rpcUrl: string;
  /** Endpoints used in turn when the one in use fails (config `l1.fallbackRpcUrls`; src/l1/failover.ts). */
  readonly fallbackRpcUrls?: readonly string[];
  /** How long after a switch away from `rpcUrl` it is tried again (default 60 s). */
  readonly primaryRetryMs?: number;
  readonly pollIntervalMs: number;
  /** Blocks on top of a block before it is confirmed (0 = the head itself). */
  readonly confirmations: number;
  /** SequencerRegistry address; null = no epochs (epochAt answers "unknown"). */
  readonly registry: Hex | null;
  /** The hard-finality Portal (genesis l1.finality.portal); null = no deposits (depositsAt answers none). */
  readonly portal?: Hex | null;
  /** The batch inbox (genesis l1.finality.batchInbox); null = no batches (batchesPosted answers zeros). */
  readonly batchInbox?: Hex | null;
  /** Directory of the mirror's own level DB (the resume point, the staking index); null = nothing saved. */
  readonly dbPath: string | null;
  readonly requestTimeoutMs?: number;
  readonly maxBackoffMs?: number;
  readonly windowBlocks?: number;
}

/** Who may connect: the epoch's set and the registry's candidates for the next one, as of a confirmed block. */
export interface L1Membership {
  readonly at: L1Ref;
  readonly epoch: bigint;
  readonly members: readonly L1Member[];
  /** Peer ids of the Active and Exiting sequencers (the next set is chosen among them). */
  readonly candidatePeerIds: readonly string[];
}

export interface L1MirrorModules {
  /** Registers the dcn_l1_* metrics here when given. */
  readonly registry?: Registry;
  readonly log?: (level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>) => void;
  readonly nowMs?: () => number;
  /** Called when the epoch (or the candidates) at the confirmed block changed: the admission list's input. */
  readonly onMembership?: (membership: L1Membership) => void;
}

export type L1MirrorErrorCode = "db_open" | "wrong_chain";

/** The mirror's own DB cannot be opened (another node process holds it?); an endpoint serves another chain. */
export class L1MirrorError extends Error {
  override readonly name = "L1MirrorError";
  constructor(
    readonly code: L1MirrorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Counters for tests and status: what the mirror did since it opened. */
export interface L1MirrorStats {
  readonly blocksFetched: number;
  readonly reorgs: number;
  /** Reorgs that replaced a block already at confirmation depth. */
  readonly confirmedReorgs: number;
  readonly rpcErrors: number;
  readonly deepestReorg: number;
  /**
   * Reads of an old L1 block answered from a newer confirmed block instead, because the endpoint no longer serves the
   * old block's state (a full node keeps about the last 128): epochAt from the registry's epoch history, batchesPosted
   * from counts that stopped changing.
   */
  readonly historyReads: number;
}

interface BlockHeader {
  readonly number: bigint;
  readonly hash: Hex;
  readonly parentHash: Hex;
}

/** The libp2p peer id string of the registry's peer id bytes (a multihash), or null when they are not one. */
export function peerIdFromBytes(bytes: Hex): string | null {
  try {
    return peerIdFromMultihash(Digest.decode(fromHex(bytes))).toString();
  } catch {
    return null;
  }
}

/** A revert or a missing contract: the same answer from every node at that block, unlike a transport failure. */
function isDeterministicFailure(error: unknown): boolean {
  if (!(error instanceof BaseError)) return false;
  return (
    error.walk((e) => e instanceof ContractFunctionRevertedError || e instanceof ContractFunctionZeroDataError) !== null
  );
}

function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done === true) break;
    map.delete(oldest.value);
  }
}

const lower = (h: string): Hex => h.toLowerCase() as Hex;

export class L1Mirror implements L1View {
  private client: PublicClient;
  private readonly ws: boolean;
  private readonly window: bigint;
  /** Canonical chain near the head: number -> hash, numbers contiguous from tip - size + 1 to tip. */
  private readonly chain = new Map<bigint, Hex>();
  private tip: bigint | null = null;
  private confirmed: L1Ref | null;
  private readonly oldBlocks = new Map<bigint, Hex>();
  private readonly epochs = new Map<Hex, L1Answer<L1Epoch>>();
  private readonly epochReads = new Map<Hex, Promise<L1Answer<L1Epoch>>>();
  private current: L1Status;
  private membership: L1Membership | null = null;
  private contracts: StakingContracts | undefined;
  private lastSequencerCount: number | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inFlight: Promise<void> | null = null;
  private failures = 0;
  private stopped = false;
  private counts = {
    blocksFetched: 0,
    reorgs: 0,
    confirmedReorgs: 0,
    rpcErrors: 0,
    deepestReorg: 0,
    historyReads: 0,
  };
  /** First L1 block of each registry epoch (fixed once the epoch exists): the epoch history's index. */
  private readonly epochStarts = new Map<bigint, bigint>();
  /** Portal deposits by nonce, read from the confirmed blocks `depositsFrom` to `depositsScanned`. */
  private readonly deposits = new Map<bigint, Deposit>();
  /** The first L1 block read for deposits: null until a block is first asked for (depositsAt's `scanFrom`). */
  private depositsFrom: bigint | null = null;
  private depositsScanned = -1n;
  private depositScan: Promise<void> | null = null;
  /** The Portal's deployment block (`deployedAtBlock`; 0 for a Portal without it): no deposit is older. */
  private portalDeployedAt: bigint | null = null;
  /** Pools and claims by address from the staking events of confirmed blocks (src/l1/staker-index.ts). */
  private readonly stakerIndex: StakerIndex;
  /** Staker reports by confirmed block hash, address and kind, under way or done (unknown answers are not kept). */
  private readonly stakerReports = new Map<string, Promise<StakerAnswer>>();
  private stakerReadsActive = 0;
  /** The last failure to extend the staking index was logged (once until it works again). */
  private stakerIndexFailing = false;
  private readonly stakerReadsWaiting: (() => void)[] = [];
  private readonly metrics: L1Metrics | null;
  private readonly nowMs: () => number;
  private transport: Transport | undefined;

  private constructor(
    private readonly opts: L1MirrorOptions,
    private readonly m: L1MirrorModules,
    private readonly db: Level<string, string> | null,
    resume: L1Ref | null,
  ) {
    this.ws = [opts.rpcUrl, ...(opts.fallbackRpcUrls ?? [])].some(isWebSocketUrl);
    this.client = this.createClient();
    this.window = BigInt(Math.max(opts.windowBlocks ?? L1_MIRROR_LIMITS.windowBlocks, opts.confirmations + 1));
    this.metrics = m.registry === undefined ? null : createL1Metrics(m.registry);
    this.nowMs = m.nowMs ?? Date.now;
    this.stakerIndex = new StakerIndex(db === null ? memoryIndexStore() : levelIndexStore(db, "staker"));
    this.confirmed = resume;
    if (resume !== null) {
      // The saved block is the starting tip: the first poll checks it is still canonical (a reorg while down).
      this.chain.set(resume.number, resume.hash);
      this.tip = resume.number;
    }
    this.current = {
      ...L1_NOT_CONFIGURED,
      configured: true,
      confirmations: opts.confirmations,
      confirmedBlock: resume === null ? null : Number(resume.number),
      endpoint: 0,
    };
    this.metrics?.endpoint.set(0);
  }

  private createClient(): PublicClient {
    const timeoutMs = this.opts.requestTimeoutMs ?? L1_MIRROR_LIMITS.defaultRequestTimeoutMs;
    // cacheTime 0: viem would otherwise answer getBlockNumber from a 4 s cache.
    // One failover transport for the mirror's life: a WebSocket client made again after a failure keeps its endpoint.
    this.transport ??= createL1Transport([this.opts.rpcUrl, ...(this.opts.fallbackRpcUrls ?? [])], timeoutMs, true, {
      ...(this.opts.primaryRetryMs === undefined ? {} : { primaryRetryMs: this.opts.primaryRetryMs }),
      onSwitch: (from, to, error) => {
        this.current = { ...this.current, endpoint: to };
        this.metrics?.endpoint.set(to);
        this.metrics?.endpointSwitches.inc();
        if (error === null) {
          this.m.log?.("info", "trying the primary L1 endpoint (l1.rpcUrl) again", { from: l1EndpointName(from) });
        } else {
          this.m.log?.("warn", "L1 endpoint failed: switching to the next", {
            from: l1EndpointName(from),
            to: l1EndpointName(to),
            error: shortError(error),
          });
        }
      },
    });
    return createPublicClient({ transport: this.transport, cacheTime: 0 });
  }

  /** Opens the mirror's DB (when `dbPath` is set) and loads the resume point. Does not touch the L1: see start(). */
  static async open(opts: L1MirrorOptions, modules: L1MirrorModules = {}): Promise<L1Mirror> {
    let db: Level<string, string> | null = null;
    let resume: L1Ref | null = null;
    if (opts.dbPath !== null) {
      db = new Level<string, string>(opts.dbPath, { valueEncoding: "utf8" });
      try {
        await db.open();
      } catch (cause) {
        throw new L1MirrorError("db_open", `cannot open the L1 mirror's DB at ${opts.dbPath}: ${String(cause)}`, {
          cause,
        });
      }
      const saved = await db.get(RESUME_KEY);
      if (saved !== undefined) {
        const parsed = JSON.parse(saved) as { number: string; hash: Hex };
        resume = { number: BigInt(parsed.number), hash: lower(parsed.hash) };
      }
    }
    return new L1Mirror(opts, modules, db, resume);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // L1View

  confirmedHead(): L1Ref | null {
    return this.confirmed;
  }

  async checkConfirmed(ref: L1Ref): Promise<L1Answer<true>> {
    // A block newer than this node's confirmed head is usually one its last poll just missed (the proposer's mirror
    // polled later): poll now, once, rather than prevote nil and cost the subnet a round.
    if (this.confirmed === null || ref.number > this.confirmed.number) await this.pollOnce();
    const confirmed = this.confirmed;
    if (confirmed === null) return { kind: "unknown", reason: "the L1 mirror has no confirmed block yet" };
    if (ref.number > confirmed.number) {
      return {
        kind: "unknown",
        reason: `L1 block ${ref.number} is not at confirmation depth yet (confirmed head ${confirmed.number})`,
      };
    }
    if (ref.number < 0n) return { kind: "invalid", reason: `L1 block number ${ref.number} is negative` };
    let known: Hex;
    try {
      known = await this.canonicalHash(ref.number);
    } catch (error) {
      this.countRpcError();
      return { kind: "unknown", reason: `cannot read L1 block ${ref.number}: ${shortError(error)}` };
    }
    if (known === lower(ref.hash)) return { kind: "ok", value: true };
    return { kind: "invalid", reason: `L1 block ${ref.number} is ${known} on the canonical chain, not ${ref.hash}` };
  }

  /** The hash of canonical L1 block `number` at or below the confirmed head: the window, the cache, else a read. */
  private async canonicalHash(number: bigint): Promise<Hex> {
    let known = this.chain.get(number) ?? this.oldBlocks.get(number);
    if (known === undefined) {
      known = (await this.fetchBlock(number)).hash;
      setBounded(this.oldBlocks, number, known, L1_MIRROR_LIMITS.oldBlockCacheEntries);
    }
    return known;
  }

  async epochAt(ref: L1Ref): Promise<L1Answer<L1Epoch>> {
    const confirmed = await this.checkConfirmed(ref);
    if (confirmed.kind !== "ok") return confirmed;
    if (this.opts.registry === null) return { kind: "unknown", reason: "no l1.registry is configured" };
    const key = lower(ref.hash);
    const cached = this.epochs.get(key);
    if (cached !== undefined) return cached;
    let read = this.epochReads.get(key);
    if (read === undefined) {
      read = this.readEpochAt({ number: ref.number, hash: key }).finally(() => this.epochReads.delete(key));
      this.epochReads.set(key, read);
    }
    const answer = await read;
    // An unknown is a transport failure: asked again next time.
    if (answer.kind !== "unknown") setBounded(this.epochs, key, answer, L1_MIRROR_LIMITS.epochCacheEntries);
    return answer;
  }

  /**
   * The registry's epoch at `ref` read at the state of `ref` itself, or, when the endpoint cannot serve that state
   * (older than what a full node keeps, or an L1 restarted from a state dump), from the epoch history at the confirmed
   * head: the epoch at `ref` is the last one whose first block is at or before `ref`, and an epoch's keys, powers
   * and set id never change once it exists. Both give the same keys, powers, epoch and set id; peer ids and operators
   * (which consensus does not use) are then the current ones.
   */
  private async readEpochAt(ref: L1Ref): Promise<L1Answer<L1Epoch>> {
    return this.readOrLater(
      ref,
      () => this.readEpoch(ref.hash),
      (head) => this.readEpochFromHistory(ref.number, head),
    );
  }

  /**
   * `atRef()`, or when it fails for want of state (unknown: not a revert) and the confirmed head is newer than `ref`,
   * `atHead(head)`, which answers the same from the head's state. One RPC error is counted only if neither answers.
   */
  private async readOrLater<T>(
    ref: L1Ref,
    atRef: () => Promise<L1Answer<T>>,
    atHead: (head: L1Ref) => Promise<L1Answer<T>>,
  ): Promise<L1Answer<T>> {
    const direct = await atRef();
    if (direct.kind !== "unknown") return direct;
    const head = this.confirmed;
    if (head === null || head.number <= ref.number) {
      this.countRpcError();
      return direct;
    }
    const later = await atHead(head);
    if (later.kind === "unknown") {
      this.countRpcError();
      return { kind: "unknown", reason: `${direct.reason}; at L1 block ${head.number}: ${later.reason}` };
    }
    this.countHistoryRead(ref, head, direct.reason);
    return later;
  }

  private countHistoryRead(old: L1Ref, at: L1Ref, reason: string): void {
    this.counts.historyReads++;
    this.metrics?.historyReads.inc();
    if (this.counts.historyReads > 1) return;
    this.m.log?.("info", "the L1 endpoint does not serve the state of old blocks: reading them from newer ones", {
      l1Block: Number(old.number),
      at: Number(at.number),
      reason,
    });
  }

  /** The first L1 block of registry `epoch`, read at `blockHash` (any block after the epoch began) and kept. */
  private async epochStart(epoch: bigint, blockHash: Hex): Promise<bigint> {
    const known = this.epochStarts.get(epoch);
    if (known !== undefined) return known;
    const info = await this.registryCall<{ startBlock: bigint }>("epochInfo", [epoch], blockHash);
    const first = BigInt(info.startBlock);
    this.epochStarts.set(epoch, first);
    return first;
  }

  private async readEpochFromHistory(number: bigint, at: L1Ref): Promise<L1Answer<L1Epoch>> {
    try {
      const current = BigInt(await this.registryCall<bigint>("currentEpoch", [], at.hash));
      const epoch = await epochAtBlock(number, current, (e) => this.epochStart(e, at.hash));
      if (epoch === null) return { kind: "invalid", reason: `the registry was deployed after L1 block ${number}` };
      return await this.readEpoch(at.hash, epoch);
    } catch (error) {
      return { kind: "unknown", reason: `registry epoch history at ${at.hash} failed: ${shortError(error)}` };
    }
  }

  async depositsAt(ref: L1Ref, fromNonce: bigint, max: number, scanFrom = 0n): Promise<L1Answer<Deposit[]>> {
    const portal = this.opts.portal ?? null;
    if (portal === null) return { kind: "ok", value: [] };
    const confirmed = await this.checkConfirmed(ref);
    if (confirmed.kind !== "ok") return confirmed;
    // No deposit is older than the Portal: a node starting from the genesis (scanFrom 0) reads from its deployment.
    const deployedAt = await this.portalDeployment(portal, ref);
    if (deployedAt.kind !== "ok") return deployedAt;
    if (scanFrom < deployedAt.value) scanFrom = deployedAt.value;
    // One read at a time: wait for the one under way, then extend the range read downwards or upwards as needed.
    for (;;) {
      if (this.depositScan === null) {
        if (this.depositsFrom === null) {
          // The first ask: no block before `scanFrom` can hold a deposit still to include (depositsScanFrom).
          this.depositsFrom = scanFrom;
          this.depositsScanned = scanFrom - 1n;
        }
        const first = this.depositsFrom;
        if (scanFrom < first) {
          this.startScan(
            this.scanRange(portal, scanFrom, first - 1n).then(() => {
              this.depositsFrom = scanFrom;
            }),
          );
        } else if (this.depositsScanned < ref.number) {
          this.startScan(this.scanDeposits(portal, ref.number));
        } else {
          break;
        }
      }
      try {
        await this.depositScan;
      } catch (error) {
        this.countRpcError();
        return { kind: "unknown", reason: `cannot read portal deposits: ${shortError(error)}` };
      }
    }
    const out: Deposit[] = [];
    for (let nonce = fromNonce; out.length < max; nonce++) {
      const d = this.deposits.get(nonce);
      if (d === undefined || d.l1BlockNumber > ref.number) break;
      out.push(d);
    }
    return { kind: "ok", value: out };
  }

  /**
   * The Portal's `deployedAtBlock`, read once at the confirmed head (it is immutable, and the head's state is served
   * by any endpoint); 0 for a Portal that has no such getter.
   */
  private async portalDeployment(portal: Hex, ref: L1Ref): Promise<L1Answer<bigint>> {
    if (this.portalDeployedAt === null) {
      try {
        const block = await this.client.readContract({
          address: portal as Address,
          abi: Portal.abi,
          functionName: "deployedAtBlock",
          blockHash: (this.confirmed ?? ref).hash,
        });
        this.portalDeployedAt = BigInt(block);
      } catch (error) {
        if (!isDeterministicFailure(error)) {
          this.countRpcError();
          return { kind: "unknown", reason: `cannot read the portal's deployment block: ${shortError(error)}` };
        }
        this.portalDeployedAt = 0n;
      }
    }
    return { kind: "ok", value: this.portalDeployedAt };
  }

  async batchesPosted(ref: L1Ref, epoch: bigint): Promise<L1Answer<readonly bigint[]>> {
    const confirmed = await this.checkConfirmed(ref);
    if (confirmed.kind !== "ok") return confirmed;
    if (this.opts.registry === null) return { kind: "unknown", reason: "no l1.registry is configured" };
    // `ref` is after the epoch ended, so its counts no longer change: a newer block has the same ones.
    return this.readOrLater(
      ref,
      () => this.readBatchCounts(ref.hash, epoch),
      (head) => this.readBatchCounts(head.hash, epoch),
    );
  }

  private async readBatchCounts(blockHash: Hex, epoch: bigint): Promise<L1Answer<readonly bigint[]>> {
    try {
      const members = await this.registryCall<readonly { sequencerId: number }[]>("epochMembers", [epoch], blockHash);
      const inbox = this.opts.batchInbox ?? null;
      if (inbox === null) return { kind: "ok", value: members.map(() => 0n) };
      const counts = await Promise.all(
        members.map(
          (m) =>
            this.client.readContract({
              address: inbox as Address,
              abi: BatchInbox.abi,
              functionName: "batchesOf",
              args: [epoch, m.sequencerId],
              blockHash,
            }) as Promise<bigint>,
        ),
      );
      return { kind: "ok", value: counts.map((c) => BigInt(c)) };
    } catch (error) {
      return { kind: "unknown", reason: `cannot read batch counts of epoch ${epoch}: ${shortError(error)}` };
    }
  }

  /**
   * Reads the deposits of newly confirmed blocks as they are confirmed, so that a block anchored there finds them read
   * instead of waiting for an L1 round trip while it is validated. A failure is left to depositsAt, which reads again.
   */
  private async scanDepositsAhead(): Promise<void> {
    const portal = this.opts.portal ?? null;
    const confirmed = this.confirmed;
    // Nothing before the first ask: where reading starts comes from the chain (depositsAt's `scanFrom`).
    if (portal === null || confirmed === null || this.depositsFrom === null) return;
    if (this.depositScan !== null || this.depositsScanned >= confirmed.number) return;
    try {
      await this.startScan(this.scanDeposits(portal, confirmed.number));
    } catch {
      // depositsAt asks again and reports it.
    }
  }

  /** The deposit read under way (one at a time): others wait for it through `depositScan`. */
  private startScan(scan: Promise<void>): Promise<void> {
    this.depositScan = scan;
    const done = () => {
      if (this.depositScan === scan) this.depositScan = null;
    };
    scan.then(done, done);
    return scan;
  }

  /** Reads DepositInitiated events of confirmed blocks after the last scan, up to at least `to`. */
  private async scanDeposits(portal: Hex, to: bigint): Promise<void> {
    const until = this.confirmed === null || this.confirmed.number < to ? to : this.confirmed.number;
    await this.scanRange(portal, this.depositsScanned + 1n, until, (end) => {
      this.depositsScanned = end;
    });
  }

  /** Reads the DepositInitiated events of L1 blocks `from` to `to`, in ranges of depositScanBlocks. */
  private async scanRange(portal: Hex, from: bigint, to: bigint, progress?: (end: bigint) => void): Promise<void> {
    for (let start = from; start <= to; ) {
      const end =
        start + L1_MIRROR_LIMITS.depositScanBlocks - 1n < to ? start + L1_MIRROR_LIMITS.depositScanBlocks - 1n : to;
      const logs = await this.client.getContractEvents({
        address: portal as Address,
        abi: Portal.abi,
        eventName: "DepositInitiated",
        fromBlock: start,
        toBlock: end,
      });
      for (const log of logs) {
        const a = log.args as { nonce: bigint; from: Hex; to: Hex; asset: number; amount: bigint };
        this.deposits.set(a.nonce, {
          nonce: a.nonce,
          l1BlockNumber: log.blockNumber,
          from: lower(a.from),
          to: lower(a.to),
          asset: a.asset,
          amount: a.amount,
        });
      }
      progress?.(end);
      start = end + 1n;
    }
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Lifecycle, status

  /** Polls now, then on its own timer until stop(). */
  start(): void {
    if (this.stopped || this.timer !== null || this.inFlight !== null) return;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
    await this.stakerIndex.stop();
    if (this.ws) await closeL1Client(this.client);
    await this.db?.close();
  }

  status(): L1Status {
    return this.current;
  }

  stats(): L1MirrorStats {
    return { ...this.counts };
  }

  /** The last membership read (epoch set and candidates at a confirmed block), or null before the first. */
  currentMembership(): L1Membership | null {
    return this.membership;
  }

  /**
   * The staking position of `address` at the confirmed block (lumia_getStake / lumia_getRewards); `withClaims` adds
   * its claims. Pools and claims come from the staking index, so a report costs 2 + 4 x (pools the address staked
   * in) eth_calls, and a report already read at the confirmed block none. At most stakerReadsInFlight reports are
   * read at once and stakerReadsQueued wait: beyond, "busy" (the L1 endpoint serves consensus first). "unknown"
   * without a registry, before the first confirmed block, while the index is far behind, or when the L1 fails.
   */
  async stakerReport(address: Hex, withClaims: boolean): Promise<StakerAnswer> {
    const at = this.confirmed;
    if (this.opts.registry === null) return { kind: "unknown", reason: "no l1.registry is configured" };
    if (at === null) return { kind: "unknown", reason: "the L1 mirror has no confirmed block yet" };
    const key = `${at.hash}:${lower(address)}:${withClaims ? "claims" : "stake"}`;
    const known = this.stakerReports.get(key);
    if (known !== undefined) return known;
    if (
      this.stakerReadsActive >= L1_MIRROR_LIMITS.stakerReadsInFlight &&
      this.stakerReadsWaiting.length >= L1_MIRROR_LIMITS.stakerReadsQueued
    ) {
      return { kind: "busy", reason: `${L1_MIRROR_LIMITS.stakerReadsQueued} staking reads are waiting: retry` };
    }
    const read = this.readStakerReport(at, address, withClaims);
    setBounded(this.stakerReports, key, read, L1_MIRROR_LIMITS.stakerReportCacheEntries);
    const answer = await read;
    if (answer.kind !== "ok" && this.stakerReports.get(key) === read) this.stakerReports.delete(key);
    return answer;
  }

  private async readStakerReport(at: L1Ref, address: Hex, withClaims: boolean): Promise<StakerAnswer> {
    // A slot of stakerReadsInFlight: taken now, or handed over by a read that ends.
    if (this.stakerReadsActive < L1_MIRROR_LIMITS.stakerReadsInFlight) this.stakerReadsActive++;
    else await new Promise<void>((resolve) => this.stakerReadsWaiting.push(resolve));
    try {
      const indexed = await this.stakerIndexAt(at);
      if (indexed.kind !== "ok") return indexed;
      const found = await this.stakerIndex.of(address as Address, at.number);
      if ("behind" in found) return { kind: "unknown", reason: "the staking index is behind the confirmed block" };
      const report = await readStakerReport(
        this.client,
        indexed.value,
        address as Address,
        { blockHash: at.hash },
        withClaims,
        { indexed: found, epochStart: (e, blockHash) => this.epochStart(e, blockHash as Hex) },
      );
      return { kind: "ok", value: report };
    } catch (error) {
      this.countRpcError();
      return { kind: "unknown", reason: `staking read at L1 block ${at.number} failed: ${shortError(error)}` };
    } finally {
      const next = this.stakerReadsWaiting.shift();
      if (next !== undefined) next();
      else this.stakerReadsActive--;
    }
  }

  /**
   * The staking contracts, once the index has read up to `at`: waits for a short extension (the last poll's), not
   * for a build from far behind, which the polls drive in the background (a request starts nothing then, so a burst
   * of them during a build costs nothing).
   */
  private async stakerIndexAt(at: L1Ref): Promise<L1Answer<StakingContracts>> {
    const ctx = await this.stakerIndexContext(at);
    const indexedTo = (await this.stakerIndex.indexedTo()) ?? ctx.startBlock - 1n;
    if (at.number - indexedTo > STAKER_INDEX_LIMITS.scanBlocks) {
      return {
        kind: "unknown",
        reason: `the staking index is being built: it has read L1 blocks up to ${indexedTo} of ${at.number}`,
      };
    }
    await this.stakerIndex.advance(at.number, ctx);
    return { kind: "ok", value: ctx.contracts };
  }

  private async stakerIndexContext(at: L1Ref): Promise<IndexContext> {
    // The registry's wiring is set once at deployment: resolved once.
    this.contracts ??= await resolveStakingContracts(this.client, this.opts.registry as Address, {
      blockHash: at.hash,
    });
    return {
      client: this.client,
      contracts: this.contracts,
      startBlock: await this.epochStart(0n, at.hash),
      hashOf: (n) => this.canonicalHash(n),
      log: (level, msg, fields) => this.m.log?.(level, msg, fields),
      progress: (block) => this.metrics?.stakerIndexBlock.set(Number(block)),
    };
  }

  /** Extends the staking index to the confirmed block after a poll (not awaited); a failure waits for the next. */
  private async indexStakingAhead(): Promise<void> {
    const at = this.confirmed;
    if (at === null || this.opts.registry === null || this.stopped || this.stakerIndex.busy) return;
    try {
      await this.stakerIndex.advance(at.number, await this.stakerIndexContext(at));
      this.stakerIndexFailing = false;
    } catch (error) {
      this.countRpcError();
      if (!this.stakerIndexFailing) {
        this.m.log?.("warn", "cannot extend the staking index; tried again at each poll", {
          error: shortError(error),
        });
      }
      this.stakerIndexFailing = true;
    }
  }

  /** The viem client the mirror reads with (for other contract views at confirmed blocks). */
  get publicClient(): PublicClient {
    return this.client;
  }

  /** One poll (exposed for tests); never rejects. */
  pollOnce(): Promise<void> {
    if (this.inFlight === null) {
      this.inFlight = this.poll().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  /** The wait before the next poll: the interval, doubled per consecutive failure up to maxBackoffMs. */
  nextDelayMs(): number {
    const max = this.opts.maxBackoffMs ?? L1_MIRROR_LIMITS.defaultMaxBackoffMs;
    if (this.failures === 0) return this.opts.pollIntervalMs;
    return Math.min(max, this.opts.pollIntervalMs * 2 ** Math.min(this.failures, 20));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.pollOnce().then(() => this.schedule(this.nextDelayMs()));
    }, delayMs);
    this.timer.unref?.();
  }

  private countRpcError(): void {
    this.counts.rpcErrors++;
    this.metrics?.rpcErrors.inc();
  }

  private async poll(): Promise<void> {
    try {
      const [chainId, head] = await Promise.all([this.client.getChainId(), this.client.getBlockNumber()]);
      if (this.stopped) return;
      // Every endpoint (the primary and its fallbacks) must serve the chain the mirror first saw.
      const following = this.current.chainId;
      if (following !== null && chainId !== following) {
        throw new L1MirrorError(
          "wrong_chain",
          `the L1 endpoint in use (${l1EndpointName(this.current.endpoint ?? 0)}) serves chain ${chainId}, not ${following}`,
        );
      }
      await this.sync(head);
      if (this.stopped) return;
      const wasConnected = this.current.connected;
      this.failures = 0;
      this.current = {
        ...this.current,
        connected: true,
        chainId,
        headBlock: Number(head),
        lastUpdateMs: this.nowMs(),
        error: null,
        confirmedBlock: this.confirmed === null ? null : Number(this.confirmed.number),
        reorgs: this.counts.reorgs,
      };
      this.metrics?.head.set(Number(head));
      this.metrics?.connected.set(1);
      if (this.confirmed !== null) this.metrics?.confirmedBlock.set(Number(this.confirmed.number));
      if (!wasConnected) this.m.log?.("info", "L1 endpoint answers", { l1ChainId: chainId, l1Head: Number(head) });
      // Not awaited: a first scan over many blocks must not hold the confirmed head back.
      void this.scanDepositsAhead();
      void this.indexStakingAhead();
      await this.refreshMembership();
    } catch (error) {
      if (this.stopped) return;
      const message = shortError(error);
      const first = this.failures === 0;
      this.failures++;
      this.countRpcError();
      this.current = { ...this.current, connected: false, error: message };
      this.metrics?.connected.set(0);
      if (first) {
        this.m.log?.("warn", "L1 endpoint does not answer", { error: message, retryInMs: this.nextDelayMs() });
      }
      if (this.ws) {
        // A WebSocket that failed stays failed (no reconnect): the next poll opens a new one.
        const old = this.client;
        this.client = this.createClient();
        await closeL1Client(old);
      }
    }
  }

  private async fetchBlock(number: bigint): Promise<BlockHeader> {
    const block = await this.client.getBlock({ blockNumber: number });
    this.counts.blocksFetched++;
    if (block.hash === null) throw new Error(`L1 block ${number} has no hash (pending)`);
    return { number, hash: lower(block.hash), parentHash: lower(block.parentHash) };
  }

  private lowest(): bigint | null {
    return this.tip === null ? null : this.tip - BigInt(this.chain.size) + 1n;
  }

  /** Brings the chain map to `head`: finds the fork point below the old tip, drops what was replaced, refills. */
  private async sync(head: bigint): Promise<void> {
    let fork: bigint | null = null;
    const oldTip = this.tip;
    const lowest = this.lowest();
    if (oldTip !== null && lowest !== null) {
      // One header per step: a reorg of depth d costs d reads, bounded by the window.
      for (let n = oldTip < head ? oldTip : head; n >= lowest; n--) {
        const block = await this.fetchBlock(n);
        if (block.hash === this.chain.get(n)) {
          fork = n;
          break;
        }
      }
      const replacedFrom = fork === null ? lowest : fork + 1n;
      if (replacedFrom <= oldTip) this.reorged(replacedFrom, oldTip);
      for (let n = replacedFrom; n <= oldTip; n++) this.chain.delete(n);
      this.tip = fork;
      if (fork === null) this.chain.clear();
    }
    const freshStart = head - BigInt(this.opts.confirmations);
    let start = fork === null ? (freshStart > 0n ? freshStart : 0n) : fork + 1n;
    const windowStart = head - this.window + 1n;
    if (start < windowStart) start = windowStart;
    if (fork !== null && start > fork + 1n) {
      // Too far behind to link: restart the map at the window's start.
      this.chain.clear();
      this.tip = null;
    }
    const chunk = BigInt(L1_MIRROR_LIMITS.fetchConcurrency);
    for (let from = start; from <= head; from += chunk) {
      const to = from + chunk - 1n < head ? from + chunk - 1n : head;
      const numbers: bigint[] = [];
      for (let n = from; n <= to; n++) numbers.push(n);
      const blocks = await Promise.all(numbers.map((n) => this.fetchBlock(n)));
      for (const block of blocks) {
        const parent = this.chain.get(block.number - 1n);
        if (this.tip !== null && parent !== undefined && parent !== block.parentHash) {
          // The chain moved under the fill (another reorg): keep what links, the next poll walks back.
          this.updateConfirmed();
          return;
        }
        this.chain.set(block.number, block.hash);
        this.tip = block.number;
      }
      if (this.stopped) return;
    }
    const keepFrom = this.tip === null ? null : this.tip - this.window + 1n;
    if (keepFrom !== null) {
      for (const n of this.chain.keys()) if (n < keepFrom) this.chain.delete(n);
    }
    this.updateConfirmed();
  }

  private reorged(fromNumber: bigint, oldTip: bigint): void {
    const depth = Number(oldTip - fromNumber + 1n);
    const touchedConfirmed = this.confirmed !== null && fromNumber <= this.confirmed.number;
    this.counts.reorgs++;
    this.counts.deepestReorg = Math.max(this.counts.deepestReorg, depth);
    this.metrics?.reorgs.inc({ depth: touchedConfirmed ? "confirmed" : "shallow" });
    if (touchedConfirmed) {
      this.counts.confirmedReorgs++;
      // Anchors and epoch answers given for the replaced blocks were wrong: nothing here can undo them.
      this.m.log?.("error", "L1 REORG BELOW CONFIRMATION DEPTH: confirmed L1 blocks were replaced", {
        fromBlock: Number(fromNumber),
        oldTip: Number(oldTip),
        depth,
        confirmations: this.opts.confirmations,
        confirmedBlock: this.confirmed === null ? null : Number(this.confirmed.number),
      });
      this.confirmed = null;
      // Deposits were read from confirmed blocks only: read them again from the fork point.
      for (const [nonce, d] of this.deposits) if (d.l1BlockNumber >= fromNumber) this.deposits.delete(nonce);
      if (this.depositsFrom !== null && fromNumber <= this.depositsFrom) {
        this.depositsFrom = null;
        this.depositsScanned = -1n;
      } else if (this.depositsScanned >= fromNumber) {
        this.depositsScanned = fromNumber - 1n;
      }
    } else {
      this.m.log?.("info", "L1 reorg within confirmation depth", { fromBlock: Number(fromNumber), depth });
    }
  }

  private updateConfirmed(): void {
    if (this.tip === null) return;
    const number = this.tip - BigInt(this.opts.confirmations);
    const hash = this.chain.get(number);
    if (hash === undefined) return;
    if (this.confirmed?.number === number && this.confirmed.hash === hash) return;
    this.confirmed = { number, hash };
    void this.db
      ?.put(RESUME_KEY, JSON.stringify({ number: number.toString(), hash }))
      .catch((err: unknown) => this.m.log?.("warn", "cannot save the L1 resume point", { error: String(err) }));
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Registry reads

  private registryCall<T>(functionName: string, args: readonly unknown[], blockHash: Hex): Promise<T> {
    const address = this.opts.registry as Address;
    return this.client.readContract({
      address,
      abi: SequencerRegistry.abi,
      functionName: functionName as never,
      args: args as never,
      blockHash,
    }) as Promise<T>;
  }

  /** The registry's set of `epoch` (default: its current epoch) read at `blockHash`. */
  private async readEpoch(blockHash: Hex, ofEpoch?: bigint): Promise<L1Answer<L1Epoch>> {
    try {
      const epoch = ofEpoch ?? (await this.registryCall<bigint>("currentEpoch", [], blockHash));
      const [[publicKeys, powers, setId], members] = await Promise.all([
        this.registryCall<readonly [readonly Hex[], readonly bigint[], Hex]>("validatorSet", [epoch], blockHash),
        this.registryCall<readonly { sequencerId: number; power: bigint }[]>("epochMembers", [epoch], blockHash),
      ]);
      if (publicKeys.length > L1_MIRROR_LIMITS.maxMembers || members.length !== publicKeys.length) {
        return {
          kind: "invalid",
          reason: `registry epoch ${epoch}: ${publicKeys.length} keys and ${members.length} members (limit ${L1_MIRROR_LIMITS.maxMembers})`,
        };
      }
      const infos = await Promise.all(members.map((m) => this.sequencerInfo(m.sequencerId, blockHash)));
      const out: L1Member[] = [];
      for (const [i, info] of infos.entries()) {
        const publicKey = publicKeys[i];
        const power = powers[i];
        const member = members[i];
        if (publicKey === undefined || power === undefined || member === undefined) throw new Error("length checked");
        if (BigInt(member.power) !== BigInt(power)) {
          return { kind: "invalid", reason: `registry epoch ${epoch}: member ${i} power differs between views` };
        }
        out.push({
          publicKey: lower(publicKey),
          votingPower: BigInt(power),
          peerId: info.peerId,
          operator: info.operator,
        });
      }
      if (out.length > 0) {
        const computed = computeValidatorSetId(
          out.map((v) => ({ publicKey: fromHex(v.publicKey), votingPower: v.votingPower })),
        );
        if (computed !== lower(setId)) {
          return {
            kind: "invalid",
            reason: `registry epoch ${epoch}: set id ${setId} is not the id of its members (${computed})`,
          };
        }
      }
      return { kind: "ok", value: { epoch, members: out, setId: lower(setId) } };
    } catch (error) {
      if (error instanceof ValidatorSetError || isDeterministicFailure(error)) {
        return { kind: "invalid", reason: `registry read at ${blockHash} failed: ${shortError(error)}` };
      }
      return { kind: "unknown", reason: `registry read at ${blockHash} failed: ${shortError(error)}` };
    }
  }

  private async sequencerInfo(sequencerId: number, blockHash: Hex): Promise<{ peerId: string; operator: Hex }> {
    const s = await this.registryCall<{ operator: Hex; peerId: Hex }>("sequencer", [sequencerId], blockHash);
    // An operator that registered bytes that are no peer id cannot be admitted; consensus still counts its key.
    return { peerId: peerIdFromBytes(s.peerId) ?? "", operator: lower(s.operator) };
  }

  /** Reads the epoch's set and the candidates at the confirmed block when the epoch or the sequencer count moved. */
  private async refreshMembership(): Promise<void> {
    const at = this.confirmed;
    if (at === null || this.opts.registry === null || this.stopped) return;
    if (this.membership !== null && this.membership.at.hash === at.hash) return;
    try {
      const [epoch, count] = await Promise.all([
        this.registryCall<bigint>("currentEpoch", [], at.hash),
        this.registryCall<number>("sequencerCount", [], at.hash),
      ]);
      if (this.membership !== null && this.membership.epoch === epoch && this.lastSequencerCount === count) {
        this.membership = { ...this.membership, at };
        return;
      }
      const answer = await this.epochAt(at);
      if (answer.kind !== "ok") {
        this.m.log?.("warn", "cannot read the registry's epoch at the confirmed L1 block", {
          l1Block: Number(at.number),
          reason: answer.reason,
        });
        return;
      }
      const ids = await this.registryCall<readonly number[]>("candidates", [], at.hash);
      const candidates = await Promise.all(
        ids.slice(0, L1_MIRROR_LIMITS.maxMembers).map((id) => this.sequencerInfo(id, at.hash)),
      );
      const changedEpoch = this.membership?.epoch !== epoch;
      this.membership = {
        at,
        epoch,
        members: answer.value.members,
        candidatePeerIds: candidates.map((c) => c.peerId).filter((p) => p !== ""),
      };
      this.lastSequencerCount = count;
      this.current = { ...this.current, epoch: Number(epoch) };
      if (changedEpoch) {
        this.m.log?.("info", "L1 registry epoch", {
          epoch: Number(epoch),
          l1Block: Number(at.number),
          members: answer.value.members.length,
          setId: answer.value.setId,
        });
      }
      this.m.onMembership?.(this.membership);
    } catch (error) {
      this.countRpcError();
      this.m.log?.("warn", "cannot read the registry's membership", { error: shortError(error) });
    }
  }
}

/** A staker report, or why there is none now: unknown (L1 or index), invalid, or busy (too many reads waiting). */
export type StakerAnswer = L1Answer<StakerReport> | { readonly kind: "busy"; readonly reason: string };

/** The RPC backend's stakerReport over a mirror: the report as JSON, or the reason it is unknown. */
export function stakerReportOf(mirror: L1Mirror) {
  return async (
    address: Hex,
    withClaims: boolean,
  ): Promise<{ ok: true; value: unknown } | { ok: false; reason: string; busy?: true }> => {
    const answer = await mirror.stakerReport(address, withClaims);
    if (answer.kind === "ok") return { ok: true, value: stakerReportJson(answer.value) };
    return answer.kind === "busy"
      ? { ok: false, reason: answer.reason, busy: true }
      : { ok: false, reason: answer.reason };
  };
}
