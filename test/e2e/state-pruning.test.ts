// State and history pruning in a real `dcn start` process (storage.stateHistory = 16, docs/storage.md "State
// generations"; storage.blockHistory = 256, the fewest allowed, "History pruning"): the node runs whole state cycles as
// it commits, reports them in its metrics, answers a balance read of a pruned height with JSON-RPC error -32000 naming
// the first kept height, reads the kept ones, and restarts on its pruned store. Under a stream of transfers it deletes
// the history of old heights but block 1, answers reads of it with 4444 (transactions: null), still lets a light
// client verify a balance from the genesis set, and restarts with no more than the 256 newest heights' history, from
// which its executor reloads the block hashes it needs. A replica started after that, with sync.stateSync, joins from
// the pruning node's verified head (no node could serve it the chain from the genesis; while no peer is up it waits,
// its operator endpoint alive but not ready), executes the blocks after it
// to the same hashes, serves light clients in turn and restarts from its own head.
import { readFileSync, writeFileSync } from "node:fs";
import { type Hex, parseGwei } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devnetAccounts } from "../../src/cli/devnet.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { anchorFromGenesis, LightClient } from "../../src/light-client/index.ts";
import { Cluster } from "./cluster.ts";

const hexHeight = (height: number | bigint) => `0x${height.toString(16)}`;

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

describe("state and history pruning in a node process", () => {
  let cluster: Cluster;
  const name = "validator-0";
  const replica = "replica-0";
  const account = privateKeyToAccount(devnetAccounts()[1]?.privateKey as Hex);

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 1, replicas: 1 });
    const path = cluster.node(name).configPath;
    const config = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    // A height as soon as a transaction arrives (256 heights of history must pass before any is deleted); empty ones
    // at the cluster's pace, which the state checks' reads keep up with.
    const consensus = { ...(config.consensus as object), blockIntervalMs: 0 };
    const storage = { stateHistory: 16, blockHistory: 256 };
    writeFileSync(path, JSON.stringify({ ...config, consensus, storage }, null, 2));
    // The replica joins later, by state sync: by then no node keeps the chain from the genesis.
    const replicaPath = cluster.node(replica).configPath;
    const replicaConfig = JSON.parse(readFileSync(replicaPath, "utf8")) as Record<string, unknown>;
    writeFileSync(replicaPath, JSON.stringify({ ...replicaConfig, sync: { stateSync: true } }, null, 2));
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

  it("deletes old history under a stream of transfers, answers 4444 for it and restarts on what is left", async () => {
    const url = cluster.node(name).rpc;
    let nonce = Number((await rpc(url, "eth_getTransactionCount", [account.address, "latest"])).result);
    // Transfers, each waiting for its receipt, until the history window has moved well past height 1.
    const sent: { hash: Hex; height: number }[] = [];
    const send = async () => {
      const raw = await account.signTransaction({
        chainId: Number(cluster.plan.chainId),
        nonce: nonce++,
        to: account.address,
        value: 1n,
        gas: 21_000n,
        maxFeePerGas: parseGwei("20"),
        maxPriorityFeePerGas: 0n,
        type: "eip1559",
      });
      const answer = await rpc(url, "eth_sendRawTransactionSync", [raw]);
      const receipt = answer.result as { transactionHash: Hex; blockNumber: Hex } | undefined;
      if (receipt === undefined) throw new Error(`send failed: ${answer.error?.message}`);
      sent.push({ hash: receipt.transactionHash, height: Number(receipt.blockNumber) });
    };
    // Until the history of the first transfer's height (after 1, which stays) is deleted.
    const keptFromNow = () => cluster.metric(name, "dcn_history_kept_from_height").catch(() => 1);
    await send();
    while ((await keptFromNow()) <= Math.max(2, (sent[0]?.height ?? 0) + 1)) await send();
    const keptFrom = await cluster.metric(name, "dcn_history_kept_from_height");
    expect(await cluster.metric(name, "dcn_history_pruned_heights_total")).toBeGreaterThanOrEqual(keptFrom - 2);

    const old = await rpc(url, "eth_getBlockByNumber", [`0x${(keptFrom - 1).toString(16)}`, false]);
    expect(old.error?.code).toBe(4444);
    expect(old.error?.message).toMatch(
      /^pruned history unavailable: block \d+ is older than the blocks this node keeps/,
    );
    expect((await rpc(url, "eth_getBlockByNumber", ["0x1", false])).result).toMatchObject({ number: "0x1" });
    expect((await rpc(url, "lumia_getCertificate", ["0x1"])).result).toMatchObject({ height: "0x1" });
    const gone = sent.find((s) => s.height < keptFrom && s.height > 1);
    const kept = sent.findLast((s) => s.height >= keptFrom);
    expect(gone).toBeDefined();
    expect(kept).toBeDefined();
    expect((await rpc(url, "eth_getTransactionReceipt", [gone?.hash])).result).toBeNull();
    expect((await rpc(url, "eth_getTransactionReceipt", [kept?.hash])).result).toMatchObject({ status: "0x1" });
    // A light client still verifies through this node: block 1 (whose parent is the genesis) is kept, and the
    // certificates are real BLS aggregates.
    const client = await LightClient.create({
      rpcUrl: url,
      genesis: anchorFromGenesis(await loadGenesis(cluster.plan.genesisPath)),
    });
    const verified = await client.verifiedBalance(account.address);
    const atHeight = await rpc(url, "eth_getBalance", [account.address, hexHeight(verified.header.height)]);
    expect(verified.balance).toBe(BigInt(atHeight.result as string));
    expect(verified.header.height).toBeGreaterThan(keptFrom);

    await cluster.stop(name);
    cluster.start(name);
    await cluster.waitFor(
      "the restarted node's JSON-RPC",
      async () => (await rpc(url, "eth_blockNumber", []).catch(() => null))?.result !== undefined,
      60_000,
    );
    await send();
    await send();
    expect((await rpc(url, "eth_getBlockByNumber", [`0x${(keptFrom - 1).toString(16)}`, false])).error?.code).toBe(
      4444,
    );
    expect(cluster.logTails(400)).not.toMatch(/history pruning failed/);
  }, 180_000);

  it("brings a new node up by state sync from the pruning node, verified from the genesis set", async () => {
    const url = cluster.node(replica).rpc;
    const keptFrom = await cluster.metric(name, "dcn_history_kept_from_height");
    expect(keptFrom).toBeGreaterThan(2);
    // With no peer up it waits for one, alive (the operator endpoint answers) but not ready.
    await cluster.stop(name);
    cluster.start(replica);
    const metricsUrl = cluster.node(replica).metrics;
    await cluster.waitFor(
      "the replica's operator endpoint",
      async () => (await fetch(`${metricsUrl}/health`).catch(() => null))?.status === 200,
      30_000,
    );
    expect((await fetch(`${metricsUrl}/ready`)).status).toBe(503);
    const waiting = (await (await fetch(`${metricsUrl}/status`)).json()) as { stateSync: unknown; headHeight: number };
    expect(waiting).toMatchObject({ headHeight: 0, stateSync: { phase: "offer", height: 0 } });
    // SIGTERM while it waits: a clean stop (exit 0), then a new start waits again.
    expect(await cluster.stop(replica)).toEqual({ code: 0, signal: null });
    expect(cluster.logTails(50)).toMatch(/stopped during state sync/);
    cluster.start(replica);
    await cluster.waitFor(
      "the replica's operator endpoint after its restart",
      async () => (await fetch(`${metricsUrl}/health`).catch(() => null))?.status === 200,
      30_000,
    );
    cluster.start(name);
    const installedAt = () =>
      /"height":(\d+)[^\n]*state sync installed the state of a verified head/.exec(cluster.logTails(2000));
    await cluster.waitFor("the replica's state sync", async () => installedAt() !== null, 60_000);
    const from = Number(installedAt()?.[1]);
    // Then it follows the chain, executing every block after that height on the synced state.
    await cluster.waitForHeight([replica], from + 3, 60_000);
    // Synced from a recent head, not from the genesis (which no peer could serve): the state came node by node.
    expect(await cluster.metric(replica, "dcn_state_sync_nodes_total", ['source="peer"'])).toBeGreaterThan(0);
    expect(from).toBeGreaterThanOrEqual(keptFrom);
    // Its head's hash and balances are the validator's.
    const replicaHead = await cluster.height(replica);
    const blockAt = async (u: string) =>
      ((await rpc(u, "eth_getBlockByNumber", [hexHeight(replicaHead), false])).result as { hash: Hex }).hash;
    expect(await blockAt(url)).toBe(await blockAt(cluster.node(name).rpc));
    const balance = await rpc(url, "eth_getBalance", [account.address, hexHeight(replicaHead)]);
    expect(balance.result).toBe(
      (await rpc(cluster.node(name).rpc, "eth_getBalance", [account.address, hexHeight(replicaHead)])).result,
    );
    // State before the synced head is not there; blocks below it are not served but block 1 (light clients anchor on it).
    expect((await rpc(url, "eth_getBalance", [account.address, hexHeight(from - 1)])).error?.code).toBe(-32000);
    expect((await rpc(url, "eth_getBlockByNumber", ["0x1", false])).result).toMatchObject({ number: "0x1" });
    const client = await LightClient.create({
      rpcUrl: url,
      genesis: anchorFromGenesis(await loadGenesis(cluster.plan.genesisPath)),
    });
    const verified = await client.verifiedBalance(account.address);
    expect(verified.header.height).toBeGreaterThan(from);

    // A restart continues from its head: state sync is for an empty node only.
    await cluster.stop(replica);
    cluster.start(replica);
    const now = await cluster.height(name);
    await cluster.waitForHeight([replica], now + 3, 60_000);
    expect(cluster.logTails(4000).match(/state sync installed the state of a verified head/g)?.length).toBe(1);
    expect(cluster.logTails(4000)).not.toMatch(/state sync attempt failed/);
  }, 120_000);
});
