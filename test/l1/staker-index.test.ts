// The L1 mirror's staking index (src/l1/staker-index.ts) on a real anvil, read through a counting proxy that refuses
// eth_getLogs over more than 100 blocks (as public full-node endpoints do): the mirror's staker reports equal a
// direct read of the contracts (every pool, a scan of all Claimed events), cost no eth_getLogs and a few eth_calls,
// cost nothing a second time at the same block, survive a restart without reading the history again, drop a claim
// that an L1 reorg below the confirmation depth removed, and answer "busy" rather than queue without bound.

import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkReportEntry } from "../../consensus/signing.ts";
import { L1Mirror, stakerReportOf } from "../../src/l1/mirror.ts";
import { readStakerReport, resolveStakingContracts, stakerReportJson } from "../../src/l1/staker.ts";
import type { RpcBackend } from "../../src/rpc/backend.ts";
import { createMethods, DEFAULT_METHOD_LIMITS } from "../../src/rpc/methods.ts";
import { LUMIA, type OperatorKeys, operatorKeys, type StakingChain, startStakingChain } from "../staking/fixture.ts";

interface Call {
  readonly method: string;
  readonly params: unknown[];
}

/** A JSON-RPC proxy to anvil that counts calls, refuses wide eth_getLogs and can hold eth_calls back. */
class CountingProxy {
  readonly calls: Call[] = [];
  holdCalls = false;
  private held: (() => void)[] = [];
  private server: Server | null = null;
  url = "";

  constructor(private readonly upstream: string) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(
        (body) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(body);
        },
        (error: unknown) => {
          res.writeHead(500);
          res.end(String(error));
        },
      );
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  release(): void {
    this.holdCalls = false;
    for (const go of this.held.splice(0)) go();
  }

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }

  async stop(): Promise<void> {
    this.release();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private async handle(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
    const one = async (r: { id: unknown; method: string; params?: unknown[] }) => {
      const params = r.params ?? [];
      this.calls.push({ method: r.method, params });
      if (r.method === "eth_getLogs") {
        const f = params[0] as { fromBlock: Hex; toBlock: Hex };
        if (BigInt(f.toBlock) - BigInt(f.fromBlock) + 1n > 100n) {
          return { jsonrpc: "2.0", id: r.id, error: { code: -32602, message: "block range is limited to 100" } };
        }
      }
      if (r.method === "eth_call" && this.holdCalls) await new Promise<void>((go) => this.held.push(go));
      const res = await fetch(this.upstream, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(r),
      });
      return (await res.json()) as unknown;
    };
    const answer = Array.isArray(body)
      ? await Promise.all(body.map((r) => one(r as Parameters<typeof one>[0])))
      : await one(body as Parameters<typeof one>[0]);
    return JSON.stringify(answer);
  }
}

let chain: StakingChain;
let proxy: CountingProxy;
let dir: string;
let ids: number[];
let delegator: Address;

const openMirror = (dbPath: string | null, logs: string[] = []) =>
  L1Mirror.open(
    { rpcUrl: proxy.url, pollIntervalMs: 60_000, confirmations: 0, registry: chain.addresses.registry, dbPath },
    { log: (level, msg) => logs.push(`${level} ${msg}`) },
  );

/** Polls until the mirror's staking index answers (the polls drive its build). */
async function built(mirror: L1Mirror): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await stakerReportOf(mirror)(delegator, false)).ok) return;
    await new Promise((r) => setTimeout(r, 100));
    await mirror.pollOnce();
  }
  throw new Error("the staking index was not built");
}

/** The report as a node answers it, and the same read directly from the contracts (every pool, every Claimed event). */
async function bothReports(mirror: L1Mirror, who: Address) {
  const viaMirror = await stakerReportOf(mirror)(who, true);
  if (!viaMirror.ok) throw new Error(viaMirror.reason);
  const block = (viaMirror.value as { block: { hash: Hex } }).block;
  const contracts = await resolveStakingContracts(chain.publicClient, chain.addresses.registry, {
    blockHash: block.hash,
  });
  const direct = await readStakerReport(chain.publicClient, contracts, who, { blockHash: block.hash }, true);
  return { viaMirror: viaMirror.value, direct: stakerReportJson(direct) };
}

beforeAll(async () => {
  chain = await startStakingChain({ epochLengthBlocks: 5n });
  proxy = new CountingProxy(chain.anvil.url);
  await proxy.start();
  dir = await mkdtemp(join(tmpdir(), "dcn-staker-index-"));
  ids = [];
  for (const [i, seed] of [1, 2, 3].entries()) {
    const operator = chain.users[i];
    if (operator === undefined) throw new Error("accounts");
    await chain.fundAccount(operator, 10_000n * LUMIA);
    ids.push((await chain.addSequencer(operator, operatorKeys(seed), BigInt(2_000 + 1_000 * i) * LUMIA)).id);
  }
  delegator = chain.users[5] as Address;
  await chain.fundAccount(delegator, 5_000n * LUMIA);
  // The delegator stakes in pools 1 and 3, an epoch's report pays them, it claims from pool 1.
  await chain.mined(chain.staking.write.stake([ids[0] as number, 1_000n * LUMIA], chain.as(delegator)));
  await chain.mined(chain.staking.write.stake([ids[2] as number, 500n * LUMIA], chain.as(delegator)));
  await chain.advanceEpoch();
  await chain.advanceEpoch();
  await chain.mined(chain.token.write.approve([chain.addresses.rewards, 2n ** 255n], chain.gov));
  await chain.mined(chain.rewards.write.fund([50_000n * LUMIA], chain.gov));
  const byKey = new Map<string, OperatorKeys>([1, 2, 3].map((s) => [operatorKeys(s).publicKey, operatorKeys(s)]));
  const setKeys = await chain.keysInSetOrder(1n, byKey);
  const entries: WorkReportEntry[] = setKeys.map(() => ({
    blocksProposed: 10n,
    precommitsSigned: 10n,
    batchesPosted: 0n,
  }));
  await chain.mined(
    chain.rewards.write.submitReport([1n, entries, chain.certify(1n, entries, setKeys, [0, 1, 2])], chain.gov),
  );
  await chain.mined(chain.rewards.write.claim([ids[0] as number], chain.as(delegator)));
  // A history longer than the endpoint's log range.
  await chain.testClient.mine({ blocks: 300 });
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await chain?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe("the staking index", () => {
  it("answers what a direct read answers, with a few eth_calls and no eth_getLogs per report", async () => {
    const mirror = await openMirror(join(dir, "l1"));
    try {
      await mirror.pollOnce();
      const { viaMirror, direct } = await bothReports(mirror, delegator);
      expect(viaMirror).toEqual(direct);
      const report = viaMirror as { positions: { sequencerId: number }[]; claims: unknown[]; totalClaimed: string };
      expect(report.positions.map((p) => p.sequencerId)).toEqual([ids[0], ids[2]]);
      expect(report.claims).toHaveLength(1);
      expect(BigInt(report.totalClaimed)).toBeGreaterThan(0n);
      // An address that never staked: nothing, from the index alone.
      const nobody = await bothReports(mirror, chain.users[6] as Address);
      expect(nobody.viaMirror).toEqual(nobody.direct);

      // The next report of another address: its pools only, no history scan.
      proxy.calls.length = 0;
      const operator = chain.users[1] as Address;
      const r = await stakerReportOf(mirror)(operator, true);
      expect(r.ok).toBe(true);
      expect(proxy.count("eth_getLogs")).toBe(0);
      // getBlock, currentEpoch, commissionOf, and stakeOf/unbondingOf/pendingRewards/operatorOf of its one pool.
      expect(proxy.count("eth_call")).toBe(2 + 4);
      // The same question at the same confirmed block: answered from memory.
      proxy.calls.length = 0;
      expect(await stakerReportOf(mirror)(operator, true)).toEqual(r);
      expect(proxy.calls).toHaveLength(0);
    } finally {
      await mirror.stop();
    }
  });

  it("resumes after a restart without reading the history again", async () => {
    await chain.testClient.mine({ blocks: 5 });
    proxy.calls.length = 0;
    const mirror = await openMirror(join(dir, "l1"));
    try {
      await mirror.pollOnce();
      const { viaMirror, direct } = await bothReports(mirror, delegator);
      expect(viaMirror).toEqual(direct);
      // Only the blocks mined since the last read: one range.
      const ranges = proxy.calls
        .filter((c) => c.method === "eth_getLogs")
        .map((c) => c.params[0] as { fromBlock: Hex; toBlock: Hex });
      expect(ranges.length).toBeGreaterThan(0);
      for (const f of ranges) expect(BigInt(f.toBlock) - BigInt(f.fromBlock)).toBeLessThan(10n);
    } finally {
      await mirror.stop();
    }
  });

  it("drops a claim that an L1 reorg below the confirmation depth removed", async () => {
    const snapshot = await chain.snapshot();
    const second = chain.users[6] as Address;
    await chain.fundAccount(second, 1_000n * LUMIA);
    await chain.mined(chain.staking.write.stake([ids[1] as number, 100n * LUMIA], chain.as(second)));
    const logs: string[] = [];
    const mirror = await openMirror(join(dir, "l1"), logs);
    try {
      await mirror.pollOnce();
      const before = await stakerReportOf(mirror)(second, false);
      expect(before).toMatchObject({ ok: true, value: { positions: [{ sequencerId: ids[1] }] } });
      // The stake is replaced by a longer chain without it.
      await chain.revert(snapshot);
      await chain.testClient.mine({ blocks: 20 });
      await mirror.pollOnce();
      const { viaMirror, direct } = await bothReports(mirror, second);
      expect(viaMirror).toEqual(direct);
      expect((viaMirror as { positions: unknown[] }).positions).toEqual([]);
      const again = await bothReports(mirror, delegator);
      expect(again.viaMirror).toEqual(again.direct);
    } finally {
      await mirror.stop();
    }
    expect(logs).toContain(
      "warn the staking index does not match the L1 chain or contracts any more: building it again",
    );
  });

  it("answers 'being built' while a fresh index is far behind, which the polls then build", async () => {
    await chain.testClient.mine({ blocks: 2_500 });
    const mirror = await openMirror(join(dir, "fresh"));
    try {
      await mirror.pollOnce();
      const early = await stakerReportOf(mirror)(delegator, true);
      expect(early).toMatchObject({ ok: false, reason: expect.stringMatching(/the staking index is being built/) });
      // The poll started the build; once it is done the answer is the direct read's.
      await built(mirror);
      const { viaMirror, direct } = await bothReports(mirror, delegator);
      expect(viaMirror).toEqual(direct);
    } finally {
      await mirror.stop();
    }
  });

  it("answers busy beyond the reads it lets wait, and the others once the L1 answers", async () => {
    const mirror = await openMirror(null);
    try {
      await mirror.pollOnce();
      await built(mirror);
      proxy.holdCalls = true;
      const addresses = Array.from(
        { length: 4 + 64 + 1 },
        (_, i) => `0x${(i + 1).toString(16).padStart(40, "0")}` as Address,
      );
      const pending = addresses.map((a) => stakerReportOf(mirror)(a, false));
      const methods = createMethods(
        { stakerReport: stakerReportOf(mirror) } as unknown as RpcBackend,
        DEFAULT_METHOD_LIMITS,
      );
      const refused = await methods.get("lumia_getStake")?.run(["0x00000000000000000000000000000000000000ff"]);
      expect(refused).toMatchObject({ ok: false, error: { code: -32005, message: expect.stringMatching(/busy/) } });
      proxy.release();
      const answers = await Promise.all(pending);
      expect(answers.filter((a) => a.ok)).toHaveLength(4 + 64);
      expect(answers.at(-1)).toMatchObject({ ok: false, busy: true });
    } finally {
      proxy.release();
      await mirror.stop();
    }
  });
});
