import { RLP } from "@ethereumjs/rlp";
import { secp256k1 as noble } from "@noble/curves/secp256k1.js";
import type { TransactionSerializable, Hex as ViemHex } from "viem";
import { parseTransaction } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { fromHex, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { secp256k1Backend } from "../../src/execution/secp256k1.ts";
import { decodeTransaction, effectiveTip, MAX_TX_BYTES } from "../../src/execution/tx.ts";

const CHAIN_ID = 994_873_017n;
const KEY: ViemHex = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const account = privateKeyToAccount(KEY);
const TO: Hex = "0x00000000000000000000000000000000000000aa";

async function sign(fields: Record<string, unknown>): Promise<Uint8Array> {
  return fromHex(await account.signTransaction({ chainId: Number(CHAIN_ID), ...fields } as TransactionSerializable));
}

function expectFailure(raw: Uint8Array, code: string): void {
  const result = decodeTransaction(raw, CHAIN_ID);
  if (result.ok) throw new Error(`expected ${code}, decoded fine`);
  expect(result.code).toBe(code);
  expect(result.message.length).toBeGreaterThan(0);
}

describe("decodeTransaction", () => {
  it("uses the native secp256k1 binding", () => {
    expect(secp256k1Backend).toBe("native");
  });

  it("decodes legacy EIP-155, EIP-2930 and EIP-1559 transfers and recovers the sender", async () => {
    const legacy = await sign({ type: "legacy", to: TO, value: 5n, gas: 21_000n, gasPrice: 3_000_000_000n, nonce: 7 });
    const al = await sign({
      type: "eip2930",
      to: TO,
      value: 6n,
      gas: 30_000n,
      gasPrice: 2_000_000_000n,
      nonce: 8,
      accessList: [{ address: TO, storageKeys: [`0x${"00".repeat(31)}01`] }],
    });
    const dyn = await sign({
      type: "eip1559",
      to: TO,
      value: 7n,
      gas: 21_000n,
      maxFeePerGas: 5_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
      nonce: 9,
      data: "0x",
    });
    const cases: [Uint8Array, number, bigint, bigint, bigint][] = [
      [legacy, 0, 3_000_000_000n, 3_000_000_000n, 21_000n],
      [al, 1, 2_000_000_000n, 2_000_000_000n, 21_000n + 2400n + 1900n],
      [dyn, 2, 5_000_000_000n, 1_000_000_000n, 21_000n],
    ];
    for (const [raw, type, maxFee, maxPriority, intrinsic] of cases) {
      const result = decodeTransaction(raw, CHAIN_ID);
      if (!result.ok) throw new Error(result.message);
      const tx = result.tx;
      expect(tx.type).toBe(type);
      expect(tx.from).toBe(account.address.toLowerCase());
      expect(tx.to).toBe(TO);
      expect(tx.hash).toBe(toHex(keccak256(raw)));
      expect(tx.chainId).toBe(CHAIN_ID);
      expect(tx.maxFeePerGas).toBe(maxFee);
      expect(tx.maxPriorityFeePerGas).toBe(maxPriority);
      expect(tx.intrinsicGas).toBe(intrinsic);
      expect(tx.tx.getSenderAddress().toString()).toBe(account.address.toLowerCase());
    }
  });

  it("reports contract creation with to = null and counts calldata in intrinsic gas", async () => {
    const raw = await sign({
      type: "eip1559",
      data: "0x6000",
      gas: 100_000n,
      maxFeePerGas: 1n,
      maxPriorityFeePerGas: 1n,
    });
    const result = decodeTransaction(raw, CHAIN_ID);
    if (!result.ok) throw new Error(result.message);
    expect(result.tx.to).toBeNull();
    // 21000 + 32000 create + 16 (non-zero) + 4 (zero) + 2 initcode word cost
    expect(result.tx.intrinsicGas).toBe(53_022n);
  });

  it("refuses pre-EIP-155 legacy and other chains' transactions with wrong_chain", async () => {
    // A chain-id-less legacy transaction: viem signs one when chainId is left out.
    const unprotected = fromHex(
      await account.signTransaction({ type: "legacy", to: TO, value: 1n, gas: 21_000n, gasPrice: 1n, nonce: 0 }),
    );
    expect(parseTransaction(toHex(unprotected) as ViemHex).chainId).toBeUndefined();
    expectFailure(unprotected, "wrong_chain");
    expectFailure(await sign({ type: "legacy", chainId: 1, to: TO, gas: 21_000n, gasPrice: 1n }), "wrong_chain");
    expectFailure(
      await sign({ type: "eip1559", chainId: 5, to: TO, gas: 21_000n, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n }),
      "wrong_chain",
    );
    expectFailure(await sign({ type: "eip2930", chainId: 7, to: TO, gas: 21_000n, gasPrice: 1n }), "wrong_chain");
  });

  it("refuses a gas limit below the intrinsic gas or the EIP-7623 calldata floor", async () => {
    expectFailure(await sign({ type: "legacy", to: TO, gas: 20_999n, gasPrice: 1n }), "intrinsic_gas");
    // 1000 non-zero bytes: intrinsic 21000 + 16000 = 37000, floor 21000 + 40 * 1000 = 61000.
    const data = `0x${"11".repeat(1000)}` as ViemHex;
    expectFailure(
      await sign({ type: "eip1559", to: TO, data, gas: 60_999n, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n }),
      "intrinsic_gas",
    );
    const ok = decodeTransaction(
      await sign({ type: "eip1559", to: TO, data, gas: 61_000n, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n }),
      CHAIN_ID,
    );
    expect(ok.ok && ok.tx.intrinsicGas).toBe(61_000n);
  });

  it("refuses blob, set-code and unknown types", () => {
    expectFailure(Uint8Array.of(3, 0xc0), "unsupported_type");
    expectFailure(Uint8Array.of(4, 0xc0), "unsupported_type");
    expectFailure(Uint8Array.of(0x7f, 0xc0), "unsupported_type");
  });

  it("refuses oversized, empty, truncated, trailing-byte and non-canonical encodings as typed results", async () => {
    expectFailure(new Uint8Array(MAX_TX_BYTES + 1), "too_large");
    expectFailure(new Uint8Array(0), "malformed");
    expectFailure(Uint8Array.of(0x80), "malformed");
    const raw = await sign({ type: "eip1559", to: TO, gas: 21_000n, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n });
    expectFailure(raw.subarray(0, raw.length - 1), "malformed");
    expectFailure(Uint8Array.of(...raw, 0), "malformed");
    expectFailure(Uint8Array.of(2, 0xc0), "malformed");
    // Leading zero in the nonce: same transaction, different bytes.
    const fields = RLP.decode(raw.subarray(1)) as Uint8Array[];
    fields[1] = Uint8Array.of(0);
    expectFailure(Uint8Array.of(2, ...RLP.encode(fields)), "malformed");
    // Random garbage never throws.
    for (let i = 0; i < 200; i++) {
      const junk = raw.slice();
      const at = (i * 7919) % junk.length;
      junk[at] = (junk[at] ?? 0) ^ (1 + (i % 255));
      expect(typeof decodeTransaction(junk, CHAIN_ID).ok).toBe("boolean");
    }
  });

  it("refuses bad signatures: high s, y parity out of range, r = 0, r off the curve", async () => {
    const raw = await sign({ type: "eip1559", to: TO, gas: 21_000n, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n });
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const withSignature = (v: bigint, r: bigint, s: bigint): Uint8Array => {
      const fields = RLP.decode(raw.subarray(1)) as Uint8Array[];
      return Uint8Array.of(2, ...RLP.encode([...fields.slice(0, 9), v, r, s]));
    };
    const fields = RLP.decode(raw.subarray(1)) as Uint8Array[];
    const [v, r, s] = fields.slice(9).map((f) => BigInt(toHex(f))) as [bigint, bigint, bigint];
    expect(decodeTransaction(withSignature(v, r, s), CHAIN_ID).ok).toBe(true);
    // The malleable twin (n - s, flipped parity) recovers the same key: EIP-2 refuses it.
    expectFailure(withSignature(1n - v, r, n - s), "bad_signature");
    expectFailure(withSignature(v, 0n, s), "bad_signature");
    expectFailure(withSignature(2n, r, s), "bad_signature");
    expectFailure(withSignature(v, n, s), "bad_signature");
    // x = 5 is not the x coordinate of a curve point: recovery itself fails.
    expectFailure(withSignature(v, 5n, s), "bad_signature");
  });

  it("a tampered field yields a different (valid-looking) sender, never the signer", async () => {
    const raw = await sign({ type: "legacy", to: TO, value: 100n, gas: 21_000n, gasPrice: 1n, nonce: 1 });
    const fields = RLP.decode(raw) as Uint8Array[];
    fields[4] = Uint8Array.of(101);
    const result = decodeTransaction(RLP.encode(fields), CHAIN_ID);
    if (result.ok) expect(result.tx.from).not.toBe(account.address.toLowerCase());
    else expect(result.code).toBe("bad_signature");
  });

  it("effectiveTip is min(maxPriority, maxFee - baseFee) and negative below the base fee", async () => {
    const raw = await sign({ type: "eip1559", to: TO, gas: 21_000n, maxFeePerGas: 10n, maxPriorityFeePerGas: 3n });
    const result = decodeTransaction(raw, CHAIN_ID);
    if (!result.ok) throw new Error(result.message);
    expect(effectiveTip(result.tx, 5n)).toBe(3n);
    expect(effectiveTip(result.tx, 8n)).toBe(2n);
    expect(effectiveTip(result.tx, 12n)).toBe(-2n);
    const legacy = decodeTransaction(await sign({ type: "legacy", to: TO, gas: 21_000n, gasPrice: 10n }), CHAIN_ID);
    if (!legacy.ok) throw new Error(legacy.message);
    expect(effectiveTip(legacy.tx, 4n)).toBe(6n);
  });
});

describe("decodeTransaction: the plain-transfer path against @ethereumjs/tx", () => {
  const KEY_BYTES = fromHex(KEY);
  const q = (n: bigint) =>
    n === 0n
      ? new Uint8Array(0)
      : fromHex(`0x${n.toString(16).padStart(2 * Math.ceil(n.toString(16).length / 2), "0")}`);
  type Fields = { nonce: bigint; fee: bigint; tip: bigint; gas: bigint; to: Uint8Array; value: bigint };
  const base: Fields = {
    nonce: 3n,
    fee: 2_000_000_000n,
    tip: 1_000_000_000n,
    gas: 21_000n,
    to: fromHex(TO),
    value: 9n,
  };

  /** Signed bytes of a transfer of `type`; `tweak` edits the encoded fields before signing (leading zeros...). */
  function encode(type: 0 | 1 | 2, f: Fields, tweak?: (fields: Uint8Array[]) => void, chainId = CHAIN_ID): Uint8Array {
    const unsigned: (Uint8Array | Uint8Array[])[] =
      type === 0
        ? [q(f.nonce), q(f.fee), q(f.gas), f.to, q(f.value), new Uint8Array(0)]
        : type === 1
          ? [q(chainId), q(f.nonce), q(f.fee), q(f.gas), f.to, q(f.value), new Uint8Array(0), []]
          : [q(chainId), q(f.nonce), q(f.tip), q(f.fee), q(f.gas), f.to, q(f.value), new Uint8Array(0), []];
    tweak?.(unsigned as Uint8Array[]);
    const message =
      type === 0
        ? RLP.encode([...unsigned, q(chainId), new Uint8Array(0), new Uint8Array(0)])
        : Uint8Array.of(type, ...RLP.encode(unsigned));
    const sig = noble.Signature.fromBytes(
      noble.sign(keccak256(message), KEY_BYTES, { prehash: false, format: "recovered" }),
      "recovered",
    );
    const compact = sig.toBytes("compact");
    const r = q(BigInt(toHex(compact.subarray(0, 32))));
    const s = q(BigInt(toHex(compact.subarray(32, 64))));
    const v = type === 0 ? q(chainId * 2n + 35n + BigInt(sig.recovery ?? 0)) : q(BigInt(sig.recovery ?? 0));
    const body = RLP.encode([...unsigned, v, r, s]);
    return type === 0 ? body : Uint8Array.of(type, ...body);
  }

  function expectSame(raw: Uint8Array, label: string): "ok" | string {
    const fast = decodeTransaction(raw, CHAIN_ID);
    const reference = decodeTransaction(raw, CHAIN_ID, undefined, "ethereumjs");
    if (!reference.ok) {
      expect(fast.ok, `${label}: ${reference.message}`).toBe(false);
      if (!fast.ok) expect(fast.code, label).toBe(reference.code);
      return reference.code;
    }
    if (!fast.ok) throw new Error(`${label}: the ethereumjs path accepts it, the plain path says ${fast.message}`);
    const { tx: a } = fast;
    const { tx: b } = reference;
    const view = (t: typeof a) => ({
      hash: t.hash,
      type: t.type,
      from: t.from,
      to: t.to,
      nonce: t.nonce,
      gasLimit: t.gasLimit,
      value: t.value,
      data: toHex(t.data),
      chainId: t.chainId,
      maxFee: t.maxFeePerGas,
      tip: t.maxPriorityFeePerGas,
      intrinsic: t.intrinsicGas,
      sender: t.sender.toString(),
    });
    expect(view(a), label).toEqual(view(b));
    // The object built on demand is the same transaction, with the sender pinned.
    expect(toHex(a.tx.serialize()), label).toBe(toHex(raw));
    expect(a.tx.getSenderAddress().toString(), label).toBe(a.from);
    expect(a.tx, label).toBe(a.tx);
    return "ok";
  }

  it("gives the same verdicts and fields on valid, boundary and damaged transfers of each type", () => {
    const U64 = (1n << 64n) - 1n;
    const U256 = (1n << 256n) - 1n;
    const variants: [string, Partial<Fields>][] = [
      ["plain", {}],
      ["zero nonce, value and fees", { nonce: 0n, value: 0n, fee: 0n, tip: 0n }],
      ["nonce 2^64 - 2", { nonce: U64 - 1n }],
      ["nonce 2^64 - 1", { nonce: U64 }],
      ["nonce 2^64", { nonce: U64 + 1n }],
      ["gas 20,999", { gas: 20_999n }],
      ["gas 2^64 - 1", { gas: U64, fee: 1n, tip: 1n }],
      ["gas 2^64", { gas: U64 + 1n, fee: 1n, tip: 1n }],
      ["gas x fee just below 2^256", { gas: 21_000n, fee: U256 / 21_000n, tip: 0n }],
      ["gas x fee above 2^256", { gas: 21_000n, fee: U256 / 21_000n + 1n, tip: 0n }],
      ["tip above fee", { tip: 3_000_000_000n }],
      ["largest value", { value: U256 }],
      ["to of 19 bytes", { to: new Uint8Array(19).fill(1) }],
      ["to of 21 bytes", { to: new Uint8Array(21).fill(1) }],
    ];
    const tweaks: [string, (fields: Uint8Array[]) => void][] = [
      [
        "leading zero on the first field",
        (f) => {
          f[0] = Uint8Array.of(0, ...(f[0] as Uint8Array));
        },
      ],
      [
        "leading zero on the value",
        (f) => {
          const i = f.length === 6 ? 4 : f.length === 8 ? 5 : 6;
          f[i] = Uint8Array.of(0, ...(f[i] as Uint8Array));
        },
      ],
      [
        "33-byte value",
        (f) => {
          const i = f.length === 6 ? 4 : f.length === 8 ? 5 : 6;
          f[i] = new Uint8Array(33).fill(1);
        },
      ],
      [
        "leading zero on the gas",
        (f) => {
          const i = f.length === 6 ? 2 : f.length === 8 ? 3 : 4;
          f[i] = Uint8Array.of(0, ...(f[i] as Uint8Array));
        },
      ],
    ];
    const plain = decodeTransaction(encode(2, base), CHAIN_ID);
    expect(plain.ok && plain.tx.from).toBe(account.address.toLowerCase());
    const verdicts = new Map<string, number>();
    const note = (v: string) => verdicts.set(v, (verdicts.get(v) ?? 0) + 1);
    for (const type of [0, 1, 2] as const) {
      for (const [label, change] of variants)
        note(expectSame(encode(type, { ...base, ...change }), `type ${type} ${label}`));
      for (const [label, tweak] of tweaks) note(expectSame(encode(type, base, tweak), `type ${type} ${label}`));
      note(expectSame(encode(type, base, undefined, CHAIN_ID + 1n), `type ${type} other chain`));
      // Every single-byte change of a valid transfer (decode, chain, signature or field checks refuse most; some
      // give another sender).
      const raw = encode(type, base);
      for (let i = 0; i < raw.length; i++) {
        for (const delta of [1, 0x80]) {
          const damaged = raw.slice();
          damaged[i] = ((damaged[i] as number) + delta) & 0xff;
          note(expectSame(damaged, `type ${type} byte ${i} + ${delta}`));
        }
      }
    }
    // Both paths saw valid transfers and each kind of refusal.
    for (const code of ["ok", "malformed", "intrinsic_gas", "wrong_chain", "bad_signature"]) {
      expect(verdicts.get(code) ?? 0, code).toBeGreaterThan(0);
    }
  });

  it("takes a transfer with data or an access list through @ethereumjs/tx", async () => {
    const withData = await sign({
      type: "eip1559",
      to: TO,
      gas: 30_000n,
      maxFeePerGas: 2n,
      maxPriorityFeePerGas: 1n,
      data: "0x01",
    });
    const withAccessList = await sign({
      type: "eip2930",
      to: TO,
      gas: 30_000n,
      gasPrice: 2n,
      accessList: [{ address: TO, storageKeys: [] }],
    });
    // Their minimum gas counts the data byte (the EIP-7623 floor: 4 tokens x 10) and the access-list entry, as
    // @ethereumjs/tx computes it; the plain path would say 21,000.
    const cases: [Uint8Array, bigint][] = [
      [withData, 21_000n + 40n],
      [withAccessList, 21_000n + 2_400n],
    ];
    for (const [raw, intrinsic] of cases) {
      expect(expectSame(raw, "not a plain transfer")).toBe("ok");
      const result = decodeTransaction(raw, CHAIN_ID);
      expect(result.ok && result.tx.intrinsicGas).toBe(intrinsic);
    }
  });
});
