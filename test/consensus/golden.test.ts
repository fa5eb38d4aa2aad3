// Golden vectors for every signing and wire format (docs/protocol.md lists the same values). If one of these changes,
// the protocol changed: bump the version byte or the domain tag, update docs/protocol.md, and tell the Solidity side.
import { SecretKey } from "@chainsafe/blst";
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { encodeAbiParameters } from "viem";
import { describe, expect, it } from "vitest";
import { concatBytes, fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import {
  buildCertificate,
  decodeCertificate,
  encodeCertificate,
  verifyCertificate,
} from "../../consensus/certificate.ts";
import {
  BLS_POP_DST,
  BLS_SIG_DST,
  blsPublicKeyOf,
  createNobleSigner,
  nobleBlsScheme,
  nobleProofOfPossession,
  nobleVerifyProofOfPossession,
} from "../../consensus/crypto/bls-noble.ts";
import {
  DOMAIN,
  proposalDigest,
  voteDigest,
  WORK_REPORT_DOMAIN,
  type WorkReportEntry,
  workReportDigest,
} from "../../consensus/signing.ts";
import type { SignedProposal, SignedVote, Signer, ValidatorSet } from "../../consensus/types.ts";
import { computeValidatorSetId, createValidatorSet } from "../../consensus/validator-set.ts";
import {
  decodeSignedProposal,
  decodeSignedVote,
  encodeSignedProposal,
  encodeSignedVote,
  verifyProposalSignature,
  verifyVoteSignature,
} from "../../consensus/wire.ts";
import {
  blsProofOfPossession,
  blstScheme,
  createBlstSigner,
  generateBlsSecretKey,
  verifyProofOfPossession,
} from "../../src/crypto/blst.ts";

// ---------------------------------------------------------------------------------------------------------------------
// Inputs. Byte-order revealing chain id and height; secret keys are the scalars 1..4 (32-byte big-endian).

const CHAIN_ID = 0x0102030405060708n;
const HEIGHT = 0x0a0b0c0d;
const ROUND = 3;
/** keccak256("lumia golden block") */
const VALUE: Hex = "0xc2a56f51b75a36e45c446cfeb969829bdee5af0b63bc0b9c2804c9de84c6a0e3";

const secretKey = (scalar: number): Uint8Array => uintBytes(scalar, 32);

const PUBLIC_KEYS: Record<number, Hex> = {
  1: "0x97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb",
  2: "0xa572cbea904d67468808c8eb50a9450c9721db309128012543902d0ac358a62ae28f75bb8f1c7c42c39a8c5529bf0f4e",
  3: "0x89ece308f9d1f0131765212deca99697b112d61f9be9a5f1f3780a51335b3ff981747a0b2ca2179b96d2c0c9024e5224",
  4: "0xac9b60d5afcbd5663a8a44b7c5a02f19e9a77ab0a35bd65809bb5c67ec582c897feb04decc694b13e08587f3ff9b5b60",
};

// ---------------------------------------------------------------------------------------------------------------------
// Expected values

const GOLDEN = {
  domains: {
    proposal: "0xb51e69604938ccf23e47cc11ca8e008cbc49ea361564e2f1dbbc3b98841a3c17",
    prevote: "0xab13a9f407262e6ff618f6c6113ee3c48056f45724280dfab949a8cd4bca236f",
    precommit: "0x87ffeb2235cb3aabb275d2ac767d7f4866554ff16fe1fd85c0c788baeb119488",
  },
  prevoteDigest: "0x5b1faaf63bfb46e9bdcbce86491f8207be8c76120342f7ce84f7ec239c73621b",
  nilPrevoteDigest: "0x966f115a50aa97f9ccfb1202f0a2aaba353b186f1d78040559d696727ba60128",
  precommitDigest: "0x1cb43e2e5ec8ec0e9b7a96339f14943830475118c45a265e5c32e27651e58304",
  /** polRound = -1, proposerIndex irrelevant to the digest */
  proposalDigest: "0x404f04aef43840b3422f58035ca1862b506e1e0d1dca094a22f9d7c65b00953e",
  /** polRound = 1 */
  proposalPol1Digest: "0x7b27ca1751080d2083b3cf9e493862c8082e6f19ef0f20fcf765a3ded0b216b7",
  /** 4 validators (scalars 1..4), power 10 each; set order by address: scalars [4, 3, 1, 2] */
  validatorSetId: "0xfc4cca6429149bcf54cb5598c11ea387ccd9c44e797abbaec26b478bd27fc7d9",
  /** sk = 1 signing the precommit digest */
  precommitSignatureSk1:
    "0xb1796e9d222df6d541076d1eb9047cd2e9ff8cc515561a717707e28f17f5ba0dd3b4f44c4b02ce241c85931d717860f102dcf654478aa4cf152a893a02361f7ea4bcf636de6297fee83fc1cb39f2f24375f6a348a1d6ccbfafdc56116adcee24",
  /** precommit for VALUE by validator index 0 of the golden set */
  precommitEncoded:
    "0x0102000000000a0b0c0d0000000301c2a56f51b75a36e45c446cfeb969829bdee5af0b63bc0b9c2804c9de84c6a0e30000a44b3328123bf3f44c7993a0e32ec2a15e1166a4e5977210e536339cf5d6206dc39b6727669c388b317ab887157cf92c12bda6384a767008d645b7644b9601ed3cb18811f5a4d7b8dc0d3a0c6bf36452a2882a6b2394f92007ab696f43c910ab",
  /** nil prevote by validator index 1 */
  nilPrevoteEncoded:
    "0x0101000000000a0b0c0d00000003000000000000000000000000000000000000000000000000000000000000000000000181bdd72d05b0ab349dbb30d7afdb27aacf40f5832d6be7e46b0c546c5f654e4287eddce06a2d032fc94bfdf8d0900da7144350bff1659beaf22dc64d0698b2222f423bc9d7a8ed82bc06fa3dff0d29aefd0f535c6e970f4a8491bdaa4f741896",
  /** proposal with polRound 1 by validator index 2 */
  proposalEncoded:
    "0x01000000000a0b0c0d0000000300000001c2a56f51b75a36e45c446cfeb969829bdee5af0b63bc0b9c2804c9de84c6a0e300029817a2cb93fd1afd9bf2841970e0395a991946c69d061bd669cf715257a209362b9b0e13f248331be436837d97ee10730eca0fdd4dfacf1ec39a81c4cab1b77b4e94075af14dd707ef4ff869bc25d6773f9f319a4d44a337a7f857301d7d1126",
  /** signers: set indices 0, 1, 3 (bitmap 0x0b) */
  certificateAggregate:
    "0x92e8b97185dc24ac45d2467488a2141b0d5406a54d0cfa01e765d7487ed42ad0b5123305254a9fd2c32b8654b92fb8d110e9cdf63ce9acc4e8dd11b962f1ce0547a98eab3f7f0f4a9e2fad9d1f69b6b081e7309b9943cd48e60c1c374bb41a72",
  certificateEncoded:
    "0x010102030405060708000000000a0b0c0d00000003c2a56f51b75a36e45c446cfeb969829bdee5af0b63bc0b9c2804c9de84c6a0e3fc4cca6429149bcf54cb5598c11ea387ccd9c44e797abbaec26b478bd27fc7d900040b92e8b97185dc24ac45d2467488a2141b0d5406a54d0cfa01e765d7487ed42ad0b5123305254a9fd2c32b8654b92fb8d110e9cdf63ce9acc4e8dd11b962f1ce0547a98eab3f7f0f4a9e2fad9d1f69b6b081e7309b9943cd48e60c1c374bb41a72",
  /** proof of possession of sk = 1 (POP DST over its 48-byte public key) */
  proofOfPossessionSk1:
    "0xabd367bf7fe788f30632c5d7e92a9958da6164eea2f0cc2d4678a1bcc281f1bede7fc92f5624c84718da7c203f8f69cc016b555c691666c80d48dbebdbb5985eff6618683e563660d926ab2e336376e011717f4d35754ba8cac2b33e0ab21f9a",
} as const;

/** ethereum/bls12-381-tests sign_case_c82df61aa3ee60fb: anchors the ciphersuite to Ethereum consensus. */
const ETHEREUM_SIGN_CASE = {
  secretKey: "0x263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3",
  publicKey: "0xa491d1b0ecd9bb917989f0e74f0dea0422eac4a873e5e2644f368dffb9a6e20fd6e10c1b77654d067c0618f6e5a7f79a",
  message: `0x${"00".repeat(32)}`,
  signature:
    "0xb6ed936746e01f8ecf281f020953fbf1f01debd5657c4a383940b020b26507f6076334f91e2366c96e9ab279fb5158090352ea1c5b0c9274504f4f0e7053af24802e51e4568d164fe986834f41e55c8e850ce1f98458c0cfc9ab380b55285a55",
} as const;

// ---------------------------------------------------------------------------------------------------------------------
// Fixture: the golden validator set and a signer per set index

interface Fixture {
  readonly set: ValidatorSet;
  readonly signerAt: (index: number) => Signer;
}

function goldenFixture(): Fixture {
  const byKey = new Map<string, Signer>();
  for (const scalar of [1, 2, 3, 4]) {
    const signer = createBlstSigner(secretKey(scalar));
    byKey.set(toHex(signer.publicKey), signer);
  }
  const set = createValidatorSet([...byKey.values()].map((s) => ({ publicKey: s.publicKey, votingPower: 10n })));
  const signerAt = (index: number): Signer => {
    const validator = set.validators[index];
    const signer = validator === undefined ? undefined : byKey.get(toHex(validator.publicKey));
    if (signer === undefined) throw new Error(`no signer for index ${index}`);
    return signer;
  };
  return { set, signerAt };
}

const { set, signerAt } = goldenFixture();

function precommit(index: number): SignedVote {
  const vote = { type: "precommit", height: HEIGHT, round: ROUND, value: VALUE, validatorIndex: index } as const;
  return { ...vote, signature: signerAt(index).sign(voteDigest(CHAIN_ID, "precommit", HEIGHT, ROUND, VALUE)) };
}

// ---------------------------------------------------------------------------------------------------------------------

describe("signing domains and digests", () => {
  it("domains are keccak256 of their ASCII tags", () => {
    expect(toHex(DOMAIN.proposal)).toBe(GOLDEN.domains.proposal);
    expect(toHex(DOMAIN.prevote)).toBe(GOLDEN.domains.prevote);
    expect(toHex(DOMAIN.precommit)).toBe(GOLDEN.domains.precommit);
    expect(toHex(keccak256(utf8("lumia.dcn.v1.precommit")))).toBe(GOLDEN.domains.precommit);
  });

  it("vote digests", () => {
    expect(toHex(voteDigest(CHAIN_ID, "prevote", HEIGHT, ROUND, VALUE))).toBe(GOLDEN.prevoteDigest);
    expect(toHex(voteDigest(CHAIN_ID, "prevote", HEIGHT, ROUND, null))).toBe(GOLDEN.nilPrevoteDigest);
    expect(toHex(voteDigest(CHAIN_ID, "precommit", HEIGHT, ROUND, VALUE))).toBe(GOLDEN.precommitDigest);
  });

  it("vote digest preimage is abi.encodePacked(bytes32 domain, uint64 chainId, uint64 height, uint32 round, bytes32)", () => {
    const preimage = fromHex(
      `${GOLDEN.domains.precommit}0102030405060708000000000a0b0c0d00000003${VALUE.slice(2)}` as Hex,
    );
    expect(preimage.length).toBe(32 + 8 + 8 + 4 + 32);
    expect(toHex(keccak256(preimage))).toBe(GOLDEN.precommitDigest);
    const nil = fromHex(`${GOLDEN.domains.prevote}0102030405060708000000000a0b0c0d00000003${"00".repeat(32)}`);
    expect(toHex(keccak256(nil))).toBe(GOLDEN.nilPrevoteDigest);
  });

  it("proposal digests (polRound -1 is 0xffffffff)", () => {
    const proposal = { height: HEIGHT, round: ROUND, polRound: -1, value: VALUE, proposerIndex: 2 };
    expect(toHex(proposalDigest(CHAIN_ID, proposal))).toBe(GOLDEN.proposalDigest);
    const preimage = concatBytes(
      DOMAIN.proposal,
      fromHex("0x0102030405060708000000000a0b0c0d00000003ffffffff"),
      fromHex(VALUE),
    );
    expect(toHex(keccak256(preimage))).toBe(GOLDEN.proposalDigest);
    expect(toHex(proposalDigest(CHAIN_ID, { ...proposal, polRound: 1 }))).toBe(GOLDEN.proposalPol1Digest);
  });
});

describe("BLS keys and signatures", () => {
  it("public keys of the scalars 1..4 agree between blst, noble and the vectors", () => {
    for (const scalar of [1, 2, 3, 4]) {
      const expected = PUBLIC_KEYS[scalar];
      expect(toHex(SecretKey.fromBytes(secretKey(scalar)).toPublicKey().toBytes(true))).toBe(expected);
      expect(toHex(blsPublicKeyOf(secretKey(scalar)))).toBe(expected);
      expect(toHex(createBlstSigner(secretKey(scalar)).publicKey)).toBe(expected);
      expect(toHex(createNobleSigner(secretKey(scalar)).publicKey)).toBe(expected);
    }
  });

  it("matches the Ethereum consensus sign vector (DST BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_)", () => {
    expect(BLS_SIG_DST).toBe("BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_");
    const sk = fromHex(ETHEREUM_SIGN_CASE.secretKey);
    const message = fromHex(ETHEREUM_SIGN_CASE.message);
    expect(toHex(blsPublicKeyOf(sk))).toBe(ETHEREUM_SIGN_CASE.publicKey);
    expect(toHex(createBlstSigner(sk).sign(message))).toBe(ETHEREUM_SIGN_CASE.signature);
    expect(toHex(createNobleSigner(sk).sign(message))).toBe(ETHEREUM_SIGN_CASE.signature);
    const pk = fromHex(ETHEREUM_SIGN_CASE.publicKey);
    const sig = fromHex(ETHEREUM_SIGN_CASE.signature);
    expect(blstScheme.verify(pk, message, sig)).toBe(true);
    expect(nobleBlsScheme.verify(pk, message, sig)).toBe(true);
  });

  it("signatures are deterministic and identical in blst and noble", () => {
    const digest = fromHex(GOLDEN.precommitDigest);
    expect(toHex(createBlstSigner(secretKey(1)).sign(digest))).toBe(GOLDEN.precommitSignatureSk1);
    expect(toHex(createNobleSigner(secretKey(1)).sign(digest))).toBe(GOLDEN.precommitSignatureSk1);
  });

  it("cross-verifies: sign with one library, verify with the other", () => {
    const digest = fromHex(GOLDEN.prevoteDigest);
    const blstSigner = createBlstSigner(secretKey(2));
    const nobleSigner = createNobleSigner(secretKey(3));
    expect(nobleBlsScheme.verify(blstSigner.publicKey, digest, blstSigner.sign(digest))).toBe(true);
    expect(blstScheme.verify(nobleSigner.publicKey, digest, nobleSigner.sign(digest))).toBe(true);
    expect(blstScheme.verify(nobleSigner.publicKey, digest, blstSigner.sign(digest))).toBe(false);
    expect(nobleBlsScheme.verify(blstSigner.publicKey, digest, nobleSigner.sign(digest))).toBe(false);
  });

  it("aggregates are equal and each library verifies the other's", () => {
    const digest = fromHex(GOLDEN.precommitDigest);
    const signers = [1, 2, 3, 4].map((s) => createBlstSigner(secretKey(s)));
    const sigs = signers.map((s) => s.sign(digest));
    const keys = signers.map((s) => s.publicKey);
    const fromBlst = blstScheme.aggregateSignatures(sigs);
    const fromNoble = nobleBlsScheme.aggregateSignatures(sigs);
    expect(toHex(fromNoble)).toBe(toHex(fromBlst));
    expect(blstScheme.verifyAggregate(keys, digest, fromNoble)).toBe(true);
    expect(nobleBlsScheme.verifyAggregate(keys, digest, fromBlst)).toBe(true);
    expect(nobleBlsScheme.verifyAggregate(keys.slice(1), digest, fromBlst)).toBe(false);
    expect(blstScheme.verifyAggregate(keys.slice(1), digest, fromBlst)).toBe(false);
  });

  it("proof of possession: POP DST over the compressed public key, same in blst.ts and noble", () => {
    expect(BLS_POP_DST).toBe("BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_");
    const pop = blsProofOfPossession(secretKey(1));
    expect(toHex(pop)).toBe(GOLDEN.proofOfPossessionSk1);
    expect(toHex(nobleProofOfPossession(secretKey(1)))).toBe(GOLDEN.proofOfPossessionSk1);
    const pk = fromHex(PUBLIC_KEYS[1] ?? "0x");
    // Independent check: e(pk, H_pop(pk)) == e(G1, pop) straight from noble's primitives.
    const bls = bls12_381.longSignatures;
    expect(bls.verify(pop, bls.hash(pk, BLS_POP_DST), pk)).toBe(true);
    expect(verifyProofOfPossession(pk, pop)).toBe(true);
    expect(nobleVerifyProofOfPossession(pk, pop)).toBe(true);
    // A PoP is not a consensus signature over the key (different DST), and belongs to one key only.
    expect(blstScheme.verify(pk, pk, pop)).toBe(false);
    expect(verifyProofOfPossession(fromHex(PUBLIC_KEYS[2] ?? "0x"), pop)).toBe(false);
    expect(verifyProofOfPossession(pk, createBlstSigner(secretKey(1)).sign(pk))).toBe(false);
  });

  it("EIP-2333 keygen is deterministic for a given ikm", () => {
    const ikm = new Uint8Array(32).fill(7);
    const a = generateBlsSecretKey(ikm);
    expect(toHex(a)).toBe(toHex(generateBlsSecretKey(ikm)));
    expect(toHex(a)).toBe(toHex(SecretKey.deriveMasterEip2333(ikm).toBytes()));
    expect(toHex(a)).toBe("0x23c205e368093188a73311a45658e3d30e00741019b0eff05277ba2fd42bc422");
    expect(generateBlsSecretKey().length).toBe(32);
    expect(() => generateBlsSecretKey(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe("validator set id", () => {
  it("golden set of 4 equal validators", () => {
    expect(set.id).toBe(GOLDEN.validatorSetId);
    expect(set.validators.map((v) => toHex(v.publicKey))).toEqual([4, 3, 1, 2].map((s) => PUBLIC_KEYS[s]));
    expect(computeValidatorSetId(set.validators)).toBe(GOLDEN.validatorSetId);
  });
});

describe("wire encodings", () => {
  it("signed precommit", () => {
    const vote = precommit(0);
    const encoded = encodeSignedVote(vote);
    expect(encoded.length).toBe(145);
    expect(toHex(encoded)).toBe(GOLDEN.precommitEncoded);
    expect(decodeSignedVote(encoded)).toEqual(vote);
    expect(verifyVoteSignature(CHAIN_ID, set, decodeSignedVote(encoded), blstScheme)).toBe(true);
    expect(verifyVoteSignature(CHAIN_ID, set, decodeSignedVote(encoded), nobleBlsScheme)).toBe(true);
  });

  it("signed nil prevote", () => {
    const base = { type: "prevote", height: HEIGHT, round: ROUND, value: null, validatorIndex: 1 } as const;
    const vote: SignedVote = {
      ...base,
      signature: signerAt(1).sign(voteDigest(CHAIN_ID, "prevote", HEIGHT, ROUND, null)),
    };
    expect(toHex(encodeSignedVote(vote))).toBe(GOLDEN.nilPrevoteEncoded);
    expect(decodeSignedVote(fromHex(GOLDEN.nilPrevoteEncoded))).toEqual(vote);
    expect(verifyVoteSignature(CHAIN_ID, set, vote, blstScheme)).toBe(true);
  });

  it("signed proposal", () => {
    const base = { height: HEIGHT, round: ROUND, polRound: 1, value: VALUE, proposerIndex: 2 };
    const proposal: SignedProposal = { ...base, signature: signerAt(2).sign(proposalDigest(CHAIN_ID, base)) };
    const encoded = encodeSignedProposal(proposal);
    expect(encoded.length).toBe(147);
    expect(toHex(encoded)).toBe(GOLDEN.proposalEncoded);
    expect(decodeSignedProposal(encoded)).toEqual(proposal);
    expect(verifyProposalSignature(CHAIN_ID, set, proposal, blstScheme)).toBe(true);
    expect(verifyProposalSignature(CHAIN_ID, set, { ...proposal, proposerIndex: 1 }, blstScheme)).toBe(false);
  });
});

describe("certificate", () => {
  it("4 validators, signers 0, 1, 3: encoding and aggregate signature", () => {
    const cert = buildCertificate(CHAIN_ID, set, [precommit(0), precommit(1), precommit(3)], blstScheme);
    expect(toHex(cert.signers)).toBe("0x0b");
    expect(toHex(cert.signature)).toBe(GOLDEN.certificateAggregate);
    const encoded = encodeCertificate(cert);
    expect(encoded.length).toBe(1 + 8 + 8 + 4 + 32 + 32 + 2 + 1 + 96);
    expect(toHex(encoded)).toBe(GOLDEN.certificateEncoded);
    expect(decodeCertificate(encoded)).toEqual(cert);
    // The same aggregate from noble.
    const sigs = [0, 1, 3].map((i) => precommit(i).signature);
    expect(toHex(nobleBlsScheme.aggregateSignatures(sigs))).toBe(GOLDEN.certificateAggregate);
  });

  it("the golden certificate verifies with blst and with noble", () => {
    const cert = decodeCertificate(fromHex(GOLDEN.certificateEncoded));
    const expected = { ok: true, signingPower: 30n, signers: [0, 1, 3] };
    expect(verifyCertificate(cert, set, { scheme: blstScheme, chainId: CHAIN_ID })).toEqual(expected);
    expect(verifyCertificate(cert, set)).toEqual(expected);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Epoch work reports (signed by the epoch's set, checked by the L1 Rewards contract; test/staking/rewards.test.ts
// checks the contract's digest against the same function).

const WORK_REPORT_GOLDEN = {
  domain: "0x6642a655622cf6bf0e5afb54d03c46c0a9f92373ece054c8bc19d4826886b43f",
  /** chainId CHAIN_ID, epoch 5, entries (1, 2, 3) and (0x0a0b0c0d, 2^64 - 1, 0) */
  digest: "0x6cd4c3a36f101d29382e1e2cd8777c66c0b5e98e663aefbc5763590346bb23fa",
  /** chainId CHAIN_ID, epoch 5, no entries */
  emptyDigest: "0x54e56b87f197b148f49bd2d9f410d426c9e7d1bd7e699651a97ed447db55983e",
} as const;

const WORK_ENTRIES: WorkReportEntry[] = [
  { blocksProposed: 1n, precommitsSigned: 2n, batchesPosted: 3n },
  { blocksProposed: 0x0a0b0c0dn, precommitsSigned: 0xffffffffffffffffn, batchesPosted: 0n },
];

describe("work report digest", () => {
  it("domain is keccak256 of its tag", () => {
    expect(toHex(WORK_REPORT_DOMAIN)).toBe(WORK_REPORT_GOLDEN.domain);
    expect(toHex(keccak256(utf8("lumia.dcn.v1.work-report")))).toBe(WORK_REPORT_GOLDEN.domain);
  });

  it("golden digests", () => {
    expect(toHex(workReportDigest(CHAIN_ID, 5n, WORK_ENTRIES))).toBe(WORK_REPORT_GOLDEN.digest);
    expect(toHex(workReportDigest(CHAIN_ID, 5n, []))).toBe(WORK_REPORT_GOLDEN.emptyDigest);
  });

  it("preimage is abi.encodePacked(domain, uint64 chainId, uint64 epoch, keccak256(abi.encode(entries)))", () => {
    const encoded = encodeAbiParameters(
      [
        {
          type: "tuple[]",
          components: [
            { name: "blocksProposed", type: "uint64" },
            { name: "precommitsSigned", type: "uint64" },
            { name: "batchesPosted", type: "uint64" },
          ],
        },
      ],
      [WORK_ENTRIES],
    );
    expect(fromHex(encoded).length).toBe(64 + 2 * 96);
    const preimage = concatBytes(
      fromHex(WORK_REPORT_GOLDEN.domain),
      fromHex("0x01020304050607080000000000000005"),
      keccak256(fromHex(encoded)),
    );
    expect(preimage.length).toBe(32 + 8 + 8 + 32);
    expect(toHex(keccak256(preimage))).toBe(WORK_REPORT_GOLDEN.digest);
  });

  it("refuses counts that are not u64", () => {
    expect(() =>
      workReportDigest(CHAIN_ID, 5n, [{ blocksProposed: 1n << 64n, precommitsSigned: 0n, batchesPosted: 0n }]),
    ).toThrow(RangeError);
    expect(() => workReportDigest(CHAIN_ID, -1n, [])).toThrow(RangeError);
  });
});
