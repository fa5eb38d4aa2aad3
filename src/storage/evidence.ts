// Evidence of equivocation, as stored (bucket `evidence`) and as gossiped: two signed messages of one validator at one
// (height, round, type) that differ. Both messages keep their gossip wire layout (consensus/wire.ts), signatures
// included, so anyone can re-verify the evidence (and an L1 slashing contract can parse it).
import { uintBytes } from "../../consensus/bytes.ts";
import type { Codec } from "../../consensus/codec.ts";
import { decode, encode, enumU8, refine, versioned } from "../../consensus/codec.ts";
import type { Evidence, SignedProposal, SignedVote } from "../../consensus/types.ts";
import { signedProposalSchema, signedVoteSchema } from "../../consensus/wire.ts";

export const EVIDENCE_FORMAT_VERSION = 1;

type EvidenceKind = Evidence["kind"];
const evidenceKindCodec = enumU8<EvidenceKind>({ duplicateVote: 1, duplicateProposal: 2 });

/** Two messages of one validator at one (height, round, type) that differ; null when `e` is such a pair. */
export function evidenceProblem(e: Evidence): string | null {
  const a = e.first;
  const b = e.second;
  if (a.height !== b.height || a.round !== b.round) return "the two messages are for different (height, round)";
  if (e.kind === "duplicateVote") {
    const second = e.second;
    if (e.first.type !== second.type) return "the two votes have different types";
    if (e.first.validatorIndex !== second.validatorIndex) return "the two votes are from different validators";
    if (e.first.value === second.value) return "the two votes are for the same value";
  } else {
    const second = e.second;
    if (e.first.proposerIndex !== second.proposerIndex) return "the two proposals are from different validators";
    if (e.first.value === second.value && e.first.polRound === second.polRound) {
      return "the two proposals are identical";
    }
  }
  return null;
}

const evidenceBody: Codec<Evidence> = {
  fixedSize: null,
  describe: "u8 kind (1 = duplicateVote, 2 = duplicateProposal) || first || second (wire layouts)",
  encodeInto(writer, value, path, siblings) {
    evidenceKindCodec.encodeInto(writer, value.kind, `${path}.kind`, siblings);
    if (value.kind === "duplicateVote") {
      signedVoteSchema.encodeInto(writer, value.first, `${path}.first`, siblings);
      signedVoteSchema.encodeInto(writer, value.second, `${path}.second`, siblings);
    } else {
      signedProposalSchema.encodeInto(writer, value.first, `${path}.first`, siblings);
      signedProposalSchema.encodeInto(writer, value.second, `${path}.second`, siblings);
    }
  },
  decodeFrom(reader, path, siblings) {
    const kind = evidenceKindCodec.decodeFrom(reader, `${path}.kind`, siblings);
    if (kind === "duplicateVote") {
      const first: SignedVote = signedVoteSchema.decodeFrom(reader, `${path}.first`, siblings);
      const second: SignedVote = signedVoteSchema.decodeFrom(reader, `${path}.second`, siblings);
      return { kind, first, second };
    }
    const first: SignedProposal = signedProposalSchema.decodeFrom(reader, `${path}.first`, siblings);
    const second: SignedProposal = signedProposalSchema.decodeFrom(reader, `${path}.second`, siblings);
    return { kind, first, second };
  },
};

/** version u8 (= 1) | kind u8 | first | second; both messages in their gossip wire layout, signatures included. */
export const evidenceSchema = versioned(EVIDENCE_FORMAT_VERSION, refine(evidenceBody, evidenceProblem));

export function encodeEvidence(e: Evidence): Uint8Array {
  return encode(evidenceSchema, e, "evidence");
}

/** Throws only DecodeError. */
export function decodeEvidence(bytes: Uint8Array): Evidence {
  return decode(evidenceSchema, bytes, "evidence");
}

/** Kind byte of the evidence key: duplicate prevotes and precommits of one round are distinct evidence. */
export const EvidenceKeyKind = {
  duplicateProposal: 1,
  duplicatePrevote: 2,
  duplicatePrecommit: 3,
} as const;

/** height u64 BE | round u32 BE | kind u8 (EvidenceKeyKind) | validator index u16 BE: one entry per offence. */
export function evidenceKeySuffix(e: Evidence): Uint8Array {
  const kind =
    e.kind === "duplicateProposal"
      ? EvidenceKeyKind.duplicateProposal
      : e.first.type === "prevote"
        ? EvidenceKeyKind.duplicatePrevote
        : EvidenceKeyKind.duplicatePrecommit;
  const index = e.kind === "duplicateProposal" ? e.first.proposerIndex : e.first.validatorIndex;
  const out = new Uint8Array(15);
  out.set(uintBytes(e.first.height, 8), 0);
  out.set(uintBytes(e.first.round, 4), 8);
  out[12] = kind;
  out.set(uintBytes(index, 2), 13);
  return out;
}
