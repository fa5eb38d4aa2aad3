// The pool gauges read the pool on each scrape: what it holds after admissions and after a commit removed some.
import { describe, expect, it } from "vitest";
import { keccak256, toHex } from "../../consensus/bytes.ts";
import { createMetrics } from "../../src/node/metrics.ts";
import { account, LOCAL, MemoryAccounts, signTx, testPool } from "../mempool/helpers.ts";

async function gauge(metrics: ReturnType<typeof createMetrics>, name: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`${name} not exported`);
  return Number(line.slice(name.length + 1));
}

describe("pool metrics", () => {
  it("report the pool's transactions and bytes on each scrape", async () => {
    const alice = account(1);
    const accounts = new MemoryAccounts([alice]);
    const { pool } = testPool({}, accounts);
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.watchPool(() => ({ count: pool.size, bytes: pool.sizeBytes }));
    expect(await gauge(metrics, "dcn_mempool_transactions")).toBe(0);

    const raws = await Promise.all([0, 1, 2].map((nonce) => signTx(alice, { nonce })));
    for (const raw of raws) expect((await pool.add(raw, LOCAL)).ok).toBe(true);
    expect(await gauge(metrics, "dcn_mempool_transactions")).toBe(3);
    expect(await gauge(metrics, "dcn_mempool_bytes")).toBe(raws.reduce((sum, r) => sum + r.length, 0));

    // A block took the first two: the pool drops them when told of the commit.
    accounts.set(alice, { nonce: 2n });
    await pool.onCommitted(
      raws.slice(0, 2).map((r) => toHex(keccak256(r))),
      accounts,
    );
    expect(await gauge(metrics, "dcn_mempool_transactions")).toBe(1);
    expect(await gauge(metrics, "dcn_mempool_bytes")).toBe(raws[2]?.length);
  });
});
