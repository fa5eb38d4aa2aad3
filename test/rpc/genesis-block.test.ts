// Block 0 over JSON-RPC on the node's real parts (test/svm/node-fixture.ts): the genesis is genesis.json, not a stored
// block, and the node shows it as a block whose hash is block 1's parentHash, with the genesis state roots, so tools
// that walk the chain from 0 (indexers, explorers) find it; state reads and calls at block 0 use that state.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_004n;
const sender = testAccount(4);
const from = addressOf(sender);

describe("block 0", () => {
  let genesis: Genesis;
  let nodes: NodeStates;
  let node: NodeState;

  beforeAll(async () => {
    genesis = singleValidatorGenesis(CHAIN, from, 10n ** 21n);
    nodes = new NodeStates(genesis);
    ({ state: node } = await nodes.state());
    await nodes.build(node, [await signRaw(sender, { nonce: 0, to: `0x${"bb".repeat(20)}`, value: 1n }, CHAIN)]);
  });
  afterAll(async () => {
    await nodes?.close();
  });

  it("is the genesis, chained to block 1, with its state", async () => {
    const eth = (name: string, args: unknown[]) => nodes.eth(node, name, args);
    const zero = (await eth("eth_getBlockByNumber", ["0x0", false])) as Record<string, unknown>;
    const one = (await eth("eth_getBlockByNumber", ["0x1", false])) as Record<string, unknown>;
    expect(zero.number).toBe("0x0");
    expect(zero.hash).toBe(genesis.hash);
    expect(one.parentHash).toBe(genesis.hash);
    expect(zero.transactions).toEqual([]);
    expect(zero.gasUsed).toBe("0x0");
    expect(zero.gasLimit).toBe(`0x${genesis.execution.gasLimit.toString(16)}`);
    expect(zero.baseFeePerGas).toBe(`0x${genesis.execution.baseFeePerGas.toString(16)}`);
    expect(zero.timestamp).toBe(`0x${Math.floor(genesis.genesisTimeMs / 1000).toString(16)}`);
    expect(await eth("eth_getBlockByNumber", ["earliest", true])).toEqual({ ...zero, transactions: [] });
    expect(await eth("eth_getBlockByHash", [genesis.hash, false])).toEqual(zero);
    expect(await eth("eth_getBlockReceipts", ["0x0"])).toEqual([]);
    expect(await eth("eth_getBlockTransactionCountByNumber", ["0x0"])).toBe("0x0");
    // The state at block 0 is the genesis allocation, for reads and for calls.
    expect(await eth("eth_getBalance", [from, "0x0"])).toBe(`0x${(10n ** 21n).toString(16)}`);
    expect(await eth("eth_call", [{ from, to: `0x${"bb".repeat(20)}` }, "0x0"])).toBe("0x");
    expect(await eth("eth_getBalance", [`0x${"bb".repeat(20)}` as Hex, "0x0"])).toBe("0x0");
  });
});
