// State pruning in a real `dcn start` process (storage.stateHistory = 16, docs/storage.md "State generations"): the
// node runs whole cycles as it commits, reports them in its metrics, answers a balance read of a pruned height with
// JSON-RPC error -32000 naming the first kept height, reads the kept ones, and restarts on its pruned store.
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devnetAccounts } from "../../src/cli/devnet.ts";
import { Cluster } from "./cluster.ts";

async function rpc(
  url: string,
  method: string,
  params: unknown[],
): Promise<{ result?: unknown; error?: { code: number; message: string } }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return (await res.json()) as { result?: unknown; error?: { code: number; message: string } };
}

describe("state pruning in a node process", () => {
  let cluster: Cluster;
  const name = "validator-0";

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 1, replicas: 0 });
    const path = cluster.node(name).configPath;
    const config = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    writeFileSync(path, JSON.stringify({ ...config, storage: { stateHistory: 16 } }, null, 2));
    cluster.start(name);
  }, 60_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it("drops old state as it commits, refuses reads of it and restarts on the pruned store", async () => {
    const url = cluster.node(name).rpc;
    const dev = devnetAccounts()[0]?.address as string;
    await cluster.waitFor(
      "two state generations dropped",
      async () => (await cluster.metric(name, "dcn_state_pruning_steps_total", ['step="dropped"']).catch(() => 0)) >= 2,
      60_000,
    );
    const keptFrom = await cluster.metric(name, "dcn_state_kept_from_height");
    expect(keptFrom).toBeGreaterThanOrEqual(32);
    const pruned = await rpc(url, "eth_getBalance", [dev, "0x1"]);
    expect(pruned.error?.code).toBe(-32000);
    expect(pruned.error?.message).toMatch(
      /^state of block 1 is pruned: this node keeps the state of blocks \d+ and later/,
    );
    const kept = await rpc(url, "eth_getBalance", [dev, `0x${keptFrom.toString(16)}`]);
    expect(kept.error).toBeUndefined();
    const latest = await rpc(url, "eth_getBalance", [dev, "latest"]);
    expect(latest.result).toBe(kept.result);

    await cluster.stop(name);
    const height = await (async () => {
      cluster.start(name);
      await cluster.waitFor("the restarted node serving", async () => (await cluster.height(name)) > 0, 60_000);
      return cluster.height(name);
    })();
    await cluster.waitForHeight([name], height + 20, 60_000);
    expect((await rpc(url, "eth_getBalance", [dev, "latest"])).result).toBe(latest.result);
    expect(cluster.logTails(400)).not.toMatch(/state pruning failed/);
  });
});
