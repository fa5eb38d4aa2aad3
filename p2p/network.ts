// The permissioned libp2p network of a DCN node: TCP + Noise + Yamux, gossipsub for broadcast, length-prefixed
// request/response for sync. Generic: topics, protocols and their validation belong to the node; this layer
// enforces admission (allow list + bans), sizes, queues, rates and timeouts, and turns rejects into a peer score
// that disconnects and bans misbehaving peers. See p2p/README.md for the model.
import { hash } from "node:crypto";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { type GossipSub, gossipsub, StrictNoSign, TopicValidatorResult } from "@libp2p/gossipsub";
import { identify } from "@libp2p/identify";
import type { Connection, ConnectionGater, Libp2p, PeerId, Stream } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { lpStream } from "@libp2p/utils";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import type { Registry } from "prom-client";
import { withCoalescedWrites } from "./coalesced-writes.ts";
import { NetworkError, RequestError, type RequestErrorCode } from "./errors.ts";
import { decodeResponse, encodeResponse, MAX_CODE_BYTES, type ResponseFrame, sanitizeCode } from "./framing.ts";
import { generatePeerKey, peerIdFromPrivateKey, privateKeyFromBytes } from "./keys.ts";
import { createMetrics, type NetworkMetrics } from "./metrics.ts";
import { type DropPolicy, ValidationQueue } from "./queue.ts";
import { KeyedSlots, TokenBuckets } from "./rate-limit.ts";
import { PeerScores, resolveScoreParams, type ScoreParams } from "./score.ts";
import { installYamuxWindowHysteresis } from "./yamux-window.ts";

export type { ScoreParams };
export { generatePeerKey, peerIdFromPrivateKey };

export type Verdict<T> =
  /**
   * Decoded and checked: delivered to onMessage and forwarded, unless `forward` is false (delivered, not forwarded:
   * the topic knows every peer already got it from its author; gossipsub sees Ignore, so no peer is penalised).
   */
  | { readonly kind: "accept"; readonly value: T; readonly forward?: boolean }
  /** Not forwarded, no penalty (duplicate, stale, too early). */
  | { readonly kind: "ignore"; readonly code: string }
  /** Invalid: not forwarded, the propagation peer is scored down. */
  | { readonly kind: "reject"; readonly code: string };

export interface TopicSpec<T> {
  /** Full gossipsub topic, e.g. "/lumia/dcn/<chainId>/votes/1". */
  readonly name: string;
  /** Larger messages are rejected "oversized" before validate is called; publish refuses them too. */
  readonly maxBytes: number;
  /** Bounded validation queue; when full a message is dropped per dropPolicy (verdict ignore "queue_full"). */
  readonly queueLength: number;
  readonly dropPolicy: DropPolicy;
  /** Validations in flight at once for this topic (default 1: validate runs serially, in arrival order). */
  readonly concurrency?: number;
  /** Background topic (high volume, not urgent: transactions): the event loop turns between two validations (queue.ts). */
  readonly background?: boolean;
  validate(data: Uint8Array, from: string): Verdict<T> | Promise<Verdict<T>>;
  /** Called once per accepted message, in acceptance order, before the message is forwarded. */
  onMessage(value: T, from: string): void;
}

export type RequestResult =
  | { readonly kind: "ok"; readonly response: Uint8Array }
  /** Bad request: the requester gets RequestError "rejected" and is scored down. */
  | { readonly kind: "reject"; readonly code: string };

export interface RequestSpec {
  /** e.g. "/lumia/dcn/<chainId>/sync/blocks/1". */
  readonly protocol: string;
  /** Server side: larger requests are rejected "oversized" (and scored down) without calling handle. */
  readonly maxRequestBytes: number;
  /** Server side: a larger handler response is a local bug, answered "failed". Client default for request(). */
  readonly maxResponseBytes: number;
  /** Server side: whole exchange (read, handle, write). Client default for request(). */
  readonly timeoutMs: number;
  /** Token bucket per peer with a burst of one second's worth; over the limit the request is refused. */
  readonly maxRequestsPerSecondPerPeer: number;
  /** Concurrent inbound streams per connection for this protocol (default 16). */
  readonly maxConcurrentPerPeer?: number;
  /** signal aborts when the exchange times out or the network stops; long handlers should stop work then. */
  handle(request: Uint8Array, from: string, signal: AbortSignal): Promise<RequestResult> | RequestResult;
}

export type LogLevel = "debug" | "info" | "warn";
export type LogFn = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface NetworkOptions {
  /** Raw Ed25519 key: the 32-byte seed (preferred; what generatePeerKey returns) or libp2p's 64-byte seed||public. */
  readonly privateKey: Uint8Array;
  /** Multiaddrs to listen on, e.g. "/ip4/127.0.0.1/tcp/0". */
  readonly listen: readonly string[];
  /** Bootstrap multiaddrs ending in /p2p/<id>; kept connected (redial with exponential backoff). */
  readonly peers: readonly string[];
  /** Peer id strings admitted (validators + replicas); every other peer is refused by the connection gater. */
  readonly allowedPeers: readonly string[];
  readonly score?: Partial<ScoreParams>;
  /** When given, metrics are registered in this registry (and only there). */
  readonly registry?: Registry;
  readonly log?: LogFn;
  /** Outbound requests awaiting a response, all peers together (default 256); beyond it request() is refused. */
  readonly maxInflightRequests?: number;
  /** Cap of the redial backoff (default 3000 ms, so a restarted peer is back within about 4 s). */
  readonly redialMaxBackoffMs?: number;
}

/** Outcome of a publish. recipients is 0 when nobody is subscribed yet or the same bytes were published before. */
export interface PublishResult {
  readonly recipients: number;
}

export interface RequestOptions {
  readonly timeoutMs?: number;
  readonly maxResponseBytes?: number;
}

/** The libp2p services this layer configures; only pubsub is used directly. */
type Services = { identify: unknown; ping: unknown; pubsub: GossipSub };

export const MAX_ALLOWED_PEERS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 1 << 20;
const DEFAULT_MAX_INFLIGHT_REQUESTS = 256;
const DEFAULT_MAX_CONCURRENT_PER_PEER = 16;
const DEFAULT_REDIAL_MAX_BACKOFF_MS = 3_000;
const REDIAL_INITIAL_BACKOFF_MS = 250;
const MAINTENANCE_INTERVAL_MS = 200;
const DIAL_TIMEOUT_MS = 3_000;
/** lpStream buffers at most this much unread data by default; raise it when a frame may be larger. */
const LP_DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024;
const LP_BUFFER_SLACK_BYTES = 16;

interface TopicEntry {
  readonly spec: TopicSpec<unknown>;
  readonly queue: ValidationQueue<Verdict<unknown>>;
}

interface ProtocolEntry {
  readonly spec: RequestSpec;
  readonly buckets: TokenBuckets;
  registered: boolean;
}

interface DialTarget {
  readonly peer: string;
  readonly addr: Multiaddr;
  backoffMs: number;
  nextAttemptAtMs: number;
  dialing: boolean;
  warnedNotAllowed: boolean;
}

type State = "created" | "starting" | "started" | "stopping" | "stopped";

class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

export class Network {
  private readonly topics = new Map<string, TopicEntry>();
  private readonly protocols = new Map<string, ProtocolEntry>();
  private readonly dialTargets: DialTarget[];
  private readonly scores: PeerScores;
  private readonly metrics: NetworkMetrics | undefined;
  private readonly log: LogFn;
  private readonly lifecycle = new AbortController();
  private readonly maxInflightRequests: number;
  private readonly redialMaxBackoffMs: number;
  private allowed: Set<string>;
  private state: State = "created";
  private inflightRequests = 0;
  private readonly outboundSlots = new KeyedSlots();
  private maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  private startPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;

  private constructor(
    private readonly node: Libp2p<Services>,
    opts: NetworkOptions,
    allowed: Set<string>,
    dialTargets: DialTarget[],
    scoreParams: ScoreParams,
  ) {
    this.allowed = allowed;
    this.dialTargets = dialTargets;
    this.scores = new PeerScores(scoreParams, MAX_ALLOWED_PEERS);
    this.log = opts.log ?? (() => {});
    this.maxInflightRequests = opts.maxInflightRequests ?? DEFAULT_MAX_INFLIGHT_REQUESTS;
    this.redialMaxBackoffMs = opts.redialMaxBackoffMs ?? DEFAULT_REDIAL_MAX_BACKOFF_MS;
    this.metrics =
      opts.registry === undefined ? undefined : createMetrics(opts.registry, () => this.connectedPeers().length);
    node.addEventListener("peer:connect", (evt) => this.onPeerConnect(evt.detail));
    node.addEventListener("peer:disconnect", (evt) => this.onPeerDisconnect(evt.detail));
  }

  /** Builds the libp2p node (not started). Throws NetworkError on a malformed key, peer id or multiaddr. */
  static async create(opts: NetworkOptions): Promise<Network> {
    const privateKey = privateKeyFromBytes(opts.privateKey);
    if (!installYamuxWindowHysteresis()) {
      opts.log?.("warn", "p2p: yamux without window update hysteresis (unknown library version): one update per frame");
    }
    const scoreParams = resolveScoreParams(opts.score);
    const allowed = parseAllowedPeers(opts.allowedPeers);
    const dialTargets = opts.peers.map(parseDialTarget);
    // The gater consults the instance, which exists only after createLibp2p returns; it refuses everyone until then.
    let self: Network | undefined;
    const refuse = (peerId: PeerId): boolean => {
      const peer = peerId.toString();
      if (self?.isAdmitted(peer) === true) return false;
      opts.log?.("debug", "p2p: connection gater refused peer", { peer });
      return true;
    };
    const gater: ConnectionGater = {
      denyDialPeer: refuse,
      denyInboundEncryptedConnection: refuse,
      denyOutboundEncryptedConnection: refuse,
      denyInboundUpgradedConnection: refuse,
      denyOutboundUpgradedConnection: refuse,
    };
    const node = await createLibp2p({
      privateKey,
      addresses: { listen: [...opts.listen] },
      transports: [
        withCoalescedWrites(tcp(), () =>
          opts.log?.("warn", "p2p: a connection without a TCP socket (unknown library version): one write per buffer"),
        ),
      ],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionGater: gater,
      connectionManager: {
        // Every admitted peer keeps one connection (two briefly after simultaneous dials); the allow list is the
        // real bound. Fixed at creation: an allow list that later grows far beyond this needs a new Network.
        maxConnections: Math.max(64, 2 * allowed.size + 16),
        // Default 5 inbound connections/s per IP refuses validators restarting together on one host.
        inboundConnectionThreshold: 100,
        dialTimeout: DIAL_TIMEOUT_MS,
      },
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          // Messages carry validator signatures; libp2p signatures would only add cost (and a second identity).
          globalSignaturePolicy: StrictNoSign,
          emitSelf: false,
          // Message id = hash of the payload, so the same vote arriving via two peers is validated once.
          // node:crypto's one-shot hash: 0.7 us for a vote against 6.6 us for @noble/hashes, 11 against 221 us for a
          // 20 KB block, and every copy of every message is hashed.
          msgIdFn: (msg) => hash("sha256", msg.data, "buffer"),
          allowPublishToZeroTopicPeers: true,
          ignoreDuplicatePublishError: true,
          fallbackToFloodsub: false,
          floodPublish: true,
          doPX: false,
          // Every peer is allow-listed, so many peers behind one IP (a devnet host) is not a sybil signal.
          scoreParams: { IPColocationFactorWeight: 0 },
        }),
      },
      start: false,
    });
    self = new Network(node, opts, allowed, dialTargets, scoreParams);
    return self;
  }

  get peerId(): string {
    return this.node.peerId.toString();
  }

  subscribe<T>(spec: TopicSpec<T>): void {
    if (this.topics.has(spec.name)) {
      throw new NetworkError("duplicate_registration", `topic ${spec.name} already subscribed`);
    }
    if (!(Number.isInteger(spec.maxBytes) && spec.maxBytes > 0)) {
      throw new RangeError(`maxBytes must be > 0: ${spec.maxBytes}`);
    }
    const entry: TopicEntry = {
      // Erased to unknown for storage: onMessage only ever receives values produced by this same spec's validate.
      spec: spec as TopicSpec<unknown>,
      queue: new ValidationQueue<Verdict<unknown>>(
        spec.queueLength,
        spec.dropPolicy,
        spec.concurrency ?? 1,
        spec.background ?? false,
      ),
    };
    this.topics.set(spec.name, entry);
    this.node.services.pubsub.topicValidators.set(spec.name, (peer, message) =>
      this.validateGossip(entry, peer.toString(), plainBytes(message.data)),
    );
    if (this.state === "started") this.node.services.pubsub.subscribe(spec.name);
  }

  async publish(topic: string, data: Uint8Array): Promise<PublishResult> {
    const entry = this.topics.get(topic);
    if (entry === undefined) throw new NetworkError("unknown_topic", `publish to ${topic} before subscribe`, { topic });
    if (data.length > entry.spec.maxBytes) {
      throw new NetworkError("oversized", `publish of ${data.length} bytes to ${topic}`, {
        topic,
        bytes: data.length,
        maxBytes: entry.spec.maxBytes,
      });
    }
    if (this.state !== "started") throw new NetworkError("not_started", `publish to ${topic} while ${this.state}`);
    const result = await this.node.services.pubsub.publish(topic, data);
    return { recipients: result.recipients.length };
  }

  handle(spec: RequestSpec): void {
    if (this.protocols.has(spec.protocol)) {
      throw new NetworkError("duplicate_registration", `protocol ${spec.protocol} already handled`);
    }
    if (!(Number.isInteger(spec.maxRequestBytes) && spec.maxRequestBytes > 0)) {
      throw new RangeError(`maxRequestBytes must be > 0: ${spec.maxRequestBytes}`);
    }
    if (!(spec.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0: ${spec.timeoutMs}`);
    const entry: ProtocolEntry = {
      spec,
      buckets: new TokenBuckets(spec.maxRequestsPerSecondPerPeer, MAX_ALLOWED_PEERS),
      registered: false,
    };
    this.protocols.set(spec.protocol, entry);
    if (this.state === "started") void this.registerProtocol(entry);
  }

  async request(peer: string, protocol: string, data: Uint8Array, opts: RequestOptions = {}): Promise<Uint8Array> {
    const local = this.protocols.get(protocol)?.spec;
    const timeoutMs = opts.timeoutMs ?? local?.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const maxResponseBytes = opts.maxResponseBytes ?? local?.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const fail = (
      code: RequestErrorCode,
      context: { remoteCode?: string; detail?: string } = {},
      cause?: unknown,
    ): RequestError => {
      this.metrics?.requests.inc({ protocol, direction: "outbound", result: code });
      return new RequestError(code, { peer, protocol, ...context }, cause === undefined ? undefined : { cause });
    };

    if (this.state !== "started") throw fail("not_connected", { detail: `network ${this.state}` });
    let peerId: PeerId;
    try {
      peerId = peerIdFromString(peer);
    } catch (err) {
      throw fail("not_connected", { detail: "malformed peer id" }, err);
    }
    const connection = this.node.getConnections(peerId).find((c) => c.status === "open");
    if (connection === undefined) throw fail("not_connected");
    if (this.inflightRequests >= this.maxInflightRequests) {
      throw fail("refused", { detail: `local limit of ${this.maxInflightRequests} requests in flight` });
    }

    this.inflightRequests++;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new TimeoutError(`${timeoutMs} ms`)), timeoutMs);
    const signal = AbortSignal.any([timeout.signal, this.lifecycle.signal]);
    const slotKey = `${peer} ${protocol}`;
    let holdsSlot = false;
    let stream: Stream | undefined;
    try {
      await this.outboundSlots.acquire(slotKey, local?.maxConcurrentPerPeer ?? DEFAULT_MAX_CONCURRENT_PER_PEER, signal);
      holdsSlot = true;
      stream = await connection.newStream(protocol, { signal });
      // An error frame carries a code of up to MAX_CODE_BYTES even when the caller expects a tiny response.
      const maxDataLength = 1 + Math.max(maxResponseBytes, MAX_CODE_BYTES);
      const lp = lpStream(stream, { maxDataLength, maxBufferSize: bufferFor(maxDataLength) });
      await lp.write(data, { signal });
      const frame = decodeResponse(plainBytes((await lp.read({ signal })).subarray()));
      void stream.close().catch(() => {});
      if (frame === undefined) throw fail("stream_error", { detail: "malformed response frame" });
      if (frame.kind === "ok") {
        if (frame.response.length > maxResponseBytes) {
          throw fail("too_large", { detail: `${frame.response.length} > ${maxResponseBytes} bytes` });
        }
        this.metrics?.requests.inc({ protocol, direction: "outbound", result: "ok" });
        return frame.response;
      }
      // A server-side failure says nothing about our request: report it like a broken stream.
      throw fail(frame.kind === "failed" ? "stream_error" : frame.kind, { remoteCode: frame.code });
    } catch (err) {
      if (err instanceof RequestError) throw err;
      stream?.abort(err instanceof Error ? err : new Error(String(err)));
      if (timeout.signal.aborted) throw fail("timeout", { detail: `no response within ${timeoutMs} ms` }, err);
      const name = err instanceof Error ? err.name : "";
      if (name === "InvalidDataLengthError" || name === "InvalidDataLengthLengthError") {
        throw fail("too_large", { detail: `response over ${maxResponseBytes} bytes` }, err);
      }
      if (name === "UnsupportedProtocolError") throw fail("refused", { remoteCode: "unsupported_protocol" }, err);
      throw fail("stream_error", { detail: err instanceof Error ? err.message : String(err) }, err);
    } finally {
      clearTimeout(timer);
      if (holdsSlot) this.outboundSlots.release(slotKey);
      this.inflightRequests--;
    }
  }

  report(peer: string, kind: "reject", code: string): void {
    this.penalize(peer, `${kind}:${sanitizeCode(code)}`);
  }

  setAllowedPeers(ids: readonly string[]): void {
    this.allowed = parseAllowedPeers(ids);
    for (const peerId of this.node.getPeers()) {
      const peer = peerId.toString();
      if (this.allowed.has(peer)) continue;
      this.log("info", "p2p: disconnecting peer no longer allowed", { peer });
      void this.node.hangUp(peerId).catch(() => {});
    }
    for (const target of this.dialTargets) target.warnedNotAllowed = false;
  }

  connectedPeers(): string[] {
    return this.node.getPeers().map((p) => p.toString());
  }

  score(peer: string): number {
    return this.scores.score(peer);
  }

  /** Whether the peer is allow-listed and not banned: what the connection gater checks. */
  isAdmitted(peer: string): boolean {
    return this.allowed.has(peer) && !this.scores.isBanned(peer);
  }

  isBanned(peer: string): boolean {
    return this.scores.isBanned(peer);
  }

  addresses(): string[] {
    const suffix = `/p2p/${this.peerId}`;
    return this.node.getMultiaddrs().map((ma) => {
      const text = ma.toString();
      return text.endsWith(suffix) ? text : `${text}${suffix}`;
    });
  }

  /** Subscribers of a topic among connected peers (gossipsub's view), for readiness checks. */
  topicPeers(topic: string): string[] {
    if (this.state !== "started") return [];
    return this.node.services.pubsub.getSubscribers(topic).map((p) => p.toString());
  }

  start(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") {
      return Promise.reject(new NetworkError("not_started", "a stopped network cannot restart; create a new one"));
    }
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    this.state = "starting";
    await this.node.start();
    // stop() may have been called while libp2p was starting: it then owns the shutdown.
    if (this.state !== "starting") return;
    this.state = "started";
    for (const name of this.topics.keys()) this.node.services.pubsub.subscribe(name);
    await Promise.all([...this.protocols.values()].map((entry) => this.registerProtocol(entry)));
    this.maintenanceTimer = setInterval(() => this.maintain(), MAINTENANCE_INTERVAL_MS);
    this.maintain();
    this.log("info", "p2p: started", { peerId: this.peerId, addresses: this.addresses() });
  }

  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    const starting = this.startPromise;
    this.state = "stopping";
    // libp2p must finish starting before it can stop cleanly.
    if (starting !== undefined) await starting.catch(() => {});
    if (this.maintenanceTimer !== undefined) clearInterval(this.maintenanceTimer);
    this.maintenanceTimer = undefined;
    this.lifecycle.abort(new Error("network stopped"));
    for (const entry of this.topics.values()) entry.queue.close();
    await this.node.stop();
    this.state = "stopped";
    this.log("info", "p2p: stopped", { peerId: this.peerId });
  }

  // --- gossip ---------------------------------------------------------------------------------------------------

  private validateGossip(
    entry: TopicEntry,
    from: string,
    data: Uint8Array,
  ): TopicValidatorResult | Promise<TopicValidatorResult> {
    const { spec } = entry;
    this.metrics?.gossipBytes.inc({ topic: spec.name }, data.length);
    // The gater keeps outsiders off, but a peer removed from the allow list may still have frames in flight.
    if (!this.isAdmitted(from)) return this.conclude(entry, from, { kind: "ignore", code: "not_admitted" });
    if (data.length > spec.maxBytes) return this.conclude(entry, from, { kind: "reject", code: "oversized" });
    return new Promise((resolve) => {
      entry.queue.push({
        run: async () => spec.validate(data, from),
        drop: (reason) => resolve(this.conclude(entry, from, { kind: "ignore", code: reason })),
        done: (verdict) => resolve(this.conclude(entry, from, verdict)),
        fail: (err) => {
          this.log("warn", "p2p: topic validator threw (a bug in the node)", { topic: spec.name, from, err });
          resolve(this.conclude(entry, from, { kind: "ignore", code: "validator_error" }));
        },
      });
    });
  }

  /** Maps our verdict to gossipsub's, delivering accepted values here so only accepted messages reach onMessage. */
  private conclude(entry: TopicEntry, from: string, verdict: Verdict<unknown>): TopicValidatorResult {
    const topic = entry.spec.name;
    if (this.state !== "started") return TopicValidatorResult.Ignore;
    switch (verdict.kind) {
      case "accept": {
        const forward = verdict.forward !== false;
        this.metrics?.gossipMessages.inc({ topic, verdict: "accept", code: forward ? "ok" : "not_forwarded" });
        try {
          entry.spec.onMessage(verdict.value, from);
        } catch (err) {
          // The message was valid; a failing consumer is the node's bug, not a reason to stop forwarding it.
          this.log("warn", "p2p: onMessage threw", { topic, from, err });
        }
        return forward ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore;
      }
      case "ignore":
        this.metrics?.gossipMessages.inc({ topic, verdict: "ignore", code: sanitizeCode(verdict.code) });
        this.log("debug", "p2p: gossip ignored", { topic, from, code: verdict.code });
        return TopicValidatorResult.Ignore;
      case "reject": {
        const code = sanitizeCode(verdict.code);
        this.metrics?.gossipMessages.inc({ topic, verdict: "reject", code });
        this.penalize(from, `gossip:${code}`);
        return TopicValidatorResult.Reject;
      }
    }
  }

  // --- request/response -----------------------------------------------------------------------------------------

  private async registerProtocol(entry: ProtocolEntry): Promise<void> {
    if (entry.registered) return;
    entry.registered = true;
    const maxStreams = entry.spec.maxConcurrentPerPeer ?? DEFAULT_MAX_CONCURRENT_PER_PEER;
    try {
      await this.node.handle(entry.spec.protocol, (stream, connection) => this.serve(entry, stream, connection), {
        maxInboundStreams: maxStreams,
        maxOutboundStreams: maxStreams,
      });
    } catch (err) {
      entry.registered = false;
      this.log("warn", "p2p: could not register protocol", { protocol: entry.spec.protocol, err });
    }
  }

  private async serve(entry: ProtocolEntry, stream: Stream, connection: Connection): Promise<void> {
    const { spec } = entry;
    const from = connection.remotePeer.toString();
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new TimeoutError(`${spec.timeoutMs} ms`)), spec.timeoutMs);
    const signal = AbortSignal.any([timeout.signal, this.lifecycle.signal]);
    const count = (result: string) =>
      this.metrics?.requests.inc({ protocol: spec.protocol, direction: "inbound", result });
    const lp = lpStream(stream, {
      maxDataLength: spec.maxRequestBytes,
      maxBufferSize: bufferFor(spec.maxRequestBytes),
    });
    const reply = async (frame: ResponseFrame, result: string): Promise<void> => {
      await lp.write(encodeResponse(frame), { signal });
      await stream.close({ signal });
      count(result);
    };
    try {
      if (!this.isAdmitted(from)) return await reply({ kind: "refused", code: "not_admitted" }, "refused");
      if (!entry.buckets.take(from)) return await reply({ kind: "refused", code: "rate_limited" }, "rate_limited");
      let request: Uint8Array;
      try {
        request = plainBytes((await lp.read({ signal })).subarray());
      } catch (err) {
        const name = err instanceof Error ? err.name : "";
        if (name !== "InvalidDataLengthError" && name !== "InvalidDataLengthLengthError") throw err;
        this.penalize(from, "request:oversized");
        return await reply({ kind: "rejected", code: "oversized" }, "rejected");
      }
      let result: RequestResult;
      try {
        result = await abortable(
          Promise.resolve().then(() => spec.handle(request, from, signal)),
          signal,
        );
      } catch (err) {
        if (signal.aborted) throw err;
        this.log("warn", "p2p: request handler threw (a bug in the node)", { protocol: spec.protocol, from, err });
        return await reply({ kind: "failed", code: "handler_error" }, "handler_error");
      }
      if (result.kind === "reject") {
        const code = sanitizeCode(result.code);
        this.penalize(from, `request:${code}`);
        return await reply({ kind: "rejected", code }, "rejected");
      }
      if (result.response.length > spec.maxResponseBytes) {
        this.log("warn", "p2p: handler response over maxResponseBytes (a bug in the node)", {
          protocol: spec.protocol,
          bytes: result.response.length,
          maxResponseBytes: spec.maxResponseBytes,
        });
        return await reply({ kind: "failed", code: "response_too_large" }, "response_too_large");
      }
      return await reply({ kind: "ok", response: result.response }, "ok");
    } catch (err) {
      count(timeout.signal.aborted ? "timeout" : "stream_error");
      stream.abort(err instanceof Error ? err : new Error(String(err)));
    } finally {
      clearTimeout(timer);
    }
  }

  // --- scoring, admission, redial -------------------------------------------------------------------------------

  private penalize(peer: string, reason: string): void {
    // Only admitted peers are tracked: outsiders cannot reach us, and this keeps the score table bounded.
    if (!this.allowed.has(peer) || this.scores.isBanned(peer)) return;
    const outcome = this.scores.penalize(peer);
    this.log("debug", "p2p: peer penalized", { peer, reason, score: outcome.score });
    if (!outcome.banned) return;
    this.metrics?.peerBans.inc();
    this.log("warn", "p2p: peer banned", { peer, reason, score: outcome.score, untilMs: outcome.untilMs });
    for (const target of this.dialTargets) {
      if (target.peer === peer) target.nextAttemptAtMs = outcome.untilMs;
    }
    void this.node.hangUp(peerIdFromString(peer)).catch(() => {});
  }

  private onPeerConnect(peerId: PeerId): void {
    const peer = peerId.toString();
    // Defence in depth: the gater should have refused, but the allow list can change during a handshake.
    if (!this.isAdmitted(peer)) {
      this.log("warn", "p2p: closing connection of a peer that is not admitted", { peer });
      void this.node.hangUp(peerId).catch(() => {});
      return;
    }
    for (const target of this.dialTargets) {
      if (target.peer === peer) target.backoffMs = REDIAL_INITIAL_BACKOFF_MS;
    }
    this.log("debug", "p2p: peer connected", { peer });
  }

  private onPeerDisconnect(peerId: PeerId): void {
    const peer = peerId.toString();
    for (const entry of this.protocols.values()) entry.buckets.forget(peer);
    const now = Date.now();
    for (const target of this.dialTargets) {
      if (target.peer === peer && !this.scores.isBanned(peer)) target.nextAttemptAtMs = now;
    }
    this.log("debug", "p2p: peer disconnected", { peer });
  }

  private maintain(): void {
    if (this.state !== "started") return;
    this.scores.prune();
    const now = Date.now();
    const connected = new Set(this.connectedPeers());
    for (const target of this.dialTargets) {
      if (target.dialing || connected.has(target.peer) || target.peer === this.peerId) continue;
      if (now < target.nextAttemptAtMs || this.scores.isBanned(target.peer)) continue;
      if (!this.allowed.has(target.peer)) {
        if (!target.warnedNotAllowed)
          this.log("warn", "p2p: bootstrap peer not in allowedPeers", { peer: target.peer });
        target.warnedNotAllowed = true;
        continue;
      }
      void this.redial(target);
    }
  }

  private async redial(target: DialTarget): Promise<void> {
    target.dialing = true;
    try {
      await this.node.dial(target.addr, { signal: this.lifecycle.signal });
      target.backoffMs = REDIAL_INITIAL_BACKOFF_MS;
    } catch (err) {
      target.nextAttemptAtMs = Date.now() + target.backoffMs;
      this.log("debug", "p2p: dial failed", {
        peer: target.peer,
        retryInMs: target.backoffMs,
        err: err instanceof Error ? err.message : String(err),
      });
      target.backoffMs = Math.min(2 * target.backoffMs, this.redialMaxBackoffMs);
    } finally {
      target.dialing = false;
    }
  }
}

function parseAllowedPeers(ids: readonly string[]): Set<string> {
  if (ids.length > MAX_ALLOWED_PEERS) {
    throw new NetworkError("invalid_peer_id", `allow list of ${ids.length} peers exceeds ${MAX_ALLOWED_PEERS}`);
  }
  const out = new Set<string>();
  for (const id of ids) {
    try {
      out.add(peerIdFromString(id).toString());
    } catch (err) {
      throw new NetworkError("invalid_peer_id", `allowed peer ${id} is not a peer id`, { id }, { cause: err });
    }
  }
  return out;
}

function parseDialTarget(addr: string): DialTarget {
  let ma: Multiaddr;
  try {
    ma = multiaddr(addr);
  } catch (err) {
    throw new NetworkError("invalid_peer_id", `bootstrap address ${addr} is not a multiaddr`, { addr }, { cause: err });
  }
  const peer = ma
    .getComponents()
    .filter((c) => c.name === "p2p")
    .at(-1)?.value;
  if (peer === undefined)
    throw new NetworkError("invalid_peer_id", `bootstrap address ${addr} lacks /p2p/<id>`, { addr });
  return {
    peer: parseAllowedPeers([peer]).values().next().value ?? peer,
    addr: ma,
    backoffMs: REDIAL_INITIAL_BACKOFF_MS,
    nextAttemptAtMs: 0,
    dialing: false,
    warnedNotAllowed: false,
  };
}

/** Node Buffers (what Uint8ArrayList hands out) compare unequal to Uint8Array in tests and carry extra methods. */
function plainBytes(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function bufferFor(maxDataLength: number): number {
  return Math.max(LP_DEFAULT_BUFFER_BYTES, maxDataLength + LP_BUFFER_SLACK_BYTES);
}

/** Settles with the promise, or rejects with the signal's reason once it aborts (the work itself keeps running). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
