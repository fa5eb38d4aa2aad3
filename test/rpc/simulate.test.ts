// eth_simulateV1 (geth's) on the node's real parts: level store, execution core and RPC backend
// (test/svm/node-fixture.ts), with viem's simulateBlocks through a transport that calls the node's methods. Calls run
// in order on one private state, each seeing what the ones before it left, across blocks; traceTransfers gives the
// native coin's movements as ERC-7528 Transfer logs among the real ones; validation checks nonces, balances and the
// base fee as a real transaction; what cannot run fails the whole request with geth's code; nothing is left behind.
import {
  createPublicClient,
  custom,
  encodeDeployData,
  encodeFunctionData,
  getContractAddress,
  keccak256,
  padHex,
  toHex,
  type Hex as ViemHex,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { contracts } from "../fixtures/contracts.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_003n;
const sender = testAccount(1);
const from = addressOf(sender);
const nobody: Hex = "0x00000000000000000000000000000000000000b0";
const EMITTER = `0x${"ee".repeat(20)}`;
const TRANSFER = keccak256(toHex("Transfer(address,address,uint256)"));
const topic = (address: string) => padHex(address as ViemHex, { size: 32 }).toLowerCase();

describe("eth_simulateV1", () => {
  let nodes: NodeStates;
  let node: NodeState;
  let counter: Hex = "0x";
  let probe: Hex = "0x";
  let reverter: Hex = "0x";
  const { Counter, Probe, Reverter } = contracts();
  const eth = (name: string, args: unknown[]) => nodes.eth(node, name, args);
  const client = () =>
    createPublicClient({
      transport: custom({ request: ({ method, params }) => eth(method, (params ?? []) as unknown[]) }),
    });
  const count = async () =>
    BigInt(
      (await eth("eth_call", [
        { to: counter, data: encodeFunctionData({ abi: Counter.abi, functionName: "count" }) },
        "latest",
      ])) as string,
    );
  const simulateError = async (payload: unknown) => {
    try {
      await eth("eth_simulateV1", [payload, "latest"]);
    } catch (error) {
      return error as Error & { code: number };
    }
    throw new Error("eth_simulateV1 answered");
  };

  beforeAll(async () => {
    nodes = new NodeStates(singleValidatorGenesis(CHAIN, from, 10n ** 21n));
    ({ state: node } = await nodes.state());
    const deploy = (nonce: number, c: { abi: typeof Counter.abi; bytecode: ViemHex }) =>
      signRaw(
        sender,
        { nonce, to: null, gas: 3_000_000n, data: encodeDeployData({ abi: c.abi, bytecode: c.bytecode }) },
        CHAIN,
      );
    counter = getContractAddress({ from, nonce: 0n }).toLowerCase() as Hex;
    probe = getContractAddress({ from, nonce: 1n }).toLowerCase() as Hex;
    reverter = getContractAddress({ from, nonce: 2n }).toLowerCase() as Hex;
    const bump = await signRaw(
      sender,
      {
        nonce: 3,
        to: counter,
        gas: 200_000n,
        data: encodeFunctionData({ abi: Counter.abi, functionName: "bump", args: [7n] }),
      },
      CHAIN,
    );
    await nodes.build(node, [await deploy(0, Counter), await deploy(1, Probe), await deploy(2, Reverter), bump]);
  }, 60_000);

  afterAll(async () => {
    await nodes?.close();
  });

  it("runs calls in order on one state, across blocks, and leaves nothing behind", async () => {
    const head = Number(await eth("eth_blockNumber", []));
    const balanceBefore = await eth("eth_getBalance", [nobody, "latest"]);
    const blocks = await client().simulateBlocks({
      blocks: [
        {
          calls: [
            { account: from, to: nobody, value: 1_000n },
            { account: from, to: counter, abi: Counter.abi, functionName: "bump", args: [5n] },
            { account: from, to: counter, abi: Counter.abi, functionName: "count" },
          ],
        },
        {
          blockOverrides: { number: BigInt(head + 2) },
          stateOverrides: [{ address: nobody, balance: 5n }],
          calls: [
            { account: from, to: counter, abi: Counter.abi, functionName: "count" },
            { account: from, to: probe, abi: Probe.abi, functionName: "hashOf", args: [BigInt(head + 1)] },
          ],
        },
      ],
    });
    expect(blocks.map((b) => Number(b.number))).toEqual([head + 1, head + 2]);
    const [first, last] = blocks;
    expect(first?.calls.map((c) => c.status)).toEqual(["success", "success", "success"]);
    expect(first?.calls[2]?.result).toBe(12n);
    expect(first?.calls[0]?.gasUsed).toBe(21_000n);
    expect(first?.calls[1]?.logs?.[0]?.address).toBe(counter);
    expect(first?.gasUsed).toBe(first?.calls.reduce((n, c) => n + c.gasUsed, 0n));
    expect(last?.parentHash).toBe(first?.hash);
    // The bump of the first block is seen by the last; BLOCKHASH of a simulated block is its simulated hash.
    expect(last?.calls[0]?.result).toBe(12n);
    expect(last?.calls[1]?.result).toBe(first?.hash);
    expect(Number(last?.timestamp)).toBeGreaterThan(Number(first?.timestamp));
    // Without validation the base fee is 0, as for eth_call.
    expect(first?.baseFeePerGas).toBe(0n);

    expect(await count()).toBe(7n);
    expect(await eth("eth_getBalance", [nobody, "latest"])).toBe(balanceBefore);
    expect(Number(await eth("eth_blockNumber", []))).toBe(head);
  });

  it("fills a gap between block numbers with empty blocks", async () => {
    const head = Number(await eth("eth_blockNumber", []));
    const blocks = (await eth("eth_simulateV1", [
      {
        blockStateCalls: [
          { blockOverrides: { number: `0x${(head + 3).toString(16)}` }, calls: [{ from, to: nobody }] },
        ],
      },
      "latest",
    ])) as { number: string; hash: string; parentHash: string; timestamp: string; calls: unknown[] }[];
    expect(blocks.map((b) => Number(b.number))).toEqual([head + 1, head + 2, head + 3]);
    expect(blocks.map((b) => b.calls.length)).toEqual([0, 0, 1]);
    expect(blocks[1]?.parentHash).toBe(blocks[0]?.hash);
    expect(blocks[2]?.parentHash).toBe(blocks[1]?.hash);
    expect(Number(blocks[2]?.timestamp)).toBeGreaterThan(Number(blocks[1]?.timestamp));
  });

  it("gives reverts and halts per call, with the revert data, and goes on with the next call", async () => {
    const [block] = (await eth("eth_simulateV1", [
      {
        blockStateCalls: [
          {
            calls: [
              { from, to: counter, data: encodeFunctionData({ abi: Counter.abi, functionName: "fail" }) },
              {
                from,
                to: reverter,
                data: encodeFunctionData({ abi: Reverter.abi, functionName: "panic", args: [0n] }),
              },
              {
                from,
                to: counter,
                data: encodeFunctionData({ abi: Counter.abi, functionName: "bump", args: [1n] }),
                gas: "0x61a8",
              },
              { from, to: counter, data: encodeFunctionData({ abi: Counter.abi, functionName: "bump", args: [1n] }) },
            ],
          },
        ],
      },
      "latest",
    ])) as {
      calls: { status: string; returnData: string; error?: { code: number; message: string; data?: string } }[];
    }[];
    const [fail, panic, outOfGas, ok] = block?.calls ?? [];
    expect(fail?.status).toBe("0x0");
    expect(fail?.error).toMatchObject({ code: -32000, message: "execution reverted: counter says no" });
    expect(fail?.error?.data).toBe(fail?.returnData);
    expect(panic?.error?.code).toBe(-32000);
    expect(outOfGas?.status).toBe("0x0");
    expect(outOfGas?.error).toEqual({ code: -32015, message: "out of gas" });
    expect(ok?.status).toBe("0x1");
  });

  it("traceTransfers: the native coin's movements as Transfer logs of 0xeeee…, in order with the real logs", async () => {
    const [block] = await client().simulateBlocks({
      traceTransfers: true,
      blocks: [
        {
          calls: [
            { account: from, to: probe, abi: Probe.abi, functionName: "forward", args: [nobody, 2n], value: 5n },
            {
              account: from,
              to: probe,
              abi: Probe.abi,
              functionName: "ping",
              args: [9n, padHex("0x01", { size: 32 }), "0xab"],
              value: 1n,
            },
            { account: from, to: probe, abi: Probe.abi, functionName: "tryFail", args: [reverter, "inner"] },
          ],
        },
      ],
    });
    const [forward, ping, tryFail] = block?.calls ?? [];
    expect(forward?.logs?.map((l) => [l.address, l.topics, l.data])).toEqual([
      [EMITTER, [TRANSFER, topic(from), topic(probe)], padHex("0x5", { size: 32 })],
      [EMITTER, [TRANSFER, topic(probe), topic(nobody)], padHex("0x2", { size: 32 })],
    ]);
    expect(ping?.logs?.map((l) => l.address)).toEqual([EMITTER, probe, probe]);
    expect(ping?.logs?.[0]?.topics).toEqual([TRANSFER, topic(from), topic(probe)]);
    // The inner call failed: nothing of it stays; the catching frame's Caught event does.
    expect(tryFail?.logs?.map((l) => l.address)).toEqual([probe]);
    expect(block?.calls.flatMap((c) => c.logs ?? []).map((l) => l.logIndex)).toEqual([0, 1, 2, 3, 4, 5]);
    // Without the flag: the real logs alone.
    const [plain] = await client().simulateBlocks({
      blocks: [
        {
          calls: [{ account: from, to: probe, abi: Probe.abi, functionName: "forward", args: [nobody, 2n], value: 5n }],
        },
      ],
    });
    expect(plain?.calls[0]?.logs).toEqual([]);
  });

  it("validation: nonces, balances and the base fee as for a real transaction; full transactions on request", async () => {
    const nonce = Number(await eth("eth_getTransactionCount", [from, "latest"]));
    const [block] = (await eth("eth_simulateV1", [
      {
        validation: true,
        returnFullTransactions: true,
        blockStateCalls: [
          {
            calls: [
              { from, to: nobody, value: "0x1", maxFeePerGas: "0x3b9aca00" },
              { from, to: nobody, value: "0x1", maxFeePerGas: "0x3b9aca00", nonce: `0x${(nonce + 1).toString(16)}` },
            ],
          },
        ],
      },
      "latest",
    ])) as {
      baseFeePerGas: string;
      transactions: { from: string; nonce: string; hash: string }[];
      calls: { status: string }[];
    }[];
    expect(block?.calls.map((c) => c.status)).toEqual(["0x1", "0x1"]);
    expect(block?.transactions.map((t) => [t.from, Number(t.nonce)])).toEqual([
      [from, nonce],
      [from, nonce + 1],
    ]);
    expect(new Set(block?.transactions.map((t) => t.hash)).size).toBe(2);
    expect(BigInt(block?.baseFeePerGas ?? "0x0")).toBeGreaterThan(0n);

    const call = (extra: Record<string, unknown>) => ({
      validation: true,
      blockStateCalls: [{ calls: [{ from, to: nobody, value: "0x1", maxFeePerGas: "0x3b9aca00", ...extra }] }],
    });
    expect((await simulateError(call({ nonce: `0x${(nonce + 5).toString(16)}` }))).code).toBe(-38011);
    expect((await simulateError(call({ nonce: "0x0" }))).code).toBe(-38010);
    expect((await simulateError(call({ from: nobody }))).code).toBe(-38014);
    expect((await simulateError(call({ maxFeePerGas: "0x0" }))).code).toBe(-38012);
    expect((await simulateError(call({ gas: "0x100" }))).code).toBe(-38013);
    // The same calls without validation run as eth_call does.
    const loose = (await eth("eth_simulateV1", [
      { blockStateCalls: [{ calls: [{ from: nobody, to: from, value: "0x1", nonce: "0x9" }] }] },
      "latest",
    ])) as { calls: { status: string }[] }[];
    expect(loose[0]?.calls[0]?.status).toBe("0x1");
  });

  it("refuses what cannot be simulated, with geth's codes", async () => {
    const head = Number(await eth("eth_blockNumber", []));
    const block = (o: Record<string, unknown>) => ({ blockOverrides: o, calls: [] });
    expect((await simulateError({ blockStateCalls: [block({ number: `0x${head.toString(16)}` })] })).code).toBe(-38020);
    expect((await simulateError({ blockStateCalls: [block({ time: "0x10" }), block({ time: "0x10" })] })).code).toBe(
      -38021,
    );
    expect((await simulateError({ blockStateCalls: [block({ number: `0x${(head + 300).toString(16)}` })] })).code).toBe(
      -38026,
    );
    expect((await simulateError({ blockStateCalls: Array.from({ length: 257 }, () => ({})) })).code).toBe(-38026);
    expect(
      (await simulateError({ blockStateCalls: [{ calls: [{ from, to: nobody, gas: "0x7fffffffffff" }] }] })).code,
    ).toBe(-38015);
    expect((await simulateError({ blockStateCalls: [{ calls: [{ to: "0x12" }] }] })).code).toBe(-32602);
    expect((await simulateError({ calls: [] })).code).toBe(-32602);
  });
});
