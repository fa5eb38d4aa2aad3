// eth_sendRawTransactionSync (EIP-7966) against the in-memory chain of fixture.ts: the receipt once a block carrying
// the transaction commits, error 4 with the hash when none does within the wait, the receipt of a transaction already
// committed, and the pool's refusals as eth_sendRawTransaction gives them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { type RpcServer, startRpcServer } from "../../src/rpc/server.ts";
import { alice, buildChain, type ChainFixture, signPing } from "./fixture.ts";

let fx: ChainFixture;
let server: RpcServer;

type Answer = { result?: Record<string, unknown> | null; error?: { code: number; message: string; data?: unknown } };

async function rpc(method: string, params: unknown[]): Promise<Answer> {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return (await response.json()) as Answer;
}

beforeAll(async () => {
  fx = await buildChain();
  server = await startRpcServer({ host: "127.0.0.1", port: 0 }, fx.backend);
});
afterAll(async () => {
  await server?.close();
});

describe("eth_sendRawTransactionSync", () => {
  it("answers the receipt when the block carrying the transaction commits", async () => {
    const raw = await signPing(fx, alice, 71n);
    const admitted = new Promise<void>((resolve) => {
      const stop = fx.backend.onPendingTransaction(() => {
        stop();
        resolve();
      });
    });
    const answer = rpc("eth_sendRawTransactionSync", [raw, 5_000]);
    await admitted;
    await fx.backend.commitBlock([raw]);
    const { result } = await answer;
    expect(result?.status).toBe("0x1");
    expect(result).toEqual((await rpc("eth_getTransactionReceipt", [result?.transactionHash])).result);
    // Sent again once committed: the same receipt, not a refusal.
    expect((await rpc("eth_sendRawTransactionSync", [raw])).result).toEqual(result);
  });

  it("answers error 4 with the hash when nothing commits within the wait", async () => {
    const raw = await signPing(fx, alice, 72n);
    const started = Date.now();
    const { error } = await rpc("eth_sendRawTransactionSync", [raw, "0x96"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(error?.code).toBe(4);
    expect(error?.message).toMatch(/not committed within 150 ms/);
    const hash = error?.data as Hex;
    // It stays in the pool; sent again, it is waited for (not refused as known) and answered when it commits.
    expect((await rpc("eth_getTransactionByHash", [hash])).result?.blockHash).toBeNull();
    const again = rpc("eth_sendRawTransactionSync", [raw, 5_000]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await fx.backend.commitBlock([raw]);
    expect((await again).result).toEqual((await rpc("eth_getTransactionReceipt", [hash])).result);
  });

  it("gives its HTTP slot back while it waits: more waits than slots, and other requests still served", async () => {
    const narrow = await startRpcServer({ host: "127.0.0.1", port: 0, maxConcurrentRequests: 2 }, fx.backend);
    try {
      const post = async (method: string, params: unknown[]) =>
        (await (
          await fetch(narrow.url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
          })
        ).json()) as Answer;
      const raws: Hex[] = [];
      const waits: Promise<Answer>[] = [];
      for (const n of [81n, 82n, 83n]) {
        // Signed once the one before is pooled: the next nonce counts it.
        const raw = await signPing(fx, alice, n);
        raws.push(raw);
        waits.push(post("eth_sendRawTransactionSync", [raw, 5_000]));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await post("eth_chainId", [])).result).toBe(`0x${fx.backend.chainId.toString(16)}`);
      await fx.backend.commitBlock(raws);
      const answers = await Promise.all(waits);
      expect(answers.map((a) => (a.result as { status?: string } | undefined)?.status)).toEqual(["0x1", "0x1", "0x1"]);
    } finally {
      await narrow.close();
    }
  });

  it("gives the pool's refusals at once, as eth_sendRawTransaction does", async () => {
    const started = Date.now();
    const { error } = await rpc("eth_sendRawTransactionSync", ["0x02c0", 5_000]);
    expect(error?.code).toBe(-32000);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await rpc("eth_sendRawTransactionSync", ["0xzz"])).error?.code).toBe(-32602);
  });
});
