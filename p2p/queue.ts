// Bounded per-topic validation queue. Gossipsub calls the topic validator for every message it has not seen, as
// fast as the sockets deliver them; validation (signature checks) is slower than decoding, so without a bound a
// flood of valid-looking messages would grow memory without limit. When full, one job is dropped per the topic's
// policy and resolved as Ignore "queue_full" (no penalty: the sender may be honest and we are just slow).
// drop-newest suits messages where the first copy matters (proposals); drop-oldest suits messages where fresh
// ones supersede old ones (votes of later rounds).
//
// A background queue (high volume, not urgent: transactions) runs each job in its own turn of the event loop
// (setImmediate between two jobs). Transaction validations are synchronous CPU work whose promises resolve at once:
// chained in microtasks, a backlog of them would run to the end before any socket read or timer, and a height's
// commit, build and validation would wait behind every queued transaction. Its jobs are not held back while the
// consensus driver works: a transaction that waits misses the next block, which costs more latency than the
// validation costs the height (docs/performance.md).

export type DropPolicy = "drop-oldest" | "drop-newest";

export interface QueueJob<R> {
  run(): Promise<R>;
  /** Called instead of run() when the job is dropped (queue full or queue closed). */
  drop(reason: "queue_full" | "closed"): void;
  /** Receives run()'s outcome. */
  done(result: R): void;
  /** run() threw: a bug in the validator, reported by the owner. */
  fail(err: unknown): void;
}

export class ValidationQueue<R> {
  private readonly pending: QueueJob<R>[] = [];
  private running = 0;
  private closed = false;

  constructor(
    private readonly maxLength: number,
    private readonly policy: DropPolicy,
    private readonly concurrency: number,
    private readonly background = false,
  ) {
    if (!(Number.isInteger(maxLength) && maxLength >= 1))
      throw new RangeError(`queueLength must be >= 1: ${maxLength}`);
    if (!(Number.isInteger(concurrency) && concurrency >= 1))
      throw new RangeError(`concurrency must be >= 1: ${concurrency}`);
  }

  get length(): number {
    return this.pending.length;
  }

  get active(): number {
    return this.running;
  }

  push(job: QueueJob<R>): void {
    if (this.closed) {
      job.drop("closed");
      return;
    }
    if (this.pending.length >= this.maxLength) {
      if (this.policy === "drop-newest") {
        job.drop("queue_full");
        return;
      }
      this.pending.shift()?.drop("queue_full");
    }
    this.pending.push(job);
    this.pump();
  }

  /** Drops everything still waiting; jobs already running finish normally. */
  close(): void {
    this.closed = true;
    for (const job of this.pending.splice(0)) job.drop("closed");
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      const job = this.pending.shift();
      if (job === undefined) return;
      this.running++;
      job
        .run()
        .then(
          (result) => job.done(result),
          (err: unknown) => job.fail(err),
        )
        .finally(() => {
          this.running--;
          if (!this.background) this.pump();
          else setImmediate(() => this.pump());
        });
    }
  }
}
