// One background job of a node part at a time (the state and history pruners): started by `kick` after commits when
// it is due, never twice at once; a failure is logged and holds the next start back for a while, so that a store
// error is not logged once per height; `stop` waits for the job in flight, which checks `stopped` to end early.
import type { Logger } from "./log.ts";

/** After a failed job, the next one waits this long. */
const RETRY_AFTER_MS = 30_000;

export class BackgroundJob {
  private running: Promise<void> | null = null;
  private stopping = false;
  private failedAtMs: number | null = null;

  /** `failure`: the log message of a failed job ("... failed; it is tried again later"). */
  constructor(private readonly o: { readonly log: Logger; readonly failure: string }) {}

  /** True once stop() was called: a job in flight ends at its next check. */
  get stopped(): boolean {
    return this.stopping;
  }

  /** Starts `job` unless one runs, the part is stopping, a failure is recent, or `due()` says it is not time. */
  kick(due: () => boolean, job: () => Promise<void>): void {
    if (this.running !== null || this.stopping) return;
    if (this.failedAtMs !== null && Date.now() - this.failedAtMs < RETRY_AFTER_MS) return;
    if (!due()) return;
    this.running = job()
      .then(() => {
        this.failedAtMs = null;
      })
      .catch((err: unknown) => {
        if (this.stopping) return;
        this.failedAtMs = Date.now();
        this.o.log.error({ err, retryInMs: RETRY_AFTER_MS }, this.o.failure);
      })
      .finally(() => {
        this.running = null;
      });
  }

  /** Waits for the job in flight; no job starts after this. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  /** The job in flight, if any (tests). */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }
}
