// Signature checks gathered over one turn of the event loop and verified together. Votes of one step sign the same
// digest (validator index is not in it), and a node under load reads several of them from its sockets before it gets
// to verify the first: checked as one batch (SignatureScheme.verifySameMessage), three cost about half of three
// single checks. A batch that fails is checked again one signature at a time, so an invalid signature costs its
// batch the saving, and every other signature in it still gets its own verdict.
import { toHex } from "../../consensus/bytes.ts";
import type { SignatureScheme } from "../../consensus/types.ts";

interface Pending {
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
  readonly resolve: (valid: boolean) => void;
}

export interface BatchVerifierOptions {
  /** Checks waiting beyond this many are verified at once, without waiting for the turn to end (default 128). */
  readonly maxPending?: number;
  /** Called for each check of several signatures at once: its size, and whether it held. */
  readonly onBatch?: (size: number, valid: boolean) => void;
}

export class BatchVerifier {
  /** Waiting checks by message (hex). */
  private readonly pending = new Map<string, { message: Uint8Array; items: Pending[] }>();
  private count = 0;
  private scheduled = false;
  private readonly maxPending: number;

  constructor(
    private readonly scheme: SignatureScheme,
    private readonly options: BatchVerifierOptions = {},
  ) {
    this.maxPending = options.maxPending ?? 128;
    if (!(Number.isInteger(this.maxPending) && this.maxPending >= 1)) {
      throw new RangeError(`maxPending must be >= 1: ${this.maxPending}`);
    }
  }

  /** Resolves with whether `signature` is `publicKey`'s signature over `message`, after this turn of the loop. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return new Promise((resolve) => {
      const key = toHex(message);
      let group = this.pending.get(key);
      if (group === undefined) {
        group = { message, items: [] };
        this.pending.set(key, group);
      }
      group.items.push({ publicKey, signature, resolve });
      this.count++;
      if (this.count >= this.maxPending) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Verifies everything waiting now. */
  flush(): void {
    this.scheduled = false;
    const groups = [...this.pending.values()];
    this.pending.clear();
    this.count = 0;
    for (const { message, items } of groups) this.verifyGroup(message, items);
  }

  private verifyGroup(message: Uint8Array, items: readonly Pending[]): void {
    const batch = this.scheme.verifySameMessage;
    if (items.length >= 2 && batch !== undefined) {
      const valid = batch.call(
        this.scheme,
        items.map((i) => i.publicKey),
        message,
        items.map((i) => i.signature),
      );
      this.options.onBatch?.(items.length, valid);
      if (valid) {
        for (const item of items) item.resolve(true);
        return;
      }
    }
    for (const item of items) item.resolve(this.scheme.verify(item.publicKey, message, item.signature));
  }
}
