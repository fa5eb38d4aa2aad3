// Prometheus metrics of the JSON-RPC server (docs/metrics.md): requests by method and outcome, their durations, and
// what the server holds open (WebSocket connections, subscriptions, polling filters, eth_sendRawTransactionSync waits).
// Method labels are the server's own method names; any other name is counted as "unknown", so clients cannot grow
// the label set.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export interface RpcMetrics {
  /** One request ran: its method (a served name, or "unknown"), its JSON-RPC error code or null, how long it took. */
  observe(method: string, code: number | null, seconds: number): void;
}

export interface RpcHeld {
  wsConnections(): number;
  subscriptions(): number;
  filters(): number;
  syncWaiters(): number;
}

export function createRpcMetrics(registry: Registry, known: (method: string) => boolean, held: RpcHeld): RpcMetrics {
  const r = [registry];
  const requests = new Counter({
    name: "dcn_rpc_requests_total",
    help: "JSON-RPC requests answered, by method and outcome (ok, or the JSON-RPC error code)",
    labelNames: ["method", "outcome"] as const,
    registers: r,
  });
  const seconds = new Histogram({
    name: "dcn_rpc_request_duration_seconds",
    help: "Time to answer one JSON-RPC request (in a batch: each request), by method",
    labelNames: ["method"] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: r,
  });
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: r,
      collect() {
        this.set(read());
      },
    });
  gauge("dcn_rpc_ws_connections", "WebSocket connections being served", held.wsConnections);
  gauge("dcn_rpc_subscriptions", "eth_subscribe / lumia_subscribe / Solana subscriptions held", held.subscriptions);
  gauge("dcn_rpc_filters", "Polling filters installed (eth_newFilter and friends)", held.filters);
  gauge("dcn_rpc_sync_waiters", "eth_sendRawTransactionSync requests waiting for their receipt", held.syncWaiters);
  return {
    observe(method, code, s) {
      const label = known(method) ? method : "unknown";
      requests.inc({ method: label, outcome: code === null ? "ok" : String(code) });
      seconds.observe({ method: label }, s);
    },
  };
}
