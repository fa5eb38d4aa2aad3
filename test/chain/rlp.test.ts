// encodeRlp (src/chain/rlp.ts) against @ethereumjs/rlp's encode: the length boundaries of strings and lists, single
// bytes on both sides of 0x80, nesting, and many random trees.
import { RLP } from "@ethereumjs/rlp";
import { describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { encodeRlp, type RlpItem } from "../../src/chain/rlp.ts";

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
