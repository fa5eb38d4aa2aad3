// Deterministic simulation of the real node below libp2p: every node runs the production ConsensusDriver, SyncManager,
// gossip verifiers, BlockExecutor (EVM), Mempool and ChainStore on a real LevelDB directory, built by the same
// openNodeState() as `dcn start`, with real BLS (blst) keys. Only the network (gossip and request/response) and the
// clock are simulated, both driven by one seed: delays, loss, duplication, partitions, crash-restarts (including a crash
// right after a vote was made durable and before it left) and a double-voting Byzantine validator.
//
// The simulation steps one event at a time and waits until every node is idle before taking the next, so one seed
// replays the same run. It checks as it goes and at the end: agreement, certificates verify, no honest validator
// signs two different values for one (height, round, step) across restarts, every transaction a client submitted is
// committed exactly once, stores that restarted agree with the rest, evidence names only the Byzantine validator, and
// liveness after GST.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { TransactionSerializable } from "viem";
import { bytesEqual, fromHex, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { encodeCertificate, verifyCertificate } from "../../consensus/certificate.ts";
import type { TimeoutParams } from "../../consensus/machine.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { Evidence, SignedVote, Vote } from "../../consensus/types.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import type { RequestOptions, RequestSpec } from "../../p2p/index.ts";
import { RequestError } from "../../p2p/index.ts";
import { blockHashOfEncoded, decodeBlock } from "../../src/chain/block.ts";
import { buildGenesis, type Genesis, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme, createBlstSigner, generateBlsSecretKey } from "../../src/crypto/blst.ts";
import { describeKeys, type OperatorKeys, peerKeyFromSeed } from "../../src/keys/keys.ts";
import type { L1View } from "../../src/l1/view.ts";
import { type NodeState, openNodeState } from "../../src/node/assemble.ts";
import { type Clock, ConsensusDriver, type DriverParams } from "../../src/node/driver.ts";
import { encodeCertificateMessage, encodeProposalMessage } from "../../src/node/messages.ts";
import { createMetrics } from "../../src/node/metrics.ts";
import { SyncManager, type SyncNetwork } from "../../src/node/sync.ts";
import {
  type VerifierContext,
  verifyCertificateMessage,
  verifyEvidenceMessage,
  verifyProposalMessage,
  verifyVoteMessage,
} from "../../src/node/verifier.ts";
import { encodeEvidence } from "../../src/storage/evidence.ts";
import { addressOf, testAccount } from "../execution/helpers.ts";
import { Prng } from "./prng.ts";

export interface DriverSimConfig {
  readonly seed: number;
  readonly validators: number;
  /** Virtual time the run lasts. */
  readonly durationMs: number;
  /** Before GST: loss, duplication and long delays; after it every message arrives within `delayMs.max`. */
  readonly gstMs: number;
  readonly delayMs: { readonly min: number; readonly max: number; readonly maxBeforeGst: number };
  readonly lossBeforeGst: number;
  readonly duplicate: number;
  /** Group per node during [startMs, endMs); messages and requests across groups are dropped. */
  readonly partitions: readonly { readonly startMs: number; readonly endMs: number; readonly groupOf: number[] }[];
  readonly crashes: readonly { readonly node: number; readonly atMs: number; readonly downMs: number }[];
  /** Chance that a vote, once durable, is never sent because its validator crashes on the spot (pre-GST only). */
  readonly crashAfterVote: number;
  /** Index of a validator that signs a second, conflicting vote for every vote and sends each to half the peers. */
  readonly doubleVoter: number | null;
  /** Transfers submitted by clients at random times before `durationMs - settleMs`. */
  readonly transactions: number;
  /** After GST the run must commit this many heights on every honest node within `livenessWindowMs`. */
  readonly livenessHeights: number;
  readonly livenessWindowMs: number;
  readonly timeouts: TimeoutParams;
  /** The driver's minimum time between heights. */
  readonly blockIntervalMs: number;
  /** With an empty pool, the time between heights (0 = never wait); the pool is each node's real mempool. */
  readonly emptyBlockIntervalMs: number;
  /**
   * Membership from a simulated L1 registry: the genesis anchors the subnet to L1; `genesisMembers` form the genesis
   * set (registry epoch 1); from L1 block `switchAtBlock` on the registry is in epoch 2 with `laterMembers`. An L1 block
   * every `l1BlockMs`; each node's mirror sees blocks after its own lag (up to `maxMirrorLagMs`), `confirmations` deep.
   */
  readonly membership?: {
    readonly genesisMembers: readonly number[];
    readonly laterMembers: readonly number[];
    readonly switchAtBlock: number;
    readonly l1BlockMs: number;
    readonly confirmations: number;
    readonly maxMirrorLagMs: number;
  };
  /** Validators whose certificates never leave them (a block's builder cut off right after it committed). */
  readonly silentCertificates?: readonly number[];
  /** Extra delay of every proposal message: a loaded proposer whose block arrives late. */
  readonly proposalDelayMs?: number;
  /** The driver's bound on its adaptive propose timeout (absent: no adaptation). */
  readonly proposeTimeoutMaxMs?: number;
  /** Called every virtual second with each node's height/round/step (for debugging a seed). */
  readonly trace?: (line: string) => void;
}

export const DEFAULT_TIMEOUTS: TimeoutParams = {
  proposeMs: 300,
  proposeDeltaMs: 100,
  prevoteMs: 150,
  prevoteDeltaMs: 50,
  precommitMs: 150,
  precommitDeltaMs: 50,
};

export interface DriverSimResult {
  readonly heads: readonly number[];
  readonly headHash: Hex;
  readonly violations: readonly string[];
  readonly committedTransactions: number;
  /** Per committed transaction: virtual ms from its first submission to its first commit on any node. */
  readonly txLatencyMs: readonly number[];
  readonly lostTransactions: number;
  readonly crashes: number;
  readonly evidenceAgainst: readonly number[];
  readonly events: number;
  /** keccak over every node's (height, hash) list: equal for two runs of one seed. */
  readonly fingerprint: Hex;
  /** Per live node: the ids of the sets that decided its chain, in order, without repeats. */
  readonly setHistory: readonly (readonly Hex[])[];
  /** The round of each certificate of the first live node's chain, from height 1. */
  readonly commitRounds: readonly number[];
  /** Per validator: certificates it published (silent ones included). */
  readonly certificatesPublished: readonly number[];
}

const CHAIN_ID = 424_242n;
const GWEI = 1_000_000_000n;
const CLIENTS = 4;
const REQUEST_TIMEOUT_MS = 2_000;

type Task = {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => void | Promise<void>;
  cancelled: boolean;
};

/** Min-heap of tasks by (time, insertion order). */
class Agenda {
  private readonly heap: Task[] = [];
  private seq = 0;

  push(atMs: number, run: () => void | Promise<void>): Task {
    const task: Task = { atMs, seq: this.seq++, run, cancelled: false };
    const h = this.heap;
    h.push(task);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!before(h[i] as Task, h[p] as Task)) break;
      [h[i], h[p]] = [h[p] as Task, h[i] as Task];
      i = p;
    }
    return task;
  }

  pop(): Task | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l] as Task, h[m] as Task)) m = l;
      if (r < h.length && before(h[r] as Task, h[m] as Task)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m] as Task, h[i] as Task];
      i = m;
    }
    return top;
  }
}

/** The simulated L1's block hashes: one canonical chain per seed. */
function simL1Hash(seed: number, number: bigint): Hex {
  return toHex(keccak256(new TextEncoder().encode(`sim L1 ${seed} block ${number}`)));
}

/** The validator (index in the set's order) that evidence accuses. */
function accused(e: Evidence): number {
  return e.kind === "duplicateVote" ? e.first.validatorIndex : e.first.proposerIndex;
}

function before(a: Task, b: Task): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

interface Incarnation {
  readonly state: NodeState;
  readonly driver: ConsensusDriver;
  readonly sync: SyncManager;
  readonly verifier: VerifierContext;
  readonly handlers: Map<string, RequestSpec>;
  readonly timers: Set<Task>;
  /** Work started by events that the driver's queue does not cover (request handlers, stores of evidence). */
  readonly pending: Set<Promise<unknown>>;
}

interface SimNode {
  readonly index: number;
  readonly peerId: string;
  readonly keys: OperatorKeys;
  readonly dir: string;
  live: Incarnation | null;
}

export class DriverSim {
  private readonly agenda = new Agenda();
  private readonly rng: Prng;
  private nowMs = 0;
  private events = 0;
  private crashes = 0;
  private readonly violations: string[] = [];
  private readonly certificatesPublished: number[];
  /** (validator, height, round, type) -> value signed, across restarts. */
  private readonly signed = new Map<string, string>();
  /** height -> hash committed by anyone. */
  private readonly decided = new Map<number, Hex>();
  private readonly evidenceAgainst = new Set<number>();
  private readonly rejectedBy = new Map<string, string[]>();
  private readonly transactions: { hash: Hex; raw: Uint8Array }[] = [];
  /** Warnings only, read for one thing: every proposer here is honest, so no node may judge a proposal invalid. */
  private readonly log = pino(
    { level: "warn" },
    {
      write: (line: string) => {
        const entry = JSON.parse(line) as { msg?: string; code?: string; reason?: string; height?: number };
        if (entry.msg === "invalid block proposed") {
          this.violations.push(
            `an honest proposal at height ${entry.height} was judged invalid: ${entry.code}: ${entry.reason}`,
          );
        }
      },
    },
  );

  private constructor(
    private readonly cfg: DriverSimConfig,
    private readonly genesis: Genesis,
    private readonly nodes: SimNode[],
    private readonly root: string,
  ) {
    this.rng = new Prng(cfg.seed);
    this.certificatesPublished = nodes.map(() => 0);
  }

  static async create(cfg: DriverSimConfig): Promise<DriverSim> {
    const root = await mkdtemp(join(tmpdir(), "dcn-driver-sim-"));
    // Keys come from the seed too, so a run replays exactly.
    const seedRng = new Prng(cfg.seed ^ 0x5eed);
    const bytes = () => Uint8Array.from({ length: 32 }, () => seedRng.int(0, 255));
    const keys: OperatorKeys[] = Array.from({ length: cfg.validators }, () => ({
      consensus: generateBlsSecretKey(bytes()),
      peer: peerKeyFromSeed(bytes()),
      operator: bytes(),
    }));
    const clients = Array.from({ length: CLIENTS }, (_, i) => testAccount(100 + i));
    const m = cfg.membership;
    const inGenesis = m === undefined ? keys.map((_, i) => i) : [...m.genesisMembers];
    const genesis = parseGenesis(
      buildGenesis({
        chainId: CHAIN_ID,
        genesisTimeMs: 0,
        validators: inGenesis.map((i) => ({
          name: `v${i}`,
          votingPower: 10n,
          identity: describeKeys(keys[i] as OperatorKeys),
        })),
        execution: { alloc: clients.map((c) => ({ address: addressOf(c), balance: (10n ** 24n).toString() })) },
        ...(m === undefined
          ? {}
          : {
              l1: {
                chainId: "1",
                registry: `0x${"4c".repeat(20)}` as Hex,
                origin: { number: "0", hash: simL1Hash(cfg.seed, 0n) },
              },
            }),
      }),
    );
    const nodes = keys.map((k, index) => ({
      index,
      peerId: `node-${index}`,
      keys: k,
      dir: join(root, `node-${index}`),
      live: null,
    }));
    const sim = new DriverSim(cfg, genesis, nodes, root);
    // Transfers with consecutive nonces per client, signed up front (signing is not what is being simulated).
    for (let i = 0; i < cfg.transactions; i++) {
      const client = clients[i % CLIENTS];
      if (client === undefined) throw new Error("unreachable");
      const tx: TransactionSerializable = {
        chainId: Number(CHAIN_ID),
        nonce: Math.floor(i / CLIENTS),
        to: addressOf(testAccount(200 + (i % 7))),
        value: BigInt(1_000 + i),
        gas: 21_000n,
        type: "eip1559",
        maxFeePerGas: 100n * GWEI,
        maxPriorityFeePerGas: GWEI,
      };
      const signedHex = (await client.signTransaction(tx)) as Hex;
      const raw = Uint8Array.from(Buffer.from(signedHex.slice(2), "hex"));
      sim.transactions.push({ hash: toHex(keccak256(raw)), raw });
    }
    return sim;
  }

  async run(): Promise<DriverSimResult> {
    const cfg = this.cfg;
    try {
      for (const n of this.nodes) await this.boot(n);
      for (const c of cfg.crashes) {
        this.agenda.push(c.atMs, () => this.crash(this.node(c.node), c.downMs));
      }
      this.scheduleTransactions();
      this.scheduleLiveness();
      const trace = cfg.trace;
      if (trace !== undefined) {
        const tick = () => {
          const parts = this.nodes.map((n) => {
            const d = n.live?.driver.status();
            return d === undefined ? "down" : `${d.height}/${d.round}/${d.step}`;
          });
          trace(`${this.nowMs} ms: ${parts.join("  ")}`);
          this.agenda.push(this.nowMs + 1_000, tick);
        };
        this.agenda.push(0, tick);
      }
      for (let task = this.agenda.pop(); task !== undefined; task = this.agenda.pop()) {
        if (task.atMs > cfg.durationMs) break;
        if (task.cancelled) continue;
        this.nowMs = task.atMs;
        this.events++;
        await task.run();
        await this.settle();
      }
      return await this.finish();
    } finally {
      for (const n of this.nodes) await this.shutdown(n);
      await rm(this.root, { recursive: true, force: true });
    }
  }

  // ---- nodes ----

  private node(i: number): SimNode {
    const n = this.nodes[i];
    if (n === undefined) throw new RangeError(`no node ${i}`);
    return n;
  }

  private async boot(n: SimNode): Promise<void> {
    const timers = new Set<Task>();
    const clock: Clock = {
      nowMs: () => this.nowMs,
      setTimeout: (fn, ms) => {
        const task = this.agenda.push(this.nowMs + Math.max(0, ms), () => {
          timers.delete(task);
          fn();
        });
        timers.add(task);
        return task;
      },
      clearTimeout: (handle) => {
        const task = handle as Task;
        task.cancelled = true;
        timers.delete(task);
      },
    };
    const state = await openNodeState({
      dataDir: n.dir,
      genesis: this.genesis,
      l1: this.l1ViewFor(n),
      executor: { maxBlockBytes: 1 << 20, maxBlockTransactions: 2_000, maxClockDriftMs: 5_000 },
      nowMs: () => this.nowMs,
      log: this.log,
    });
    const metrics = createMetrics({ defaultMetrics: false });
    const params: DriverParams = {
      chainId: CHAIN_ID,
      genesisHash: this.genesis.hash,
      genesisTimeMs: this.genesis.genesisTimeMs,
      timeouts: this.cfg.timeouts,
      rebroadcastMs: 1_000,
      blockIntervalMs: this.cfg.blockIntervalMs,
      emptyBlockIntervalMs: this.cfg.emptyBlockIntervalMs,
      ...(this.cfg.proposeTimeoutMaxMs === undefined ? {} : { proposeTimeoutMaxMs: this.cfg.proposeTimeoutMaxMs }),
      maxRoundsAhead: 64,
      maxBufferedMessages: 4096,
      maxQueuedEvents: 16_384,
    };
    const handlers = new Map<string, RequestSpec>();
    const pending = new Set<Promise<unknown>>();
    let sync: SyncManager | null = null;
    const signer = createBlstSigner(n.keys.consensus);
    const byzantine = this.cfg.doubleVoter === n.index;
    const driver = new ConsensusDriver(params, {
      store: state.store,
      signer,
      scheme: blstScheme,
      executor: state.executor,
      membership: state.membership,
      clock,
      log: this.log,
      metrics,
      work: {
        pending: () => state.mempool.size > 0,
        onWork: (listener) => state.mempool.onWork(listener),
      },
      outbox: {
        publishProposal: (proposal, block) => {
          this.noteSigned(n, proposal.height, proposal.round, "proposal", proposal.value);
          this.gossip(n, "proposal", encodeProposalMessage({ proposal, block }));
        },
        publishVote: (vote) => {
          if (!byzantine) this.noteSigned(n, vote.height, vote.round, vote.type, vote.value ?? "nil");
          if (!byzantine && this.nowMs < this.cfg.gstMs && this.rng.chance(this.cfg.crashAfterVote)) {
            // Durable (the driver persisted it before calling us) but never sent: crash on the spot.
            this.agenda.push(this.nowMs, () => this.crash(n, this.rng.int(200, 2_000)));
            return;
          }
          if (byzantine) return this.doubleVote(n, vote, signer);
          this.gossip(n, "vote", encodeSignedVote(vote));
        },
        publishCertificate: (cert) => {
          this.certificatesPublished[n.index] = (this.certificatesPublished[n.index] ?? 0) + 1;
          if (this.cfg.silentCertificates?.includes(n.index) !== true) {
            this.gossip(n, "certificate", encodeCertificateMessage(cert));
          }
        },
        publishEvidence: (e) => {
          this.evidenceAgainst.add(this.nodeOfSetIndex(accused(e)));
          this.gossip(n, "evidence", encodeEvidence(e));
        },
        stalled: (height, round) => sync?.stalled(height, round),
        behind: (height, peer) => sync?.behind(height, peer),
        committed: (height, hash) => this.noteCommitted(n, height, hash),
      },
    });
    const verifier: VerifierContext = {
      chainId: CHAIN_ID,
      scheme: blstScheme,
      headHeight: () => state.store.headHeight,
      validatorSetFor: (h) => driver.validatorSetFor(h),
      committedValidatorSet: async (h) => {
        const id = await state.store.validatorSetIdAt(h);
        return id === undefined ? undefined : state.store.getValidatorSet(id);
      },
      behind: (h, peer) => sync?.behind(h, peer),
      redundantVote: (vote) => driver.redundantVote(vote),
      certificateSeen: (h) => driver.certificateSeen(h),
    };
    const network: SyncNetwork = {
      connectedPeers: () => this.reachable(n).map((p) => p.peerId),
      handle: (spec) => {
        handlers.set(spec.protocol, spec);
      },
      request: (peer, protocol, data, opts) => this.request(n, peer, protocol, data, opts),
      report: (peer, _kind, code) => {
        const list = this.rejectedBy.get(peer) ?? [];
        list.push(`${n.peerId}: ${code}`);
        this.rejectedBy.set(peer, list);
      },
    };
    sync = new SyncManager(
      {
        chainId: CHAIN_ID,
        blocksPerRequest: 32,
        maxResponseBytes: 8 * 1024 * 1024,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        fanout: 3,
        random: () => this.rng.next(),
      },
      { network, driver, store: state.store, verifier, log: this.log, metrics },
    );
    sync.register();
    n.live = { state, driver, sync, verifier, handlers, timers, pending };
    await driver.start((error) => {
      this.violations.push(`${n.peerId} driver stopped: ${error.message}`);
    });
    // A restarted node checks that its durable state agrees with what the others decided.
    for (let h = 1; h <= state.store.headHeight; h++) {
      const cert = await state.store.getCertificate(h);
      const known = this.decided.get(h);
      if (cert !== undefined && known !== undefined && cert.blockHash !== known) {
        this.violations.push(`${n.peerId} restarted with ${cert.blockHash} at ${h}, others decided ${known}`);
      }
    }
  }

  private async shutdown(n: SimNode): Promise<void> {
    const live = n.live;
    if (live === null) return;
    n.live = null;
    for (const t of live.timers) t.cancelled = true;
    live.timers.clear();
    await live.driver.stop();
    live.sync.stop();
    await Promise.allSettled([...live.pending]);
    await live.state.store.close();
  }

  private async crash(n: SimNode, downMs: number): Promise<void> {
    if (n.live === null) return;
    this.crashes++;
    await this.shutdown(n);
    this.agenda.push(this.nowMs + downMs, () => this.boot(n));
  }

  /** Waits until no node has work in progress: every event's consequences land before the next event. */
  private async settle(): Promise<void> {
    for (let quiet = 0; quiet < 2; ) {
      await new Promise((r) => setImmediate(r));
      let busy = false;
      for (const n of this.nodes) {
        const live = n.live;
        if (live === null) continue;
        if (live.pending.size > 0) {
          busy = true;
          await Promise.allSettled([...live.pending]);
        }
        if (await live.driver.idle()) busy = true;
      }
      quiet = busy ? 0 : quiet + 1;
    }
  }

  private track(n: SimNode, work: Promise<unknown>): void {
    const live = n.live;
    if (live === null) return;
    const p = work.catch((error: unknown) => {
      this.violations.push(`${n.peerId}: ${error instanceof Error ? error.message : String(error)}`);
    });
    live.pending.add(p);
    void p.finally(() => live.pending.delete(p));
  }

  /** The id of the set of these nodes (power 10 each), as the registry would name it. */
  setIdOf(members: readonly number[]): Hex {
    return createValidatorSet(
      members.map((i) => ({ publicKey: fromHex(describeKeys(this.node(i).keys).blsPublicKey), votingPower: 10n })),
    ).id;
  }

  // ---- simulated L1 ----

  private readonly mirrorLagMs = new Map<number, number>();

  /** Each node's mirror of one simulated L1 chain (a block every l1BlockMs), with its own lag. */
  private l1ViewFor(n: SimNode): L1View | null {
    const m = this.cfg.membership;
    if (m === undefined) return null;
    let lag = this.mirrorLagMs.get(n.index);
    if (lag === undefined) {
      lag = this.rng.int(0, m.maxMirrorLagMs);
      this.mirrorLagMs.set(n.index, lag);
    }
    const seed = this.cfg.seed;
    const lagMs = lag;
    const confirmed = (): bigint | null => {
      const seen = Math.floor((this.nowMs - lagMs) / m.l1BlockMs) - m.confirmations;
      return seen < 0 ? null : BigInt(seen);
    };
    const members = (epoch: bigint) =>
      (epoch >= 2n ? m.laterMembers : m.genesisMembers).map((i) => {
        const keys = this.node(i).keys;
        const id = describeKeys(keys);
        return { publicKey: id.blsPublicKey, votingPower: 10n, peerId: this.node(i).peerId, operator: id.operator };
      });
    return {
      confirmedHead: () => {
        const number = confirmed();
        return number === null ? null : { number, hash: simL1Hash(seed, number) };
      },
      checkConfirmed: async (ref) => {
        const head = confirmed();
        if (head === null || ref.number > head) return { kind: "unknown", reason: "not confirmed here yet" };
        return ref.hash === simL1Hash(seed, ref.number)
          ? { kind: "ok", value: true }
          : { kind: "invalid", reason: "not the canonical block" };
      },
      epochAt: async (ref) => {
        if (ref.hash !== simL1Hash(seed, ref.number)) return { kind: "invalid", reason: "not the canonical block" };
        const epoch = ref.number >= BigInt(m.switchAtBlock) ? 2n : 1n;
        const list = members(epoch);
        const set = createValidatorSet(
          list.map((x) => ({ publicKey: fromHex(x.publicKey), votingPower: x.votingPower })),
        );
        const byKey = new Map(list.map((x) => [x.publicKey.toLowerCase(), x]));
        const ordered = set.validators.map((v) => byKey.get(toHex(v.publicKey)) as (typeof list)[number]);
        return { kind: "ok", value: { epoch, members: ordered, setId: set.id } };
      },
      // The simulated subnet has no portal (its genesis names no finality contracts).
      depositsAt: async () => ({ kind: "ok", value: [] }),
      batchesPosted: async (_ref, epoch) => ({ kind: "ok", value: members(epoch).map(() => 0n) }),
    };
  }

  // ---- network ----

  private group(i: number): number {
    for (const p of this.cfg.partitions) {
      if (this.nowMs >= p.startMs && this.nowMs < p.endMs) return p.groupOf[i] ?? 0;
    }
    return 0;
  }

  private reachable(from: SimNode): SimNode[] {
    return this.nodes.filter((p) => p !== from && p.live !== null && this.group(p.index) === this.group(from.index));
  }

  private delay(): number {
    const d = this.cfg.delayMs;
    return this.rng.int(d.min, this.nowMs < this.cfg.gstMs ? d.maxBeforeGst : d.max);
  }

  private lost(): boolean {
    return this.nowMs < this.cfg.gstMs && this.rng.chance(this.cfg.lossBeforeGst);
  }

  private gossip(from: SimNode, kind: "proposal" | "vote" | "certificate" | "evidence" | "tx", data: Uint8Array): void {
    for (const to of this.nodes) if (to !== from) this.send(from, to, kind, data);
  }

  private send(
    from: SimNode,
    to: SimNode,
    kind: "proposal" | "vote" | "certificate" | "evidence" | "tx",
    data: Uint8Array,
  ) {
    if (this.lost()) return;
    const copies = this.rng.chance(this.cfg.duplicate) ? 2 : 1;
    const extra = kind === "proposal" ? (this.cfg.proposalDelayMs ?? 0) : 0;
    for (let c = 0; c < copies; c++) {
      this.agenda.push(this.nowMs + this.delay() + extra, () => {
        if (this.group(from.index) !== this.group(to.index)) return;
        return this.deliver(from, to, kind, data);
      });
    }
  }

  /** The node's gossip handlers, as node.ts wires them: verify, then hand to the driver, the store or the mempool. */
  private async deliver(
    from: SimNode,
    to: SimNode,
    kind: "proposal" | "vote" | "certificate" | "evidence" | "tx",
    data: Uint8Array,
  ): Promise<void> {
    const live = to.live;
    if (live === null) return;
    const reject = (code: string) => {
      const list = this.rejectedBy.get(from.peerId) ?? [];
      list.push(`${to.peerId}: ${code}`);
      this.rejectedBy.set(from.peerId, list);
    };
    switch (kind) {
      case "proposal": {
        const v = verifyProposalMessage(live.verifier, data, from.peerId);
        if (v.kind === "accept") live.driver.onProposal(v.value.proposal, v.value.block, v.value.bytes);
        else if (v.kind === "reject") reject(v.code);
        return;
      }
      case "vote": {
        const v = verifyVoteMessage(live.verifier, data, from.peerId);
        if (v.kind === "accept") live.driver.onVote(v.value);
        else if (v.kind === "reject") reject(v.code);
        return;
      }
      case "certificate": {
        const v = verifyCertificateMessage(live.verifier, data, from.peerId);
        if (v.kind === "accept") live.driver.onCertificate(v.value, from.peerId);
        else if (v.kind === "reject") reject(v.code);
        return;
      }
      case "evidence": {
        const v = await verifyEvidenceMessage(live.verifier, data, from.peerId);
        if (v.kind === "accept") {
          this.evidenceAgainst.add(this.nodeOfSetIndex(accused(v.value)));
          await live.state.store.saveEvidence(v.value);
        } else if (v.kind === "reject") reject(v.code);
        return;
      }
      case "tx": {
        await live.state.mempool.add(data, { kind: "peer", peer: from.peerId });
        return;
      }
    }
  }

  private request(
    from: SimNode,
    peer: string,
    protocol: string,
    data: Uint8Array,
    opts: RequestOptions | undefined,
  ): Promise<Uint8Array> {
    const to = this.nodes.find((p) => p.peerId === peer);
    const incarnation = from.live;
    const timeoutMs = opts?.timeoutMs ?? REQUEST_TIMEOUT_MS;
    return new Promise<Uint8Array>((resolve, reject) => {
      let done = false;
      const finish = (f: () => void) => {
        if (done || from.live !== incarnation) return;
        done = true;
        f();
      };
      this.agenda.push(this.nowMs + timeoutMs, () =>
        finish(() => reject(new RequestError("timeout", { peer, protocol }))),
      );
      if (to === undefined || this.lost()) return;
      this.agenda.push(this.nowMs + this.delay(), () => {
        const live = to.live;
        const spec = live?.handlers.get(protocol);
        if (live === null || live === undefined || spec === undefined) return;
        if (this.group(from.index) !== this.group(to.index)) return;
        const work = (async () => {
          const result = await spec.handle(data, from.peerId, new AbortController().signal);
          this.agenda.push(this.nowMs + this.delay(), () => {
            if (this.group(from.index) !== this.group(to.index)) return;
            if (result.kind === "reject") {
              finish(() => reject(new RequestError("rejected", { peer, protocol, remoteCode: result.code })));
            } else if (result.response.length > (opts?.maxResponseBytes ?? spec.maxResponseBytes)) {
              finish(() => reject(new RequestError("too_large", { peer, protocol })));
            } else {
              finish(() => resolve(result.response));
            }
          });
        })();
        this.track(to, work);
      });
    });
  }

  /** A Byzantine validator: signs a conflicting twin of every vote and sends each version to a random half. */
  private doubleVote(n: SimNode, vote: SignedVote, signer: { sign(m: Uint8Array): Uint8Array }): void {
    const twinValue = vote.value === null ? toHex(keccak256(encodeSignedVote(vote))) : null;
    const twin: Vote = {
      type: vote.type,
      height: vote.height,
      round: vote.round,
      value: twinValue,
      validatorIndex: vote.validatorIndex,
    };
    const twinSigned: SignedVote = { ...twin, signature: signer.sign(voteDigestOf(CHAIN_ID, twin)) };
    for (const to of this.nodes) {
      if (to === n) continue;
      this.send(n, to, "vote", encodeSignedVote(this.rng.chance(0.5) ? vote : twinSigned));
    }
  }

  // ---- clients ----

  private scheduleTransactions(): void {
    const lastMs = Math.max(1, this.cfg.durationMs - this.cfg.livenessWindowMs);
    const byClient = new Map<number, number>();
    this.transactions.forEach((tx, i) => {
      // Each client submits in nonce order; times are spread at random over the run.
      const client = i % CLIENTS;
      const prev = byClient.get(client) ?? 0;
      const at = Math.min(
        lastMs,
        prev + this.rng.int(1, Math.ceil((2 * lastMs * CLIENTS) / Math.max(1, this.transactions.length))),
      );
      byClient.set(client, at);
      this.agenda.push(at, () => {
        if (!this.submittedMs.has(tx.hash)) this.submittedMs.set(tx.hash, this.nowMs);
        return this.submit(tx.raw);
      });
    });
    // Like a wallet: after GST, resubmit what is not committed yet, every two seconds.
    const resubmit = () => {
      const pending = this.transactions.filter((tx) => !this.isCommitted(tx.hash));
      for (const tx of pending) this.agenda.push(this.nowMs, () => this.submit(tx.raw));
      if (this.nowMs + 2_000 <= this.cfg.durationMs) this.agenda.push(this.nowMs + 2_000, resubmit);
    };
    this.agenda.push(this.cfg.gstMs, resubmit);
  }

  private isCommitted(hash: Hex): boolean {
    return this.txHeight.has(hash);
  }

  private async submit(raw: Uint8Array): Promise<void> {
    const up = this.nodes.filter((n) => n.live !== null);
    if (up.length === 0) return;
    const n = this.rng.pick(up);
    const live = n.live;
    if (live === null) return;
    const added = await live.state.mempool.add(raw, { kind: "local" });
    if (added.ok) this.gossip(n, "tx", raw);
  }

  // ---- checks ----

  private nodeOfSetIndex(setIndex: number): number {
    const address = this.genesis.validatorSet.validators[setIndex]?.address;
    return this.nodes.findIndex((n) => describeKeys(n.keys).address === address);
  }

  private noteSigned(n: SimNode, height: number, round: number, step: string, value: string): void {
    const key = `${n.index}/${height}/${round}/${step}`;
    const prev = this.signed.get(key);
    if (prev !== undefined && prev !== value) {
      this.violations.push(`validator ${n.index} signed ${step} ${height}/${round} for ${prev} and ${value}`);
    }
    this.signed.set(key, value);
  }

  private noteCommitted(n: SimNode, height: number, hash: Hex): void {
    const prev = this.decided.get(height);
    if (prev !== undefined && prev !== hash) {
      this.violations.push(`${n.peerId} committed ${hash} at ${height}, another node ${prev}`);
    }
    this.decided.set(height, hash);
    const live = n.live;
    if (live === null) return;
    this.track(
      n,
      (async () => {
        const bytes = await live.state.store.getBlock(height);
        if (bytes === undefined) throw new Error(`committed ${height} is not in the store`);
        const block = decodeBlock(bytes);
        for (const raw of block.transactions) {
          const h = toHex(keccak256(raw));
          const at = this.txHeight.get(h);
          if (at !== undefined && at !== height)
            this.violations.push(`transaction ${h} committed at ${at} and ${height}`);
          this.txHeight.set(h, height);
          if (!this.committedMs.has(h)) this.committedMs.set(h, this.nowMs);
        }
      })(),
    );
  }

  /** Transaction hash -> the height that committed it. */
  private readonly txHeight = new Map<Hex, number>();
  /** Transaction hash -> virtual time of its first submission, and of the first commit of it by any node. */
  private readonly submittedMs = new Map<Hex, number>();
  private readonly committedMs = new Map<Hex, number>();

  private scheduleLiveness(): void {
    const honest = () => this.nodes.filter((n) => n.index !== this.cfg.doubleVoter);
    let base: number[] = [];
    this.agenda.push(this.cfg.gstMs, () => {
      base = honest().map((n) => n.live?.state.store.headHeight ?? 0);
    });
    const deadline = this.cfg.gstMs + this.cfg.livenessWindowMs;
    if (deadline > this.cfg.durationMs) throw new RangeError("the liveness window ends after the run");
    this.agenda.push(deadline, () => {
      const target = Math.max(...base) + this.cfg.livenessHeights;
      for (const n of honest()) {
        const head = n.live?.state.store.headHeight ?? 0;
        if (n.live !== null && head < target) {
          this.violations.push(`liveness: ${n.peerId} at ${head} by ${deadline} ms, expected >= ${target}`);
        }
      }
    });
  }

  private async finish(): Promise<DriverSimResult> {
    const heads: number[] = [];
    const lines: string[] = [];
    const setHistory: Hex[][] = [];
    let top: { height: number; hash: Hex } = { height: 0, hash: this.genesis.hash };
    let commitRounds: number[] | null = null;
    for (const n of this.nodes) {
      const live = n.live;
      if (live === null) {
        heads.push(-1);
        continue;
      }
      const rounds: number[] = [];
      const store = live.state.store;
      heads.push(store.headHeight);
      setHistory.push((await store.validatorSetChanges()).map((c) => c.id));
      for (let h = 1; h <= store.headHeight; h++) {
        const bytes = await store.getBlock(h);
        const stored = await store.getCertificate(h);
        if (bytes === undefined || stored === undefined) {
          this.violations.push(`${n.peerId} lacks block or certificate ${h} below its head`);
          continue;
        }
        const hash = blockHashOfEncoded(bytes);
        const cert = stored;
        const setId = await store.validatorSetIdAt(h);
        const set = setId === undefined ? undefined : await store.getValidatorSet(setId);
        if (set === undefined) {
          this.violations.push(`${n.peerId} has no validator set for height ${h}`);
          continue;
        }
        const verdict = verifyCertificate(cert, set, { scheme: blstScheme, chainId: CHAIN_ID });
        if (!verdict.ok) this.violations.push(`${n.peerId} certificate ${h}: ${verdict.code}`);
        if (cert.blockHash !== hash) this.violations.push(`${n.peerId} certificate ${h} certifies another block`);
        const decided = this.decided.get(h);
        if (decided !== undefined && decided !== hash) this.violations.push(`${n.peerId} stores ${hash} at ${h}`);
        const child = h < store.headHeight ? await store.getBlock(h + 1) : undefined;
        if (child !== undefined && !bytesEqual(decodeBlock(child).lastCertificate, encodeCertificate(cert))) {
          // Below the head every node serves the certificate the next block carries, whatever it formed itself.
          this.violations.push(`${n.peerId} certificate ${h} is not the one block ${h + 1} carries`);
        }
        lines.push(`${n.index}:${h}:${hash}`);
        if (commitRounds === null) rounds.push(cert.round);
        if (h > top.height) top = { height: h, hash };
      }
      commitRounds ??= rounds;
      const head = live.state.executor.head;
      const headBlock = await store.getBlock(store.headHeight);
      if (headBlock !== undefined && decodeBlock(headBlock).header.stateRoot !== head.stateRoot) {
        this.violations.push(`${n.peerId}: executor state root differs from its head header`);
      }
    }
    for (const [peer, codes] of this.rejectedBy) {
      const index = this.nodes.findIndex((n) => n.peerId === peer);
      if (index !== this.cfg.doubleVoter)
        this.violations.push(`honest ${peer} was reported: ${codes.slice(0, 3).join(", ")}`);
    }
    for (const who of this.evidenceAgainst) {
      if (who !== this.cfg.doubleVoter) this.violations.push(`evidence names honest validator node-${who}`);
    }
    const lost = this.transactions.filter((tx) => !this.txHeight.has(tx.hash)).length;
    return {
      heads,
      headHash: top.hash,
      violations: this.violations,
      committedTransactions: this.txHeight.size,
      txLatencyMs: [...this.committedMs].flatMap(([h, at]) => {
        const sent = this.submittedMs.get(h);
        return sent === undefined ? [] : [at - sent];
      }),
      lostTransactions: lost,
      crashes: this.crashes,
      evidenceAgainst: [...this.evidenceAgainst],
      events: this.events,
      fingerprint: toHex(keccak256(new TextEncoder().encode(lines.join("\n")))),
      setHistory,
      commitRounds: commitRounds ?? [],
      certificatesPublished: [...this.certificatesPublished],
    };
  }
}
