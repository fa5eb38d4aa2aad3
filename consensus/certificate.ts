// The soft-finality certificate: more than 2/3 of the voting power precommitted `blockHash` at (height, round).
// One BLS aggregate signature over the precommit digest (consensus/signing.ts certificateDigest) plus a signer bitmap
// over the validator set named by `validatorSetId`. Pure: runs in browsers (the default scheme is pure-JS noble), so a
// light client can check a block, and through its state root any proven balance or receipt, without trusting an RPC.
//
// Wire layout (docs/protocol.md), 1 + 8 + 8 + 4 + 32 + 32 + 2 + ceil(n/8) + 96 bytes:
//   version u8 (= 1) | chainId u64 | height u64 | round u32 | blockHash bytes32 | validatorSetId bytes32 |
//   validatorCount u16 (n) | signers bitmap ceil(n/8) bytes | signature bytes96 (compressed G2 aggregate)
// Bitmap: validator i signed iff byte (i >> 3) has bit (1 << (i & 7)); bits at positions >= n must be zero.
import { type Hex, isHex } from "./bytes.ts";
import {
  bitmap,
  bitmapByteLength,
  bitmapProblem,
  bytes,
  decode,
  encode,
  hex32,
  type Infer,
  refine,
  type Same,
  struct,
  u16,
  u32,
  u64,
  u64Number,
  versioned,
} from "./codec.ts";
import { nobleBlsScheme } from "./crypto/bls-noble.ts";
import { certificateDigest } from "./signing.ts";
import type { SignatureScheme, SignedVote, ValidatorSet } from "./types.ts";
import { hasQuorum } from "./validator-set.ts";
import { SIGNATURE_LENGTH, valueIdCodec } from "./wire.ts";

export const CERTIFICATE_VERSION = 1;
/** validatorCount is a u16 on the wire. */
export const MAX_CERTIFICATE_VALIDATORS = 0xffff;

export interface Certificate {
  readonly chainId: bigint;
  readonly height: number;
  readonly round: number;
  /** The certified block; never the zero hash (that is nil). */
  readonly blockHash: Hex;
  /** `ValidatorSet.id` of the set whose members signed. */
  readonly validatorSetId: Hex;
  /** n, the size of that set: the bitmap covers exactly n bits. */
  readonly validatorCount: number;
  /** Signer bitmap: bit i = byte i >> 3, mask 1 << (i & 7); exactly ceil(n/8) bytes, no bits set at positions >= n. */
  readonly signers: Uint8Array;
  /** 96-byte compressed G2 aggregate of the signers' precommit signatures. */
  readonly signature: Uint8Array;
}

export const certificateSchema = versioned(
  CERTIFICATE_VERSION,
  struct({
    chainId: u64,
    height: u64Number,
    round: u32,
    blockHash: valueIdCodec,
    validatorSetId: hex32,
    validatorCount: refine(u16, (n) => (n === 0 ? "a certificate needs at least one validator" : null)),
    signers: bitmap("validatorCount"),
    signature: bytes(SIGNATURE_LENGTH),
  }),
);

const certificateShapeMatches: Same<Infer<typeof certificateSchema>, Certificate> = true;
void certificateShapeMatches;

/** Throws EncodeError if a field does not fit (a caller bug). */
export function encodeCertificate(cert: Certificate): Uint8Array {
  return encode(certificateSchema, cert, "certificate");
}

/** Throws only DecodeError (truncated, trailing_bytes, invalid_value) on bad input. Does not verify anything. */
export function decodeCertificate(bytes: Uint8Array): Certificate {
  return decode(certificateSchema, bytes, "certificate");
}

export type CertificateErrorCode =
  | "no_precommits"
  | "not_precommit"
  | "nil_value"
  | "mixed_votes"
  | "bad_validator_index"
  | "duplicate_signer"
  | "insufficient_power"
  | "too_many_validators"
  | "aggregation_failed";

/** The driver asked for a certificate from precommits that cannot form one: a bug in the caller, not a peer fault. */
export class CertificateError extends Error {
  override readonly name = "CertificateError";
  readonly code: CertificateErrorCode;
  constructor(code: CertificateErrorCode, message: string, options?: { cause: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Aggregates `precommits` (already verified one by one by the driver) into a certificate. They must all be non-nil
 * precommits for the same height, round and value, from distinct validators of `set`, and hold a quorum of voting
 * power (3 * power > 2 * total). Throws CertificateError otherwise. Signatures are not re-verified here.
 */
export function buildCertificate(
  chainId: bigint,
  set: ValidatorSet,
  precommits: readonly SignedVote[],
  scheme: SignatureScheme,
): Certificate {
  const first = precommits[0];
  if (first === undefined) throw new CertificateError("no_precommits", "no precommits to aggregate");
  const n = set.validators.length;
  if (n > MAX_CERTIFICATE_VALIDATORS) {
    throw new CertificateError("too_many_validators", `${n} validators exceed the u16 count of the certificate`);
  }
  const blockHash = first.value;
  if (blockHash === null) throw new CertificateError("nil_value", "a certificate certifies a block, not nil");
  const signers = new Uint8Array(bitmapByteLength(n));
  let power = 0n;
  for (const [i, vote] of precommits.entries()) {
    if (vote.type !== "precommit") {
      throw new CertificateError("not_precommit", `vote #${i} is a ${vote.type}, expected a precommit`);
    }
    if (vote.height !== first.height || vote.round !== first.round || vote.value !== blockHash) {
      throw new CertificateError(
        vote.value === null ? "nil_value" : "mixed_votes",
        `vote #${i} is for (${vote.height}, ${vote.round}, ${vote.value}), ` +
          `expected (${first.height}, ${first.round}, ${blockHash})`,
      );
    }
    const index = vote.validatorIndex;
    const validator = Number.isInteger(index) && index >= 0 ? set.validators[index] : undefined;
    if (validator === undefined) {
      throw new CertificateError("bad_validator_index", `vote #${i} has validator index ${index}, the set has ${n}`);
    }
    const byte = index >> 3;
    const mask = 1 << (index & 7);
    if (((signers[byte] as number) & mask) !== 0) {
      throw new CertificateError("duplicate_signer", `vote #${i} repeats validator ${index}`);
    }
    signers[byte] = (signers[byte] as number) | mask;
    power += validator.votingPower;
  }
  if (!hasQuorum(power, set.totalVotingPower)) {
    throw new CertificateError(
      "insufficient_power",
      `precommits hold ${power} of ${set.totalVotingPower} voting power, need more than 2/3`,
    );
  }
  let signature: Uint8Array;
  try {
    signature = scheme.aggregateSignatures(precommits.map((v) => v.signature));
  } catch (cause) {
    throw new CertificateError("aggregation_failed", `cannot aggregate the precommit signatures: ${String(cause)}`, {
      cause,
    });
  }
  return {
    chainId,
    height: first.height,
    round: first.round,
    blockHash,
    validatorSetId: set.id,
    validatorCount: n,
    signers,
    signature,
  };
}

export type CertificateFailureCode =
  | "validator_set_mismatch"
  | "chain_id_mismatch"
  | "bad_bitmap"
  | "insufficient_power"
  | "bad_signature";

export type CertificateVerdict =
  | { readonly ok: true; readonly signingPower: bigint; readonly signers: number[] }
  | { readonly ok: false; readonly code: CertificateFailureCode; readonly message: string };

export interface VerifyCertificateOptions {
  /** Defaults to nobleBlsScheme (pure JS, works in browsers); nodes pass blstScheme. */
  readonly scheme?: SignatureScheme;
  /** When given, the certificate must be for this chain. */
  readonly chainId?: bigint;
}

/**
 * Checks a certificate against the validator set it claims (`set` must come from a trusted source: the L1 registry
 * or a chain of verified certificates; this function does not recompute `set.id`). In order: chain id, set id,
 * bitmap shape, quorum of voting power, then one aggregate pairing check over the signers' keys. Never throws.
 */
export function verifyCertificate(
  cert: Certificate,
  set: ValidatorSet,
  options: VerifyCertificateOptions = {},
): CertificateVerdict {
  const fail = (code: CertificateFailureCode, message: string): CertificateVerdict => ({ ok: false, code, message });
  if (options.chainId !== undefined && cert.chainId !== options.chainId) {
    return fail("chain_id_mismatch", `certificate is for chain ${cert.chainId}, expected ${options.chainId}`);
  }
  if (String(cert.validatorSetId).toLowerCase() !== set.id.toLowerCase()) {
    return fail("validator_set_mismatch", `certificate names validator set ${cert.validatorSetId}, have ${set.id}`);
  }
  const n = set.validators.length;
  if (cert.validatorCount !== n) {
    return fail("bad_bitmap", `signer bitmap covers ${cert.validatorCount} validators, the set has ${n}`);
  }
  if (!(cert.signers instanceof Uint8Array)) return fail("bad_bitmap", "signer bitmap is not a byte array");
  const problem = bitmapProblem(cert.signers, n);
  if (problem !== null) return fail("bad_bitmap", problem);

  const signers = certificateSigners(cert, set);
  const publicKeys: Uint8Array[] = [];
  let signingPower = 0n;
  for (const i of signers) {
    const validator = set.validators[i];
    if (validator === undefined) return fail("bad_bitmap", `signer ${i} is not in the set`);
    publicKeys.push(validator.publicKey);
    signingPower += validator.votingPower;
  }
  if (!hasQuorum(signingPower, set.totalVotingPower)) {
    return fail(
      "insufficient_power",
      `signers hold ${signingPower} of ${set.totalVotingPower} voting power, need more than 2/3`,
    );
  }

  if (!(cert.signature instanceof Uint8Array) || cert.signature.length !== SIGNATURE_LENGTH) {
    return fail("bad_signature", `aggregate signature must be ${SIGNATURE_LENGTH} bytes`);
  }
  if (!isHex(cert.blockHash, 32) || !Number.isSafeInteger(cert.height) || cert.height < 0) {
    return fail("bad_signature", "certificate fields do not form a precommit digest");
  }
  if (!Number.isInteger(cert.round) || cert.round < 0 || cert.round > 0xffffffff || cert.chainId < 0n) {
    return fail("bad_signature", "certificate fields do not form a precommit digest");
  }
  if (cert.chainId >= 1n << 64n) return fail("bad_signature", "certificate chain id is not a u64");
  const digest = certificateDigest(cert.chainId, cert.height, cert.round, cert.blockHash);
  const scheme = options.scheme ?? nobleBlsScheme;
  let valid: boolean;
  try {
    valid = scheme.verifyAggregate(publicKeys, digest, cert.signature);
  } catch {
    valid = false;
  }
  if (!valid) return fail("bad_signature", "aggregate signature does not verify against the signers' keys");
  return { ok: true, signingPower, signers };
}

/** Indices of the validators whose bit is set, ascending (bits at positions >= n are ignored; verify first). */
export function certificateSigners(cert: Certificate, set: ValidatorSet): number[] {
  const n = Math.min(set.validators.length, cert.signers.length * 8);
  const out: number[] = [];
  for (let i = 0; i < n; i++) if ((((cert.signers[i >> 3] as number) >> (i & 7)) & 1) === 1) out.push(i);
  return out;
}
