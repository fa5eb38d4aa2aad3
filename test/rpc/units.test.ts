// Pure helpers of the RPC server checked against independent implementations (ethereumjs' Bloom, viem's ABI codec).
import { Bloom } from "@ethereumjs/vm";
import fc from "fast-check";
import { encodeAbiParameters, encodeErrorResult, parseAbi } from "viem";
import { describe, expect, it } from "vitest";
import { fromHex, type Hex, toHex } from "../../consensus/bytes.ts";
import { bloomMayContain, logsBloom } from "../../src/rpc/bloom.ts";
import {
  decodeRevertReason,
  RpcRequestError,
  readPrunableState,
  revertError,
  sendRefusalMessage,
} from "../../src/rpc/errors.ts";
import { quantity } from "../../src/rpc/format.ts";

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => toHex(b));

describe("logs bloom", () => {
  it("equals ethereumjs' Bloom for random logs", () => {
    const log = fc.record({ address: bytes(20), topics: fc.array(bytes(32), { maxLength: 4 }) });
    fc.assert(
      fc.property(fc.array(log, { maxLength: 6 }), (logs) => {
        const reference = new Bloom();
        for (const l of logs) {
          reference.add(fromHex(l.address));
          for (const t of l.topics) reference.add(fromHex(t));
        }
        const ours = logsBloom(logs);
        expect(ours).toBe(toHex(reference.bitvector));
        for (const l of logs) expect(bloomMayContain(fromHex(ours), fromHex(l.address))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe("revert reasons", () => {
  const abi = parseAbi(["error Error(string)", "error Panic(uint256)"]);

  it("decodes Error(string) and Panic(uint256) like geth, and nothing else", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), (reason) => {
        const data = encodeErrorResult({ abi, errorName: "Error", args: [reason] });
        expect(decodeRevertReason(data)).toBe(reason);
      }),
    );
    expect(decodeRevertReason(encodeErrorResult({ abi, errorName: "Panic", args: [0x11n] }))).toBe(
      "arithmetic underflow or overflow",
    );
    expect(decodeRevertReason("0x")).toBeNull();
    expect(decodeRevertReason("0xdeadbeef")).toBeNull();
    // A lying length must not read past the data.
    const lying =
      `0x08c379a0${encodeAbiParameters([{ type: "uint256" }, { type: "uint256" }], [32n, 1000n]).slice(2)}` as Hex;
    expect(decodeRevertReason(lying)).toBeNull();
  });

  it("never throws on random revert data", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (data, errorSelector) => {
        const hex = toHex(data);
        const withSelector = (errorSelector ? `0x08c379a0${hex.slice(2)}` : hex) as Hex;
        const outcome = revertError(withSelector, null);
        expect(outcome.error.code).toBe(3);
        expect(outcome.error.data).toBe(withSelector);
      }),
    );
  });
});

describe("formats", () => {
  it("writes minimal hex quantities", () => {
    expect(quantity(0n)).toBe("0x0");
    expect(quantity(0)).toBe("0x0");
    expect(quantity(255n)).toBe("0xff");
    expect(quantity(2n ** 64n)).toBe("0x10000000000000000");
  });

  it("maps mempool refusals to geth's messages", () => {
    expect(sendRefusalMessage("nonce_too_low", "")).toBe("nonce too low");
    expect(sendRefusalMessage("nonce_too_low", "next nonce 5")).toBe("nonce too low: next nonce 5");
    expect(sendRefusalMessage("insufficient_funds", "")).toBe("insufficient funds for gas * price + value");
    expect(sendRefusalMessage("fee_too_low", "")).toBe("transaction underpriced");
    expect(sendRefusalMessage("underpriced_replacement", "")).toBe("replacement transaction underpriced");
    expect(sendRefusalMessage("known", "")).toBe("already known");
    expect(sendRefusalMessage("something_new", "details")).toBe("something_new: details");
  });
});

describe("reads of pruned state", () => {
  const missing = new Error("state node 0xab is missing");

  it("refuses a height below what the node keeps without reading", async () => {
    let reads = 0;
    const read = async () => ++reads;
    await expect(readPrunableState(5, () => 10, read)).rejects.toMatchObject({
      rpcCode: -32000,
      message: "state of block 5 is pruned: this node keeps the state of blocks 10 and later (storage.stateHistory)",
    });
    expect(reads).toBe(0);
    expect(await readPrunableState(10, () => 10, read)).toBe(1);
  });

  it("answers pruned when the state was dropped while the read ran", async () => {
    let keptFrom = 0;
    const racing = readPrunableState(
      5,
      () => keptFrom,
      async () => {
        keptFrom = 10; // a drop recorded its new keptFrom, then cleared the generation under the read
        throw missing;
      },
    );
    await expect(racing).rejects.toBeInstanceOf(RpcRequestError);
    await expect(racing).rejects.toThrow("state of block 5 is pruned");
  });

  it("passes on a failure of a height that is still kept", async () => {
    await expect(
      readPrunableState(
        12,
        () => 10,
        async () => {
          throw missing;
        },
      ),
    ).rejects.toBe(missing);
  });
});
