// A sequencer node: the libp2p network, the level store, the consensus driver and catch-up sync, the opaque
// transaction pool, and the operator HTTP endpoint (metrics, health, status). Constructed from a validated config,
// the genesis and the decrypted keys; `start` and `stop` are its whole lifecycle.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { Hex } from "../../consensus/bytes.ts";
import { validatorAddress } from "../../consensus/validator-set.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import { Network, type Verdict } from "../../p2p/index.ts";
import { MAX_BLOCK_BYTES } from "../chain/block.ts";
import type { NodeConfig } from "../config/config.ts";
import type { Genesis } from "../config/genesis.ts";
import { BatchVerifier } from "../crypto/batch-verify.ts";
import { blstScheme, createBlstSigner } from "../crypto/blst.ts";
import { DashboardSource } from "../dashboard/data.ts";
import type { ExecutionCore } from "../execution/core.ts";
import { admissionList } from "../l1/admission.ts";
import { Batcher, InboxReader, postedBatchCheck } from "../l1/batcher.ts";
import { sharedKzg } from "../l1/kzg.ts";
import { L1Mirror, stakerReportOf } from "../l1/mirror.ts";
import { FinalizedTracker, OutputProposer } from "../l1/outputs.ts";
import { RewardsSubmitter } from "../l1/rewards.ts";
import { DEFAULT_L1_SENDER_PARAMS, L1Sender } from "../l1/sender.ts";
import { SlashingSubmitter } from "../l1/slashing.ts";
import { L1_NOT_CONFIGURED, type L1Status } from "../l1/status.ts";
import type { AddResult, Mempool } from "../mempool/mempool.ts";
import type { MethodDef } from "../rpc/dispatch.ts";
import { createMethods, DEFAULT_METHOD_LIMITS } from "../rpc/methods.ts";
import { type RpcServer, startRpcServer } from "../rpc/server.ts";
import { createSolanaRpcBackend } from "../rpc/solana-backend.ts";
import { ChainStore } from "../storage/chain-store.ts";
import { encodeEvidence } from "../storage/evidence.ts";
import { openNodeState } from "./assemble.ts";
import { DEFAULT_DERIVE_PARAMS, L1Derivation } from "./derive.ts";
import { ConsensusDriver, type DriverParams, realClock } from "./driver.ts";
import { DEFAULT_EVIDENCE_REPORTER_PARAMS, EvidenceReporter } from "./evidence-reporter.ts";
import type { BlockExecutor } from "./executor.ts";
import { type HistoryHold, HistoryPruner } from "./history-pruner.ts";
import { type HttpServer, startHttpServer } from "./http.ts";
import type { Logger } from "./log.ts";
import {
  decodeTransactionBatch,
  encodeCertificateMessage,
  encodeProposalMessage,
  MAX_GOSSIP_BATCH_BYTES,
  protocols,
  topics,
  WORK_SIGNATURE_BYTES,
} from "./messages.ts";
import { createMetrics, type NodeMetrics } from "./metrics.ts";
import { createRpcBackend, type NodeRpcBackend } from "./rpc-backend.ts";
import { StatePruner } from "./state-pruner.ts";
import { DEFAULT_STATE_SYNC_PARAMS, StateSync, serveStateSync } from "./state-sync.ts";
import { SyncManager } from "./sync.ts";
import { TransactionGossip } from "./tx-gossip.ts";
import {
  type VerifierContext,
  verifyCertificateMessage,
  verifyEvidenceMessage,
  verifyProposalMessage,
  verifyVoteMessageBatched,
} from "./verifier.ts";
import { VoteGate } from "./vote-gate.ts";
import { WorkLedger, workReportJson } from "./work-ledger.ts";
import { DEFAULT_WORK_REPORTER_PARAMS, WorkReporter } from "./work-reports.ts";

const NODE_VERSION = "0.1.0";

/** How long a stopping node waits for its L1 passes in flight before it closes the store and the L1 view. */
const STOP_PASSES_GRACE_MS = 3_000;

/** Whether every promise settled within `ms` (rejections count as settled). */
async function settledWithin(promises: readonly (Promise<unknown> | undefined)[], ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const all = Promise.allSettled(promises.filter((p) => p !== undefined)).then(() => true as const);
  try {
    return await Promise.race([all, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * State sync (config sync.stateSync) of a node that has committed nothing yet: before anything else opens the store,
 * a network of its own (same key and addresses, no gossip) fetches and installs a peer's verified recent state; the
 * node then opens as after a restart at that height. Does nothing when the store has a head.
 */
async function syncStateIfEmpty(
  config: NodeConfig,
  genesis: Genesis,
  keys: NodeKeys,
  admitted: readonly string[],
  metrics: NodeMetrics,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<void> {
  const store = await ChainStore.open(join(config.dataDir, "chain"), {
    genesisHash: genesis.hash,
    genesisValidatorSet: genesis.validatorSet,
  });
  try {
    if (store.headHeight > 0) return;
    const network = await Network.create({
      privateKey: keys.peer,
      listen: config.p2p.listen,
      peers: config.p2p.peers.map((p) => p.multiaddr),
      // The configured peers too: the registry may have admitted them since the genesis (the L1 mirror that widens
      // the main network's gater has not started yet).
      allowedPeers: [...new Set([...admitted, ...config.p2p.peers.map((p) => p.peerId)])],
      log: (level, msg, fields) => log.child({ component: "p2p" })[level](fields ?? {}, msg),
    });
    const sync = new StateSync(
      { ...DEFAULT_STATE_SYNC_PARAMS, chainId: genesis.chainId },
      { network, store, genesis, log, metrics: metrics.stateSync },
    );
    // The operator endpoint answers meanwhile (a long sync must not fail liveness probes): alive, not ready, progress
    // in /status and /metrics.
    const m = config.metrics;
    const http = m.enabled
      ? await startHttpServer(
          { host: m.host, port: m.port },
          {
            registry: metrics.registry,
            // NodeStatus's fields that mean something before the head exists (dcn status reads them), and progress.
            status: () => ({
              chainId: genesis.chainId.toString(),
              role: config.role,
              peerId: network.peerId,
              height: 0,
              round: 0,
              step: "state-sync",
              headHeight: 0,
              headHash: null,
              votingNow: false,
              peers: network.connectedPeers(),
              lastCommitAgoMs: null,
              stateSync: sync.progress(),
            }),
            ready: () => false,
          },
        )
      : null;
    // A stop signal ends the sync at once: requests in flight fail with the network, and run() throws "stopped".
    const onAbort = () => {
      sync.stop();
      void network.stop();
    };
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await network.start();
      await sync.run();
    } finally {
      signal?.removeEventListener("abort", onAbort);
      await network.stop();
      await http?.close();
    }
  } finally {
    await store.close();
  }
}

/** Transaction gossip messages waiting for validation (each up to MAX_GOSSIP_BATCH_BYTES). */
const TX_BATCH_QUEUE = 256;

const REJECTED_TX_CODES: ReadonlySet<string> = new Set([
  "malformed",
  "unsupported_type",
  "bad_signature",
  "wrong_chain",
  "too_large",
  "intrinsic_gas",
]);

export interface NodeKeys {
  /** BLS secret key; null for a replica that has none. */
  readonly consensus: Uint8Array | null;
  readonly peer: Uint8Array;
  /** secp256k1 operator key: pays for the work reports this validator submits to L1; null: it submits none. */
  readonly operator?: Uint8Array | null;
}

export interface NodeStatus {
  readonly chainId: string;
  readonly role: "validator" | "replica";
  readonly peerId: string;
  readonly address: Hex | null;
  readonly height: number;
  readonly round: number;
  readonly step: string;
  readonly headHeight: number;
  readonly headHash: Hex | null;
  readonly votingNow: boolean;
  readonly peers: readonly string[];
  readonly lastCommitAgoMs: number | null;
  /** How long this validator still signs nothing because its key signs elsewhere (doppelganger protection); null: not paused. */
  readonly signingPausedForMs: number | null;
  /**
   * This node's clock against the other validators', read off their proposals (> 0: ahead; build and trip included,
   * tens of ms); null until two proposers agree (docs/operations.md "Clocks").
   */
  readonly clockOffsetMs: number | null;
  /** consensus.haltHeight: the node commits up to it, then stops; null = never (docs/operations.md "Upgrades"). */
  readonly haltHeight: number | null;
  readonly pool: { readonly count: number; readonly bytes: number };
  /**
   * The lowest heights this node answers for: `history` its blocks, receipts, certificates and transactions
   * (storage.blockHistory; 1: all), `state` its balances and storage (storage.stateHistory; 0: all).
   */
  readonly keptFrom: { readonly history: number; readonly state: number };
  readonly listen: readonly string[];
  readonly rpc: string | null;
  /** The configured L1 endpoint's reachability, chain id and head (never its URL: lumia_status is public). */
  readonly l1: L1Status;
}

export class DcnNode {
  private http: HttpServer | null = null;
  private rpc: RpcServer | null = null;
  private rpcBackend: NodeRpcBackend | null = null;
  private rpcMethods: ReadonlyMap<string, MethodDef> | null = null;
  /** consensus.haltHeight: the head the driver halted at, and who start() was told to tell. */
  private haltedAt: number | null = null;
  private onHalt: ((head: number) => void) | null = null;
  private startFinished = false;
  private stopping: Promise<void> | null = null;
  /** The L1 mirror (the node's L1View), null without an `l1` config section. */
  l1Mirror: L1Mirror | null = null;
  /** Epoch work accounting and reports, on a subnet anchored to L1 (genesis `l1`). */
  workLedger: WorkLedger | null = null;
  workReporter: WorkReporter | null = null;
  evidenceReporter: EvidenceReporter | null = null;
  private slashingCheck: (() => Promise<boolean>) | null = null;
  /** The validator's L1 transactions (work reports, batches, outputs); the node owns it and stops it last. */
  l1Sender: L1Sender | null = null;
  /** Hard finality (genesis l1.finality, docs/hard-finality.md): posting, the finalized height, derivation. */
  batcher: Batcher | null = null;
  outputProposer: OutputProposer | null = null;
  finalizedTracker: FinalizedTracker | null = null;
  derivation: L1Derivation | null = null;
  /** Drops state older than `storage.stateHistory` heights; null when the node keeps all (0). */
  private statePruner: StatePruner | null = null;
  /** Deletes history older than `storage.blockHistory` heights; null when the node keeps all (0). */
  private historyPruner: HistoryPruner | null = null;
  private dashboardSource: DashboardSource | null = null;
  private readonly txGossip = new TransactionGossip((batch, count) => {
    this.metrics.txGossipBatch.observe(count);
    this.network
      .publish(topics(this.genesis.chainId).transactions, batch)
      .catch((err: unknown) => this.log.debug({ err, count }, "transaction gossip not published"));
  });

  private constructor(
    readonly config: NodeConfig,
    readonly genesis: Genesis,
    readonly network: Network,
    readonly store: ChainStore,
    readonly driver: ConsensusDriver,
    readonly sync: SyncManager,
    readonly mempool: Mempool,
    readonly executor: BlockExecutor,
    readonly core: ExecutionCore,
    readonly metrics: NodeMetrics,
    private readonly log: Logger,
  ) {}

  /**
   * Opens everything the node runs on (store, state, L1 mirror, network), after a state sync when the config asks for
   * one and the store is empty. `signal` stops that sync (SIGINT/SIGTERM while it runs): create then throws a
   * StateSyncError with code "stopped", having written nothing the next start cannot reuse.
   */
  static async create(
    config: NodeConfig,
    genesis: Genesis,
    keys: NodeKeys,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<DcnNode> {
    const chainId = genesis.chainId;
    const metrics = createMetrics({ defaultMetrics: true });
    await mkdir(config.dataDir, { recursive: true });
    const c = config.consensus;
    const admitted = [...genesis.validators.map((v) => v.peerId), ...config.p2p.replicas];
    /** BLS key (lowercase hex) -> peer id of every validator known from genesis or the registry: whom to score down. */
    const peerOfKey = new Map(genesis.validators.map((v) => [v.blsPublicKey.toLowerCase(), v.peerId]));
    /** Peer ids of the sequencers (genesis and registry): they dial one another, so gossip between them is direct. */
    const sequencerPeers = new Set(peerOfKey.values());
    // The network is created after the state is open; the mirror reports membership only once started (after that).
    let networkRef: Network | null = null;
    let l1Mirror: L1Mirror | null = null;
    if (config.l1 !== null) {
      const l1Log = log.child({ component: "l1" });
      // A subnet anchored to L1 follows the registry its genesis names; the config may only repeat it.
      const registry = genesis.l1?.registry ?? config.l1.registry;
      const configured = config.l1.registry;
      if (
        genesis.l1 !== null &&
        configured !== null &&
        configured.toLowerCase() !== genesis.l1.registry.toLowerCase()
      ) {
        throw new Error(`config l1.registry ${config.l1.registry} is not the genesis registry ${registry}: remove it`);
      }
      l1Mirror = await L1Mirror.open(
        {
          rpcUrl: config.l1.rpcUrl,
          fallbackRpcUrls: config.l1.fallbackRpcUrls,
          pollIntervalMs: config.l1.pollIntervalMs,
          confirmations: config.l1.confirmations,
          registry,
          portal: genesis.l1?.finality?.portal ?? null,
          batchInbox: genesis.l1?.finality?.batchInbox ?? null,
          dbPath: join(config.dataDir, "l1"),
        },
        {
          registry: metrics.registry,
          log: (level, msg, fields) => l1Log[level](fields, msg),
          // The registry's sets widen the admission list; the local peers stay admitted whatever L1 says.
          onMembership: (m) => {
            for (const member of m?.members ?? []) {
              if (member.peerId === "") continue;
              peerOfKey.set(member.publicKey.toLowerCase(), member.peerId);
              sequencerPeers.add(member.peerId);
            }
            networkRef?.setAllowedPeers(admissionList(admitted, m));
          },
        },
      );
    } else if (genesis.l1 !== null) {
      throw new Error("the genesis anchors this subnet to L1 (genesis l1): set l1.rpcUrl in the config");
    }
    if (config.sync.stateSync) {
      try {
        await syncStateIfEmpty(
          config,
          genesis,
          keys,
          admitted,
          metrics,
          log.child({ component: "state-sync" }),
          signal,
        );
      } catch (error) {
        await l1Mirror?.stop().catch(() => undefined);
        throw error;
      }
    }
    let state: Awaited<ReturnType<typeof openNodeState>>;
    try {
      state = await openNodeState({
        dataDir: config.dataDir,
        genesis,
        executor: {
          maxBlockBytes: Math.min(c.maxBlockBytes, MAX_BLOCK_BYTES),
          maxBlockTransactions: c.maxBlockTransactions,
          maxClockDriftMs: 5_000,
        },
        nowMs: () => Date.now(),
        mempool: config.mempool,
        log: log.child({ component: "membership" }),
        l1: genesis.l1 === null ? null : l1Mirror,
      });
    } catch (error) {
      await l1Mirror?.stop().catch(() => undefined);
      throw error;
    }
    const { store, core, mempool, executor, membership } = state;
    const signer = config.role === "validator" && keys.consensus !== null ? createBlstSigner(keys.consensus) : null;
    let created: Network;
    try {
      created = await Network.create({
        privateKey: keys.peer,
        listen: config.p2p.listen,
        peers: config.p2p.peers.map((p) => p.multiaddr),
        allowedPeers: admitted,
        registry: metrics.registry,
        log: (level, msg, fields) => log.child({ component: "p2p" })[level](fields ?? {}, msg),
      });
    } catch (error) {
      await l1Mirror?.stop().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw error;
    }
    const network = created;
    networkRef = network;
    const params: DriverParams = {
      chainId,
      genesisHash: genesis.hash,
      genesisTimeMs: genesis.genesisTimeMs,
      timeouts: c.timeouts,
      rebroadcastMs: c.rebroadcastMs,
      blockIntervalMs: c.blockIntervalMs,
      emptyBlockIntervalMs: c.emptyBlockIntervalMs,
      proposeTimeoutMaxMs: c.proposeTimeoutMaxMs,
      doppelgangerWaitMs: c.doppelgangerWaitMs,
      haltHeight: c.haltHeight,
      maxRoundsAhead: 64,
      maxBufferedMessages: 4096,
      maxQueuedEvents: 16_384,
    };
    // The driver and sync refer to each other through the outbox; `sync` is assigned before anything runs.
    let sync: SyncManager | null = null;
    // Commits feed the RPC's subscriptions; `node` is assigned below, before anything runs.
    let node: DcnNode | null = null;
    metrics.watchPool(() => ({ count: mempool.size, bytes: mempool.sizeBytes }));
    const t = topics(chainId);
    const publish = (topic: string, data: Uint8Array) => {
      network.publish(topic, data).catch((err: unknown) => log.debug({ err, topic }, "publish failed"));
    };
    const driver = new ConsensusDriver(params, {
      store,
      signer,
      scheme: blstScheme,
      executor,
      membership,
      clock: realClock,
      log: log.child({ component: "consensus" }),
      metrics,
      work: {
        pending: () => mempool.size > 0,
        onWork: (listener) => mempool.onWork(listener),
      },
      outbox: {
        publishProposal: (proposal, block) => publish(t.proposals, encodeProposalMessage({ proposal, block })),
        publishVote: (vote) => publish(t.votes, encodeSignedVote(vote)),
        publishCertificate: (cert) => publish(t.certificates, encodeCertificateMessage(cert)),
        publishEvidence: (e) => publish(t.evidence, encodeEvidence(e)),
        stalled: (height, round) => sync?.stalled(height, round),
        halted: (height) => node?.reachedHalt(height),
        invalidProposal: (proposerKey, height, code) => {
          const peer = peerOfKey.get(proposerKey.toLowerCase());
          if (peer === undefined || peer === network.peerId) return;
          log.warn({ height, peer, code }, "scoring down the proposer of an invalid block");
          network.report(peer, "reject", `invalid_block_${code}`);
        },
        behind: (height, peer) => sync?.behind(height, peer),
        committed: (height) => {
          node?.dashboard.recordCommit(height);
          node?.rpcBackend?.committed(height);
          node?.accountWork();
          node?.statePruner?.committed();
          node?.historyPruner?.committed();
        },
      },
    });
    const verifier: VerifierContext = {
      chainId,
      scheme: blstScheme,
      headHeight: () => store.headHeight,
      validatorSetFor: (h) => driver.validatorSetFor(h),
      committedValidatorSet: async (h) => {
        const id = await store.validatorSetIdAt(h);
        return id === undefined ? undefined : store.getValidatorSet(id);
      },
      behind: (h, peer) => sync?.behind(h, peer),
      redundantVote: (vote) => driver.redundantVote(vote),
      certificateSeen: (h) => driver.certificateSeen(h),
    };
    sync = new SyncManager(
      { chainId, blocksPerRequest: 64, maxResponseBytes: 16 * 1024 * 1024, requestTimeoutMs: 5_000, fanout: 3 },
      { network, driver, store, verifier, log: log.child({ component: "sync" }), metrics },
    );
    sync.register();
    serveStateSync(network, {
      chainId,
      store,
      methods: () => node?.lightClientMethods() ?? new Map(),
      maxResponseBytes: DEFAULT_STATE_SYNC_PARAMS.maxResponseBytes,
      requestTimeoutMs: DEFAULT_STATE_SYNC_PARAMS.requestTimeoutMs,
    });
    const QUEUE = 1024;
    network.subscribe({
      name: t.proposals,
      maxBytes: MAX_BLOCK_BYTES + 512,
      queueLength: 64,
      dropPolicy: "drop-oldest",
      validate: (data, from) => verifyProposalMessage(verifier, data, from),
      onMessage: (v) => driver.onProposal(v.proposal, v.block, v.bytes),
    });
    /**
     * Votes and transactions travel one hop between sequencers. A sequencer publishes its own votes and its clients'
     * transactions to all of its peers, and the sequencers dial one another: what one of them sent, every other got
     * from it too. Relaying it again would only put duplicates on the wire (two per message and node with four
     * validators). What a replica sent is relayed. A sequencer cut off from another still gets that one's votes of a
     * stuck height from the others (the driver's pull, src/node/sync.ts).
     */
    const oneHop = <T>(verdict: Verdict<T>, from: string): Verdict<T> =>
      verdict.kind === "accept" && sequencerPeers.has(from) ? { ...verdict, forward: false } : verdict;
    const signatures = new BatchVerifier(blstScheme, {
      onBatch: (size, valid) => metrics.signatureBatches.observe({ result: valid ? "valid" : "invalid" }, size),
    });
    const gate = new VoteGate(
      { position: () => driver.votePosition(), counts: (round, type) => driver.voteCounts(round, type) },
      { onRelease: (reason, votes) => metrics.voteGateReleases.inc({ reason }, votes) },
    );
    driver.onEventHandled = () => gate.recheck();
    network.subscribe({
      name: t.votes,
      maxBytes: 256,
      queueLength: QUEUE,
      dropPolicy: "drop-oldest",
      // A vote of the height being decided waits until it could complete a threshold; the votes released together are
      // verified together (src/node/vote-gate.ts, src/crypto/batch-verify.ts). Waiting votes hold a validation slot:
      // as many slots as queued votes, so that those of a large set never keep out the vote that would release them.
      concurrency: QUEUE,
      validate: async (data, from) =>
        oneHop(await verifyVoteMessageBatched(verifier, gate, signatures, data, from), from),
      onMessage: (vote) => driver.onVote(vote),
    });
    network.subscribe({
      name: t.certificates,
      maxBytes: 16 * 1024,
      queueLength: 256,
      dropPolicy: "drop-oldest",
      validate: (data, from) => verifyCertificateMessage(verifier, data, from),
      onMessage: (cert, from) => driver.onCertificate(cert, from),
    });
    network.subscribe({
      name: t.evidence,
      maxBytes: 2048,
      queueLength: 256,
      dropPolicy: "drop-newest",
      validate: (data, from) => verifyEvidenceMessage(verifier, data, from),
      onMessage: (e) => {
        store.saveEvidence(e).catch((err: unknown) => log.warn({ err }, "cannot store evidence"));
      },
    });
    network.subscribe<Uint8Array>({
      name: t.transactions,
      maxBytes: MAX_GOSSIP_BATCH_BYTES,
      queueLength: TX_BATCH_QUEUE,
      dropPolicy: "drop-newest",
      // One batch at a time, and one admission per turn of the event loop (below): a backlog of them does not hold up
      // a height's messages and timers.
      background: true,
      validate: async (data, from) => {
        let entries: readonly Uint8Array[];
        try {
          entries = decodeTransactionBatch(data);
        } catch {
          return { kind: "reject", code: "tx_batch_malformed" };
        }
        if (entries.length === 0) return { kind: "reject", code: "tx_batch_empty" };
        let admitted = 0;
        let rejected: string | null = null;
        let ignored: string | null = null;
        for (const [i, entry] of entries.entries()) {
          if (i > 0) await nextTurn();
          const added = await mempool.add(entry, { kind: "peer", peer: from });
          metrics.admissions.inc({ source: "peer", result: added.ok ? "ok" : added.code });
          if (added.ok) admitted++;
          // Invalid whoever relays it: malformed, bad signature, wrong chain. State-dependent refusals (nonce, funds,
          // fees, a full pool) can differ between honest nodes: no penalty. The batch's other entries are pooled.
          else if (REJECTED_TX_CODES.has(added.code)) rejected ??= added.code;
          else ignored ??= added.code;
        }
        if (rejected !== null) return { kind: "reject", code: `tx_${rejected}` };
        if (admitted > 0) return oneHop({ kind: "accept", value: data }, from);
        return { kind: "ignore", code: `tx_${ignored}` };
      },
      onMessage: () => {},
    });
    // The validator's L1 transactions (work reports, batches, outputs) go through one sender: one nonce sequence.
    const operatorKey = keys.operator ?? null;
    const l1Sender =
      signer !== null && operatorKey !== null && config.l1 !== null && l1Mirror !== null
        ? new L1Sender(
            { ...DEFAULT_L1_SENDER_PARAMS, maxFeePerGasWei: BigInt(Math.round(config.l1.maxFeePerGasGwei * 1e9)) },
            {
              rpcUrl: config.l1.rpcUrl,
              fallbackRpcUrls: config.l1.fallbackRpcUrls,
              operatorKey,
              client: l1Mirror.publicClient,
              log: log.child({ component: "l1-sender" }),
              metrics: metrics.finality,
              kzg: sharedKzg,
            },
          )
        : null;
    let workLedger: WorkLedger | null = null;
    let workReporter: WorkReporter | null = null;
    if (genesis.l1 !== null && l1Mirror !== null && config.l1 !== null) {
      const workLog = log.child({ component: "work" });
      workLedger = await WorkLedger.open({
        dbPath: join(config.dataDir, "work"),
        genesis,
        store,
        l1: l1Mirror,
        log: workLog,
      });
      const reporter = new WorkReporter(DEFAULT_WORK_REPORTER_PARAMS, {
        ledger: workLedger,
        signer,
        scheme: blstScheme,
        submitter:
          l1Sender === null
            ? null
            : new RewardsSubmitter({ registry: genesis.l1.registry, sender: l1Sender, client: l1Mirror.publicClient }),
        publish: (bytes) => publish(t.workReports, bytes),
        log: workLog,
        nowMs: () => Date.now(),
        onOutcome: (outcome) => metrics.workReportSubmissions.inc({ outcome }),
      });
      workReporter = reporter;
      network.subscribe({
        name: t.workReports,
        maxBytes: WORK_SIGNATURE_BYTES,
        queueLength: 256,
        dropPolicy: "drop-newest",
        validate: (data) => reporter.validate(data),
        onMessage: (signature) => reporter.onSignature(signature),
      });
    }
    let evidenceReporter: EvidenceReporter | null = null;
    let slashingCheck: (() => Promise<boolean>) | null = null;
    const slashing = config.l1?.slashing ?? null;
    if (slashing !== null && genesis.l1 !== null && l1Mirror !== null && l1Sender !== null && signer !== null) {
      const mirror = l1Mirror;
      const submitter = new SlashingSubmitter({
        registry: genesis.l1.registry,
        slashing,
        sender: l1Sender,
        client: mirror.publicClient,
      });
      slashingCheck = () => submitter.isRegistrySlasher();
      evidenceReporter = new EvidenceReporter(DEFAULT_EVIDENCE_REPORTER_PARAMS, {
        store,
        genesis,
        originOf: (height) => membership.originOf(height),
        epochAt: (origin) => mirror.epochAt(origin),
        submitter,
        self: validatorAddress(signer.publicKey),
        log: log.child({ component: "evidence" }),
        onOutcome: (outcome) => metrics.evidenceReports.inc({ outcome }),
        nowMs: () => Date.now(),
      });
    }
    node = new DcnNode(config, genesis, network, store, driver, sync, mempool, executor, core, metrics, log);
    node.evidenceReporter = evidenceReporter;
    node.slashingCheck = slashingCheck;
    const finality = genesis.l1?.finality ?? null;
    if (finality !== null && genesis.l1 !== null && l1Mirror !== null && config.l1 !== null) {
      const mirror = l1Mirror;
      const l1 = config.l1;
      const finalityLog = log.child({ component: "finality" });
      const fm = metrics.finality;
      const confirmedHead = () => mirror.confirmedHead()?.number ?? null;
      const pollMs = Math.max(1_000, l1.pollIntervalMs);
      node.finalizedTracker = new FinalizedTracker({
        oracle: finality.outputOracle,
        client: mirror.publicClient,
        pollMs,
        log: finalityLog,
        metrics: fm,
      });
      if (signer !== null && l1Sender !== null) {
        const sender = l1Sender;
        const ownAddress = validatorAddress(signer.publicKey);
        const batcherLog = finalityLog.child({ part: "batcher" });
        const reader = new InboxReader({
          client: mirror.publicClient,
          inbox: finality.batchInbox,
          fromBlock: genesis.l1.origin.number,
          confirmedHead,
          // A faulty member's garbage batch does not count: its heights are posted again.
          check: postedBatchCheck({
            client: mirror.publicClient,
            inbox: finality.batchInbox,
            chainId,
            store,
            // Blob batches are checked by a node that may post them: it loads the KZG setup anyway.
            beacon:
              l1.beaconUrl === null || l1.batchTransport === "calldata" ? null : { url: l1.beaconUrl, kzg: sharedKzg },
            log: batcherLog,
            metrics: fm,
          }),
        });
        node.batcher = new Batcher(
          {
            batchMinBlocks: l1.batchMinBlocks,
            batchMaxAgeMs: l1.batchMaxAgeMs,
            staggerMs: l1.posterStaggerMs,
            pollMs,
            transport: l1.batchTransport,
            batchesPerTurn: l1.batchesPerTurn,
          },
          {
            chainId,
            inbox: finality.batchInbox,
            reader,
            client: mirror.publicClient,
            store,
            sender,
            ownAddress,
            log: batcherLog,
            metrics: fm,
            nowMs: () => Date.now(),
          },
        );
        node.outputProposer = new OutputProposer(
          { outputInterval: l1.outputInterval, staggerMs: l1.posterStaggerMs, pollMs },
          {
            oracle: finality.outputOracle,
            client: mirror.publicClient,
            store,
            l1: mirror,
            genesisOrigin: genesis.l1.origin,
            sender,
            ownAddress,
            log: finalityLog.child({ part: "outputs" }),
            metrics: fm,
            nowMs: () => Date.now(),
          },
        );
      }
      if (l1.deriveFromL1) {
        node.derivation = new L1Derivation(DEFAULT_DERIVE_PARAMS, {
          chainId,
          inbox: finality.batchInbox,
          client: mirror.publicClient,
          confirmedHead,
          fromBlock: genesis.l1.origin.number,
          headHeight: () => store.headHeight,
          applyCommits: (commits) => driver.applyCommits(commits),
          log: finalityLog.child({ part: "derive" }),
          metrics: fm,
          beaconUrl: l1.beaconUrl,
          kzg: sharedKzg,
        });
      }
    } else if (config.l1?.deriveFromL1 === true) {
      throw new Error("config l1.deriveFromL1 needs a genesis that names a batch inbox (genesis l1.finality)");
    }
    node.l1Mirror = l1Mirror;
    if (config.storage.stateHistory > 0) {
      node.statePruner = new StatePruner({
        store,
        keepHeights: config.storage.stateHistory,
        log: log.child({ component: "state" }),
        metrics: metrics.statePruning,
      });
    }
    if (config.storage.blockHistory > 0) {
      const holds: HistoryHold[] = [];
      const { batcher, outputProposer, statePruner } = node;
      if (workLedger !== null) {
        const ledger = workLedger;
        holds.push({ name: "work ledger", from: () => ledger.accountedHeight + 1 });
      }
      if (batcher !== null) holds.push({ name: "batcher", from: () => batcher.historyNeededFrom() });
      if (outputProposer !== null) {
        holds.push({ name: "output proposer", from: () => outputProposer.historyNeededFrom() });
      }
      if (statePruner !== null) holds.push({ name: "state pruner", from: () => statePruner.historyNeededFrom() });
      node.historyPruner = new HistoryPruner({
        store,
        keepHeights: config.storage.blockHistory,
        holds,
        log: log.child({ component: "history" }),
        metrics: metrics.historyPruning,
      });
    }
    node.workLedger = workLedger;
    node.workReporter = workReporter;
    node.l1Sender = l1Sender;
    return node;
  }

  /**
   * Starts the network, the HTTP endpoint and consensus. `onFatal` gets errors after which the node must exit; `onHalt`
   * the head once it reaches `consensus.haltHeight` (at start already, or later), after start() has returned.
   */
  async start(onFatal: (error: Error) => void, onHalt?: (head: number) => void): Promise<void> {
    this.onHalt = onHalt ?? null;
    // The HTTP endpoint (which reads the dashboard's files) and the L1 mirror come first, so that little sits between
    // the network's start and the driver's (gossip that arrives meanwhile waits in the driver's queue).
    this.l1Mirror?.start();
    const m = this.config.metrics;
    if (m.enabled) {
      this.http = await startHttpServer(
        { host: m.host, port: m.port },
        {
          registry: this.metrics.registry,
          status: () => this.status(),
          ready: () => this.ready(),
          dashboard: () => this.dashboard.data(),
        },
      );
    }
    // The JSON-RPC backend also answers the light-client reads of state sync (over p2p), RPC server or not.
    const backend = this.createRpcBackend();
    this.rpcBackend = backend;
    await this.network.start();
    await this.driver.start(onFatal);
    this.statePruner?.start();
    this.historyPruner?.start();
    this.workReporter?.start();
    this.startEvidenceReporter();
    this.finalizedTracker?.start();
    this.batcher?.start();
    this.outputProposer?.start();
    this.derivation?.start();
    // Blob batches need the KZG trusted setup, which takes seconds to load: in the background, before the first one.
    const l1 = this.config.l1;
    const blobPoster = this.batcher !== null && l1?.batchTransport !== "calldata";
    const blobReader = this.derivation !== null && (l1?.beaconUrl ?? null) !== null;
    if (blobPoster || blobReader) {
      const startedMs = Date.now();
      sharedKzg()
        .warm()
        .then(() => this.log.info({ ms: Date.now() - startedMs }, "KZG trusted setup loaded (blob batches)"))
        .catch((err: unknown) => this.log.warn({ err: String(err) }, "KZG for blob batches failed to load"));
    }
    this.accountWork();
    const r = this.config.rpc;
    if (r.enabled) {
      const rpcLog = this.log.child({ component: "rpc" });
      const solana = createSolanaRpcBackend({
        genesis: this.genesis,
        store: this.store,
        executor: this.executor,
        finalizedHeight: () => this.finalizedTracker?.finalizedHeight ?? 0,
        submit: async (entry) => {
          const added = await this.submitTransaction(entry);
          if (!added.ok) return { ok: false, code: added.code, message: added.message };
          return { ok: true, signature: added.signature ?? "" };
        },
      });
      this.rpc = await startRpcServer(
        { host: r.host, port: r.port, cors: [...r.cors], log: rpcLog, solana, registry: this.metrics.registry },
        backend,
      );
    }
    this.log.info(
      {
        role: this.config.role,
        peerId: this.network.peerId,
        head: this.store.headHeight,
        listen: this.network.addresses(),
      },
      "node started",
    );
    this.startFinished = true;
    if (this.haltedAt !== null) this.notifyHalt();
  }

  /** The driver halted at `head` (consensus.haltHeight): tell start()'s caller, once start() has finished. */
  reachedHalt(head: number): void {
    this.haltedAt = head;
    if (this.startFinished) this.notifyHalt();
  }

  private notifyHalt(): void {
    const head = this.haltedAt;
    const onHalt = this.onHalt;
    this.onHalt = null;
    if (head !== null && onHalt !== null) setImmediate(() => onHalt(head));
  }

  private createRpcBackend(): NodeRpcBackend {
    const rpcLog = this.log.child({ component: "rpc" });
    const r = this.config.rpc;
    return createRpcBackend({
      log: rpcLog,
      chainId: this.genesis.chainId,
      version: NODE_VERSION,
      store: this.store,
      core: this.core,
      executor: this.executor,
      mempool: this.mempool,
      status: () => this.status(),
      peerCount: () => this.network.connectedPeers().length,
      debug: r.debug,
      syncing: () => this.sync.progress(),
      ...(this.l1Mirror === null ? {} : { stakerReport: stakerReportOf(this.l1Mirror) }),
      ...(this.workLedger === null ? {} : { workReport: async (epoch) => this.workReportJson(epoch) }),
      ...(this.finalizedTracker === null ? {} : { finalizedHeight: () => this.finalizedTracker?.finalizedHeight ?? 0 }),
      submit: async (raw) => {
        const added = await this.submitTransaction(raw);
        return added.ok ? { ok: true, hash: added.hash } : { ok: false, code: added.code, message: added.message };
      },
    });
  }

  /** The JSON-RPC methods (the light-client protocol of state sync answers four of them). */
  lightClientMethods(): ReadonlyMap<string, MethodDef> {
    if (this.rpcBackend === null) return new Map();
    this.rpcMethods ??= createMethods(this.rpcBackend, DEFAULT_METHOD_LIMITS);
    return this.rpcMethods;
  }

  /** lumia_getWorkReport: a report with its signature and submission state (null: the newest). */
  private workReportJson(epoch: bigint | null): Record<string, unknown> | null {
    const ledger = this.workLedger;
    if (ledger === null) return null;
    const report = epoch === null ? ledger.recentReports()[0] : ledger.report(epoch);
    if (report === undefined) return null;
    const st = this.workReporter?.status(report.epoch);
    return {
      ...workReportJson(report),
      phase: st?.phase ?? (report.submittable ? "untracked" : "not_submittable"),
      signers: st?.signers ?? [],
      signingPower: `0x${(st?.signingPower ?? 0n).toString(16)}`,
      totalPower: `0x${report.members.reduce((sum, m) => sum + m.votingPower, 0n).toString(16)}`,
      submissionTx: st?.txHash ?? null,
    };
  }

  /** Accounts newly committed heights in the work ledger (in the background; it waits for the L1 view if needed). */
  accountWork(): void {
    const ledger = this.workLedger;
    if (ledger === null) return;
    ledger
      .catchUp()
      .then(() => {
        this.metrics.workAccountedHeight.set(ledger.accountedHeight);
        const latest = ledger.recentReports()[0];
        if (latest !== undefined) this.metrics.workReportEpoch.set(Number(latest.epoch));
      })
      .catch((err: unknown) => this.log.error({ err }, "work accounting failed"));
  }

  /**
   * Submits a raw signed transaction (JSON-RPC eth_sendRawTransaction): pooled here and gossiped to every node, in one
   * message with the others admitted in the same turn of the event loop (./tx-gossip.ts).
   */
  async submitTransaction(raw: Uint8Array): Promise<AddResult> {
    const added = await this.mempool.add(raw, { kind: "local" });
    this.metrics.admissions.inc({ source: "rpc", result: added.ok ? "ok" : added.code });
    if (added.ok) this.txGossip.add(raw);
    return added;
  }

  status(): NodeStatus {
    const d = this.driver.status();
    return {
      chainId: this.genesis.chainId.toString(),
      role: this.config.role,
      peerId: this.network.peerId,
      address: d.address,
      height: d.height,
      round: d.round,
      step: d.step,
      headHeight: d.headHeight,
      headHash: d.headHash,
      votingNow: d.validator,
      peers: this.network.connectedPeers(),
      lastCommitAgoMs: d.lastCommitMs === null ? null : Date.now() - d.lastCommitMs,
      signingPausedForMs: d.signingPausedUntilMs === null ? null : Math.max(0, d.signingPausedUntilMs - Date.now()),
      clockOffsetMs: d.clockOffsetMs === null ? null : Math.round(d.clockOffsetMs),
      haltHeight: this.config.consensus.haltHeight,
      pool: { count: this.mempool.size, bytes: this.mempool.sizeBytes },
      keptFrom: { history: this.store.historyKeptFrom, state: this.store.stateGenerations.keptFrom },
      listen: this.network.addresses(),
      rpc: this.rpc?.url ?? null,
      l1: this.l1Mirror?.status() ?? { ...L1_NOT_CONFIGURED, configured: this.config.l1 !== null },
    };
  }

  /** The dashboard's data (GET /api/dashboard); the driver's commit hook tells it when each height committed here. */
  get dashboard(): DashboardSource {
    if (this.dashboardSource === null) {
      this.dashboardSource = new DashboardSource({
        store: this.store,
        names: new Map(this.genesis.validators.map((v) => [v.address.toLowerCase(), v.name])),
        status: () => this.status(),
      });
    }
    return this.dashboardSource;
  }

  /** Ready: connected to someone and committed recently (or nothing to follow yet). */
  private ready(): boolean {
    const d = this.driver.status();
    return (
      this.network.connectedPeers().length > 0 &&
      (d.lastCommitMs === null || Date.now() - d.lastCommitMs < 30_000) &&
      this.sync.progress() === null
    );
  }

  /**
   * Reports equivocation to L1 once the configured l1.slashing is checked to hold the registry's slasher role (a wrong
   * address would only burn the operator's gas); an L1 that cannot say yet is asked again.
   */
  private startEvidenceReporter(): void {
    const reporter = this.evidenceReporter;
    const check = this.slashingCheck;
    if (reporter === null || check === null) return;
    const log = this.log.child({ component: "evidence" });
    const attempt = (delayMs: number) => {
      setTimeout(() => {
        if (this.stopping !== null) return;
        check().then(
          (ok) => {
            if (this.stopping !== null) return;
            if (ok) reporter.start();
            else
              log.error(
                { slashing: this.config.l1?.slashing },
                "l1.slashing is not the registry's Slashing contract: evidence is not reported",
              );
          },
          (err: unknown) => {
            log.warn({ err: String(err) }, "cannot check l1.slashing yet; trying again");
            attempt(10_000);
          },
        );
      }, delayMs).unref();
    };
    attempt(0);
  }

  stop(): Promise<void> {
    if (this.stopping === null) {
      this.stopping = (async () => {
        this.txGossip.stop();
        this.sync.stop();
        this.workReporter?.stop();
        const evidence = this.evidenceReporter?.stop();
        this.derivation?.stop();
        this.batcher?.stop();
        this.l1Sender?.stop();
        this.outputProposer?.stop();
        this.finalizedTracker?.stop();
        // Their passes in flight read and write the store and the L1 view: let them end first, for a while (an L1 call
        // may hang until its timeout). One that outlives the wait is cut short, and says so at debug.
        const passes = [this.derivation?.idle(), this.batcher?.idle(), this.outputProposer?.idle(), evidence];
        const waited = await settledWithin(passes, STOP_PASSES_GRACE_MS);
        if (!waited) this.log.info({ graceMs: STOP_PASSES_GRACE_MS }, "stopping with an L1 pass still in flight");
        await this.driver.stop();
        await this.statePruner?.stop();
        await this.historyPruner?.stop();
        await this.workLedger?.close();
        await this.l1Mirror?.stop();
        await this.rpc?.close();
        await this.http?.close();
        await this.network.stop();
        await this.store.close();
        this.log.info("node stopped");
      })();
    }
    return this.stopping;
  }
}

export { protocols };
