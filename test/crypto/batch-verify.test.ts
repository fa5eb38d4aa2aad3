// Batched signature checks (src/crypto/batch-verify.ts) over blst's random-linear-combination check: every verdict
// equals the verdict of a single check, including for two invalid signatures crafted to cancel in a plain aggregate.
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { describe, expect, it } from "vitest";
import { keccak256, utf8 } from "../../consensus/bytes.ts";
import { nobleBlsScheme } from "../../consensus/crypto/bls-noble.ts";
import { BatchVerifier } from "../../src/crypto/batch-verify.ts";
import { blstScheme, createBlstSigner, generateBlsSecretKey } from "../../src/crypto/blst.ts";

const signer = (i: number) => createBlstSigner(generateBlsSecretKey(keccak256(utf8(`batch signer ${i}`))));
const [a, b, c, d] = [signer(1), signer(2), signer(3), signer(4)];
const digest = keccak256(utf8("prevote h=7 r=0"));
const other = keccak256(utf8("prevote h=7 r=1"));
const G2 = bls12_381.G2.Point;

function batcher(scheme = blstScheme) {
  const batches: [number, boolean][] = [];
  const verifier = new BatchVerifier(scheme, { onBatch: (size, valid) => batches.push([size, valid]) });
  return { verifier, batches };
}

describe("BatchVerifier", () => {
  it("verifies the valid votes of one message in one check", async () => {
    const { verifier, batches } = batcher();
    const verdicts = await Promise.all([a, b, c].map((s) => verifier.verify(s.publicKey, digest, s.sign(digest))));
    expect(verdicts).toEqual([true, true, true]);
    expect(batches).toEqual([[3, true]]);
  });

  it("gives an invalid signature its own verdict and still accepts the others of its batch", async () => {
    const { verifier, batches } = batcher();
    const verdicts = await Promise.all([
      verifier.verify(a.publicKey, digest, a.sign(digest)),
      verifier.verify(b.publicKey, digest, c.sign(digest)), // another validator's signature
      verifier.verify(c.publicKey, digest, c.sign(other)), // over another message
      verifier.verify(d.publicKey, digest, d.sign(digest)),
    ]);
    expect(verdicts).toEqual([true, false, false, true]);
    expect(batches).toEqual([[4, false]]);
  });

  it("refuses two invalid signatures that a plain aggregate would accept", async () => {
    // sig_a + X and sig_b - X: each invalid, their sum is sig_a + sig_b.
    const x = G2.fromBytes(c.sign(other));
    const forgedA = G2.fromBytes(a.sign(digest)).add(x).toBytes(true);
    const forgedB = G2.fromBytes(b.sign(digest)).subtract(x).toBytes(true);
    const plain = blstScheme.aggregateSignatures([forgedA, forgedB]);
    expect(blstScheme.verifyAggregate([a.publicKey, b.publicKey], digest, plain)).toBe(true);
    expect(blstScheme.verifySameMessage?.([a.publicKey, b.publicKey], digest, [forgedA, forgedB])).toBe(false);

    const { verifier, batches } = batcher();
    const verdicts = await Promise.all([
      verifier.verify(a.publicKey, digest, forgedA),
      verifier.verify(b.publicKey, digest, forgedB),
      verifier.verify(c.publicKey, digest, c.sign(digest)),
    ]);
    expect(verdicts).toEqual([false, false, true]);
    expect(batches).toEqual([[3, false]]);
  });

  it("checks each message's signatures apart, and a lone signature singly", async () => {
    const { verifier, batches } = batcher();
    const verdicts = await Promise.all([
      verifier.verify(a.publicKey, digest, a.sign(digest)),
      verifier.verify(b.publicKey, other, b.sign(other)),
      verifier.verify(c.publicKey, digest, c.sign(digest)),
    ]);
    expect(verdicts).toEqual([true, true, true]);
    expect(batches).toEqual([[2, true]]);
  });

  it("answers false, never throws, for malformed and identity signatures and keys", async () => {
    const { verifier } = batcher();
    const identity = G2.ZERO.toBytes(true);
    const verdicts = await Promise.all([
      verifier.verify(a.publicKey, digest, a.sign(digest)),
      verifier.verify(b.publicKey, digest, identity),
      verifier.verify(b.publicKey, digest, new Uint8Array(95)),
      verifier.verify(new Uint8Array(48), digest, b.sign(digest)),
      verifier.verify(b.publicKey, digest, new Uint8Array(96).fill(0xff)),
    ]);
    expect(verdicts).toEqual([true, false, false, false, false]);
  });

  it("checks one by one with a scheme that has no batch check", async () => {
    expect(nobleBlsScheme.verifySameMessage).toBeUndefined();
    const { verifier, batches } = batcher(nobleBlsScheme);
    const verdicts = await Promise.all([
      verifier.verify(a.publicKey, digest, a.sign(digest)),
      verifier.verify(b.publicKey, digest, a.sign(digest)),
    ]);
    expect(verdicts).toEqual([true, false]);
    expect(batches).toEqual([]);
  });

  it("verifies at once when maxPending checks wait", async () => {
    const batches: number[] = [];
    const verifier = new BatchVerifier(blstScheme, { maxPending: 2, onBatch: (size) => batches.push(size) });
    const first = [
      verifier.verify(a.publicKey, digest, a.sign(digest)),
      verifier.verify(b.publicKey, digest, b.sign(digest)),
    ];
    expect(batches).toEqual([2]); // before the turn ends
    const third = verifier.verify(c.publicKey, digest, c.sign(digest));
    expect(await Promise.all([...first, third])).toEqual([true, true, true]);
    expect(batches).toEqual([2]);
    expect(() => new BatchVerifier(blstScheme, { maxPending: 0 })).toThrow(RangeError);
  });
});
