import { keccak_256 } from "@noble/hashes/sha3.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { fastKeccak256 } from "../../src/execution/keccak.ts";

describe("execution keccak-256", () => {
  it("gives @noble/hashes' digest for any input, views into larger buffers included", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), fc.nat(16), (bytes, offset) => {
        const backing = new Uint8Array(bytes.length + offset + 3);
        backing.set(bytes, offset);
        const view = backing.subarray(offset, offset + bytes.length);
        const expected = toHex(keccak_256(bytes));
        expect(toHex(fastKeccak256(bytes))).toBe(expected);
        expect(toHex(fastKeccak256(view))).toBe(expected);
        expect(toHex(fastKeccak256(Buffer.from(bytes)))).toBe(expected);
      }),
      { numRuns: 500 },
    );
    // Each digest is its own array: callers keep them (trie keys, hashes) while hashing more.
    const first = fastKeccak256(new Uint8Array([1]));
    const kept = toHex(first);
    fastKeccak256(new Uint8Array([2]));
    expect(toHex(first)).toBe(kept);
    // keccak-256 (not SHA3-256) of the empty string.
    expect(toHex(fastKeccak256(new Uint8Array(0)))).toBe(
      "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
    );
  });
});
