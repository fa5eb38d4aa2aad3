// Subscriptions (eth_subscribe / lumia_subscribe) for connections that can carry notifications (WebSocket). One hub
// per server listens to the backend's commits and pending transactions while someone is subscribed, formats each
// result once and hands every subscriber its notification text, in commit order: the backend delivers heights in
// order and each exactly once, and notifications go out synchronously from its event, so no height is skipped or
// repeated. A subscription starts receiving only after the answer carrying its id was sent (`activate`).
//
// Solana clients (@solana/kit's sendAndConfirmTransactionFactory) use the same connections: signatureSubscribe (one
// notification when the transaction is committed, then the subscription ends, as Solana does) and slotSubscribe
// (one per committed height). Their ids are integers and their notifications Solana's (docs/svm.md). accountSubscribe
// reads the subscribed accounts after a commit that changed the SVM state (in commit order, one read per account for
// all its subscribers) and notifies those whose account differs from what they last saw.
import { randomBytes } from "node:crypto";
import { getBase58Decoder, getBase58Encoder } from "@solana/kit";
import { z } from "zod";
import { fromHex, toHex } from "../../consensus/bytes.ts";
import { isSvmEntry } from "../chain/block.ts";
import { SVM_FEE_COLLECTOR, SVM_VM } from "../execution/svm/account.ts";
import type { CommittedEvent, RpcBackend, RpcPendingTx } from "./backend.ts";
import { type MethodDef, method, optional, type RpcLog, required } from "./dispatch.ts";
import { ErrorCode, failure, invalidParams, type Outcome, success } from "./errors.ts";
import { formatCertifiedHeader, formatHeader, formatLog, formatTransaction, TxDecoder } from "./format.ts";
import { blockLogs, type LogMatcher, logMatcher } from "./methods.ts";
import { describeValue, logFilter } from "./params.ts";
import { type SolanaRpcBackend, solanaAccountJson, svmAccountKeys, transactionErrorJson } from "./solana.ts";

export const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION = 128;
/** Decoded pending transactions kept for full-object newPendingTransactions subscribers. */
const PENDING_TX_CACHE_ENTRIES = 4_096;
const MAX_SUBSCRIPTION_ID_CHARS = 100;
/** Distinct accounts accountSubscribe watches across the server: each is read after every commit that may change it. */
export const MAX_WATCHED_SVM_ACCOUNTS = 1_024;
const SYSTEM_PROGRAM = "11111111111111111111111111111111";

export type SubscriptionKind =
  | "newHeads"
  | "logs"
  | "newPendingTransactions"
  | "certificates"
  | "solanaSignature"
  | "solanaSlot"
  | "solanaLogs"
  | "solanaAccount";
type Namespace = "eth" | "lumia" | "solana";

const KINDS: Readonly<Record<Exclude<Namespace, "solana">, readonly SubscriptionKind[]>> = {
  eth: ["newHeads", "logs", "newPendingTransactions"],
  lumia: ["certificates"],
};

const base58Encoder = getBase58Encoder();
const base58Decoder = getBase58Decoder();

/** Where a connection's notifications go. The transport enforces its own limits (a slow reader is cut off there). */
export interface NotificationSink {
  send(text: string): void;
}

export interface SubscriptionHubOptions {
  readonly maxSubscriptionsPerConnection: number;
  readonly log?: RpcLog | undefined;
  /** The SVM's accounts (accountSubscribe); absent on a server without the Solana methods. */
  readonly solana?: Pick<SolanaRpcBackend, "account" | "headHeight"> | undefined;
}

interface Subscription {
  /** 0x-hex for eth/lumia, a decimal integer for Solana (its ids are numbers). */
  readonly id: string;
  readonly namespace: Namespace;
  readonly kind: SubscriptionKind;
  readonly session: SubscriptionSession;
  /** logs only. */
  readonly matcher: LogMatcher | null;
  /** newPendingTransactions only: whole transaction objects instead of hashes. */
  readonly fullTransactions: boolean;
  /** solanaSignature only: the base58 signature waited for. */
  readonly signature: string | null;
  /** solanaLogs only: the base58 account a transaction must mention (null: every transaction). */
  readonly mentions?: string | null;
  /**
   * solanaAccount only: the account, the data encoding, the value last notified (or read at subscription) and the
   * height it was read at (null until the first read: commits up to that height are not notified).
   */
  readonly account?: {
    readonly pubkey: string;
    readonly encoding: "base64" | "base58";
    last: string | null;
    readAt: number | null;
  };
  active: boolean;
}

/**
 * The subscription methods for one message of a connection: what they create starts receiving when `activate()` is
 * called, once the answer carrying the ids was sent. Messages of one connection run concurrently, so each has its own.
 */
export interface SubscriptionTurn {
  readonly methods: ReadonlyMap<string, MethodDef>;
  activate(): void;
}

/** One connection's subscriptions and the methods that manage them. */
export class SubscriptionSession {
  private readonly subscriptions = new Map<string, Subscription>();
  private closed = false;

  constructor(
    private readonly hub: SubscriptionHub,
    readonly sink: NotificationSink,
    private readonly maxSubscriptions: number,
  ) {}

  get size(): number {
    return this.subscriptions.size;
  }

  /** eth_subscribe, eth_unsubscribe, lumia_subscribe, lumia_unsubscribe and Solana's, for one message. */
  turn(): SubscriptionTurn {
    const made: Subscription[] = [];
    const create = (fields: Parameters<SubscriptionSession["create"]>[0]) => this.create(fields, made);
    return {
      methods: new Map([
        ["eth_subscribe", this.subscribeMethod("eth", create)],
        ["lumia_subscribe", this.subscribeMethod("lumia", create)],
        ["eth_unsubscribe", this.unsubscribeMethod("eth")],
        ["lumia_unsubscribe", this.unsubscribeMethod("lumia")],
        ["signatureSubscribe", this.solanaSignatureSubscribe(create)],
        ["slotSubscribe", this.solanaSlotSubscribe(create)],
        ["logsSubscribe", this.solanaLogsSubscribe(create)],
        ["accountSubscribe", this.solanaAccountSubscribe(create)],
        ["accountUnsubscribe", this.solanaUnsubscribe("solanaAccount")],
        ["signatureUnsubscribe", this.solanaUnsubscribe("solanaSignature")],
        ["slotUnsubscribe", this.solanaUnsubscribe("solanaSlot")],
        ["logsUnsubscribe", this.solanaUnsubscribe("solanaLogs")],
      ]),
      // The message was answered: the client knows the ids, notifications may follow.
      activate: () => {
        for (const sub of made.splice(0)) {
          if (this.subscriptions.get(sub.id) === sub) sub.active = true;
        }
      },
    };
  }

  /** The connection is gone: drops every subscription. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const sub of this.subscriptions.values()) {
      sub.active = false;
      this.hub.remove(sub);
    }
    this.subscriptions.clear();
  }

  /** A Solana signature subscription ended by its notification. */
  ended(sub: Subscription): void {
    if (this.subscriptions.get(sub.id) === sub) this.subscriptions.delete(sub.id);
  }

  private create(
    fields: Pick<
      Subscription,
      "namespace" | "kind" | "matcher" | "fullTransactions" | "signature" | "mentions" | "account"
    >,
    made: Subscription[],
  ): Outcome {
    if (this.closed) return failure(ErrorCode.server, "connection closed");
    if (fields.account !== undefined && !this.hub.canWatch(fields.account.pubkey)) {
      return failure(
        ErrorCode.limitExceeded,
        `limit exceeded: at most ${MAX_WATCHED_SVM_ACCOUNTS} accounts are watched by accountSubscribe on this node`,
      );
    }
    if (this.subscriptions.size >= this.maxSubscriptions) {
      return failure(
        ErrorCode.limitExceeded,
        `limit exceeded: at most ${this.maxSubscriptions} subscriptions per connection`,
      );
    }
    const id = fields.namespace === "solana" ? String(this.hub.nextSolanaId()) : toHex(randomBytes(16));
    const sub: Subscription = { id, session: this, active: false, ...fields };
    this.subscriptions.set(sub.id, sub);
    made.push(sub);
    this.hub.add(sub);
    return success(fields.namespace === "solana" ? Number(id) : id);
  }

  private solanaSignatureSubscribe(create: Create): MethodDef {
    return method([required("signature", z.unknown()), optional("config", z.unknown())], (signature, config) => {
      const base58 = base58Of(signature, 64);
      if (base58 === null) {
        return invalidParams(`Invalid param: ${describeValue(signature)} is not a base58 transaction signature`);
      }
      const parsed = solanaSubscriptionConfig(config);
      if (!parsed.ok) return parsed;
      if (parsed.config.enableReceivedNotification === true) {
        return invalidParams("Invalid param: enableReceivedNotification is not supported");
      }
      return create({
        namespace: "solana",
        kind: "solanaSignature",
        matcher: null,
        fullTransactions: false,
        signature: base58,
      });
    });
  }

  /**
   * Solana's logsSubscribe: one logsNotification per committed transaction, `"all"` (or `"allWithVotes"`: there are
   * no vote transactions here) or those whose account keys include `{mentions: [one pubkey]}`.
   */
  private solanaLogsSubscribe(create: Create): MethodDef {
    return method([required("filter", z.unknown()), optional("config", z.unknown())], (filter, config) => {
      let mentions: string | null = null;
      if (filter !== "all" && filter !== "allWithVotes") {
        const list = (filter as { mentions?: unknown } | null)?.mentions;
        if (typeof filter !== "object" || filter === null || !Array.isArray(list)) {
          return invalidParams(
            `Invalid param: filter ${describeValue(filter)}: "all", "allWithVotes" or {mentions: [pubkey]}`,
          );
        }
        if (list.length !== 1) return invalidParams("Invalid Request: Only 1 address supported");
        mentions = base58Of(list[0], 32);
        if (mentions === null) return invalidParams(`Invalid param: ${describeValue(list[0])} is not a pubkey`);
      }
      const parsed = solanaSubscriptionConfig(config);
      if (!parsed.ok) return parsed;
      return create({
        namespace: "solana",
        kind: "solanaLogs",
        matcher: null,
        fullTransactions: false,
        signature: null,
        mentions,
      });
    });
  }

  /**
   * Solana's accountSubscribe: an accountNotification `{context: {slot}, value: account}` after each commit that
   * changed the account (lamports, data, owner); `encoding` base64 or base58 (Solana's default).
   */
  private solanaAccountSubscribe(create: Create): MethodDef {
    return method([required("pubkey", z.unknown()), optional("config", z.unknown())], (pubkey, config) => {
      if (!this.hub.servesAccounts) return failure(ErrorCode.methodNotFound, "accountSubscribe is not served: no SVM");
      const base58 = base58Of(pubkey, 32);
      if (base58 === null) return invalidParams(`Invalid param: ${describeValue(pubkey)} is not a pubkey`);
      const parsed = solanaSubscriptionConfig(config);
      if (!parsed.ok) return parsed;
      const encoding = parsed.config.encoding ?? "base58";
      if (encoding !== "base64" && encoding !== "base58") {
        return invalidParams(`Invalid param: encoding ${encoding} is not served: use base64 or base58`);
      }
      return create({
        namespace: "solana",
        kind: "solanaAccount",
        matcher: null,
        fullTransactions: false,
        signature: null,
        account: { pubkey: base58, encoding, last: null, readAt: null },
      });
    });
  }

  private solanaSlotSubscribe(create: Create): MethodDef {
    return method([], () =>
      create({ namespace: "solana", kind: "solanaSlot", matcher: null, fullTransactions: false, signature: null }),
    );
  }

  private solanaUnsubscribe(kind: SubscriptionKind): MethodDef {
    return method([required("id", z.unknown())], (id): Outcome => {
      const sub = typeof id === "number" ? this.subscriptions.get(String(id)) : undefined;
      if (sub === undefined || sub.kind !== kind) return invalidParams("Invalid subscription id.");
      this.subscriptions.delete(sub.id);
      sub.active = false;
      this.hub.remove(sub);
      return success(true);
    });
  }

  private subscribeMethod(namespace: Exclude<Namespace, "solana">, create: Create): MethodDef {
    const kinds = KINDS[namespace];
    return method([required("kind", z.unknown()), optional("options", z.unknown())], (kind, options): Outcome => {
      if (typeof kind !== "string" || !(kinds as readonly string[]).includes(kind)) {
        return invalidParams(
          `invalid argument 0 (kind): expected one of ${kinds.map((k) => `"${k}"`).join(", ")}, got ${describeValue(kind)}`,
        );
      }
      const parsed = parseOptions(kind as SubscriptionKind, options);
      if ("error" in parsed) return parsed.error;
      return create({
        namespace,
        kind: kind as SubscriptionKind,
        matcher: parsed.matcher,
        fullTransactions: parsed.fullTransactions,
        signature: null,
      });
    });
  }

  private unsubscribeMethod(namespace: Exclude<Namespace, "solana">): MethodDef {
    return method([required("id", z.string().max(MAX_SUBSCRIPTION_ID_CHARS))], (id): Outcome => {
      const sub = this.subscriptions.get(id.toLowerCase());
      // Like geth, each namespace unsubscribes only its own subscriptions.
      if (sub === undefined || sub.namespace !== namespace) return success(false);
      this.subscriptions.delete(sub.id);
      sub.active = false;
      this.hub.remove(sub);
      return success(true);
    });
  }
}

type Create = (
  fields: Pick<
    Subscription,
    "namespace" | "kind" | "matcher" | "fullTransactions" | "signature" | "mentions" | "account"
  >,
) => Outcome;

const solanaSubscriptionConfigSchema = z.looseObject({
  commitment: z.enum(["processed", "confirmed", "finalized"]).optional(),
  enableReceivedNotification: z.boolean().optional(),
  encoding: z.string().optional(),
});

/** A Solana subscription's config: commitment processed or confirmed (every committed block is certified). */
function solanaSubscriptionConfig(
  config: unknown,
): { ok: true; config: z.infer<typeof solanaSubscriptionConfigSchema> } | (Outcome & { ok: false }) {
  const parsed = solanaSubscriptionConfigSchema.safeParse(config ?? {});
  if (!parsed.success) return invalidParams(`Invalid param: config: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  if (parsed.data.commitment === "finalized") {
    return invalidParams(
      "Invalid param: commitment finalized is not served by subscriptions here (every committed block is " +
        "certified: use confirmed, then getSignatureStatuses for finalized)",
    );
  }
  return { ok: true, config: parsed.data };
}

/** `value` as canonical base58 of exactly `bytes` bytes (a signature, a pubkey), or null. */
function base58Of(value: unknown, bytes: number): string | null {
  if (typeof value !== "string") return null;
  try {
    const decoded = base58Encoder.encode(value);
    return decoded.length === bytes ? base58Decoder.decode(decoded) : null;
  } catch {
    return null;
  }
}

type ParsedOptions = { matcher: LogMatcher | null; fullTransactions: boolean } | { error: Outcome & { ok: false } };

function parseOptions(kind: SubscriptionKind, options: unknown): ParsedOptions {
  switch (kind) {
    case "solanaSignature":
    case "solanaSlot":
    case "solanaLogs":
    case "solanaAccount":
      return { error: invalidParams(`${kind} is a Solana subscription`) };
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

const SOLANA_NOTIFICATIONS: Partial<Record<SubscriptionKind, string>> = {
  solanaSignature: "signatureNotification",
  solanaLogs: "logsNotification",
  solanaAccount: "accountNotification",
  solanaSlot: "slotNotification",
};

/** Notification text with the result already serialised: one JSON.stringify per result, not per subscriber. */
function notification(sub: Subscription, resultJson: string): string {
  if (sub.namespace === "solana") {
    const method = SOLANA_NOTIFICATIONS[sub.kind] ?? "slotNotification";
    return `{"jsonrpc":"2.0","method":"${method}","params":{"result":${resultJson},"subscription":${sub.id}}}`;
  }
  return `{"jsonrpc":"2.0","method":"${sub.namespace}_subscription","params":{"subscription":"${sub.id}","result":${resultJson}}}`;
}

export class SubscriptionHub {
  private readonly byKind: Record<SubscriptionKind, Set<Subscription>> = {
    newHeads: new Set(),
    logs: new Set(),
    newPendingTransactions: new Set(),
    certificates: new Set(),
    solanaSignature: new Set(),
    solanaSlot: new Set(),
    solanaLogs: new Set(),
    solanaAccount: new Set(),
  };
  /** solanaAccount subscriptions by base58 account. */
  private readonly byAccount = new Map<string, Set<Subscription>>();
  /** Account reads and their notifications, one commit after another. */
  private accountWork: Promise<void> = Promise.resolve();
  /** The SVM root of the last commit seen while accounts were watched (null: read them all at the next one). */
  private lastSvmRoot: string | null = null;
  /** solanaSignature subscriptions by base58 signature. */
  private readonly bySignature = new Map<string, Set<Subscription>>();
  private solanaIds = 0;
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

  /** Solana subscription ids: integers, unique per server. */
  nextSolanaId(): number {
    this.solanaIds += 1;
    return this.solanaIds;
  }

  /** accountSubscribe is served (the server has the SVM's accounts). */
  get servesAccounts(): boolean {
    return this.opts.solana !== undefined;
  }

  /** Whether `pubkey` may be watched: already watched, or room for one more. */
  canWatch(pubkey: string): boolean {
    return this.byAccount.has(pubkey) || this.byAccount.size < MAX_WATCHED_SVM_ACCOUNTS;
  }

  add(sub: Subscription): void {
    if (this.closed) return;
    this.byKind[sub.kind].add(sub);
    if (sub.account !== undefined) this.watch(sub);
    if (sub.signature !== null) {
      let set = this.bySignature.get(sub.signature);
      if (set === undefined) {
        set = new Set();
        this.bySignature.set(sub.signature, set);
      }
      set.add(sub);
    }
    this.listen();
  }

  remove(sub: Subscription): void {
    this.byKind[sub.kind].delete(sub);
    if (sub.account !== undefined) {
      const set = this.byAccount.get(sub.account.pubkey);
      set?.delete(sub);
      if (set?.size === 0) this.byAccount.delete(sub.account.pubkey);
    }
    if (sub.signature !== null) {
      const set = this.bySignature.get(sub.signature);
      set?.delete(sub);
      if (set?.size === 0) this.bySignature.delete(sub.signature);
    }
    this.listen();
  }

  /** Listens to the backend only while someone is subscribed: a node without subscribers reads nothing more. */
  private listen(): void {
    const k = this.byKind;
    const wantCommits =
      k.newHeads.size +
        k.logs.size +
        k.certificates.size +
        k.solanaSignature.size +
        k.solanaSlot.size +
        k.solanaLogs.size +
        k.solanaAccount.size >
        0 && !this.closed;
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
    this.onSolana(event);
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

  /** Slot notifications, then each committed Solana transaction's signature subscribers (one notification each). */
  private onSolana(event: CommittedEvent): void {
    const slots = this.byKind.solanaSlot;
    if (slots.size > 0) {
      const json = JSON.stringify({ parent: Math.max(0, event.height - 1), root: event.height, slot: event.height });
      for (const sub of [...slots]) this.deliver(sub, json);
    }
    if (this.byKind.solanaLogs.size > 0) this.deliverSolanaLogs(event);
    if (this.byAccount.size > 0) this.queueAccountReads(event);
    else this.lastSvmRoot = null;
    if (this.bySignature.size === 0) return;
    for (const receipt of event.svmReceipts ?? []) {
      const signature = base58Decoder.decode(receipt.signature);
      const subs = this.bySignature.get(signature);
      if (subs === undefined) continue;
      const err = receipt.status === 0 ? null : transactionErrorJson(receipt.error);
      const json = JSON.stringify({ context: { slot: event.height }, value: { err } });
      for (const sub of [...subs]) {
        // A subscription made in the same message as this commit's delivery has no id at the client yet: it waits.
        if (!sub.active) continue;
        this.deliver(sub, json);
        this.remove(sub);
        sub.session.ended(sub);
      }
    }
  }

  /** A new account subscription: what the account holds now is its baseline (read in turn with the commits' reads). */
  private watch(sub: Subscription): void {
    const account = sub.account;
    const solana = this.opts.solana;
    if (account === undefined || solana === undefined) return;
    let set = this.byAccount.get(account.pubkey);
    if (set === undefined) {
      set = new Set();
      this.byAccount.set(account.pubkey, set);
    }
    set.add(sub);
    this.accountWork = this.accountWork.then(async () => {
      try {
        const height = solana.headHeight();
        account.last = accountValueJson(await solana.account(height, account.pubkey), account.encoding);
        account.readAt = height;
      } catch (error) {
        // Notified at the next commit that reads it.
        account.readAt = solana.headHeight();
        this.opts.log?.warn({ err: error, account: account.pubkey }, "accountSubscribe: cannot read the account");
      }
    });
  }

  /**
   * After a commit: the watched accounts it may have changed are read at its height, in turn with earlier commits'
   * reads. None when the SVM root did not move; only those its Solana transactions name (and the fee collector) when
   * the block has no EVM transaction: an EVM transaction may move lamports through the cross-VM precompile, a Solana
   * one's gateway call into the EVM may not (one VM switch per call chain, docs/cross-vm.md). Every watched one
   * otherwise.
   */
  private queueAccountReads(event: CommittedEvent): void {
    const solana = this.opts.solana;
    if (solana === undefined) return;
    const svmRoot = event.block.header.vmRoots.find((r) => r.vm === SVM_VM.id)?.root ?? null;
    const moved = svmRoot !== this.lastSvmRoot || this.lastSvmRoot === null;
    this.lastSvmRoot = svmRoot;
    if (!moved) return;
    const svmEntries = event.block.transactions.filter(isSvmEntry);
    let pubkeys = [...this.byAccount.keys()];
    if (svmEntries.length === event.block.transactions.length) {
      const named = new Set(svmEntries.flatMap((entry) => svmAccountKeys(entry.subarray(1))));
      named.add(SVM_FEE_COLLECTOR);
      pubkeys = pubkeys.filter((p) => named.has(p));
    }
    if (pubkeys.length === 0) return;
    this.accountWork = this.accountWork.then(async () => {
      for (const pubkey of pubkeys) {
        const subs = this.byAccount.get(pubkey);
        if (subs === undefined) continue;
        let account: Awaited<ReturnType<typeof solana.account>>;
        try {
          account = await solana.account(event.height, pubkey);
        } catch (error) {
          this.opts.log?.warn({ err: error, account: pubkey, height: event.height }, "accountSubscribe: read failed");
          continue;
        }
        const byEncoding = new Map<string, string>();
        for (const sub of [...subs]) {
          const state = sub.account;
          // Not read yet, or read at this height or a later one: this commit is already in what it holds.
          if (state === undefined || state.readAt === null || event.height <= state.readAt) continue;
          let value = byEncoding.get(state.encoding);
          if (value === undefined) {
            value = accountValueJson(account, state.encoding);
            byEncoding.set(state.encoding, value);
          }
          state.readAt = event.height;
          if (value === state.last) continue;
          state.last = value;
          this.deliver(sub, `{"context":{"slot":${event.height}},"value":${value}}`);
        }
      }
    });
  }

  /** Each committed Solana transaction's logs to the logsSubscribe subscribers it matches (all, or its mentions). */
  private deliverSolanaLogs(event: CommittedEvent): void {
    const receipts = event.svmReceipts ?? [];
    if (receipts.length === 0) return;
    const subs = [...this.byKind.solanaLogs].filter((s) => s.active);
    const byMention = subs.some((s) => (s.mentions ?? null) !== null);
    // The receipts follow the block's SVM entries in order; account keys only when a subscriber filters by them.
    const entries = byMention ? event.block.transactions.filter(isSvmEntry) : [];
    for (const [i, receipt] of receipts.entries()) {
      const entry = entries[i];
      const keys = entry === undefined ? null : new Set(svmAccountKeys(entry.subarray(1)));
      let json: string | null = null;
      for (const sub of subs) {
        const mentions = sub.mentions ?? null;
        if (mentions !== null && keys?.has(mentions) !== true) continue;
        json ??= JSON.stringify({
          context: { slot: event.height },
          value: {
            signature: base58Decoder.decode(receipt.signature),
            err: receipt.status === 0 ? null : transactionErrorJson(receipt.error),
            logs: receipt.logs,
          },
        });
        this.deliver(sub, json);
      }
    }
  }

  private deliverLogs(event: CommittedEvent): void {
    const bloom = fromHex(event.block.header.logsBloom);
    const subs = [...this.byKind.logs].filter((s) => s.matcher?.mayMatchBloom(bloom) === true);
    if (subs.length === 0) return;
    for (const { log, position } of blockLogs(event.receipts, event.hash, event.height)) {
      // Each matching log is formatted once, whoever it goes to.
      let json: string | null = null;
      for (const sub of subs) {
        if (!sub.active || sub.matcher?.matches(log) !== true) continue;
        json ??= JSON.stringify(formatLog(log, position));
        this.deliver(sub, json);
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
    sub.session.sink.send(notification(sub, resultJson));
  }
}

/**
 * An account's value as accountNotification gives it; a missing (closed) account as Solana shows one: no lamports,
 * no data, owned by the System Program.
 */
function accountValueJson(
  account: Awaited<ReturnType<SolanaRpcBackend["account"]>>,
  encoding: "base64" | "base58",
): string {
  if (account !== null) return JSON.stringify(solanaAccountJson(account, encoding));
  const data = encoding === "base58" ? ["", "base58"] : ["", "base64"];
  return JSON.stringify({ data, executable: false, lamports: 0, owner: SYSTEM_PROGRAM, rentEpoch: 0, space: 0 });
}
