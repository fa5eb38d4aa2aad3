import { createHash } from "node:crypto";
import {
  type Address,
  appendTransactionMessageInstructions,
  type Blockhash,
  compressTransactionMessageUsingAddressLookupTables,
  createTransactionMessage,
  getBase58Decoder,
  getBase58Encoder,
  getTransactionEncoder,
  pipe,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
} from "@solana/kit";
import { beforeAll, describe, expect, it } from "vitest";
import { concatBytes, fromHex, type Hex, toHex, utf8 } from "../../consensus/bytes.ts";
import { decodeSvmAccount, encodeSvmAccount } from "../../src/execution/svm/account.ts";
import { svmBlockhash } from "../../src/execution/svm/blockhash.ts";
import { decodeSvmTransaction, MAX_SVM_TX_BYTES } from "../../src/execution/svm/tx.ts";
import { buildTx, signer, transferIx } from "./helpers.ts";

const BLOCKHASH = svmBlockhash(`0x${"11".repeat(32)}`);
let raw: Uint8Array;
let alice: Awaited<ReturnType<typeof signer>>;
let bob: Awaited<ReturnType<typeof signer>>;

beforeAll(async () => {
  alice = await signer(1);
  bob = await signer(2);
  raw = await buildTx(alice, [transferIx(alice, bob.address, 1_000n)], BLOCKHASH);
});

/** Ed25519 group order: s + L verifies under a lax verifier (signature malleability). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

describe("decodeSvmTransaction", () => {
  it("decodes a kit-built transaction: signature, accounts, writability, blockhash", () => {
    const result = decodeSvmTransaction(raw);
    if (!result.ok) throw new Error(result.message);
    const { tx } = result;
    expect(tx.version).toBe(0);
    expect(tx.accounts).toEqual([alice.address, bob.address, "11111111111111111111111111111111"]);
    expect(tx.writable).toEqual([true, true, false]);
    expect(tx.numSignatures).toBe(1);
    expect(tx.recentBlockhash).toBe(BLOCKHASH);
    expect(getBase58Encoder().encode(tx.signature)).toEqual(raw.subarray(1, 65));
  });

  it("refuses bad signatures, including the malleable s + L twin", () => {
    const flipped = raw.slice();
    flipped[10] = (flipped[10] as number) ^ 1;
    expect(decodeSvmTransaction(flipped)).toMatchObject({ ok: false, code: "bad_signature" });
    const message = raw.slice();
    message[message.length - 3] = (message[message.length - 3] as number) ^ 1; // the amount: a different message
    expect(decodeSvmTransaction(message)).toMatchObject({ ok: false, code: "bad_signature" });
    const malleable = raw.slice();
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(raw[1 + 32 + i] as number);
    let twin = s + L;
    for (let i = 0; i < 32; i++) {
      malleable[1 + 32 + i] = Number(twin & 0xffn);
      twin >>= 8n;
    }
    expect(decodeSvmTransaction(malleable)).toMatchObject({ ok: false, code: "bad_signature" });
  });

  it("refuses trailing bytes, truncation, oversize and garbage without throwing", () => {
    expect(decodeSvmTransaction(concatBytes(raw, Uint8Array.of(0)))).toMatchObject({ ok: false, code: "malformed" });
    expect(decodeSvmTransaction(raw.subarray(0, raw.length - 1))).toMatchObject({ ok: false });
    expect(decodeSvmTransaction(new Uint8Array(MAX_SVM_TX_BYTES + 1))).toMatchObject({ ok: false, code: "too_large" });
    for (let i = 0; i < 200; i++) {
      const corrupt = raw.slice();
      corrupt[(i * 7919) % corrupt.length] = (i * 31) & 0xff;
      const result = decodeSvmTransaction(corrupt);
      if (result.ok) expect(result.tx.raw).toEqual(corrupt);
    }
  });

  it("refuses v0 transactions with address lookup tables", async () => {
    const table = (await signer(50)).address as Address;
    const message = compressTransactionMessageUsingAddressLookupTables(
      pipe(
        createTransactionMessage({ version: 0 }),
        (m) => setTransactionMessageFeePayerSigner(alice, m),
        (m) =>
          setTransactionMessageLifetimeUsingBlockhash(
            { blockhash: BLOCKHASH as Blockhash, lastValidBlockHeight: 0n },
            m,
          ),
        (m) => appendTransactionMessageInstructions([transferIx(alice, bob.address, 1n)], m),
      ),
      { [table]: [bob.address] },
    );
    const signed = await signTransactionMessageWithSigners(message);
    const bytes = new Uint8Array(getTransactionEncoder().encode(signed));
    expect(decodeSvmTransaction(bytes)).toMatchObject({
      ok: false,
      code: "unsupported",
      message: "address lookup tables are not supported",
    });
  });
});

describe("blockhash and account encoding", () => {
  it("derives the blockhash as base58(sha256('lumia-svm-blockhash' || L2 hash))", () => {
    const l2: Hex = `0x${"ab".repeat(32)}`;
    const digest = createHash("sha256").update(utf8("lumia-svm-blockhash")).update(fromHex(l2)).digest();
    expect(svmBlockhash(l2)).toBe(getBase58Decoder().decode(digest));
    expect(svmBlockhash(l2)).not.toBe(svmBlockhash(`0x${"ac".repeat(32)}`));
    expect(() => svmBlockhash("0x12")).toThrow(RangeError);
  });

  it("encodes accounts canonically (golden vector) and refuses non-canonical flags", () => {
    const account = {
      lamports: 1_000_000_000n,
      owner: new Uint8Array(32).fill(6),
      executable: false,
      rentEpoch: (1n << 64n) - 1n,
      data: Uint8Array.of(1, 2, 3),
    };
    const encoded = encodeSvmAccount(account);
    expect(toHex(encoded)).toBe(`0x000000003b9aca00${"06".repeat(32)}00ffffffffffffffff00000003010203`);
    expect(decodeSvmAccount(encoded)).toEqual(account);
    const bad = encoded.slice();
    bad[40] = 2;
    expect(() => decodeSvmAccount(bad)).toThrow(/executable flag/);
  });
});
