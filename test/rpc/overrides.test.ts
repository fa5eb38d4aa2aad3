// State and block overrides of eth_call, eth_estimateGas and debug_traceCall (geth's), on the node's real parts: level
// store, execution core and RPC backend (test/svm/node-fixture.ts), blocks built and committed as a node does. An
// override changes what the call sees and nothing else: the committed state, the next block and later calls are as
// if it never ran.
import { encodeDeployData, encodeFunctionData, getContractAddress, padHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { contracts } from "../fixtures/contracts.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_002n;
const sender = testAccount(1);
const from = addressOf(sender);
const nobody: Hex = "0x00000000000000000000000000000000000000b0";
const word = (n: bigint | number) => padHex(`0x${n.toString(16)}`, { size: 32 });

/** Returns BALANCE(calldata word 0). */
const BALANCE_OF: Hex = "0x6000353160005260206000f3";
/** Returns NUMBER, TIMESTAMP, COINBASE, GASLIMIT, BASEFEE, PREVRANDAO as six words. */
const BLOCK_FIELDS: Hex = "0x43600052426020524160405245606052486080524460a05260c06000f3";
/** SSTORE(0, 1), then returns nothing: a write a plain transfer does not pay for. */
const STORE_ONE: Hex = "0x600160005500";

describe("call overrides", () => {
  let nodes: NodeStates;
  let node: NodeState;
  let counter: Hex = "0x";
  const { Counter } = contracts();
  const eth = (name: string, args: unknown[]) => nodes.eth(node, name, args);
  const count = (overrides?: unknown) =>
    eth("eth_call", [
      { to: counter, data: encodeFunctionData({ abi: Counter.abi, functionName: "count" }) },
      "latest",
      ...(overrides === undefined ? [] : [overrides]),
    ]);

  /** Counter.bump(by), signed by the sender with `nonce`. */
  const bump = (nonce: number, by: bigint) =>
    signRaw(
      sender,
      {
        nonce,
        to: counter,
        gas: 200_000n,
        data: encodeFunctionData({ abi: Counter.abi, functionName: "bump", args: [by] }),
      },
      CHAIN,
    );

  beforeAll(async () => {
    nodes = new NodeStates(singleValidatorGenesis(CHAIN, from, 10n ** 21n));
    ({ state: node } = await nodes.state());
    counter = getContractAddress({ from, nonce: 0n }).toLowerCase() as Hex;
    const deploy = await signRaw(
      sender,
      { nonce: 0, to: null, gas: 2_000_000n, data: encodeDeployData({ abi: Counter.abi, bytecode: Counter.bytecode }) },
      CHAIN,
    );
    await nodes.build(node, [deploy, await bump(1, 7n)]);
  }, 60_000);

  afterAll(async () => {
    await nodes?.close();
  });

  it("code and balance: the call runs the given code and sees the given balance", async () => {
    const probe = "0x00000000000000000000000000000000000000c0";
    const overrides = { [probe]: { code: BALANCE_OF }, [nobody]: { balance: "0x1234" } };
    expect(await eth("eth_call", [{ to: probe, data: word(BigInt(nobody)) }, "latest", overrides])).toBe(word(0x1234));
    // Without them: no code there, nothing returned.
    expect(await eth("eth_call", [{ to: probe, data: word(BigInt(nobody)) }, "latest"])).toBe("0x");
  });

  it("stateDiff changes the slots given; state replaces the whole storage", async () => {
    expect(await count()).toBe(word(7));
    expect(await count({ [counter]: { stateDiff: { "0x0": word(41) } } })).toBe(word(41));
    // lastCaller (slot 1) is untouched by a stateDiff of slot 0, and gone with a state of slot 0 alone.
    const lastCaller = (o?: unknown) =>
      eth("eth_call", [
        { to: counter, data: encodeFunctionData({ abi: Counter.abi, functionName: "lastCaller" }) },
        "latest",
        ...(o === undefined ? [] : [o]),
      ]);
    expect(await lastCaller({ [counter]: { stateDiff: { "0x0": word(41) } } })).toBe(padHex(from, { size: 32 }));
    expect(await lastCaller({ [counter]: { state: { "0x0": word(41) } } })).toBe(word(0));
    expect(await count({ [counter]: { state: { [word(1)]: word(5) } } })).toBe(word(0));
  });

  it("block overrides: the call's block has the given number, time, fee recipient, gas limit, base fee, randao", async () => {
    const probe = "0x00000000000000000000000000000000000000c1";
    const randao = word(0xabcdef);
    const out = (await eth("eth_call", [
      { to: probe },
      "latest",
      { [probe]: { code: BLOCK_FIELDS } },
      {
        number: "0x3e8",
        time: "0x65000000",
        feeRecipient: nobody,
        gasLimit: "0x2faf080",
        baseFeePerGas: "0x7",
        prevRandao: randao,
      },
    ])) as Hex;
    const words = out
      .slice(2)
      .match(/.{64}/g)
      ?.map((w) => BigInt(`0x${w}`));
    expect(words).toEqual([1000n, 0x65000000n, BigInt(nobody), 50_000_000n, 7n, BigInt(randao)]);
  });

  it("eth_estimateGas: the code and balance overrides count", async () => {
    const to = "0x00000000000000000000000000000000000000c2";
    expect(await eth("eth_estimateGas", [{ from, to }])).toBe("0x5208");
    const withCode = BigInt(
      (await eth("eth_estimateGas", [{ from, to }, "latest", { [to]: { code: STORE_ONE } }])) as Hex,
    );
    expect(withCode).toBeGreaterThan(21_000n + 20_000n);
    // A sender without funds cannot buy gas at a price; with a balance override it can.
    const priced = { from: nobody, to, gasPrice: "0x3b9aca00" };
    await expect(eth("eth_estimateGas", [priced])).rejects.toThrow(/gas required exceeds allowance|insufficient funds/);
    expect(await eth("eth_estimateGas", [priced, "latest", { [nobody]: { balance: "0xde0b6b3a7640000" } }])).toBe(
      "0x5208",
    );
  });

  it("debug_traceCall takes the overrides in its config", async () => {
    const probe = "0x00000000000000000000000000000000000000c3";
    const trace = (await eth("debug_traceCall", [
      { from, to: probe, data: word(BigInt(nobody)) },
      "latest",
      { tracer: "callTracer", stateOverrides: { [probe]: { code: BALANCE_OF }, [nobody]: { balance: "0x99" } } },
    ])) as { output: Hex; to: Hex };
    expect(trace).toMatchObject({ to: probe, output: word(0x99) });
  });

  it("leaves no trace: the committed state and the next block are as if no override had run", async () => {
    const before = (await eth("eth_getBlockByNumber", ["latest", false])) as { stateRoot: Hex; number: Hex };
    await count({ [counter]: { state: { "0x0": word(99) } }, [nobody]: { balance: "0x1", code: STORE_ONE } });
    expect(await count()).toBe(word(7));
    expect(await eth("eth_getBalance", [nobody, "latest"])).toBe("0x0");
    expect(await eth("eth_getCode", [nobody, "latest"])).toBe("0x");
    expect(await eth("eth_getStorageAt", [counter, "0x0", "latest"])).toBe(word(7));
    await nodes.build(node, [await bump(2, 1n)]);
    expect(await count()).toBe(word(8));
    const after = (await eth("eth_getBlockByNumber", ["latest", false])) as { stateRoot: Hex; number: Hex };
    expect(BigInt(after.number)).toBe(BigInt(before.number) + 1n);
  });

  it("refuses malformed overrides with what is wrong", async () => {
    const call = (o: unknown, b?: unknown) =>
      eth("eth_call", [{ to: nobody }, "latest", o, ...(b === undefined ? [] : [b])]);
    await expect(call({ [counter]: { state: {}, stateDiff: {} } })).rejects.toThrow(/both state and stateDiff/);
    await expect(call({ [counter]: { movePrecompileToAddress: nobody } })).rejects.toThrow(/movePrecompileToAddress/);
    await expect(call({ "0x12": { balance: "0x1" } })).rejects.toThrow(/20-byte hex address/);
    await expect(call({ [counter]: { stateDiff: { "0xzz": word(1) } } })).rejects.toThrow(/32-byte hex slots/);
    await expect(call({ [counter]: { nonce: `0x1${"0".repeat(16)}` } })).rejects.toThrow(/nonce/);
    await expect(call({ [counter]: { balances: "0x1" } })).rejects.toThrow(/invalid argument/);
    const many = Object.fromEntries(
      Array.from({ length: 257 }, (_, i) => [`0x${(i + 1).toString(16).padStart(40, "0")}`, { balance: "0x1" }]),
    );
    await expect(call(many)).rejects.toThrow(/more than 256 accounts/);
    const slots = Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [word(i), word(1)]));
    await expect(call({ [counter]: { stateDiff: slots } })).rejects.toThrow(/more than 4096 storage slots/);
    await expect(call({}, { blobBaseFee: "0x1" })).rejects.toThrow(/invalid argument/);
    // null and {} are no overrides.
    expect(await call(null, null)).toBe("0x");
    expect(await call({}, {})).toBe("0x");
  });
});
