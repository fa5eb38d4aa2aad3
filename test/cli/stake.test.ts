// The staker commands against the staking contracts on a real anvil (deployed by src/l1/deploy.ts through the staking
// fixture; no L2 node): delegate (with its token approval), epochs advance, a certified work report pays rewards,
// `dcn rewards` shows them, claim pays exactly the pending amount and shows up per epoch, a second claim and an early
// withdrawal are refused with the contract's own error, unbond max; keys from a file or DCN_L1_KEY only. One command
// runs as a process through bin/dcn.mjs with --devnet. lumia_getStake/getRewards' reader (the mirror) agrees.
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Address, createPublicClient, custom, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkReportEntry } from "../../consensus/signing.ts";
import { L1_KEY_ENV, rewardsCommand, StakeCliError, stakerTxCommand } from "../../src/cli/stake.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { L1Mirror, stakerReportOf } from "../../src/l1/mirror.ts";
import { readStakerReport, resolveStakingContracts } from "../../src/l1/staker.ts";
import type { RpcBackend } from "../../src/rpc/backend.ts";
import { createMethods, DEFAULT_METHOD_LIMITS } from "../../src/rpc/methods.ts";
import { startRpcServer } from "../../src/rpc/server.ts";
import { LUMIA, type OperatorKeys, operatorKeys, type StakingChain, startStakingChain } from "../staking/fixture.ts";

const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");
let chain: StakingChain;
let dir: string;
let keyFile: string;
let key: Hex;
let delegator: Address;
let ids: number[];
let target: { l1: string; registry: string };

async function run(action: Parameters<typeof stakerTxCommand>[0], o: Parameters<typeof stakerTxCommand>[1]) {
  const lines: string[] = [];
  const code = await stakerTxCommand(action, { ...target, ...o }, (l) => lines.push(l));
  return { code, out: lines.join("\n") };
}

async function rewardsJson() {
  const lines: string[] = [];
  expect(await rewardsCommand({ ...target, address: delegator, json: true }, (l) => lines.push(l))).toBe(0);
  return JSON.parse(lines.join("\n")) as {
    positions: { sequencerId: number; stake: string; unbonding: string; pending: string }[];
    claims: { sequencerId: number; amount: string; epoch: string }[];
    claimedByEpoch: { epoch: string; amount: string }[];
    totalClaimed: string;
    totalPending: string;
  };
}

async function refusal(promise: Promise<unknown>): Promise<StakeCliError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof StakeCliError) return error;
    throw error;
  }
  throw new Error("expected a StakeCliError");
}

beforeAll(async () => {
  chain = await startStakingChain({ epochLengthBlocks: 5n });
  dir = await mkdtemp(join(tmpdir(), "dcn-stake-"));
  key = generatePrivateKey();
  delegator = privateKeyToAccount(key).address;
  keyFile = join(dir, "l1.key");
  await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
  await jsonRpc(chain.anvil.url, "anvil_setBalance", [delegator, `0x${(10n ** 20n).toString(16)}`], 5_000);
  await chain.mined(chain.token.write.transfer([delegator, 5_000n * LUMIA], chain.gov));
  ids = [];
  for (const [i, seed] of [1, 2].entries()) {
    const operator = chain.users[i];
    if (operator === undefined) throw new Error("accounts");
    await chain.fundAccount(operator, 10_000n * LUMIA);
    ids.push((await chain.addSequencer(operator, operatorKeys(seed), BigInt(2_000 + 1_000 * i) * LUMIA)).id);
  }
  target = { l1: chain.anvil.url, registry: chain.addresses.registry };
});
afterAll(async () => {
  await chain?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("staker commands", () => {
  it("refuse to run without a key, with a bad key, or without an L1 target", async () => {
    expect((await refusal(run("delegate", { sequencer: 1, amount: "1", env: {} }))).message).toMatch(
      /no L1 key: pass --key-file FILE .* or set DCN_L1_KEY/,
    );
    expect((await refusal(run("delegate", { sequencer: 1, amount: "1", env: { [L1_KEY_ENV]: "0x12" } }))).code).toBe(
      "key",
    );
    const noTarget = await refusal(stakerTxCommand("claim", { keyFile }, () => {}));
    expect(noTarget.message).toMatch(/no L1: pass --l1 URL, or --devnet DIR/);
    expect((await refusal(run("delegate", { keyFile, sequencer: 1, amount: "1.2.3" }))).code).toBe("usage");
    // The delegator operates no sequencer: stake without --sequencer says what to do instead.
    expect((await refusal(run("stake", { keyFile, amount: "1" }))).message).toMatch(/operates no sequencer/);
  });

  it("delegate, epochs, a paid report, rewards, claim (exactly the pending amount), a refused second claim", async () => {
    const [id1, id2] = ids;
    if (id1 === undefined || id2 === undefined) throw new Error("ids");
    const delegated = await run("delegate", { keyFile, sequencer: id1, amount: "1000" });
    expect(delegated.out).toMatch(/approve 1000 LUMIA for Staking: tx 0x[0-9a-f]{64}/);
    expect(delegated.out).toMatch(/delegate 1000 LUMIA in sequencer 1: tx 0x[0-9a-f]{64} in L1 block \d+/);
    expect(await chain.staking.read.stakeOf([id1, delegator])).toBe(1_000n * LUMIA);

    await chain.advanceEpoch(); // epoch 1: the delegation is in the snapshot
    await chain.advanceEpoch(); // epoch 1 is over
    await chain.mined(chain.token.write.approve([chain.addresses.rewards, 2n ** 255n], chain.gov));
    await chain.mined(chain.rewards.write.fund([50_000n * LUMIA], chain.gov));
    const byKey = new Map<string, OperatorKeys>([1, 2].map((s) => [operatorKeys(s).publicKey, operatorKeys(s)]));
    const setKeys = await chain.keysInSetOrder(1n, byKey);
    const entries: WorkReportEntry[] = setKeys.map(() => ({
      blocksProposed: 10n,
      precommitsSigned: 10n,
      batchesPosted: 0n,
    }));
    const cert = chain.certify(1n, entries, setKeys, [0, 1]);
    await chain.mined(chain.rewards.write.submitReport([1n, entries, cert], chain.gov));

    const pending = await chain.rewards.read.pendingRewards([id1, delegator]);
    expect(pending).toBeGreaterThan(0n);
    const before = await rewardsJson();
    expect(before.positions).toEqual([
      {
        sequencerId: id1,
        operator: expect.any(String),
        stake: (1_000n * LUMIA).toString(),
        unbonding: "0",
        pending: pending.toString(),
      },
    ]);
    expect(before.totalClaimed).toBe("0");

    // Claim with the key in the environment: every pool with rewards (here one).
    const balance = await chain.token.read.balanceOf([delegator]);
    const claimed = await run("claim", { env: { [L1_KEY_ENV]: key } });
    expect(claimed.out).toMatch(new RegExp(`claim [0-9.]+ LUMIA from sequencer ${id1}: tx`));
    expect((await chain.token.read.balanceOf([delegator])) - balance).toBe(pending);
    const after = await rewardsJson();
    expect(after.totalPending).toBe("0");
    expect(after.totalClaimed).toBe(pending.toString());
    const epoch = (await chain.registry.read.currentEpoch()).toString();
    expect(after.claims).toEqual([
      { sequencerId: id1, amount: pending.toString(), blockNumber: expect.any(String), epoch },
    ]);
    expect(after.claimedByEpoch).toEqual([{ epoch, amount: pending.toString() }]);

    const again = await refusal(run("claim", { keyFile, sequencer: id1 }));
    expect(again.code).toBe("refused");
    expect(again.message).toMatch(
      /claim .* refused by the contract: NothingToClaim\(.*\): there are no rewards to claim/,
    );

    // lumia_getStake / lumia_getRewards answer from the mirror's confirmed block with the same numbers.
    const mirror = await L1Mirror.open({
      rpcUrl: chain.anvil.url,
      pollIntervalMs: 100,
      confirmations: 0,
      registry: chain.addresses.registry,
      dbPath: null,
    });
    try {
      expect(await stakerReportOf(mirror)(delegator, true)).toMatchObject({ ok: false });
      await mirror.pollOnce();
      const viaMirror = await stakerReportOf(mirror)(delegator, true);
      if (!viaMirror.ok) throw new Error(viaMirror.reason);
      expect(viaMirror.value).toMatchObject({
        totalStake: (1_000n * LUMIA).toString(),
        totalClaimed: pending.toString(),
      });
      // Through the JSON-RPC methods, as a node serves them.
      const methods = createMethods(
        { stakerReport: stakerReportOf(mirror) } as unknown as RpcBackend,
        DEFAULT_METHOD_LIMITS,
      );
      const stake = await methods.get("lumia_getStake")?.run([delegator]);
      expect(stake).toMatchObject({ ok: true, result: { totalStake: (1_000n * LUMIA).toString(), claims: null } });
      const rewards = await methods.get("lumia_getRewards")?.run([delegator]);
      expect(rewards).toMatchObject({ ok: true, result: { totalClaimed: pending.toString() } });
      // dcn rewards --node: the same report from a node's JSON-RPC (its staking index) as from the L1 directly.
      const server = await startRpcServer({ host: "127.0.0.1", port: 0 }, {
        stakerReport: stakerReportOf(mirror),
      } as unknown as RpcBackend);
      try {
        const lines: string[] = [];
        expect(await rewardsCommand({ address: delegator, node: server.url, json: true }, (l) => lines.push(l))).toBe(
          0,
        );
        expect(JSON.parse(lines.join("\n"))).toEqual(await rewardsJson());
        const text: string[] = [];
        expect(await rewardsCommand({ address: delegator, node: server.url }, (l) => text.push(l))).toBe(0);
        expect(text.join("\n")).toMatch(/claimed in all: [0-9.]+ LUMIA/);
      } finally {
        await server.close();
      }
      const noMirror = await startRpcServer({ host: "127.0.0.1", port: 0 }, {} as unknown as RpcBackend);
      try {
        const refused = await refusal(rewardsCommand({ address: delegator, node: noMirror.url }, () => {}));
        expect(refused.message).toMatch(/answered -32000: this node has no L1 mirror/);
      } finally {
        await noMirror.close();
      }
      const without = createMethods({} as unknown as RpcBackend, DEFAULT_METHOD_LIMITS);
      expect(await without.get("lumia_getStake")?.run([delegator])).toMatchObject({
        ok: false,
        error: { code: -32000, message: expect.stringMatching(/no L1 mirror/) },
      });
    } finally {
      await mirror.stop();
    }
  });

  it("unbond max moves the stake to unbonding; an early withdraw is refused with the contract's error", async () => {
    const id1 = ids[0] ?? 1;
    const stake = await chain.staking.read.stakeOf([id1, delegator]);
    expect(stake).toBeGreaterThan(0n);
    expect((await run("unbond", { keyFile, sequencer: id1, amount: "max" })).out).toMatch(/unbond all from sequencer/);
    expect(await chain.staking.read.stakeOf([id1, delegator])).toBe(0n);
    expect(await chain.staking.read.unbondingOf([id1, delegator])).toBe(stake);
    const early = await refusal(run("withdraw", { keyFile, sequencer: id1 }));
    expect(early.message).toMatch(/refused by the contract: (UnbondingNotMature|NothingToWithdraw)\(/);
    const report = await rewardsJson();
    expect(report.positions.find((p) => p.sequencerId === id1)?.unbonding).toBe(stake.toString());
  });

  it("runs as a process: dcn rewards --devnet DIR --json reads devnet.json for the L1 and the registry", async () => {
    await writeFile(
      join(dir, "devnet.json"),
      JSON.stringify({ l1: { rpc: chain.anvil.url, contracts: { registry: chain.addresses.registry } } }),
    );
    const r = spawnSync(process.execPath, [DCN, "rewards", "--devnet", dir, "--address", delegator, "--json"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { address: string; positions: unknown[] };
    expect(json.address).toBe(delegator);
    expect(json.positions).toHaveLength(1);
    const bad = spawnSync(process.execPath, [DCN, "claim", "--devnet", dir], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, [L1_KEY_ENV]: "" },
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/dcn: no L1 key/);
  });

  it("reads claims through an endpoint like a public full node: eth_getLogs over 100 blocks at most, no old state", async () => {
    await chain.testClient.mine({ blocks: 600 });
    const head = await chain.publicClient.getBlockNumber();
    const contracts = await resolveStakingContracts(chain.publicClient, chain.addresses.registry, {
      blockNumber: head,
    });
    // The whole history in one read, from an endpoint without limits: the reference.
    const reference = await readStakerReport(chain.publicClient, contracts, delegator, { blockNumber: head }, true);
    expect(reference.claims).toHaveLength(1);

    const logRanges: bigint[] = [];
    const refused: string[] = [];
    const limited = createPublicClient({
      transport: custom({
        async request({ method, params }: { method: string; params?: unknown }) {
          const args = (params ?? []) as unknown[];
          if (method === "eth_getLogs") {
            const f = args[0] as { fromBlock: Hex; toBlock: Hex };
            const span = BigInt(f.toBlock) - BigInt(f.fromBlock) + 1n;
            logRanges.push(span);
            if (span > 100n) {
              refused.push(method);
              // What such endpoints answer: a JSON-RPC error, not a failed transport.
              throw Object.assign(new Error("eth_getLogs is limited to a 100 block range"), { code: -32602 });
            }
          }
          if (method === "eth_call") {
            const at = args[1] as Hex | { blockHash: Hex } | undefined;
            const n =
              at === undefined || typeof at === "string"
                ? at === undefined || !at.startsWith("0x")
                  ? head
                  : BigInt(at)
                : (await chain.publicClient.getBlock({ blockHash: at.blockHash })).number;
            if (head - n > 128n) {
              refused.push(method);
              throw Object.assign(new Error(`missing trie node (state of block ${n} is not available)`), {
                code: -32000,
              });
            }
          }
          return jsonRpc(chain.anvil.url, method, args, 10_000);
        },
      }),
    });
    const report = await readStakerReport(limited, contracts, delegator, { blockNumber: head }, true);
    expect(report.claims).toEqual(reference.claims);
    expect(report.totalClaimed).toBe(reference.totalClaimed);
    expect(report.claimedByEpoch).toEqual(reference.claimedByEpoch);
    // The whole history was refused, then read in halves of halves; no state of an old block was asked for.
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused.every((m) => m === "eth_getLogs")).toBe(true);
    const answered = logRanges.filter((span) => span <= 100n);
    expect(answered.length).toBeGreaterThanOrEqual(6);
    expect(answered.reduce((a, b) => a + b, 0n)).toBe(
      head - (await chain.registry.read.epochInfo([0n])).startBlock + 1n,
    );
  });
});
