// `dcn devnet` as a developer runs it, real processes on 127.0.0.1: the embedded L1 (anvil) and 3 validators + 1
// replica come up, devnet.json lists the L1, anvil answers, every node reports the L1 connected (in /status,
// lumia_status and metrics), `dcn status` prints the validator table, and SIGINT stops every process, anvil last,
// keeping its state; the next run resumes the L1 and the chain and commits on. With `--l1 URL` the devnet starts no
// anvil; an L1 that does not answer is a clear error.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPublicClient, http } from "viem";
import { afterAll, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { collectStatus, type StatusReport } from "../../src/cli/status.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { type AnvilProcess, freePort, startAnvil } from "../../src/l1/anvil.ts";
import { SequencerRegistry } from "../../staking-contracts/artifacts.ts";

const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");
const dir = mkdtempSync(join(tmpdir(), "dcn-devnet-"));
const started: ChildProcess[] = [];
/** anvil pids from devnet.json: a devnet killed outright (a failed test) would leave its anvil running. */
const anvilPids: number[] = [];
let externalL1: AnvilProcess | null = null;

afterAll(async () => {
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }
  for (const pid of anvilPids) if (alive(pid)) process.kill(pid, "SIGKILL");
  await externalL1?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function dcn(args: string[]) {
  const r = spawnSync(process.execPath, [DCN, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Ports from the pid keep parallel test files (and the e2e clusters at 20000-28000) apart. */
function ports(slot: number) {
  const base = 10_000 + ((process.pid * 13 + slot * 7) % 200) * 20;
  return [
    "--base-port",
    base,
    "--metrics-base-port",
    base + 5,
    "--rpc-base-port",
    base + 10,
    "--l1-port",
    base + 15,
  ].map(String);
}

function runDevnet(args: string[]) {
  const child = spawn(process.execPath, [DCN, "devnet", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  const log = { out: "", err: "" };
  child.stdout?.on("data", (d: Buffer) => {
    log.out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    log.err += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, log, exited };
}

async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(2_000),
  });
  return ((await res.json()) as { result: T }).result;
}

interface DevnetJson {
  l1: { rpc: string; chainId: string; embedded: boolean; pid: number | null; contracts: Record<string, string> } | null;
  nodes: { name: string; role: string; metrics: string; rpc: string; dashboard: string }[];
}

interface Status {
  headHeight: number;
  l1: { configured: boolean; connected: boolean; chainId: number | null; headBlock: number | null };
}

async function statusOf(metrics: string): Promise<Status | null> {
  try {
    return (await (await fetch(`${metrics}/status`, { signal: AbortSignal.timeout(1_000) })).json()) as Status;
  } catch {
    return null;
  }
}

/** The devnet's output and the last lines of each node's log, for failure messages. */
function diagnostics(log: { out: string; err: string }, data: string): string {
  const tails: string[] = [];
  for (const name of ["validator-0", "validator-1", "validator-2", "replica-0"]) {
    const file = join(data, name, "node.log");
    if (!existsSync(file)) continue;
    const lines = readFileSync(file, "utf8").trimEnd().split("\n").slice(-8);
    tails.push(`--- ${name}\n${lines.join("\n")}`);
  }
  return `${log.out}\n${log.err}\n${tails.join("\n")}`;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, log: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}\n${log()}`);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("dcn devnet with the embedded L1", () => {
  it("starts anvil and the nodes, which see the L1; dcn status shows the table; SIGINT leaves no process", async () => {
    const data = join(dir, "embedded");
    const d = runDevnet(["--validators", "3", "--replicas", "1", "--data-dir", data, ...ports(0)]);
    const devnetPath = join(data, "devnet.json");
    const show = () => diagnostics(d.log, data);
    await waitUntil("devnet.json", async () => existsSync(devnetPath) && d.log.out.includes("wrote"), 30_000, show);
    const devnet = JSON.parse(readFileSync(devnetPath, "utf8")) as DevnetJson;
    if (typeof devnet.l1?.pid === "number") anvilPids.push(devnet.l1.pid);
    expect(devnet.l1).toMatchObject({ chainId: "31337", embedded: true });
    const l1 = devnet.l1?.rpc ?? "";
    // The staking contracts are deployed, and the registry's epoch 1 is the genesis set (same id).
    const contracts = devnet.l1?.contracts ?? {};
    expect(Object.keys(contracts).sort()).toEqual([
      "batchInbox",
      "outputOracle",
      "portal",
      "registry",
      "rewards",
      "slashing",
      "staking",
      "token",
    ]);
    for (const address of Object.values(contracts)) expect(address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    const registryAddress = contracts.registry as `0x${string}`;
    const l1Client = createPublicClient({ transport: http(l1) });
    const read = <T>(functionName: string, args: unknown[] = []) =>
      l1Client.readContract({
        address: registryAddress,
        abi: SequencerRegistry.abi,
        functionName: functionName as never,
        args: args as never,
      }) as Promise<T>;
    expect(await read<bigint>("currentEpoch")).toBe(1n);
    const genesis = await loadGenesis(join(data, "genesis.json"));
    const [keys, powers, setId] = await read<[string[], bigint[], string]>("validatorSet", [1n]);
    expect(setId.toLowerCase()).toBe(genesis.validatorSet.id);
    expect(keys.map((k) => k.toLowerCase())).toEqual(genesis.validatorSet.validators.map((v) => toHex(v.publicKey)));
    expect(powers).toEqual([100n, 100n, 100n]);
    // The genesis anchors the subnet to this registry: its set follows the registry's epochs from there on.
    expect(genesis.l1?.registry.toLowerCase()).toBe(registryAddress.toLowerCase());
    expect(genesis.l1?.chainId).toBe(31_337n);
    // ... and names the hard-finality contracts the devnet deployed.
    expect(genesis.l1?.finality?.portal.toLowerCase()).toBe(contracts.portal?.toLowerCase());
    expect(genesis.l1?.finality?.batchInbox.toLowerCase()).toBe(contracts.batchInbox?.toLowerCase());
    expect(genesis.l1?.finality?.outputOracle.toLowerCase()).toBe(contracts.outputOracle?.toLowerCase());
    const config = JSON.parse(readFileSync(join(data, "validator-0", "config.json"), "utf8")) as {
      l1: { registry: string; confirmations: number };
    };
    expect(config.l1).toMatchObject({ registry: registryAddress, confirmations: 2 });
    expect(l1).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await rpc<string>(l1, "eth_chainId")).toBe("0x7a69");
    expect(await rpc<string>(l1, "eth_blockNumber")).toMatch(/^0x[0-9a-f]+$/);
    expect(d.log.out).toContain(`L1 (anvil)   pid ${devnet.l1?.pid}  ${l1}  chain id 31337`);
    expect(devnet.nodes.map((n) => n.role)).toEqual(["validator", "validator", "validator", "replica"]);

    // Every node commits and reports the L1 connected.
    await waitUntil(
      "4 nodes at height >= 3 with l1.connected",
      async () => {
        const all = await Promise.all(devnet.nodes.map((n) => statusOf(n.metrics)));
        return all.every((s) => s !== null && s.headHeight >= 3 && s.l1.connected && s.l1.chainId === 31337);
      },
      60_000,
      show,
    );
    const v0 = devnet.nodes[0];
    if (v0 === undefined) throw new Error("no node");
    // The nodes' L1 mirrors read the registry at confirmed blocks: epoch 1, two blocks below the head.
    await waitUntil(
      "validator-0's mirror at registry epoch 1 or later",
      async () => {
        const l1Status = (await statusOf(v0.metrics))?.l1 as { epoch?: number | null; confirmedBlock?: number | null };
        return (l1Status?.epoch ?? 0) >= 1 && typeof l1Status.confirmedBlock === "number";
      },
      20_000,
      show,
    );
    // The devnet advances the registry's epoch when due (every 20 L1 blocks); the subnet takes the new epoch's set
    // (the same members here) two heights after a block anchored in it, and keeps committing through the change.
    await waitUntil(
      "validator-0's mirror at registry epoch 2",
      async () => ((await statusOf(v0.metrics))?.l1 as { epoch?: number | null })?.epoch === 2 || false,
      45_000,
      show,
    );
    const atEpoch2 = (await statusOf(v0.metrics))?.headHeight ?? 0;
    await waitUntil(
      "every node 10 heights past the epoch change",
      async () => {
        const all = await Promise.all(devnet.nodes.map((n) => statusOf(n.metrics)));
        return all.every((s) => s !== null && s.headHeight >= atEpoch2 + 10);
      },
      30_000,
      show,
    );
    const viaRpc = await rpc<Status>(v0.rpc, "lumia_status");
    expect(viaRpc.l1).toMatchObject({ configured: true, connected: true, chainId: 31337 });
    expect(JSON.stringify(viaRpc)).not.toContain(l1); // the L1 URL may hold an API key: never shown
    const metrics = await (await fetch(`${v0.metrics}/metrics`)).text();
    expect(metrics).toMatch(/^dcn_l1_head_block \d+$/m);
    expect(metrics).toMatch(/^dcn_l1_connected 1$/m);
    expect(metrics).toMatch(/^dcn_l1_rpc_errors_total \d+$/m);

    // dcn status: a table row per validator with its power, the replica after them; JSON for machines.
    const table = dcn(["status", "--devnet", data]);
    expect(table.code, table.out + table.err).toBe(0);
    expect(table.out).toMatch(
      /^node\s+role\s+address\s+power\s+share\s+height\s+round\s+last proposer\s+peers\s+lag\s+signed\s+clock\s+state$/m,
    );
    for (const name of ["validator-0", "validator-1", "validator-2"]) {
      expect(table.out).toMatch(
        new RegExp(`^${name}\\s+validator\\s+0x[0-9a-f]{6}…[0-9a-f]{4}\\s+100\\s+33\\.3%`, "m"),
      );
    }
    expect(table.out).toMatch(/^replica-0\s+replica/m);
    const report = await collectStatus({ devnet: devnetPath, urls: [], json: true });
    if (typeof report === "string") throw new Error(report);
    expect(report.chainId).toBe("994873017");
    expect(report.validatorSet).toMatchObject({ size: 3, totalVotingPower: "300" });
    expect(report.rows).toHaveLength(4);
    for (const row of report.rows) {
      expect(row.state).toBe("ok");
      expect(row.lag).toBeGreaterThanOrEqual(0);
      expect(row.peers).toBe(3);
      expect(row.lastProposer).toMatch(/^validator-[0-2]$/);
      // One machine, one clock: the proposals put every node within build-and-trip time of the others.
      if (row.role === "validator") expect(row.clockOffsetMs, row.name).not.toBeNull();
      expect(Math.abs(row.clockOffsetMs ?? 0), row.name).toBeLessThan(1_000);
    }
    const byRpc = dcn(["status", "--rpc", v0.rpc, "--json"]);
    expect(byRpc.code, byRpc.err).toBe(0);
    const oneNode = JSON.parse(byRpc.out) as StatusReport;
    expect(oneNode.rows.filter((r) => r.votingPower === "100")).toHaveLength(3);
    expect(oneNode.rows.filter((r) => r.state === "ok")).toHaveLength(1); // only the node asked has a height

    // SIGINT: nodes, then anvil; no process left; anvil's state saved for the next run.
    const heightsAtStop = await Promise.all(
      devnet.nodes.map(async (n) => (await statusOf(n.metrics))?.headHeight ?? 0),
    );
    const pids = [...d.log.out.matchAll(/ pid (\d+) /g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(5);
    expect(pids).toContain(devnet.l1?.pid);
    const stoppingAt = Date.now();
    d.child.kill("SIGINT");
    expect(await d.exited).toBe(0);
    // A clean stop is not a fault: no node logs a warning or an error while it stops (an L1 transaction or a batcher
    // pass cut short is expected then).
    for (const n of devnet.nodes) {
      const lines = readFileSync(join(data, n.name, "node.log"), "utf8")
        .trimEnd()
        .split("\n");
      const stopping = lines.filter((l) => Date.parse((JSON.parse(l) as { time: string }).time) >= stoppingAt);
      expect(stopping.length, n.name).toBeGreaterThan(0);
      expect(
        stopping.filter((l) => /"level":"(warn|error|fatal)"/.test(l)),
        n.name,
      ).toEqual([]);
    }
    expect(d.log.out).toContain("all nodes stopped");
    expect(d.log.out.indexOf("all nodes stopped")).toBeLessThan(d.log.out.indexOf("L1 (anvil) stopped"));
    for (const pid of pids) expect(alive(pid), `process ${pid} outlived the devnet`).toBe(false);
    expect(existsSync(join(data, "l1", "state.json"))).toBe(true);
    expect(existsSync(join(data, "l1", "anvil.pid"))).toBe(false);

    // The next run resumes: anvil from its saved state (which has no state of older blocks, as an L1 full node keeps
    // only its newest), the nodes from their stores. The registry epochs of the last blocks' L1 origins are read from
    // the registry's epoch history, and the subnet commits on from where it stopped.
    const again = runDevnet(["--validators", "3", "--replicas", "1", "--data-dir", data, ...ports(0)]);
    const showAgain = () => diagnostics(again.log, data);
    await waitUntil("the devnet again", async () => again.log.out.includes("wrote"), 30_000, showAgain);
    expect(again.log.out).toContain("(resumed)");
    const resumed = JSON.parse(readFileSync(devnetPath, "utf8")) as DevnetJson;
    if (typeof resumed.l1?.pid === "number") anvilPids.push(resumed.l1.pid);
    const target = Math.max(...heightsAtStop) + 5;
    await waitUntil(
      `every node at height ${target} after the restart`,
      async () => {
        const all = await Promise.all(resumed.nodes.map((n) => statusOf(n.metrics)));
        return all.every((s) => s !== null && s.headHeight >= target);
      },
      45_000,
      showAgain,
    );
    again.child.kill("SIGINT");
    expect(await again.exited).toBe(0);
  }, 180_000);
});

describe("dcn devnet with an external L1", () => {
  it("uses the given URL and starts no anvil; an L1 that does not answer stops it with the fix", async () => {
    const closed = await freePort();
    const refused = dcn(
      ["devnet", "--validators", "1", "--replicas", "0", "--data-dir", join(dir, "x"), "--l1"].concat([
        `http://127.0.0.1:${closed}`,
        ...ports(1),
      ]),
    );
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/the L1 at http:\/\/127\.0\.0\.1:\d+ does not answer eth_chainId .*omit --l1/);
    expect(refused.out).not.toMatch(/ pid \d+/); // nothing was started

    externalL1 = await startAnvil({ port: 0, chainId: 900n, blockTimeS: 1, args: ["--silent"] });
    const data = join(dir, "external");
    const d = runDevnet([
      "--validators",
      "1",
      "--replicas",
      "0",
      "--data-dir",
      data,
      "--l1",
      externalL1.url,
      ...ports(1),
    ]);
    const show = () => `${d.log.out}\n${d.log.err}`;
    const devnetPath = join(data, "devnet.json");
    await waitUntil("devnet.json", async () => existsSync(devnetPath) && d.log.out.includes("wrote"), 30_000, show);
    const devnet = JSON.parse(readFileSync(devnetPath, "utf8")) as DevnetJson;
    expect(devnet.l1).toEqual({ rpc: externalL1.url, chainId: "900", embedded: false, pid: null, contracts: {} });
    expect(d.log.out).toContain(`external  ${externalL1.url}  chain id 900`);
    expect(d.log.out).not.toContain("anvil");
    const node = devnet.nodes[0];
    if (node === undefined) throw new Error("no node");
    await waitUntil(
      "the node sees the external L1",
      async () => (await statusOf(node.metrics))?.l1.chainId === 900,
      45_000,
      show,
    );
    d.child.kill("SIGINT");
    expect(await d.exited).toBe(0);
    expect(alive(externalL1.pid)).toBe(true); // not the devnet's to stop
  }, 90_000);
});
