// The pool's Solana lane (src/mempool/svm-lane.ts) over a hand-made head (its own narrow interface), and the Solana
// JSON-RPC refusal mapping and error rendering (src/rpc/solana.ts).
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../consensus/bytes.ts";
import { SVM_TX_PREFIX } from "../../src/chain/block.ts";
import { svmBlockhash } from "../../src/execution/svm/blockhash.ts";
import { type SvmHeadView, SvmLane } from "../../src/mempool/svm-lane.ts";
import { createSolanaMethods, type SolanaRpcBackend, transactionErrorJson } from "../../src/rpc/solana.ts";
import { buildTx, l2Hash, SOL, signer, transferIx } from "./helpers.ts";

const entry = (wire: Uint8Array) => concatBytes(Uint8Array.of(SVM_TX_PREFIX), wire);

function head(window: readonly string[], lamports: ReadonlyMap<string, bigint>, processed = new Set<string>()) {
  const set = new Set(window);
  const view: SvmHeadView = {
    window: () => set,
    lamports: async (a) => lamports.get(a) ?? null,
    processedAt: async (s) => (processed.has(s) ? 1n : null),
  };
  return view;
}

describe("SVM pool lane", () => {
  it("is bounded, serves arrival order within budgets, drops included and expired transactions", async () => {
    const payer = await signer(1);
    const to = (await signer(2)).address;
    const [h1, h2] = [svmBlockhash(l2Hash(1)), svmBlockhash(l2Hash(2))];
    const funded = new Map([[payer.address as string, 10n * SOL]]);
    const lane = new SvmLane({ maxCount: 3, maxBytes: 1 << 20 }, head([h2, h1], funded));
    const txs = [
      await buildTx(payer, [transferIx(payer, to, 1n)], h1),
      await buildTx(payer, [transferIx(payer, to, 2n)], h2),
      await buildTx(payer, [transferIx(payer, to, 3n)], h2),
      await buildTx(payer, [transferIx(payer, to, 4n)], h2),
    ];
    const results = [];
    for (const tx of txs) results.push(await lane.add(entry(tx)));
    expect(results.map((r) => (r.ok ? "ok" : r.code))).toEqual(["ok", "ok", "ok", "pool_full"]);
    expect(lane.size).toBe(3);
    expect(lane.sizeBytes).toBe(txs.slice(0, 3).reduce((n, t) => n + t.length + 1, 0));
    // Arrival order, cut by count and by bytes.
    const signatures = results.map((r) => (r.ok ? r.signature : ""));
    expect(lane.pending({ maxBytes: 1 << 20, maxCount: 2 }).map((t) => t.signature)).toEqual(signatures.slice(0, 2));
    expect(lane.pending({ maxBytes: (txs[0]?.length ?? 0) + 1, maxCount: 10 })).toHaveLength(1);
    // A commit includes the second; h1 leaves the window: the first expires.
    lane.onCommitted([signatures[1] as string], head([svmBlockhash(l2Hash(3)), h2], funded));
    expect(lane.size).toBe(1);
    expect(lane.has(signatures[2] as string)).toBe(true);
    expect(lane.pending({ maxBytes: 1 << 20, maxCount: 10 }).map((t) => t.signature)).toEqual([signatures[2]]);
  });

  it("refuses a payer short of the fee and a processed signature", async () => {
    const payer = await signer(3);
    const to = (await signer(4)).address;
    const h1 = svmBlockhash(l2Hash(1));
    const tx = await buildTx(payer, [transferIx(payer, to, 1n)], h1);
    const poor = new SvmLane({ maxCount: 10, maxBytes: 1 << 20 }, head([h1], new Map([[payer.address, 4_999n]])));
    const refused = await poor.add(entry(tx));
    expect(refused.ok ? "ok" : refused.code).toBe("insufficient_funds");
    const first = await new SvmLane(
      { maxCount: 10, maxBytes: 1 << 20 },
      head([h1], new Map([[payer.address, SOL]])),
    ).add(entry(tx));
    if (!first.ok) throw new Error(first.message);
    const done = new SvmLane(
      { maxCount: 10, maxBytes: 1 << 20 },
      head([h1], new Map([[payer.address, SOL]]), new Set([first.signature])),
    );
    const replay = await done.add(entry(tx));
    expect(replay.ok ? "ok" : replay.code).toBe("already_processed");
  });
});

describe("Solana JSON-RPC edges", () => {
  it("renders litesvm's transaction errors as Solana's JSON", () => {
    expect(transactionErrorJson("InstructionError(0, Custom(1))")).toEqual({ InstructionError: [0, { Custom: 1 }] });
    expect(transactionErrorJson("InsufficientFundsForRent { account_index: 1 }")).toEqual({
      InsufficientFundsForRent: { account_index: 1 },
    });
    expect(transactionErrorJson("AccountNotFound")).toBe("AccountNotFound");
    expect(transactionErrorJson("weird ((")).toBe("weird ((");
  });

  it("answers refusals with Solana's codes and messages, and a pooled resend with its signature", async () => {
    const payer = await signer(5);
    const wire = await buildTx(payer, [transferIx(payer, (await signer(6)).address, 1n)], svmBlockhash(l2Hash(1)));
    let code = "";
    const backend: SolanaRpcBackend = {
      genesisHash: `0x${"11".repeat(32)}`,
      headHeight: () => 5,
      finalizedHeight: () => 0,
      blockhashAt: async () => null,
      account: async () => null,
      transaction: async () => undefined,
      submit: async () => ({ ok: false, code, message: "detail" }),
    };
    const send = createSolanaMethods(backend).get("sendTransaction");
    if (send === undefined) throw new Error("no sendTransaction");
    const b64 = Buffer.from(wire).toString("base64");
    const expected: [string, number, RegExp][] = [
      ["bad_signature", -32003, /signature verification failure/],
      ["malformed", -32602, /failed to deserialize/],
      ["stale_blockhash", -32002, /Blockhash not found/],
      ["already_processed", -32002, /already been processed/],
      ["unknown_payer", -32002, /no record of a prior credit/],
      ["insufficient_funds", -32002, /Insufficient funds for fee/],
      ["pool_full", -32005, /pool is full/],
    ];
    for (const [refusal, rpcCode, message] of expected) {
      code = refusal;
      const out = await send.run([b64, { encoding: "base64" }]);
      expect(out.ok).toBe(false);
      if (out.ok) continue;
      expect(out.error.code).toBe(rpcCode);
      expect(out.error.message).toMatch(message);
    }
    code = "known";
    const resent = await send.run([b64, { encoding: "base64" }]);
    expect(resent.ok && typeof resent.result === "string" && resent.result.length > 60).toBe(true);
    const info = await createSolanaMethods(backend)
      .get("getAccountInfo")
      ?.run([payer.address, { encoding: "jsonParsed" }]);
    expect(info?.ok === false && info.error.message).toMatch(/use base64/);
  });
});
