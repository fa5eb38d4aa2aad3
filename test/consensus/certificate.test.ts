// Soft-finality certificates, the wire codecs they and the signed messages use, and the BLS schemes' handling of
// malformed input: build/verify, tamper verdicts, DecodeError codes, and fast-check properties.
import { bls12_381 } from "@noble/curves/bls12-381.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import {
  buildCertificate,
  type Certificate,
  CertificateError,
  type CertificateErrorCode,
  certificateSigners,
  decodeCertificate,
  encodeCertificate,
  verifyCertificate,
} from "../../consensus/certificate.ts";
import {
  DecodeError,
  type DecodeErrorCode,
  decode,
  encode,
  type Infer,
  list,
  struct,
  u8,
  u16,
  u64,
  varBytes,
} from "../../consensus/codec.ts";
import { nobleBlsScheme } from "../../consensus/crypto/bls-noble.ts";
import { proposalDigest, voteDigest } from "../../consensus/signing.ts";
import type { SignatureScheme, SignedProposal, SignedVote, Signer, ValidatorSet } from "../../consensus/types.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import {
  decodeSignedProposal,
  decodeSignedVote,
  encodeSignedProposal,
  encodeSignedVote,
  verifyProposalSignature,
  verifyVoteSignature,
} from "../../consensus/wire.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";

const CHAIN_ID = 0x4c554d49n;
const HEIGHT = 42;
const ROUND = 1;
const BLOCK: Hex = toHex(keccak256(utf8("block 42")));
const OTHER_BLOCK: Hex = toHex(keccak256(utf8("block 42'")));

interface Net {
  readonly set: ValidatorSet;
  readonly signerAt: (index: number) => Signer;
}

/** Validators with secret scalars `firstScalar`, `firstScalar + 1`, ... and the given powers (in input order). */
function network(powers: readonly bigint[], firstScalar = 1): Net {
  const byKey = new Map<string, Signer>();
  const inputs = powers.map((votingPower, i) => {
    const signer = createBlstSigner(uintBytes(firstScalar + i, 32));
    byKey.set(toHex(signer.publicKey), signer);
    return { publicKey: signer.publicKey, votingPower };
  });
  const set = createValidatorSet(inputs);
  const signerAt = (index: number): Signer => {
    const v = set.validators[index];
    const signer = v === undefined ? undefined : byKey.get(toHex(v.publicKey));
    if (signer === undefined) throw new Error(`no signer at ${index}`);
    return signer;
  };
  return { set, signerAt };
}

function precommit(net: Net, index: number, value: Hex | null = BLOCK, height = HEIGHT, round = ROUND): SignedVote {
  const signature = net.signerAt(index).sign(voteDigest(CHAIN_ID, "precommit", height, round, value));
  return { type: "precommit", height, round, value, validatorIndex: index, signature };
}

const equal4 = network([10n, 10n, 10n, 10n]);
/** Index 0 has power 50, indices 1..3 have 10 each: total 80, quorum needs > 53.33. */
const unequal4 = network([10n, 50n, 10n, 10n], 11);

function certOf(net: Net, indices: readonly number[], scheme: SignatureScheme = blstScheme): Certificate {
  return buildCertificate(
    CHAIN_ID,
    net.set,
    indices.map((i) => precommit(net, i)),
    scheme,
  );
}

function withBit(bits: Uint8Array, i: number, on: boolean): Uint8Array {
  const out = bits.slice();
  const mask = 1 << (i & 7);
  out[i >> 3] = on ? (out[i >> 3] ?? 0) | mask : (out[i >> 3] ?? 0) & ~mask;
  return out;
}

function expectDecodeError(fn: () => unknown, code: DecodeErrorCode, pathPart?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DecodeError);
  if (caught instanceof DecodeError) {
    expect(caught.code).toBe(code);
    if (pathPart !== undefined) expect(caught.message).toContain(pathPart);
  }
}

function expectCertificateError(fn: () => unknown, code: CertificateErrorCode): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CertificateError);
  if (caught instanceof CertificateError) expect(caught.code).toBe(code);
}

// ---------------------------------------------------------------------------------------------------------------------

describe("buildCertificate", () => {
  it("aggregates a quorum and verifies with blst and noble", () => {
    const cert = certOf(equal4, [2, 0, 3]);
    expect(cert.validatorSetId).toBe(equal4.set.id);
    expect(cert.validatorCount).toBe(4);
    expect(toHex(cert.signers)).toBe("0x0d");
    expect(certificateSigners(cert, equal4.set)).toEqual([0, 2, 3]);
    const ok = { ok: true, signingPower: 30n, signers: [0, 2, 3] };
    expect(verifyCertificate(cert, equal4.set, { scheme: blstScheme, chainId: CHAIN_ID })).toEqual(ok);
    expect(verifyCertificate(cert, equal4.set, { chainId: CHAIN_ID })).toEqual(ok);
    // Aggregation is order independent: the same certificate from another order and from noble.
    expect(encodeCertificate(certOf(equal4, [3, 2, 0], nobleBlsScheme))).toEqual(encodeCertificate(cert));
  });

  it("accepts a quorum by power that is a minority by count", () => {
    const cert = certOf(unequal4, [0, 1]);
    expect(verifyCertificate(cert, unequal4.set, { scheme: blstScheme })).toEqual({
      ok: true,
      signingPower: 60n,
      signers: [0, 1],
    });
  });

  it("throws CertificateError on precommits that cannot form a certificate", () => {
    const set = equal4.set;
    const good = [0, 1, 2].map((i) => precommit(equal4, i));
    const [a, b] = good as [SignedVote, SignedVote, SignedVote];
    expectCertificateError(() => buildCertificate(CHAIN_ID, set, [], blstScheme), "no_precommits");
    expectCertificateError(
      () =>
        buildCertificate(
          CHAIN_ID,
          set,
          [...good.slice(0, 2), { ...precommit(equal4, 2), type: "prevote" }],
          blstScheme,
        ),
      "not_precommit",
    );
    const nils = [0, 1, 2].map((i) => precommit(equal4, i, null));
    expectCertificateError(() => buildCertificate(CHAIN_ID, set, nils, blstScheme), "nil_value");
    expectCertificateError(
      () => buildCertificate(CHAIN_ID, set, [a, b, precommit(equal4, 2, null)], blstScheme),
      "nil_value",
    );
    expectCertificateError(
      () => buildCertificate(CHAIN_ID, set, [a, b, precommit(equal4, 2, OTHER_BLOCK)], blstScheme),
      "mixed_votes",
    );
    expectCertificateError(
      () => buildCertificate(CHAIN_ID, set, [a, b, precommit(equal4, 2, BLOCK, HEIGHT + 1)], blstScheme),
      "mixed_votes",
    );
    expectCertificateError(
      () => buildCertificate(CHAIN_ID, set, [a, b, precommit(equal4, 2, BLOCK, HEIGHT, ROUND + 1)], blstScheme),
      "mixed_votes",
    );
    expectCertificateError(() => buildCertificate(CHAIN_ID, set, [a, b, a], blstScheme), "duplicate_signer");
    expectCertificateError(
      () => buildCertificate(CHAIN_ID, set, [a, b, { ...a, validatorIndex: 4 }], blstScheme),
      "bad_validator_index",
    );
    expectCertificateError(
      () => buildCertificate(CHAIN_ID, set, [a, b, { ...a, validatorIndex: -1 }], blstScheme),
      "bad_validator_index",
    );
    expectCertificateError(() => buildCertificate(CHAIN_ID, set, [a, b], blstScheme), "insufficient_power");
    // Three of four by count, 30 of 80 by power.
    const smalls = [1, 2, 3].map((i) => precommit(unequal4, i));
    expectCertificateError(() => buildCertificate(CHAIN_ID, unequal4.set, smalls, blstScheme), "insufficient_power");
    const garbage = { ...(good[2] as SignedVote), signature: new Uint8Array(96).fill(0xab) };
    expectCertificateError(() => buildCertificate(CHAIN_ID, set, [a, b, garbage], blstScheme), "aggregation_failed");
    expectCertificateError(
      () => buildCertificate(CHAIN_ID, set, [a, b, garbage], nobleBlsScheme),
      "aggregation_failed",
    );
  });
});

describe("verifyCertificate tamper verdicts", () => {
  const cert = certOf(equal4, [0, 1, 2]);
  const verify = (c: Certificate, set: ValidatorSet = equal4.set, chainId?: bigint) =>
    verifyCertificate(c, set, chainId === undefined ? { scheme: blstScheme } : { scheme: blstScheme, chainId });

  it("accepts the untouched certificate", () => {
    expect(verify(cert).ok).toBe(true);
  });

  it("a non-signer's bit set: enough power, but the aggregate does not match", () => {
    const v = verify({ ...cert, signers: withBit(cert.signers, 3, true) });
    expect(v).toMatchObject({ ok: false, code: "bad_signature" });
    // Same with noble.
    const n = verifyCertificate({ ...cert, signers: withBit(cert.signers, 3, true) }, equal4.set);
    expect(n).toMatchObject({ ok: false, code: "bad_signature" });
  });

  it("a signer's bit cleared below 2/3 of the power", () => {
    expect(verify({ ...cert, signers: withBit(cert.signers, 2, false) })).toMatchObject({
      ok: false,
      code: "insufficient_power",
    });
  });

  it("unequal powers: dropping the heavy signer leaves 3 of 4 by count... not a quorum by power", () => {
    const full = certOf(unequal4, [0, 1, 2, 3]);
    expect(verifyCertificate(full, unequal4.set, { scheme: blstScheme })).toMatchObject({
      ok: true,
      signingPower: 80n,
    });
    const dropped = { ...full, signers: withBit(full.signers, 0, false) };
    expect(verifyCertificate(dropped, unequal4.set, { scheme: blstScheme })).toMatchObject({
      ok: false,
      code: "insufficient_power",
    });
    // A correctly aggregated certificate of the three light validators: the signature is valid, the power is not.
    const lights = [1, 2, 3].map((i) => precommit(unequal4, i));
    const signature = blstScheme.aggregateSignatures(lights.map((v) => v.signature));
    const keys = [1, 2, 3].map((i) => unequal4.set.validators[i]?.publicKey ?? new Uint8Array());
    const digest = voteDigest(CHAIN_ID, "precommit", HEIGHT, ROUND, BLOCK);
    expect(blstScheme.verifyAggregate(keys, digest, signature)).toBe(true);
    const forged: Certificate = { ...full, signers: Uint8Array.of(0b1110), signature };
    expect(certificateSigners(forged, unequal4.set)).toEqual([1, 2, 3]);
    expect(verifyCertificate(forged, unequal4.set, { scheme: blstScheme })).toMatchObject({
      ok: false,
      code: "insufficient_power",
    });
    expect(verifyCertificate(forged, unequal4.set)).toMatchObject({ ok: false, code: "insufficient_power" });
  });

  it("bits beyond n, a wrong bitmap length or a wrong validator count", () => {
    expect(verify({ ...cert, signers: withBit(cert.signers, 5, true) })).toMatchObject({ code: "bad_bitmap" });
    expect(verify({ ...cert, signers: Uint8Array.of(cert.signers[0] ?? 0, 0) })).toMatchObject({ code: "bad_bitmap" });
    expect(verify({ ...cert, signers: new Uint8Array() })).toMatchObject({ code: "bad_bitmap" });
    expect(verify({ ...cert, validatorCount: 5 })).toMatchObject({ code: "bad_bitmap" });
  });

  it("wrong block hash, height or round", () => {
    expect(verify({ ...cert, blockHash: OTHER_BLOCK })).toMatchObject({ ok: false, code: "bad_signature" });
    expect(verify({ ...cert, height: HEIGHT + 1 })).toMatchObject({ ok: false, code: "bad_signature" });
    expect(verify({ ...cert, round: ROUND + 1 })).toMatchObject({ ok: false, code: "bad_signature" });
    expect(verifyCertificate({ ...cert, blockHash: OTHER_BLOCK }, equal4.set)).toMatchObject({ code: "bad_signature" });
  });

  it("wrong chain id", () => {
    expect(verify(cert, equal4.set, CHAIN_ID + 1n)).toMatchObject({ ok: false, code: "chain_id_mismatch" });
    // Without an expected chain id, a relabelled certificate fails the signature (the chain id is in the digest).
    expect(verify({ ...cert, chainId: CHAIN_ID + 1n })).toMatchObject({ ok: false, code: "bad_signature" });
  });

  it("wrong validator set", () => {
    const other = network([10n, 10n, 10n, 10n], 21).set;
    expect(verify(cert, other)).toMatchObject({ ok: false, code: "validator_set_mismatch" });
    expect(verify(cert, unequal4.set)).toMatchObject({ ok: false, code: "validator_set_mismatch" });
    expect(verify({ ...cert, validatorSetId: unequal4.set.id })).toMatchObject({ code: "validator_set_mismatch" });
    // Same keys, different powers: a different id.
    expect(verify(cert, network([10n, 10n, 10n, 11n]).set)).toMatchObject({ code: "validator_set_mismatch" });
  });

  it("malformed or identity aggregate signatures", () => {
    const identity = new Uint8Array(96);
    identity[0] = 0xc0;
    for (const signature of [identity, new Uint8Array(96), new Uint8Array(95), cert.signature.slice(0, 48)]) {
      expect(verify({ ...cert, signature })).toMatchObject({ ok: false, code: "bad_signature" });
      expect(verifyCertificate({ ...cert, signature }, equal4.set)).toMatchObject({ ok: false, code: "bad_signature" });
    }
    const otherSig = certOf(equal4, [0, 1, 3]).signature;
    expect(verify({ ...cert, signature: otherSig })).toMatchObject({ ok: false, code: "bad_signature" });
  });
});

describe("certificate encoding", () => {
  const cert = certOf(equal4, [0, 1, 2]);
  const encoded = encodeCertificate(cert);

  it("round-trips", () => {
    expect(encoded.length).toBe(184);
    expect(decodeCertificate(encoded)).toEqual(cert);
  });

  it("every truncation is `truncated`, an extra byte is `trailing_bytes`", () => {
    for (let k = 0; k < encoded.length; k++)
      expectDecodeError(() => decodeCertificate(encoded.subarray(0, k)), "truncated");
    const longer = new Uint8Array(encoded.length + 1);
    longer.set(encoded);
    expectDecodeError(() => decodeCertificate(longer), "trailing_bytes");
    expectDecodeError(() => decodeCertificate(new Uint8Array(100_000)), "invalid_value", "certificate.version");
  });

  it("non-canonical fields are `invalid_value` with the field path", () => {
    const patch = (offset: number, bytes: readonly number[]): Uint8Array => {
      const out = encoded.slice();
      out.set(bytes, offset);
      return out;
    };
    expectDecodeError(() => decodeCertificate(patch(0, [2])), "invalid_value", "certificate.version");
    // height above 2^53 - 1
    expectDecodeError(() => decodeCertificate(patch(9, [0x00, 0x20])), "invalid_value", "certificate.height");
    // zero block hash (nil)
    expectDecodeError(
      () => decodeCertificate(patch(21, new Array(32).fill(0))),
      "invalid_value",
      "certificate.blockHash",
    );
    // validatorCount 0: nothing follows but the signature
    const zeroCount = new Uint8Array([...encoded.subarray(0, 85), 0, 0, ...encoded.subarray(88)]);
    expectDecodeError(() => decodeCertificate(zeroCount), "invalid_value", "certificate.validatorCount");
    // a padding bit (position 4 >= n = 4) set
    expectDecodeError(() => decodeCertificate(patch(87, [0x17])), "invalid_value", "certificate.signers");
    // validatorCount larger than what follows
    expectDecodeError(() => decodeCertificate(patch(85, [0xff, 0xff])), "truncated", "certificate.signers");
  });

  it("refuses to encode an inconsistent bitmap", () => {
    expect(() => encodeCertificate({ ...cert, signers: withBit(cert.signers, 6, true) })).toThrow(/bits at positions/);
    expect(() => encodeCertificate({ ...cert, validatorCount: 9 })).toThrow(/bitmap of 9 bits/);
  });
});

describe("signed vote and proposal wire", () => {
  const vote = precommit(equal4, 1);
  const bytes = encodeSignedVote(vote);
  const proposalBase = { height: HEIGHT, round: ROUND, polRound: -1, value: BLOCK, proposerIndex: 2 };
  const proposal: SignedProposal = {
    ...proposalBase,
    signature: equal4.signerAt(2).sign(proposalDigest(CHAIN_ID, proposalBase)),
  };
  const proposalBytes = encodeSignedProposal(proposal);

  const patched = (src: Uint8Array, offset: number, values: readonly number[]): Uint8Array => {
    const out = src.slice();
    out.set(values, offset);
    return out;
  };

  it("rejects non-canonical votes", () => {
    expectDecodeError(() => decodeSignedVote(patched(bytes, 0, [0])), "invalid_value", "vote.version");
    expectDecodeError(() => decodeSignedVote(patched(bytes, 1, [3])), "invalid_value", "vote.type");
    expectDecodeError(() => decodeSignedVote(patched(bytes, 14, [2])), "invalid_value", "vote.value.flag");
    const nil = encodeSignedVote(precommit(equal4, 1, null));
    expect(decodeSignedVote(nil).value).toBeNull();
    expectDecodeError(() => decodeSignedVote(patched(nil, 30, [1])), "invalid_value", "vote.value");
    expectDecodeError(() => decodeSignedVote(patched(bytes, 15, new Array(32).fill(0))), "invalid_value", "vote.value");
    expectDecodeError(() => decodeSignedVote(bytes.subarray(0, 144)), "truncated", "vote.signature");
    expectDecodeError(() => decodeSignedVote(new Uint8Array([...bytes, 0])), "trailing_bytes");
  });

  it("rejects non-canonical proposals", () => {
    expect(decodeSignedProposal(proposalBytes)).toEqual(proposal);
    expectDecodeError(() => decodeSignedProposal(patched(proposalBytes, 0, [2])), "invalid_value", "proposal.version");
    // polRound = round (1) is not below round
    expectDecodeError(
      () => decodeSignedProposal(patched(proposalBytes, 13, [0, 0, 0, 1])),
      "invalid_value",
      "proposal",
    );
    expectDecodeError(() => decodeSignedProposal(proposalBytes.subarray(0, 40)), "truncated", "proposal.value");
    expect(() => encodeSignedProposal({ ...proposal, polRound: 5 })).toThrow(/polRound/);
    expect(() => encodeSignedProposal({ ...proposal, polRound: -2 })).toThrow(/polRound/);
  });

  it("verifies signatures and checks the index", () => {
    expect(verifyVoteSignature(CHAIN_ID, equal4.set, vote, blstScheme)).toBe(true);
    expect(verifyVoteSignature(CHAIN_ID + 1n, equal4.set, vote, blstScheme)).toBe(false);
    expect(verifyVoteSignature(CHAIN_ID, equal4.set, { ...vote, validatorIndex: 2 }, blstScheme)).toBe(false);
    expect(verifyVoteSignature(CHAIN_ID, equal4.set, { ...vote, validatorIndex: 4 }, blstScheme)).toBe(false);
    expect(verifyVoteSignature(CHAIN_ID, equal4.set, { ...vote, validatorIndex: -1 }, blstScheme)).toBe(false);
    expect(verifyVoteSignature(CHAIN_ID, equal4.set, { ...vote, validatorIndex: 1.5 }, blstScheme)).toBe(false);
    expect(verifyVoteSignature(CHAIN_ID, equal4.set, { ...vote, type: "prevote" }, blstScheme)).toBe(false);
    expect(verifyVoteSignature(CHAIN_ID, equal4.set, { ...vote, signature: new Uint8Array(3) }, blstScheme)).toBe(
      false,
    );
    expect(verifyProposalSignature(CHAIN_ID, equal4.set, proposal, blstScheme)).toBe(true);
    expect(verifyProposalSignature(CHAIN_ID, equal4.set, proposal, nobleBlsScheme)).toBe(true);
    expect(verifyProposalSignature(CHAIN_ID, equal4.set, { ...proposal, polRound: 0 }, blstScheme)).toBe(false);
    expect(verifyProposalSignature(CHAIN_ID, equal4.set, { ...proposal, proposerIndex: 9 }, blstScheme)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Malformed keys and signatures: both schemes answer false and never throw.

/** First compressed G1 (or G2, `g2`) encoding with x = small integer that lies on the curve but outside the subgroup. */
function offSubgroupPoint(g2: boolean): Uint8Array {
  for (let x = 1; x < 1000; x++) {
    const out = new Uint8Array(g2 ? 96 : 48);
    out.set(uintBytes(x, 4), out.length - 4); // G2: c1 = 0 in the first 48 bytes, c0 = x in the last 48
    out[0] = (out[0] ?? 0) | 0x80;
    try {
      if (g2) bls12_381.G2.Point.fromBytes(out);
      else bls12_381.G1.Point.fromBytes(out);
    } catch (error) {
      if (String(error).includes("subgroup")) return out;
    }
  }
  throw new Error("no off-subgroup point found");
}

describe.each([
  ["blst", blstScheme],
  ["noble", nobleBlsScheme],
])("%s scheme on malformed input", (_name, scheme) => {
  const signer = createBlstSigner(uintBytes(7, 32));
  const message = keccak256(utf8("message"));
  const signature = signer.sign(message);
  const pk = signer.publicKey;
  const g1Identity = new Uint8Array(48);
  g1Identity[0] = 0xc0;
  const g2Identity = new Uint8Array(96);
  g2Identity[0] = 0xc0;
  const negatedPk = bls12_381.G1.Point.fromBytes(pk).negate().toBytes(true);

  it("accepts the valid signature", () => {
    expect(scheme.verify(pk, message, signature)).toBe(true);
    expect(scheme.verifyAggregate([pk], message, signature)).toBe(true);
  });

  it("rejects bad public keys", () => {
    const uncompressed = bls12_381.G1.Point.fromBytes(pk).toBytes(false);
    const flipped = pk.slice();
    flipped[47] = (flipped[47] ?? 0) ^ 1;
    for (const bad of [
      g1Identity,
      new Uint8Array(48),
      pk.subarray(0, 47),
      uncompressed,
      offSubgroupPoint(false),
      flipped,
    ]) {
      expect(scheme.verify(bad, message, signature)).toBe(false);
      expect(scheme.verifyAggregate([pk, bad], message, signature)).toBe(false);
    }
  });

  it("rejects bad signatures", () => {
    const flipped = signature.slice();
    flipped[95] = (flipped[95] ?? 0) ^ 1;
    for (const bad of [g2Identity, new Uint8Array(96), signature.subarray(0, 95), offSubgroupPoint(true), flipped]) {
      expect(scheme.verify(pk, message, bad)).toBe(false);
      expect(scheme.verifyAggregate([pk], message, bad)).toBe(false);
    }
  });

  it("rejects an empty key list and an identity aggregate key", () => {
    expect(scheme.verifyAggregate([], message, signature)).toBe(false);
    expect(scheme.verifyAggregate([pk, negatedPk], message, g2Identity)).toBe(false);
    expect(scheme.verifyAggregate([pk, negatedPk], message, signature)).toBe(false);
  });

  it("refuses to aggregate nothing or garbage", () => {
    expect(() => scheme.aggregateSignatures([])).toThrow();
    expect(() => scheme.aggregateSignatures([signature, new Uint8Array(96).fill(0x55)])).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Properties

const hash32 = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .filter((b) => b.some((x) => x !== 0))
  .map((b) => toHex(b));
const sig96 = fc.uint8Array({ minLength: 96, maxLength: 96 });
const height = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

const signedVote: fc.Arbitrary<SignedVote> = fc.record({
  type: fc.constantFrom("prevote" as const, "precommit" as const),
  height,
  round: u32,
  value: fc.option(hash32, { nil: null }),
  validatorIndex: fc.integer({ min: 0, max: 0xffff }),
  signature: sig96,
});

const signedProposal: fc.Arbitrary<SignedProposal> = fc
  .record({
    height,
    round: fc.integer({ min: 0, max: 0xfffffffe }),
    polRoundSeed: fc.double({ min: 0, max: 1, noNaN: true }),
    value: hash32,
    proposerIndex: fc.integer({ min: 0, max: 0xffff }),
    signature: sig96,
  })
  .map(({ polRoundSeed, ...p }) => ({ ...p, polRound: Math.floor(polRoundSeed * (p.round + 1)) - 1 }))
  .map((p) => ({ ...p, polRound: Math.min(p.polRound, p.round - 1) }));

const certificate: fc.Arbitrary<Certificate> = fc
  .record({
    chainId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    height,
    round: u32,
    blockHash: hash32,
    validatorSetId: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => toHex(b)),
    validatorCount: fc.integer({ min: 1, max: 300 }),
    bitsSeed: fc.uint8Array({ minLength: 38, maxLength: 38 }),
    signature: sig96,
  })
  .map(({ bitsSeed, ...c }) => {
    const signers = bitsSeed.slice(0, Math.ceil(c.validatorCount / 8));
    const rem = c.validatorCount % 8;
    if (rem !== 0) signers[signers.length - 1] = (signers[signers.length - 1] ?? 0) & ((1 << rem) - 1);
    return { ...c, signers };
  });

/** Decodes, and if that succeeds checks the encoding was canonical; any throw other than DecodeError fails. */
function onlyDecodeErrors<T>(dec: (b: Uint8Array) => T, enc: (v: T) => Uint8Array, input: Uint8Array): void {
  let value: T;
  try {
    value = dec(input);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    return;
  }
  expect(toHex(enc(value))).toBe(toHex(input));
}

/** Valid encodings with random edits: byte flips, truncation, extension. */
function mutated(encoded: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(
      encoded,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
      fc.nat(),
      fc.boolean(),
    )
    .map(([bytes, edits, cut, extend]) => {
      const out = bytes.slice();
      for (const [pos, val] of edits) if (out.length > 0) out[pos % out.length] = val;
      if (extend) return new Uint8Array([...out, cut & 0xff]);
      return out.subarray(0, cut % (out.length + 1));
    });
}

describe("properties", () => {
  it("decode(encode(vote)) = vote", () => {
    fc.assert(
      fc.property(signedVote, (v) => {
        expect(decodeSignedVote(encodeSignedVote(v))).toEqual(v);
      }),
    );
  });

  it("decode(encode(proposal)) = proposal", () => {
    fc.assert(
      fc.property(signedProposal, (p) => {
        expect(decodeSignedProposal(encodeSignedProposal(p))).toEqual(p);
      }),
    );
  });

  it("decode(encode(certificate)) = certificate", () => {
    fc.assert(
      fc.property(certificate, (c) => {
        expect(decodeCertificate(encodeCertificate(c))).toEqual(c);
      }),
    );
  });

  it("random bytes only ever raise DecodeError, and whatever decodes re-encodes to the same bytes", () => {
    const random = fc.uint8Array({ maxLength: 400 });
    fc.assert(
      fc.property(random, (b) => {
        onlyDecodeErrors(decodeSignedVote, encodeSignedVote, b);
        onlyDecodeErrors(decodeSignedProposal, encodeSignedProposal, b);
        onlyDecodeErrors(decodeCertificate, encodeCertificate, b);
      }),
      { numRuns: 500 },
    );
  });

  it("mutated, truncated and extended valid encodings only ever raise DecodeError", () => {
    fc.assert(
      fc.property(mutated(signedVote.map(encodeSignedVote)), (b) =>
        onlyDecodeErrors(decodeSignedVote, encodeSignedVote, b),
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(mutated(signedProposal.map(encodeSignedProposal)), (b) =>
        onlyDecodeErrors(decodeSignedProposal, encodeSignedProposal, b),
      ),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(mutated(certificate.map(encodeCertificate)), (b) =>
        onlyDecodeErrors(decodeCertificate, encodeCertificate, b),
      ),
      { numRuns: 500 },
    );
  });

  it("every strict prefix of a valid certificate is `truncated`", () => {
    fc.assert(
      fc.property(certificate, fc.nat(), (c, cut) => {
        const bytes = encodeCertificate(c);
        expectDecodeError(() => decodeCertificate(bytes.subarray(0, cut % bytes.length)), "truncated");
      }),
    );
  });
});

describe("codec combinators", () => {
  const record = struct({ tag: u8, id: u64, payload: varBytes(16), items: list(u16, 4) });
  type Sample = Infer<typeof record>;
  const sample: Sample = { tag: 7, id: 2n ** 64n - 1n, payload: Uint8Array.of(1, 2, 3), items: [1, 0xffff] };

  it("documents its layout and round-trips", () => {
    const bytes = encode(record, sample);
    expect(toHex(bytes)).toBe("0x07ffffffffffffffff00000003010203000000020001ffff");
    expect(decode(record, bytes)).toEqual(sample);
  });

  it("too_long for lengths and counts above their maximum, truncated when the input ends early", () => {
    const long = fromHex(`0x07${"00".repeat(8)}00000011${"00".repeat(17)}00000000`);
    expectDecodeError(() => decode(record, long, "rec"), "too_long", "rec.payload");
    const many = fromHex(`0x07${"00".repeat(8)}0000000000000005${"0000".repeat(5)}`);
    expectDecodeError(() => decode(record, many, "rec"), "too_long", "rec.items");
    const huge = fromHex(`0x07${"00".repeat(8)}00000000ffffffff`);
    expectDecodeError(() => decode(struct({ x: list(u16, 0xffffffff) }), huge.subarray(13), "rec"), "truncated");
    expect(() => encode(record, { ...sample, payload: new Uint8Array(17) })).toThrow(/exceed the maximum/);
    expect(() => encode(record, { ...sample, tag: 256 })).toThrow(/not a u8/);
  });

  it("round-trips arbitrary records", () => {
    const arb = fc.record({
      tag: fc.integer({ min: 0, max: 255 }),
      id: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      payload: fc.uint8Array({ maxLength: 16 }),
      items: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(arb, (r) => {
        expect(decode(record, encode(record, r))).toEqual(r);
      }),
    );
  });
});
