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
  | "invalid_argument";

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
