// Subscriptions (eth_subscribe / lumia_subscribe) for connections that can carry notifications (WebSocket). One hub
// per server listens to the backend's commits and pending transactions while someone is subscribed, formats each
// result once and hands every subscriber its notification text, in commit order: the backend delivers heights in
// order and each exactly once, and notifications go out synchronously from its event, so no height is skipped or
// repeated. A subscription starts receiving only after the answer carrying its id was sent (`activate`).
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import type { CommittedEvent, RpcBackend, RpcPendingTx } from "./backend.ts";
import { type MethodDef, method, optional, type RpcLog, required } from "./dispatch.ts";
import { ErrorCode, failure, invalidParams, type Outcome, success } from "./errors.ts";
import { formatCertifiedHeader, formatHeader, formatLog, formatTransaction, TxDecoder } from "./format.ts";
import { type LogMatcher, logMatcher } from "./methods.ts";
import { describeValue, logFilter } from "./params.ts";

export const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION = 128;
/** Decoded pending transactions kept for full-object newPendingTransactions subscribers. */
const PENDING_TX_CACHE_ENTRIES = 4_096;
const MAX_SUBSCRIPTION_ID_CHARS = 100;

export type SubscriptionKind = "newHeads" | "logs" | "newPendingTransactions" | "certificates";
type Namespace = "eth" | "lumia";

const KINDS: Readonly<Record<Namespace, readonly SubscriptionKind[]>> = {
  eth: ["newHeads", "logs", "newPendingTransactions"],
  lumia: ["certificates"],
};

/** Where a connection's notifications go. The transport enforces its own limits (a slow reader is cut off there). */
export interface NotificationSink {
  send(text: string): void;
}

export interface SubscriptionHubOptions {
  readonly maxSubscriptionsPerConnection: number;
  readonly log?: RpcLog | undefined;
}

interface Subscription {
  readonly id: Hex;
  readonly namespace: Namespace;
  readonly kind: SubscriptionKind;
  readonly session: SubscriptionSession;
  /** logs only. */
  readonly matcher: LogMatcher | null;
  /** newPendingTransactions only: whole transaction objects instead of hashes. */
  readonly fullTransactions: boolean;
  active: boolean;
}

/** One connection's subscriptions and the methods that manage them. */
export class SubscriptionSession {
  /** eth_subscribe, eth_unsubscribe, lumia_subscribe, lumia_unsubscribe for this connection. */
  readonly methods: ReadonlyMap<string, MethodDef>;
  private readonly subscriptions = new Map<Hex, Subscription>();
  private readonly inactive: Subscription[] = [];
  private closed = false;

  constructor(
    private readonly hub: SubscriptionHub,
    readonly sink: NotificationSink,
    private readonly maxSubscriptions: number,
  ) {
    this.methods = new Map([
      ["eth_subscribe", this.subscribeMethod("eth")],
      ["lumia_subscribe", this.subscribeMethod("lumia")],
      ["eth_unsubscribe", this.unsubscribeMethod("eth")],
      ["lumia_unsubscribe", this.unsubscribeMethod("lumia")],
    ]);
  }

  get size(): number {
    return this.subscriptions.size;
  }

  /** Subscriptions created by the message just answered start receiving (their ids are now known to the client). */
  activate(): void {
    for (const sub of this.inactive.splice(0)) {
      if (this.subscriptions.get(sub.id) === sub) sub.active = true;
    }
  }

  /** The connection is gone: drops every subscription. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inactive.length = 0;
    for (const sub of this.subscriptions.values()) {
      sub.active = false;
      this.hub.remove(sub);
    }
    this.subscriptions.clear();
  }

  private subscribeMethod(namespace: Namespace): MethodDef {
    const kinds = KINDS[namespace];
    return method([required("kind", z.unknown()), optional("options", z.unknown())], (kind, options): Outcome => {
      if (typeof kind !== "string" || !(kinds as readonly string[]).includes(kind)) {
        return invalidParams(
          `invalid argument 0 (kind): expected one of ${kinds.map((k) => `"${k}"`).join(", ")}, got ${describeValue(kind)}`,
        );
      }
      const parsed = parseOptions(kind as SubscriptionKind, options);
      if ("error" in parsed) return parsed.error;
      if (this.closed) return failure(ErrorCode.server, "connection closed");
      if (this.subscriptions.size >= this.maxSubscriptions) {
        return failure(
          ErrorCode.limitExceeded,
          `limit exceeded: at most ${this.maxSubscriptions} subscriptions per connection`,
        );
      }
      const sub: Subscription = {
        id: toHex(randomBytes(16)),
        namespace,
        kind: kind as SubscriptionKind,
        session: this,
        matcher: parsed.matcher,
        fullTransactions: parsed.fullTransactions,
        active: false,
      };
      this.subscriptions.set(sub.id, sub);
      this.inactive.push(sub);
      this.hub.add(sub);
      return success(sub.id);
    });
  }

  private unsubscribeMethod(namespace: Namespace): MethodDef {
    return method([required("id", z.string().max(MAX_SUBSCRIPTION_ID_CHARS))], (id): Outcome => {
      const sub = this.subscriptions.get(id.toLowerCase() as Hex);
      // Like geth, each namespace unsubscribes only its own subscriptions.
      if (sub === undefined || sub.namespace !== namespace) return success(false);
      this.subscriptions.delete(sub.id);
      sub.active = false;
      this.hub.remove(sub);
      return success(true);
    });
  }
}

type ParsedOptions = { matcher: LogMatcher | null; fullTransactions: boolean } | { error: Outcome & { ok: false } };

function parseOptions(kind: SubscriptionKind, options: unknown): ParsedOptions {
  switch (kind) {
    case "newHeads":
    case "certificates":
      if (options !== undefined) {
        return { error: invalidParams(`invalid argument 1: ${kind} takes no options, got ${describeValue(options)}`) };
      }
      return { matcher: null, fullTransactions: false };
    case "newPendingTransactions":
      if (options !== undefined && typeof options !== "boolean") {
        return {
          error: invalidParams(
            `invalid argument 1 (fullTransactions): expected a boolean, got ${describeValue(options)}`,
          ),
        };
      }
      return { matcher: null, fullTransactions: options === true };
    case "logs": {
      const parsed = logFilter.safeParse(options ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue === undefined || issue.path.length === 0 ? "" : `.${issue.path.map(String).join(".")}`;
        return {
          error: invalidParams(
            `invalid argument 1 (filter${where}): ${issue?.message ?? "does not match the expected type"}`,
          ),
        };
      }
      const f = parsed.data;
      const latest = (ref: typeof f.fromBlock) => ref.kind === "tag" && ref.tag === "latest";
      if (f.blockHash !== null || !latest(f.fromBlock) || !latest(f.toBlock)) {
        return {
          error: invalidParams(
            "invalid argument 1 (filter): a logs subscription takes address and topics only; " +
              "fromBlock, toBlock and blockHash are for eth_getLogs",
          ),
        };
      }
      return { matcher: logMatcher(f), fullTransactions: false };
    }
  }
}

/** Notification text with the result already serialised: one JSON.stringify per result, not per subscriber. */
function notification(namespace: Namespace, id: Hex, resultJson: string): string {
  return `{"jsonrpc":"2.0","method":"${namespace}_subscription","params":{"subscription":"${id}","result":${resultJson}}}`;
}

export class SubscriptionHub {
  private readonly byKind: Record<SubscriptionKind, Set<Subscription>> = {
    newHeads: new Set(),
    logs: new Set(),
    newPendingTransactions: new Set(),
    certificates: new Set(),
  };
  private readonly txs: TxDecoder;
  private stopCommitted: (() => void) | null = null;
  private stopPending: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly backend: RpcBackend,
    private readonly opts: SubscriptionHubOptions,
  ) {
    this.txs = new TxDecoder(backend.chainId, PENDING_TX_CACHE_ENTRIES);
  }

  /** A new connection's subscriptions. */
  open(sink: NotificationSink): SubscriptionSession {
    return new SubscriptionSession(this, sink, this.opts.maxSubscriptionsPerConnection);
  }

  /** Subscriptions across all connections. */
  get size(): number {
    let n = 0;
    for (const set of Object.values(this.byKind)) n += set.size;
    return n;
  }

  /** Stops listening to the backend (connections are closed by the transport). */
  close(): void {
    this.closed = true;
    for (const set of Object.values(this.byKind)) set.clear();
    this.listen();
  }

  add(sub: Subscription): void {
    if (this.closed) return;
    this.byKind[sub.kind].add(sub);
    this.listen();
  }

  remove(sub: Subscription): void {
    this.byKind[sub.kind].delete(sub);
    this.listen();
  }

  /** Listens to the backend only while someone is subscribed: a node without subscribers reads nothing more. */
  private listen(): void {
    const wantCommits =
      this.byKind.newHeads.size + this.byKind.logs.size + this.byKind.certificates.size > 0 && !this.closed;
    if (wantCommits && this.stopCommitted === null) {
      this.stopCommitted = this.backend.onCommitted((event) => this.guard("commit", () => this.onCommitted(event)));
    } else if (!wantCommits && this.stopCommitted !== null) {
      this.stopCommitted();
      this.stopCommitted = null;
    }
    const wantPending = this.byKind.newPendingTransactions.size > 0 && !this.closed;
    if (wantPending && this.stopPending === null) {
      this.stopPending = this.backend.onPendingTransaction((tx) => this.guard("pending", () => this.onPending(tx)));
    } else if (!wantPending && this.stopPending !== null) {
      this.stopPending();
      this.stopPending = null;
    }
  }

  /** Nothing a subscriber does may reach the backend's event source (the consensus commit path). */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.opts.log?.warn({ err: error, event: what }, "rpc subscription delivery failed");
    }
  }

  private onCommitted(event: CommittedEvent): void {
    const heads = this.byKind.newHeads;
    if (heads.size > 0) {
      const json = JSON.stringify(formatHeader(event.hash, event.block));
      for (const sub of [...heads]) this.deliver(sub, json);
    }
    if (this.byKind.logs.size > 0) this.deliverLogs(event);
    const certs = this.byKind.certificates;
    if (certs.size > 0) {
      if (event.certificate === undefined) {
        this.opts.log?.warn({ height: event.height }, "committed block without a certificate: nothing to notify");
      } else {
        const json = JSON.stringify(formatCertifiedHeader(event.certificate, event.block));
        for (const sub of [...certs]) this.deliver(sub, json);
      }
    }
  }

  private deliverLogs(event: CommittedEvent): void {
    const bloom = fromHex(event.block.header.logsBloom);
    const subs = [...this.byKind.logs].filter((s) => s.matcher?.mayMatchBloom(bloom) === true);
    if (subs.length === 0) return;
    // Each matching log is formatted once, whoever it goes to; logIndex counts across the block.
    const formatted = new Map<number, string>();
    let logIndex = 0;
    for (const [index, receipt] of event.receipts.entries()) {
      for (const log of receipt.logs) {
        for (const sub of subs) {
          if (!sub.active || sub.matcher?.matches(log) !== true) continue;
          let json = formatted.get(logIndex);
          if (json === undefined) {
            json = JSON.stringify(
              formatLog(log, {
                blockHash: event.hash,
                blockNumber: event.height,
                transactionHash: receipt.transactionHash,
                transactionIndex: index,
                logIndex,
              }),
            );
            formatted.set(logIndex, json);
          }
          this.deliver(sub, json);
        }
        logIndex++;
      }
    }
  }

  private onPending(tx: RpcPendingTx): void {
    const hashJson = JSON.stringify(tx.hash);
    let fullJson: string | null = null;
    for (const sub of [...this.byKind.newPendingTransactions]) {
      if (!sub.fullTransactions) {
        this.deliver(sub, hashJson);
        continue;
      }
      if (fullJson === null) {
        const fields = this.txs.decode(tx.raw);
        if (fields === null) {
          // The pool accepted it, so it decodes; a failure here is a bug to report, not a reason to stop.
          this.opts.log?.warn({ hash: tx.hash }, "pending transaction does not decode");
          return;
        }
        fullJson = JSON.stringify(formatTransaction(fields, null));
      }
      this.deliver(sub, fullJson);
    }
  }

  /** `active` is checked per send: a send may close the connection (slow consumer), dropping its subscriptions. */
  private deliver(sub: Subscription, resultJson: string): void {
    if (!sub.active) return;
    sub.session.sink.send(notification(sub.namespace, sub.id, resultJson));
  }
}
