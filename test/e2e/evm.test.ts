// Differential test: the same signed transactions on a 4-validator subnet of dcn processes (through its JSON-RPC) and
// on anvil (the reference EVM node) give the same receipts (status, gas used, logs, contract addresses) and the same
// final state (balances, nonces, code, storage). Base fee 0 on both, so every fee is the signed price and the senders'
// balances are comparable (the subnet pays base fees to a reward pool, anvil burns them; docs/execution.md).
// Then: the pool's refusals through eth_sendRawTransaction, and a restarted validator's state root.
import { join } from "node:path";
import {
  type Chain,
  createPublicClient,
  defineChain,
  encodeDeployData,
  encodeFunctionData,
  getContractAddress,
  type Hex,
  http,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex } from "../../consensus/bytes.ts";
import { decodeCertificate, verifyCertificate } from "../../consensus/certificate.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { devnetAccounts } from "../../src/cli/devnet.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { Anvil } from "../fixtures/anvil.ts";
import { contracts } from "../fixtures/contracts.ts";
import { readChain } from "./chain.ts";
import { Cluster } from "./cluster.ts";

const GWEI = 1_000_000_000n;
const ETHER = 10n ** 18n;

interface Step {
  readonly from: number;
  readonly nonce: number;
  readonly to?: Hex | null;
  readonly value?: bigint;
  readonly data?: Hex;
  readonly gas: bigint;
  readonly kind: "legacy" | "eip2930" | "eip1559";
  /** Priority fee of an EIP-1559 transaction in gwei (default 1; max fee = tip + 2 gwei). */
  readonly tipGwei?: bigint;
  /** Replaced by a later step before inclusion: no receipt to wait for. */
  readonly replaced?: boolean;
  /** Sent to the subnet only, which must refuse it with this error. */
  readonly refusedWith?: RegExp;
}

describe("EVM execution on the subnet matches anvil", () => {
  let cluster: Cluster;
  let anvil: Anvil;
  const keys = devnetAccounts();
  const accounts = keys.map((k) => privateKeyToAccount(k.privateKey));
  const { Token, Reverter, Probe } = contracts();

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 4, replicas: 0, baseFeePerGas: 0n });
    for (const v of cluster.validators) cluster.start(v.name);
    anvil = await Anvil.start({ chainId: cluster.plan.chainId, baseFee: 0n, gasLimit: 30_000_000n });
    // Same starting balances as the devnet genesis.
    for (const k of keys) {
      await anvil.rpc("anvil_setBalance", [k.address, `0x${(1_000_000n * ETHER).toString(16)}`]);
    }
    await cluster.waitForHeight(
      cluster.validators.map((v) => v.name),
      2,
      60_000,
    );
  }, 90_000);

  afterAll(async () => {
    await anvil?.stop();
    await cluster?.close();
  });

  function chainOf(url: string): Chain {
    return defineChain({
      id: Number(cluster.plan.chainId),
      name: "test",
      nativeCurrency: { name: "LUMIA", symbol: "LUMIA", decimals: 18 },
      rpcUrls: { default: { http: [url] } },
    });
  }

  async function sign(step: Step): Promise<Hex> {
    const account = accounts[step.from];
    if (account === undefined) throw new Error("no account");
    const base = {
      chainId: Number(cluster.plan.chainId),
      nonce: step.nonce,
      to: step.to ?? null,
      value: step.value ?? 0n,
      data: step.data ?? "0x",
      gas: step.gas,
    } as const;
    if (step.kind === "legacy") return account.signTransaction({ ...base, type: "legacy", gasPrice: 2n * GWEI });
    if (step.kind === "eip2930") {
      return account.signTransaction({ ...base, type: "eip2930", gasPrice: 2n * GWEI, accessList: [] });
    }
    const tip = (step.tipGwei ?? 1n) * GWEI;
    return account.signTransaction({
      ...base,
      type: "eip1559",
      maxFeePerGas: tip + 2n * GWEI,
      maxPriorityFeePerGas: tip,
    });
  }

  const a = (i: number) => keys[i]?.address as Hex;
  // Contract addresses depend only on sender and nonce: the same on both chains.
  const contractAddress = (from: Hex, nonce: number): Hex => getContractAddress({ from, nonce: BigInt(nonce) });

  function script(token: Hex, store: Hex, reverter: Hex): Step[][] {
    // Each inner list is sent together; lists are sent one after another (each awaits its receipts).
    return [
      [
        { from: 0, nonce: 0, to: a(1), value: ETHER, gas: 21_000n, kind: "legacy" },
        { from: 1, nonce: 0, to: a(2), value: 2n * ETHER, gas: 21_000n, kind: "eip2930" },
        { from: 2, nonce: 0, to: a(3), value: 3n * ETHER, gas: 21_000n, kind: "eip1559" },
      ],
      [
        {
          from: 0,
          nonce: 1,
          to: null,
          data: encodeDeployData({ abi: Token.abi, bytecode: Token.bytecode, args: [1_000_000n] }),
          gas: 1_500_000n,
          kind: "eip1559",
        },
        {
          from: 3,
          nonce: 0,
          to: null,
          data: encodeDeployData({ abi: Probe.abi, bytecode: Probe.bytecode }),
          gas: 2_000_000n,
          kind: "legacy",
        },
        {
          from: 3,
          nonce: 1,
          to: null,
          data: encodeDeployData({ abi: Reverter.abi, bytecode: Reverter.bytecode }),
          gas: 1_000_000n,
          kind: "eip1559",
        },
      ],
      [
        {
          from: 0,
          nonce: 2,
          to: token,
          data: encodeFunctionData({ abi: Token.abi, functionName: "transfer", args: [a(4), 100n] }),
          gas: 100_000n,
          kind: "eip1559",
        },
        // Reverts with a reason: account 5 never holds tokens.
        {
          from: 5,
          nonce: 0,
          to: token,
          data: encodeFunctionData({ abi: Token.abi, functionName: "transfer", args: [a(6), 1_000n] }),
          gas: 100_000n,
          kind: "eip1559",
        },
        {
          from: 6,
          nonce: 0,
          to: store,
          data: encodeFunctionData({ abi: Probe.abi, functionName: "set", args: [7n, 42n] }),
          gas: 100_000n,
          kind: "eip2930",
        },
        {
          from: 7,
          nonce: 0,
          to: reverter,
          data: encodeFunctionData({ abi: Reverter.abi, functionName: "fail", args: ["refused"] }),
          gas: 100_000n,
          kind: "legacy",
        },
      ],
      [
        // A nonce gap: nonce 1 arrives first and waits in the pool until nonce 0 fills the gap.
        { from: 8, nonce: 1, to: a(9), value: 5n, gas: 21_000n, kind: "eip1559" },
        { from: 8, nonce: 0, to: a(9), value: 7n, gas: 21_000n, kind: "eip1559" },
        {
          from: 4,
          nonce: 0,
          to: token,
          data: encodeFunctionData({ abi: Token.abi, functionName: "transfer", args: [a(9), 40n] }),
          gas: 100_000n,
          kind: "legacy",
        },
      ],
      [
        // Replacement while queued behind a nonce gap: +10% fees replace, +5% is refused as underpriced; the gap then
        // fills and the replacement is what gets mined.
        { from: 9, nonce: 1, to: a(1), value: 11n, gas: 21_000n, kind: "eip1559", tipGwei: 10n, replaced: true },
        { from: 9, nonce: 1, to: a(1), value: 12n, gas: 21_000n, kind: "eip1559", tipGwei: 12n },
        {
          from: 9,
          nonce: 1,
          to: a(1),
          value: 13n,
          gas: 21_000n,
          kind: "eip1559",
          tipGwei: 12n,
          refusedWith: /replacement transaction underpriced/i,
        },
        { from: 9, nonce: 0, to: a(2), value: 14n, gas: 21_000n, kind: "eip1559" },
      ],
    ];
  }

  async function run(
    url: string,
    automine: boolean,
  ): Promise<{ receipts: TransactionReceipt[]; client: PublicClient }> {
    const client = createPublicClient({
      chain: chainOf(url),
      transport: http(url),
      pollingInterval: 100,
    }) as PublicClient;
    const token = contractAddress(a(0), 1);
    const store = contractAddress(a(3), 0);
    const reverter = contractAddress(a(3), 1);
    const receipts: TransactionReceipt[] = [];
    for (const batch of script(token, store, reverter)) {
      const hashes: Hex[] = [];
      for (const step of batch) {
        const raw = await sign(step);
        if (step.refusedWith !== undefined) {
          if (!automine) {
            await expect(client.sendRawTransaction({ serializedTransaction: raw })).rejects.toThrow(step.refusedWith);
          }
          continue;
        }
        const hash = await client.sendRawTransaction({ serializedTransaction: raw });
        if (step.replaced !== true) hashes.push(hash);
        // anvil mines on demand: after each transaction, except when a replacement of it follows in the batch.
        if (automine && step.replaced !== true) await rpc(url, "evm_mine", []);
      }
      for (const hash of hashes) receipts.push(await client.waitForTransactionReceipt({ hash, timeout: 30_000 }));
    }
    return { receipts, client };
  }

  async function state(client: PublicClient) {
    const token = contractAddress(a(0), 1);
    const store = contractAddress(a(3), 0);
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      out[`${k.address}.balance`] = await client.getBalance({ address: k.address });
      out[`${k.address}.nonce`] = await client.getTransactionCount({ address: k.address });
      out[`${k.address}.tokens`] = await client.readContract({
        address: token,
        abi: Token.abi,
        functionName: "balanceOf",
        args: [k.address],
      });
    }
    out.tokenCode = await client.getCode({ address: token });
    out.storeCode = await client.getCode({ address: store });
    for (let slot = 0n; slot < 4n; slot++) {
      out[`token.slot${slot}`] = await client.getStorageAt({ address: token, slot: `0x${slot.toString(16)}` });
      out[`store.slot${slot}`] = await client.getStorageAt({ address: store, slot: `0x${slot.toString(16)}` });
    }
    out.probeSlot7 = await client.readContract({ address: store, abi: Probe.abi, functionName: "slots", args: [7n] });
    return out;
  }

  const comparable = (r: TransactionReceipt) => ({
    status: r.status,
    gasUsed: r.gasUsed,
    contractAddress: r.contractAddress ?? null,
    from: r.from,
    to: r.to,
    effectiveGasPrice: r.effectiveGasPrice,
    logs: r.logs.map((l) => ({ address: l.address, topics: l.topics, data: l.data })),
  });

  it("gives the same receipts and the same final state", async () => {
    const subnet = await run(cluster.node("validator-0").rpc, false);
    const reference = await run(anvil.url, true);
    expect(subnet.receipts.map(comparable)).toEqual(reference.receipts.map(comparable));
    expect(subnet.receipts.map((r) => r.status)).toContain("reverted");
    expect(await state(subnet.client)).toEqual(await state(reference.client));
    // Every validator holds the same state (read through each node's own RPC).
    for (const v of cluster.validators.slice(1)) {
      const client = createPublicClient({ chain: chainOf(v.rpc), transport: http(v.rpc) }) as PublicClient;
      await cluster.waitForHeight([v.name], Number(await subnet.client.getBlockNumber()), 20_000);
      expect(await client.getBalance({ address: a(9) })).toBe(await subnet.client.getBalance({ address: a(9) }));
    }
  }, 120_000);

  it("refuses bad transactions at the RPC with clear errors and keeps serving", async () => {
    const url = cluster.node("validator-1").rpc;
    const client = createPublicClient({ chain: chainOf(url), transport: http(url) }) as PublicClient;
    const stale = await sign({ from: 0, nonce: 0, to: a(1), value: 1n, gas: 21_000n, kind: "legacy" });
    await expect(client.sendRawTransaction({ serializedTransaction: stale })).rejects.toThrow(/nonce too low/i);
    const poor = privateKeyToAccount(`0x${"42".repeat(32)}`);
    const broke = await poor.signTransaction({
      chainId: Number(cluster.plan.chainId),
      nonce: 0,
      to: a(1),
      value: ETHER,
      gas: 21_000n,
      type: "legacy",
      gasPrice: GWEI,
    });
    await expect(client.sendRawTransaction({ serializedTransaction: broke })).rejects.toThrow(/insufficient funds/i);
    const wrongChain = await accounts[0]?.signTransaction({
      chainId: 1,
      nonce: 9,
      to: a(1),
      value: 1n,
      gas: 21_000n,
      type: "legacy",
      gasPrice: GWEI,
    });
    await expect(client.sendRawTransaction({ serializedTransaction: wrongChain as Hex })).rejects.toThrow();
    expect(await client.getBlockNumber()).toBeGreaterThan(0n);
  }, 60_000);

  it("serves certificates and proofs that check out without trusting the node", async () => {
    const url = cluster.node("validator-3").rpc;
    const c = (await rpc(url, "lumia_getCertificate", ["latest"])) as {
      certificate: Hex;
      blockHash: Hex;
      validatorSetId: Hex;
      signers: number[];
    };
    const block = (await rpc(url, "eth_getBlockByNumber", ["latest", false])) as { hash: Hex } | null;
    expect(c.signers.length).toBeGreaterThanOrEqual(3);
    const s = (await rpc(url, "lumia_getValidatorSet", [c.validatorSetId])) as {
      validators: { publicKey: Hex; votingPower: Hex }[];
    };
    // Rebuild the set from keys and powers alone; its id must be the one the certificate names.
    const set = createValidatorSet(
      s.validators.map((v) => ({ publicKey: fromHex(v.publicKey), votingPower: BigInt(v.votingPower) })),
    );
    expect(set.id).toBe(c.validatorSetId);
    const cert = decodeCertificate(fromHex(c.certificate));
    const verdict = verifyCertificate(cert, set, { chainId: cluster.plan.chainId }); // pure-JS BLS, as in a browser
    expect(verdict.ok).toBe(true);
    expect(cert.height).toBeGreaterThan(0);
    if (block !== null && cert.blockHash !== block.hash) {
      // The head moved between the two calls: the certificate is then for an earlier block.
      expect(cert.height).toBeLessThan(Number(await rpc(url, "eth_blockNumber", [])));
    }
    const proof = (await rpc(url, "eth_getProof", [a(9), ["0x0"], "latest"])) as { balance: Hex; accountProof: Hex[] };
    expect(BigInt(proof.balance)).toBe(BigInt((await rpc(url, "eth_getBalance", [a(9), "latest"])) as Hex));
    expect(proof.accountProof.length).toBeGreaterThan(0);
    const status = (await rpc(url, "lumia_status", [])) as { role: string; headHeight: number };
    expect(status.role).toBe("validator");
  }, 30_000);

  it("a validator restarted from disk has the same state root and keeps up", async () => {
    const v = "validator-2";
    await cluster.stop(v);
    const before = await readChain(join(cluster.node(v).dir, "data", "chain"), cluster.plan.genesisPath);
    cluster.start(v);
    const head = await cluster.height("validator-0");
    await cluster.waitForHeight([v], head + 2, 40_000);
    await cluster.stop(v);
    const after = await readChain(join(cluster.node(v).dir, "data", "chain"), cluster.plan.genesisPath);
    // The blocks it had are unchanged, and every block since the restart was executed to the certified state root
    // (a mismatch would have stopped it: a certified block that fails validation is never committed).
    expect(after.hashes.slice(0, before.hashes.length)).toEqual(before.hashes);
    expect(after.hashes.length).toBeGreaterThan(before.hashes.length);
  }, 90_000);
});

const rpc = (url: string, method: string, params: unknown[]): Promise<unknown> => jsonRpc(url, method, params, 15_000);
