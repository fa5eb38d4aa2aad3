// Operational failures of the bench (the target misbehaving or a bad option), as opposed to refused transactions,
// which are counted in the report.

export type BenchErrorCode = "setup_failed" | "setup_timeout" | "target_failed" | "bad_option";

/** The bench could not prepare or drive a target: setup refused or stalled, a target did not start. */
export class BenchError extends Error {
  override readonly name = "BenchError";
  constructor(
    readonly code: BenchErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
