// debug_traceTransaction, debug_traceBlockByNumber/ByHash and debug_traceCall on the node's real parts (level store,
// execution core, block executor, RPC backend: test/svm/node-fixture.ts). A trace comes from replaying the committed
// block on its parent's state, checked against the header's roots; the callTracer's tree and the opcode logger's
// steps are checked against what the transactions did (receipts, calls, storage).
import { encodeAbiParameters, encodeDeployData, encodeFunctionData, getContractAddress, keccak256 } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import type { CallFrame } from "../../src/execution/tracers.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import type { RpcBackend } from "../../src/rpc/backend.ts";
import { createMethods, DEFAULT_METHOD_LIMITS } from "../../src/rpc/methods.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { contracts } from "../fixtures/contracts.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_002n;
const sender = testAccount(2);
const from = addressOf(sender);
const other: Hex = "0x00000000000000000000000000000000000c0ffe";

type StructLog = {
  pc: number;
  op: string;
  gas: number;
  gasCost: number;
  depth: number;
  stack?: Hex[];
  memory?: string[];
  storage?: Record<string, string>;
};
type OpcodeTrace = { gas: number; failed: boolean; returnValue: string; structLogs: StructLog[] };

describe("debug tracing", () => {
  let nodes: NodeStates;
  let node: NodeState;
  let nonce = 0;
  let probe: Hex = "0x";
  let reverter: Hex = "0x";
  const { Probe, Reverter } = contracts();
  const hashes: Hex[] = [];
  let tracedHeight = 0;

  const eth = (name: string, args: unknown[]) => nodes.eth(node, name, args);
  const sign = (fields: Parameters<typeof signRaw>[1]) => signRaw(sender, { nonce: nonce++, ...fields }, CHAIN);
  const failData = encodeFunctionData({ abi: Reverter.abi, functionName: "fail", args: ["no"] });
  const receipt = async (hash: Hex) => (await eth("eth_getTransactionReceipt", [hash])) as { gasUsed: Hex };
  const nonceOf = (hash: Hex) => 2 + hashes.indexOf(hash);

  beforeAll(async () => {
    nodes = new NodeStates(singleValidatorGenesis(CHAIN, from, 10n ** 21n));
    ({ state: node } = await nodes.state());
    probe = getContractAddress({ from, nonce: 0n }).toLowerCase() as Hex;
    reverter = getContractAddress({ from, nonce: 1n }).toLowerCase() as Hex;
    const deploy = (c: { abi: unknown; bytecode: unknown }) =>
      sign({
        to: null,
        gas: 2_000_000n,
        data: encodeDeployData({ abi: c.abi, bytecode: c.bytecode } as Parameters<typeof encodeDeployData>[0]),
      });
    await nodes.build(node, [await deploy(Probe), await deploy(Reverter)]);
    // One block: a plain transfer, a call whose inner call reverts, a call that writes storage and logs.
    const raws = [
      await sign({ to: other, value: 5n }),
      await sign({
        to: probe,
        gas: 200_000n,
        data: encodeFunctionData({ abi: Probe.abi, functionName: "tryFail", args: [reverter, "no"] }),
      }),
      await sign({
        to: probe,
        gas: 200_000n,
        data: encodeFunctionData({ abi: Probe.abi, functionName: "set", args: [7n, 9n] }),
      }),
    ];
    const block = await nodes.build(node, raws);
    tracedHeight = block.header.height;
    const listed = (await eth("eth_getBlockByNumber", [`0x${tracedHeight.toString(16)}`, false])) as {
      transactions: Hex[];
    };
    hashes.push(...listed.transactions);
    // Later blocks: the traced block is no longer the head, so the replay starts from a stored parent state.
    await nodes.build(node, [await sign({ to: other, value: 1n })]);
  }, 60_000);

  afterAll(async () => {
    await nodes?.close();
  });

  it("callTracer: the tree of calls with gas, input, output and the inner revert", async () => {
    const [transfer, tryFail] = hashes as [Hex, Hex, Hex];
    const top = (await eth("debug_traceTransaction", [tryFail, { tracer: "callTracer" }])) as CallFrame;
    expect(top).toMatchObject({
      type: "CALL",
      from,
      to: probe,
      value: "0x0",
      gas: `0x${(200_000).toString(16)}`,
      gasUsed: (await receipt(tryFail)).gasUsed,
      input: encodeFunctionData({ abi: Probe.abi, functionName: "tryFail", args: [reverter, "no"] }),
      output: "0x",
    });
    expect(top.error).toBeUndefined();
    expect(top.calls).toHaveLength(1);
    const inner = top.calls?.[0] as CallFrame;
    expect(inner).toMatchObject({
      type: "CALL",
      from: probe,
      to: reverter,
      value: "0x0",
      input: failData,
      error: "execution reverted",
      revertReason: "no",
    });
    // The revert data is Error("no"), as Solidity encodes it.
    expect(inner.output).toBe(`0x08c379a0${encodeAbiParameters([{ type: "string" }], ["no"]).slice(2)}`);
    expect(BigInt(inner.gasUsed)).toBeLessThan(BigInt(inner.gas));

    const plain = (await eth("debug_traceTransaction", [transfer, { tracer: "callTracer" }])) as CallFrame;
    expect(plain).toEqual({
      type: "CALL",
      from,
      to: other,
      value: "0x5",
      gas: "0x5208",
      gasUsed: "0x5208",
      input: "0x",
      output: "0x",
    });
    const onlyTop = (await eth("debug_traceTransaction", [
      tryFail,
      { tracer: "callTracer", tracerConfig: { onlyTopCall: true } },
    ])) as CallFrame;
    expect(onlyTop.calls).toBeUndefined();
    expect(onlyTop.gasUsed).toBe(top.gasUsed);

    // withLog: each frame's logs, as the receipt has them, at the index of the calls made before each.
    const withLogs = (await eth("debug_traceTransaction", [
      tryFail,
      { tracer: "callTracer", tracerConfig: { withLog: true } },
    ])) as CallFrame;
    const logs = ((await eth("eth_getTransactionReceipt", [tryFail])) as { logs: { topics: Hex[]; data: Hex }[] }).logs;
    expect(logs).toHaveLength(1);
    expect(withLogs.logs).toEqual([{ address: probe, topics: logs[0]?.topics, data: logs[0]?.data, position: "0x1" }]);
    expect(withLogs.calls?.[0]?.logs).toBeUndefined();
    expect(top.logs).toBeUndefined();
  });

  it("prestateTracer: what a transaction touched as it was before it, and in diffMode what it changed", async () => {
    const [transfer, , setSlot] = hashes as [Hex, Hex, Hex];
    type Account = { balance: Hex; nonce?: number; code?: Hex; storage?: Record<string, Hex> };
    const slot = keccak256(encodeAbiParameters([{ type: "uint256" }, { type: "uint256" }], [7n, 0n]));
    const pre = (await eth("debug_traceTransaction", [setSlot, { tracer: "prestateTracer" }])) as Record<Hex, Account>;
    // The sender (before its third transaction of the block), the contract with its code and the slot it wrote, the fee
    // recipient; nothing else.
    expect(pre[from]?.nonce).toBe(nonceOf(setSlot));
    expect(pre[probe]).toEqual({
      balance: "0x0",
      nonce: 1,
      code: await eth("eth_getCode", [probe, "latest"]),
      storage: { [slot]: `0x${"00".repeat(32)}` },
    });
    expect(Object.keys(pre)).toHaveLength(3);
    const noCode = (await eth("debug_traceTransaction", [
      setSlot,
      { tracer: "prestateTracer", tracerConfig: { disableCode: true, disableStorage: true } },
    ])) as Record<Hex, Account>;
    expect(noCode[probe]).toEqual({ balance: "0x0", nonce: 1 });

    // diffMode: the slot 0 -> 9, the sender's nonce + 1 and its balance down by the fee, the fee recipient's up.
    const diff = (await eth("debug_traceTransaction", [
      setSlot,
      { tracer: "prestateTracer", tracerConfig: { diffMode: true } },
    ])) as { pre: Record<Hex, Account>; post: Record<Hex, Partial<Account>> };
    expect(diff.post[probe]).toEqual({ storage: { [slot]: `0x${(9).toString(16).padStart(64, "0")}` } });
    const r = (await eth("eth_getTransactionReceipt", [setSlot])) as { gasUsed: Hex; effectiveGasPrice: Hex };
    const fee = BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
    expect(BigInt(diff.pre[from]?.balance ?? 0) - BigInt(diff.post[from]?.balance ?? 0)).toBe(fee);
    expect(diff.post[from]?.nonce).toBe((diff.pre[from]?.nonce ?? 0) + 1);

    // A plain transfer: the recipient up by the value.
    const moved = (await eth("debug_traceTransaction", [
      transfer,
      { tracer: "prestateTracer", tracerConfig: { diffMode: true } },
    ])) as { pre: Record<Hex, Account>; post: Record<Hex, Partial<Account>> };
    expect(BigInt(moved.post[other]?.balance ?? 0) - BigInt(moved.pre[other]?.balance ?? 0)).toBe(5n);

    // debug_traceCall, with a state override: the overridden balance is the state before.
    const called = (await eth("debug_traceCall", [
      { from: other, to: probe, data: encodeFunctionData({ abi: Probe.abi, functionName: "set", args: [1n, 2n] }) },
      "latest",
      { tracer: "prestateTracer", stateOverrides: { [other]: { balance: "0x77" } } },
    ])) as Record<Hex, Account>;
    expect(called[other]?.balance).toBe("0x77");
    expect(Object.keys(called[probe]?.storage ?? {})).toHaveLength(1);
  });

  it("opcode logger: every step, with stack, storage and (when asked) memory", async () => {
    const [transfer, , setSlot] = hashes as [Hex, Hex, Hex];
    const trace = (await eth("debug_traceTransaction", [setSlot])) as OpcodeTrace;
    expect(trace.gas).toBe(Number((await receipt(setSlot)).gasUsed));
    expect(trace.failed).toBe(false);
    expect(trace.returnValue).toBe("");
    const logs = trace.structLogs;
    expect(logs.length).toBeGreaterThan(20);
    expect(logs[0]).toMatchObject({ pc: 0, op: "PUSH1", depth: 1, stack: [] });
    for (let i = 1; i < logs.length; i++) {
      // Remaining gas falls by each step's cost.
      expect((logs[i - 1] as StructLog).gas - (logs[i - 1] as StructLog).gasCost).toBe((logs[i] as StructLog).gas);
    }
    const store = logs.find((l) => l.op === "SSTORE");
    // slots[7] = 9: the key is keccak256(7 . 0), the value 9.
    expect(store?.storage).toBeDefined();
    expect(Object.values(store?.storage ?? {})).toEqual([`${"0".repeat(63)}9`]);
    expect(logs.at(-1)?.op).toBe("STOP");

    const lean = (await eth("debug_traceTransaction", [
      setSlot,
      { disableStack: true, disableStorage: true },
    ])) as OpcodeTrace;
    expect(lean.structLogs).toHaveLength(logs.length);
    expect(lean.structLogs.every((l) => l.stack === undefined && l.storage === undefined)).toBe(true);
    const withMemory = (await eth("debug_traceTransaction", [
      setSlot,
      { enableMemory: true, limit: 12 },
    ])) as OpcodeTrace;
    expect(withMemory.structLogs).toHaveLength(12);
    // After PUSH1 0x80 PUSH1 0x40 MSTORE, memory holds the free memory pointer.
    const afterMstore = withMemory.structLogs[3] as StructLog;
    expect(afterMstore.memory?.[2]).toBe(`${"0".repeat(62)}80`);

    const plain = (await eth("debug_traceTransaction", [transfer])) as OpcodeTrace;
    expect(plain).toEqual({ gas: 21_000, failed: false, returnValue: "", structLogs: [] });
  });

  it("traces whole blocks by number and hash, each transaction as alone", async () => {
    const tag = `0x${tracedHeight.toString(16)}`;
    const byNumber = (await eth("debug_traceBlockByNumber", [tag, { tracer: "callTracer" }])) as {
      txHash: Hex;
      result: CallFrame;
    }[];
    expect(byNumber.map((t) => t.txHash)).toEqual(hashes);
    for (const [i, hash] of hashes.entries()) {
      expect(byNumber[i]?.result).toEqual(await eth("debug_traceTransaction", [hash, { tracer: "callTracer" }]));
    }
    const block = (await eth("eth_getBlockByNumber", [tag, false])) as { hash: Hex };
    expect(await eth("debug_traceBlockByHash", [block.hash, { tracer: "callTracer" }])).toEqual(byNumber);
    await expect(eth("debug_traceBlockByNumber", ["0x0"])).rejects.toThrow(/genesis is not traceable/);
    // Block 1, replayed on the genesis state: the two creations, each frame naming the contract it made.
    const creations = (await eth("debug_traceBlockByNumber", ["0x1", { tracer: "callTracer" }])) as {
      result: CallFrame;
    }[];
    expect(creations.map((c) => [c.result.type, c.result.from, c.result.to, c.result.error])).toEqual([
      ["CREATE", from, probe, undefined],
      ["CREATE", from, reverter, undefined],
    ]);
    await expect(eth("debug_traceBlockByNumber", ["0x999"])).rejects.toThrow(/block not found/);
    await expect(eth("debug_traceTransaction", [`0x${"ab".repeat(32)}`])).rejects.toThrow(/not found/);
  });

  it("traces a call on any kept state, and refuses traces it cannot give whole", async () => {
    const data = encodeFunctionData({ abi: Probe.abi, functionName: "tryFail", args: [reverter, "no"] });
    const call = (await eth("debug_traceCall", [
      { from, to: probe, data },
      "latest",
      { tracer: "callTracer" },
    ])) as CallFrame;
    expect(call).toMatchObject({
      type: "CALL",
      from,
      to: probe,
      calls: [{ to: reverter, error: "execution reverted" }],
    });

    const burn = encodeFunctionData({ abi: Reverter.abi, functionName: "burn", args: [5_000n] });
    await expect(eth("debug_traceCall", [{ from, to: reverter, data: burn }, "latest"])).rejects.toThrow(
      /more than 100000 steps/,
    );
    const first = (await eth("debug_traceCall", [
      { from, to: reverter, data: burn },
      "latest",
      { limit: 10 },
    ])) as OpcodeTrace;
    expect(first.structLogs).toHaveLength(10);

    await expect(eth("debug_traceTransaction", [hashes[0], { tracer: "4byteTracer" }])).rejects.toThrow(/tracer/);
    // Without the debug API (config rpc.debug false), the methods do not exist.
    const without = createMethods({ chainId: CHAIN } as RpcBackend, DEFAULT_METHOD_LIMITS);
    expect([...without.keys()].filter((name) => name.startsWith("debug_"))).toEqual([]);
  });
});
