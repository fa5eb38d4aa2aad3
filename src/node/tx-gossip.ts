// Transaction gossip, outgoing. The entries the node admits from its own clients within one turn of the event loop
// leave as one message (docs/protocol.md, the transactions topic). Nothing is held back for company: the message goes
// at the end of the turn that admitted its first entry, so a lone transaction leaves as soon as it would have alone.
// Under load the turns grow long (a block executes while RPC requests queue up on their sockets), and the requests
// served in one turn share a message: one gossipsub message id, frame and socket write per peer instead of one per
// transaction, on the sender and on every receiver.
import {
  encodeTransactionBatch,
  MAX_GOSSIP_BATCH_BYTES,
  MAX_GOSSIP_BATCH_TRANSACTIONS,
  TRANSACTION_BATCH_ENTRY_OVERHEAD,
  TRANSACTION_BATCH_OVERHEAD,
} from "./messages.ts";

export class TransactionGossip {
  private entries: Uint8Array[] = [];
  private bytes = TRANSACTION_BATCH_OVERHEAD;
  private scheduled: NodeJS.Immediate | null = null;
  private stopped = false;

  /** `send` publishes one encoded batch (it must not throw: failures are the caller's to log). */
  constructor(private readonly send: (batch: Uint8Array, count: number) => void) {}

  /** Queues an admitted entry; it leaves at the end of this turn, or now with the others when the batch is full. */
  add(entry: Uint8Array): void {
    if (this.stopped) return;
    const size = entry.length + TRANSACTION_BATCH_ENTRY_OVERHEAD;
    if (
      this.entries.length > 0 &&
      (this.entries.length >= MAX_GOSSIP_BATCH_TRANSACTIONS || this.bytes + size > MAX_GOSSIP_BATCH_BYTES)
    ) {
      this.flush();
    }
    this.entries.push(entry);
    this.bytes += size;
    this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Sends what is queued. */
  flush(): void {
    if (this.scheduled !== null) {
      clearImmediate(this.scheduled);
      this.scheduled = null;
    }
    if (this.entries.length === 0) return;
    const entries = this.entries;
    this.entries = [];
    this.bytes = TRANSACTION_BATCH_OVERHEAD;
    this.send(encodeTransactionBatch(entries), entries.length);
  }

  /** Sends what is queued and refuses anything later (the node is stopping). */
  stop(): void {
    this.flush();
    this.stopped = true;
  }
}
