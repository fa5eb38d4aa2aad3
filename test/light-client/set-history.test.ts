// The node side of set-change following: lumia_getValidatorSetHistory's reader over a real ChainStore (level in a
// temp dir) whose validator set changes on a schedule that brings an earlier set back (ids recur: A, B, A, B, ...).
// Every change is listed at the height it takes effect, the list grows with the chain, and each entry agrees with the
// store's own validatorSetIdAt and with the sets replayed from genesis.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Hex } from "../../consensus/bytes.ts";
import { validatorSetHistoryReader } from "../../src/node/rpc-backend.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";
import { commitRecordAt, GENESIS_HASH, setAt, testNet } from "../storage/fixtures.ts";

const net = testNet();
let dir: string;
let store: ChainStore | null = null;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dcn-set-history-"));
});

afterEach(async () => {
  await store?.close();
  store = null;
  rmSync(dir, { recursive: true, force: true });
});

async function commitUpTo(s: ChainStore, upTo: number): Promise<void> {
  for (let h = s.headHeight + 1; h <= upTo; h++) await s.commit(commitRecordAt(net, s.validatorSetFor(h), h));
}

/** The changes of the replayed schedule up to `head`. */
function expectedHistory(head: number): { fromHeight: number; id: Hex }[] {
  const out: { fromHeight: number; id: Hex }[] = [];
  for (let h = 1; h <= Math.max(head, 1); h++) {
    const id = setAt(net, h).id;
    if (out[out.length - 1]?.id !== id) out.push({ fromHeight: h, id });
  }
  return out;
}

describe("validator-set history over the chain store", () => {
  it("lists every change, recurring ids included, and extends as the chain grows", async () => {
    const s = await ChainStore.open(join(dir, "chain"), {
      genesisHash: GENESIS_HASH,
      genesisValidatorSet: net.genesis,
    });
    store = s;
    const history = validatorSetHistoryReader(s);
    // Before the first commit: the genesis set decides height 1.
    expect(await history()).toEqual([{ fromHeight: 1, id: net.genesis.id }]);

    await commitUpTo(s, 9);
    expect(await history()).toEqual(expectedHistory(9));
    await commitUpTo(s, 23);
    const full = await history();
    expect(full).toEqual(expectedHistory(23));
    // The schedule adds a validator after every 5th height and removes it after every 10th: A, B, A, B, A.
    expect(full.map((c) => c.fromHeight)).toEqual([1, 6, 11, 16, 21]);
    expect(full[2]?.id).toBe(full[0]?.id);
    expect(full[1]?.id).not.toBe(full[0]?.id);
    for (const change of full) expect(await s.validatorSetIdAt(change.fromHeight)).toBe(change.id);
    // Concurrent readers see one consistent list.
    const [a, b] = await Promise.all([history(), history()]);
    expect(a).toEqual(full);
    expect(b).toEqual(full);
  });
});
