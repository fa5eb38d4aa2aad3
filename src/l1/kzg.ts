// EIP-4844 KZG commitments and proofs for blob batches (docs/hard-finality.md "Blob batches"), computed by kzg-wasm in
// a worker thread. Why a worker: loading the trusted setup took 31-37 s on the shared 2-core machine (load average
// ~10), a commitment 0.5 s and a proof 1 s; on the main thread that would stall consensus (propose timeouts are about
// a second). The worker starts on first use (the node warms it at start-up when it may need blobs), so a node that
// never posts or derives a blob batch never pays for it. Blobs go in and out as 0x hex, kzg-wasm's own format.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Hex } from "viem";

export type KzgErrorCode = "worker_failed" | "timeout" | "busy" | "closed";

/** The KZG worker could not answer (an operational failure: the caller tries again later). */
export class KzgError extends Error {
  override readonly name = "KzgError";
  constructor(
    readonly code: KzgErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Kzg {
  /** Loads the trusted setup now (the node calls it at start-up when it will need blobs: the load takes seconds). */
  warm(): Promise<void>;
  /** The 48-byte commitment of each blob. */
  commitments(blobs: readonly Hex[]): Promise<Hex[]>;
  /** The blob proof of each blob against its commitment. */
  proofs(blobs: readonly Hex[], commitments: readonly Hex[]): Promise<Hex[]>;
  /** Whether each proof shows its blob matches its commitment (false for malformed input, never a throw). */
  verify(blobs: readonly Hex[], commitments: readonly Hex[], proofs: readonly Hex[]): Promise<boolean[]>;
  close(): Promise<void>;
}

/** Requests queued on the worker at once; more are refused (`busy`): callers send one batch at a time. */
const MAX_PENDING_REQUESTS = 16;
/** Covers loading the setup on a loaded 2-core machine plus 9 proofs. */
export const DEFAULT_KZG_TIMEOUT_MS = 180_000;

// CommonJS so the eval'd worker can require() kzg-wasm without a loader (the node runs TypeScript under tsx, which a
// worker started from a source string does not inherit).
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { loadKZG } = require(workerData.modulePath);
const ready = loadKZG(0);
ready.catch(() => {});
parentPort.on("message", async (m) => {
  try {
    const k = await ready;
    let result;
    if (m.op === "warm") result = true;
    else if (m.op === "commit") result = m.blobs.map((b) => k.blobToKZGCommitment(b));
    else if (m.op === "prove") result = m.blobs.map((b, i) => k.computeBlobKZGProof(b, m.commitments[i]));
    else if (m.op === "verify") {
      result = m.blobs.map((b, i) => {
        try { return k.verifyBlobKZGProof(b, m.commitments[i], m.proofs[i]) === true; } catch { return false; }
      });
    } else throw new Error("unknown op " + m.op);
    parentPort.postMessage({ id: m.id, result });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
  }
});
`;

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

class KzgWorker implements Kzg {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  constructor(private readonly timeoutMs: number) {}

  async warm(): Promise<void> {
    await this.request<boolean>({ op: "warm" });
  }

  commitments(blobs: readonly Hex[]): Promise<Hex[]> {
    return this.request<Hex[]>({ op: "commit", blobs });
  }

  proofs(blobs: readonly Hex[], commitments: readonly Hex[]): Promise<Hex[]> {
    return this.request<Hex[]>({ op: "prove", blobs, commitments });
  }

  verify(blobs: readonly Hex[], commitments: readonly Hex[], proofs: readonly Hex[]): Promise<boolean[]> {
    return this.request<boolean[]>({ op: "verify", blobs, commitments, proofs });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new KzgError("closed", "the KZG worker was closed"));
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
  }

  private start(): Worker {
    const modulePath = createRequire(import.meta.url).resolve("kzg-wasm");
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { modulePath } });
    // An idle worker must not keep the process alive.
    worker.unref();
    worker.on("message", (m: { id: number; result?: unknown; error?: string }) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error !== undefined) p.reject(new KzgError("worker_failed", `KZG: ${m.error}`));
      else p.resolve(m.result);
    });
    const dead = (cause: unknown) => {
      if (this.worker === worker) this.worker = null;
      this.failAll(new KzgError("worker_failed", "the KZG worker stopped", { cause }));
    };
    worker.on("error", dead);
    worker.on("exit", (code) => dead(new Error(`exit code ${code}`)));
    return worker;
  }

  private request<T>(message: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new KzgError("closed", "the KZG worker was closed"));
    if (this.pending.size >= MAX_PENDING_REQUESTS) {
      return Promise.reject(new KzgError("busy", `${this.pending.size} KZG requests are already queued`));
    }
    if (this.worker === null) this.worker = this.start();
    const worker = this.worker;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new KzgError("timeout", `no KZG answer within ${this.timeoutMs} ms`));
        // A stuck worker is replaced on the next request.
        if (this.worker === worker) {
          this.worker = null;
          void worker.terminate();
        }
      }, this.timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      worker.ref();
      worker.postMessage({ id, ...message });
    }).finally(() => {
      if (this.pending.size === 0) this.worker?.unref();
    });
  }

  private failAll(error: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(error);
      this.pending.delete(id);
    }
  }
}

/** A KZG worker of its own (tests); the node uses sharedKzg(). */
export function createKzg(timeoutMs = DEFAULT_KZG_TIMEOUT_MS): Kzg {
  return new KzgWorker(timeoutMs);
}

let shared: Kzg | null = null;

/** The process' KZG worker, started on first use (one trusted setup per process: it takes seconds to load). */
export function sharedKzg(): Kzg {
  if (shared === null) shared = createKzg();
  return shared;
}
