// encodeRlp and decodeRlp (src/chain/rlp.ts) against @ethereumjs/rlp's encode and decode: the length boundaries of
// strings and lists, single bytes on both sides of 0x80, nesting, many random trees, and for decoding the same verdict
// (accepted with the same item, or refused) on every truncation and on random mutations of encodings, and on random
// bytes.
import { RLP } from "@ethereumjs/rlp";
import { describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { decodeRlp, encodeRlp, RlpDecodeError, type RlpItem } from "../../src/chain/rlp.ts";

function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const LENGTHS = [0, 1, 2, 31, 32, 55, 56, 57, 255, 256, 257, 65_535, 65_536, 70_000];

function bytes(length: number, fill: number): Uint8Array {
  return new Uint8Array(length).fill(fill);
}

function tree(next: () => number, depth: number): RlpItem {
  if (depth === 0 || next() < 0.45) {
    const r = next();
    if (r < 0.2) return Uint8Array.of(Math.floor(next() * 256)); // one byte: below or above 0x80
    if (r < 0.3) return new Uint8Array(0);
    const length = r < 0.95 ? Math.floor(next() * 70) : (LENGTHS[Math.floor(next() * 11)] as number); // up to 257
    return bytes(length, Math.floor(next() * 256));
  }
  const n = Math.floor(next() * (next() < 0.1 ? 30 : 8));
  return Array.from({ length: n }, () => tree(next, depth - 1));
}

describe("encodeRlp", () => {
  it("encodes strings across every header boundary as @ethereumjs/rlp does", () => {
    for (const length of LENGTHS) {
      for (const fill of [0x00, 0x7f, 0x80, 0xff]) {
        const item = bytes(length, fill);
        expect(toHex(encodeRlp(item)), `${length} x ${fill}`).toBe(toHex(RLP.encode(item)));
      }
    }
  });

  it("encodes lists across every header boundary, empty and nested, as @ethereumjs/rlp does", () => {
    const cases: RlpItem[] = [
      [],
      [[]],
      [[], [[]], [[], [[]]]],
      [bytes(54, 1)], // payload 55: the last short list
      [bytes(55, 1)], // payload 56: the first long list
      Array.from({ length: 17 }, (_, i) => (i % 3 === 0 ? new Uint8Array(0) : bytes(32, i))), // a branch node
      [bytes(300, 2), [bytes(65_536, 3), [Uint8Array.of(0x80), Uint8Array.of(0x7f)]]],
    ];
    for (const item of cases) expect(toHex(encodeRlp(item))).toBe(toHex(RLP.encode(item as Uint8Array[])));
  });

  it("matches on 2,000 random trees", () => {
    const next = random(20261206);
    for (let i = 0; i < 2_000; i++) {
      const item = tree(next, 4);
      expect(toHex(encodeRlp(item)), `tree ${i}`).toBe(toHex(RLP.encode(item as Uint8Array[])));
    }
  });
});

/** ethereumjs' verdict and item as comparable text, and ours. */
function both(input: Uint8Array): { theirs: string; ours: string } {
  const show = (item: unknown): string =>
    item instanceof Uint8Array ? toHex(item) : `[${(item as unknown[]).map(show).join(",")}]`;
  let theirs: string;
  let ours: string;
  try {
    theirs = show(RLP.decode(input));
  } catch {
    theirs = "refused";
  }
  try {
    ours = show(decodeRlp(input));
  } catch (error) {
    expect(error).toBeInstanceOf(RlpDecodeError);
    ours = "refused";
  }
  return { theirs, ours };
}

describe("decodeRlp", () => {
  it("gives back what encodeRlp wrote, as views into the input", () => {
    const next = random(20261207);
    for (let i = 0; i < 2_000; i++) {
      const encoded = encodeRlp(tree(next, 4));
      const { theirs, ours } = both(encoded);
      expect(ours, `tree ${i}`).toBe(theirs);
    }
    const input = encodeRlp([bytes(3, 7), [bytes(60, 9)]]);
    const decoded = decodeRlp(input) as [Uint8Array, [Uint8Array]];
    expect(decoded[0].buffer).toBe(input.buffer);
    expect(decoded[1][0].buffer).toBe(input.buffer);
  });

  it("refuses what @ethereumjs/rlp refuses: every truncation and extension, mutations, random bytes", () => {
    const next = random(20261208);
    let refused = 0;
    for (let i = 0; i < 600; i++) {
      const encoded = encodeRlp(tree(next, 3));
      const inputs: Uint8Array[] = [];
      for (let cut = 0; cut < Math.min(encoded.length, 80); cut++) inputs.push(encoded.subarray(0, cut));
      const extended = new Uint8Array(encoded.length + 1);
      extended.set(encoded);
      inputs.push(extended);
      for (let m = 0; m < 8; m++) {
        const mutated = encoded.slice();
        const at = Math.floor(next() * mutated.length);
        mutated[at] = Math.floor(next() * 256);
        inputs.push(mutated);
      }
      for (const input of inputs) {
        const { theirs, ours } = both(input);
        expect(ours, toHex(input)).toBe(theirs);
        if (ours === "refused") refused++;
      }
    }
    for (let i = 0; i < 5_000; i++) {
      const input = Uint8Array.from({ length: 1 + Math.floor(next() * 12) }, () => Math.floor(next() * 256));
      const { theirs, ours } = both(input);
      expect(ours, toHex(input)).toBe(theirs);
    }
    // Non-canonical forms: a single byte below 0x80 with a header, long forms of short lengths, leading zeros.
    for (const hex of [
      "817f",
      "8180",
      "b80100",
      `b838${"00".repeat(56)}`,
      `b837${"00".repeat(55)}`,
      `f837${"80".repeat(55)}`,
      `f838${"80".repeat(56)}`,
      `b90038${"00".repeat(56)}`,
      "f800",
      "f90038",
    ]) {
      const { theirs, ours } = both(Uint8Array.from(Buffer.from(hex, "hex")));
      expect(ours, hex).toBe(theirs);
    }
    expect(refused).toBeGreaterThan(1_000);
  });
});
