// A coordinated stop for an upgrade (config consensus.haltHeight, docs/operations.md "Upgrades"), as `dcn start`
// processes: every validator commits up to the halt height and exits 0 with nothing signed above it; started again
// with the same setting it exits at once; with the setting raised ("the upgraded binary"), the subnet goes on from
// there with one chain and no evidence.

import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGenesis } from "../../src/config/genesis.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";
import { readChain } from "./chain.ts";
import { Cluster } from "./cluster.ts";

const HALT = 12;

describe("consensus.haltHeight", () => {
  let cluster: Cluster;
  const all = ["validator-0", "validator-1", "validator-2", "validator-3"];

  async function setHalt(name: string, haltHeight: number | null): Promise<void> {
    const path = cluster.node(name).configPath;
    const config = JSON.parse(await readFile(path, "utf8")) as { consensus: Record<string, unknown> };
    config.consensus = { ...config.consensus, haltHeight };
    await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
  }

  const log = (name: string) => readFileSync(join(cluster.node(name).dir, "node.log"), "utf8");

  /** The stored head and the height of the newest safety mark (what the validator last signed at). */
  async function stored(name: string): Promise<{ head: number; signedAt: number | null }> {
    const genesis = await loadGenesis(cluster.plan.genesisPath);
    const store = await ChainStore.open(join(cluster.node(name).dir, "data", "chain"), {
      genesisHash: genesis.hash,
      genesisValidatorSet: genesis.validatorSet,
    });
    try {
      return { head: store.headHeight, signedAt: (await store.loadSafety())?.mark?.height ?? null };
    } finally {
      await store.close();
    }
  }

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 4, replicas: 0 });
  });

  afterAll(async () => {
    await cluster?.close();
  });

  it("every validator stops at the halt height, signs nothing above it, and goes on once it is raised", async () => {
    for (const name of all) await setHalt(name, HALT);
    for (const name of all) cluster.start(name);
    await cluster.waitFor("every validator to stop", async () => all.every((n) => !cluster.running(n)), 90_000);
    for (const name of all) {
      expect(await cluster.stop(name), name).toEqual({ code: 0, signal: null });
      expect(log(name)).toContain("stopping at the halt height (consensus.haltHeight)");
      const { head, signedAt } = await stored(name);
      expect(head, name).toBe(HALT);
      expect(signedAt ?? 0, `${name} signed above the halt height`).toBeLessThanOrEqual(HALT);
    }

    // Started again with the same setting: it stops at once, having signed nothing.
    cluster.start("validator-0");
    await cluster.waitFor("validator-0 to stop again", async () => !cluster.running("validator-0"), 60_000);
    expect(await cluster.stop("validator-0")).toEqual({ code: 0, signal: null });
    expect(log("validator-0").match(/stopping at the halt height/g)).toHaveLength(2);
    expect((await stored("validator-0")).head).toBe(HALT);

    // The upgrade: no halt height any more.
    for (const name of all) await setHalt(name, null);
    for (const name of all) cluster.start(name);
    await cluster.waitForHeight(all, HALT + 10, 90_000);
    for (const name of all) expect(await cluster.metric(name, "dcn_consensus_evidence_total"), name).toBe(0);
    for (const name of all) await cluster.stop(name);
    const chains = await Promise.all(
      all.map((n) => readChain(join(cluster.node(n).dir, "data", "chain"), cluster.plan.genesisPath)),
    );
    const shortest = Math.min(...chains.map((c) => c.hashes.length));
    for (let h = 0; h < shortest; h++) expect(new Set(chains.map((c) => c.hashes[h])).size, `height ${h + 1}`).toBe(1);
    for (const c of chains) expect(c.evidence).toEqual([]);
  }, 240_000);
});
