// Gossip validators: decode, check limits and signatures, and return a typed verdict. `reject` means the message is
// invalid whoever relays it (malformed, bad signature, unknown signer): the p2p layer scores the relaying peer down.
// `ignore` means it is not useful to us now (stale, duplicate, for a height we cannot check yet): no penalty.
// Heavy work (BLS verification) happens here, before the serial consensus loop, and only once per message.
import { type Certificate, verifyCertificate } from "../../consensus/certificate.ts";
import { DecodeError } from "../../consensus/codec.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { Evidence, SignatureScheme, SignedProposal, SignedVote, ValidatorSet } from "../../consensus/types.ts";
import { decodeSignedVote, validatorAt, verifyProposalSignature, verifyVoteSignature } from "../../consensus/wire.ts";
import type { Verdict } from "../../p2p/index.ts";
import { type Block, blockHash, decodeBlock } from "../chain/block.ts";
import type { BatchVerifier } from "../crypto/batch-verify.ts";
import { decodeEvidence } from "../storage/evidence.ts";
import { decodeCertificateMessage, decodeProposalMessage } from "./messages.ts";
import type { VoteGate } from "./vote-gate.ts";

export interface VerifierContext {
  readonly chainId: bigint;
  readonly scheme: SignatureScheme;
  /** Last committed height. */
  headHeight(): number;
  /** The set signing `height`, when this node can know it now (the next two heights), else undefined. */
  validatorSetFor(height: number): ValidatorSet | undefined;
  /** The set that signed a committed height (for evidence about the past). */
  committedValidatorSet(height: number): Promise<ValidatorSet | undefined>;
  /** The network has committed `height`, further than this node can follow by gossip: catch up from `peer`. */
  behind(height: number, peer: string): void;
  /**
   * Whether a vote can add nothing to what this node already counted (more than 2/3 voted its value in its step, and
   * its validator had not voted there): it is ignored unverified, and not relayed.
   */
  redundantVote?(vote: SignedVote): boolean;
  /** A peer relayed a certificate of a height this node has committed (not checked: it is not needed). */
  certificateSeen?(height: number): void;
}

export interface VerifiedProposal {
  readonly proposal: SignedProposal;
  readonly block: Block;
  readonly bytes: Uint8Array;
}

const accept = <T>(value: T): Verdict<T> => ({ kind: "accept", value });
const ignore = <T>(code: string): Verdict<T> => ({ kind: "ignore", code });
const reject = <T>(code: string): Verdict<T> => ({ kind: "reject", code });

function malformed<T>(error: unknown): Verdict<T> {
  if (error instanceof DecodeError) return reject(`malformed_${error.code}`);
  throw error;
}

/** Height window: stale below the next height, checkable for the next two, ahead beyond (triggers sync). */
function heightVerdict<T>(ctx: VerifierContext, height: number, from: string): Verdict<T> | ValidatorSet {
  const head = ctx.headHeight();
  if (height <= head) return ignore("stale_height");
  const set = ctx.validatorSetFor(height);
  if (set === undefined) {
    // Consensus at `height` means `height - 1` is committed somewhere.
    ctx.behind(height - 1, from);
    return ignore("future_height");
  }
  return set;
}

/** Everything but the signature: a verdict, or the vote with the key and digest its signature must verify against. */
function screenVote(
  ctx: VerifierContext,
  data: Uint8Array,
  from: string,
): Verdict<SignedVote> | { readonly vote: SignedVote; readonly publicKey: Uint8Array; readonly digest: Uint8Array } {
  let vote: SignedVote;
  try {
    vote = decodeSignedVote(data);
  } catch (error) {
    return malformed(error);
  }
  const set = heightVerdict<SignedVote>(ctx, vote.height, from);
  if (!("validators" in set)) return set;
  const validator = validatorAt(set, vote.validatorIndex);
  if (validator === undefined) return reject("unknown_validator");
  if (ctx.redundantVote?.(vote) === true) return ignore("redundant_vote");
  return { vote, publicKey: validator.publicKey, digest: voteDigestOf(ctx.chainId, vote) };
}

export function verifyVoteMessage(ctx: VerifierContext, data: Uint8Array, from: string): Verdict<SignedVote> {
  const screened = screenVote(ctx, data, from);
  if ("kind" in screened) return screened;
  const { vote, publicKey, digest } = screened;
  return ctx.scheme.verify(publicKey, digest, vote.signature) ? accept(vote) : reject("bad_signature");
}

/**
 * verifyVoteMessage for the gossip path: the vote waits at `gate` until it could complete something (a vote of the
 * height being decided; src/node/vote-gate.ts), then its signature is checked by `batch`, with the other votes
 * released in the same turn of the event loop. A vote that waited is looked at again first: the height may have
 * been committed, or its step completed without it, meanwhile.
 */
export async function verifyVoteMessageBatched(
  ctx: VerifierContext,
  gate: VoteGate,
  batch: BatchVerifier,
  data: Uint8Array,
  from: string,
): Promise<Verdict<SignedVote>> {
  const screened = screenVote(ctx, data, from);
  if ("kind" in screened) return screened;
  const { vote, publicKey, digest } = screened;
  if ((await gate.wait(vote)) !== "ungated") {
    if (vote.height <= ctx.headHeight()) return ignore("stale_height");
    if (ctx.redundantVote?.(vote) === true) return ignore("redundant_vote");
  }
  return (await batch.verify(publicKey, digest, vote.signature)) ? accept(vote) : reject("bad_signature");
}

export function verifyProposalMessage(ctx: VerifierContext, data: Uint8Array, from: string): Verdict<VerifiedProposal> {
  let proposal: SignedProposal;
  let bytes: Uint8Array;
  let block: Block;
  try {
    const m = decodeProposalMessage(data);
    proposal = m.proposal;
    bytes = m.block;
    block = decodeBlock(bytes);
  } catch (error) {
    return malformed(error);
  }
  const set = heightVerdict<VerifiedProposal>(ctx, proposal.height, from);
  if (!("validators" in set)) return set;
  if (proposal.proposerIndex >= set.validators.length) return reject("unknown_validator");
  if (!verifyProposalSignature(ctx.chainId, set, proposal, ctx.scheme)) return reject("bad_signature");
  // The signature covers the block hash only: the body must hash to it. Whether the block is *valid* is for the
  // consensus loop to decide (a validly signed invalid block earns nil prevotes, and relaying it is not a fault).
  if (blockHash(block.header) !== proposal.value) return reject("block_hash_mismatch");
  if (block.header.height !== proposal.height) return reject("block_height_mismatch");
  return accept({ proposal, block, bytes });
}

export function verifyCertificateMessage(ctx: VerifierContext, data: Uint8Array, from: string): Verdict<Certificate> {
  let cert: Certificate;
  try {
    cert = decodeCertificateMessage(data);
  } catch (error) {
    return malformed(error);
  }
  if (cert.chainId !== ctx.chainId) return reject("wrong_chain");
  const head = ctx.headHeight();
  if (cert.height <= head) {
    ctx.certificateSeen?.(cert.height);
    return ignore("stale_height");
  }
  const set = ctx.validatorSetFor(cert.height);
  if (set === undefined) {
    // Further ahead than this node can check: the sync path verifies every certificate it applies.
    ctx.behind(cert.height, from);
    return ignore("future_height");
  }
  const verdict = verifyCertificate(cert, set, { scheme: ctx.scheme, chainId: ctx.chainId });
  if (!verdict.ok) return reject(`certificate_${verdict.code}`);
  return accept(cert);
}

export async function verifyEvidenceMessage(
  ctx: VerifierContext,
  data: Uint8Array,
  _from: string,
): Promise<Verdict<Evidence>> {
  let evidence: Evidence;
  try {
    evidence = decodeEvidence(data);
  } catch (error) {
    return malformed(error);
  }
  const { first, second } = evidence;
  if (first.height !== second.height || first.round !== second.round) return reject("evidence_not_same_position");
  const set = ctx.validatorSetFor(first.height) ?? (await ctx.committedValidatorSet(first.height));
  if (set === undefined) return ignore("evidence_unknown_height");
  if (evidence.kind === "duplicateVote") {
    const a = evidence.first;
    const b = evidence.second;
    if (a.type !== b.type || a.validatorIndex !== b.validatorIndex || a.value === b.value) {
      return reject("evidence_not_conflicting");
    }
    if (
      !verifyVoteSignature(ctx.chainId, set, a, ctx.scheme) ||
      !verifyVoteSignature(ctx.chainId, set, b, ctx.scheme)
    ) {
      return reject("bad_signature");
    }
  } else {
    const a = evidence.first;
    const b = evidence.second;
    if (a.proposerIndex !== b.proposerIndex || a.value === b.value) return reject("evidence_not_conflicting");
    if (
      !verifyProposalSignature(ctx.chainId, set, a, ctx.scheme) ||
      !verifyProposalSignature(ctx.chainId, set, b, ctx.scheme)
    ) {
      return reject("bad_signature");
    }
  }
  return accept(evidence);
}
