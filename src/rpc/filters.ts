// Polling filters, as geth serves them: eth_newFilter, eth_newBlockFilter, eth_newPendingTransactionFilter, then
// eth_getFilterChanges (what arrived since the last poll), eth_getFilterLogs and eth_uninstallFilter. This is how
// clients follow a chain over HTTP, where nothing can be pushed: ethers' JsonRpcProvider listens to contract events and
// pending transactions this way, viem's createEventFilter / createBlockFilter / watchEvent too.
//
// Filters belong to the server, not to a connection (HTTP has none): any caller holding an id polls it, over HTTP or
// WebSocket. A filter not polled for `filterTimeoutMs` (geth: 5 minutes) is removed. Memory is bounded: at most
// `maxFilters` filters, each holding at most `maxFilterChanges` changes; a filter that falls further behind is
// removed (its next poll answers "filter not found", as for an expired one, and the client creates it again). Each
// log, hash or transaction object is built once per event and shared by every filter that holds it.
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { fromHex, toHex } from "../../consensus/bytes.ts";
import type { CommittedEvent, RpcBackend, RpcPendingTx } from "./backend.ts";
import { type MethodDef, method, optional, type RpcLog, required } from "./dispatch.ts";
import { ErrorCode, failure, invalidParams, type Outcome, success } from "./errors.ts";
import { formatLog, formatTransaction, TxDecoder } from "./format.ts";
import { blockLogs, type LogMatcher, logMatcher } from "./methods.ts";
import { type BlockRef, type LogFilter, logFilter } from "./params.ts";

export interface FilterLimits {
  /** Filters held at once across all callers; one more is refused with -32005. */
  readonly maxFilters: number;
  /** Changes one filter holds between polls; a filter that falls further behind is removed. */
  readonly maxFilterChanges: number;
  /** A filter not polled for this long is removed (geth: 5 minutes). */
  readonly filterTimeoutMs: number;
}

export const DEFAULT_FILTER_LIMITS: FilterLimits = {
  maxFilters: 1_024,
  maxFilterChanges: 10_000,
  filterTimeoutMs: 5 * 60_000,
};

/** Decoded pending transactions kept for full-object pending filters. */
const PENDING_TX_CACHE_ENTRIES = 1_024;
const MAX_FILTER_ID_CHARS = 100;
/** How often expired filters are looked for, at most (they are also refused when polled late). */
const MAX_SWEEP_INTERVAL_MS = 30_000;

type FilterKind = "logs" | "blocks" | "pending";

interface Filter {
  readonly id: string;
  readonly kind: FilterKind;
  /** logs: the criteria, for eth_getFilterLogs. */
  readonly criteria: LogFilter | null;
  /** logs: address and topics. */
  readonly matcher: LogMatcher | null;
  /** logs: the heights whose new logs count (toBlock "latest": no upper bound). */
  readonly fromHeight: number;
  readonly toHeight: number;
  /** pending: whole transaction objects instead of hashes. */
  readonly fullTransactions: boolean;
  changes: unknown[];
  deadline: number;
}

const filterId = z.string().max(MAX_FILTER_ID_CHARS);

export class FilterRegistry {
  /** The six filter methods, for every transport. */
  readonly methods: ReadonlyMap<string, MethodDef>;
  private readonly filters = new Map<string, Filter>();
  private readonly txs: TxDecoder;
  private stopCommitted: (() => void) | null = null;
  private stopPending: (() => void) | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly backend: RpcBackend,
    private readonly limits: FilterLimits,
    getLogs: (filter: LogFilter) => Promise<Outcome>,
    private readonly log?: RpcLog,
  ) {
    this.txs = new TxDecoder(backend.chainId, PENDING_TX_CACHE_ENTRIES);
    this.methods = new Map<string, MethodDef>([
      [
        "eth_newFilter",
        method([required("filter", logFilter)], (criteria): Outcome => {
          const range = newLogsRange(criteria);
          if ("error" in range) return range.error;
          return this.create({
            kind: "logs",
            criteria,
            matcher: logMatcher(criteria),
            ...range,
            fullTransactions: false,
          });
        }),
      ],
      ["eth_newBlockFilter", method([], () => this.create(plain("blocks", false)))],
      [
        "eth_newPendingTransactionFilter",
        method([optional("fullTransactions", z.boolean())], (full) => this.create(plain("pending", full === true))),
      ],
      [
        "eth_getFilterChanges",
        method([required("id", filterId)], (id): Outcome => {
          const filter = this.live(id);
          if (filter === undefined) return notFound();
          const changes = filter.changes;
          filter.changes = [];
          return success(changes);
        }),
      ],
      [
        "eth_getFilterLogs",
        method([required("id", filterId)], async (id): Promise<Outcome> => {
          const filter = this.live(id);
          // geth: only a log filter has logs to read.
          if (filter === undefined || filter.criteria === null) return notFound();
          return getLogs(filter.criteria);
        }),
      ],
      [
        "eth_uninstallFilter",
        method([required("id", filterId)], (id) => {
          const filter = this.filters.get(id.toLowerCase());
          if (filter === undefined) return success(false);
          this.remove(filter);
          return success(true);
        }),
      ],
    ]);
  }

  /** Filters held now. */
  get size(): number {
    return this.filters.size;
  }

  /** Drops every filter and stops listening to the backend. */
  close(): void {
    this.closed = true;
    this.filters.clear();
    this.listen();
  }

  private create(fields: Omit<Filter, "id" | "changes" | "deadline">): Outcome {
    if (this.closed) return failure(ErrorCode.server, "server closing");
    this.sweep();
    if (this.filters.size >= this.limits.maxFilters) {
      return failure(
        ErrorCode.limitExceeded,
        `limit exceeded: ${this.limits.maxFilters} filters are installed; uninstall some or let them expire`,
      );
    }
    const filter: Filter = {
      ...fields,
      id: toHex(randomBytes(16)),
      changes: [],
      deadline: Date.now() + this.limits.filterTimeoutMs,
    };
    this.filters.set(filter.id, filter);
    this.listen();
    return success(filter.id);
  }

  /** The filter `id`, its deadline moved on (a poll keeps it alive); undefined when unknown or expired. */
  private live(id: string): Filter | undefined {
    const filter = this.filters.get(id.toLowerCase());
    if (filter === undefined) return undefined;
    const now = Date.now();
    if (filter.deadline <= now) {
      this.remove(filter);
      return undefined;
    }
    filter.deadline = now + this.limits.filterTimeoutMs;
    return filter;
  }

  private remove(filter: Filter): void {
    if (this.filters.get(filter.id) === filter) this.filters.delete(filter.id);
    this.listen();
  }

  private sweep(): void {
    const now = Date.now();
    let removed = 0;
    for (const filter of this.filters.values()) {
      if (filter.deadline > now) continue;
      this.filters.delete(filter.id);
      removed++;
    }
    if (removed > 0) {
      this.log?.info?.({ removed, left: this.filters.size }, "rpc filters expired (not polled)");
      this.listen();
    }
  }

  /** Listens to commits and the pool only while a filter needs them, and sweeps only while there are filters. */
  private listen(): void {
    let commits = false;
    let pending = false;
    for (const filter of this.filters.values()) {
      if (filter.kind === "pending") pending = true;
      else commits = true;
      if (commits && pending) break;
    }
    if (commits && this.stopCommitted === null) {
      this.stopCommitted = this.backend.onCommitted((event) => this.guard("commit", () => this.onCommitted(event)));
    } else if (!commits && this.stopCommitted !== null) {
      this.stopCommitted();
      this.stopCommitted = null;
    }
    if (pending && this.stopPending === null) {
      this.stopPending = this.backend.onPendingTransaction((tx) => this.guard("pending", () => this.onPending(tx)));
    } else if (!pending && this.stopPending !== null) {
      this.stopPending();
      this.stopPending = null;
    }
    if (this.filters.size > 0 && this.sweeper === null) {
      const every = Math.max(10, Math.min(MAX_SWEEP_INTERVAL_MS, Math.ceil(this.limits.filterTimeoutMs / 2)));
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    } else if (this.filters.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  /** Nothing a filter does may reach the backend's event source (the consensus commit path). */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log?.warn({ err: error, event: what }, "rpc filter delivery failed");
    }
  }

  /** Adds `change` to the filter, or removes a filter that would hold more than its bound. */
  private push(filter: Filter, change: unknown): void {
    if (filter.changes.length >= this.limits.maxFilterChanges) {
      this.log?.info?.(
        { id: filter.id, kind: filter.kind, changes: filter.changes.length },
        "rpc filter removed: more changes than it may hold were not polled",
      );
      this.remove(filter);
      return;
    }
    filter.changes.push(change);
  }

  private onCommitted(event: CommittedEvent): void {
    let bloom: Uint8Array | null = null;
    let logs: { log: CommittedEvent["receipts"][number]["logs"][number]; formatted: unknown }[] | null = null;
    for (const filter of [...this.filters.values()]) {
      if (filter.kind === "blocks") {
        this.push(filter, event.hash);
        continue;
      }
      if (filter.kind !== "logs" || filter.matcher === null) continue;
      if (event.height < filter.fromHeight || event.height > filter.toHeight) continue;
      bloom ??= fromHex(event.block.header.logsBloom);
      if (!filter.matcher.mayMatchBloom(bloom)) continue;
      // The block's logs are formatted once, whichever filters take them.
      logs ??= [...blockLogs(event.receipts, event.hash, event.height)].map(({ log, position }) => ({
        log,
        formatted: formatLog(log, position),
      }));
      for (const { log, formatted } of logs) {
        if (filter.matcher.matches(log)) this.push(filter, formatted);
        if (!this.filters.has(filter.id)) break;
      }
    }
  }

  private onPending(tx: RpcPendingTx): void {
    let full: unknown = null;
    for (const filter of [...this.filters.values()]) {
      if (filter.kind !== "pending") continue;
      if (!filter.fullTransactions) {
        this.push(filter, tx.hash);
        continue;
      }
      if (full === null) {
        const fields = this.txs.decode(tx.raw);
        if (fields === null) {
          // The pool accepted it, so it decodes; a failure here is a bug to report, not a reason to stop.
          this.log?.warn({ hash: tx.hash }, "pending transaction does not decode");
          return;
        }
        full = formatTransaction(fields, null);
      }
      this.push(filter, full);
    }
  }
}

function plain(kind: FilterKind, fullTransactions: boolean): Omit<Filter, "id" | "changes" | "deadline"> {
  return { kind, criteria: null, matcher: null, fromHeight: 0, toHeight: Number.MAX_SAFE_INTEGER, fullTransactions };
}

function notFound(): Outcome & { ok: false } {
  // geth's code and words: viem re-creates a filter on this error (-32000 is its InvalidInputRpcError).
  return failure(ErrorCode.server, "filter not found");
}

/**
 * The heights whose new logs a filter takes, as geth allows them: "latest" (or nothing) on both ends for new logs
 * only, a number or "earliest" from a height on, a number up to one. Blocks are only ever added at the head, so a
 * lower bound already passed changes nothing for changes; eth_getFilterLogs reads the whole range.
 */
function newLogsRange(
  criteria: LogFilter,
): { fromHeight: number; toHeight: number } | { error: Outcome & { ok: false } } {
  if (criteria.blockHash !== null) {
    return {
      error: invalidParams(
        "invalid argument 0 (filter): a filter takes fromBlock, toBlock, address and topics; blockHash is for eth_getLogs",
      ),
    };
  }
  const bound = (ref: BlockRef, open: number): number | null => {
    if (ref.kind === "number") return ref.height;
    if (ref.kind === "tag" && ref.tag === "latest") return open;
    if (ref.kind === "tag" && ref.tag === "earliest") return 0;
    return null;
  };
  const fromHeight = bound(criteria.fromBlock, 0);
  const toHeight = bound(criteria.toBlock, Number.MAX_SAFE_INTEGER);
  const toIsLatest = criteria.toBlock.kind === "tag" && criteria.toBlock.tag === "latest";
  const fromIsLatest = criteria.fromBlock.kind === "tag" && criteria.fromBlock.tag === "latest";
  if (fromHeight === null || toHeight === null || (fromIsLatest && !toIsLatest) || fromHeight > toHeight) {
    return {
      error: invalidParams(
        'invalid argument 0 (filter): invalid from and to block combination (fromBlock and toBlock may be "latest", ' +
          '"earliest" or a number, fromBlock not after toBlock, and a fromBlock of "latest" needs a toBlock of "latest")',
      ),
    };
  }
  return { fromHeight, toHeight };
}
