// Failpoints (testing only): `DCN_FAILPOINT=<point>[@<height>]` makes the node kill itself with SIGKILL when it
// reaches <point> (at <height>, or the first time without one). The fault suite (test/faults/run.ts) uses them to crash
// a validator at an exact step of a height instead of at a random instant; the restart must then show no double
// signature and no lost block or receipt. The variable is read once, at module load: unset (production), each call
// site costs one comparison.
//
// Points (docs/operations.md "Failpoints"):
//   proposing      own proposal signed and its safety record persisted, not yet published
//   after-prevote  own prevote persisted and handed to gossip; the kill waits PUBLISH_GRACE_MS so the bytes leave
//   after-precommit  the same for its precommit (the signature that can complete a certificate)
//   mid-commit     the commit batch is durable; the in-memory head, executor, mempool and certificate publish are not
//   mid-write      right before the commit batch is written: the commit is one atomic level batch (block, certificate,
//                  head, state, receipts, index), so "between its writes" is before the one write

export const FAILPOINTS = ["proposing", "after-prevote", "after-precommit", "mid-commit", "mid-write"] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

/** Publishing is asynchronous (gossipsub writes on a later tick): an "after publish" kill waits this long. */
const PUBLISH_GRACE_MS = 50;

interface Armed {
  readonly point: Failpoint;
  /** Undefined: the first time the point is reached. */
  readonly height: number | undefined;
}

export class FailpointError extends Error {
  override readonly name = "FailpointError";
  readonly code = "invalid_failpoint";
  constructor(readonly value: string) {
    super(
      `DCN_FAILPOINT="${value}" is not <point>[@<height>] with point one of ${FAILPOINTS.join(", ")} and a positive height`,
    );
  }
}

/** Parses `<point>[@<height>]`; null for an unset or empty value. Throws FailpointError on anything else. */
export function parseFailpoint(value: string | undefined): Armed | null {
  if (value === undefined || value === "") return null;
  const [point, height, ...rest] = value.split("@");
  if (rest.length > 0 || !FAILPOINTS.includes(point as Failpoint)) throw new FailpointError(value);
  if (height === undefined) return { point: point as Failpoint, height: undefined };
  const h = Number(height);
  if (!/^\d+$/.test(height) || !Number.isSafeInteger(h) || h < 1) throw new FailpointError(value);
  return { point: point as Failpoint, height: h };
}

// A typo must not silently disarm a crash test: a bad value fails the node at start.
const armed: Armed | null = parseFailpoint(process.env.DCN_FAILPOINT);
let fired = false;

/** SIGKILLs this process when `point` (at `height`) is the armed failpoint; nothing otherwise. */
export function failpoint(point: Failpoint, height: number): void {
  if (armed === null) return;
  if (fired || armed.point !== point || (armed.height !== undefined && armed.height !== height)) return;
  fired = true;
  process.stderr.write(`failpoint ${point} at height ${height}: SIGKILL\n`);
  if (point === "after-prevote" || point === "after-precommit") {
    setTimeout(() => process.kill(process.pid, "SIGKILL"), PUBLISH_GRACE_MS);
    return;
  }
  process.kill(process.pid, "SIGKILL");
}
