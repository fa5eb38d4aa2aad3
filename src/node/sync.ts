// Catch-up: a node behind (new, restarted, partitioned, or a replica started late) fetches certified blocks by height
// range from peers and hands them to the driver, which verifies each certificate against the validator set of its
// height before committing. Also serves those requests, and the height-state pull of a stalled node.

import { encodeSignedVote } from "../../consensus/wire.ts";
import type { Network } from "../../p2p/index.ts";
import { RequestError } from "../../p2p/index.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import type { ConsensusDriver } from "./driver.ts";
import type { Logger } from "./log.ts";
import {
  decodeBlocksRequest,
  decodeBlocksResponse,
  decodeHeightStateRequest,
  decodeHeightStateResponse,
  decodeStatus,
  encodeBlocksRequest,
  encodeBlocksResponse,
  encodeHeightStateRequest,
  encodeHeightStateResponse,
  encodeProposalMessage,
  encodeStatus,
  MAX_BLOCKS_PER_REQUEST,
  protocols,
} from "./messages.ts";
import type { NodeMetrics } from "./metrics.ts";
import { type VerifierContext, verifyProposalMessage, verifyVoteMessage } from "./verifier.ts";

/** What sync needs of the network: the p2p Network, or the driver simulation's in-memory one (test/sim/driver-sim.ts). */
export type SyncNetwork = Pick<Network, "connectedPeers" | "request" | "handle" | "report">;

export interface SyncParams {
  readonly chainId: bigint;
  readonly blocksPerRequest: number;
  readonly maxResponseBytes: number;
  readonly requestTimeoutMs: number;
  /** Peers asked when stalled. */
  readonly fanout: number;
  /** Source of the peer choices (default Math.random; the simulation passes its seeded generator). */
  readonly random?: () => number;
}

/** eth_syncing's answer while catching up (heights). */
export interface SyncProgress {
  readonly startingBlock: number;
  readonly currentBlock: number;
  readonly highestBlock: number;
}

/**
 * Heights behind the highest one known before eth_syncing says so: missing the block of the next height alone is
 * part of ordinary operation (the driver fetches it), not catching up.
 */
const SYNCING_MIN_GAP = 2;
/**
 * A node behind whose peers have answered its next height with no block for this long warns (then at most once per
 * this long): a peer a height behind gives none for a moment in ordinary operation.
 */
const NO_SERVER_WARNING_MS = 60_000;

export class SyncManager {
  private target = 0;
  private running = false;
  /** The head when the current catch-up began. */
  private startedAt = 0;
  private stopped = false;
  private preferred: string | undefined;
  private readonly protocols: ReturnType<typeof protocols>;
  private pulling = false;
  private readonly random: () => number;
  /** Since when catch-ups at this head end with no peer serving the next block. */
  private noServer: { readonly sinceMs: number; readonly head: number } | null = null;
  private warnedNoServerAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly params: SyncParams,
    private readonly m: {
      readonly network: SyncNetwork;
      readonly driver: ConsensusDriver;
      readonly store: ChainStore;
      readonly verifier: VerifierContext;
      readonly log: Logger;
      readonly metrics: NodeMetrics;
    },
  ) {
    this.protocols = protocols(params.chainId);
    this.random = params.random ?? Math.random;
  }

  /** Registers the request handlers; call before the network starts. */
  register(): void {
    const { network, store, driver } = this.m;
    const maxResponseBytes = this.params.maxResponseBytes;
    network.handle({
      protocol: this.protocols.status,
      maxRequestBytes: 16,
      maxResponseBytes: 64,
      timeoutMs: this.params.requestTimeoutMs,
      maxRequestsPerSecondPerPeer: 20,
      handle: () => ({
        kind: "ok",
        response: encodeStatus({ headHeight: store.headHeight, headHash: store.headHash() ?? ZERO }),
      }),
    });
    network.handle({
      protocol: this.protocols.blocks,
      maxRequestBytes: 64,
      maxResponseBytes,
      timeoutMs: this.params.requestTimeoutMs,
      maxRequestsPerSecondPerPeer: 20,
      handle: async (data) => {
        let req: ReturnType<typeof decodeBlocksRequest>;
        try {
          req = decodeBlocksRequest(data);
        } catch {
          return { kind: "reject", code: "malformed_request" };
        }
        if (req.fromHeight < 1) return { kind: "reject", code: "bad_height" };
        const count = Math.min(req.maxCount, MAX_BLOCKS_PER_REQUEST, this.params.blocksPerRequest);
        const range = await store.getRange(req.fromHeight, count, maxResponseBytes - 4096);
        return {
          kind: "ok",
          response: encodeBlocksResponse(range.map((r) => ({ block: r.block, certificate: r.certificate }))),
        };
      },
    });
    network.handle({
      protocol: this.protocols.heightState,
      maxRequestBytes: 64,
      maxResponseBytes,
      timeoutMs: this.params.requestTimeoutMs,
      maxRequestsPerSecondPerPeer: 20,
      handle: (data) => {
        let req: ReturnType<typeof decodeHeightStateRequest>;
        try {
          req = decodeHeightStateRequest(data);
        } catch {
          return { kind: "reject", code: "malformed_request" };
        }
        return {
          kind: "ok",
          response: encodeHeightStateResponse(driver.heightState(req.height, maxResponseBytes - 4096)),
        };
      },
    });
  }

  stop(): void {
    this.stopped = true;
  }

  /** Catch-up under way (eth_syncing): null when this node is at most one height behind what it knows. */
  progress(): SyncProgress | null {
    const head = this.m.store.headHeight;
    if (!this.running || this.target - head < SYNCING_MIN_GAP) return null;
    return { startingBlock: this.startedAt, currentBlock: head, highestBlock: this.target };
  }

  /** The subnet has committed `height` (or more): fetch blocks until this node's head reaches it. */
  behind(height: number, peer: string | undefined): void {
    if (height > this.target) this.target = height;
    if (peer !== undefined) this.preferred = peer;
    if (!this.running) void this.run();
  }

  /** The driver made no progress for a while: learn the peers' heads, then pull the height's messages. */
  stalled(height: number, round: number): void {
    if (this.pulling || this.stopped) return;
    this.pulling = true;
    void this.pull(height, round).finally(() => {
      this.pulling = false;
    });
  }

  private async pull(height: number, round: number): Promise<void> {
    const peers = shuffle(this.m.network.connectedPeers(), this.random).slice(0, this.params.fanout);
    await Promise.all(
      peers.map(async (peer) => {
        try {
          const status = decodeStatus(await this.m.network.request(peer, this.protocols.status, new Uint8Array(0)));
          this.m.metrics.peerHeight.set(status.headHeight);
          if (status.headHeight >= height) {
            this.behind(status.headHeight, peer);
            return;
          }
          const resp = decodeHeightStateResponse(
            await this.m.network.request(
              peer,
              this.protocols.heightState,
              encodeHeightStateRequest({ height, round }),
              {
                maxResponseBytes: this.params.maxResponseBytes,
              },
            ),
          );
          // Same checks as gossip: a peer that serves a bad signature is scored down like one that gossips it.
          for (const p of resp.proposals) {
            const v = verifyProposalMessage(this.m.verifier, encodeProposalMessage(p), peer);
            if (v.kind === "accept") this.m.driver.onProposal(v.value.proposal, v.value.block, v.value.bytes);
            else if (v.kind === "reject") this.m.network.report(peer, "reject", v.code);
          }
          for (const vote of resp.votes) {
            const v = verifyVoteMessage(this.m.verifier, encodeSignedVote(vote), peer);
            if (v.kind === "accept") this.m.driver.onVote(v.value);
            else if (v.kind === "reject") this.m.network.report(peer, "reject", v.code);
          }
        } catch (error) {
          this.noteRequestError(peer, error);
        }
      }),
    );
  }

  private async run(): Promise<void> {
    this.running = true;
    this.startedAt = this.m.store.headHeight;
    const failed = new Set<string>();
    /** Peers that answered the next height with no block: behind, or keeping only newer history. */
    let empty = 0;
    try {
      while (!this.stopped && this.m.store.headHeight < this.target) {
        const peer = this.pickPeer(failed);
        if (peer === undefined) {
          // Nobody to ask right now: the stalled tick retries later with fresh status.
          if (empty > 0) this.warnNoServer(empty);
          return;
        }
        const from = this.m.store.headHeight + 1;
        let commits: ReturnType<typeof decodeBlocksResponse>;
        try {
          const data = await this.m.network.request(
            peer,
            this.protocols.blocks,
            encodeBlocksRequest({ fromHeight: from, maxCount: this.params.blocksPerRequest }),
            { maxResponseBytes: this.params.maxResponseBytes, timeoutMs: this.params.requestTimeoutMs },
          );
          commits = decodeBlocksResponse(data);
        } catch (error) {
          this.noteRequestError(peer, error);
          failed.add(peer);
          continue;
        }
        if (commits.length === 0) {
          failed.add(peer);
          empty++;
          continue;
        }
        const { applied, waiting } = await this.m.driver.applyCommits(commits);
        if (waiting && applied === 0) {
          // This node cannot check the next block yet (its L1 view lags): the stalled tick retries later.
          this.m.log.debug({ peer, from }, "sync waits on L1");
          return;
        }
        if (applied === 0 && this.m.store.headHeight < from) {
          // The first block did not verify against its certificate or did not chain: a faulty or lying peer.
          this.m.network.report(peer, "reject", "bad_sync_response");
          failed.add(peer);
        } else {
          this.m.log.debug({ peer, from, applied, head: this.m.store.headHeight }, "synced blocks");
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Peers ahead of this node gave no block for its next height: those that prune history (storage.blockHistory)
   * serve only their newer blocks, so a node far behind needs a peer that keeps the chain from where it stands.
   */
  private warnNoServer(peers: number): void {
    const now = Date.now();
    const head = this.m.store.headHeight;
    if (this.noServer?.head !== head) this.noServer = { sinceMs: now, head };
    if (now - this.noServer.sinceMs < NO_SERVER_WARNING_MS || now - this.warnedNoServerAtMs < NO_SERVER_WARNING_MS) {
      return;
    }
    this.warnedNoServerAtMs = now;
    this.m.log.warn(
      { next: this.m.store.headHeight + 1, highest: this.target, peers },
      "no connected peer serves the next block: peers that prune history (storage.blockHistory) serve only newer " +
        "blocks; connect this node to one that keeps the chain from its head on (an archive node: blockHistory 0)",
    );
  }

  private pickPeer(failed: ReadonlySet<string>): string | undefined {
    const peers = this.m.network.connectedPeers().filter((p) => !failed.has(p));
    if (this.preferred !== undefined && peers.includes(this.preferred)) return this.preferred;
    return shuffle(peers, this.random)[0];
  }

  private noteRequestError(peer: string, error: unknown): void {
    if (error instanceof RequestError) {
      this.m.log.debug({ peer, code: error.code }, "sync request failed");
      return;
    }
    // A response that does not decode is the peer's fault.
    this.m.network.report(peer, "reject", "malformed_response");
    this.m.log.debug({ peer, err: error }, "sync response refused");
  }
}

const ZERO = `0x${"00".repeat(32)}` as const;

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
