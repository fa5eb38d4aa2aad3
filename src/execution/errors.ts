// Operational failures of the execution core, and the one peer-caused failure that must abort a caller's flow: a
// block under validation that contains an inapplicable transaction (the block is invalid; the caller does not prevote).
export type ExecutionErrorCode =
  /** "validate" mode: a transaction cannot be applied (nonce, balance, block gas, fee below the base fee...). */
  | "invalid_transaction"
  /** The parent state root (or a node under it) is not in the database. */
  | "missing_state"
  /** The global root does not match the VM roots given with it. */
  | "root_mismatch"
  /** Reading the node database failed. */
  | "storage"
  /** Arguments out of range (a caller's bug or a bad configuration). */
  | "invalid_argument"
  /** A bug inside execution (e.g. the SVM precompile threw): the execution stops rather than go on half-journaled. */
  | "internal";

export class ExecutionError extends Error {
  override readonly name = "ExecutionError";
  readonly code: ExecutionErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: ExecutionErrorCode,
    message: string,
    context: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.context = context;
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The tries (@ethereumjs/mpt) say a node under a root is not in the database. */
export function isMissingNode(error: unknown): boolean {
  const message = messageOf(error);
  return message.includes("Missing node") || message.includes("does not contain state root");
}

/**
 * Runs `run` on the state under `root` (`what` names it in the message), turning the trie's "node not found" into a
 * typed missing_state error; passes everything else through.
 */
export async function withState<T>(root: string, run: () => Promise<T>, what = "state"): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ExecutionError) throw error;
    if (isMissingNode(error)) {
      throw new ExecutionError(
        "missing_state",
        `${what} under root ${root} is not in the database`,
        { root },
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}
