// Receipt pieces: logs bloom aggregation and revert reasons (the ordered-trie roots are src/chain/ordered-trie.ts).
import { toHex } from "../../consensus/bytes.ts";

export const BLOOM_BYTES = 256;
const ERROR_SELECTOR = "0x08c379a0"; // Error(string)
const PANIC_SELECTOR = "0x4e487b71"; // Panic(uint256)
/** Revert reasons kept in receipts are cut to this many bytes of UTF-8. */
export const MAX_REVERT_REASON_BYTES = 1024;

/** Bitwise OR of 256-byte blooms into `into`. */
export function orBloom(into: Uint8Array, bloom: Uint8Array): void {
  for (let i = 0; i < BLOOM_BYTES; i++) into[i] = (into[i] as number) | (bloom[i] as number);
}

function word(data: Uint8Array, offset: number): bigint | null {
  if (offset + 32 > data.length) return null;
  return BigInt(toHex(data.subarray(offset, offset + 32)));
}

/**
 * The human-readable reason of reverted return data: the string of `Error(string)`, `Panic(0x..)` for a compiler
 * panic code, null otherwise (including malformed ABI, which a contract can return on purpose).
 */
export function decodeRevertReason(returnData: Uint8Array): string | null {
  if (returnData.length < 4) return null;
  const selector = toHex(returnData.subarray(0, 4));
  const body = returnData.subarray(4);
  if (selector === PANIC_SELECTOR) {
    const code = word(body, 0);
    return code === null ? null : `Panic(0x${code.toString(16)})`;
  }
  if (selector !== ERROR_SELECTOR) return null;
  const offset = word(body, 0);
  if (offset === null || offset > BigInt(body.length)) return null;
  const length = word(body, Number(offset));
  if (length === null) return null;
  const start = Number(offset) + 32;
  if (length > BigInt(body.length - start)) return null;
  const bytes = body.subarray(start, start + Math.min(Number(length), MAX_REVERT_REASON_BYTES));
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}
