// Solana accountSubscribe in the subscription hub (src/rpc/subscriptions.ts): the hub reads watched accounts after
// commits and notifies a subscriber when its account differs from what it last saw. Commits and account states are
// scripted here (the hub's two inputs); test/e2e/svm.test.ts subscribes with @solana/kit on a live subnet.
import { getBase58Decoder } from "@solana/kit";
import { describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { concatBytes } from "../../consensus/bytes.ts";
import { type Block, SVM_TX_PREFIX } from "../../src/chain/block.ts";
import type { SvmAccount } from "../../src/execution/svm/account.ts";
import type { CommittedEvent, RpcBackend } from "../../src/rpc/backend.ts";
import { MAX_WATCHED_SVM_ACCOUNTS, SubscriptionHub } from "../../src/rpc/subscriptions.ts";
import { buildTx, signer, transferIx } from "../svm/helpers.ts";

const key = (n: number) => getBase58Decoder().decode(new Uint8Array(32).fill(n));
const SYSTEM = "11111111111111111111111111111111";

/** The hub's inputs: commits (with an SVM root per height) and the account states each height has. */
class Script {
  head = 0;
  readonly accounts = new Map<string, Map<number, SvmAccount>>();
  reads = 0;
  private listener: ((event: CommittedEvent) => void) | null = null;
  readonly backend = {
    chainId: 1n,
    onCommitted: (l: (event: CommittedEvent) => void) => {
      this.listener = l;
      return () => {
        this.listener = null;
      };
    },
    onPendingTransaction: () => () => {},
  } as unknown as RpcBackend;
  readonly solana = {
    headHeight: () => this.head,
    account: async (height: number, pubkey: string) => {
      this.reads++;
      const byHeight = this.accounts.get(pubkey);
      let found: SvmAccount | null = null;
      for (const [h, account] of byHeight ?? []) if (h <= height) found = account;
      return found;
    },
  };

  set(pubkey: string, height: number, lamports: bigint): void {
    let byHeight = this.accounts.get(pubkey);
    if (byHeight === undefined) {
      byHeight = new Map();
      this.accounts.set(pubkey, byHeight);
    }
    byHeight.set(height, {
      lamports,
      data: new Uint8Array(0),
      owner: new Uint8Array(32),
      executable: false,
      rentEpoch: 0n,
    });
  }

  /**
   * Commits the next height; `svmRoot` the same as before means the SVM state did not move. Default transactions:
   * one EVM entry (any SVM account may have moved through the cross-VM precompile).
   */
  commit(svmRoot: string, transactions: readonly Uint8Array[] = [Uint8Array.of(2)]): void {
    this.head++;
    const block = {
      header: {
        vmRoots: [
          { vm: 1, root: `0x${"11".repeat(32)}` },
          { vm: 2, root: svmRoot },
        ],
      },
      transactions,
    } as unknown as Block;
    this.listener?.({
      height: this.head,
      hash: `0x${"00".repeat(32)}` as Hex,
      block,
      receipts: [],
      certificate: undefined,
    });
  }
}

function connect(hub: SubscriptionHub) {
  const texts: string[] = [];
  const session = hub.open({ send: (text) => texts.push(text) });
  const call = async (method: string, params: unknown[]) => {
    const turn = session.turn();
    const def = turn.methods.get(method);
    if (def === undefined) throw new Error(`no ${method}`);
    const outcome = await def.run(params);
    turn.activate();
    return outcome;
  };
  const notes = () =>
    texts
      .map(
        (t) =>
          JSON.parse(t) as {
            method: string;
            params: {
              subscription: number;
              result: { context: { slot: number }; value: { lamports: number; owner: string; data: unknown } };
            };
          },
      )
      .filter((m) => m.method === "accountNotification");
  return { call, notes, session };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe("Solana accountSubscribe", () => {
  it("notifies a change once, in commit order, for every subscriber of the account, and nothing else", async () => {
    const s = new Script();
    const hub = new SubscriptionHub(s.backend, { maxSubscriptionsPerConnection: 16, solana: s.solana });
    const alice = key(1);
    const bob = key(2);
    s.set(alice, 0, 10n);
    const c = connect(hub);
    const a64 = await c.call("accountSubscribe", [alice, { encoding: "base64", commitment: "confirmed" }]);
    const a58 = await c.call("accountSubscribe", [alice]);
    const b = await c.call("accountSubscribe", [bob, { encoding: "base64" }]);
    expect(a64.ok && a58.ok && b.ok).toBe(true);
    await settle();

    s.commit("0xaa"); // height 1: nothing changed
    s.set(alice, 2, 15n);
    s.commit("0xbb"); // height 2: alice 10 -> 15
    s.commit("0xbb"); // height 3: the SVM root did not move: nothing is read
    await settle();
    const readsBefore = s.reads;
    s.commit("0xbb");
    await settle();
    expect(s.reads).toBe(readsBefore);

    const notes = c.notes();
    expect(
      notes.map((n) => [n.params.subscription, n.params.result.context.slot, n.params.result.value.lamports]),
    ).toEqual([
      [a64.ok ? a64.result : 0, 2, 15],
      [a58.ok ? a58.result : 0, 2, 15],
    ]);
    expect(notes[0]?.params.result.value.data).toEqual(["", "base64"]);
    expect(notes[1]?.params.result.value.data).toEqual(["", "base58"]);

    // bob is created, then closed: a closed account reads as Solana shows one.
    s.set(bob, 5, 7n);
    s.commit("0xcc");
    await settle();
    s.accounts.delete(bob);
    s.commit("0xdd");
    await settle();
    const bobNotes = c.notes().filter((n) => n.params.subscription === (b.ok ? b.result : -1));
    expect(
      bobNotes.map((n) => [n.params.result.context.slot, n.params.result.value.lamports, n.params.result.value.owner]),
    ).toEqual([
      [5, 7, SYSTEM],
      [6, 0, SYSTEM],
    ]);
    expect((await c.call("accountUnsubscribe", [b.ok ? b.result : 0])).ok).toBe(true);
    expect(hub.size).toBe(2);
  });

  it("reads only the accounts a Solana-only block names", async () => {
    const s = new Script();
    const hub = new SubscriptionHub(s.backend, { maxSubscriptionsPerConnection: 16, solana: s.solana });
    const payer = await signer(1);
    const payee = await signer(2);
    const c = connect(hub);
    for (const pubkey of [payer.address, payee.address, key(7)]) await c.call("accountSubscribe", [pubkey]);
    await settle();
    const entry = concatBytes(
      Uint8Array.of(SVM_TX_PREFIX),
      await buildTx(payer, [transferIx(payer, payee.address, 5n)], "11111111111111111111111111111111"),
    );
    const reads = s.reads;
    s.commit("0x01", [entry]);
    await settle();
    expect(s.reads - reads).toBe(2);
    // A block with an EVM entry: every watched account is read.
    s.commit("0x02");
    await settle();
    expect(s.reads - reads).toBe(5);
  });

  it("refuses malformed pubkeys, encodings it does not serve, finalized, and more accounts than it watches", async () => {
    const s = new Script();
    const hub = new SubscriptionHub(s.backend, { maxSubscriptionsPerConnection: 2_000, solana: s.solana });
    const c = connect(hub);
    const code = async (params: unknown[]) => {
      const outcome = await c.call("accountSubscribe", params);
      return outcome.ok ? "ok" : outcome.error.code;
    };
    expect(await code(["not a key"])).toBe(-32602);
    expect(await code([key(1), { encoding: "jsonParsed" }])).toBe(-32602);
    expect(await code([key(1), { commitment: "finalized" }])).toBe(-32602);
    for (let i = 0; i < MAX_WATCHED_SVM_ACCOUNTS; i++) {
      const pubkey = getBase58Decoder().decode(
        Uint8Array.from({ length: 32 }, (_, j) => (j < 2 ? (i >> (8 * j)) & 0xff : 9)),
      );
      expect(await code([pubkey])).toBe("ok");
    }
    expect(await code([key(200)])).toBe(-32005);
    // Another subscriber of an account already watched is fine.
    const watched = getBase58Decoder().decode(Uint8Array.from({ length: 32 }, (_, j) => (j < 2 ? 0 : 9)));
    expect(await code([watched])).toBe("ok");
    const noSvm = connect(new SubscriptionHub(s.backend, { maxSubscriptionsPerConnection: 2 }));
    const outcome = await noSvm.call("accountSubscribe", [key(1)]);
    expect(outcome.ok ? "ok" : outcome.error.code).toBe(-32601);
  });
});
