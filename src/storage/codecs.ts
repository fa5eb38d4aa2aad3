// Binary formats of the values the node stores, built from the schema combinators of consensus/codec.ts. Every format
// starts with a version byte, decoding rejects truncation, trailing bytes and non-canonical values with DecodeError,
// and the store turns that into StorageError "corrupt". Layouts are listed in docs/storage.md.
import type { Hex } from "../../consensus/bytes.ts";
import {
  bytes,
  type Codec,
  DecodeError,
  decode,
  EncodeError,
  encode,
  enumU8,
  hex32,
  hexBytes,
  type Infer,
  list,
  mapped,
  nullable,
  refine,
  type Same,
  struct,
  u8,
  u16,
  u32,
  u64,
  u64Number,
  varBytes,
  versioned,
} from "../../consensus/codec.ts";
import type { LockState } from "../../consensus/machine.ts";
import type { SigningMark, SignStep } from "../../consensus/safety.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import { computeValidatorSetId, PUBLIC_KEY_LENGTH } from "../../consensus/validator-set.ts";
import { polRoundCodec, signedProposalSchema, signedVoteSchema, valueIdCodec } from "../../consensus/wire.ts";
import type { SafetyRecord } from "./chain-store.ts";

export const STORAGE_FORMAT_VERSION = 1;

/** A certificate's validatorCount is a u16, so no set that can sign a certificate is larger. */
export const MAX_VALIDATORS = 0xffff;
/** Blocks are opaque here; this only bounds what a corrupt length prefix can make us allocate. */
export const MAX_STORED_BLOCK_BYTES = 16 * 1024 * 1024;
/** Own votes kept in the safety record: two per round, so 512 rounds of one height. */
export const MAX_OWN_VOTES = 1024;
/** Prevotes of distinct validators for one value in one round. */
export const MAX_PROOF_OF_LOCK_VOTES = MAX_VALIDATORS;
/** Bodies of the own proposal, the locked value and the valid value, plus one spare. */
export const MAX_SAFETY_BLOCKS = 4;

// ---------------------------------------------------------------------------------------------------------------------
// Integers

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** A signed int64 as its 8-byte two's complement (big-endian), e.g. CometBFT proposer priorities. */
export const int64: Codec<bigint> = mapped(
  u64,
  "i64 (two's complement, big-endian)",
  (wire) => BigInt.asIntN(64, wire),
  (value, path) => {
    if (typeof value !== "bigint" || value < INT64_MIN || value > INT64_MAX) {
      throw new EncodeError(path, `${String(value)} is not an int64`);
    }
    return BigInt.asUintN(64, value);
  },
);

// ---------------------------------------------------------------------------------------------------------------------
// Validator sets

const validatorSchema = struct({
  address: hexBytes(20),
  publicKey: bytes(PUBLIC_KEY_LENGTH),
  votingPower: u64,
  proposerPriority: int64,
});

const validatorSetWire = struct({
  validators: list(validatorSchema, MAX_VALIDATORS),
  totalVotingPower: u64,
  id: hex32,
  proposerIndex: u16,
});

function validatorSetProblem(set: Infer<typeof validatorSetWire>): string | null {
  const n = set.validators.length;
  if (n === 0) return "a validator set has at least one validator";
  if (set.proposerIndex >= n) return `proposerIndex ${set.proposerIndex} is not below the set size ${n}`;
  let total = 0n;
  for (const v of set.validators) total += v.votingPower;
  if (total !== set.totalVotingPower) return `totalVotingPower ${set.totalVotingPower} != sum of powers ${total}`;
  const id = computeValidatorSetId(set.validators);
  if (id !== set.id.toLowerCase()) return `id ${set.id} does not commit to the members (expected ${id})`;
  return null;
}

/**
 * A whole validator set as used at one height, proposer priorities included:
 *   version u8 (= 1) | count u32 | count x { address bytes20 | publicKey bytes48 | votingPower u64 |
 *   proposerPriority i64 } | totalVotingPower u64 | id bytes32 | proposerIndex u16
 * Decoding checks the total, the proposer index and that `id` commits to the members.
 */
export const validatorSetSchema = versioned(
  STORAGE_FORMAT_VERSION,
  mapped(
    refine(validatorSetWire, validatorSetProblem),
    "validator set",
    (wire) => freezeSet(wire),
    (value) => value,
  ),
);

const validatorSetShapeMatches: Same<Infer<typeof validatorSetSchema>, ValidatorSet> = true;
void validatorSetShapeMatches;

/** Sets from consensus/validator-set.ts are frozen; decoded ones are too, so no caller can tell them apart. */
function freezeSet(set: ValidatorSet): ValidatorSet {
  return Object.freeze({
    validators: Object.freeze(set.validators.map((v) => Object.freeze({ ...v }))),
    totalVotingPower: set.totalVotingPower,
    id: set.id,
    proposerIndex: set.proposerIndex,
  });
}

export function encodeValidatorSet(set: ValidatorSet): Uint8Array {
  return encode(validatorSetSchema, set, "validatorSet");
}

/** Throws only DecodeError. */
export function decodeValidatorSet(bytes: Uint8Array): ValidatorSet {
  return decode(validatorSetSchema, bytes, "validatorSet");
}

/**
 * Membership of a set, stored once per set id (certificates of old heights are checked against it):
 *   version u8 (= 1) | count u32 | count x { address bytes20 | publicKey bytes48 | votingPower u64 }
 */
export const membershipSchema = versioned(
  STORAGE_FORMAT_VERSION,
  refine(
    list(struct({ address: hexBytes(20), publicKey: bytes(PUBLIC_KEY_LENGTH), votingPower: u64 }), MAX_VALIDATORS),
    (members) => (members.length === 0 ? "a validator set has at least one validator" : null),
  ),
);

export function encodeMembership(set: ValidatorSet): Uint8Array {
  return encode(
    membershipSchema,
    set.validators.map((v) => ({ address: v.address, publicKey: v.publicKey, votingPower: v.votingPower })),
    "membership",
  );
}

/**
 * The set with id `id` from its stored membership. Proposer priorities are not stored: they are 0n and proposerIndex
 * is 0, so the result is for checking signatures and quorums, not for proposer selection. Throws only DecodeError,
 * also when the members do not hash to `id`.
 */
export function decodeMembership(bytes: Uint8Array, id: Hex): ValidatorSet {
  const members = decode(membershipSchema, bytes, "membership");
  const validators = members.map((m) => ({ ...m, proposerPriority: 0n }));
  const expected = computeValidatorSetId(validators);
  if (expected !== id.toLowerCase()) {
    throw new DecodeError("invalid_value", "membership", `members hash to ${expected}, stored under ${id}`);
  }
  let total = 0n;
  for (const v of validators) total += v.votingPower;
  return freezeSet({ validators, totalVotingPower: total, id: expected, proposerIndex: 0 });
}

// ---------------------------------------------------------------------------------------------------------------------
// Safety data

/** The driver persists the mark before anything it signed leaves: see consensus/safety.ts. */
export const signingMarkSchema = struct({
  height: u64Number,
  round: u32,
  step: enumU8<SignStep>({ proposal: 1, prevote: 2, precommit: 3 }),
  digest: bytes(32),
});

const signingMarkShapeMatches: Same<Infer<typeof signingMarkSchema>, SigningMark> = true;
void signingMarkShapeMatches;

/** Rounds are -1 ("none") or a u32 below 0xffffffff: the polRound layout of consensus/wire.ts. */
export const lockStateSchema = refine(
  struct({
    lockedValue: nullable(valueIdCodec),
    lockedRound: polRoundCodec,
    validValue: nullable(valueIdCodec),
    validRound: polRoundCodec,
  }),
  (lock) => {
    if ((lock.lockedValue === null) !== (lock.lockedRound === -1)) {
      return "lockedValue is nil exactly when lockedRound is -1";
    }
    if ((lock.validValue === null) !== (lock.validRound === -1))
      return "validValue is nil exactly when validRound is -1";
    return null;
  },
);

const lockShapeMatches: Same<Infer<typeof lockStateSchema>, LockState> = true;
void lockShapeMatches;

/**
 * Everything a validator must remember across a crash so that it neither double-signs nor forgets its lock:
 *   version u8 (= 1) | mark (nullable: u8 flag | height u64 | round u32 | step u8 | digest bytes32) | height u64 |
 *   lock { lockedValue nullable bytes32 | lockedRound u32 | validValue nullable bytes32 | validRound u32 } |
 *   proofOfLock u32 count x SignedVote (145 bytes, consensus/wire.ts) | ownVotes u32 count x SignedVote |
 *   ownProposal nullable SignedProposal (147 bytes) | blocks u32 count x { hash bytes32 | u32 length | bytes }
 */
export const safetyRecordSchema = versioned(
  STORAGE_FORMAT_VERSION,
  struct({
    mark: nullable(signingMarkSchema),
    height: u64Number,
    lock: lockStateSchema,
    proofOfLock: list(signedVoteSchema, MAX_PROOF_OF_LOCK_VOTES),
    ownVotes: list(signedVoteSchema, MAX_OWN_VOTES),
    ownProposal: nullable(signedProposalSchema),
    blocks: list(struct({ hash: hex32, block: varBytes(MAX_STORED_BLOCK_BYTES) }), MAX_SAFETY_BLOCKS),
  }),
);

const safetyShapeMatches: Same<Infer<typeof safetyRecordSchema>, SafetyRecord> = true;
void safetyShapeMatches;

/** Throws EncodeError when the record exceeds a limit (a caller bug). */
export function encodeSafetyRecord(record: SafetyRecord): Uint8Array {
  return encode(safetyRecordSchema, record, "safety");
}

/** Throws only DecodeError. */
export function decodeSafetyRecord(bytes: Uint8Array): SafetyRecord {
  return decode(safetyRecordSchema, bytes, "safety");
}

// ---------------------------------------------------------------------------------------------------------------------
// Chain records

/** The schema version of the whole database: a bare u32 so that every version of the code can read it. */
export const schemaVersionSchema = u32;

export const genesisHashSchema = versioned(STORAGE_FORMAT_VERSION, hex32);

export const headSchema = versioned(STORAGE_FORMAT_VERSION, struct({ height: u64Number, blockHash: hex32 }));

export const storedBlockSchema = versioned(STORAGE_FORMAT_VERSION, varBytes(MAX_STORED_BLOCK_BYTES));

export const storedHeightSchema = versioned(STORAGE_FORMAT_VERSION, u64Number);

export const setIdSchema = versioned(STORAGE_FORMAT_VERSION, hex32);

/**
 * Where the state nodes live when pruning is on (docs/storage.md "State generations"): generations `oldest` to
 * `current` are read, newest first; commits write into `current`, which began when `currentFrom` was the head; `copied`
 * (1) once every node of that head's state is in `current`; heights below `keptFrom` have no state any more.
 */
/** Meta `history`: blocks, certificates, receipts and transaction index entries are whole from this height on. */
export const historySchema = versioned(
  STORAGE_FORMAT_VERSION,
  refine(struct({ keptFrom: u64Number }), (h) => (h.keptFrom < 1 ? `history kept from ${h.keptFrom}, below 1` : null)),
);

export const stateGenerationsSchema = versioned(
  STORAGE_FORMAT_VERSION,
  refine(struct({ current: u32, oldest: u32, currentFrom: u64Number, copied: u8, keptFrom: u64Number }), (g) =>
    g.oldest > g.current
      ? `oldest generation ${g.oldest} is above the current ${g.current}`
      : g.copied > 1
        ? `copied flag ${g.copied} is not 0 or 1`
        : g.keptFrom > g.currentFrom
          ? `state kept from ${g.keptFrom}, above the current generation's start ${g.currentFrom}`
          : null,
  ),
);

/** The set of height `forHeight` (= head + 1), priorities included: what consensus needs to start that height. */
export const nextValidatorSetSchema = versioned(
  STORAGE_FORMAT_VERSION,
  struct({ forHeight: u64Number, set: validatorSetSchema }),
);
