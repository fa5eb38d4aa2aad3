// eth_sendRawTransactionSync (EIP-7966): submit a transaction and answer with its receipt once a block carrying it is
// committed (soft-final: every committed block is certified), in one request instead of a send and a polling loop.
// Waiters are keyed by transaction hash and fed by the backend's commit events, listened to only while someone waits.
import type { Hex } from "../../consensus/bytes.ts";
import type { CommittedEvent, RpcBackend } from "./backend.ts";
import { formatReceipt } from "./format.ts";

/** Wait when the request names none, or an invalid one (EIP-7966 recommends 2 s). */
export const DEFAULT_SYNC_TIMEOUT_MS = 2_000;
/** The longest wait a request may ask for. */
export const MAX_SYNC_TIMEOUT_MS = 10_000;
/** Requests waiting at once; one more is refused (every waiter holds a request open). */
export const MAX_SYNC_WAITERS = 10_000;

type Waiter = (receipt: Record<string, unknown>) => void;

export class ReceiptWaiters {
  private readonly waiting = new Map<Hex, Set<Waiter>>();
  private count = 0;
  private stop: (() => void) | null = null;

  constructor(private readonly backend: Pick<RpcBackend, "onCommitted">) {}

  get size(): number {
    return this.count;
  }

  /**
   * Resolves with the receipt of `hash` when a block carrying it commits, or null after `timeoutMs`. Call before
   * submitting, so that a commit right after the submission is not missed.
   */
  wait(hash: Hex, timeoutMs: number): { readonly receipt: Promise<Record<string, unknown> | null>; cancel(): void } {
    let waiter: Waiter = () => undefined;
    let timer: NodeJS.Timeout | null = null;
    const receipt = new Promise<Record<string, unknown> | null>((resolve) => {
      waiter = (r) => {
        this.remove(hash, waiter);
        if (timer !== null) clearTimeout(timer);
        resolve(r);
      };
      timer = setTimeout(() => {
        this.remove(hash, waiter);
        resolve(null);
      }, timeoutMs);
    });
    let set = this.waiting.get(hash);
    if (set === undefined) {
      set = new Set();
      this.waiting.set(hash, set);
    }
    set.add(waiter);
    this.count++;
    this.listen();
    return {
      receipt,
      cancel: () => {
        if (timer !== null) clearTimeout(timer);
        this.remove(hash, waiter);
      },
    };
  }

  private remove(hash: Hex, waiter: Waiter): void {
    const set = this.waiting.get(hash);
    if (set?.delete(waiter) !== true) return;
    this.count--;
    if (set.size === 0) this.waiting.delete(hash);
    this.listen();
  }

  private listen(): void {
    if (this.count > 0 && this.stop === null) {
      this.stop = this.backend.onCommitted((event) => this.onCommitted(event));
    } else if (this.count === 0 && this.stop !== null) {
      this.stop();
      this.stop = null;
    }
  }

  private onCommitted(event: CommittedEvent): void {
    let firstLogIndex = 0;
    for (const [index, receipt] of event.receipts.entries()) {
      const waiters = this.waiting.get(receipt.transactionHash);
      if (waiters !== undefined) {
        const formatted = formatReceipt(receipt, {
          blockHash: event.hash,
          blockNumber: event.height,
          index,
          firstLogIndex,
        });
        for (const waiter of [...waiters]) waiter(formatted);
      }
      firstLogIndex += receipt.logs.length;
    }
  }
}
