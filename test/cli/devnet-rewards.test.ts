// Work reports and rewards on a real devnet (anvil + 4 validator processes), checked against the chain itself:
// - a delegator stakes in a pool; after the next epochs' work reports land on L1 (each exactly once: one successful
//   submitReport transaction and one ReportAccepted event per epoch), its claim pays exactly what this test computes
//   from the L2 chain's headers and certificates (proposals, signer bitmaps), the batch inbox's events, the registry's
//   epoch snapshots and the Rewards parameters, with the contract's rounding;
// - an L1 reorg deeper than the head but within the confirmation depth changes nothing on L2: the committed chain is
//   the same on every node, every L2 block's L1 origin is still canonical, the mirrors counted a shallow reorg and no
//   confirmed one, and the subnet keeps committing.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  parseEventLogs,
  toFunctionSelector,
} from "viem";
import { describe, expect, it } from "vitest";
import { fromHex } from "../../consensus/bytes.ts";
import { decode } from "../../consensus/codec.ts";
import { validatorAddress } from "../../consensus/validator-set.ts";
import { headerSchema } from "../../src/chain/block.ts";
import { BatchInbox, LumiaToken, Rewards, SequencerRegistry, Staking } from "../../staking-contracts/artifacts.ts";
import { devnetFixture, rpc, waitUntil } from "./devnet-fixture.ts";

/** Ports 16000-17800 (test/cli/devnet-fixture.ts lists every range). */
const fixture = devnetFixture("devnet-rewards", 16_000);
const LUMIA = 10n ** 18n;
const ACC_SCALE = 10n ** 36n;
const BPS = 10_000n;

interface CertifiedHeader {
  header: Hex;
  signers: number[];
  validatorSetId: Hex;
}

describe("work reports, rewards and L1 reorgs on the devnet", () => {
  it("pays a delegator exactly its share computed from the chain, each report lands once, a shallow reorg changes nothing", async () => {
    const { data, devnet, show } = await fixture.start(["--validators", "4", "--replicas", "0"]);
    const l1Url = devnet.l1.rpc;
    const { registry, staking, rewards, token, batchInbox } = devnet.l1.contracts as Record<string, Address>;
    if (
      registry === undefined ||
      staking === undefined ||
      rewards === undefined ||
      token === undefined ||
      batchInbox === undefined
    ) {
      throw new Error("devnet.json lacks contract addresses");
    }
    const l1 = createPublicClient({ transport: http(l1Url) });
    const wallet = createWalletClient({ transport: http(l1Url) });
    const read = <T>(
      address: Address,
      abi: readonly unknown[],
      functionName: string,
      args: unknown[] = [],
      blockNumber?: bigint,
    ) =>
      l1.readContract({
        address,
        abi: abi as never,
        functionName: functionName as never,
        args: args as never,
        ...(blockNumber === undefined ? {} : { blockNumber }),
      }) as Promise<T>;
    const nodes = devnet.nodes;
    const [v0] = nodes;
    if (v0 === undefined) throw new Error("no node");
    const heightOf = async (url: string) => Number(BigInt(await rpc<Hex>(url, "eth_blockNumber")));
    await waitUntil(
      "every node at height 3",
      async () => (await Promise.all(nodes.map((n) => heightOf(n.rpc)))).every((h) => h >= 3),
      60_000,
      show,
    );

    // ---- A delegator stakes 50 LUMIA in the pool of the first member of the current epoch.
    const accounts = await rpc<Address[]>(l1Url, "eth_accounts");
    const [governance] = accounts;
    const delegator = accounts[5];
    if (governance === undefined || delegator === undefined) throw new Error("anvil has too few accounts");
    const epochNow = await read<bigint>(registry, SequencerRegistry.abi, "currentEpoch");
    const firstMembers = await read<{ sequencerId: number }[]>(registry, SequencerRegistry.abi, "epochMembers", [
      epochNow,
    ]);
    const sequencerId = firstMembers[0]?.sequencerId;
    if (sequencerId === undefined) throw new Error("the epoch has no members");
    const send = async (
      account: Address,
      address: Address,
      abi: readonly unknown[],
      functionName: string,
      args: unknown[],
    ) => {
      const hash = await wallet.writeContract({
        account,
        chain: null,
        address,
        abi: abi as never,
        functionName: functionName as never,
        args: args as never,
      });
      const receipt = await l1.waitForTransactionReceipt({ hash, pollingInterval: 250, timeout: 30_000 });
      expect(receipt.status).toBe("success");
      return receipt;
    };
    const amount = 50n * LUMIA;
    await send(governance, token, LumiaToken.abi, "transfer", [delegator, amount]);
    await send(delegator, token, LumiaToken.abi, "approve", [staking, amount]);
    const staked = await send(delegator, staking, Staking.abi, "stake", [sequencerId, amount]);
    const delegatedAt = staked.blockNumber;
    const shares = await read<bigint>(staking, Staking.abi, "sharesOf", [sequencerId, delegator]);
    expect(shares).toBeGreaterThan(0n);

    // ---- Wait for a report accepted after the delegation, then claim.
    const acceptedAfter = async () => {
      const logs = await l1.getContractEvents({
        address: rewards,
        abi: Rewards.abi,
        eventName: "ReportAccepted",
        fromBlock: delegatedAt + 1n,
      });
      return logs;
    };
    await waitUntil(
      "a work report accepted after the delegation",
      async () => (await acceptedAfter()).length >= 1,
      120_000,
      show,
    );
    const claimed = await send(delegator, rewards, Rewards.abi, "claim", [sequencerId]);
    const [claim] = parseEventLogs({ abi: Rewards.abi, logs: claimed.logs, eventName: "Claimed" });
    const paid = (claim?.args as { amount: bigint } | undefined)?.amount;
    expect(paid).toBeGreaterThan(0n);

    // ---- Each report landed once: one ReportAccepted and one successful submitReport transaction per epoch.
    const allAccepted = await l1.getContractEvents({
      address: rewards,
      abi: Rewards.abi,
      eventName: "ReportAccepted",
      fromBlock: 0n,
    });
    const acceptedEpochs = allAccepted.map((e) => (e.args as { epoch: bigint }).epoch);
    expect(new Set(acceptedEpochs).size).toBe(acceptedEpochs.length);
    const submissions = new Map<bigint, number>();
    const reverted: Hex[] = [];
    for (let n = 1n; n <= claimed.blockNumber; n++) {
      const block = await l1.getBlock({ blockNumber: n, includeTransactions: true });
      for (const tx of block.transactions) {
        if (tx.to?.toLowerCase() !== rewards.toLowerCase() || !tx.input.startsWith(SUBMIT_REPORT_SELECTOR)) continue;
        const receipt = await l1.getTransactionReceipt({ hash: tx.hash });
        if (receipt.status !== "success") {
          reverted.push(tx.hash);
          continue;
        }
        const [accepted] = parseEventLogs({ abi: Rewards.abi, logs: receipt.logs, eventName: "ReportAccepted" });
        if (accepted === undefined) throw new Error(`submitReport ${tx.hash} succeeded without ReportAccepted`);
        const epoch = (accepted.args as { epoch: bigint }).epoch;
        submissions.set(epoch, (submissions.get(epoch) ?? 0) + 1);
      }
    }
    for (const epoch of acceptedEpochs)
      expect(submissions.get(epoch), `successful submissions of epoch ${epoch}`).toBe(1);
    // A duplicate that reached the chain would only cost gas; the stagger keeps it from being sent at all.
    expect(reverted, "reverted submitReport transactions").toEqual([]);

    // ---- The delegator's share, computed here from the L2 chain's headers and certificates.
    const paidEpochs = (await acceptedAfter())
      .filter((e) => e.blockNumber < claimed.blockNumber)
      .map((e) => ({ epoch: (e.args as { epoch: bigint }).epoch, block: e.blockNumber }));
    expect(paidEpochs.length).toBeGreaterThanOrEqual(1);
    const l2Head = await heightOf(v0.rpc);
    const headers: { proposer: Hex; origin: bigint; signers: number[] }[] = [];
    for (let h = 1; h < l2Head; h++) {
      // Below the head every node serves the canonical certificate (the one the next block carries).
      const c = await rpc<CertifiedHeader>(v0.rpc, "lumia_getCertificate", [`0x${h.toString(16)}`]);
      const header = decode(headerSchema, fromHex(c.header));
      headers.push({
        proposer: header.proposer.toLowerCase() as Hex,
        origin: header.l1Origin.number,
        signers: c.signers,
      });
    }
    const genesisOrigin = BigInt(
      (JSON.parse(readFileSync(join(data, "genesis.json"), "utf8")) as { l1: { origin: { number: string } } }).l1.origin
        .number,
    );
    const epochAtBlock = new Map<bigint, bigint>();
    const epochAt = async (blockNumber: bigint) => {
      let e = epochAtBlock.get(blockNumber);
      if (e === undefined) {
        e = await read<bigint>(registry, SequencerRegistry.abi, "currentEpoch", [], blockNumber);
        epochAtBlock.set(blockNumber, e);
      }
      return e;
    };
    // Height H is decided by the set the registry had at the L1 origin of block H - 2.
    const originOf = (h: number) => (h <= 0 ? genesisOrigin : (headers[h - 1]?.origin ?? genesisOrigin));
    const heightEpoch: bigint[] = [];
    for (let h = 1; h < l2Head; h++) heightEpoch[h] = await epochAt(originOf(h - 2));

    const emission = await read<bigint>(rewards, Rewards.abi, "emissionPerEpoch");
    const workShareBps = BigInt(await read<number>(rewards, Rewards.abi, "workShareBps"));
    const [wProposed, wSigned, wBatches] = await read<[bigint, bigint, bigint]>(rewards, Rewards.abi, "workWeights");
    let expected = 0n;
    for (const { epoch, block } of paidEpochs) {
      const members = await read<{ sequencerId: number; commissionBps: number; stake: bigint }[]>(
        registry,
        SequencerRegistry.abi,
        "epochMembers",
        [epoch],
      );
      const [publicKeys] = await read<[Hex[]]>(registry, SequencerRegistry.abi, "validatorSet", [epoch]);
      const addresses = publicKeys.map((pk) => validatorAddress(fromHex(pk)).toLowerCase());
      const heights = heightEpoch.flatMap((e, h) => (e === epoch ? [h] : []));
      expect(heights.length, `L2 heights of epoch ${epoch}`).toBeGreaterThan(0);
      const proposed = addresses.map((a) => BigInt(heights.filter((h) => headers[h - 1]?.proposer === a).length));
      const signed = addresses.map((_, i) => BigInt(heights.filter((h) => headers[h - 1]?.signers.includes(i)).length));
      // Batches each member posted in the epoch, from the inbox's events (calldata and blob batches).
      const posted = await Promise.all(
        (["BatchSubmitted", "BlobBatchSubmitted"] as const).map((eventName) =>
          l1.getContractEvents({ address: batchInbox, abi: BatchInbox.abi, eventName, fromBlock: 0n }),
        ),
      );
      const batches = members.map((m) =>
        BigInt(
          posted.flat().filter((e) => {
            const a = e.args as { sequencerId: number; epoch: bigint };
            return a.sequencerId === m.sequencerId && a.epoch === epoch;
          }).length,
        ),
      );
      const scores = addresses.map(
        (_, i) => (proposed[i] ?? 0n) * wProposed + (signed[i] ?? 0n) * wSigned + (batches[i] ?? 0n) * wBatches,
      );
      // The contract's score for each member (RewardDistributed) is the one computed here.
      const distributed = await l1.getContractEvents({
        address: rewards,
        abi: Rewards.abi,
        eventName: "RewardDistributed",
        args: { epoch },
        fromBlock: block,
        toBlock: block,
      });
      const scoreOf = new Map(
        distributed.map((d) => [(d.args as { sequencerId: number }).sequencerId, (d.args as { score: bigint }).score]),
      );
      for (const [i, m] of members.entries()) {
        expect(scoreOf.get(m.sequencerId), `score of sequencer ${m.sequencerId} in epoch ${epoch}`).toBe(scores[i]);
      }
      const totalScore = scores.reduce((a, b) => a + b, 0n);
      const totalStake = members.reduce((a, m) => a + BigInt(m.stake), 0n);
      const workPool = (emission * workShareBps) / BPS;
      const stakePool = emission - workPool;
      const i = members.findIndex((m) => m.sequencerId === sequencerId);
      const m = members[i];
      if (m === undefined) throw new Error(`sequencer ${sequencerId} is not in epoch ${epoch}`);
      const reward = (workPool * (scores[i] ?? 0n)) / totalScore + (stakePool * BigInt(m.stake)) / totalStake;
      const commission = (reward * BigInt(m.commissionBps)) / BPS;
      const poolShares = await read<bigint>(staking, Staking.abi, "poolShares", [sequencerId], block);
      expected += ((reward - commission) * ACC_SCALE) / poolShares;
    }
    expect(paid).toBe((shares * expected) / ACC_SCALE);

    // ---- A reorg of the L1's last two blocks (confirmations: 2) changes nothing on L2.
    const before = await heightOf(v0.rpc);
    const hashesBefore = await Promise.all(
      [1, Math.floor(before / 2), before].map(async (h) =>
        rpc<{ hash: Hex }>(v0.rpc, "eth_getBlockByNumber", [`0x${h.toString(16)}`, false]),
      ),
    );
    const reorgsOf = async (metrics: string, depth: string) => {
      const text = await (await fetch(`${metrics}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`dcn_l1_reorgs_total{depth="${depth}"}`));
      return line === undefined ? 0 : Number(line.split(" ")[1]);
    };
    const shallowBefore = await Promise.all(nodes.map((n) => reorgsOf(n.metrics, "shallow")));
    await rpc(l1Url, "anvil_reorg", [2, []]);
    await waitUntil(
      "every node 20 heights further after the reorg",
      async () => (await Promise.all(nodes.map((n) => heightOf(n.rpc)))).every((h) => h >= before + 20),
      60_000,
      show,
    );
    for (const n of nodes) {
      const hashes = await Promise.all(
        [1, Math.floor(before / 2), before].map(async (h) =>
          rpc<{ hash: Hex }>(n.rpc, "eth_getBlockByNumber", [`0x${h.toString(16)}`, false]),
        ),
      );
      expect(hashes.map((b) => b.hash)).toEqual(hashesBefore.map((b) => b.hash));
      expect(await reorgsOf(n.metrics, "confirmed")).toBe(0);
    }
    // At least one mirror polled between the two branches and counted the reorg (each polls every second).
    const shallowAfter = await Promise.all(nodes.map((n) => reorgsOf(n.metrics, "shallow")));
    expect(shallowAfter.some((after, i) => after > (shallowBefore[i] ?? 0))).toBe(true);
    const now = await heightOf(v0.rpc);
    for (let h = Math.max(1, before - 40); h <= now; h++) {
      const c = await rpc<CertifiedHeader>(v0.rpc, "lumia_getCertificate", [`0x${h.toString(16)}`]);
      const origin = decode(headerSchema, fromHex(c.header)).l1Origin;
      const canonical = await l1.getBlock({ blockNumber: origin.number });
      expect(canonical.hash, `L1 origin of L2 height ${h}`).toBe(origin.hash);
    }
    // Only the offending lines, so that a failure says which check refused which block.
    const invalid = nodes
      .flatMap((_, i) => readFileSync(join(data, `validator-${i}`, "node.log"), "utf8").split("\n"))
      .filter((line) => line.includes("invalid block proposed"));
    expect(invalid).toEqual([]);
  }, 300_000);
});

/** The 4-byte selector of Rewards.submitReport. */
const SUBMIT_REPORT_SELECTOR = (() => {
  const item = Rewards.abi.find((x) => x.type === "function" && "name" in x && x.name === "submitReport");
  if (item === undefined) throw new Error("Rewards has no submitReport");
  return toFunctionSelector(item as never);
})();
