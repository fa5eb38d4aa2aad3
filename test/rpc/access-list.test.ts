// eth_createAccessList (and eth_call / eth_estimateGas with an access list) on the node's real parts: level store,
// execution core and RPC backend (test/svm/node-fixture.ts), blocks built and committed as a node does. The list a
// call gets is geth's: what it touched apart from the sender, the recipient and precompiles; its gasUsed is what a
// transaction carrying that list then really spends in a block.
import { encodeDeployData, encodeFunctionData, getContractAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { contracts } from "../fixtures/contracts.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_001n;
const sender = testAccount(1);
const from = addressOf(sender);
const SLOT0: Hex = `0x${"00".repeat(32)}`;

describe("eth_createAccessList", () => {
  let genesis: Genesis;
  let nodes: NodeStates;
  let node: NodeState;
  let nonce = 0;
  let probe: Hex = "0x";
  let reverter: Hex = "0x";
  const { Probe, Reverter, Counter } = contracts();

  const height = (raws: readonly Uint8Array[]) => nodes.build(node, raws);
  const eth = (name: string, args: unknown[]) => nodes.eth(node, name, args);

  beforeAll(async () => {
    genesis = singleValidatorGenesis(CHAIN, from, 10n ** 21n);
    nodes = new NodeStates(genesis);
    ({ state: node } = await nodes.state());
    probe = getContractAddress({ from, nonce: 0n }).toLowerCase() as Hex;
    reverter = getContractAddress({ from, nonce: 1n }).toLowerCase() as Hex;
    const deploy = (c: { abi: unknown; bytecode: unknown }) =>
      signRaw(
        sender,
        {
          nonce: nonce++,
          to: null,
          gas: 2_000_000n,
          data: encodeDeployData({ abi: c.abi, bytecode: c.bytecode } as Parameters<typeof encodeDeployData>[0]),
        },
        CHAIN,
      );
    await height([await deploy(Probe), await deploy(Reverter)]);
  }, 60_000);

  afterAll(async () => {
    await nodes?.close();
  });

  it("lists what a call touched beyond its own contract; a transaction carrying it spends the gas answered", async () => {
    const data = encodeFunctionData({ abi: Probe.abi, functionName: "tryFail", args: [reverter, "no"] });
    const answer = (await eth("eth_createAccessList", [{ from, to: probe, data }])) as {
      accessList: { address: Hex; storageKeys: Hex[] }[];
      gasUsed: Hex;
      error?: string;
    };
    // The Reverter and the slot its fail() wrote before reverting; not the sender, not the probe itself.
    expect(answer).toEqual({ accessList: [{ address: reverter, storageKeys: [SLOT0] }], gasUsed: expect.any(String) });
    // Asked again with that list, the same list: it is settled.
    expect(await eth("eth_createAccessList", [{ from, to: probe, data, accessList: answer.accessList }])).toEqual(
      answer,
    );

    // eth_estimateGas takes the list too, and lands within its 1.5% of the gas answered.
    const estimate = BigInt(
      (await eth("eth_estimateGas", [{ from, to: probe, data, accessList: answer.accessList }])) as Hex,
    );
    expect(estimate).toBeGreaterThanOrEqual(BigInt(answer.gasUsed));
    expect(Number(estimate)).toBeLessThan(Number(answer.gasUsed) * 1.02);
    const withList = await signRaw(
      sender,
      { nonce: nonce++, to: probe, gas: 200_000n, data, accessList: answer.accessList as never },
      CHAIN,
    );
    await height([withList]);
    const block = (await eth("eth_getBlockByNumber", ["latest", false])) as { transactions: Hex[] };
    const receipt = (await eth("eth_getTransactionReceipt", [block.transactions[0]])) as { gasUsed: Hex };
    const spentWith = BigInt(receipt.gasUsed);
    expect(spentWith).toBe(BigInt(answer.gasUsed));
  });

  it("answers an empty list for a call that touches nothing else, and says why a call failed", async () => {
    const counterAddress = getContractAddress({ from, nonce: BigInt(nonce) }).toLowerCase() as Hex;
    await height([
      await signRaw(
        sender,
        {
          nonce: nonce++,
          to: null,
          gas: 1_000_000n,
          data: encodeDeployData({ abi: Counter.abi, bytecode: Counter.bytecode } as Parameters<
            typeof encodeDeployData
          >[0]),
        },
        CHAIN,
      ),
    ]);
    const bump = encodeFunctionData({ abi: Counter.abi, functionName: "bump", args: [3n] });
    const own = (await eth("eth_createAccessList", [{ from, to: counterAddress, data: bump }])) as {
      accessList: unknown[];
    };
    expect(own.accessList).toEqual([]);
    const fail = encodeFunctionData({ abi: Counter.abi, functionName: "fail", args: [] });
    expect(await eth("eth_createAccessList", [{ from, to: counterAddress, data: fail }])).toEqual({
      accessList: [],
      gasUsed: expect.any(String),
      error: "execution reverted: counter says no",
    });
    // A creation: the contract it makes is not listed.
    const creation = (await eth("eth_createAccessList", [
      {
        from,
        data: encodeDeployData({ abi: Counter.abi, bytecode: Counter.bytecode } as Parameters<
          typeof encodeDeployData
        >[0]),
      },
    ])) as { accessList: unknown[] };
    expect(creation.accessList).toEqual([]);
    await expect(
      eth("eth_createAccessList", [{ from, to: probe, data: "0x", accessList: [{ address: "0x12" }] }]),
    ).rejects.toThrow(/accessList/);
  });
});
