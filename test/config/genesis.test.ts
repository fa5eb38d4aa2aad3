import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, fromHex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import { decode, encode } from "../../consensus/codec.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import {
  buildGenesis,
  encodeGenesis,
  GENESIS_DOMAIN,
  GenesisError,
  type GenesisJson,
  genesisEncoding,
  loadGenesis,
  parseGenesis,
} from "../../src/config/genesis.ts";
import type { Issue } from "../../src/config/issues.ts";
import { generateBlsSecretKey } from "../../src/crypto/blst.ts";
import { describeKeys, type OperatorKeys, type PublicIdentity, peerKeyFromSeed } from "../../src/keys/keys.ts";

/** Fixed keys: validator i has every secret derived from the byte i + 1, so the genesis below never changes. */
function fixedKeys(i: number): OperatorKeys {
  const operator = new Uint8Array(32);
  operator[31] = i + 1;
  return {
    consensus: generateBlsSecretKey(new Uint8Array(32).fill(i + 1)),
    peer: peerKeyFromSeed(new Uint8Array(32).fill(i + 1)),
    operator,
  };
}

const identities: PublicIdentity[] = [0, 1, 2, 3].map((i) => describeKeys(fixedKeys(i)));

function fixedGenesis(): GenesisJson {
  return buildGenesis({
    chainId: 994873017n,
    genesisTimeMs: 1_767_225_600_000,
    validators: identities.map((identity, i) => ({ name: `validator-${i}`, votingPower: BigInt(100 + i), identity })),
  });
}

function issuesOf(json: unknown): readonly Issue[] {
  try {
    parseGenesis(json, "genesis.json");
  } catch (error) {
    expect(error).toBeInstanceOf(GenesisError);
    return (error as GenesisError).issues;
  }
  throw new Error("expected a GenesisError");
}

/** A deep copy with one validator field replaced. */
function withValidator(json: GenesisJson, index: number, patch: Record<string, unknown>): unknown {
  const copy = JSON.parse(JSON.stringify(json)) as { validators: Record<string, unknown>[] };
  copy.validators[index] = { ...copy.validators[index], ...patch };
  return copy;
}

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dcn-genesis-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("genesis", () => {
  it("has a golden hash for fixed keys (changes only with the genesis format)", () => {
    const genesis = parseGenesis(fixedGenesis());
    // Changed with genesis version 5: the encoding ends with the SVM allocation (u32 count, here 0).
    expect(genesis.hash).toBe("0x5655efafe5a916b44358ce43384f816f26cb8bb6931dd07d0f136523d23238cc");
  });

  it("reads svm.alloc: sorted by pubkey bytes, hashed, bad pubkeys and duplicates refused", () => {
    const a = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T";
    const b = "11111111111111111111111111111112";
    const json = {
      ...fixedGenesis(),
      svm: {
        alloc: [
          { address: a, lamports: "5" },
          { address: b, lamports: "7" },
        ],
      },
    };
    const genesis = parseGenesis(json);
    expect(genesis.svm.alloc.map((x) => x.address)).toEqual([b, a]); // 0x00..01 sorts first
    expect(genesis.hash).not.toBe(parseGenesis(fixedGenesis()).hash);
    const swapped = { ...json, svm: { alloc: [...json.svm.alloc].reverse() } };
    expect(parseGenesis(swapped).hash).toBe(genesis.hash);
    expect(issuesOf({ ...json, svm: { alloc: [{ address: "0xabc", lamports: "1" }] } })[0]?.path).toContain("svm");
    expect(issuesOf({ ...json, svm: { alloc: [{ address: a, lamports: "0" }] } })[0]?.path).toContain("svm");
    expect(issuesOf({ ...json, svm: { alloc: [json.svm.alloc[0], json.svm.alloc[0]] } })[0]?.path).toBe("svm.alloc[1]");
  });

  it("hashes exactly the layout of docs/protocol.md (preimage built by hand)", () => {
    const u32 = (n: number) => uintBytes(n, 4);
    const u64 = (n: number | bigint) => uintBytes(n, 8);
    const parts: Uint8Array[] = [new Uint8Array([5]), u64(994873017n), u64(1_767_225_600_000), u32(4)];
    // Validator-set order: power descending (powers are 100 + i), so validator 3 first.
    for (const i of [3, 2, 1, 0]) {
      const id = identities[i] as PublicIdentity;
      // Ed25519 peer id = identity multihash (0x00, length 36) of the protobuf key {Type: Ed25519, Data: 32 bytes}.
      const peerIdBytes = concatBytes(
        new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20]),
        fixedKeys(i).peer.subarray(32),
      );
      const name = utf8(`validator-${i}`);
      parts.push(
        fromHex(id.blsPublicKey),
        fromHex(id.proofOfPossession),
        u64(100 + i),
        fromHex(id.operator),
        u32(peerIdBytes.length),
        peerIdBytes,
        u32(name.length),
        name,
      );
    }
    // Execution section: gasLimit u64, baseFeePerGas u64 (defaults 30M and 1 gwei); the L1 anchor: flag 0 (none) and
    // 68 zero bytes (chainId u64, registry bytes20, origin number u64, origin hash bytes32) and the absent finality
    // section (flag + 60 zero bytes); u32 count of alloc (none); u32 count of the SVM alloc (none).
    parts.push(u64(30_000_000), u64(1_000_000_000), new Uint8Array(1 + 68 + 1 + 60), u32(0), u32(0));
    const preimage = concatBytes(...parts);
    const genesis = parseGenesis(fixedGenesis());
    expect(toHex(encodeGenesis(genesis))).toBe(toHex(preimage));
    expect(genesis.hash).toBe(toHex(keccak256(concatBytes(keccak256(utf8("lumia.dcn.v1.genesis")), preimage))));
  });

  it("round-trips through a file, with the derived validator set", async () => {
    const json = fixedGenesis();
    const path = join(dir, "genesis.json");
    await writeFile(path, `${JSON.stringify(json, null, 2)}\n`);
    const loaded = await loadGenesis(path);
    expect(loaded.hash).toBe(parseGenesis(json).hash);
    expect(loaded.chainId).toBe(994873017n);
    expect(loaded.genesisTimeMs).toBe(1_767_225_600_000);
    expect(loaded.validators.map((v) => v.name)).toEqual(["validator-0", "validator-1", "validator-2", "validator-3"]);
    expect(loaded.validators.map((v) => v.address)).toEqual(identities.map((id) => id.address));
    expect(loaded.validators.map((v) => v.operator)).toEqual(identities.map((id) => id.operator));
    const expectedSet = createValidatorSet(
      identities.map((id, i) => ({ publicKey: fromHex(id.blsPublicKey), votingPower: BigInt(100 + i) })),
    );
    expect(loaded.validatorSet).toEqual(expectedSet);
    expect(loaded.validatorSet.validators[0]?.votingPower).toBe(103n); // CometBFT order: power descending
  });

  it("hashes the canonical encoding: listing order does not matter, content does", () => {
    const json = fixedGenesis();
    const genesis = parseGenesis(json);
    const bytes = encodeGenesis(genesis);
    expect(genesis.hash).toBe(toHex(keccak256(concatBytes(GENESIS_DOMAIN, bytes))));
    expect(encode(genesisEncoding, decode(genesisEncoding, bytes))).toEqual(bytes);
    expect(bytes[0]).toBe(5); // version

    const reversed = { ...json, validators: [...json.validators].reverse() };
    expect(parseGenesis(reversed).hash).toBe(genesis.hash);
    expect(parseGenesis({ ...json, genesisTimeMs: json.genesisTimeMs + 1 }).hash).not.toBe(genesis.hash);
    expect(parseGenesis(withValidator(json, 2, { name: "renamed" })).hash).not.toBe(genesis.hash);
    expect(parseGenesis(withValidator(json, 2, { votingPower: "1" })).hash).not.toBe(genesis.hash);
    const funded = { ...json, execution: { alloc: [{ address: `0x${"11".repeat(20)}`, balance: "5" }] } };
    expect(parseGenesis(funded).hash).not.toBe(genesis.hash);
    expect(parseGenesis(funded).execution.alloc[0]?.balance).toBe(5n);
    expect(() =>
      parseGenesis({ ...json, execution: { alloc: [{ address: `0x${"11".repeat(20)}`, balance: "-5" }] } }),
    ).toThrow(/balance/);

    // The L1 anchor and its hard-finality contracts are part of the hash.
    const l1 = {
      chainId: "1",
      registry: `0x${"aa".repeat(20)}`,
      origin: { number: "7", hash: `0x${"bb".repeat(32)}` },
    };
    const anchored = parseGenesis({ ...json, l1 } as GenesisJson);
    const finality = {
      batchInbox: `0x${"01".repeat(20)}`,
      outputOracle: `0x${"02".repeat(20)}`,
      portal: `0x${"03".repeat(20)}`,
    };
    const withFinality = parseGenesis({ ...json, l1: { ...l1, finality } } as GenesisJson);
    expect(anchored.l1?.finality).toBeNull();
    expect(withFinality.l1?.finality?.portal.toLowerCase()).toBe(finality.portal);
    expect(new Set([genesis.hash, anchored.hash, withFinality.hash]).size).toBe(3);
    const moved = parseGenesis({
      ...json,
      l1: { ...l1, finality: { ...finality, portal: `0x${"04".repeat(20)}` } },
    } as GenesisJson);
    expect(moved.hash).not.toBe(withFinality.hash);
    expect(() =>
      parseGenesis({ ...json, l1: { ...l1, finality: { ...finality, portal: "0x12" } } } as GenesisJson),
    ).toThrow(/portal/);
  });

  it("accepts an all-lowercase operator address and normalises it to its checksum form", () => {
    const json = fixedGenesis();
    const lower = withValidator(json, 0, { operator: identities[0]?.operator.toLowerCase() });
    const genesis = parseGenesis(lower);
    expect(genesis.validators[0]?.operator).toBe(identities[0]?.operator);
    expect(genesis.hash).toBe(parseGenesis(json).hash);
  });

  it("refuses a proof of possession that does not verify, and says why it matters", () => {
    const json = fixedGenesis();
    const swapped = withValidator(json, 1, { proofOfPossession: identities[0]?.proofOfPossession });
    const issues = issuesOf(swapped);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe("validators[1].proofOfPossession");
    expect(issues[0]?.message).toMatch(/does not verify for blsPublicKey 0x/);
    expect(issues[0]?.fix).toMatch(/rogue-key attacks/);
    expect(issues[0]?.fix).toMatch(/identity\.json/);
  });

  it("refuses a duplicated validator", () => {
    const json = fixedGenesis();
    const first = json.validators[0];
    const duplicated = { ...json, validators: [...json.validators, { ...first, name: "copy" }] };
    const issues = issuesOf(duplicated);
    expect(issues.map((i) => i.path)).toEqual(["validators[4].blsPublicKey", "validators[4].peerId"]);
    expect(issues[0]?.message).toBe("the same BLS key as validators[0]");
    expect(issues[0]?.fix).toMatch(/list each validator once/);
  });

  const cases: readonly { name: string; json: () => unknown; path: string; message: RegExp; fix: RegExp }[] = [
    {
      name: "zero voting power",
      json: () => withValidator(fixedGenesis(), 0, { votingPower: "0" }),
      path: "validators[0].votingPower",
      message: /voting power 0/,
      fix: /power > 0/,
    },
    {
      name: "a power written as a number",
      json: () => withValidator(fixedGenesis(), 0, { votingPower: 100 }),
      path: "validators[0].votingPower",
      message: /100 is an integer, expected a string/,
      fix: /"100"/,
    },
    {
      name: "chain id 0",
      json: () => ({ ...fixedGenesis(), chainId: "0" }),
      path: "chainId",
      message: /"0" is not a chain id/,
      fix: /decimal string in \[1, 9007199254740991\]/,
    },
    {
      name: "no validators",
      json: () => ({ ...fixedGenesis(), validators: [] }),
      path: "validators",
      message: /0 entries, fewer than the minimum 1/,
      fix: /add entries/,
    },
    {
      name: "a short BLS key",
      json: () => withValidator(fixedGenesis(), 3, { blsPublicKey: "0x1234" }),
      path: "validators[3].blsPublicKey",
      message: /2 bytes, a BLS public key has 48/,
      fix: /identity\.json/,
    },
    {
      name: "a mistyped operator address",
      json: () =>
        withValidator(fixedGenesis(), 0, { operator: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD" /* last char */ }),
      path: "validators[0].operator",
      message: /fails its EIP-55 checksum/,
      fix: /0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed/,
    },
    {
      name: "an unknown field",
      json: () => withValidator(fixedGenesis(), 0, { power: "1" }),
      path: "validators[0].power",
      message: /unknown key "power"/,
      fix: /did you mean "votingPower"\? \(allowed here: name, blsPublicKey/,
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      const issues = issuesOf(c.json());
      expect(issues).toHaveLength(1);
      expect(issues[0]?.path).toBe(c.path);
      expect(issues[0]?.message).toMatch(c.message);
      expect(issues[0]?.fix).toMatch(c.fix);
    });
  }

  it("reports a missing file by code", async () => {
    await expect(loadGenesis(join(dir, "absent.json"))).rejects.toMatchObject({ code: "not_found" });
  });
});
