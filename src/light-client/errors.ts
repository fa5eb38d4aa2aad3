// Every refusal of the light client is one error type with a code saying which check failed and a message saying
// what the node (or the chain it serves) got wrong, expected against received.

export type LightClientErrorCode =
  /** The certificate does not verify against the set trusted for its height: signature, signers, power, shape. */
  | "bad_certificate"
  /** A header names a validator set the client has no chain of certificates to, or a set change is not committed. */
  | "unknown_validator_set"
  /** The members a node serves for a validator set do not hash to its id. */
  | "bad_validator_set"
  /** The header does not hash to the certified block, or its fields contradict the answer or each other. */
  | "header_mismatch"
  /** A Merkle proof does not lead to the committed root, or proves something other than what the node claims. */
  | "bad_proof"
  /** The node serves another chain: chain id, genesis or genesis validator set differ from the anchor. */
  | "wrong_chain"
  /** The node could not be reached or answered with a JSON-RPC error. */
  | "rpc_error"
  /** The node answered with something that is not the documented shape. */
  | "bad_response"
  /** The node has no such block, transaction or certificate. */
  | "not_found";

export class LightClientError extends Error {
  override readonly name = "LightClientError";
  readonly code: LightClientErrorCode;
  constructor(code: LightClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
