// State sync (docs/protocol.md "State sync"): an empty node starts from a peer's recent state instead of executing
// every block since the genesis, which a subnet whose nodes prune history (storage.blockHistory) could not give it.
//
//   1. offer      a connected peer names its head H and the set deciding H + 1, with proposer priorities;
//   2. anchor     the node's own light client (src/light-client), over p2p, follows the validator sets from the
//                 genesis set to H and verifies the certificate of H (BLS, more than 2/3 of the set's power). Everything
//                 below is checked against that header; only the proposer priorities are taken from the peer (no
//                 header commits to them; a wrong one would only make this node expect another proposer);
//   3. blocks     H - 255 .. H (what BLOCKHASH and a restart need) by the sync protocol, chained by parent hashes to
//                 H, each with the certificate the next block carries; and the blocks the light client anchored on
//                 (1, and the one before each set change), so that this node can serve light clients in turn;
//   4. state      every trie node and code under the header's VM roots, by hash from the peers (several at once): a
//                 node is accepted only when it hashes to its key, so no peer can make the state differ from H's;
//   5. install    one synced batch makes H the head (ChainStore.installSnapshot); the node then starts as after a
//                 restart and follows the chain from H + 1 by ordinary sync and consensus.
//
// A crash at any step leaves the store empty (head 0): the next start syncs again, reading the nodes it already wrote
// instead of fetching them. A peer that serves a node with the wrong hash, a block off the chain or a certificate that
// does not verify is scored down and not asked again.
import { CODEHASH_PREFIX } from "@ethereumjs/statemanager";
import { fromHex, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { type Certificate, decodeCertificate } from "../../consensus/certificate.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import type { Network } from "../../p2p/index.ts";
import { RequestError } from "../../p2p/index.ts";
import { type Block, blockHash, bodyProblem, decodeBlock } from "../chain/block.ts";
import { EMPTY_TRIE_ROOT } from "../chain/ordered-trie.ts";
import type { Genesis } from "../config/genesis.ts";
import { blstScheme } from "../crypto/blst.ts";
import { queueRefs } from "../execution/reachable.ts";
import { EVM_VM } from "../execution/vm.ts";
import { anchorFromGenesis, LightClient, LightClientError } from "../light-client/index.ts";
import type { RpcTransport } from "../light-client/transport.ts";
import { RpcCallError } from "../light-client/transport.ts";
import { type MethodDef, validateParams } from "../rpc/dispatch.ts";
import type { ChainStore, SnapshotInstall } from "../storage/chain-store.ts";
import { encodeValidatorSet } from "../storage/codecs.ts";
import type { Logger } from "./log.ts";
import {
  decodeBlocksResponse,
  decodeSnapshotOffer,
  decodeStateNodesRequest,
  decodeStateNodesResponse,
  encodeBlocksRequest,
  encodeSnapshotOffer,
  encodeStateNodesRequest,
  encodeStateNodesResponse,
  MAX_BLOCKS_PER_REQUEST,
  MAX_STATE_NODES_PER_REQUEST,
  protocols,
  type SnapshotOffer,
} from "./messages.ts";

/** Heights of blocks below the head a synced node needs: BLOCKHASH's window (and a restart's). */
export const STATE_SYNC_BLOCKS = 256;
/** The JSON-RPC methods the light client uses, the only ones the light-client protocol answers. */
export const LIGHT_CLIENT_METHODS: ReadonlySet<string> = new Set([
  "eth_chainId",
  "lumia_getCertificate",
  "lumia_getValidatorSetHistory",
  "lumia_getValidatorSet",
]);
const MAX_LIGHT_CLIENT_REQUEST_BYTES = 4096;
const MAX_LIGHT_CLIENT_RESPONSE_BYTES = 4 * 1024 * 1024;
/** A request refused for the rate is sent again after this long, up to this many times. */
const RATE_RETRY_MS = 200;
const RATE_RETRIES = 100;
/** First byte of a code key ("c" || code hash), as the EVM state manager stores code. */
const CODE_KEY_PREFIX = CODEHASH_PREFIX[0];

export interface StateSyncParams {
  readonly chainId: bigint;
  readonly requestTimeoutMs: number;
  /** Largest response a peer may send (blocks and state nodes). */
  readonly maxResponseBytes: number;
  /** Keys per state-nodes request (at most MAX_STATE_NODES_PER_REQUEST). */
  readonly nodesPerRequest: number;
  /** State-nodes requests in flight, over distinct peers where there are several. */
  readonly parallelRequests: number;
  /** How long to wait for a peer with a state to offer before giving up (the node then exits); default no limit. */
  readonly waitForPeersMs: number;
  /** Full tries (offer, anchor, blocks, state) before giving up. */
  readonly attempts: number;
}

export const DEFAULT_STATE_SYNC_PARAMS: Omit<StateSyncParams, "chainId"> = {
  requestTimeoutMs: 10_000,
  maxResponseBytes: 16 * 1024 * 1024,
  nodesPerRequest: MAX_STATE_NODES_PER_REQUEST,
  parallelRequests: 4,
  // A joining sequencer's peers admit it only once its registration is confirmed on L1: it waits as long as it takes.
  waitForPeersMs: Number.POSITIVE_INFINITY,
  attempts: 5,
};

export type StateSyncNetwork = Pick<Network, "connectedPeers" | "request" | "report">;

export type StateSyncErrorCode =
  /** No connected peer offered a state within waitForPeersMs. */
  | "no_snapshot"
  /** Every attempt failed (each failure is logged). */
  | "failed"
  /** stop() was called. */
  | "stopped";

export class StateSyncError extends Error {
  override readonly name = "StateSyncError";
  constructor(
    readonly code: StateSyncErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A peer's answer that this node proved wrong: the peer is scored down and not asked again in this attempt. */
class FaultyPeer extends Error {
  constructor(
    readonly peer: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface StateSyncResult {
  readonly height: number;
  readonly blockHash: Hex;
  /** State nodes and code fetched from peers / found already written by an interrupted sync. */
  readonly fetched: number;
  readonly local: number;
  readonly bytes: number;
  readonly ms: number;
}

export interface StateSyncMetrics {
  /** State nodes written, by where they came from. */
  readonly nodes: { inc(labels: { source: "peer" | "local" }, value: number): void };
}

// ---------------------------------------------------------------------------------------------------------------------
// Serving

/**
 * Registers the three state-sync protocols: the offer (this node's head and next set), state nodes by key, and the
 * light client's four read methods (answered by `methods`, the node's JSON-RPC method table).
 */
export function serveStateSync(
  network: Pick<Network, "handle">,
  m: {
    readonly chainId: bigint;
    readonly store: ChainStore;
    readonly methods: () => ReadonlyMap<string, MethodDef>;
    readonly maxResponseBytes: number;
    readonly requestTimeoutMs: number;
  },
): void {
  const p = protocols(m.chainId);
  network.handle({
    protocol: p.snapshot,
    maxRequestBytes: 16,
    maxResponseBytes: 1024 * 1024,
    timeoutMs: m.requestTimeoutMs,
    maxRequestsPerSecondPerPeer: 5,
    // The head and the next set change together (one commit), and both are read in the same turn.
    handle: () => ({
      kind: "ok",
      response: encodeSnapshotOffer({
        height: m.store.headHeight,
        nextValidatorSet: m.store.validatorSetFor(m.store.headHeight + 1),
      }),
    }),
  });
  network.handle({
    protocol: p.stateNodes,
    maxRequestBytes: 8 + MAX_STATE_NODES_PER_REQUEST * (4 + 33),
    maxResponseBytes: m.maxResponseBytes,
    timeoutMs: m.requestTimeoutMs,
    maxRequestsPerSecondPerPeer: 50,
    maxConcurrentPerPeer: 8,
    handle: async (data, _from, signal) => {
      let keys: readonly Uint8Array[];
      try {
        keys = decodeStateNodesRequest(data);
      } catch {
        return { kind: "reject", code: "malformed_request" };
      }
      if (keys.some((k) => !(k.length === 32 || (k.length === 33 && k[0] === CODE_KEY_PREFIX)))) {
        return { kind: "reject", code: "bad_state_key" };
      }
      const values: Uint8Array[] = [];
      let size = 0;
      for (const key of keys) {
        if (signal.aborted) break;
        const value = (await m.store.stateNode(key))?.value ?? new Uint8Array(0);
        // The first value always goes; then stop before the response would pass the limit (the rest is asked again).
        if (values.length > 0 && size + value.length + 4 > m.maxResponseBytes - 1024) break;
        values.push(value);
        size += value.length + 4;
      }
      return { kind: "ok", response: encodeStateNodesResponse(values) };
    },
  });
  network.handle({
    protocol: p.lightClient,
    maxRequestBytes: MAX_LIGHT_CLIENT_REQUEST_BYTES,
    maxResponseBytes: MAX_LIGHT_CLIENT_RESPONSE_BYTES,
    timeoutMs: m.requestTimeoutMs,
    maxRequestsPerSecondPerPeer: 50,
    handle: async (data) => {
      let call: { method?: unknown; params?: unknown };
      try {
        call = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data)) as typeof call;
      } catch {
        return { kind: "reject", code: "malformed_request" };
      }
      const def = typeof call?.method === "string" ? m.methods().get(call.method) : undefined;
      if (def === undefined || !LIGHT_CLIENT_METHODS.has(call.method as string)) {
        return { kind: "reject", code: "unknown_method" };
      }
      const validated = validateParams(def, call.params);
      const outcome = validated.ok ? await def.run(validated.args) : validated;
      const body = outcome.ok ? { result: outcome.result } : { error: outcome.error };
      return { kind: "ok", response: new TextEncoder().encode(JSON.stringify(body)) };
    },
  });
}

type Request = (peer: string, protocol: string, data: Uint8Array, maxResponseBytes: number) => Promise<Uint8Array>;

/** The light client's transport over the light-client protocol to one peer. */
function p2pTransport(request: Request, peer: string, protocol: string): RpcTransport {
  return {
    async request(method, params) {
      const data = new TextEncoder().encode(JSON.stringify({ method, params }));
      let answer: { result?: unknown; error?: { code?: unknown; message?: unknown } };
      try {
        const bytes = await request(peer, protocol, data, MAX_LIGHT_CLIENT_RESPONSE_BYTES);
        answer = JSON.parse(new TextDecoder().decode(bytes)) as typeof answer;
      } catch (error) {
        if (error instanceof RequestError) {
          throw new LightClientError("rpc_error", `${method}: ${error.message}`, { cause: error });
        }
        throw new LightClientError("bad_response", `${method}: the answer is not JSON`, { cause: error });
      }
      if (answer?.error !== undefined) {
        throw new RpcCallError(method, Number(answer.error.code), String(answer.error.message));
      }
      if (answer === null || typeof answer !== "object" || !("result" in answer)) {
        throw new LightClientError("bad_response", `${method}: the answer has neither result nor error`);
      }
      return answer.result;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Syncing

interface Pending {
  readonly key: string;
  readonly accounts: boolean;
}

/** Where a state sync stands (the operator endpoint's /status while it runs). */
export interface StateSyncProgress {
  /** "offer": waiting for a peer's offer; "anchor": verifying its head; "blocks"; "state"; "done". */
  readonly phase: "offer" | "anchor" | "blocks" | "state" | "done";
  /** The head being synced to (0 before an offer is taken). */
  readonly height: number;
  readonly attempt: number;
  readonly fetched: number;
  readonly local: number;
  readonly bytes: number;
  /** Keys known and not fetched yet. */
  readonly queued: number;
}

export class StateSync {
  private readonly protocols: ReturnType<typeof protocols>;
  private stopped = false;
  private state: StateSyncProgress = {
    phase: "offer",
    height: 0,
    attempt: 0,
    fetched: 0,
    local: 0,
    bytes: 0,
    queued: 0,
  };
  /** Peers proved faulty: never asked again by this sync. */
  private readonly faulty = new Set<string>();
  /** Peers whose offer led to a failed attempt without proving them faulty: others' offers go first. */
  private readonly unhelpful = new Set<string>();

  constructor(
    private readonly params: StateSyncParams,
    private readonly m: {
      readonly network: StateSyncNetwork;
      readonly store: ChainStore;
      readonly genesis: Genesis;
      readonly log: Logger;
      readonly metrics?: StateSyncMetrics;
      readonly sleep?: (ms: number) => Promise<void>;
    },
  ) {
    this.protocols = protocols(params.chainId);
  }

  stop(): void {
    this.stopped = true;
  }

  progress(): StateSyncProgress {
    return this.state;
  }

  private update(change: Partial<StateSyncProgress>): void {
    this.state = { ...this.state, ...change };
  }

  /** Syncs the empty store to a peer's recent state and installs it. Throws StateSyncError. */
  async run(): Promise<StateSyncResult> {
    if (this.m.store.headHeight !== 0) {
      throw new StateSyncError("failed", `the store already has height ${this.m.store.headHeight}`);
    }
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.params.attempts; attempt++) {
      this.update({ phase: "offer", attempt, height: 0 });
      const offer = await this.bestOffer();
      try {
        return await this.attempt(offer.peer, offer.offer);
      } catch (error) {
        if (this.stopped) throw new StateSyncError("stopped", "state sync stopped");
        lastError = error;
        if (error instanceof FaultyPeer) {
          this.faulty.add(error.peer);
          this.m.network.report(error.peer, "reject", error.code);
        } else if (error instanceof LightClientError && error.code !== "rpc_error" && error.code !== "not_found") {
          // The peer's anchor answers did not verify against the genesis set.
          this.faulty.add(offer.peer);
          this.m.network.report(offer.peer, "reject", `state_sync_${error.code}`);
        } else {
          this.unhelpful.add(offer.peer);
        }
        this.m.log.warn(
          { attempt, of: this.params.attempts, peer: offer.peer, height: offer.offer.height, err: String(error) },
          "state sync attempt failed",
        );
      }
    }
    throw new StateSyncError("failed", `state sync failed ${this.params.attempts} times; last: ${String(lastError)}`, {
      cause: lastError,
    });
  }

  private peers(): string[] {
    return this.m.network.connectedPeers().filter((p) => !this.faulty.has(p));
  }

  private checkStopped(): void {
    if (this.stopped) throw new StateSyncError("stopped", "state sync stopped");
  }

  /** The highest offer of the connected peers, waiting for one up to waitForPeersMs. */
  private async bestOffer(): Promise<{ peer: string; offer: SnapshotOffer }> {
    const deadline = Date.now() + this.params.waitForPeersMs;
    let lastLog = 0;
    for (;;) {
      this.checkStopped();
      const offers = await Promise.all(
        this.peers().map(async (peer) => {
          try {
            const bytes = await this.m.network.request(peer, this.protocols.snapshot, new Uint8Array(0), {
              timeoutMs: this.params.requestTimeoutMs,
              maxResponseBytes: 1024 * 1024,
            });
            return { peer, offer: decodeSnapshotOffer(bytes) };
          } catch (error) {
            if (!(error instanceof RequestError)) this.m.network.report(peer, "reject", "malformed_response");
            return null;
          }
        }),
      );
      let best: { peer: string; offer: SnapshotOffer } | null = null;
      const better = (o: { peer: string; offer: SnapshotOffer }) =>
        best === null ||
        (this.unhelpful.has(best.peer) && !this.unhelpful.has(o.peer)) ||
        (this.unhelpful.has(best.peer) === this.unhelpful.has(o.peer) && o.offer.height > best.offer.height);
      for (const o of offers) if (o !== null && o.offer.height > 0 && better(o)) best = o;
      const checked = best === null ? null : this.crossChecked(best, offers);
      if (checked !== null) return checked;
      if (Date.now() >= deadline) {
        throw new StateSyncError(
          "no_snapshot",
          `no connected peer offered a state within ${this.params.waitForPeersMs} ms (peers: ${this.peers().length})`,
        );
      }
      if (Date.now() - lastLog >= 30_000) {
        lastLog = Date.now();
        this.m.log.info(
          { peers: this.peers().length },
          "state sync waits for a connected peer with a state to offer (are this node's peers admitting it yet?)",
        );
      }
      await this.sleep(1_000);
    }
  }

  /**
   * The proposer priorities of an offer are not committed to by any header; the peers that offer the same height
   * must agree on them. When they do not, the set most of them offer is taken and the others are scored down; with no
   * majority, null (the offers are asked again).
   */
  private crossChecked(
    best: { peer: string; offer: SnapshotOffer },
    offers: readonly ({ peer: string; offer: SnapshotOffer } | null)[],
  ): { peer: string; offer: SnapshotOffer } | null {
    const same = offers.filter((o) => o !== null && o.offer.height === best.offer.height) as {
      peer: string;
      offer: SnapshotOffer;
    }[];
    const key = (o: { offer: SnapshotOffer }) => toHex(encodeValidatorSet(o.offer.nextValidatorSet));
    const votes = new Map<string, { peer: string; offer: SnapshotOffer }[]>();
    for (const o of same) votes.set(key(o), [...(votes.get(key(o)) ?? []), o]);
    if (votes.size === 1) return best;
    const ranked = [...votes.values()].sort((a, b) => b.length - a.length);
    const winners = ranked[0] as { peer: string; offer: SnapshotOffer }[];
    if (winners.length === (ranked[1]?.length ?? 0)) {
      // No majority: nothing tells which is right; ask again (heads move on, more peers connect).
      this.m.log.warn({ height: best.offer.height, offers: same.length }, "state sync: offers of one height disagree");
      return null;
    }
    for (const group of ranked.slice(1)) for (const o of group) this.markFaulty(o.peer, "state_sync_bad_offer");
    return winners.find((o) => o.peer === best.peer) ?? (winners[0] as { peer: string; offer: SnapshotOffer });
  }

  private sleep(ms: number): Promise<void> {
    return this.m.sleep?.(ms) ?? new Promise<void>((resolve) => setTimeout(resolve, ms));
  }

  private async attempt(peer: string, offer: SnapshotOffer): Promise<StateSyncResult> {
    const started = Date.now();
    const height = offer.height;
    this.update({ phase: "anchor", height, fetched: 0, local: 0, bytes: 0, queued: 0 });
    this.m.log.info({ peer, height }, "state sync: verifying the offered head from the genesis set");
    const client = await LightClient.create({
      transport: p2pTransport((...args) => this.request(...args), peer, this.protocols.lightClient),
      genesis: anchorFromGenesis(this.m.genesis),
      scheme: blstScheme,
    });
    const head = await client.verifiedHeader(height);
    if (offer.nextValidatorSet.id !== head.header.nextValidatorSetId) {
      throw new FaultyPeer(
        peer,
        "state_sync_bad_offer",
        `offered set ${offer.nextValidatorSet.id} for height ${height + 1}, block ${height} names ` +
          head.header.nextValidatorSetId,
      );
    }
    this.update({ phase: "blocks" });
    const blocks = await this.recentBlocks(peer, height, head.hash, head.certificate);
    this.checkStopped();
    // The sets from the genesis on; the next height's too when it changes there.
    const epochs = client.trustedSets().filter((e) => e.fromHeight <= height);
    const setChanges: { fromHeight: number; set: ValidatorSet }[] = [];
    for (const e of epochs) setChanges.push({ fromHeight: e.fromHeight, set: await client.trustedValidatorSet(e.id) });
    if (setChanges[setChanges.length - 1]?.set.id !== offer.nextValidatorSet.id) {
      setChanges.push({ fromHeight: height + 1, set: offer.nextValidatorSet });
    }
    const from = blocks[0]?.height ?? 1;
    const anchors = await this.anchorBlocks(
      peer,
      client,
      [1, ...epochs.map((e) => e.fromHeight - 1)].filter((h) => h >= 1 && h < from),
    );
    this.update({ phase: "state" });
    const counts = await this.fetchState(head.header.vmRoots);
    this.checkStopped();
    const install: SnapshotInstall = {
      blocks: [...anchors, ...blocks],
      nextValidatorSet: offer.nextValidatorSet,
      setChanges,
    };
    await this.m.store.installSnapshot(install);
    this.update({ phase: "done", ...counts, queued: 0 });
    const result = { height, blockHash: head.hash, ...counts, ms: Date.now() - started };
    this.m.log.info({ ...result, peer }, "state sync installed the state of a verified head");
    return result;
  }

  /**
   * Blocks max(1, head - 255) .. head from `peer`, checked from the verified head down: each block hashes to the
   * parent hash of the one above it, and its certificate is the one that block carries.
   */
  private async recentBlocks(
    peer: string,
    height: number,
    headHash: Hex,
    headCertificate: Certificate,
  ): Promise<SnapshotInstall["blocks"][number][]> {
    const from = Math.max(1, height - STATE_SYNC_BLOCKS + 1);
    const raw: Uint8Array[] = [];
    while (from + raw.length <= height) {
      this.checkStopped();
      const next = from + raw.length;
      const items = await this.requestBlocks(peer, next, Math.min(MAX_BLOCKS_PER_REQUEST, height - next + 1));
      if (items.length === 0) throw new Error(`peer ${peer} has no block ${next}`);
      for (const [i, item] of items.entries()) if (next + i <= height) raw.push(item.block);
    }
    const out: SnapshotInstall["blocks"][number][] = [];
    let expected = headHash;
    let certificate = headCertificate;
    for (let h = height; h >= from; h--) {
      const block = raw[h - from] as Uint8Array;
      const { hash, block: head } = checkedBlock(peer, h, block, expected);
      out.push({ height: h, blockHash: hash, block, certificate });
      expected = head.header.parentHash;
      if (h > from) {
        try {
          certificate = decodeCertificate(head.lastCertificate);
        } catch {
          throw new FaultyPeer(peer, "state_sync_bad_block", `block ${h} carries no certificate of its parent`);
        }
      }
    }
    if (from === 1 && expected !== this.m.genesis.hash) {
      throw new FaultyPeer(peer, "state_sync_bad_block", "block 1's parent is not the genesis");
    }
    return out.reverse();
  }

  /** The blocks the light client anchored on, each checked against its verified header. */
  private async anchorBlocks(
    peer: string,
    client: LightClient,
    heights: readonly number[],
  ): Promise<SnapshotInstall["blocks"][number][]> {
    const out: SnapshotInstall["blocks"][number][] = [];
    for (const h of [...new Set(heights)].sort((a, b) => a - b)) {
      this.checkStopped();
      const verified = await client.verifiedHeader(h);
      const items = await this.requestBlocks(peer, h, 1);
      const block = items[0]?.block;
      if (block === undefined) {
        // A peer that keeps neither is no light-client anchor for others; this node still syncs without it.
        this.m.log.warn({ peer, height: h }, "state sync: the peer does not serve a block light clients anchor on");
        continue;
      }
      const { hash } = checkedBlock(peer, h, block, verified.hash);
      out.push({ height: h, blockHash: hash, block, certificate: verified.certificate });
    }
    return out;
  }

  private async requestBlocks(peer: string, fromHeight: number, maxCount: number) {
    let data: Uint8Array;
    try {
      data = await this.request(
        peer,
        this.protocols.blocks,
        encodeBlocksRequest({ fromHeight, maxCount }),
        this.params.maxResponseBytes,
      );
    } catch (error) {
      if (error instanceof RequestError) throw error;
      throw new FaultyPeer(peer, "malformed_response", `blocks from ${fromHeight}: ${String(error)}`);
    }
    try {
      return decodeBlocksResponse(data);
    } catch {
      throw new FaultyPeer(peer, "malformed_response", `blocks from ${fromHeight} do not decode`);
    }
  }

  /**
   * Every node and code under `vmRoots` into the store (not synced: the install's batch is). Nodes already in the
   * store (an interrupted sync wrote them) are read, not fetched. Requests go to several peers at once; a key no peer
   * has fails the attempt (the offered head's state was pruned meanwhile: the next attempt takes a newer head).
   */
  private async fetchState(
    vmRoots: readonly { vm: number; root: Hex }[],
  ): Promise<{ fetched: number; local: number; bytes: number }> {
    const store = this.m.store;
    const pending: Pending[] = [];
    const code: string[] = [];
    /** Tries (by root) and code keys already queued: contracts with equal storage or code share them. */
    const seen = new Set<string>();
    let fetched = 0;
    let local = 0;
    let bytes = 0;
    let lastLog = Date.now();
    const visit = (node: Uint8Array, accounts: boolean): void => queueRefs(node, accounts, seen, pending, code);
    for (const { vm, root } of vmRoots) {
      const key = root.toLowerCase();
      if (key === EMPTY_TRIE_ROOT || seen.has(key)) continue;
      seen.add(key);
      pending.push({ key, accounts: vm === EVM_VM.id });
    }
    /** Takes up to `n` keys whose values are not in the store; expands those that are. */
    const takeMissing = async (n: number): Promise<Pending[]> => {
      const out: Pending[] = [];
      while (out.length < n) {
        const codeKey = code.pop();
        const item = codeKey !== undefined ? { key: codeKey, accounts: false } : pending.pop();
        if (item === undefined) break;
        const found = await store.stateNode(fromHex(item.key as Hex));
        if (found === undefined) out.push(item);
        else {
          local++;
          if (codeKey === undefined) visit(found.value, item.accounts);
        }
      }
      return out;
    };
    let inFlight = 0;
    let failure: unknown = null;
    let peerTurn = 0;
    await new Promise<void>((resolve) => {
      const queued = () => pending.length + code.length;
      const pump = (): void => {
        if (failure !== null || this.stopped || queued() === 0) {
          if (inFlight === 0) resolve();
          return;
        }
        // Each worker takes its keys before its first wait: no more workers than keys queued.
        while (inFlight < this.params.parallelRequests && queued() > 0) {
          inFlight++;
          void (async () => {
            const batch = await takeMissing(this.params.nodesPerRequest);
            if (batch.length === 0) return;
            const peers = this.peers();
            if (peers.length === 0) throw new Error("no connected peer to fetch state from");
            const values = await this.fetchNodes(batch, peers, peerTurn++);
            const writes: [Uint8Array, Uint8Array][] = [];
            for (const [i, item] of batch.entries()) {
              const value = values[i] as Uint8Array;
              writes.push([fromHex(item.key as Hex), value]);
              bytes += value.length;
              if (!isCodeKey(item.key)) visit(value, item.accounts);
            }
            await store.copyStateNodes(writes);
            fetched += writes.length;
            this.m.metrics?.nodes.inc({ source: "peer" }, writes.length);
            this.update({ fetched, local, bytes, queued: pending.length + code.length });
            if (Date.now() - lastLog >= 5_000) {
              lastLog = Date.now();
              this.m.log.info({ fetched, local, bytes, queued: pending.length + code.length }, "state sync progress");
            }
          })()
            .catch((error: unknown) => {
              failure ??= error;
            })
            .finally(() => {
              inFlight--;
              pump();
            });
        }
      };
      pump();
    });
    this.checkStopped();
    if (failure !== null) throw failure;
    if (pending.length > 0 || code.length > 0) throw new Error("state sync ended with keys left to fetch");
    this.m.metrics?.nodes.inc({ source: "local" }, local);
    return { fetched, local, bytes };
  }

  /**
   * The values of `batch`, each checked against its key, from the peers in turn starting at `turn`: what one peer
   * lacks is asked of the next. A value with the wrong hash proves the peer faulty.
   */
  private async fetchNodes(batch: readonly Pending[], peers: readonly string[], turn: number): Promise<Uint8Array[]> {
    const values: (Uint8Array | undefined)[] = new Array(batch.length);
    for (let k = 0; k < peers.length; k++) {
      const peer = peers[(turn + k) % peers.length] as string;
      if (this.faulty.has(peer)) continue;
      for (;;) {
        const wanted = batch.map((b, i) => (values[i] === undefined ? i : -1)).filter((i) => i >= 0);
        if (wanted.length === 0) return values as Uint8Array[];
        let answer: readonly Uint8Array[];
        try {
          answer = decodeStateNodesResponse(
            await this.request(
              peer,
              this.protocols.stateNodes,
              encodeStateNodesRequest(wanted.map((i) => fromHex((batch[i] as Pending).key as Hex))),
              this.params.maxResponseBytes,
            ),
          );
        } catch (error) {
          if (!(error instanceof RequestError)) this.markFaulty(peer, "malformed_response");
          break;
        }
        if (answer.length === 0 || answer.length > wanted.length) {
          if (answer.length > wanted.length) this.markFaulty(peer, "state_sync_bad_response");
          break;
        }
        let missing = 0;
        for (const [j, value] of answer.entries()) {
          const i = wanted[j] as number;
          if (value.length === 0) {
            missing++;
            continue;
          }
          if (!valueMatchesKey((batch[i] as Pending).key, value)) {
            this.markFaulty(peer, "state_sync_bad_node");
            break;
          }
          values[i] = value;
        }
        if (this.faulty.has(peer) || missing === answer.length) break;
      }
    }
    const lacking = batch.filter((_, i) => values[i] === undefined);
    if (lacking.length > 0) {
      throw new Error(
        `no connected peer has ${lacking.length} state node(s) of the offered head (e.g. ${lacking[0]?.key}): ` +
          "pruned meanwhile, or the peers are faulty",
      );
    }
    return values as Uint8Array[];
  }

  /**
   * One request; a refusal for the rate (the server's per-peer limit) or for this node's own limit of requests in
   * flight is waited out and sent again (up to RATE_RETRIES times), anything else throws.
   */
  private async request(peer: string, protocol: string, data: Uint8Array, maxResponseBytes: number) {
    for (let tries = 0; ; tries++) {
      try {
        return await this.m.network.request(peer, protocol, data, {
          timeoutMs: this.params.requestTimeoutMs,
          maxResponseBytes,
        });
      } catch (error) {
        const limited =
          error instanceof RequestError &&
          error.code === "refused" &&
          (error.remoteCode === "rate_limited" || error.remoteCode === undefined);
        if (!limited || tries >= RATE_RETRIES) throw error;
        this.checkStopped();
        await this.sleep(RATE_RETRY_MS);
      }
    }
  }

  private markFaulty(peer: string, code: string): void {
    if (this.faulty.has(peer)) return;
    this.faulty.add(peer);
    this.m.network.report(peer, "reject", code);
    this.m.log.warn({ peer, code }, "state sync: a peer served data that does not verify; it is not asked again");
  }
}

/**
 * `bytes` as the block of height `height` whose hash is `expected` (certified, or the parent hash of a checked block),
 * its body included (the header commits to it); FaultyPeer otherwise.
 */
function checkedBlock(peer: string, height: number, bytes: Uint8Array, expected: Hex): { hash: Hex; block: Block } {
  let block: Block;
  try {
    block = decodeBlock(bytes);
  } catch {
    throw new FaultyPeer(peer, "state_sync_bad_block", `block ${height} does not decode`);
  }
  const hash = blockHash(block.header);
  if (hash !== expected || block.header.height !== height) {
    throw new FaultyPeer(peer, "state_sync_bad_block", `block ${height} is not the one the verified head chains to`);
  }
  const problem = bodyProblem(block, true);
  if (problem !== null) {
    throw new FaultyPeer(
      peer,
      "state_sync_bad_block",
      `block ${height}'s body is not its header's: ${problem.message}`,
    );
  }
  return { hash, block };
}

function isCodeKey(key: string): boolean {
  return key.length === 2 + 66;
}

/** A trie node hashes to its key; code hashes to the hash after the "c" of its key. */
function valueMatchesKey(key: string, value: Uint8Array): boolean {
  const hash = toHex(keccak256(value));
  return isCodeKey(key) ? `0x${key.slice(4)}` === hash.toLowerCase() : key === hash.toLowerCase();
}
