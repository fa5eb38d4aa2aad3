// The Beacon API client for blob batches (docs/hard-finality.md "Derivation"): the blobs of an L1 block, each checked
// against the versioned hash an inbox event names (the hash of its KZG commitment). Used by derivation
// (src/node/derive.ts) and by the batcher's check of posted batches (src/l1/batcher.ts).
import { commitmentToVersionedHash, type Hex, type PublicClient } from "viem";
import { fromHex } from "../../consensus/bytes.ts";
import { BLOB_BYTES } from "./batch.ts";
import type { InboxBatchEvent } from "./batcher.ts";
import type { Kzg } from "./kzg.ts";
import { firstLine } from "./sender.ts";

/** Most bytes read from one Beacon API response: every blob of a block (21 at most today) in hex, with room to spare. */
export const MAX_BEACON_RESPONSE_BYTES = 32 * 1024 * 1024;
/** Most blobs taken from one response (more is not a block's worth: a faulty beacon node). */
export const MAX_BEACON_BLOBS = 64;
export const BEACON_TIMEOUT_MS = 20_000;
const ZERO_ROOT = `0x${"00".repeat(32)}`;

export type BeaconErrorCode = "unreachable" | "http_status" | "too_large" | "bad_response";

/** The Beacon API could not serve the blobs (down, unsynced, pruned, or not a beacon node): try again later. */
export class BeaconError extends Error {
  override readonly name = "BeaconError";
  constructor(
    readonly code: BeaconErrorCode,
    message: string,
    readonly context: { readonly url: string; readonly status?: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The blobs of a batch in the event's order, or why the beacon node's answer cannot be used: `missing` (a versioned
 * hash has no blob), `commitment_mismatch` (a blob served for a hash commits to something else), `bad_proof` (a
 * sidecar's proof does not verify). The batch itself is fine (the L1 guarantees its blobs were published); only this
 * answer is refused.
 */
export type BlobFetchResult =
  | { readonly ok: true; readonly blobs: readonly Uint8Array[]; readonly route: "blobs" | "blob_sidecars" }
  | { readonly ok: false; readonly code: "missing" | "commitment_mismatch" | "bad_proof"; readonly reason: string };

async function beaconGet(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    throw new BeaconError("unreachable", `beacon request failed: ${firstLine(cause)}`, { url }, { cause });
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    return { status: res.status, body: null };
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > MAX_BEACON_RESPONSE_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new BeaconError("too_large", `beacon response of ${declared} bytes`, { url, status: res.status });
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body?.getReader();
  if (reader === undefined) throw new BeaconError("bad_response", "beacon response without a body", { url });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > MAX_BEACON_RESPONSE_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw new BeaconError("too_large", `beacon response over ${MAX_BEACON_RESPONSE_BYTES} bytes`, { url });
      }
      chunks.push(value);
    }
  } catch (cause) {
    if (cause instanceof BeaconError) throw cause;
    throw new BeaconError("unreachable", `beacon response broke off: ${firstLine(cause)}`, { url }, { cause });
  }
  try {
    return { status: 200, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) };
  } catch (cause) {
    throw new BeaconError("bad_response", "beacon response is not JSON", { url, status: 200 }, { cause });
  }
}

const BLOB_HEX_LENGTH = 2 + 2 * BLOB_BYTES;
const isBlobHex = (x: unknown): x is Hex =>
  typeof x === "string" && x.length === BLOB_HEX_LENGTH && /^0x[0-9a-fA-F]*$/.test(x);
const isHex = (x: unknown, bytes: number): x is Hex =>
  typeof x === "string" && x.length === 2 + 2 * bytes && /^0x[0-9a-fA-F]*$/.test(x);

function dataArray(body: unknown, url: string): unknown[] {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new BeaconError("bad_response", "beacon response has no data array", { url });
  if (data.length > MAX_BEACON_BLOBS) {
    throw new BeaconError("too_large", `beacon response holds ${data.length} blobs`, { url });
  }
  return data;
}

/**
 * Fetches the blobs with `versionedHashes` from the Beacon API at `beaconUrl` for beacon block `blockId` and checks
 * each against its hash. Tries GET /eth/v1/beacon/blobs/{id} first (Fulu; blobs only: the commitment of each is
 * computed here), then, where that route does not exist, /eth/v1/beacon/blob_sidecars/{id} (Deneb/Electra: commitment
 * and proof served, the proof is verified). Peer-caused bad answers come back as a typed result; a beacon node that
 * cannot answer throws BeaconError; a KZG worker failure throws KzgError.
 */
export async function fetchBatchBlobs(o: {
  readonly beaconUrl: string;
  readonly blockId: string;
  readonly versionedHashes: readonly Hex[];
  readonly kzg: Kzg;
  readonly timeoutMs?: number;
}): Promise<BlobFetchResult> {
  const base = o.beaconUrl.replace(/\/+$/, "");
  const timeoutMs = o.timeoutMs ?? BEACON_TIMEOUT_MS;
  const wanted = o.versionedHashes.map((h) => h.toLowerCase());
  const found = new Map<string, Uint8Array>();
  const result = (route: "blobs" | "blob_sidecars", served: number): BlobFetchResult => {
    const missing = wanted.filter((h) => !found.has(h));
    if (missing.length === 0) return { ok: true, blobs: wanted.map((h) => found.get(h) as Uint8Array), route };
    // A node that filtered by hash and served as many blobs as asked served wrong ones.
    const code = route === "blobs" && served === wanted.length ? "commitment_mismatch" : "missing";
    return { ok: false, code, reason: `${missing.length} of ${wanted.length} blobs not served (${missing[0]} ...)` };
  };

  const blobsUrl = `${base}/eth/v1/beacon/blobs/${o.blockId}?versioned_hashes=${wanted.join(",")}`;
  const blobs = await beaconGet(blobsUrl, timeoutMs);
  if (blobs.status === 200) {
    const served = dataArray(blobs.body, blobsUrl).filter(isBlobHex);
    if (served.length > 0) {
      const commitments = await o.kzg.commitments(served);
      for (const [i, blob] of served.entries()) {
        const hash = commitmentToVersionedHash({ commitment: commitments[i] as Hex, to: "hex" }).toLowerCase();
        if (wanted.includes(hash)) found.set(hash, fromHex(blob));
      }
    }
    return result("blobs", served.length);
  }
  // Only "no such route" falls back; anything else (block unknown, node syncing) is for later.
  if (![400, 404, 405, 410, 501].includes(blobs.status)) {
    throw new BeaconError("http_status", `beacon answered ${blobs.status}`, { url: blobsUrl, status: blobs.status });
  }
  const sidecarsUrl = `${base}/eth/v1/beacon/blob_sidecars/${o.blockId}`;
  const sidecars = await beaconGet(sidecarsUrl, timeoutMs);
  if (sidecars.status !== 200) {
    throw new BeaconError(
      "http_status",
      `beacon answered ${blobs.status} for blobs and ${sidecars.status} for blob sidecars`,
      { url: sidecarsUrl, status: sidecars.status },
    );
  }
  const matched: { hash: string; blob: Hex; commitment: Hex; proof: Hex }[] = [];
  for (const item of dataArray(sidecars.body, sidecarsUrl)) {
    const { blob, kzg_commitment: commitment, kzg_proof: proof } = (item ?? {}) as Record<string, unknown>;
    if (!isBlobHex(blob) || !isHex(commitment, 48) || !isHex(proof, 48)) continue;
    const hash = commitmentToVersionedHash({ commitment, to: "hex" }).toLowerCase();
    if (wanted.includes(hash) && !matched.some((m) => m.hash === hash)) matched.push({ hash, blob, commitment, proof });
  }
  if (matched.length > 0) {
    const verdicts = await o.kzg.verify(
      matched.map((m) => m.blob),
      matched.map((m) => m.commitment),
      matched.map((m) => m.proof),
    );
    const bad = matched.find((_, i) => verdicts[i] !== true);
    if (bad !== undefined) {
      return { ok: false, code: "bad_proof", reason: `the proof of the blob for ${bad.hash} does not verify` };
    }
    for (const m of matched) found.set(m.hash, fromHex(m.blob));
  }
  return result("blob_sidecars", matched.length);
}

/**
 * The Beacon API block id of L1 block `n`: its beacon block root, which is the parentBeaconBlockRoot of block n + 1
 * (EIP-4788). An L1 without a beacon chain (anvil: the root is zero) serves blobs by execution block number.
 */
export async function beaconBlockId(client: PublicClient, n: bigint): Promise<string> {
  const next = await client.getBlock({ blockNumber: n + 1n });
  const root = next.parentBeaconBlockRoot;
  return root === undefined || root === null || root === ZERO_ROOT ? n.toString() : root;
}

/** The checked blobs of a blob batch event (fetchBatchBlobs at the event's beacon block). Throws as fetchBatchBlobs. */
export async function fetchEventBlobs(
  m: { readonly client: PublicClient; readonly beaconUrl: string; readonly kzg: () => Kzg },
  event: InboxBatchEvent & { kind: "blobs" },
): Promise<BlobFetchResult> {
  return fetchBatchBlobs({
    beaconUrl: m.beaconUrl,
    blockId: await beaconBlockId(m.client, event.l1Block),
    versionedHashes: event.blobHashes,
    kzg: m.kzg(),
  });
}
