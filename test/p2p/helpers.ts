// Shared fixtures for the p2p tests: real libp2p nodes on 127.0.0.1, closed by the caller's afterAll.
import { Registry } from "prom-client";
import { generatePeerKey, Network, type NetworkOptions, peerIdFromPrivateKey } from "../../p2p/index.ts";

export interface Identity {
  readonly key: Uint8Array;
  readonly id: string;
}

export function identity(): Identity {
  const key = generatePeerKey();
  return { key, id: peerIdFromPrivateKey(key) };
}

export interface NodeFixture {
  readonly net: Network;
  readonly registry: Registry;
}

export async function startNode(
  me: Identity,
  opts: Partial<Omit<NetworkOptions, "privateKey">> & { allowedPeers: readonly string[] },
): Promise<NodeFixture> {
  const registry = new Registry();
  const net = await Network.create({
    privateKey: me.key,
    listen: ["/ip4/127.0.0.1/tcp/0"],
    peers: [],
    registry,
    ...opts,
  });
  await net.start();
  return { net, registry };
}

/** Polls until cond holds; fails with the label after timeoutMs. Network tests wait on state, never blindly. */
export async function waitFor(label: string, cond: () => boolean, timeoutMs = 10_000, pollMs = 20): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await sleep(pollMs);
  }
  return Date.now() - start;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`metric ${name} not registered`);
  const { values } = await metric.get();
  let total = 0;
  for (const v of values) {
    const l = v.labels as Record<string, string | number | undefined>;
    if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) total += v.value;
  }
  return total;
}

export function dialAddress(net: Network): string {
  const addr = net.addresses().find((a) => a.includes("/ip4/127.0.0.1/tcp/"));
  if (addr === undefined) throw new Error(`no loopback address for ${net.peerId}: ${net.addresses().join(", ")}`);
  return addr.includes("/p2p/") ? addr : `${addr}/p2p/${net.peerId}`;
}
