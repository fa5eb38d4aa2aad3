// The plain-transfer fast path against runTx: the same blocks executed by a core with the fast path and by one
// without it (every transaction through runTx) must give the same roots, receipts and state, edge cases included:
// zero-value transfers to absent and to empty accounts (EIP-161), an emptied account credited later in the block,
// a contract call between transfers of the same senders, self-transfers, the coinbase as sender and
// recipient, a tip capped by the fee cap, a zero tip with an absent coinbase, legacy and EIP-2930 transactions, and
// recipients that must not take the fast path (a contract, a precompile).
import { encodeReceipt } from "@ethereumjs/vm";
import type { PrivateKeyAccount } from "viem/accounts";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Hex, toHex, uintBytes } from "../../consensus/bytes.ts";
import {
  type BlockEnv,
  ExecutionCore,
  type ExecutionResult,
  encodeTransferReceipt,
  type GenesisAccount,
} from "../../src/execution/core.ts";
import type { DecodedTx } from "../../src/execution/tx.ts";
import {
  addressOf,
  BASE_FEE,
  CHAIN_ID,
  COINBASE,
  ETHER,
  env,
  type Parent,
  signed,
  TestDb,
  testAccount,
} from "./helpers.ts";

const users = [testAccount(31), testAccount(32), testAccount(33)];
const [alice, bob, carol] = users as [PrivateKeyAccount, PrivateKeyAccount, PrivateKeyAccount];
const ABSENT: Hex = "0x00000000000000000000000000000000a65e0001";
/** In the genesis with nothing: an empty account (EIP-161 removes it once touched). */
const EMPTY: Hex = "0x00000000000000000000000000000000e3e30002";
/** Another empty account: touched (removed), then credited by a later transfer of the same block. */
const EMPTY_AGAIN: Hex = "0x00000000000000000000000000000000e3e30004";
/** Runtime code `STOP`: a contract, so runTx must run it. */
const CONTRACT: Hex = "0x00000000000000000000000000000000c0de0003";
const IDENTITY_PRECOMPILE: Hex = "0x0000000000000000000000000000000000000004";
const NO_COINBASE: Hex = toHex(uintBytes(0xdead_beef, 20));

const alloc: GenesisAccount[] = [
  ...users.map((u) => ({ address: addressOf(u), balance: 100n * ETHER })),
  { address: EMPTY, balance: 0n },
  { address: EMPTY_AGAIN, balance: 0n },
  { address: CONTRACT, balance: 1n, code: "0x00" },
  { address: COINBASE, balance: 5n * ETHER },
];

let dbs: TestDb[] = [];

beforeEach(async () => {
  dbs = [await TestDb.open(), await TestDb.open()];
});

afterEach(async () => {
  for (const d of dbs) await d.destroy();
});

interface Side {
  readonly core: ExecutionCore;
  readonly db: TestDb;
  parent: Parent;
}

async function side(db: TestDb, transferFastPath: boolean): Promise<Side> {
  const core = await ExecutionCore.create({ chainId: CHAIN_ID, db: db.reader, alloc, transferFastPath });
  const g = await core.genesisStateRoot();
  await db.commit(g.writes);
  return { core, db, parent: { stateRoot: g.stateRoot, vmRoots: g.vmRoots } };
}

function comparable(r: ExecutionResult) {
  return {
    stateRoot: r.stateRoot,
    vmRoots: r.vmRoots,
    transactionsRoot: r.transactionsRoot,
    receiptsRoot: r.receiptsRoot,
    logsBloom: r.logsBloom,
    gasUsed: r.gasUsed,
    rewardPoolCredit: r.rewardPoolCredit,
    included: r.included.map((t) => t.hash),
    skipped: r.skipped,
    receipts: r.receipts.map((x) => ({ ...x, encoded: toHex(x.encoded) })),
    writes: [...r.writes.keys()].sort(),
  };
}

async function runBoth(blocks: readonly { env: BlockEnv; txs: DecodedTx[] }[], mode: "build" | "validate") {
  const fast = await side(dbs[0] as TestDb, true);
  const slow = await side(dbs[1] as TestDb, false);
  const results: ReturnType<typeof comparable>[] = [];
  for (const b of blocks) {
    const out: ReturnType<typeof comparable>[] = [];
    for (const s of [fast, slow]) {
      const r = await s.core.execute(s.parent.stateRoot, s.parent.vmRoots, b.env, b.txs, mode);
      await s.db.commit(r.writes);
      s.parent = { stateRoot: r.stateRoot, vmRoots: r.vmRoots };
      out.push(comparable(r));
    }
    expect(out[0]).toEqual(out[1]);
    results.push(out[0] as ReturnType<typeof comparable>);
  }
  const accounts = [
    ...users.map(addressOf),
    ABSENT,
    EMPTY,
    EMPTY_AGAIN,
    CONTRACT,
    IDENTITY_PRECOMPILE,
    COINBASE,
    NO_COINBASE,
  ];
  for (const address of accounts) {
    const [a, b] = await Promise.all(
      [fast, slow].map((s) => s.core.reader(s.parent.vmRoots).getAccount(address) as Promise<unknown>),
    );
    expect(a, address).toEqual(b);
  }
  return { results, fast, slow };
}

describe("plain-transfer fast path", () => {
  it("gives runTx's roots, receipts and state on the edge cases", async () => {
    let n = 0;
    const nonce = new Map<string, number>();
    const next = (u: PrivateKeyAccount) => {
      const v = nonce.get(u.address) ?? 0;
      nonce.set(u.address, v + 1);
      return v;
    };
    const tx = (u: PrivateKeyAccount, fields: Record<string, unknown>) => {
      n++;
      return signed(u, { nonce: next(u), ...fields });
    };
    const block1 = [
      await tx(alice, { to: addressOf(bob), value: 1n }),
      await tx(alice, { to: ABSENT, value: 0n }), // absent stays absent
      await tx(bob, { to: EMPTY, value: 0n }), // empty existing account is removed
      await tx(carol, { to: addressOf(carol), value: 7n }), // self-transfer
      await tx(bob, { to: COINBASE, value: 3n * ETHER }), // recipient is the coinbase
      // Tip capped: fee cap leaves 5 wei above the base fee, the tip asks for more.
      await tx(alice, { to: addressOf(carol), value: 2n, maxFeePerGas: BASE_FEE + 5n, maxPriorityFeePerGas: 9n }),
      await tx(carol, { to: ABSENT, value: 11n, type: "legacy", gasPrice: 3n * BASE_FEE }),
      await tx(bob, { to: addressOf(alice), value: 5n, type: "eip2930", gasPrice: 2n * BASE_FEE, accessList: [] }),
      await tx(alice, { to: CONTRACT, value: 4n }), // code: runTx
      await tx(bob, { to: IDENTITY_PRECOMPILE, value: 4n }), // precompile: runTx
    ];
    const block2 = [
      // Zero tip, coinbase absent: it must stay absent.
      await tx(alice, { to: addressOf(bob), value: 1n, maxFeePerGas: 2n * BASE_FEE, maxPriorityFeePerGas: 0n }),
      await tx(bob, { to: addressOf(carol), value: 100n * ETHER }), // more than bob has: skipped in build mode
      await tx(carol, { to: addressOf(alice), value: ETHER }),
      await tx(alice, { to: CONTRACT, value: 1n }), // runTx between transfers that touch the same accounts
      await tx(alice, { to: addressOf(bob), value: 2n }),
      await tx(carol, { to: EMPTY_AGAIN, value: 0n }), // touched empty: removed...
      await tx(alice, { to: EMPTY_AGAIN, value: 5n }), // ...then credited: it exists with 5 wei
    ];
    const { results } = await runBoth(
      [
        { env: env(1), txs: block1 },
        { env: env(2, { coinbase: NO_COINBASE }), txs: block2 },
      ],
      "build",
    );
    expect(n).toBe(17);
    expect(results[0]?.included).toHaveLength(block1.length);
    expect(results[1]?.skipped.map((s) => s.code)).toEqual(["insufficient_balance"]);
  });

  it("validates a block of many transfers to the same state as runTx", async () => {
    const nonce = new Map<string, number>();
    const txs: DecodedTx[] = [];
    for (let i = 0; i < 60; i++) {
      const from = users[i % 3] as PrivateKeyAccount;
      const to = users[(i + 1) % 3] as PrivateKeyAccount;
      const v = nonce.get(from.address) ?? 0;
      nonce.set(from.address, v + 1);
      txs.push(await signed(from, { nonce: v, to: i % 7 === 0 ? ABSENT : addressOf(to), value: BigInt(i) }));
    }
    const { results } = await runBoth([{ env: env(1), txs }], "validate");
    expect(results[0]?.included).toHaveLength(60);
  });
});

describe("encodeTransferReceipt", () => {
  it("is byte for byte @ethereumjs/vm's encodeReceipt of a successful receipt without logs", () => {
    const gasValues = [1n, 0x7fn, 0x80n, 0xffn, 0x100n, 21_000n, 0xffffffn, 30_000_000n, (1n << 64n) - 1n];
    for (const type of [0, 1, 2] as const) {
      for (const gas of gasValues) {
        const receipt = { status: 1 as const, cumulativeBlockGasUsed: gas, bitvector: new Uint8Array(256), logs: [] };
        expect(toHex(encodeTransferReceipt(type, gas)), `type ${type} gas ${gas}`).toBe(
          toHex(encodeReceipt(receipt, type)),
        );
      }
    }
  });
});
