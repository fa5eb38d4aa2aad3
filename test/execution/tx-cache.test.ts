import { RLP } from "@ethereumjs/rlp";
import { describe, expect, it } from "vitest";
import { bytesEqual, fromHex, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { commonFor, decodeTransaction, txCommonFor } from "../../src/execution/tx.ts";
import { TxDecodeCache } from "../../src/execution/tx-cache.ts";
import { CHAIN_ID, signRaw, testAccount } from "./helpers.ts";

const alice = testAccount(1);
const TO: Hex = "0x00000000000000000000000000000000000000aa";

/** The same transaction with its s value replaced (RLP re-encoded): a valid shape whose signature recovers nobody. */
function withS(raw: Uint8Array, s: Uint8Array): Uint8Array {
  const fields = RLP.decode(raw.subarray(1)) as Uint8Array[];
  fields[fields.length - 1] = s;
  return Uint8Array.of(2, ...RLP.encode(fields));
}

describe("TxDecodeCache", () => {
  it("answers a second decode from the cache, identical to decoding", async () => {
    const cache = new TxDecodeCache(CHAIN_ID);
    const raw = await signRaw(alice, { to: TO, value: 1n, nonce: 0 });
    const first = cache.decode(raw);
    const second = cache.decode(raw);
    if (!first.ok || !second.ok) throw new Error("a valid transaction did not decode");
    expect(second.tx).toBe(first.tx);
    expect(cache.stats).toEqual({ hits: 1, misses: 1, size: 1 });
    const fresh = decodeTransaction(raw, CHAIN_ID);
    if (!fresh.ok) throw new Error(fresh.message);
    const { tx: _a, ...cached } = second.tx;
    const { tx: _b, ...decoded } = fresh.tx;
    expect(cached).toEqual(decoded);
    expect(second.tx.hash).toBe(toHex(keccak256(raw)));
  });

  it("never caches a refusal: an invalid transaction is refused on every decode", async () => {
    const cache = new TxDecodeCache(CHAIN_ID);
    const raw = await signRaw(alice, { to: TO, value: 1n, nonce: 1 });
    const highS = withS(raw, fromHex(`0x${"ff".repeat(32)}`));
    for (let i = 0; i < 3; i++) {
      const result = cache.decode(highS);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.code).toBe("bad_signature");
    }
    const wrongChain = await signRaw(alice, { to: TO, value: 1n, nonce: 1 }, CHAIN_ID + 1n);
    expect(cache.decode(wrongChain).ok).toBe(false);
    expect(cache.decode(wrongChain).ok).toBe(false);
    expect(cache.stats).toEqual({ hits: 0, misses: 5, size: 0 });
  });

  it("does not let other bytes through under a cached transaction's hash", async () => {
    const cache = new TxDecodeCache(CHAIN_ID);
    const raw = await signRaw(alice, { to: TO, value: 1n, nonce: 2 });
    const ok = cache.decode(raw);
    if (!ok.ok) throw new Error(ok.message);
    // A caller handing the wrong hash gets the bytes decoded, not the cached transaction.
    const tampered = withS(raw, fromHex(`0x${"ff".repeat(32)}`));
    const result = cache.decode(tampered, ok.tx.hash);
    expect(result.ok).toBe(false);
    expect(cache.stats.hits).toBe(0);
  });

  it("stays within its bound, evicting the least recently used", async () => {
    const cache = new TxDecodeCache(CHAIN_ID, 3);
    const raws = await Promise.all([0, 1, 2, 3].map((nonce) => signRaw(alice, { to: TO, value: 1n, nonce })));
    const [r0, r1, r2, r3] = raws as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    cache.decode(r0);
    cache.decode(r1);
    cache.decode(r2);
    cache.decode(r0); // r1 is now the least recently used
    cache.decode(r3);
    expect(cache.stats.size).toBe(3);
    const before = cache.stats.hits;
    cache.decode(r0);
    cache.decode(r2);
    cache.decode(r3);
    expect(cache.stats.hits).toBe(before + 3);
    cache.decode(r1);
    expect(cache.stats.hits).toBe(before + 3);
    cache.forget(toHex(keccak256(r3)));
    expect(cache.stats.size).toBe(2);
    expect(() => new TxDecodeCache(CHAIN_ID, 0)).toThrow(RangeError);
  });
});

describe("the shared transaction common", () => {
  it("is one instance for every transaction, with the transaction parameters, and refuses a hardfork change", async () => {
    const a = decodeTransaction(await signRaw(alice, { to: TO, value: 1n, nonce: 5 }), CHAIN_ID);
    const b = decodeTransaction(await signRaw(alice, { to: TO, value: 2n, nonce: 6 }), CHAIN_ID);
    if (!a.ok || !b.ok) throw new Error("decode failed");
    const shared = txCommonFor(CHAIN_ID);
    expect(a.tx.tx.common).toBe(shared);
    expect(b.tx.tx.common).toBe(shared);
    expect(shared.param("txGas")).toBe(21_000n);
    expect(shared.hardfork()).toBe(commonFor(CHAIN_ID).hardfork());
    expect(() => shared.setHardfork("cancun")).toThrow(/shared transaction common/);
    expect(shared.hardfork()).toBe("prague");
    // The sender, hash to sign and serialization are those of an independently built transaction.
    expect(bytesEqual(a.tx.tx.serialize(), a.tx.raw)).toBe(true);
    expect(a.tx.from).toBe(alice.address.toLowerCase());
  });
});
