// Metric objects are created per Network instance and registered only in the Registry the caller passes, so
// several networks in one process (tests, devnet) never collide in prom-client's global registry.
import { Counter, Gauge, type Registry } from "prom-client";

export interface NetworkMetrics {
  readonly peers: Gauge;
  readonly gossipMessages: Counter<"topic" | "verdict" | "code">;
  readonly gossipBytes: Counter<"topic">;
  readonly requests: Counter<"protocol" | "direction" | "result">;
  readonly peerBans: Counter;
}

export function createMetrics(registry: Registry, connectedPeers: () => number): NetworkMetrics {
  const registers = [registry];
  return {
    peers: new Gauge({
      name: "dcn_p2p_peers",
      help: "Admitted peers with an open connection",
      registers,
      collect() {
        this.set(connectedPeers());
      },
    }),
    gossipMessages: new Counter({
      name: "dcn_p2p_gossip_messages_total",
      help: "Received gossip messages by validation verdict (accept|ignore|reject) and reason code",
      labelNames: ["topic", "verdict", "code"],
      registers,
    }),
    gossipBytes: new Counter({
      name: "dcn_p2p_gossip_bytes_total",
      help: "Bytes of received gossip message payloads, before validation",
      labelNames: ["topic"],
      registers,
    }),
    requests: new Counter({
      name: "dcn_p2p_requests_total",
      help: "Request/response exchanges by direction (outbound: we asked, inbound: we served) and result",
      labelNames: ["protocol", "direction", "result"],
      registers,
    }),
    peerBans: new Counter({
      name: "dcn_p2p_peer_bans_total",
      help: "Peers disconnected and banned because their score fell below the threshold",
      registers,
    }),
  };
}
