// The Solidity BLS library (staking-contracts/src/BLS.sol, through the test-only BlsHarness) against the node's own
// BLS code: hash to G2, point encodings and signature checks must agree bit for bit, and any flipped bit must fail.
import { expand_message_xmd } from "@noble/curves/abstract/hash-to-curve.js";
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { getContract, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import {
  BLS_POP_DST,
  BLS_SIG_DST,
  blsPublicKeyOf,
  createNobleSigner,
  nobleProofOfPossession,
} from "../../consensus/crypto/bls-noble.ts";
import { voteDigest } from "../../consensus/signing.ts";
import { createBlstSigner } from "../../src/crypto/blst.ts";
import { BlsHarness } from "../../staking-contracts/artifacts.ts";
import { g1ToEip2537, g2ToEip2537 } from "../../staking-contracts/eip2537.ts";
import { type StakingChain, startStakingChain } from "./fixture.ts";

let chain: StakingChain;
let harness: ReturnType<typeof harnessAt>;

function harnessAt(c: StakingChain, address: Hex) {
  return getContract({ address, abi: BlsHarness.abi, client: { public: c.publicClient } });
}

beforeAll(async () => {
  chain = await startStakingChain();
  harness = harnessAt(chain, await chain.deployContract(BlsHarness, []));
});

afterAll(async () => {
  await chain?.stop();
});

const flipBit = (hex: Hex, byte: number, mask = 0x01): Hex => {
  const bytes = fromHex(hex);
  bytes[byte] = (bytes[byte] ?? 0) ^ mask;
  return toHex(bytes);
};

/** noble's hash_to_curve in the EIP-2537 G2 encoding. */
function nobleHashToG2(message: Uint8Array, dst: string): Hex {
  const point = bls12_381.G2.hashToCurve(message, { DST: dst });
  const { x, y } = point.toAffine();
  return toHex(
    Uint8Array.from([...uintBytes(x.c0, 64), ...uintBytes(x.c1, 64), ...uintBytes(y.c0, 64), ...uintBytes(y.c1, 64)]),
  );
}

const sk = (n: number) => uintBytes(n, 32);
const SIG_DST = toHex(utf8(BLS_SIG_DST));
const POP_DST = toHex(utf8(BLS_POP_DST));

describe("hash to G2 (RFC 9380 on the EIP-2537 precompiles)", () => {
  it("expand_message_xmd equals noble's, for the signature and the PoP DSTs", async () => {
    for (const [message, dst] of [
      [new Uint8Array(32), BLS_SIG_DST],
      [keccak256(utf8("x")), BLS_SIG_DST],
      [blsPublicKeyOf(sk(1)), BLS_POP_DST],
      [new Uint8Array(0), BLS_SIG_DST],
    ] as const) {
      const expected = toHex(expand_message_xmd(message, utf8(dst), 256, sha256));
      expect(await harness.read.expandMessageXmd([toHex(message), toHex(utf8(dst))])).toBe(expected);
    }
  });

  it("hashToG2 equals noble's hash_to_curve point", async () => {
    for (let i = 0; i < 4; i++) {
      const message = keccak256(uintBytes(i, 8));
      const [ok, point] = await harness.read.hashToG2([toHex(message), SIG_DST]);
      expect(ok).toBe(true);
      expect(point).toBe(nobleHashToG2(message, BLS_SIG_DST));
    }
    const pk = blsPublicKeyOf(sk(7));
    const [ok, point] = await harness.read.hashToG2([toHex(pk), POP_DST]);
    expect(ok).toBe(true);
    expect(point).toBe(nobleHashToG2(pk, BLS_POP_DST));
  });
});

describe("compressed vs EIP-2537 encodings", () => {
  const pk = blsPublicKeyOf(sk(3));
  const sig = createNobleSigner(sk(3)).sign(keccak256(utf8("m")));

  it("a key and its EIP-2537 point match; another key's point, a flipped sign, infinity or a bad length do not", async () => {
    const point = toHex(g1ToEip2537(pk));
    expect(await harness.read.g1Matches([toHex(pk), point])).toBe(true);
    expect(await harness.read.g1Matches([toHex(pk), toHex(g1ToEip2537(blsPublicKeyOf(sk(4))))])).toBe(false);
    expect(await harness.read.g1Matches([flipBit(toHex(pk), 0, 0x20), point])).toBe(false); // sign flag
    expect(await harness.read.g1Matches([flipBit(toHex(pk), 0, 0x40), point])).toBe(false); // infinity flag
    expect(await harness.read.g1Matches([flipBit(toHex(pk), 0, 0x80), point])).toBe(false); // uncompressed flag
    expect(await harness.read.g1Matches([flipBit(toHex(pk), 47), point])).toBe(false); // x differs
    // -P has the same x and the other y: the sign flag tells them apart.
    const negated = toHex(g1ToEip2537(bls12_381.G1.Point.fromBytes(pk).negate().toBytes(true)));
    expect(await harness.read.g1Matches([toHex(pk), negated])).toBe(false);
    expect(await harness.read.g1Matches([toHex(pk), flipBit(point, 0)])).toBe(false); // padding not zero
    expect(await harness.read.g1Matches([toHex(pk), toHex(new Uint8Array(128))])).toBe(false);
    expect(await harness.read.g1Matches([toHex(pk.slice(0, 47)), point])).toBe(false);
  });

  it("keys with both sign bits are matched (sign of y decides)", async () => {
    const signs = new Set<number>();
    for (let n = 1; n <= 12; n++) {
      const key = blsPublicKeyOf(sk(n));
      signs.add((key[0] ?? 0) & 0x20);
      expect(await harness.read.g1Matches([toHex(key), toHex(g1ToEip2537(key))])).toBe(true);
    }
    expect(signs.size).toBe(2);
  });

  it("a signature and its EIP-2537 point match; flipped flags, x or y do not", async () => {
    const point = toHex(g2ToEip2537(sig));
    expect(await harness.read.g2Matches([toHex(sig), point])).toBe(true);
    expect(await harness.read.g2Matches([flipBit(toHex(sig), 0, 0x20), point])).toBe(false);
    expect(await harness.read.g2Matches([flipBit(toHex(sig), 0, 0x40), point])).toBe(false);
    expect(await harness.read.g2Matches([flipBit(toHex(sig), 95), point])).toBe(false); // x.c0
    expect(await harness.read.g2Matches([flipBit(toHex(sig), 47), point])).toBe(false); // x.c1
    const negated = toHex(g2ToEip2537(bls12_381.G2.Point.fromBytes(sig).negate().toBytes(true)));
    expect(await harness.read.g2Matches([toHex(sig), negated])).toBe(false); // y -> -y
    expect(await harness.read.g2Matches([toHex(sig), toHex(new Uint8Array(256))])).toBe(false);
    for (let n = 1; n <= 12; n++) {
      const s = createNobleSigner(sk(n)).sign(keccak256(uintBytes(n, 4)));
      expect(await harness.read.g2Matches([toHex(s), toHex(g2ToEip2537(s))])).toBe(true);
    }
  });
});

describe("signature verification (pairing check 0x0f)", () => {
  const chainId = 0x0102030405060708n;
  const digest = voteDigest(chainId, "precommit", 0x0a0b0c0d, 3, toHex(keccak256(utf8("lumia golden block"))));

  it("verifies the golden precommit signature of secret 1 (docs/protocol.md) and blst signatures", async () => {
    const golden: Hex =
      "0xb1796e9d222df6d541076d1eb9047cd2e9ff8cc515561a717707e28f17f5ba0dd3b4f44c4b02ce241c85931d717860f102dcf654478aa4cf152a893a02361f7ea4bcf636de6297fee83fc1cb39f2f24375f6a348a1d6ccbfafdc56116adcee24";
    const pk1 = toHex(g1ToEip2537(blsPublicKeyOf(sk(1))));
    expect(await harness.read.verify([pk1, toHex(digest), toHex(g2ToEip2537(fromHex(golden))), false])).toBe(true);
    for (let n = 2; n <= 5; n++) {
      const signer = createBlstSigner(sk(n));
      const sig = toHex(g2ToEip2537(signer.sign(digest)));
      expect(await harness.read.verify([toHex(g1ToEip2537(signer.publicKey)), toHex(digest), sig, false])).toBe(true);
    }
  });

  it("the Ethereum consensus vector sign_case_c82df61aa3ee60fb verifies", async () => {
    const secret = fromHex("0x263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3");
    const sig = fromHex(
      "0xb6ed936746e01f8ecf281f020953fbf1f01debd5657c4a383940b020b26507f6076334f91e2366c96e9ab279fb5158090352ea1c5b0c9274504f4f0e7053af24802e51e4568d164fe986834f41e55c8e850ce1f98458c0cfc9ab380b55285a55",
    );
    const pk = toHex(g1ToEip2537(blsPublicKeyOf(secret)));
    expect(await harness.read.verify([pk, toHex(new Uint8Array(32)), toHex(g2ToEip2537(sig)), false])).toBe(true);
  });

  it("a flipped bit in the message, the key or the signature, another key or the wrong DST fails (false, no revert)", async () => {
    const signer = createBlstSigner(sk(9));
    const pk = toHex(g1ToEip2537(signer.publicKey));
    const sig = toHex(g2ToEip2537(signer.sign(digest)));
    const message = toHex(digest);
    expect(await harness.read.verify([pk, message, sig, false])).toBe(true);
    expect(await harness.read.verify([pk, flipBit(message, 31), sig, false])).toBe(false);
    expect(await harness.read.verify([pk, message, sig, true])).toBe(false); // PoP DST
    expect(await harness.read.verify([toHex(g1ToEip2537(blsPublicKeyOf(sk(10)))), message, sig, false])).toBe(false);
    // A flipped coordinate bit leaves the curve: the precompile refuses, verify returns false.
    expect(await harness.read.verify([pk, message, flipBit(sig, 255), false])).toBe(false);
    expect(await harness.read.verify([flipBit(pk, 127), message, sig, false])).toBe(false);
    // The negated signature is on the curve and in the subgroup, but is not the signature.
    const negatedPoint = bls12_381.G2.Point.fromBytes(signer.sign(digest)).negate();
    const negated = toHex(g2ToEip2537(negatedPoint.toBytes(true)));
    expect(await harness.read.verify([pk, message, negated, false])).toBe(false);
    // The identity as the key.
    expect(await harness.read.verify([toHex(new Uint8Array(128)), message, sig, false])).toBe(false);
  });

  it("a proof of possession verifies under the PoP DST over the compressed key, not under the signature DST", async () => {
    const pk = blsPublicKeyOf(sk(11));
    const pop = toHex(g2ToEip2537(nobleProofOfPossession(sk(11))));
    const point = toHex(g1ToEip2537(pk));
    expect(await harness.read.verify([point, toHex(pk), pop, true])).toBe(true);
    expect(await harness.read.verify([point, toHex(pk), pop, false])).toBe(false);
    expect(await harness.read.verify([point, flipBit(toHex(pk), 10), pop, true])).toBe(false);
  });

  it("one verification costs about 200k gas", async () => {
    const signer = createBlstSigner(sk(12));
    const [ok, gas] = await harness.read.verifyGas([
      toHex(g1ToEip2537(signer.publicKey)),
      toHex(digest),
      toHex(g2ToEip2537(signer.sign(digest))),
    ]);
    expect(ok).toBe(true);
    expect(gas).toBeGreaterThan(100_000n);
    expect(gas).toBeLessThan(300_000n);
  });
});
