// ChainStore on a real level database in a temp dir: commit/read round trips, range serving budgets, validator sets
// across set changes, reopen (head, priorities, safety record, evidence), genesis and schema checks, corrupt values.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { concatBytes, type Hex, toHex } from "../../consensus/bytes.ts";
import { encodeCertificate, verifyCertificate } from "../../consensus/certificate.ts";
import { blstScheme } from "../../src/crypto/blst.ts";
import { Bucket, heightKey, MetaField, metaKey } from "../../src/storage/buckets.ts";
import { ChainStore, type CommitRecord, StorageError, type StorageErrorCode } from "../../src/storage/chain-store.ts";
import {
  blockAt,
  certificateFor,
  commitRecordAt,
  duplicateProposalEvidence,
  duplicateVoteEvidence,
  GENESIS_HASH,
  hashOf,
  OTHER_GENESIS_HASH,
  safetyRecordAt,
  setAt,
  testNet,
} from "./fixtures.ts";

const net = testNet();
let dir: string;
const open: ChainStore[] = [];

async function openStore(path = dir, genesisHash: Hex = GENESIS_HASH): Promise<ChainStore> {
  const store = await ChainStore.open(path, { genesisHash, genesisValidatorSet: net.genesis });
  open.push(store);
  return store;
}

/** Commits heights head+1 .. upTo with records built from the store's own next set. */
async function commitUpTo(store: ChainStore, upTo: number): Promise<CommitRecord[]> {
  const records: CommitRecord[] = [];
  for (let h = store.headHeight + 1; h <= upTo; h++) {
    const rec = commitRecordAt(net, store.validatorSetFor(h), h);
    await store.commit(rec);
    records.push(rec);
  }
  return records;
}

async function storageErrorOf(fn: () => Promise<unknown> | unknown): Promise<StorageError> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StorageError);
    return error as StorageError;
  }
  throw new Error("expected a StorageError, nothing was thrown");
}

async function expectCode(fn: () => Promise<unknown> | unknown, code: StorageErrorCode): Promise<StorageError> {
  const error = await storageErrorOf(fn);
  expect(error.code, error.message).toBe(code);
  return error;
}

/** Writes raw bytes under `key` with the store closed (simulates a corrupt or foreign database). */
async function rawPut(key: Uint8Array, value: Uint8Array): Promise<void> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
  await db.open();
  await db.put(key, value);
  await db.close();
}

async function rawGet(key: Uint8Array): Promise<Uint8Array | undefined> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: "view", valueEncoding: "view" });
  await db.open();
  const value = (await db.get(key)) as Uint8Array | undefined;
  await db.close();
  return value;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "dcn-storage-"));
});

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe("commit and read", () => {
  it("round-trips blocks, certificates and the hash index for several heights", async () => {
    const store = await openStore();
    expect(store.headHeight).toBe(0);
    expect(store.headHash()).toBeNull();
    const records = await commitUpTo(store, 6);
    expect(store.headHeight).toBe(6);
    expect(store.headHash()).toBe(records[5]?.blockHash);
    for (const rec of records) {
      expect(await store.getBlock(rec.height)).toEqual(rec.block);
      expect(await store.getCertificate(rec.height)).toEqual(rec.certificate);
      expect(await store.getBlockByHash(rec.blockHash)).toEqual({ height: rec.height, block: rec.block });
      // Upper-case hex names the same block.
      expect((await store.getBlockByHash(`0x${rec.blockHash.slice(2).toUpperCase()}`))?.height).toBe(rec.height);
    }
    expect(await store.getBlock(7)).toBeUndefined();
    expect(await store.getBlock(0)).toBeUndefined();
    expect(await store.getCertificate(7)).toBeUndefined();
    expect(await store.getBlockByHash(hashOf(blockAt(99)))).toBeUndefined();
    expect(await store.getBlockByHash("0x1234")).toBeUndefined();
  });

  it("replaces the parent's certificate with the one the next block carries, and only for the head", async () => {
    const store = await openStore();
    const [first] = await commitUpTo(store, 1);
    if (first === undefined) throw new Error("no commit");
    // Another signer subset of the same block (all but the last validator still hold a quorum of 4 equal powers).
    const set = net.genesis;
    const fewer = certificateFor(net, set, 1, first.blockHash, set.validators.length - 1);
    expect(encodeCertificate(fewer)).not.toEqual(encodeCertificate(first.certificate));
    const next = commitRecordAt(net, store.validatorSetFor(2), 2);
    const notHead = certificateFor(net, set, 1, hashOf(blockAt(99)));
    await expectCode(() => store.commit({ ...next, parentCertificate: notHead }), "invalid_record");
    await store.commit({ ...next, parentCertificate: fewer });
    expect(await store.getCertificate(1)).toEqual(fewer);
    expect(await store.getCertificate(2)).toEqual(next.certificate);
  });

  it("answers the same for the newest heights (kept in memory) as after a reopen (read from disk)", async () => {
    const store = await openStore();
    const records = await commitUpTo(store, 70);
    const read = async (s: ChainStore) =>
      Promise.all(records.map(async (r) => [await s.getBlock(r.height), await s.getCertificate(r.height)]));
    const live = await read(store);
    expect(live).toEqual(records.map((r) => [r.block, r.certificate]));
    const id = store.validatorSetFor(71).id;
    const set = await store.getValidatorSet(id);
    await store.close();
    const again = await openStore();
    expect(await read(again)).toEqual(live);
    expect(await again.getValidatorSet(id)).toEqual(set);
  });

  it("refuses any height but head + 1 (not_next) and records that contradict themselves (invalid_record)", async () => {
    const store = await openStore();
    await commitUpTo(store, 2);
    const set3 = store.validatorSetFor(3);
    await expectCode(() => store.commit(commitRecordAt(net, set3, 4)), "not_next");
    await expectCode(() => store.commit(commitRecordAt(net, setAt(net, 2), 2)), "not_next");
    await expectCode(() => store.commit(commitRecordAt(net, setAt(net, 1), 1)), "not_next");

    const good = commitRecordAt(net, set3, 3);
    const otherBlock = blockAt(1003);
    await expectCode(
      () => store.commit({ ...good, block: otherBlock, blockHash: hashOf(otherBlock) }),
      "invalid_record",
    );
    await expectCode(
      () => store.commit({ ...good, certificate: certificateFor(net, set3, 4, good.blockHash) }),
      "invalid_record",
    );
    // Signed by a set other than the one deciding height 3.
    const strangers = testNet(100);
    await expectCode(
      () => store.commit({ ...good, certificate: certificateFor(strangers, strangers.genesis, 3, good.blockHash) }),
      "invalid_record",
    );
    // A block hash that is already committed at another height.
    await expectCode(
      () =>
        store.commit({
          ...good,
          blockHash: hashOf(blockAt(2)),
          certificate: certificateFor(net, set3, 3, hashOf(blockAt(2))),
        }),
      "invalid_record",
    );
    expect(store.headHeight).toBe(2);
    expect(await store.getBlock(3)).toBeUndefined();
    await store.commit(good);
    expect(store.headHeight).toBe(3);
  });

  it("queues writes in call order: back-to-back commits without awaiting all land", async () => {
    const store = await openStore();
    let set = store.validatorSetFor(1);
    const pending: Promise<void>[] = [];
    for (let h = 1; h <= 5; h++) {
      const rec = commitRecordAt(net, set, h);
      pending.push(store.commit(rec));
      set = rec.nextValidatorSet;
    }
    await Promise.all(pending);
    expect(store.headHeight).toBe(5);
  });
});

describe("getRange", () => {
  it("honours the count and byte budgets, stops at the head, and returns at least one item", async () => {
    const store = await openStore();
    const records = await commitUpTo(store, 10);
    const size = (h: number): number => {
      const rec = records[h - 1];
      if (rec === undefined) throw new Error(`no record ${h}`);
      // Stored sizes: block with version byte and u32 length, certificate in its wire layout.
      return 1 + 4 + rec.block.length + encodeCertificate(rec.certificate).length;
    };

    const all = await store.getRange(1, 100, 1 << 30);
    expect(all.map((r) => r.height)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(all[3]).toEqual({ height: 4, block: records[3]?.block, certificate: records[3]?.certificate });

    expect((await store.getRange(3, 4, 1 << 30)).map((r) => r.height)).toEqual([3, 4, 5, 6]);
    expect((await store.getRange(9, 100, 1 << 30)).map((r) => r.height)).toEqual([9, 10]);
    expect(await store.getRange(11, 100, 1 << 30)).toEqual([]);

    const budget = size(2) + size(3) + size(4);
    expect((await store.getRange(2, 100, budget)).map((r) => r.height)).toEqual([2, 3, 4]);
    expect((await store.getRange(2, 100, budget - 1)).map((r) => r.height)).toEqual([2, 3]);
    // One item even when it alone is over budget, so a large block never stalls a syncing peer.
    expect((await store.getRange(5, 100, 1)).map((r) => r.height)).toEqual([5]);
    await expect(store.getRange(0, 1, 1)).rejects.toThrow(RangeError);
  });
});

describe("validator sets", () => {
  it("keeps the next set in memory only for head + 1 and answers older heights by id, across set changes", async () => {
    const store = await openStore();
    expect(store.validatorSetFor(1)).toEqual(net.genesis);
    expect(await store.validatorSetIdAt(1)).toBe(net.genesis.id);
    await expectCode(() => store.validatorSetFor(2), "not_next");

    const records = await commitUpTo(store, 12); // the schedule changes the set after heights 5 and 10
    expect(store.validatorSetFor(13)).toEqual(setAt(net, 13));
    await expectCode(() => store.validatorSetFor(12), "not_next");
    await expectCode(() => store.validatorSetFor(14), "not_next");

    const ids = new Set<Hex>();
    for (const rec of records) {
      const id = await store.validatorSetIdAt(rec.height);
      expect(id).toBe(rec.certificate.validatorSetId);
      expect(id).toBe(setAt(net, rec.height).id);
      if (id === undefined) throw new Error("no id");
      ids.add(id);
      const members = await store.getValidatorSet(id);
      if (members === undefined) throw new Error(`set ${id} not stored`);
      // Membership alone is enough to check a certificate of an old height.
      expect(verifyCertificate(rec.certificate, members, { scheme: blstScheme }).ok).toBe(true);
      expect(members.validators.map((v) => v.publicKey)).toEqual(
        setAt(net, rec.height).validators.map((v) => v.publicKey),
      );
      expect(members.validators.every((v) => v.proposerPriority === 0n)).toBe(true);
    }
    expect(ids.size).toBe(2); // genesis, then genesis + extra validator (heights 6..10), then genesis again
    expect(await store.validatorSetIdAt(13)).toBe(setAt(net, 13).id);
    expect(await store.validatorSetIdAt(14)).toBeUndefined();
    expect(await store.validatorSetIdAt(0)).toBeUndefined();
    expect(await store.getValidatorSet(`0x${"ab".repeat(32)}`)).toBeUndefined();
    // The change list a light client walks: one entry per change, matching the per-height answers.
    const changes = await store.validatorSetChanges();
    expect(changes.map((c) => c.fromHeight)).toEqual([1, 6, 11]);
    for (const c of changes) expect(c.id).toBe(await store.validatorSetIdAt(c.fromHeight));
    expect(changes[0]?.id).toBe(net.genesis.id);
  });

  it("lists the genesis set as the only change before the first commit", async () => {
    const store = await openStore();
    expect(await store.validatorSetChanges()).toEqual([{ fromHeight: 1, id: net.genesis.id }]);
  });
});

describe("reopen", () => {
  it("restores head, the next validator set with negative priorities, the safety record and evidence", async () => {
    const store = await openStore();
    await commitUpTo(store, 7);
    const next = store.validatorSetFor(8);
    expect(next.validators.some((v) => v.proposerPriority < 0n)).toBe(true);
    const safety = safetyRecordAt(net, next, 8);
    await store.saveSafety(safety);
    const evidence = [
      duplicateVoteEvidence(net, next, "prevote", 1, 8, 0),
      duplicateVoteEvidence(net, next, "precommit", 1, 8, 0),
      duplicateProposalEvidence(net, next, 2, 8, 1),
    ];
    for (const e of evidence) expect(await store.saveEvidence(e)).toBe(true);
    const headHash = store.headHash();
    await store.close();
    await expectCode(() => store.getBlock(1), "closed");
    await expectCode(() => store.commit(commitRecordAt(net, next, 8)), "closed");

    const again = await openStore();
    expect(again.headHeight).toBe(7);
    expect(again.headHash()).toBe(headHash);
    const restored = again.validatorSetFor(8);
    expect(restored).toEqual(next);
    expect(restored.validators.map((v) => v.proposerPriority)).toEqual(next.validators.map((v) => v.proposerPriority));
    expect(await again.loadSafety()).toEqual(safety);
    expect(await again.listEvidence(0, 100)).toEqual(evidence);
    expect(await again.saveEvidence(evidence[0] as (typeof evidence)[0])).toBe(false);
    // Commits continue where they left off.
    await commitUpTo(again, 9);
    expect(again.headHeight).toBe(9);
  });

  it("refuses a database of another genesis (genesis_mismatch) naming both hashes", async () => {
    const store = await openStore();
    await commitUpTo(store, 1);
    await store.close();
    const error = await expectCode(() => openStore(dir, OTHER_GENESIS_HASH), "genesis_mismatch");
    expect(error.message).toContain(GENESIS_HASH);
    expect(error.message).toContain(OTHER_GENESIS_HASH);
    // Same hash, another genesis validator set.
    const otherSet = testNet(100).genesis;
    await expectCode(
      () => ChainStore.open(dir, { genesisHash: GENESIS_HASH, genesisValidatorSet: otherSet }),
      "genesis_mismatch",
    );
    // The refused opens released the database.
    const reopened = await openStore();
    expect(reopened.headHeight).toBe(1);
  });

  it("refuses an unknown schema version", async () => {
    const store = await openStore();
    await store.close();
    await rawPut(metaKey(MetaField.schemaVersion), Uint8Array.of(0, 0, 0, 9));
    const error = await expectCode(() => openStore(), "schema_version");
    expect(error.message).toContain("schema version 9");
  });

  it("refuses a second opener of the same directory (open_failed)", async () => {
    await openStore();
    await expectCode(
      () => ChainStore.open(dir, { genesisHash: GENESIS_HASH, genesisValidatorSet: net.genesis }),
      "open_failed",
    );
  });
});

describe("corrupt values", () => {
  it("reports a value that does not decode as corrupt, naming bucket and key", async () => {
    const store = await openStore();
    await commitUpTo(store, 3);
    await store.close();

    const blockKey = heightKey(Bucket.blockByHeight, 2);
    const certKey = heightKey(Bucket.certificateByHeight, 3);
    const cert = await rawGet(certKey);
    if (cert === undefined) throw new Error("certificate not stored");
    await rawPut(blockKey, Uint8Array.of(1, 0, 0, 0, 9, 1, 2)); // length 9, 2 bytes follow
    await rawPut(certKey, concatBytes(cert, Uint8Array.of(0))); // one trailing byte

    const again = await openStore();
    const blockError = await expectCode(() => again.getBlock(2), "corrupt");
    expect(blockError.bucket).toBe("blockByHeight");
    expect(blockError.key).toBe(toHex(blockKey));
    expect(blockError.message).toContain("truncated");
    const certError = await expectCode(() => again.getCertificate(3), "corrupt");
    expect(certError.bucket).toBe("certificateByHeight");
    expect(certError.message).toContain("trailing_bytes");
    await expectCode(() => again.getRange(1, 10, 1 << 20), "corrupt");
    expect(await again.getBlock(1)).toEqual(blockAt(1));
  });

  it("refuses to open when the head and the next validator set disagree", async () => {
    const store = await openStore();
    await commitUpTo(store, 2);
    await store.close();
    await rawPut(Uint8Array.of(Bucket.head), Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0, 5, ...new Uint8Array(32).fill(7)));
    const error = await expectCode(() => openStore(), "corrupt");
    expect(error.bucket).toBe("nextValidatorSet");
  });
});

describe("safety record and evidence", () => {
  it("applies overlapping saveSafety calls in call order", async () => {
    const store = await openStore();
    const set = store.validatorSetFor(1);
    const records = [1, 2, 3, 4, 5, 6, 7, 8].map((h) => safetyRecordAt(net, set, h));
    await Promise.all(records.map((r) => store.saveSafety(r)));
    expect(await store.loadSafety()).toEqual(records[7]);
  });

  it("returns null before any safety record", async () => {
    const store = await openStore();
    expect(await store.loadSafety()).toBeNull();
  });

  it("keys evidence by (height, round, kind, validator) and lists it in that order from a height", async () => {
    const store = await openStore();
    const set = store.validatorSetFor(1);
    const late = duplicateVoteEvidence(net, set, "precommit", 0, 9, 0);
    const early = duplicateVoteEvidence(net, set, "prevote", 3, 2, 5);
    const proposal = duplicateProposalEvidence(net, set, 1, 9, 0);
    expect(await store.saveEvidence(late)).toBe(true);
    expect(await store.saveEvidence(early)).toBe(true);
    expect(await store.saveEvidence(proposal)).toBe(true);
    // Same offence with the messages the other way round: already stored.
    expect(await store.saveEvidence({ ...late, first: late.second, second: late.first } as typeof late)).toBe(false);
    expect(await store.listEvidence(0, 10)).toEqual([early, proposal, late]);
    expect(await store.listEvidence(3, 10)).toEqual([proposal, late]);
    expect(await store.listEvidence(0, 1)).toEqual([early]);
    expect(await store.listEvidence(10, 10)).toEqual([]);
  });
});
