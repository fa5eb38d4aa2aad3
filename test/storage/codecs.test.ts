// Stored formats: round trips (fast-check) for validator sets (negative int64 priorities included) and safety
// records; arbitrary or damaged bytes give DecodeError and nothing else; layout details that must never change.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes, type Hex, toHex } from "../../consensus/bytes.ts";
import { DecodeError, decode, encode } from "../../consensus/codec.ts";
import type { SignStep } from "../../consensus/safety.ts";
import type { SignedProposal, SignedVote, Validator, ValidatorSet } from "../../consensus/types.ts";
import { computeValidatorSetId } from "../../consensus/validator-set.ts";
import type { SafetyRecord } from "../../src/storage/chain-store.ts";
import {
  decodeMembership,
  decodeSafetyRecord,
  decodeValidatorSet,
  encodeMembership,
  encodeSafetyRecord,
  encodeValidatorSet,
  int64,
} from "../../src/storage/codecs.ts";
import { decodeEvidence, encodeEvidence } from "../../src/storage/evidence.ts";
import { duplicateProposalEvidence, duplicateVoteEvidence, safetyRecordAt, testNet } from "./fixtures.ts";

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

const bytesArb = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const hexArb = (n: number) => bytesArb(n).map((b) => toHex(b));
/** A block hash: never the zero hash (reserved for nil). */
const valueArb = hexArb(32).filter((h) => /[1-9a-f]/.test(h.slice(2)));

const validatorArb: fc.Arbitrary<Validator> = fc.record({
  address: hexArb(20),
  publicKey: bytesArb(48),
  votingPower: fc.bigInt({ min: 1n, max: 1n << 60n }),
  proposerPriority: fc.bigInt({ min: INT64_MIN, max: INT64_MAX }),
});

const validatorSetArb: fc.Arbitrary<ValidatorSet> = fc
  .array(validatorArb, { minLength: 1, maxLength: 12 })
  .chain((validators) => fc.tuple(fc.constant(validators), fc.nat({ max: validators.length - 1 })))
  .map(([validators, proposerIndex]) => ({
    validators,
    totalVotingPower: validators.reduce((sum, v) => sum + v.votingPower, 0n),
    id: computeValidatorSetId(validators),
    proposerIndex,
  }));

const roundArb = fc.nat({ max: 1000 });
const heightArb = fc.nat({ max: Number.MAX_SAFE_INTEGER });

const voteArb: fc.Arbitrary<SignedVote> = fc.record({
  type: fc.constantFrom("prevote" as const, "precommit" as const),
  height: heightArb,
  round: roundArb,
  value: fc.option(valueArb, { nil: null }),
  validatorIndex: fc.nat({ max: 0xffff }),
  signature: bytesArb(96),
});

const proposalArb: fc.Arbitrary<SignedProposal> = fc
  .record({
    height: heightArb,
    round: fc.integer({ min: 1, max: 1000 }),
    value: valueArb,
    proposerIndex: fc.nat({ max: 0xffff }),
    signature: bytesArb(96),
  })
  .chain((p) => fc.integer({ min: -1, max: p.round - 1 }).map((polRound) => ({ ...p, polRound })));

/** lockedValue/validValue are nil exactly when their round is -1 (the state machine's invariant). */
const lockArb = fc.record({
  locked: fc.option(fc.tuple(valueArb, roundArb), { nil: null }),
  valid: fc.option(fc.tuple(valueArb, roundArb), { nil: null }),
});

const safetyArb: fc.Arbitrary<SafetyRecord> = fc.record({
  mark: fc.option(
    fc.record({
      height: heightArb,
      round: roundArb,
      step: fc.constantFrom<SignStep>("proposal", "prevote", "precommit"),
      digest: bytesArb(32),
    }),
    { nil: null },
  ),
  height: heightArb,
  lock: lockArb.map(({ locked, valid }) => ({
    lockedValue: locked?.[0] ?? null,
    lockedRound: locked?.[1] ?? -1,
    validValue: valid?.[0] ?? null,
    validRound: valid?.[1] ?? -1,
  })),
  proofOfLock: fc.array(voteArb, { maxLength: 5 }),
  ownVotes: fc.array(voteArb, { maxLength: 4 }),
  ownProposal: fc.option(proposalArb, { nil: null }),
  blocks: fc.array(fc.record({ hash: hexArb(32), block: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 4 }),
});

/** Calls `fn`; anything thrown must be a DecodeError. Returns whether it decoded. */
function decodesOrDecodeError(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    return false;
  }
}

/** Damaged copies of a valid encoding: one byte changed, cut short, or one byte appended. */
function damageArb(encoded: Uint8Array) {
  return fc.oneof(
    fc
      .tuple(fc.nat({ max: encoded.length - 1 }), fc.integer({ min: 1, max: 255 }))
      .map(([i, x]) => ({ kind: "flip" as const, bytes: encoded.map((b, j) => (j === i ? b ^ x : b)) })),
    fc.nat({ max: encoded.length - 1 }).map((n) => ({ kind: "truncate" as const, bytes: encoded.slice(0, n) })),
    fc
      .integer({ min: 0, max: 255 })
      .map((b) => ({ kind: "append" as const, bytes: concatBytes(encoded, Uint8Array.of(b)) })),
  );
}

describe("int64", () => {
  it("stores signed values as 8-byte big-endian two's complement", () => {
    expect(toHex(encode(int64, -1n))).toBe("0xffffffffffffffff");
    expect(toHex(encode(int64, INT64_MIN))).toBe("0x8000000000000000");
    expect(toHex(encode(int64, INT64_MAX))).toBe("0x7fffffffffffffff");
    expect(toHex(encode(int64, -256n))).toBe("0xffffffffffffff00");
    expect(() => encode(int64, INT64_MAX + 1n)).toThrow(/not an int64/);
    expect(() => encode(int64, INT64_MIN - 1n)).toThrow(/not an int64/);
  });

  it("round-trips every int64", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), (v) => {
        expect(decode(int64, encode(int64, v))).toBe(v);
      }),
    );
  });
});

describe("validator set codec", () => {
  it("round-trips sets with any int64 priorities", () => {
    fc.assert(
      fc.property(validatorSetArb, (set) => {
        const decoded = decodeValidatorSet(encodeValidatorSet(set));
        expect(decoded).toEqual(set);
        expect(Object.isFrozen(decoded) && Object.isFrozen(decoded.validators)).toBe(true);
      }),
    );
  });

  it("round-trips a real set; membership drops priorities and checks the id", () => {
    const set = testNet().genesis;
    expect(decodeValidatorSet(encodeValidatorSet(set))).toEqual(set);
    const members = decodeMembership(encodeMembership(set), set.id);
    expect(members.validators.map((v) => [v.address, v.publicKey, v.votingPower])).toEqual(
      set.validators.map((v) => [v.address, v.publicKey, v.votingPower]),
    );
    expect(members.totalVotingPower).toBe(set.totalVotingPower);
    const otherId: Hex = `0x${"11".repeat(32)}`;
    expect(() => decodeMembership(encodeMembership(set), otherId)).toThrow(DecodeError);
  });

  it("rejects a set whose id, total or proposer index does not match its members", () => {
    fc.assert(
      fc.property(validatorSetArb, (set) => {
        const encoded = encodeValidatorSet(set);
        // id is 34 + 1 bytes from the end (id bytes32, proposerIndex u16), total the 8 bytes before it.
        const idAt = encoded.length - 34;
        const badId = encoded.map((b, i) => (i === idAt ? b ^ 1 : b));
        expect(() => decodeValidatorSet(badId)).toThrow(/does not commit to the members/);
        const badTotal = encoded.map((b, i) => (i === idAt - 1 ? b ^ 1 : b));
        expect(() => decodeValidatorSet(badTotal)).toThrow(/totalVotingPower/);
        const badProposer = concatBytes(encoded.slice(0, -2), Uint8Array.of(0xff, 0xff));
        expect(() => decodeValidatorSet(badProposer)).toThrow(/proposerIndex/);
      }),
      { numRuns: 50 },
    );
  });

  it("gives DecodeError and nothing else for random and damaged bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        decodesOrDecodeError(() => decodeValidatorSet(bytes));
        decodesOrDecodeError(() => decodeValidatorSet(concatBytes(Uint8Array.of(1), bytes)));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(
        validatorSetArb.chain((set) => damageArb(encodeValidatorSet(set))),
        ({ kind, bytes }) => {
          const decoded = decodesOrDecodeError(() => decodeValidatorSet(bytes));
          if (kind !== "flip") expect(decoded).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("safety record codec", () => {
  it("round-trips arbitrary records", () => {
    fc.assert(
      fc.property(safetyArb, (rec) => {
        expect(decodeSafetyRecord(encodeSafetyRecord(rec))).toEqual(rec);
      }),
      { numRuns: 200 },
    );
  });

  it("round-trips a record built from real signed votes", () => {
    const net = testNet();
    const rec = safetyRecordAt(net, net.genesis, 7);
    expect(decodeSafetyRecord(encodeSafetyRecord(rec))).toEqual(rec);
  });

  it("has a fixed layout for the empty record", () => {
    const empty: SafetyRecord = {
      mark: null,
      height: 0,
      lock: { lockedValue: null, lockedRound: -1, validValue: null, validRound: -1 },
      proofOfLock: [],
      ownVotes: [],
      ownProposal: null,
      blocks: [],
    };
    const encoded = encodeSafetyRecord(empty);
    // version | mark (1 + 45) | height 8 | lock (33 + 4 + 33 + 4) | counts 4 + 4 | proposal (1 + 147) | count 4
    expect(encoded.length).toBe(1 + 46 + 8 + 74 + 8 + 148 + 4);
    expect(encoded[0]).toBe(1);
    expect(toHex(encoded.subarray(55 + 33, 55 + 37))).toBe("0xffffffff"); // lockedRound -1
  });

  it("rejects a lock whose value and round disagree", () => {
    const net = testNet();
    const rec = safetyRecordAt(net, net.genesis, 3);
    const bad = { ...rec, lock: { ...rec.lock, lockedRound: -1 } };
    expect(() => encodeSafetyRecord(bad)).toThrow(/lockedValue is nil exactly when lockedRound is -1/);
  });

  it("gives DecodeError and nothing else for random and damaged bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        decodesOrDecodeError(() => decodeSafetyRecord(bytes));
        decodesOrDecodeError(() => decodeSafetyRecord(concatBytes(Uint8Array.of(1), bytes)));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(
        safetyArb.chain((rec) => damageArb(encodeSafetyRecord(rec))),
        ({ kind, bytes }) => {
          const decoded = decodesOrDecodeError(() => decodeSafetyRecord(bytes));
          if (kind !== "flip") expect(decoded).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("evidence codec", () => {
  it("round-trips real evidence and refuses pairs that are not an offence", () => {
    const net = testNet();
    const set = net.genesis;
    for (const e of [
      duplicateVoteEvidence(net, set, "prevote", 2, 5, 1),
      duplicateVoteEvidence(net, set, "precommit", 0, 5, 0),
      duplicateProposalEvidence(net, set, 1, 5, 2),
    ]) {
      expect(decodeEvidence(encodeEvidence(e))).toEqual(e);
    }
    const vote = duplicateVoteEvidence(net, set, "prevote", 2, 5, 1);
    if (vote.kind !== "duplicateVote") throw new Error("unreachable");
    expect(() => encodeEvidence({ ...vote, second: vote.first })).toThrow(/same value/);
    expect(() => encodeEvidence({ ...vote, second: { ...vote.second, validatorIndex: 3 } })).toThrow(
      /different validators/,
    );
    expect(() => encodeEvidence({ ...vote, second: { ...vote.second, round: 2 } })).toThrow(
      /different \(height, round\)/,
    );
  });

  it("gives DecodeError and nothing else for random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        decodesOrDecodeError(() => decodeEvidence(bytes));
        decodesOrDecodeError(() => decodeEvidence(concatBytes(Uint8Array.of(1, 1), bytes)));
      }),
      { numRuns: 300 },
    );
  });
});
