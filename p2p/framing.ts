// Request/response framing. One request and one response per stream, each a single length-prefixed frame
// (lpStream: unsigned LEB128 varint length, then that many bytes). The request frame body is the caller's bytes
// unchanged; the response frame body starts with one status byte:
//   0x00 ok        body = response bytes
//   0x01 rejected  body = UTF-8 reason code (the handler judged the request invalid; the requester was scored down)
//   0x02 refused   body = UTF-8 reason code (not admitted, rate limited, server busy: nothing wrong with the bytes)
//   0x03 failed    body = UTF-8 reason code (the server could not produce an answer: handler threw, stopping)
import { concatBytes, utf8 } from "../consensus/bytes.ts";

export const STATUS_OK = 0x00;
export const STATUS_REJECTED = 0x01;
export const STATUS_REFUSED = 0x02;
export const STATUS_FAILED = 0x03;

/** Reason codes are short identifiers; longer ones are truncated so an error frame always fits the client's cap. */
export const MAX_CODE_BYTES = 64;

export type ResponseFrame =
  | { readonly kind: "ok"; readonly response: Uint8Array }
  | { readonly kind: "rejected" | "refused" | "failed"; readonly code: string };

export function encodeResponse(frame: ResponseFrame): Uint8Array {
  switch (frame.kind) {
    case "ok":
      return concatBytes(Uint8Array.of(STATUS_OK), frame.response);
    case "rejected":
      return concatBytes(Uint8Array.of(STATUS_REJECTED), codeBytes(frame.code));
    case "refused":
      return concatBytes(Uint8Array.of(STATUS_REFUSED), codeBytes(frame.code));
    case "failed":
      return concatBytes(Uint8Array.of(STATUS_FAILED), codeBytes(frame.code));
  }
}

/** Parses a response frame body; undefined when it is malformed (empty, unknown status, oversized code). */
export function decodeResponse(body: Uint8Array): ResponseFrame | undefined {
  const status = body[0];
  const rest = body.subarray(1);
  switch (status) {
    case STATUS_OK:
      return { kind: "ok", response: rest };
    case STATUS_REJECTED:
    case STATUS_REFUSED:
    case STATUS_FAILED: {
      if (rest.length > MAX_CODE_BYTES) return undefined;
      const code = sanitizeCode(new TextDecoder("utf-8", { fatal: false }).decode(rest));
      const kind = status === STATUS_REJECTED ? "rejected" : status === STATUS_REFUSED ? "refused" : "failed";
      return { kind, code };
    }
    default:
      return undefined;
  }
}

/** Reason codes become metric labels and log fields: keep them short and printable whoever produced them. */
export function sanitizeCode(code: string): string {
  const clean = code.replace(/[^A-Za-z0-9_.:-]/g, "_").slice(0, MAX_CODE_BYTES);
  return clean.length === 0 ? "unspecified" : clean;
}

function codeBytes(code: string): Uint8Array {
  return utf8(sanitizeCode(code));
}
