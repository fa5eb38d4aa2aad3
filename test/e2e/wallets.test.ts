// Acceptance test with the two wallet libraries applications use, unchanged, against a live 3-validator subnet of dcn
// processes: viem (http and webSocket transports) and ethers v6 (JsonRpcProvider and WebSocketProvider) deploy a
// contract, send transactions, wait for receipts, read logs, follow events and new heads over WebSocket. Then the node
// keeps serving after malformed params, unknown methods and oversized batches, over HTTP and WebSocket.
import { Contract, ContractFactory, JsonRpcProvider, Wallet, WebSocketProvider } from "ethers";
import {
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  encodeAbiParameters,
  type Hex,
  http,
  keccak256,
  type Log,
  pad,
  toHex,
  webSocket,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { devnetAccounts } from "../../src/cli/devnet.ts";
import { contracts } from "../fixtures/contracts.ts";
import { Cluster } from "./cluster.ts";

const GWEI = 1_000_000_000n;

describe("wallet libraries against a live subnet", () => {
  let cluster: Cluster;
  let httpUrl: string;
  let wsUrl: string;
  const keys = devnetAccounts();
  const { Token } = contracts();
  const key = (i: number): Hex => {
    const k = keys[i];
    if (k === undefined) throw new Error(`no devnet account ${i}`);
    return k.privateKey;
  };
  const address = (i: number): Hex => keys[i]?.address as Hex;

  beforeAll(async () => {
    // A non-zero base fee: ethers treats a zero base fee as "no EIP-1559" and would fall back to legacy transactions.
    cluster = await Cluster.create({ validators: 3, replicas: 0, baseFeePerGas: GWEI });
    for (const v of cluster.validators) cluster.start(v.name);
    const names = cluster.validators.map((v) => v.name);
    await cluster.waitForHeight(names, 2, 60_000);
    httpUrl = cluster.node("validator-0").rpc;
    wsUrl = httpUrl.replace(/^http:/, "ws:");
  }, 80_000);

  afterAll(async () => {
    await cluster?.close();
  });

  function chain(): Chain {
    return defineChain({
      id: Number(cluster.plan.chainId),
      name: "lumia-test",
      nativeCurrency: { name: "LUMIA", symbol: "LUMIA", decimals: 18 },
      rpcUrls: { default: { http: [httpUrl], webSocket: [wsUrl] } },
    });
  }

  it("viem: deploy, transact, receipts, logs, events and new heads over http and webSocket", async () => {
    const account = privateKeyToAccount(key(0));
    const publicHttp = createPublicClient({ chain: chain(), transport: http(httpUrl), pollingInterval: 100 });
    const publicWs = createPublicClient({ chain: chain(), transport: webSocket(wsUrl, { reconnect: false }) });
    const wallet = createWalletClient({ account, chain: chain(), transport: http(httpUrl) });
    expect(await publicWs.getChainId()).toBe(Number(cluster.plan.chainId));

    const heads: bigint[] = [];
    const unwatchBlocks = publicWs.watchBlocks({
      onBlock: (block) => {
        heads.push(block.number);
      },
      onError: (error) => {
        throw error;
      },
    });

    const deployHash = await wallet.deployContract({ abi: Token.abi, bytecode: Token.bytecode, args: [1_000_000n] });
    const deployed = await publicHttp.waitForTransactionReceipt({ hash: deployHash, timeout: 30_000 });
    expect(deployed.status).toBe("success");
    const token = deployed.contractAddress as Hex;
    expect(await publicWs.getCode({ address: token })).toMatch(/^0x60/);

    const watched: Log[] = [];
    const unwatchEvents = publicWs.watchContractEvent({
      address: token,
      abi: Token.abi,
      eventName: "Transfer",
      onLogs: (logs) => {
        watched.push(...logs);
      },
    });
    const pending: Hex[] = [];
    const unwatchPending = publicWs.watchPendingTransactions({
      onTransactions: (hashes) => {
        pending.push(...hashes);
      },
    });
    // The subscriptions are registered once their ids came back: a request on the same socket answers after them.
    await publicWs.getBlockNumber();

    const transfers: Hex[] = [];
    for (const [i, amount] of [100n, 200n].entries()) {
      const hash = await wallet.writeContract({
        address: token,
        abi: Token.abi,
        functionName: "transfer",
        args: [address(5 + i), amount],
      });
      transfers.push(hash);
    }
    const receipts = await Promise.all(
      transfers.map((hash) => publicWs.waitForTransactionReceipt({ hash, timeout: 30_000 })),
    );
    expect(receipts.map((r) => r.status)).toEqual(["success", "success"]);
    expect(
      await publicHttp.readContract({ address: token, abi: Token.abi, functionName: "balanceOf", args: [address(6)] }),
    ).toBe(200n);

    const fromBlock = deployed.blockNumber;
    const events = await publicHttp.getContractEvents({
      address: token,
      abi: Token.abi,
      eventName: "Transfer",
      fromBlock,
    });
    expect(events.map((e) => e.transactionHash)).toEqual([deployHash, ...transfers]);
    const logs = await publicHttp.getLogs({ address: token, fromBlock });
    expect(logs.map((l) => l.transactionHash)).toEqual([deployHash, ...transfers]);
    await waitUntil(() => watched.length >= 2 && heads.length >= 4 && pending.length >= 2, 20_000);
    expect(pending).toEqual(transfers);
    expect(watched.map((l) => l.transactionHash)).toEqual(transfers);
    expect(watched.map((l) => l.logIndex)).toEqual(events.slice(1).map((e) => e.logIndex));
    unwatchEvents();
    unwatchPending();
    unwatchBlocks();
    // Heads arrive one per height, in order, none skipped.
    for (let i = 1; i < heads.length; i++) expect(heads[i]).toBe((heads[i - 1] as bigint) + 1n);
    // EIP-7966: one request that answers with the receipt, once the block carrying it is committed (certified).
    const synced = await wallet.sendTransactionSync({ to: address(9), value: 1n, timeout: 10_000 });
    expect(synced.status).toBe("success");
    expect(await publicHttp.getBalance({ address: address(9), blockNumber: synced.blockNumber })).toBeGreaterThan(0n);
    // A transaction behind a nonce gap is pooled but cannot run: code 5 at once, with its hash.
    const gapped = await account.signTransaction({
      chainId: Number(cluster.plan.chainId),
      type: "eip1559",
      to: address(9),
      value: 1n,
      gas: 21_000n,
      nonce: (await publicHttp.getTransactionCount({ address: account.address })) + 5,
      maxFeePerGas: 10n * GWEI,
      maxPriorityFeePerGas: GWEI,
    });
    const refused = (await (
      await fetch(httpUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_sendRawTransactionSync", params: [gapped] }),
      })
    ).json()) as { error?: { code: number; data?: string } };
    expect(refused.error?.code).toBe(5);
    expect(refused.error?.data).toMatch(/^0x[0-9a-f]{64}$/);
    // The devnet serves the debug API: a transfer's call frame, replayed on the node.
    const frame = (await publicHttp.request({
      method: "debug_traceTransaction" as never,
      params: [transfers[0], { tracer: "callTracer" }] as never,
    })) as { type: string; from: string; to: string; gasUsed: Hex };
    expect(frame).toMatchObject({ type: "CALL", from: address(0).toLowerCase(), to: token.toLowerCase() });
    expect(BigInt(frame.gasUsed)).toBe(receipts[0]?.gasUsed);
    // viem's state override: balanceOf(address 6) read with its mapping slot (slot 1 of Token) set for the call only.
    const slot = keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [address(6), 1n]));
    const read = (stateOverride?: { address: Hex; stateDiff: { slot: Hex; value: Hex }[] }[]) =>
      publicHttp.readContract({
        address: token,
        abi: Token.abi,
        functionName: "balanceOf",
        args: [address(6)],
        ...(stateOverride === undefined ? {} : { stateOverride }),
      });
    expect(await read([{ address: token, stateDiff: [{ slot, value: pad(toHex(12_345n)) }] }])).toBe(12_345n);
    expect(await read()).toBe(200n);
    // viem's simulateBlocks (eth_simulateV1): a token transfer, then the recipient's balance, seen by the next call.
    const [simulated] = await publicHttp.simulateBlocks({
      blocks: [
        {
          calls: [
            { account: address(6), to: token, abi: Token.abi, functionName: "transfer", args: [address(7), 50n] },
            { to: token, abi: Token.abi, functionName: "balanceOf", args: [address(7)] },
          ],
        },
      ],
    });
    expect(simulated?.calls.map((c) => c.status)).toEqual(["success", "success"]);
    const before = (await publicHttp.readContract({
      address: token,
      abi: Token.abi,
      functionName: "balanceOf",
      args: [address(7)],
    })) as bigint;
    expect(simulated?.calls[1]?.result).toBe(before + 50n);
    expect(await read()).toBe(200n);

    (await publicWs.transport.getRpcClient()).close();
  }, 60_000);

  it("ethers v6: deploy, transact, receipts, queryFilter, events and blocks over http and WebSocket", async () => {
    const provider = new JsonRpcProvider(httpUrl);
    provider.pollingInterval = 100;
    const wsProvider = new WebSocketProvider(wsUrl);
    try {
      const network = await wsProvider.getNetwork();
      expect(network.chainId).toBe(cluster.plan.chainId);
      // Each of the three validators is connected to the two others.
      expect(Number(await provider.send("net_peerCount", []))).toBe(2);
      const wallet = new Wallet(key(1), provider);

      const blocks: number[] = [];
      await wsProvider.on("block", (n: number) => {
        blocks.push(n);
      });

      const factory = new ContractFactory(Token.abi as never, Token.bytecode, wallet);
      const deployed = await factory.deploy(1_000_000n);
      await deployed.waitForDeployment();
      const tokenAddress = await deployed.getAddress();
      const deployReceipt = await provider.getTransactionReceipt(deployed.deploymentTransaction()?.hash ?? "");
      expect(deployReceipt?.status).toBe(1);
      expect(deployReceipt?.type).toBe(2);

      const token = new Contract(tokenAddress, Token.abi as never, wallet);
      const tokenWs = new Contract(tokenAddress, Token.abi as never, wsProvider);
      const heard: { to: string; value: bigint; hash: string }[] = [];
      await tokenWs.on(
        "Transfer",
        (_from: string, to: string, value: bigint, event: { log: { transactionHash: string } }) => {
          heard.push({ to, value, hash: event.log.transactionHash });
        },
      );
      // Over HTTP too, with the provider's default options: ethers follows the event with a filter (eth_newFilter).
      const heardHttp: string[] = [];
      await token.on(
        "Transfer",
        (_from: string, _to: string, _value: bigint, event: { log: { transactionHash: string } }) => {
          heardHttp.push(event.log.transactionHash);
        },
      );
      // ethers subscribes in the background: wait until the node holds the logs subscription and the filter.
      await sleep(300);

      const transfer = token.getFunction("transfer");
      const tx = await transfer(address(7), 300n);
      const receipt = await provider.waitForTransaction(tx.hash, 1, 30_000);
      expect(receipt?.status).toBe(1);
      expect(await token.getFunction("balanceOf")(address(7))).toBe(300n);

      const transferFilter = token.filters.Transfer;
      if (transferFilter === undefined) throw new Error("Token has no Transfer event");
      const found = await token.queryFilter(transferFilter(), deployReceipt?.blockNumber ?? 0);
      expect(found.map((e) => e.transactionHash)).toEqual([deployReceipt?.hash, tx.hash]);

      await waitUntil(() => heard.length >= 1 && heardHttp.length >= 1 && blocks.length >= 4, 20_000);
      expect(heard[0]).toEqual({ to: address(7), value: 300n, hash: tx.hash });
      expect(heardHttp).toEqual([tx.hash]);
      const seen = [...new Set(blocks)];
      expect(seen.length).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < seen.length; i++) expect(seen[i]).toBe((seen[i - 1] as number) + 1);
    } finally {
      await wsProvider.destroy();
      provider.destroy();
    }
  }, 60_000);

  it("sends certificates that lumia_getCertificate confirms (lumia_subscribe over WebSocket)", async () => {
    const socket = new WebSocket(wsUrl);
    const messages: { id?: number; method?: string; params?: { subscription: string; result: { height: Hex } } }[] = [];
    socket.on("message", (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    try {
      socket.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "lumia_subscribe", params: ["certificates"] }));
      await waitUntil(() => messages.filter((m) => m.method === "lumia_subscription").length >= 3, 20_000);
      const certs = messages.filter((m) => m.method === "lumia_subscription").map((m) => m.params?.result);
      const heights = certs.map((c) => Number(c?.height));
      expect(heights.slice(1)).toEqual(heights.slice(0, -1).map((h) => h + 1));
      const body = { jsonrpc: "2.0", id: 2, method: "lumia_getCertificate", params: [certs[0]?.height] };
      const res = await fetch(httpUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(((await res.json()) as { result: unknown }).result).toEqual(certs[0]);
    } finally {
      socket.terminate();
    }
  }, 30_000);

  it("keeps serving after malformed params, unknown methods and oversized batches, over HTTP and WebSocket", async () => {
    const bad = [
      { request: { jsonrpc: "2.0", id: 1, method: "eth_getBalance", params: ["0xnothex", "latest"] }, code: -32602 },
      { request: { jsonrpc: "2.0", id: 2, method: "eth_nothing", params: [] }, code: -32601 },
      {
        request: Array.from({ length: 101 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "eth_chainId" })),
        code: -32600,
      },
    ];
    const socket = new WebSocket(wsUrl);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    const overWs = (payload: unknown) =>
      new Promise<{ error?: { code: number }; result?: unknown }>((resolve) => {
        socket.once("message", (data) => resolve(JSON.parse(String(data))));
        socket.send(JSON.stringify(payload));
      });
    const overHttp = async (payload: unknown) =>
      (await (
        await fetch(httpUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(payload),
        })
      ).json()) as { error?: { code: number }; result?: unknown };
    try {
      for (const send of [overHttp, overWs]) {
        for (const { request, code } of bad) expect((await send(request)).error?.code).toBe(code);
        const head = await send({ jsonrpc: "2.0", id: 9, method: "eth_blockNumber", params: [] });
        expect(Number(head.result)).toBeGreaterThan(0);
      }
    } finally {
      socket.terminate();
    }
  }, 30_000);
});

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
