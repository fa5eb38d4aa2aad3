// The short part of the fault suite (the whole suite: `npm run test:faults`, docs/reliability.md): four validators
// as `dcn start` processes, each in its own network namespace, under a load of signed transfers. A 2/2 partition
// (no side has a quorum) stops commits without forking; healed, the subnet resumes. A validator killed with SIGKILL
// mid-height restarts from its disk and catches up. At the end: one chain on every node (over JSON-RPC and from disk,
// certificates verified), every accepted transaction has the same receipt everywhere, no evidence against anyone.
// In between, validator-3's keys propose blocks with a wrong state root (its node stopped): refused by everyone.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ByzantineValidator } from "./attacker.ts";
import { Load } from "./load.ts";
import { NetLab, netnsUnavailable, randomLossSupported, sweep } from "./netlab.ts";
import { FAULT_CHAIN_ID, FaultSubnet, sleep } from "./subnet.ts";

const unavailable = netnsUnavailable();
if (unavailable !== null) {
  console.warn(`test/faults skipped: ${unavailable} (run as root on Linux with ip netns, veth and tc htb)`);
}

describe.skipIf(unavailable !== null)("a subnet in network namespaces under faults", () => {
  const prefix = NetLab.newPrefix();
  let subnet: FaultSubnet;
  let load: Load;
  const all = [0, 1, 2, 3];
  const down = new Set<number>();

  beforeAll(async () => {
    subnet = await FaultSubnet.create({ prefix, validators: 4 });
    subnet.startAll();
    await subnet.waitForHeight(all, 2, 60_000);
    load = new Load(subnet, {
      chainId: FAULT_CHAIN_ID,
      ratePerSec: 20,
      wallets: 6,
      targets: () => all.filter((i) => !down.has(i)),
    });
    load.start();
  }, 90_000);

  afterAll(async () => {
    await load?.stop();
    await subnet?.close();
    await sweep(prefix);
  });

  it("a 2/2 partition halts commits without a fork; healed, every node resumes", async () => {
    await subnet.lab.partition([0, 1], [2, 3]);
    try {
      // In-flight commits land (a node may hold every precommit of a height already and still be executing it: on a
      // loaded machine that takes seconds); after that, no side has +2/3 of the power.
      let frozen = await subnet.heights(all);
      for (let i = 0; i < 10; i++) {
        await sleep(1_500);
        const now = await subnet.heights(all);
        if (now.join() === frozen.join()) break;
        frozen = now;
      }
      await sleep(4_000);
      const later = await subnet.heights(all);
      expect(later, `heights moved during a partition without quorum: ${frozen} -> ${later}`).toEqual(frozen);
      expect(await subnet.forks()).toEqual([]);
    } finally {
      // Healed whatever happened: the next tests need a connected subnet.
      await subnet.lab.heal();
    }
    const top = Math.max(...(await subnet.heights(all)));
    const recoveryMs = await subnet.waitForHeight(all, top + 3, 40_000);
    console.info(`partition 2/2: healed, 3 heights past ${top} in ${recoveryMs} ms`);
    expect(await subnet.forks()).toEqual([]);
  }, 70_000);

  it("5% random packet loss on every link between validators: commits continue, no fork", async (ctx) => {
    if (!randomLossSupported()) {
      // .ci/run installs iptables and sets DCN_REQUIRE_IPTABLES: there a missing iptables is a failure, not a skip.
      if (process.env.DCN_REQUIRE_IPTABLES === "1") throw new Error("iptables with the statistic match is required");
      console.warn("random loss skipped: no iptables with the statistic match (install the iptables package)");
      ctx.skip();
    }
    await subnet.lab.setRandomLoss(5);
    try {
      const top = Math.max(...(await subnet.heights(all)));
      await subnet.waitForHeight(all, top + 6, 40_000);
      expect(await subnet.lab.randomLossDrops()).toBeGreaterThan(0);
    } finally {
      await subnet.lab.heal();
    }
    expect(await subnet.forks()).toEqual([]);
  }, 60_000);

  it("a validator killed with SIGKILL mid-height restarts from disk and catches up", async () => {
    await sleep(Math.floor(Math.random() * 800));
    down.add(3);
    subnet.kill9(3);
    const atKill = Math.max(...(await subnet.heights([0, 1, 2])));
    await subnet.waitForHeight([0, 1, 2], atKill + 3, 30_000);
    subnet.start(3);
    down.delete(3);
    const others = Math.max(...(await subnet.heights([0, 1, 2])));
    await subnet.waitForHeight([3], others, 40_000);
    await subnet.waitForHeight(all, others + 2, 30_000);
    expect(await subnet.forks()).toEqual([]);
  }, 110_000);

  it("a proposer of blocks with a wrong state root gets nil prevotes; nobody commits its blocks", async () => {
    down.add(3);
    await subnet.stop(3);
    const invalidBefore = await Promise.all(
      [0, 1, 2].map((i) => subnet.metric(i, "dcn_consensus_invalid_blocks_total", ['code="execution_mismatch"'])),
    );
    const attacker = await ByzantineValidator.start(subnet, 3, "invalid-block");
    try {
      await subnet.waitFor("2 invalid proposals", async () => attacker.sent.invalidBlocks >= 2, 40_000);
      const top = Math.max(...(await subnet.heights([0, 1, 2])));
      await subnet.waitForHeight([0, 1, 2], top + 2, 30_000);
      const invalid = await Promise.all(
        [0, 1, 2].map((i) => subnet.metric(i, "dcn_consensus_invalid_blocks_total", ['code="execution_mismatch"'])),
      );
      expect(
        invalid.every((n, k) => n > (invalidBefore[k] ?? 0)),
        `invalid blocks per node: ${invalid}`,
      ).toBe(true);
      expect(await attacker.committedOwnBlocks(subnet, [0, 1, 2])).toBe(0);
      // The proposer itself is scored down (its peer id, from the genesis), not the peer that relayed its block.
      const attackerPeer = subnet.node(3).peerId;
      for (const i of [0, 1, 2]) {
        const log = readFileSync(join(subnet.node(i).dir, "node.log"), "utf8");
        expect(log, `validator-${i}`).toContain(
          `"peer":"${attackerPeer}","code":"execution_mismatch","msg":"scoring down the proposer of an invalid block"`,
        );
      }
    } finally {
      await attacker.stop();
    }
    // Past every height the attacker could have signed for validator-3, the real node comes back.
    const top = Math.max(...(await subnet.heights([0, 1, 2])));
    await subnet.waitForHeight([0, 1, 2], top + 2, 30_000);
    subnet.start(3);
    down.delete(3);
    await subnet.waitForHeight(all, top + 4, 60_000);
    expect(await subnet.forks()).toEqual([]);
  }, 120_000);

  it("loses no transaction, and every node stores one certified chain with no evidence", async () => {
    await load.settle(30_000);
    const result = await load.verify(all);
    console.info(`load: ${result.accepted} accepted, ${result.resent} re-sent, ${result.lost} lost`);
    expect(result.accepted).toBeGreaterThan(50);
    expect(result.lost).toBe(0);
    expect(result.receiptMismatches).toBe(0);

    await subnet.stopAll();
    const { reports, forkHeights } = await subnet.storedChains();
    expect(forkHeights).toEqual([]);
    expect(Math.min(...reports.map((r) => r.hashes.length))).toBeGreaterThan(5);
    expect(await subnet.evidenceAgainst(reports, all)).toEqual([]);
  }, 90_000);
});
