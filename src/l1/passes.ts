// One background pass at a time (the batcher, the output proposer, the derivation), remembered while it runs: a
// stopping node waits for it before it closes the store and the L1 view (src/node/node.ts, stop()).
export class PassInFlight {
  private current: Promise<void> | null = null;

  /** Runs `pass` (it must not throw: each task logs its own failures), unless one is already running (then a no-op). */
  run(pass: () => Promise<void>): Promise<void> {
    if (this.current !== null) return Promise.resolve();
    const running = pass().finally(() => {
      this.current = null;
    });
    this.current = running;
    return running;
  }

  /** Resolves when the pass in flight, if any, has ended. */
  idle(): Promise<void> {
    return this.current ?? Promise.resolve();
  }
}
