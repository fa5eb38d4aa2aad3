// Hard finality on a real devnet (anvil + 4 validator processes, docs/hard-finality.md):
// - the validators post batches to the BatchInbox and outputs to the OutputOracle; the first output's certificate,
//   rebuilt from its proposeOutput transaction, verifies against the registry epoch's set, and its block hash is the
//   chain's; the RPC's `finalized` tag moves to the output once the output's L1 block is finalized (anvil_mine);
// - then every validator is SIGKILLed (anvil keeps running), and a fresh replica with no peers at all and
//   l1.deriveFromL1 rebuilds the chain from L1 alone up to the last posted height B: every block up to B, its state
//   root and its certificate equal the ones in a killed validator's data dir, and an L2 transfer made before is there.
// The devnet posts with l1.batchTransport "auto" on anvil (Prague, blob base fee 1 wei), so batches go as EIP-4844
// blobs: the replica reads them from anvil's Beacon API route (l1.beaconUrl) and derives at least one blob batch.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  decodeFunctionData,
  defineChain,
  type Hex,
  http,
  keccak256,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../consensus/bytes.ts";
import { type Certificate, encodeCertificate, verifyCertificate } from "../../consensus/certificate.ts";
import { decode } from "../../consensus/codec.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { blockHash, decodeBlock, headerSchema } from "../../src/chain/block.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { blstScheme } from "../../src/crypto/blst.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";
import { BatchInbox, OutputOracle, SequencerRegistry } from "../../staking-contracts/artifacts.ts";

const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");
const dir = mkdtempSync(join(tmpdir(), "dcn-devnet-derive-"));
const started: ChildProcess[] = [];
const killPids: number[] = [];

afterAll(async () => {
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }
  for (const pid of killPids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Ports 14000-15800 (test/cli/devnet-fixture.ts lists every range). */
function ports() {
  const base = 14_000 + (process.pid % 90) * 20;
  return {
    base,
    args: [
      "--base-port",
      base,
      "--metrics-base-port",
      base + 5,
      "--rpc-base-port",
      base + 10,
      "--l1-port",
      base + 15,
    ].map(String),
  };
}

async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(5_000),
  });
  const body = (await res.json()) as { result?: T; error?: { message: string } };
  if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, log: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}\n${log()}`);
}

interface DevnetJson {
  chainId: string;
  l1: { rpc: string; pid: number | null; contracts: Record<string, Address> };
  funded: { address: Hex; privateKey: Hex }[];
  nodes: { name: string; metrics: string; rpc: string }[];
}

/** The highest height posted contiguously from 1 (BatchSubmitted events up to `toBlock`). */
function postedHeight(events: readonly { firstHeight: bigint; lastHeight: bigint }[]): number {
  const ranges = events.map((e) => [Number(e.firstHeight), Number(e.lastHeight)] as const).sort((a, b) => a[0] - b[0]);
  let posted = 0;
  for (const [first, last] of ranges) if (first <= posted + 1 && last > posted) posted = last;
  return posted;
}

describe("hard finality on the devnet", () => {
  it("posts batches and certified outputs, moves `finalized`, and a peerless replica rebuilds the chain from L1", async () => {
    const data = join(dir, "devnet");
    const { base, args } = ports();
    const devnet = spawn(
      process.execPath,
      [DCN, "devnet", "--validators", "4", "--replicas", "0", "--blob-batches", "--data-dir", data, ...args],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    started.push(devnet);
    let out = "";
    devnet.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    devnet.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const replicaDir = join(dir, "replica");
    const show = () => {
      const files = [0, 1, 2, 3].map((i) => join(data, `validator-${i}`, "node.log"));
      files.push(join(replicaDir, "node.log"));
      const tails = files.map((file) => {
        if (!existsSync(file)) return "";
        const lines = readFileSync(file, "utf8").trimEnd().split("\n");
        return `--- ${file}\n${lines
          .filter((l) => l.includes('"finality"') || l.includes('"warn"') || l.includes('"error"'))
          .slice(-10)
          .join("\n")}`;
      });
      return `${out.slice(-3000)}\n${tails.join("\n")}`;
    };
    const devnetPath = join(data, "devnet.json");
    await waitUntil("devnet.json", async () => existsSync(devnetPath) && out.includes("wrote"), 90_000, show);
    const info = JSON.parse(readFileSync(devnetPath, "utf8")) as DevnetJson;
    if (typeof info.l1.pid === "number") killPids.push(info.l1.pid);
    const validatorPids = [...out.matchAll(/validator-\d+\s+pid (\d+)/g)].map((m) => Number(m[1]));
    expect(validatorPids).toHaveLength(4);
    killPids.push(...validatorPids);
    const l1Url = info.l1.rpc;
    const { batchInbox, outputOracle, registry } = info.l1.contracts;
    if (batchInbox === undefined || outputOracle === undefined || registry === undefined) {
      throw new Error("devnet.json lacks the finality contracts");
    }
    const l1 = createPublicClient({ transport: http(l1Url) });
    const [v0] = info.nodes;
    if (v0 === undefined) throw new Error("no node");
    const heightOf = async (url: string) => Number(BigInt(await rpc<Hex>(url, "eth_blockNumber")));
    await waitUntil("height 3", async () => (await heightOf(v0.rpc)) >= 3, 60_000, show);

    // ---- An L2 transfer, so that derivation re-executes a block that changes state.
    const chainId = BigInt(info.chainId);
    const l2 = defineChain({
      id: Number(chainId),
      name: "l2",
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [v0.rpc] } },
    });
    const funded = info.funded[0];
    if (funded === undefined) throw new Error("no funded account");
    const recipient: Address = "0x00000000000000000000000000000000000d371e";
    const amount = 123_456_789n;
    const wallet = createWalletClient({
      account: privateKeyToAccount(funded.privateKey),
      chain: l2,
      transport: http(v0.rpc),
    });
    const l2Client = createPublicClient({ chain: l2, transport: http(v0.rpc) });
    const txHash = await wallet.sendTransaction({ to: recipient, value: amount });
    const receipt = await l2Client.waitForTransactionReceipt({ hash: txHash, pollingInterval: 250, timeout: 30_000 });
    const txHeight = Number(receipt.blockNumber);

    // ---- Batches (calldata or blobs) and at least one output land on L1.
    const batchLogs = async () =>
      (await l1.getContractEvents({ address: batchInbox, abi: BatchInbox.abi, fromBlock: 0n })).filter(
        (e) => e.eventName === "BatchSubmitted" || e.eventName === "BlobBatchSubmitted",
      );
    const batchEvents = async () =>
      (await batchLogs()).map((e) => e.args as { firstHeight: bigint; lastHeight: bigint });
    const outputCount = () =>
      l1.readContract({ address: outputOracle, abi: OutputOracle.abi, functionName: "outputCount" }) as Promise<bigint>;
    // validator-0 posts blobs (--blob-batches) once its KZG setup is loaded and its turn comes; the others calldata.
    await waitUntil(
      "batches past the transfer, one of them blobs, and an output on L1",
      async () =>
        postedHeight(await batchEvents()) > txHeight &&
        (await batchLogs()).some((e) => e.eventName === "BlobBatchSubmitted") &&
        (await outputCount()) >= 1n,
      150_000,
      show,
    );
    // Exactly once in the normal case: no height is in two batches.
    const logs = await batchLogs();
    const blobBatches = logs.filter((e) => e.eventName === "BlobBatchSubmitted").length;
    expect(blobBatches, "validator-0 on auto posts blobs to anvil Prague").toBeGreaterThan(0);
    const events = logs.map((e) => e.args as { firstHeight: bigint; lastHeight: bigint });
    const sorted = [...events].sort((a, b) => Number(a.firstHeight - b.firstHeight));
    for (let i = 1; i < sorted.length; i++) {
      expect(Number(sorted[i]?.firstHeight), "batches overlap").toBe(Number(sorted[i - 1]?.lastHeight) + 1);
    }

    // ---- The first output's certificate verifies against the registry epoch's set; its block is the chain's.
    const output = (await l1.readContract({
      address: outputOracle,
      abi: OutputOracle.abi,
      functionName: "outputAt",
      args: [0n],
    })) as { height: bigint; blockHash: Hex; epoch: bigint; l1BlockNumber: bigint };
    const outputHeight = Number(output.height);
    const chainBlock = await rpc<{ hash: Hex }>(v0.rpc, "eth_getBlockByNumber", [
      `0x${outputHeight.toString(16)}`,
      false,
    ]);
    expect(chainBlock.hash).toBe(output.blockHash);
    const l1Block = await l1.getBlock({ blockNumber: output.l1BlockNumber, includeTransactions: true });
    const proposal = l1Block.transactions.find((t) => t.to?.toLowerCase() === outputOracle.toLowerCase());
    if (proposal === undefined) throw new Error("no proposeOutput transaction in the output's L1 block");
    const call = decodeFunctionData({ abi: OutputOracle.abi, data: proposal.input });
    const [epoch, header, round, signers, signature] = call.args as readonly [bigint, Hex, number, Hex, Hex, Hex];
    expect(epoch).toBe(output.epoch);
    expect(keccak256(header)).toBe(output.blockHash);
    const [publicKeys, powers, setId] = (await l1.readContract({
      address: registry,
      abi: SequencerRegistry.abi,
      functionName: "validatorSet",
      args: [epoch],
    })) as readonly [readonly Hex[], readonly bigint[], Hex];
    const set = createValidatorSet(
      publicKeys.map((pk, i) => ({ publicKey: fromHex(pk), votingPower: powers[i] ?? 0n })),
    );
    expect(set.id).toBe(setId);
    const decodedHeader = decode(headerSchema, fromHex(header));
    expect(decodedHeader.validatorSetId).toBe(setId);
    const certificate: Certificate = {
      chainId,
      height: outputHeight,
      round,
      blockHash: output.blockHash,
      validatorSetId: setId,
      validatorCount: set.validators.length,
      signers: fromHex(signers),
      signature: fromHex(signature),
    };
    const verdict = verifyCertificate(certificate, set, { chainId, scheme: blstScheme });
    expect(verdict.ok ? "ok" : `${verdict.code}: ${verdict.message}`).toBe("ok");

    // ---- `finalized` follows the L1's finalized block (anvil: 64 blocks behind its head).
    const finalizedOf = async (url: string) => {
      const b = await rpc<{ number: Hex } | null>(url, "eth_getBlockByNumber", ["finalized", false]);
      return b === null ? 0 : Number(BigInt(b.number));
    };
    const l1Head = await l1.getBlockNumber({ cacheTime: 0 });
    const l1Finalized = (await l1.getBlock({ blockTag: "finalized" })).number;
    if (l1Finalized < output.l1BlockNumber) expect(await finalizedOf(v0.rpc)).toBeLessThan(outputHeight);
    await rpc(l1Url, "anvil_mine", [
      `0x${(output.l1BlockNumber + 70n - l1Head > 0n ? output.l1BlockNumber + 70n - l1Head : 1n).toString(16)}`,
    ]);
    await waitUntil(
      "`finalized` at the first output",
      async () => (await finalizedOf(v0.rpc)) >= outputHeight,
      30_000,
      show,
    );

    // ---- Every validator dies at once; anvil stays.
    for (const pid of validatorPids) process.kill(pid, "SIGKILL");
    devnet.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 1_000));
    const b = postedHeight(await batchEvents());
    expect(b).toBeGreaterThan(txHeight);

    // ---- A fresh replica with no peers derives the chain from L1 alone.
    const init = spawnSync(process.execPath, [DCN, "init", "--dir", replicaDir, "--insecure"], { encoding: "utf8" });
    expect(init.status, init.stderr).toBe(0);
    const genesisPath = join(data, "genesis.json");
    const replicaRpc = `http://127.0.0.1:${base + 18}`;
    writeFileSync(
      join(replicaDir, "config.json"),
      JSON.stringify({
        role: "replica",
        dataDir: "data",
        genesis: genesisPath,
        keys: { dir: "keys" },
        // No peers dial it: any free port (a fixed one may be held by some client's outgoing connection).
        p2p: { listen: ["/ip4/127.0.0.1/tcp/0"], peers: [] },
        metrics: { enabled: true, host: "127.0.0.1", port: 0 },
        rpc: { enabled: true, host: "127.0.0.1", port: base + 18 },
        l1: { rpcUrl: l1Url, pollIntervalMs: 500, confirmations: 2, deriveFromL1: true, beaconUrl: l1Url },
      }),
    );
    const replica = spawn(process.execPath, [DCN, "start", "--config", join(replicaDir, "config.json")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    started.push(replica);
    let replicaLog = "";
    replica.stdout?.on("data", (d: Buffer) => {
      replicaLog += d.toString();
    });
    replica.stderr?.on("data", (d: Buffer) => {
      replicaLog += d.toString();
    });
    await waitUntil(
      `the derived replica at the last posted height ${b}`,
      async () => (await heightOf(replicaRpc)) >= b,
      120_000,
      () => `${show()}\n--- replica\n${replicaLog.slice(-4000)}`,
    );
    const status = await rpc<{ peers: string[] }>(replicaRpc, "lumia_status");
    expect(status.peers).toEqual([]);
    const balance = await rpc<Hex>(replicaRpc, "eth_getBalance", [recipient, `0x${b.toString(16)}`]);
    expect(BigInt(balance)).toBe(amount);
    expect(replicaLog).toContain("derived a batch from L1");
    const derivedKinds = replicaLog
      .split("\n")
      .filter((l) => l.includes("derived a batch from L1"))
      .map((l) => /"kind":"(\w+)"/.exec(l)?.[1]);
    expect(derivedKinds, "at least one blob batch derived").toContain("blobs");
    const exited = new Promise((r) => replica.once("exit", r));
    replica.kill("SIGINT");
    await exited;

    // ---- The same chain as the killed validator's, block by block up to B: bytes, hashes, state roots, certificates.
    const genesis = await loadGenesis(genesisPath);
    const open = (path: string) =>
      ChainStore.open(path, { genesisHash: genesis.hash, genesisValidatorSet: genesis.validatorSet });
    const validatorStore = await open(join(data, "validator-0", "data", "chain"));
    const derivedStore = await open(join(replicaDir, "data", "chain"));
    try {
      expect(validatorStore.headHeight).toBeGreaterThanOrEqual(b);
      for (let h = 1; h <= b; h++) {
        const [vb, db, vc, dc] = await Promise.all([
          validatorStore.getBlock(h),
          derivedStore.getBlock(h),
          validatorStore.getCertificate(h),
          derivedStore.getCertificate(h),
        ]);
        if (vb === undefined || db === undefined || vc === undefined || dc === undefined) {
          throw new Error(`height ${h} is missing`);
        }
        expect(toHex(db), `block ${h}`).toBe(toHex(vb));
        // Below a head the stored certificate is the canonical one (the next block carries it).
        if (h < validatorStore.headHeight) {
          expect(toHex(encodeCertificate(dc)), `certificate ${h}`).toBe(toHex(encodeCertificate(vc)));
        }
      }
      const atB = decodeBlock((await validatorStore.getBlock(b)) as Uint8Array).header;
      const derivedAtB = decodeBlock((await derivedStore.getBlock(b)) as Uint8Array).header;
      expect(blockHash(derivedAtB)).toBe(blockHash(atB));
      expect(derivedAtB.stateRoot).toBe(atB.stateRoot);
    } finally {
      await validatorStore.close();
      await derivedStore.close();
    }
  }, 400_000);
});
