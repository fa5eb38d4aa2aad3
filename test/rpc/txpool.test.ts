// txpool_status and txpool_contentFrom on the node's real mempool (test/svm/node-fixture.ts): runnable transactions
// are `pending`, those behind a nonce gap `queued`, shown as eth_getTransactionByHash shows pooled ones.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { addressOf, signRaw, testAccount } from "../execution/helpers.ts";
import { NodeStates, singleValidatorGenesis } from "../svm/node-fixture.ts";

const CHAIN = 31_337_003n;
const sender = testAccount(3);
const from = addressOf(sender);
const to: Hex = "0x00000000000000000000000000000000000000bb";

describe("txpool", () => {
  let nodes: NodeStates;
  let node: NodeState;

  beforeAll(async () => {
    nodes = new NodeStates(singleValidatorGenesis(CHAIN, from, 10n ** 21n));
    ({ state: node } = await nodes.state());
  });
  afterAll(async () => {
    await nodes?.close();
  });

  it("counts runnable and gapped transactions, and lists one sender's by nonce", async () => {
    const eth = (name: string, args: unknown[]) => nodes.eth(node, name, args);
    expect(await eth("txpool_status", [])).toEqual({ pending: "0x0", queued: "0x0" });
    const hashes: Hex[] = [];
    for (const nonce of [0, 1, 3]) {
      const added = await node.mempool.add(await signRaw(sender, { nonce, to, value: 1n }, CHAIN), { kind: "local" });
      if (!added.ok) throw new Error(added.message);
      hashes.push(added.hash);
    }
    expect(await eth("txpool_status", [])).toEqual({ pending: "0x2", queued: "0x1" });
    const content = (await eth("txpool_contentFrom", [from])) as {
      pending: Record<string, unknown>;
      queued: Record<string, unknown>;
    };
    expect(Object.keys(content.pending)).toEqual(["0", "1"]);
    expect(Object.keys(content.queued)).toEqual(["3"]);
    expect(content.pending["1"]).toEqual(await eth("eth_getTransactionByHash", [hashes[1]]));
    expect(content.queued["3"]).toEqual(await eth("eth_getTransactionByHash", [hashes[2]]));
    expect(await eth("txpool_contentFrom", [to])).toEqual({ pending: {}, queued: {} });
    await expect(eth("txpool_contentFrom", ["0x12"])).rejects.toThrow(/address/);
  });
});
