// Wire formats of signed consensus messages (gossip payloads), built from consensus/codec.ts schemas. Fixed-size,
// big-endian, one canonical encoding per message; layouts are documented in docs/protocol.md and fixed by golden
// vectors in test/consensus/golden.test.ts.
//
// SignedVote, 145 bytes:
//   version u8 (= 1) | type u8 (1 = prevote, 2 = precommit) | height u64 | round u32 |
//   hasValue u8 (0 = nil, 1 = block) | value bytes32 (zeros when nil) | validatorIndex u16 | signature bytes96
// SignedProposal, 147 bytes:
//   version u8 (= 1) | height u64 | round u32 | polRound u32 (0xffffffff = -1) | value bytes32 | proposerIndex u16 |
//   signature bytes96
//
// Rejected as non-canonical: unknown version or type, a hasValue flag other than 0/1, nil with nonzero value bytes, a
// zero block hash (its digest would equal the nil vote's), polRound >= round, heights above 2^53 - 1.
import type { Hex } from "./bytes.ts";
import {
  bytes,
  type Codec,
  decode,
  EncodeError,
  encode,
  enumU8,
  hex32,
  type Infer,
  mapped,
  nullable,
  refine,
  type Same,
  struct,
  u16,
  u32,
  u64Number,
  versioned,
} from "./codec.ts";
import { proposalDigest, voteDigestOf } from "./signing.ts";
import type {
  Proposal,
  SignatureScheme,
  SignedProposal,
  SignedVote,
  Validator,
  ValidatorSet,
  Vote,
  VoteType,
} from "./types.ts";

export const WIRE_VERSION = 1;
export const SIGNATURE_LENGTH = 96;
export const SIGNED_VOTE_LENGTH = 145;
export const SIGNED_PROPOSAL_LENGTH = 147;

const ZERO_HASH: Hex = `0x${"00".repeat(32)}`;

/** A 32-byte block hash; the zero hash is reserved for nil. */
export const valueIdCodec: Codec<Hex> = refine(hex32, (v) =>
  v.toLowerCase() === ZERO_HASH ? "the zero hash is reserved for nil" : null,
);

export const voteTypeCodec: Codec<VoteType> = enumU8<VoteType>({ prevote: 1, precommit: 2 });

/** polRound as u32 where 0xffffffff stands for -1 (no proof-of-lock round). */
export const polRoundCodec: Codec<number> = mapped(
  u32,
  "u32 (0xffffffff = -1)",
  (wire) => (wire === 0xffffffff ? -1 : wire),
  (value, path) => {
    if (value === -1) return 0xffffffff;
    if (!Number.isInteger(value) || value < 0 || value >= 0xffffffff) {
      throw new EncodeError(path, `polRound ${value} is neither -1 nor a u32 below 0xffffffff`);
    }
    return value;
  },
);

export const signedVoteSchema = versioned(
  WIRE_VERSION,
  struct({
    type: voteTypeCodec,
    height: u64Number,
    round: u32,
    value: nullable(valueIdCodec),
    validatorIndex: u16,
    signature: bytes(SIGNATURE_LENGTH),
  }),
);

export const signedProposalSchema = versioned(
  WIRE_VERSION,
  refine(
    struct({
      height: u64Number,
      round: u32,
      polRound: polRoundCodec,
      value: valueIdCodec,
      proposerIndex: u16,
      signature: bytes(SIGNATURE_LENGTH),
    }),
    (p) => (p.polRound >= p.round ? `polRound ${p.polRound} is not below round ${p.round}` : null),
  ),
);

// The schemas describe exactly the types of consensus/types.ts (checked both ways at compile time).
const voteShapeMatches: Same<Infer<typeof signedVoteSchema>, SignedVote> = true;
const proposalShapeMatches: Same<Infer<typeof signedProposalSchema>, SignedProposal> = true;
void voteShapeMatches;
void proposalShapeMatches;

/** 145 bytes. Throws EncodeError if a field does not fit (a caller bug). */
export function encodeSignedVote(vote: SignedVote): Uint8Array {
  return encode(signedVoteSchema, vote, "vote");
}

/** Throws only DecodeError (truncated, trailing_bytes, invalid_value) on bad input. */
export function decodeSignedVote(bytes: Uint8Array): SignedVote {
  return decode(signedVoteSchema, bytes, "vote");
}

/** 147 bytes. Throws EncodeError if a field does not fit (a caller bug). */
export function encodeSignedProposal(proposal: SignedProposal): Uint8Array {
  return encode(signedProposalSchema, proposal, "proposal");
}

/** Throws only DecodeError (truncated, trailing_bytes, invalid_value) on bad input. */
export function decodeSignedProposal(bytes: Uint8Array): SignedProposal {
  return decode(signedProposalSchema, bytes, "proposal");
}

/** The validator at `index`, or undefined when the index is not an integer in [0, n). */
export function validatorAt(set: ValidatorSet, index: number): Validator | undefined {
  if (!Number.isInteger(index) || index < 0 || index >= set.validators.length) return undefined;
  return set.validators[index];
}

/** Whether `vote.signature` is the signature of validator `vote.validatorIndex` of `set` over the vote digest. */
export function verifyVoteSignature(
  chainId: bigint,
  set: ValidatorSet,
  vote: Vote & { readonly signature: Uint8Array },
  scheme: SignatureScheme,
): boolean {
  const validator = validatorAt(set, vote.validatorIndex);
  if (validator === undefined || vote.signature.length !== SIGNATURE_LENGTH) return false;
  return scheme.verify(validator.publicKey, voteDigestOf(chainId, vote), vote.signature);
}

/**
 * Whether `proposal.signature` is the signature of validator `proposal.proposerIndex` of `set` over the proposal
 * digest. It does not check that this validator is the proposer of the round: that is the state machine's rule.
 */
export function verifyProposalSignature(
  chainId: bigint,
  set: ValidatorSet,
  proposal: Proposal & { readonly signature: Uint8Array },
  scheme: SignatureScheme,
): boolean {
  const validator = validatorAt(set, proposal.proposerIndex);
  if (validator === undefined || proposal.signature.length !== SIGNATURE_LENGTH) return false;
  return scheme.verify(validator.publicKey, proposalDigest(chainId, proposal), proposal.signature);
}
