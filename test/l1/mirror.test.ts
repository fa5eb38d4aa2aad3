// The L1 mirror against a real anvil: a block is confirmed only at depth; a reorg inside the depth changes no
// confirmed answer, a deeper one is detected, counted and turns the replaced block's answer to "invalid"; epochAt reads
// the registry's set at a block hash (before and after advanceEpoch) and checks its id; the resume point survives a
// restart (no rescan, confirmed head known before the first poll); an unreachable RPC gives "unknown", never a throw.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { type L1Membership, L1Mirror, type L1MirrorOptions, peerIdFromBytes } from "../../src/l1/mirror.ts";
import type { L1Ref } from "../../src/l1/view.ts";
import { consensusOrder, LUMIA, operatorKeys, type StakingChain, startStakingChain } from "../staking/fixture.ts";

let chain: StakingChain;
let dir: string;
const mirrors: L1Mirror[] = [];

beforeAll(async () => {
  chain = await startStakingChain({ epochLengthBlocks: 5n });
  dir = await mkdtemp(join(tmpdir(), "dcn-mirror-"));
});
afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.stop()));
  await chain?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function open(
  overrides: Partial<L1MirrorOptions> = {},
  registry?: Registry,
  onMembership?: (m: L1Membership) => void,
) {
  const mirror = await L1Mirror.open(
    {
      rpcUrl: chain.anvil.url,
      pollIntervalMs: 100,
      confirmations: 2,
      registry: null,
      dbPath: null,
      ...overrides,
    },
    {
      ...(registry === undefined ? {} : { registry }),
      ...(onMembership === undefined ? {} : { onMembership }),
    },
  );
  mirrors.push(mirror);
  return mirror;
}

const rpc = <T>(method: string, params: unknown[] = []) => jsonRpc<T>(chain.anvil.url, method, params, 5_000);
/** Mines `n` blocks `intervalS` seconds apart: a different interval gives different hashes on a replayed branch. */
const mine = (n: number, intervalS = 1) => rpc("anvil_mine", [`0x${n.toString(16)}`, `0x${intervalS.toString(16)}`]);
async function block(number: bigint): Promise<L1Ref> {
  const b = await chain.publicClient.getBlock({ blockNumber: number });
  if (b.hash === null) throw new Error("pending");
  return { number, hash: b.hash };
}
const head = () => chain.publicClient.getBlockNumber({ cacheTime: 0 });

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

describe("L1Mirror", () => {
  it("confirms a block only at depth and answers by number and hash", async () => {
    await mine(5);
    const mirror = await open();
    expect(mirror.confirmedHead()).toBeNull();
    // Asked about a block above its confirmed head (here: before any poll), the mirror polls once itself.
    expect(await mirror.checkConfirmed(await block(1n))).toEqual({ kind: "ok", value: true });
    expect(mirror.confirmedHead()).not.toBeNull();
    const h = await head();
    const confirmed = mirror.confirmedHead();
    expect(confirmed).toEqual(await block(h - 2n));
    expect(await mirror.checkConfirmed(await block(h - 2n))).toEqual({ kind: "ok", value: true });
    // Above the depth: not yet, whatever the hash.
    expect((await mirror.checkConfirmed(await block(h - 1n))).kind).toBe("unknown");
    expect((await mirror.checkConfirmed(await block(h))).kind).toBe("unknown");
    // Deep below the window the mirror fetched: read on demand, then cached.
    expect(await mirror.checkConfirmed(await block(1n))).toEqual({ kind: "ok", value: true });
    const wrong = { number: h - 2n, hash: (await block(h - 3n)).hash };
    expect((await mirror.checkConfirmed(wrong)).kind).toBe("invalid");
    await mine(1);
    await mirror.pollOnce();
    expect(mirror.confirmedHead()).toEqual(await block(h - 1n));
    expect(mirror.status()).toMatchObject({ connected: true, confirmations: 2, confirmedBlock: Number(h - 1n) });
  });

  it("a reorg within the depth changes no confirmed answer; a deeper one is detected and counted", async () => {
    const registry = new Registry();
    const mirror = await open({}, registry);
    await mine(3);
    await mirror.pollOnce();
    const h = await head();
    const snapshot = await rpc<string>("evm_snapshot");
    await mine(2);
    await mirror.pollOnce();
    const confirmedBefore = mirror.confirmedHead();
    expect(confirmedBefore).toEqual(await block(h));
    const answersBefore = await Promise.all([h - 1n, h].map(async (n) => mirror.checkConfirmed(await block(n))));
    // Replace h+1, h+2 (above the depth) by another branch of the same length.
    await rpc("evm_revert", [snapshot]);
    await mine(2, 7);
    await mirror.pollOnce();
    expect(mirror.stats()).toMatchObject({ reorgs: 1, confirmedReorgs: 0 });
    expect(mirror.confirmedHead()).toEqual(confirmedBefore);
    expect(await Promise.all([h - 1n, h].map(async (n) => mirror.checkConfirmed(await block(n))))).toEqual(
      answersBefore,
    );
    expect(await metric(registry, "dcn_l1_reorgs_total", { depth: "shallow" })).toBe(1);

    // Now a reorg that replaces confirmed blocks: h+1..h+5 mined, h+1..h+3 confirmed, then replaced.
    const snapshot2 = await rpc<string>("evm_snapshot");
    const base = await head();
    await mine(5);
    await mirror.pollOnce();
    const doomed = await block(base + 2n);
    expect(await mirror.checkConfirmed(doomed)).toEqual({ kind: "ok", value: true });
    await rpc("evm_revert", [snapshot2]);
    await mine(6, 11);
    await mirror.pollOnce();
    expect(mirror.stats()).toMatchObject({ reorgs: 2, confirmedReorgs: 1 });
    expect(mirror.stats().deepestReorg).toBe(5);
    expect(await metric(registry, "dcn_l1_reorgs_total", { depth: "confirmed" })).toBe(1);
    expect((await mirror.checkConfirmed(doomed)).kind).toBe("invalid");
    expect(await mirror.checkConfirmed(await block(base + 2n))).toEqual({ kind: "ok", value: true });
    expect(mirror.confirmedHead()).toEqual(await block(base + 4n));
  });

  it("epochAt reads the registry's set at a block hash, before and after advanceEpoch, and checks its id", async () => {
    const memberships: L1Membership[] = [];
    const mirror = await open({ registry: chain.addresses.registry }, undefined, (m) => memberships.push(m));
    const keys = [operatorKeys(1), operatorKeys(2)];
    const [a, b] = chain.users;
    if (a === undefined || b === undefined) throw new Error("accounts");
    await chain.fundAccount(a, 5_000n * LUMIA);
    await chain.fundAccount(b, 5_000n * LUMIA);
    await chain.addSequencer(a, keys[0] ?? operatorKeys(1), 2_000n * LUMIA);
    await chain.addSequencer(b, keys[1] ?? operatorKeys(2), 3_000n * LUMIA);
    const before = await block(await head());
    const epochBefore = await chain.registry.read.currentEpoch();
    await chain.advanceEpoch();
    const after = await block(await head());
    await mine(2);
    await mirror.pollOnce();

    const e0 = await mirror.epochAt(before);
    expect(e0).toEqual({ kind: "ok", value: { epoch: epochBefore, members: [], setId: `0x${"0".repeat(64)}` } });
    const e1 = await mirror.epochAt(after);
    if (e1.kind !== "ok") throw new Error(`epochAt: ${e1.reason}`);
    expect(e1.value.epoch).toBe(epochBefore + 1n);
    const expected = consensusOrder(keys.map((k, i) => ({ publicKey: k.publicKey, power: BigInt(2_000 + 1_000 * i) })));
    expect(e1.value.setId).toBe(expected.id);
    expect(e1.value.members.map((m) => m.publicKey)).toEqual(expected.publicKeys);
    expect(e1.value.members.map((m) => m.votingPower)).toEqual([3_000n, 2_000n]);
    expect(e1.value.members.map((m) => m.operator)).toEqual([b.toLowerCase(), a.toLowerCase()]);
    expect(e1.value.members.map((m) => m.peerId)).toEqual([
      peerIdFromBytes(keys[1]?.peerId ?? "0x"),
      peerIdFromBytes(keys[0]?.peerId ?? "0x"),
    ]);
    expect(e1.value.members[0]?.peerId).toMatch(/^12D3KooW/);
    // A block not yet at depth, and a hash that is not the block's: no epoch.
    expect((await mirror.epochAt(await block(await head()))).kind).toBe("unknown");
    expect((await mirror.epochAt({ number: after.number, hash: before.hash })).kind).toBe("invalid");
    // The membership callback saw epoch 1 at the confirmed block, with the candidates' peer ids.
    const last = memberships.at(-1);
    expect(last?.epoch).toBe(epochBefore + 1n);
    expect(new Set(last?.candidatePeerIds)).toEqual(new Set(e1.value.members.map((m) => m.peerId)));
  });

  it("answers for old L1 blocks whose state the endpoint no longer keeps, from the registry's epoch history", async () => {
    // An L1 endpoint that keeps only its newest 8 states, as a full node keeps 128: the epoch at an old block can no
    // longer be read at that block (a subnet restarting after a long halt, a node syncing an old chain).
    const pruned = await startStakingChain({ epochLengthBlocks: 5n }, ["--prune-history", "8"]);
    try {
      const [a, b, c] = pruned.users;
      if (a === undefined || b === undefined || c === undefined) throw new Error("accounts");
      const prunedBlock = async (number: bigint): Promise<L1Ref> => {
        const x = await pruned.publicClient.getBlock({ blockNumber: number });
        if (x.hash === null) throw new Error("pending");
        return { number, hash: x.hash };
      };
      const prunedHead = async () => prunedBlock(await pruned.publicClient.getBlockNumber({ cacheTime: 0 }));
      const mineOn = (n: number) => jsonRpc(pruned.anvil.url, "anvil_mine", [`0x${n.toString(16)}`], 5_000);
      const mirrorOn = async (registry?: Registry) => {
        const m = await L1Mirror.open(
          {
            rpcUrl: pruned.anvil.url,
            pollIntervalMs: 100,
            confirmations: 2,
            registry: pruned.addresses.registry,
            dbPath: null,
          },
          registry === undefined ? {} : { registry },
        );
        mirrors.push(m);
        return m;
      };
      // Each answer read while the endpoint still has the block's state (2 blocks deep, within its 8).
      const early = await mirrorOn();
      const refs: L1Ref[] = [];
      const expected: Awaited<ReturnType<L1Mirror["epochAt"]>>[] = [];
      const snap = async () => {
        const ref = await prunedHead();
        await mineOn(2);
        await early.pollOnce();
        refs.push(ref);
        expected.push(await early.epochAt(ref));
      };
      for (const account of [a, b, c]) await pruned.fundAccount(account, 5_000n * LUMIA);
      await pruned.addSequencer(a, operatorKeys(1), 2_000n * LUMIA);
      await pruned.addSequencer(b, operatorKeys(2), 3_000n * LUMIA);
      await snap(); // epoch 0: no members
      await pruned.advanceEpoch();
      await snap(); // the first block of epoch 1
      await snap(); // inside epoch 1
      await pruned.addSequencer(c, operatorKeys(3), 4_000n * LUMIA);
      await pruned.advanceEpoch();
      await snap(); // epoch 2: three members
      expect(expected.map((e) => (e.kind === "ok" ? [e.value.epoch, e.value.members.length] : e.reason))).toEqual([
        [0n, 0],
        [1n, 2],
        [1n, 2],
        [2n, 3],
      ]);
      expect(early.stats().historyReads).toBe(0);
      const counts = await early.batchesPosted(refs[3] as L1Ref, 1n);
      expect(counts).toEqual({ kind: "ok", value: [0n, 0n] });

      await mineOn(20);
      const first = refs[0] as L1Ref;
      await expect(pruned.registry.read.currentEpoch({ blockHash: first.hash })).rejects.toThrow();
      const registry = new Registry();
      const late = await mirrorOn(registry);
      await late.pollOnce();
      expect(await Promise.all(refs.map((r) => late.epochAt(r)))).toEqual(expected);
      expect(await late.batchesPosted(refs[3] as L1Ref, 1n)).toEqual(counts);
      expect(late.stats().historyReads).toBe(refs.length + 1);
      // A read answered from the history is not an RPC error (no alert, no backoff).
      expect(late.stats().rpcErrors).toBe(0);
      expect(await metric(registry, "dcn_l1_history_reads_total")).toBe(refs.length + 1);
      // A hash that is not the block's is still refused, before any read.
      expect((await late.epochAt({ number: first.number, hash: (refs[1] as L1Ref).hash })).kind).toBe("invalid");
    } finally {
      await pruned.stop();
    }
  });

  it("resumes from its saved block after a restart, without rescanning", async () => {
    const dbPath = join(dir, "l1");
    const first = await open({ dbPath });
    await mine(3);
    await first.pollOnce();
    const saved = first.confirmedHead();
    expect(saved).not.toBeNull();
    await first.stop();
    await mine(3);
    const second = await open({ dbPath });
    // Known before any L1 read: the driver can anchor from the first moment.
    expect(second.confirmedHead()).toEqual(saved);
    await second.pollOnce();
    const h = await head();
    expect(second.confirmedHead()).toEqual(await block(h - 2n));
    // The saved block re-checked, then only the blocks above it: the tip it had saved plus what was mined since.
    expect(second.stats().blocksFetched).toBe(Number(h - (saved?.number ?? 0n)) + 1);
    expect(second.stats().reorgs).toBe(0);
  });

  it("works over WebSocket too", async () => {
    const mirror = await open({ rpcUrl: chain.anvil.url.replace("http://", "ws://") });
    await mine(3);
    await mirror.pollOnce();
    const h = await head();
    expect(mirror.confirmedHead()).toEqual(await block(h - 2n));
    expect(await mirror.checkConfirmed(await block(3n))).toEqual({ kind: "ok", value: true });
    await mirror.stop();
  });

  it("an unreachable L1 gives unknown answers and a status with the reason, never a throw", async () => {
    const mirror = await open({ rpcUrl: "http://127.0.0.1:1", registry: chain.addresses.registry });
    await mirror.pollOnce();
    expect(mirror.status()).toMatchObject({ configured: true, connected: false });
    expect(mirror.status().error).toMatch(/ECONNREFUSED|fetch failed|HTTP request failed/);
    expect(mirror.stats().rpcErrors).toBe(1);
    expect(mirror.nextDelayMs()).toBe(200);
    const ref = await block(1n);
    expect((await mirror.checkConfirmed(ref)).kind).toBe("unknown");
    expect((await mirror.epochAt(ref)).kind).toBe("unknown");

    // Synced, then the L1 goes away: confirmed answers from the map stay, anything needing a read is unknown.
    const dbPath = join(dir, "l1-down");
    const synced = await open({ dbPath });
    await synced.pollOnce();
    const confirmed = synced.confirmedHead();
    if (confirmed === null) throw new Error("no confirmed head");
    await synced.stop();
    const down = await open({ dbPath, rpcUrl: "http://127.0.0.1:1" });
    expect(await down.checkConfirmed(confirmed)).toEqual({ kind: "ok", value: true });
    expect((await down.checkConfirmed(await block(2n))).kind).toBe("unknown");
  });
});
