// A subnet whose validators are not all connected: four `dcn start` processes in a line (validator-i dials only
// validator-i+1). Votes and transactions travel one hop between sequencers (docs/protocol.md), so the two ends never
// see each other's votes directly; the subnet must still commit one chain, each end through the proposals and
// certificates its neighbour relays and the votes the driver pulls when a height stalls.
import { readFile, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "./cluster.ts";

describe("four validators in a line", () => {
  let cluster: Cluster;
  const validators = ["validator-0", "validator-1", "validator-2", "validator-3"];

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 4, replicas: 0 });
    for (const [i, name] of validators.entries()) {
      const path = cluster.node(name).configPath;
      const config = JSON.parse(await readFile(path, "utf8"));
      const next = validators[i + 1];
      config.p2p.peers = next === undefined ? [] : [cluster.node(next).p2p];
      await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
    }
    for (const v of validators) cluster.start(v);
  }, 30_000);

  afterAll(async () => {
    await cluster?.close();
  });

  async function blockHash(name: string, height: number): Promise<string> {
    const res = await fetch(cluster.node(name).rpc, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "eth_getBlockByNumber",
        params: [`0x${height.toString(16)}`, false],
      }),
    });
    const body = (await res.json()) as { result?: { hash?: string } | null };
    const hash = body.result?.hash;
    if (typeof hash !== "string") throw new Error(`${name} has no block ${height}: ${JSON.stringify(body)}`);
    return hash;
  }

  it("commits one chain on every validator, each connected to its neighbours only", async () => {
    await cluster.waitForHeight(validators, 12, 90_000);
    // The topology is the one configured: nobody found a shortcut to a validator it was not told to dial.
    const peers = await Promise.all(validators.map((v) => cluster.metric(v, "dcn_p2p_peers")));
    expect(peers).toEqual([1, 2, 2, 1]);
    // Both ends take part: they sign precommits (an end that committed a height from a relayed certificate before
    // its own precommit had no reason to sign one), which the middle validators count for their quorums of three.
    for (const end of ["validator-0", "validator-3"]) {
      expect(await cluster.metric(end, "dcn_consensus_votes_total", ['type="precommit"']), end).toBeGreaterThan(3);
    }
    for (const height of [1, 6, 12]) {
      const hashes = await Promise.all(validators.map((v) => blockHash(v, height)));
      expect(new Set(hashes).size, `block ${height}: ${hashes.join(" ")}`).toBe(1);
    }
    for (const v of validators) expect(await cluster.metric(v, "dcn_consensus_evidence_total"), v).toBe(0);
  }, 120_000);
});
