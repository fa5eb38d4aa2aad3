// The config's `mempool` section reaches the pool a node opens (openNodeState, as `dcn start` calls it): its nonce gap,
// per-sender bound, replacement bump, size and per-peer rate are enforced, against a real store and execution core.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.ts";
import { buildGenesis, parseGenesis } from "../../src/config/genesis.ts";
import { describeKeys, generateKeys } from "../../src/keys/keys.ts";
import { type NodeState, openNodeState } from "../../src/node/assemble.ts";
import { account, addressOf, GWEI, signTx } from "../mempool/helpers.ts";

const CHAIN = 777n;
const sender = account(1);
const other = account(2);

describe("the config's mempool section", () => {
  let dir: string;
  let state: NodeState;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dcn-pool-config-"));
    const genesis = parseGenesis(
      buildGenesis({
        chainId: CHAIN,
        genesisTimeMs: Date.now() - 1_000,
        validators: [{ name: "v0", votingPower: 10n, identity: describeKeys(generateKeys()) }],
        execution: {
          alloc: [sender, other].map((a) => ({ address: addressOf(a), balance: (10n ** 21n).toString() })),
        },
      }),
    );
    const config = parseConfig(
      {
        dataDir: "data",
        genesis: "genesis.json",
        mempool: {
          maxTransactions: 4,
          maxPerSender: 3,
          maxNonceGap: 4,
          replacementBumpPercent: 50,
          peerRatePerSecond: 2,
        },
      },
      dir,
    );
    state = await openNodeState({
      dataDir: config.dataDir,
      genesis,
      executor: { maxBlockBytes: 1 << 20, maxBlockTransactions: 1_000, maxClockDriftMs: 5_000 },
      nowMs: () => Date.now(),
      mempool: config.mempool,
      log: pino({ level: "silent" }),
    });
  });

  afterAll(async () => {
    await state?.store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const tx = (from: typeof sender, nonce: number, maxFee?: bigint) =>
    signTx(from, { chainId: Number(CHAIN), nonce, ...(maxFee === undefined ? {} : { maxFee, tip: maxFee / 10n }) });

  it("enforces its nonce gap, per-sender bound, replacement bump, pool size and per-peer rate", async () => {
    const pool = state.mempool;
    const local = { kind: "local" } as const;
    // maxNonceGap 4: nonce 5 is more than 4 ahead of the committed nonce 0.
    expect(await pool.add(await tx(sender, 5), local)).toMatchObject({ ok: false, code: "nonce_gap" });
    for (const nonce of [0, 1, 2]) expect(await pool.add(await tx(sender, nonce), local)).toMatchObject({ ok: true });
    // maxPerSender 3: a fourth nonce of the same sender, within the gap.
    expect(await pool.add(await tx(sender, 3), local)).toMatchObject({ ok: false, code: "sender_full" });
    // replacementBumpPercent 50: +20% on both fee fields is not enough, +60% is.
    expect(await pool.add(await tx(sender, 0, 12n * GWEI), local)).toMatchObject({
      ok: false,
      code: "underpriced_replacement",
    });
    expect(await pool.add(await tx(sender, 0, 16n * GWEI), local)).toMatchObject({
      ok: true,
      replaced: expect.stringMatching(/^0x/),
    });
    // peerRatePerSecond 2 and maxTransactions 4: the peer's first entry fills the pool, its second finds it full
    // (same fees: it cannot evict), its third in the same second is over its rate.
    const peer = { kind: "peer", peer: "12D3KooWpeer" } as const;
    expect(await pool.add(await tx(other, 0), peer)).toMatchObject({ ok: true });
    expect(await pool.add(await tx(other, 1), peer)).toMatchObject({ ok: false, code: "pool_full" });
    expect(await pool.add(await tx(other, 2), peer)).toMatchObject({ ok: false, code: "rate_limited" });
    expect(pool.size).toBe(4);
  });
});
