// Turns zod issues into operator-facing ones: where (a JSON path like `p2p.listen[0]`), what is wrong (quoting the
// value found) and how to fix it. Shared by the node config and the genesis file.
import { readFile, stat } from "node:fs/promises";
import { z } from "zod";

export interface Issue {
  /** Dotted path with array indexes, e.g. `p2p.listen[0]`; empty for the document itself. */
  readonly path: string;
  readonly message: string;
  readonly fix: string;
}

export type FileErrorCode = "not_found" | "unreadable" | "too_large" | "bad_json" | "invalid";

/** A JSON file the node reads (config, genesis) is missing, unreadable or invalid. One line per issue. */
export class FileIssuesError extends Error {
  readonly code: FileErrorCode;
  /** The file's name as shown in the message (or a label for in-memory input). */
  readonly file: string;
  readonly issues: readonly Issue[];

  constructor(code: FileErrorCode, file: string, issues: readonly Issue[], options?: { cause?: unknown }) {
    super(formatIssues(file, issues), options);
    this.code = code;
    this.file = file;
    this.issues = issues;
  }
}

/** `file: path: message. Fix: fix`, one line per issue. */
export function formatIssues(file: string, issues: readonly Issue[]): string {
  return issues
    .map((i) => `${file}: ${i.path === "" ? "(top level)" : i.path}: ${i.message}. Fix: ${i.fix}`)
    .join("\n");
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** JSON-ish rendering of a found value for messages, cut to a readable length. */
export function show(value: unknown): string {
  let text: string;
  if (value === undefined) text = "nothing";
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return Number.isInteger(value) ? "an integer" : "a number";
    case "boolean":
      return "a boolean";
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const part of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

/** The schema that validates the value at `path`, looking through defaults, optionals, objects and arrays. */
export function schemaAt(root: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let node: z.ZodType | undefined = root;
  for (const part of path) {
    node = childSchema(node, part);
    if (node === undefined) return undefined;
  }
  return unwrap(node);
}

function unwrap(schema: z.ZodType): z.ZodType {
  let node = schema;
  for (;;) {
    if (node instanceof z.ZodDefault || node instanceof z.ZodPrefault || node instanceof z.ZodOptional) {
      node = node.def.innerType as z.ZodType;
    } else return node;
  }
}

/** The `examples[0]` given to a field with `.meta({ examples })`, at any wrapper level. */
function exampleAt(root: z.ZodType, path: readonly PropertyKey[]): unknown {
  let node: z.ZodType | undefined = root;
  for (const part of path) {
    node = childSchema(node, part);
    if (node === undefined) return undefined;
  }
  for (let s: z.ZodType | undefined = node; s !== undefined; s = innerOf(s)) {
    const examples = z.globalRegistry.get(s)?.examples;
    if (Array.isArray(examples) && examples.length > 0) return examples[0];
  }
  return undefined;
}

function innerOf(schema: z.ZodType): z.ZodType | undefined {
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault || schema instanceof z.ZodOptional) {
    return schema.def.innerType as z.ZodType;
  }
  return undefined;
}

function childSchema(schema: z.ZodType, part: PropertyKey): z.ZodType | undefined {
  const node = unwrap(schema);
  if (node instanceof z.ZodObject && typeof part === "string") {
    const shape = node.shape as Record<string, z.ZodType>;
    return Object.hasOwn(shape, part) ? shape[part] : undefined;
  }
  if (node instanceof z.ZodArray && typeof part === "number") return node.element as z.ZodType;
  return undefined;
}

/** Levenshtein distance, case-insensitive (a key typed with the wrong case is the most common typo). */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let previous = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const current = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      current.push(
        Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + cost),
      );
    }
    previous = current;
  }
  return previous[t.length] as number;
}

/** The candidate closest to `word` if it is close enough to be a plausible typo, else null. */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const tolerance = Math.max(2, Math.floor((best?.length ?? 0) / 3));
  if (best !== null && bestDistance <= tolerance) return best;
  // A shortened or extended name ("power" for "votingPower", "listenAddrs" for "listen").
  const w = word.toLowerCase();
  const partial = candidates.filter((c) => {
    const k = c.toLowerCase();
    return w.length >= 3 && (k.includes(w) || w.includes(k));
  });
  return partial.length === 1 ? (partial[0] as string) : null;
}

function numberBounds(schema: z.ZodType | undefined): { min: number | null; max: number | null } {
  if (schema instanceof z.ZodNumber) return { min: schema.minValue, max: schema.maxValue };
  return { min: null, max: null };
}

function exampleText(example: unknown): string {
  return typeof example === "string" ? JSON.stringify(example) : show(example);
}

/** Operator-facing issues for a failed zod parse of `input` against `schema`. */
export function issuesFromZod(schema: z.ZodType, input: unknown, error: z.ZodError): Issue[] {
  const out: Issue[] = [];
  for (const issue of error.issues) {
    const path = issue.path;
    const where = formatPath(path);
    const found = valueAt(input, path);
    switch (issue.code) {
      case "unrecognized_keys": {
        const parent = schemaAt(schema, path);
        const known = parent instanceof z.ZodObject ? Object.keys(parent.shape as object) : [];
        for (const key of issue.keys) {
          const suggestion = closest(key, known);
          out.push({
            path: formatPath([...path, key]),
            message: `unknown key ${JSON.stringify(key)}`,
            fix:
              suggestion === null
                ? `remove it; the keys allowed here are ${known.join(", ")}`
                : `did you mean ${JSON.stringify(suggestion)}? (allowed here: ${known.join(", ")})`,
          });
        }
        break;
      }
      case "invalid_type": {
        const example = exampleAt(schema, path);
        const expected =
          issue.expected === "int" ? "an integer" : `${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}`;
        if (found === undefined) {
          const last = path[path.length - 1];
          out.push({
            path: where,
            message: "is required but missing",
            fix:
              example === undefined
                ? `add ${JSON.stringify(String(last ?? ""))} (${expected})`
                : `add ${JSON.stringify(String(last ?? ""))}: ${exampleText(example)}`,
          });
        } else if (issue.expected === "number" || issue.expected === "int") {
          const numeric = typeof found === "string" && found.trim() !== "" && Number.isFinite(Number(found));
          out.push({
            path: where,
            message: `${show(found)} is ${jsonType(found)}, expected ${expected}`,
            fix: numeric
              ? `write the number without quotes: ${Number(found)}`
              : `use ${expected}${example === undefined ? "" : ` such as ${exampleText(example)}`}`,
          });
        } else {
          out.push({
            path: where,
            message:
              found === null
                ? `is null, expected ${expected}`
                : `${show(found)} is ${jsonType(found)}, expected ${expected}`,
            fix:
              issue.expected === "boolean"
                ? "use true or false, without quotes"
                : `use ${expected}${example === undefined ? "" : ` such as ${exampleText(example)}`}`,
          });
        }
        break;
      }
      case "invalid_value": {
        const allowed = issue.values.map((v) => JSON.stringify(v));
        const suggestion =
          typeof found === "string"
            ? closest(
                found,
                issue.values.filter((v): v is string => typeof v === "string"),
              )
            : null;
        out.push({
          path: where,
          message: `${show(found)} is not one of ${allowed.join(", ")}`,
          fix:
            suggestion === null
              ? `use one of ${allowed.join(", ")}`
              : `did you mean ${JSON.stringify(suggestion)}? (allowed: ${allowed.join(", ")})`,
        });
        break;
      }
      case "too_small":
      case "too_big": {
        if (issue.origin === "number" || issue.origin === "int") {
          const { min, max } = numberBounds(schemaAt(schema, path));
          const range = `[${min ?? "-inf"}, ${max ?? "inf"}]`;
          out.push({
            path: where,
            message: `${show(found)} is ${issue.code === "too_small" ? "below the minimum" : "above the maximum"} ${String(issue.code === "too_small" ? (min ?? issue.minimum) : (max ?? issue.maximum))}`,
            fix: `use a number in ${range}`,
          });
        } else if (issue.origin === "array") {
          const count = Array.isArray(found) ? found.length : 0;
          out.push({
            path: where,
            message:
              issue.code === "too_big"
                ? `${count} entries, more than the maximum ${String(issue.maximum)}`
                : `${count} entries, fewer than the minimum ${String(issue.minimum)}`,
            fix: issue.code === "too_big" ? "remove entries" : "add entries",
          });
        } else {
          const length = typeof found === "string" ? found.length : 0;
          out.push({
            path: where,
            message:
              issue.code === "too_big"
                ? `${length} characters, more than the maximum ${String(issue.maximum)}`
                : `${length} characters, fewer than the minimum ${String(issue.minimum)}`,
            fix: issue.code === "too_big" ? "shorten it" : "give a non-empty value",
          });
        }
        break;
      }
      case "custom": {
        const fix = (issue.params as { fix?: unknown } | undefined)?.fix;
        out.push({ path: where, message: issue.message, fix: typeof fix === "string" ? fix : "see the message" });
        break;
      }
      default:
        out.push({ path: where, message: `${show(found)}: ${issue.message}`, fix: "correct the value" });
    }
  }
  return out;
}

/** Adds a custom issue that carries its own fix text (read back by `issuesFromZod`). */
export function addIssue(ctx: z.RefinementCtx, message: string, fix: string, path?: PropertyKey[]): void {
  ctx.addIssue(
    path === undefined
      ? { code: "custom", message, params: { fix } }
      : { code: "custom", message, params: { fix }, path },
  );
}

/**
 * Reads a JSON file of at most `maxBytes` (config, genesis). Every failure becomes `makeError(code, issue, cause)`
 * with an issue at the top level that says what to do; `label` names the file's role ("node config").
 */
export async function readJsonFile(
  path: string,
  maxBytes: number,
  label: string,
  makeError: (code: FileErrorCode, issue: Issue, cause: unknown) => Error,
): Promise<unknown> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) {
      throw makeError(
        "unreadable",
        { path: "", message: `${path} is not a regular file`, fix: `point to the ${label}` },
        null,
      );
    }
    size = info.size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      const issue = { path: "", message: `${path} does not exist`, fix: `create the ${label} or correct the path` };
      throw makeError("not_found", issue, error);
    }
    throw error instanceof FileIssuesError ? error : unreadable(path, error, makeError);
  }
  if (size > maxBytes) {
    const issue = {
      path: "",
      message: `${size} bytes, more than the ${maxBytes} allowed`,
      fix: `check that this is the ${label}`,
    };
    throw makeError("too_large", issue, null);
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw unreadable(path, error, makeError);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const issue = {
      path: "",
      message: `not valid JSON: ${(error as Error).message}`,
      fix: "JSON allows no comments or trailing commas; check the quotes and brackets near that position",
    };
    throw makeError("bad_json", issue, error);
  }
}

function unreadable(
  path: string,
  error: unknown,
  makeError: (code: FileErrorCode, issue: Issue, cause: unknown) => Error,
): Error {
  const issue = {
    path: "",
    message: `cannot read ${path}: ${(error as Error).message}`,
    fix: "check the file's permissions",
  };
  return makeError("unreadable", issue, error);
}
