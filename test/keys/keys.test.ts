import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromRaw } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { describe, expect, it } from "vitest";
import { fromHex, type Hex } from "../../consensus/bytes.ts";
import { validatorAddress } from "../../consensus/validator-set.ts";
import { blsProofOfPossession, verifyProofOfPossession } from "../../src/crypto/blst.ts";
import {
  describeKeys,
  generateKeys,
  operatorAddressOf,
  peerIdOf,
  peerKeyFromSeed,
  secretProblem,
  toChecksumAddress,
} from "../../src/keys/keys.ts";

describe("generateKeys", () => {
  it("gives valid keys of the documented sizes, different every time", () => {
    const a = generateKeys();
    const b = generateKeys();
    expect([a.consensus.length, a.peer.length, a.operator.length]).toEqual([32, 64, 32]);
    for (const kind of ["consensus", "peer", "operator"] as const) {
      expect(secretProblem(kind, a[kind])).toBeNull();
      expect(a[kind]).not.toEqual(b[kind]);
    }
  });

  it("produces peer keys in libp2p's raw Ed25519 form, and accepts libp2p's own keys", async () => {
    const seed = new Uint8Array(32).fill(7);
    const ours = peerKeyFromSeed(seed);
    const theirs = await generateKeyPairFromSeed("Ed25519", seed);
    expect(ours).toEqual(theirs.raw);
    expect(peerIdOf(ours)).toBe(peerIdFromPrivateKey(theirs).toString());

    const random = await generateKeyPair("Ed25519");
    expect(secretProblem("peer", random.raw)).toBeNull();
    expect(peerIdOf(random.raw)).toBe(peerIdFromPrivateKey(random).toString());
    // The network layer rebuilds the key from the raw bytes: same peer id.
    expect(peerIdFromPrivateKey(privateKeyFromRaw(ours)).toString()).toBe(peerIdOf(ours));
  });

  it("rejects a peer key whose public half does not match its seed (libp2p would trust it blindly)", () => {
    const key = peerKeyFromSeed(new Uint8Array(32).fill(1));
    key[40] = (key[40] as number) ^ 1;
    expect(secretProblem("peer", key)).toMatch(/does not match the seed/);
    expect(() => peerIdOf(key)).toThrow(RangeError);
  });

  it("rejects out-of-range scalars", () => {
    expect(secretProblem("consensus", new Uint8Array(32))).toMatch(/scalar/);
    expect(secretProblem("operator", new Uint8Array(32))).toMatch(/scalar/);
    expect(secretProblem("operator", new Uint8Array(31).fill(1))).toMatch(/32 bytes/);
  });
});

describe("operator addresses", () => {
  it("derives the Ethereum address of a secp256k1 key (secret key 1)", () => {
    const one = new Uint8Array(32);
    one[31] = 1;
    expect(operatorAddressOf(one)).toBe("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
  });

  it("checksums addresses like EIP-55's test vectors", () => {
    for (const address of [
      "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
      "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
      "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
      "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ] as Hex[]) {
      expect(toChecksumAddress(address.toLowerCase() as Hex)).toBe(address);
    }
  });
});

describe("describeKeys", () => {
  it("publishes the BLS key with a proof of possession that verifies, and the derived addresses", () => {
    const keys = generateKeys();
    const id = describeKeys(keys);
    const publicKey = fromHex(id.blsPublicKey);
    expect(publicKey.length).toBe(48);
    expect(fromHex(id.proofOfPossession).length).toBe(96);
    expect(verifyProofOfPossession(publicKey, fromHex(id.proofOfPossession))).toBe(true);
    expect(id.proofOfPossession).toBe(toHexString(blsProofOfPossession(keys.consensus)));
    expect(id.address).toBe(validatorAddress(publicKey));
    expect(id.operator).toBe(operatorAddressOf(keys.operator));
    expect(id.peerId).toBe(peerIdOf(keys.peer));
    expect(id.peerId).toMatch(/^12D3KooW/);
    // A proof of another key does not verify for this one.
    const other = describeKeys(generateKeys());
    expect(verifyProofOfPossession(publicKey, fromHex(other.proofOfPossession))).toBe(false);
  });
});

function toHexString(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes).toString("hex")}`;
}
