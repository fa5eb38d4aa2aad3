// Execution throughput: the core (decode + native sender recovery + runTx over the overlay trie with Caches, one
// checkpoint per block, state root, transactions/receipts roots; state on level) against bare @ethereumjs/vm
// (createVM() with its default state manager and default sender recovery, then the state root), same signed blocks.
// Usage: node bin/run.mjs test/bench/exec.bench.ts [--blocks N] [--txs N] [--only core|bare|pooled]
// [--workload transfers|erc20]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBlock } from "@ethereumjs/block";
import { createCustomCommon, Hardfork, Mainnet } from "@ethereumjs/common";
import { createTxFromRLP } from "@ethereumjs/tx";
import { Account, createAddressFromString } from "@ethereumjs/util";
import { createVM, runTx, type VM } from "@ethereumjs/vm";
import { Level } from "level";
import { encodeDeployData, encodeFunctionData, getContractAddress, type Hex as ViemHex } from "viem";
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";
import { fromHex, type Hex, keccak256, toHex, uintBytes } from "../../consensus/bytes.ts";
import { type BlockEnv, ExecutionCore, type ExecutionResult } from "../../src/execution/core.ts";
import { secp256k1Backend } from "../../src/execution/secp256k1.ts";
import { type DecodedTx, decodeTransaction } from "../../src/execution/tx.ts";
import { TxDecodeCache } from "../../src/execution/tx-cache.ts";
import type { VmRoot } from "../../src/execution/vm.ts";
import { contracts } from "../fixtures/contracts.ts";

const CHAIN_ID = 4242n;
const BASE_FEE = 1_000_000_000n;
const GAS_LIMIT = 60_000_000n;
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const TXS_PER_BLOCK = arg("--txs", 500);
const MEASURED_BLOCKS = arg("--blocks", 5);
/** --only core|bare|pooled: run one side (for profiling); pooled = the core on pool-decoded blocks, fast path on. */
const ONLY = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined;
/** --workload transfers|erc20: sign and run one workload (for profiling: signing the other is most of a profile). */
const WORKLOAD = process.argv.includes("--workload") ? process.argv[process.argv.indexOf("--workload") + 1] : undefined;
if (WORKLOAD !== undefined && WORKLOAD !== "transfers" && WORKLOAD !== "erc20") {
  throw new Error(`--workload must be transfers or erc20, not ${WORKLOAD}`);
}

interface Workload {
  readonly name: string;
  readonly blocks: Uint8Array[][];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * CPU seconds (user + system) of this process since `start`: on a shared machine, wall time measures the neighbours
 * as much as the code. Nothing else runs in this process meanwhile, and level's I/O threads are counted too.
 */
function cpuSeconds(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function env(height: number): BlockEnv {
  return {
    chainId: CHAIN_ID,
    height,
    timestampMs: 1_700_000_000_000 + height * 1000,
    coinbase: "0x00000000000000000000000000000000000c0ffe",
    gasLimit: GAS_LIMIT,
    baseFeePerGas: BASE_FEE,
    prevRandao: toHex(keccak256(uintBytes(height, 8))),
  };
}

async function sign(
  account: PrivateKeyAccount,
  nonce: number,
  to: ViemHex | null,
  data: ViemHex,
  value: bigint,
  gas: bigint,
) {
  return fromHex(
    await account.signTransaction({
      chainId: Number(CHAIN_ID),
      type: "eip1559",
      nonce,
      ...(to === null ? {} : { to }),
      data,
      value,
      gas,
      maxFeePerGas: 2n * BASE_FEE,
      maxPriorityFeePerGas: 1_000_000n,
    }),
  );
}

async function buildWorkloads(accounts: PrivateKeyAccount[]) {
  const { Token } = contracts();
  const nonces = accounts.map(() => 0);
  const next = (i: number) => {
    const n = nonces[i] as number;
    nonces[i] = n + 1;
    return n;
  };
  const deployer = accounts[0] as PrivateKeyAccount;
  const token = getContractAddress({ from: deployer.address, nonce: 0n });
  const deploy = await sign(
    deployer,
    next(0),
    null,
    encodeDeployData({ abi: Token.abi, bytecode: Token.bytecode, args: [10n ** 30n] }),
    0n,
    2_000_000n,
  );
  const fund: Uint8Array[] = [];
  for (let i = 1; i < accounts.length; i++) {
    const data = encodeFunctionData({
      abi: Token.abi,
      functionName: "transfer",
      args: [accounts[i]?.address, 10n ** 24n],
    });
    fund.push(await sign(deployer, next(0), token, data, 0n, 100_000n));
  }
  const setup = [[deploy], fund];
  const transfers: Uint8Array[][] = [];
  const erc20: Uint8Array[][] = [];
  for (let b = 0; b <= (WORKLOAD === "erc20" ? -1 : MEASURED_BLOCKS); b++) {
    const block: Uint8Array[] = [];
    for (let i = 0; i < TXS_PER_BLOCK; i++) {
      const to = accounts[(i + 1 + b) % accounts.length]?.address as ViemHex;
      block.push(await sign(accounts[i] as PrivateKeyAccount, next(i), to, "0x", 1n + BigInt(b), 21_000n));
    }
    transfers.push(block);
  }
  for (let b = 0; b <= (WORKLOAD === "transfers" ? -1 : MEASURED_BLOCKS); b++) {
    const block: Uint8Array[] = [];
    for (let i = 0; i < TXS_PER_BLOCK; i++) {
      const to = accounts[(i + 7 + b) % accounts.length]?.address;
      const data = encodeFunctionData({ abi: Token.abi, functionName: "transfer", args: [to, 1n + BigInt(b)] });
      block.push(await sign(accounts[i] as PrivateKeyAccount, next(i), token, data, 0n, 100_000n));
    }
    erc20.push(block);
  }
  return {
    setup,
    workloads: [
      { name: "transfers", blocks: transfers },
      { name: "ERC-20 transfers", blocks: erc20 },
    ].filter((w) => w.blocks.length > 0),
  };
}

/**
 * Per-block tx/s of the core, first block of each workload dropped as warm-up. `admitted`: the block's transactions
 * went through the node's pool first (decoded there, untimed), so validation finds them in the decode cache; else
 * every transaction is decoded and its sender recovered inside the timed block, as for a block of unseen ones.
 * `transferFastPath` false: every transaction through runTx (the core before the plain-transfer fast path).
 */
async function runCore(
  accounts: PrivateKeyAccount[],
  setup: Uint8Array[][],
  workloads: Workload[],
  admitted: boolean,
  transferFastPath = true,
) {
  const decoder = new TxDecodeCache(CHAIN_ID);
  const dir = await mkdtemp(join(tmpdir(), "exec-bench-"));
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
  try {
    const core = await ExecutionCore.create({
      chainId: CHAIN_ID,
      db: { get: (key) => db.get(key) },
      alloc: accounts.map((a) => ({ address: a.address.toLowerCase() as Hex, balance: 10n ** 24n })),
      transferFastPath,
    });
    const commit = async (writes: ReadonlyMap<string, Uint8Array>) =>
      db.batch([...writes].map(([key, value]) => ({ type: "put" as const, key: fromHex(key), value })));
    const genesis = await core.genesisStateRoot();
    await commit(genesis.writes);
    let parent: { stateRoot: Hex; vmRoots: readonly VmRoot[] } = genesis;
    let height = 0;
    const runBlock = async (raws: Uint8Array[]): Promise<ExecutionResult> => {
      const txs: DecodedTx[] = [];
      for (const raw of raws) {
        const decoded = admitted ? decoder.decode(raw) : decodeTransaction(raw, CHAIN_ID);
        if (!decoded.ok) throw new Error(`${decoded.code}: ${decoded.message}`);
        txs.push(decoded.tx);
      }
      height++;
      const result = await core.execute(parent.stateRoot, parent.vmRoots, env(height), txs, "validate");
      if (result.receipts.some((r) => r.status !== 1)) throw new Error("a benchmark transaction failed");
      return result;
    };
    for (const raws of setup) {
      const result = await runBlock(raws);
      await commit(result.writes);
      parent = result;
    }
    const rates = new Map<string, number[]>();
    for (const w of workloads) {
      const perBlock: number[] = [];
      for (const [b, raws] of w.blocks.entries()) {
        if (admitted) for (const raw of raws) decoder.decode(raw);
        const t0 = process.cpuUsage();
        const result = await runBlock(raws);
        const seconds = cpuSeconds(t0);
        if (b > 0) perBlock.push(raws.length / seconds);
        await commit(result.writes);
        parent = result;
      }
      rates.set(w.name, perBlock);
    }
    return rates;
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function runBare(accounts: PrivateKeyAccount[], setup: Uint8Array[][], workloads: Workload[]) {
  const common = createCustomCommon({ chainId: Number(CHAIN_ID) }, Mainnet, { hardfork: Hardfork.Prague });
  const vm: VM = await createVM({ common });
  for (const a of accounts) {
    await vm.stateManager.putAccount(createAddressFromString(a.address), new Account(0n, 10n ** 24n));
  }
  let height = 0;
  const runBlock = async (raws: Uint8Array[]) => {
    height++;
    const e = env(height);
    const block = createBlock(
      {
        header: {
          number: BigInt(height),
          timestamp: BigInt(e.timestampMs / 1000),
          coinbase: e.coinbase,
          gasLimit: e.gasLimit,
          baseFeePerGas: e.baseFeePerGas,
          mixHash: e.prevRandao,
        },
      },
      { common },
    );
    let gasUsed = 0n;
    for (const raw of raws) {
      const result = await runTx(vm, { tx: createTxFromRLP(raw, { common }), block, blockGasUsed: gasUsed });
      if (result.execResult.exceptionError !== undefined) throw new Error("a benchmark transaction failed (bare)");
      gasUsed += result.totalGasSpent;
    }
    return vm.stateManager.getStateRoot();
  };
  for (const raws of setup) await runBlock(raws);
  const rates = new Map<string, number[]>();
  for (const w of workloads) {
    const perBlock: number[] = [];
    for (const [b, raws] of w.blocks.entries()) {
      const t0 = process.cpuUsage();
      await runBlock(raws);
      const seconds = cpuSeconds(t0);
      if (b > 0) perBlock.push(raws.length / seconds);
    }
    rates.set(w.name, perBlock);
  }
  return rates;
}

async function main(): Promise<void> {
  const accounts = Array.from({ length: TXS_PER_BLOCK }, (_, i) =>
    privateKeyToAccount(toHex(keccak256(uintBytes(i + 1, 32))) as ViemHex),
  );
  const t0 = performance.now();
  const { setup, workloads } = await buildWorkloads(accounts);
  const signMs = performance.now() - t0;

  // Decode + sender recovery alone, per transaction: median over the transfer blocks (after JIT warm-up).
  const decodeRuns: number[] = [];
  for (const raws of [...(workloads[0]?.blocks ?? []), ...(workloads[0]?.blocks ?? [])]) {
    const start = process.cpuUsage();
    for (const raw of raws) decodeTransaction(raw, CHAIN_ID);
    decodeRuns.push((cpuSeconds(start) * 1e6) / Math.max(1, raws.length));
  }
  const decodeUs = median(decodeRuns);

  const none = new Map<string, number[]>();
  const core = ONLY === undefined || ONLY === "core" ? await runCore(accounts, setup, workloads, false) : none;
  const pooled = ONLY !== "bare" ? await runCore(accounts, setup, workloads, true) : none;
  const viaRunTx =
    ONLY === undefined || ONLY === "core" ? await runCore(accounts, setup, workloads, true, false) : none;
  const bare = ONLY === undefined || ONLY === "bare" ? await runBare(accounts, setup, workloads) : none;

  process.stdout.write(
    `execution bench: ${TXS_PER_BLOCK} txs/block, median of ${MEASURED_BLOCKS} blocks after 1 warm-up, tx per CPU second, ` +
      `sender recovery ${secp256k1Backend}, decode+recover ${decodeUs.toFixed(0)} us/tx (signing took ${(signMs / 1000).toFixed(1)} s)\n`,
  );
  process.stdout.write(
    `${"workload".padEnd(18)} ${"core tx/s".padStart(10)} ${"bare vm tx/s".padStart(13)} ${"ratio".padStart(7)}` +
      ` ${"core, pooled tx/s".padStart(18)} ${"ratio".padStart(7)}` +
      ` ${"pooled, all runTx".padStart(18)} ${"fast/runTx".padStart(11)}\n`,
  );
  for (const w of workloads) {
    const c = median(core.get(w.name) ?? [Number.NaN]);
    const b = median(bare.get(w.name) ?? [Number.NaN]);
    const p = median(pooled.get(w.name) ?? [Number.NaN]);
    const r = median(viaRunTx.get(w.name) ?? [Number.NaN]);
    process.stdout.write(
      `${w.name.padEnd(18)} ${c.toFixed(0).padStart(10)} ${b.toFixed(0).padStart(13)} ${`${(c / b).toFixed(2)}x`.padStart(7)}` +
        ` ${p.toFixed(0).padStart(18)} ${`${(p / b).toFixed(2)}x`.padStart(7)}` +
        ` ${r.toFixed(0).padStart(18)} ${`${(p / r).toFixed(2)}x`.padStart(11)}\n`,
    );
  }
}

await main();
