// Deterministic consensus simulator. One seed drives every choice: message delay, loss, duplication, reordering,
// partitions, crashes (including right after the safety mark is persisted and before the vote leaves) and Byzantine
// behaviour. Nodes run the real state machine (consensus/machine.ts), the real safety guard and real certificate code;
// only the network, the clock, the disk and block execution are simulated.
//
// Invariants are checked as events happen (agreement, validity, no honest double-sign, every certificate verifies,
// evidence only ever names Byzantine validators); after GST the run checks liveness: every honest node commits
// `livenessHeights` heights past the highest height any honest node had at GST, within `livenessWindowMs`.
import { concatBytes, type Hex, keccak256, toHex, uintBytes } from "../../consensus/bytes.ts";
import {
  buildCertificate,
  type Certificate,
  type CertificateVerdict,
  verifyCertificate,
} from "../../consensus/certificate.ts";
import {
  type Action,
  type ConsensusState,
  type Input,
  initialState,
  type LockState,
  NO_LOCK,
  step,
  type TimeoutParams,
  type TimeoutStep,
  votesFor,
  votesOf,
} from "../../consensus/machine.ts";
import { checkSign, type SigningMark } from "../../consensus/safety.ts";
import { proposalDigest, voteDigestOf } from "../../consensus/signing.ts";
import type {
  Proposal,
  SignatureScheme,
  SignedProposal,
  SignedVote,
  Signer,
  ValidatorSet,
  Vote,
} from "../../consensus/types.ts";
import { createValidatorSet, nextHeightValidatorSet, validatorAddress } from "../../consensus/validator-set.ts";
import { verifyProposalSignature, verifyVoteSignature } from "../../consensus/wire.ts";
import { Prng } from "./prng.ts";

export type ByzantineKind = "equivocatingProposer" | "doubleVoter" | "silent" | "invalidProposer";

export interface Partition {
  readonly startMs: number;
  readonly endMs: number;
  /** Group number per node; messages between different groups are dropped. */
  readonly groupOf: readonly number[];
}

export interface Crash {
  readonly node: number;
  readonly atMs: number;
  readonly downMs: number;
}

export interface SimConfig {
  readonly seed: number;
  readonly chainId: bigint;
  readonly powers: readonly bigint[];
  readonly byzantine: ReadonlyMap<number, ByzantineKind>;
  /**
   * Honest nodes that (wrongly) lose their safety data (signing mark, lock, own votes) when they crash: a deliberately
   * broken rule, to show that the checker catches what persisting before a vote leaves prevents.
   */
  readonly forgetSafetyData: ReadonlySet<number>;
  readonly signers: readonly Signer[];
  readonly scheme: SignatureScheme;
  readonly timeouts: TimeoutParams;
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  /** Delay bound after GST (the paper's Δ). */
  readonly delayAfterGstMs: number;
  readonly partitions: readonly Partition[];
  readonly crashes: readonly Crash[];
  /** Probability, before GST, of crashing right after persisting a vote's safety mark and before it leaves. */
  readonly crashAfterPersistRate: number;
  readonly gstMs: number;
  readonly livenessWindowMs: number;
  readonly livenessHeights: number;
  readonly commitDelayMs: number;
  readonly buildDelayMs: number;
  readonly rebroadcastMs: number;
  /** Stop after this many events (a bound on every run). */
  readonly maxEvents: number;
}

export type ViolationKind =
  | "agreement"
  | "validity"
  | "double_sign"
  | "certificate"
  | "false_evidence"
  | "liveness"
  | "event_limit";

export interface Violation {
  readonly kind: ViolationKind;
  readonly atMs: number;
  readonly detail: string;
}

export interface SimResult {
  readonly seed: number;
  readonly violations: readonly Violation[];
  /** Lowest committed height among honest nodes at the end. */
  readonly minHonestHeight: number;
  readonly maxHonestHeight: number;
  readonly maxRound: number;
  readonly events: number;
  readonly messagesDelivered: number;
  readonly evidence: number;
  readonly refusedSignatures: number;
  readonly syncedBlocks: number;
  readonly crashes: number;
  readonly virtualMs: number;
}

type Msg =
  | { readonly kind: "proposal"; readonly proposal: SignedProposal }
  | { readonly kind: "vote"; readonly vote: SignedVote }
  | { readonly kind: "commit"; readonly commit: Commit }
  | { readonly kind: "syncRequest"; readonly fromHeight: number }
  | { readonly kind: "syncResponse"; readonly commits: readonly Commit[] };

interface Commit {
  readonly height: number;
  readonly value: Hex;
  readonly certificate: Certificate;
}

type SimEvent =
  | { readonly kind: "deliver"; readonly to: number; readonly from: number; readonly msg: Msg }
  | {
      readonly kind: "timeout";
      readonly node: number;
      readonly life: number;
      readonly height: number;
      readonly round: number;
      readonly step: TimeoutStep;
    }
  | {
      readonly kind: "proposeValue";
      readonly node: number;
      readonly life: number;
      readonly height: number;
      readonly round: number;
      readonly value: Hex;
    }
  | { readonly kind: "startHeight"; readonly node: number; readonly life: number; readonly height: number }
  | { readonly kind: "rebroadcast"; readonly node: number; readonly life: number }
  | { readonly kind: "crash"; readonly node: number; readonly downMs: number }
  | { readonly kind: "restart"; readonly node: number };

interface Scheduled {
  readonly at: number;
  readonly seq: number;
  readonly event: SimEvent;
}

/** Min-heap on (at, seq): equal times keep scheduling order, so runs are reproducible. */
class EventQueue {
  private readonly heap: Scheduled[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: number, event: SimEvent): void {
    const item = { at, seq: this.seq++, event };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, h[parent] as Scheduled)) break;
      h[i] = h[parent] as Scheduled;
      i = parent;
    }
    h[i] = item;
  }

  pop(): Scheduled | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = last;
      if (l < h.length && before(h[l] as Scheduled, best)) {
        m = l;
        best = h[l] as Scheduled;
      }
      if (r < h.length && before(h[r] as Scheduled, best)) m = r;
      if (m === i) break;
      h[i] = h[m] as Scheduled;
      i = m;
    }
    h[i] = last;
    return top;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** What survives a crash: the safety mark with the lock it guards, own votes of the height, and the chain. */
interface Disk {
  mark: SigningMark | null;
  lock: LockState;
  lockHeight: number;
  ownVotes: SignedVote[];
  /** Prevotes that justify lock.validValue: fed back and relayed after a restart. */
  proofOfLock: readonly SignedVote[];
  ownProposal: SignedProposal | null;
  chain: Commit[];
}

interface SimNode {
  readonly id: number;
  readonly address: Hex;
  readonly signer: Signer;
  readonly byzantine: ByzantineKind | undefined;
  readonly forgetSafetyData: boolean;
  up: boolean;
  /** Incremented on crash: events of an earlier life are dropped. */
  life: number;
  cs: ConsensusState;
  readonly disk: Disk;
  /** Verified messages for the next height, replayed when it starts. */
  buffered: Msg[];
  syncRequestedFor: number;
  lastProgress: string;
}

const MAX_BUFFERED = 4096;
const SYNC_BATCH = 64;

interface ValueInfo {
  readonly valid: boolean;
  readonly height: number;
}

export class Simulation {
  private readonly rng: Prng;
  private readonly queue = new EventQueue();
  private readonly nodes: SimNode[];
  private readonly sets: ValidatorSet[] = [];
  private readonly values = new Map<Hex, ValueInfo>();
  private readonly decisions = new Map<number, Hex>();
  private readonly honestSignatures = new Map<string, Hex>();
  private readonly violations: Violation[] = [];
  private readonly byzantineAddresses = new Set<Hex>();
  private now = 0;
  private events = 0;
  private delivered = 0;
  private evidence = 0;
  private refused = 0;
  private synced = 0;
  private crashCount = 0;
  private valueCounter = 0;
  private maxRound = 0;

  constructor(
    private readonly cfg: SimConfig,
    private readonly trace?: (line: string) => void,
  ) {
    this.rng = new Prng(cfg.seed);
    const genesis = createValidatorSet(
      cfg.signers.map((s, i) => ({ publicKey: s.publicKey, votingPower: cfg.powers[i] ?? 1n })),
    );
    this.sets[1] = genesis;
    this.nodes = cfg.signers.map((signer, id) => {
      const address = validatorAddress(signer.publicKey);
      const byzantine = cfg.byzantine.get(id);
      if (byzantine !== undefined) this.byzantineAddresses.add(address);
      return {
        id,
        address,
        signer,
        byzantine,
        forgetSafetyData: cfg.forgetSafetyData.has(id),
        up: true,
        life: 0,
        cs: initialState({
          chainId: cfg.chainId,
          self: address,
          timeouts: cfg.timeouts,
          maxRoundsAhead: 64,
          maxProposalsPerRound: 4,
        }),
        disk: { mark: null, lock: NO_LOCK, lockHeight: 0, ownVotes: [], proofOfLock: [], ownProposal: null, chain: [] },
        buffered: [],
        syncRequestedFor: 0,
        lastProgress: "",
      };
    });
  }

  run(): SimResult {
    const cfg = this.cfg;
    for (const node of this.nodes) {
      if (node.byzantine === "silent") continue;
      this.startHeight(node, 1);
      this.queue.push(cfg.rebroadcastMs, { kind: "rebroadcast", node: node.id, life: node.life });
    }
    for (const c of cfg.crashes) {
      if (c.atMs < cfg.gstMs) this.queue.push(c.atMs, { kind: "crash", node: c.node, downMs: c.downMs });
    }

    let gstHeight = -1;
    const deadline = cfg.gstMs + cfg.livenessWindowMs;
    for (;;) {
      const next = this.queue.pop();
      if (next === undefined || next.at > deadline) break;
      if (gstHeight < 0 && next.at >= cfg.gstMs) {
        this.now = cfg.gstMs;
        gstHeight = this.maxHonestHeight();
      }
      this.now = next.at;
      this.events++;
      if (this.events > cfg.maxEvents) {
        this.violate("event_limit", `more than ${cfg.maxEvents} events`);
        break;
      }
      this.handle(next.event);
      if (this.violations.length > 0) break;
      if (gstHeight >= 0 && this.minHonestHeight() >= gstHeight + cfg.livenessHeights) break;
    }
    if (this.violations.length === 0) {
      if (gstHeight < 0) gstHeight = this.maxHonestHeight();
      const min = this.minHonestHeight();
      if (min < gstHeight + cfg.livenessHeights) {
        this.violate(
          "liveness",
          `honest nodes at heights [${this.honest().map((n) => n.disk.chain.length)}] ` +
            `${cfg.livenessWindowMs} ms after GST; expected each >= ${gstHeight + cfg.livenessHeights}`,
        );
      }
    }
    return {
      seed: cfg.seed,
      violations: this.violations,
      minHonestHeight: this.minHonestHeight(),
      maxHonestHeight: this.maxHonestHeight(),
      maxRound: this.maxRound,
      events: this.events,
      messagesDelivered: this.delivered,
      evidence: this.evidence,
      refusedSignatures: this.refused,
      syncedBlocks: this.synced,
      crashes: this.crashCount,
      virtualMs: this.now,
    };
  }

  // ---- helpers ----

  private honest(): SimNode[] {
    return this.nodes.filter((n) => n.byzantine === undefined);
  }

  private minHonestHeight(): number {
    return Math.min(...this.honest().map((n) => n.disk.chain.length));
  }

  private maxHonestHeight(): number {
    return Math.max(...this.honest().map((n) => n.disk.chain.length));
  }

  private nodeOf(set: ValidatorSet, index: number): number {
    const address = set.validators[index]?.address;
    return this.nodes.findIndex((n) => n.address === address);
  }

  private violate(kind: ViolationKind, detail: string): void {
    this.violations.push({ kind, atMs: this.now, detail });
  }

  private setAt(height: number): ValidatorSet {
    for (let h = this.sets.length; h <= height; h++) {
      const prev = this.sets[h - 1];
      if (prev === undefined) throw new Error(`validator set of height ${h - 1} missing`);
      this.sets[h] = nextHeightValidatorSet(prev);
    }
    const set = this.sets[height];
    if (set === undefined) throw new Error(`no validator set for height ${height}`);
    return set;
  }

  private afterGst(): boolean {
    return this.now >= this.cfg.gstMs;
  }

  private newValue(node: SimNode, height: number, valid: boolean): Hex {
    const id = toHex(
      keccak256(concatBytes(uintBytes(this.cfg.seed, 8), uintBytes(node.id, 4), uintBytes(this.valueCounter++, 8))),
    );
    this.values.set(id, { valid, height });
    return id;
  }

  // ---- network ----

  private send(from: SimNode, to: number, msg: Msg): void {
    if (to === from.id) return;
    const cfg = this.cfg;
    let delay: number;
    if (this.afterGst()) {
      delay = this.rng.int(1, cfg.delayAfterGstMs);
    } else {
      if (this.rng.chance(cfg.lossRate)) return;
      if (this.partitioned(from.id, to)) return;
      delay = this.rng.int(cfg.delayMinMs, cfg.delayMaxMs);
      if (this.rng.chance(cfg.duplicateRate)) {
        this.queue.push(this.now + this.rng.int(cfg.delayMinMs, cfg.delayMaxMs), {
          kind: "deliver",
          to,
          from: from.id,
          msg,
        });
      }
    }
    this.queue.push(this.now + delay, { kind: "deliver", to, from: from.id, msg });
  }

  private partitioned(a: number, b: number): boolean {
    for (const p of this.cfg.partitions) {
      if (this.now >= p.startMs && this.now < p.endMs && p.groupOf[a] !== p.groupOf[b]) return true;
    }
    return false;
  }

  private broadcast(from: SimNode, msg: Msg): void {
    for (const n of this.nodes) this.send(from, n.id, msg);
  }

  // ---- events ----

  private handle(e: SimEvent): void {
    switch (e.kind) {
      case "deliver": {
        const node = this.nodes[e.to];
        if (node === undefined || !node.up || node.byzantine === "silent") return;
        this.delivered++;
        this.receive(node, e.from, e.msg);
        return;
      }
      case "timeout": {
        const node = this.liveNode(e.node, e.life);
        if (node !== undefined) this.feed(node, { kind: "timeout", height: e.height, round: e.round, step: e.step });
        return;
      }
      case "proposeValue": {
        const node = this.liveNode(e.node, e.life);
        if (node !== undefined) {
          this.feed(node, { kind: "proposeValue", height: e.height, round: e.round, value: e.value });
        }
        return;
      }
      case "startHeight": {
        const node = this.liveNode(e.node, e.life);
        if (node !== undefined && node.disk.chain.length === e.height - 1 && node.cs.height < e.height) {
          this.startHeight(node, e.height);
        }
        return;
      }
      case "rebroadcast": {
        const node = this.liveNode(e.node, e.life);
        if (node === undefined) return;
        this.rebroadcast(node);
        this.queue.push(this.now + this.cfg.rebroadcastMs, { kind: "rebroadcast", node: node.id, life: node.life });
        return;
      }
      case "crash": {
        const node = this.nodes[e.node];
        if (node === undefined || !node.up) return;
        this.crash(node);
        this.queue.push(Math.min(this.now + e.downMs, this.cfg.gstMs), { kind: "restart", node: node.id });
        return;
      }
      case "restart": {
        const node = this.nodes[e.node];
        if (node !== undefined && !node.up) this.restart(node);
        return;
      }
      default: {
        const never: never = e;
        throw new Error(`unhandled event ${JSON.stringify(never)}`);
      }
    }
  }

  private liveNode(id: number, life: number): SimNode | undefined {
    const node = this.nodes[id];
    return node?.up && node.life === life ? node : undefined;
  }

  private crash(node: SimNode): void {
    this.trace?.(
      `${(this.now / 1000).toFixed(3).padStart(8)} s  node ${node.id} crashed at height ${node.cs.height} round ${node.cs.round}`,
    );
    this.crashCount++;
    node.up = false;
    node.life++;
    node.cs = initialState(node.cs.params);
    node.buffered = [];
    node.syncRequestedFor = 0;
    if (node.forgetSafetyData) {
      node.disk.mark = null;
      node.disk.lock = NO_LOCK;
      node.disk.proofOfLock = [];
      node.disk.ownVotes = [];
      node.disk.ownProposal = null;
    }
  }

  /** Restart from disk: resume the height after the last committed one, with the persisted round and lock. */
  private restart(node: SimNode): void {
    node.up = true;
    const height = node.disk.chain.length + 1;
    const mark = node.disk.mark;
    const recovered =
      mark !== null && mark.height === height && node.disk.lockHeight === height
        ? { round: mark.round, lock: node.disk.lock }
        : undefined;
    this.trace?.(
      `${(this.now / 1000).toFixed(3).padStart(8)} s  node ${node.id} restarted from disk at height ${height}` +
        (recovered === undefined ? "" : ` round ${recovered.round} (safety mark and lock reloaded)`),
    );
    this.startHeight(node, height, recovered);
    const own = node.disk.ownProposal;
    if (own !== null && own.height === height) this.feed(node, { kind: "proposal", proposal: own, valid: true });
    if (recovered !== undefined) for (const v of node.disk.proofOfLock) this.feed(node, { kind: "vote", vote: v });
    for (const v of node.disk.ownVotes) if (v.height === height) this.feed(node, { kind: "vote", vote: v });
    this.queue.push(this.now + this.cfg.rebroadcastMs, { kind: "rebroadcast", node: node.id, life: node.life });
    const peer = this.rng.pick(this.nodes.filter((n) => n.id !== node.id));
    this.send(node, peer.id, { kind: "syncRequest", fromHeight: height });
  }

  private startHeight(node: SimNode, height: number, recovered?: { round: number; lock: LockState }): void {
    const input: Input =
      recovered === undefined
        ? { kind: "startHeight", height, validatorSet: this.setAt(height) }
        : { kind: "startHeight", height, validatorSet: this.setAt(height), recovered };
    this.feed(node, input);
    const replay = node.buffered.filter((m) => msgHeight(m) === height);
    node.buffered = node.buffered.filter((m) => msgHeight(m) > height);
    for (const m of replay) this.receiveAtHeight(node, m);
  }

  private rebroadcast(node: SimNode): void {
    if (node.byzantine !== undefined) return;
    const cs = node.cs;
    const progress = `${cs.height}/${cs.round}/${cs.step}`;
    const stalled = progress === node.lastProgress;
    node.lastProgress = progress;
    if (!stalled) return;
    const { ownProposal, ownVotes, chain } = node.disk;
    if (ownProposal !== null && ownProposal.height === cs.height) {
      this.broadcast(node, { kind: "proposal", proposal: ownProposal });
    }
    for (const vote of ownVotes) if (vote.height === cs.height) this.broadcast(node, { kind: "vote", vote });
    // Relay the proof-of-lock of validValue: a proposer re-proposing it with polRound = validRound is only
    // prevoted by nodes that hold these prevotes (line 28), and nodes that crashed or were cut off missed them.
    const { validValue, validRound } = cs.lock;
    if (validValue !== null) {
      for (const vote of votesFor(cs, validRound, "prevote", validValue)) this.broadcast(node, { kind: "vote", vote });
    }
    // Relay the precommits of the previous round: they justify this node's round to nodes still in the previous
    // round (+2/3 precommits start their timeoutPrecommit, line 47; more than 1/3 lets them skip, line 55).
    if (cs.round > 0)
      for (const vote of votesOf(cs, cs.round - 1, "precommit")) this.broadcast(node, { kind: "vote", vote });
    const last = chain[chain.length - 1];
    if (last !== undefined) this.broadcast(node, { kind: "commit", commit: last });
  }

  // ---- receiving ----

  private receive(node: SimNode, from: number, msg: Msg): void {
    switch (msg.kind) {
      case "syncRequest": {
        const commits = node.disk.chain.slice(msg.fromHeight - 1, msg.fromHeight - 1 + SYNC_BATCH);
        if (commits.length > 0) this.send(node, from, { kind: "syncResponse", commits });
        return;
      }
      case "syncResponse":
        for (const c of msg.commits) this.applyCommit(node, c);
        return;
      case "commit":
        if (msg.commit.height > node.disk.chain.length + 1) this.requestSync(node, from, msg.commit.height);
        else this.applyCommit(node, msg.commit);
        return;
      case "proposal":
      case "vote": {
        const h = msgHeight(msg);
        const current = node.disk.chain.length + 1;
        if (h < current) return;
        if (h > current + 1) {
          this.requestSync(node, from, h);
          return;
        }
        if (!this.verifyMessage(msg, h)) return;
        if (h === node.cs.height && node.cs.step !== "commit") this.receiveAtHeight(node, msg);
        else if (node.buffered.length < MAX_BUFFERED) node.buffered.push(msg);
        return;
      }
      default: {
        const never: never = msg;
        throw new Error(`unhandled message ${JSON.stringify(never)}`);
      }
    }
  }

  private requestSync(node: SimNode, from: number, seenHeight: number): void {
    if (node.syncRequestedFor >= seenHeight) return;
    node.syncRequestedFor = seenHeight;
    this.send(node, from, { kind: "syncRequest", fromHeight: node.disk.chain.length + 1 });
  }

  private verifyMessage(msg: Msg, height: number): boolean {
    const set = this.setAt(height);
    if (msg.kind === "vote") return verifyVoteSignature(this.cfg.chainId, set, msg.vote, this.cfg.scheme);
    if (msg.kind === "proposal") return verifyProposalSignature(this.cfg.chainId, set, msg.proposal, this.cfg.scheme);
    return false;
  }

  private receiveAtHeight(node: SimNode, msg: Msg): void {
    if (msg.kind === "vote") this.feed(node, { kind: "vote", vote: msg.vote });
    else if (msg.kind === "proposal") {
      const info = this.values.get(msg.proposal.value);
      this.feed(node, { kind: "proposal", proposal: msg.proposal, valid: info?.valid === true });
    }
  }

  /** Catch-up path: a certified block for the next height is verified and committed without running consensus. */
  private applyCommit(node: SimNode, c: Commit): void {
    const height = node.disk.chain.length + 1;
    if (c.height !== height) return;
    const set = this.setAt(height);
    const verdict = verifyCertificate(c.certificate, set, { scheme: this.cfg.scheme, chainId: this.cfg.chainId });
    if (!verdict.ok || c.certificate.blockHash !== c.value || c.certificate.height !== height) return;
    this.synced++;
    this.commit(node, c, verdict);
    this.startHeight(node, height + 1);
  }

  // ---- the node: feeding the state machine and carrying out its actions ----

  private feed(node: SimNode, first: Input): void {
    const inputs: Input[] = [first];
    const life = node.life;
    for (let input = inputs.shift(); input !== undefined; input = inputs.shift()) {
      if (!node.up || node.life !== life) return;
      const t = step(node.cs, input);
      node.cs = t.state;
      if (t.state.round > this.maxRound) this.maxRound = t.state.round;
      for (const action of t.actions) {
        if (!node.up || node.life !== life) return;
        this.act(node, action, inputs);
      }
    }
  }

  private act(node: SimNode, action: Action, inputs: Input[]): void {
    switch (action.kind) {
      case "getValue": {
        const value = this.newValue(node, action.height, node.byzantine !== "invalidProposer");
        this.queue.push(this.now + this.cfg.buildDelayMs, {
          kind: "proposeValue",
          node: node.id,
          life: node.life,
          height: action.height,
          round: action.round,
          value,
        });
        return;
      }
      case "propose":
        this.propose(node, action.proposal, inputs);
        return;
      case "vote":
        this.vote(node, action.vote, action.lock, action.proofOfLock, inputs);
        return;
      case "scheduleTimeout":
        this.queue.push(this.now + action.durationMs, {
          kind: "timeout",
          node: node.id,
          life: node.life,
          height: action.height,
          round: action.round,
          step: action.step,
        });
        return;
      case "decide": {
        const set = this.setAt(action.height);
        const certificate = buildCertificate(this.cfg.chainId, set, action.precommits, this.cfg.scheme);
        const c: Commit = { height: action.height, value: action.value, certificate };
        const verdict = verifyCertificate(certificate, set, { scheme: this.cfg.scheme, chainId: this.cfg.chainId });
        this.commit(node, c, verdict);
        if (node.byzantine === undefined) this.broadcast(node, { kind: "commit", commit: c });
        this.queue.push(this.now + this.cfg.commitDelayMs, {
          kind: "startHeight",
          node: node.id,
          life: node.life,
          height: action.height + 1,
        });
        return;
      }
      case "evidence": {
        this.evidence++;
        const e = action.evidence;
        const index = e.kind === "duplicateVote" ? e.first.validatorIndex : e.first.proposerIndex;
        const set = this.setAt(e.first.height);
        const accused = set.validators[index];
        if (accused === undefined || !this.byzantineAddresses.has(accused.address)) {
          this.violate(
            "false_evidence",
            `node ${node.id} produced ${e.kind} evidence against honest validator ${index}`,
          );
        }
        return;
      }
      default: {
        const never: never = action;
        throw new Error(`unhandled action ${JSON.stringify(never)}`);
      }
    }
  }

  private sign(node: SimNode, digest: Uint8Array, key: string): Uint8Array {
    if (node.byzantine === undefined) {
      const hex = toHex(digest);
      const prior = this.honestSignatures.get(key);
      if (prior !== undefined && prior !== hex) {
        this.violate("double_sign", `honest node ${node.id} signed two different messages for ${key}`);
      }
      this.honestSignatures.set(key, hex);
    }
    return node.signer.sign(digest);
  }

  private propose(node: SimNode, proposal: Proposal, inputs: Input[]): void {
    const chainId = this.cfg.chainId;
    const digest = proposalDigest(chainId, proposal);
    if (node.byzantine === undefined) {
      const check = checkSign(node.disk.mark, proposal.height, proposal.round, "proposal", digest);
      if (!check.ok) {
        this.refused++;
        return;
      }
      node.disk.mark = check.mark;
    }
    const key = `${node.address}/${proposal.height}/${proposal.round}/proposal`;
    const signed: SignedProposal = { ...proposal, signature: this.sign(node, digest, key) };
    node.disk.ownProposal = signed;
    if (node.byzantine === "equivocatingProposer") {
      const other = this.newValue(node, proposal.height, true);
      const twin = { ...proposal, value: other };
      const twinSigned: SignedProposal = { ...twin, signature: node.signer.sign(proposalDigest(chainId, twin)) };
      for (const n of this.nodes) {
        this.send(node, n.id, { kind: "proposal", proposal: this.rng.chance(0.5) ? signed : twinSigned });
      }
    } else {
      this.broadcast(node, { kind: "proposal", proposal: signed });
    }
    inputs.push({ kind: "proposal", proposal: signed, valid: true });
  }

  private vote(node: SimNode, vote: Vote, lock: LockState, proofOfLock: readonly SignedVote[], inputs: Input[]): void {
    const digest = voteDigestOf(this.cfg.chainId, vote);
    const key = `${node.address}/${vote.height}/${vote.round}/${vote.type}`;
    if (node.byzantine === undefined) {
      const check = checkSign(node.disk.mark, vote.height, vote.round, vote.type, digest);
      if (!check.ok) {
        this.refused++;
        return;
      }
      // Sign, then persist the mark, the lock and the signed vote together before the vote leaves the process:
      // after a crash here the restarted node re-sends exactly this vote and can sign nothing conflicting.
      const signed: SignedVote = { ...vote, signature: this.sign(node, digest, key) };
      node.disk.mark = check.mark;
      node.disk.lock = lock;
      node.disk.proofOfLock = proofOfLock;
      node.disk.lockHeight = vote.height;
      node.disk.ownVotes = [
        ...node.disk.ownVotes.filter((v) => v.height === vote.height && v.round === vote.round),
        signed,
      ];
      if (!this.afterGst() && this.rng.chance(this.cfg.crashAfterPersistRate)) {
        this.crash(node);
        this.queue.push(Math.min(this.now + this.rng.int(10, 500), this.cfg.gstMs), { kind: "restart", node: node.id });
        return;
      }
      this.broadcast(node, { kind: "vote", vote: signed });
      inputs.push({ kind: "vote", vote: signed });
      return;
    }
    const signed: SignedVote = { ...vote, signature: this.sign(node, digest, key) };
    if (node.byzantine === "doubleVoter") {
      const otherValue = vote.value === null ? this.anyValueAt(vote.height) : null;
      const twin: Vote = { ...vote, value: otherValue };
      const twinSigned: SignedVote = { ...twin, signature: node.signer.sign(voteDigestOf(this.cfg.chainId, twin)) };
      for (const n of this.nodes)
        this.send(node, n.id, { kind: "vote", vote: this.rng.chance(0.5) ? signed : twinSigned });
    } else {
      this.broadcast(node, { kind: "vote", vote: signed });
    }
    inputs.push({ kind: "vote", vote: signed });
  }

  private anyValueAt(height: number): Hex | null {
    for (const [id, info] of this.values) if (info.height === height) return id;
    return null;
  }

  /** Persists a block with the verdict on its certificate; checks the certificate, agreement and validity. */
  private commit(node: SimNode, c: Commit, verdict: CertificateVerdict): void {
    if (node.disk.chain.length !== c.height - 1) return;
    node.disk.chain.push(c);
    if (node.byzantine !== undefined) return;
    if (!verdict.ok)
      this.violate("certificate", `node ${node.id} height ${c.height}: ${verdict.code} ${verdict.message}`);
    const info = this.values.get(c.value);
    if (info === undefined || !info.valid || info.height !== c.height) {
      this.violate(
        "validity",
        `node ${node.id} committed ${c.value} at height ${c.height}, which is not a valid proposal`,
      );
    }
    const agreed = this.decisions.get(c.height);
    if (agreed === undefined) {
      this.decisions.set(c.height, c.value);
      if (this.trace !== undefined) {
        const set = this.setAt(c.height);
        const signers = verdict.ok ? verdict.signers.map((i) => this.nodeOf(set, i)).join(",") : "?";
        this.trace(
          `${(this.now / 1000).toFixed(3).padStart(8)} s  height ${String(c.height).padStart(3)}  round ${c.certificate.round}  ` +
            `block ${c.value.slice(0, 10)}  certificate signed by nodes [${signers}] (${verdict.ok ? verdict.signingPower : 0n}/${set.totalVotingPower} power)`,
        );
      }
    } else if (agreed !== c.value) {
      this.violate(
        "agreement",
        `height ${c.height}: node ${node.id} committed ${c.value}, another honest node ${agreed}`,
      );
    }
  }
}

function msgHeight(m: Msg): number {
  if (m.kind === "vote") return m.vote.height;
  if (m.kind === "proposal") return m.proposal.height;
  if (m.kind === "commit") return m.commit.height;
  return 0;
}

export function simulate(cfg: SimConfig, trace?: (line: string) => void): SimResult {
  return new Simulation(cfg, trace).run();
}
