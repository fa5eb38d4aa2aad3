// Ethereum 2048-bit logs bloom (yellow paper M3:2048): each address and topic sets three bits taken from the low 11
// bits of the first three byte pairs of its keccak256. Used to build per-receipt blooms and to skip blocks in
// eth_getLogs whose header bloom cannot contain a match.
import { fromHex, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";

export const BLOOM_BYTES = 256;

function bloomPositions(item: Uint8Array): readonly [number, number][] {
  const h = keccak256(item);
  const out: [number, number][] = [];
  for (let i = 0; i < 6; i += 2) {
    const bit = (((h[i] as number) << 8) | (h[i + 1] as number)) & 2047;
    out.push([BLOOM_BYTES - 1 - (bit >> 3), 1 << (bit & 7)]);
  }
  return out;
}

export function bloomAdd(bloom: Uint8Array, item: Uint8Array): void {
  for (const [index, mask] of bloomPositions(item)) bloom[index] = (bloom[index] as number) | mask;
}

export function bloomMayContain(bloom: Uint8Array, item: Uint8Array): boolean {
  for (const [index, mask] of bloomPositions(item)) if (((bloom[index] as number) & mask) === 0) return false;
  return true;
}

export function logsBloom(logs: readonly { readonly address: Hex; readonly topics: readonly Hex[] }[]): Hex {
  const bloom = new Uint8Array(BLOOM_BYTES);
  for (const log of logs) {
    bloomAdd(bloom, fromHex(log.address));
    for (const topic of log.topics) bloomAdd(bloom, fromHex(topic));
  }
  return toHex(bloom);
}
