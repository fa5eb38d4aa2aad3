// The byte helpers every layer shares: hex in both directions, against the regular expression isHex uses and
// against node's own hex codec.
import { describe, expect, it } from "vitest";
import { fromHex, isHex, toHex } from "../../consensus/bytes.ts";

describe("hex", () => {
  it("round-trips every byte value, and reads upper-case digits", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const hex = toHex(all);
    expect(hex).toBe(`0x${Buffer.from(all).toString("hex")}`);
    expect(fromHex(hex)).toEqual(all);
    expect(fromHex(hex.toUpperCase().replace("0X", "0x"))).toEqual(all);
    expect(fromHex("0x")).toEqual(new Uint8Array(0));
  });

  it("encodes empty, short, chunk-sized and longer arrays, and views into a larger buffer", () => {
    const big = Uint8Array.from({ length: 3 * 4096 + 17 }, (_, i) => (i * 131 + 7) & 0xff);
    for (const n of [0, 1, 20, 32, 4095, 4096, 4097, 8192, big.length]) {
      const view = big.subarray(big.length - n);
      expect(toHex(view), `${n} bytes`).toBe(`0x${Buffer.from(view).toString("hex")}`);
    }
    // A short call after a long one does not see the long one's digits.
    expect(toHex(Uint8Array.of(0xab))).toBe("0xab");
  });

  it("refuses what isHex refuses, with a RangeError, and decodes what it accepts", () => {
    const digits = "0123456789abcdefABCDEF";
    const odd = ["g", "G", " ", "x", "-", "\u0660", "\u00e9", "\ud83d\ude00", "\0"];
    const cases = ["", "0", "0x0", "00", "0X00", "x00", " 0x00", "0x00 ", "0x0g", "0xg0", "0x+1", "1x00"];
    for (const c of odd) cases.push(`0x${c}0`, `0x0${c}`, `0xab${c}${c}`);
    for (let i = 0; i < 200; i++) {
      let s = "0x";
      for (let j = 0; j < 2 * (i % 5); j++) s += digits[(i * 7 + j * 13) % digits.length] as string;
      cases.push(s);
    }
    for (const c of cases) {
      if (isHex(c)) expect(fromHex(c), c).toEqual(Uint8Array.from(Buffer.from(c.slice(2), "hex")));
      else expect(() => fromHex(c), JSON.stringify(c)).toThrow(RangeError);
    }
    expect(cases.filter((c) => isHex(c)).length).toBe(200);
  });
});
