// Method table plumbing: positional parameters validated by zod schemas before a handler runs, with messages that name
// the argument and what was expected. Handlers return an Outcome; a throw (backend failure or bug) becomes -32603.
import type { z } from "zod";
import { ErrorCode, failure, invalidParams, type Outcome } from "./errors.ts";

export interface Param<T> {
  readonly name: string;
  readonly schema: z.ZodType<T, unknown>;
  readonly required: boolean;
}

export function required<T>(name: string, schema: z.ZodType<T, unknown>): Param<T> {
  return { name, schema, required: true };
}

/** Optional parameter: absent or JSON null gives undefined. */
export function optional<T>(name: string, schema: z.ZodType<T, unknown>): Param<T | undefined> {
  return { name, schema, required: false } as Param<T | undefined>;
}

type Args<P extends readonly Param<unknown>[]> = { -readonly [K in keyof P]: P[K] extends Param<infer T> ? T : never };

export interface MethodDef {
  readonly params: readonly Param<unknown>[];
  run(args: readonly unknown[]): Promise<Outcome>;
}

export function method<const P extends readonly Param<unknown>[]>(
  params: P,
  run: (...args: Args<P>) => Promise<Outcome> | Outcome,
): MethodDef {
  return { params, run: async (args) => run(...(args as Args<P>)) };
}

export type Validated = { readonly ok: true; readonly args: readonly unknown[] } | (Outcome & { ok: false });

export function validateParams(def: MethodDef, params: unknown): Validated {
  if (params !== undefined && !Array.isArray(params)) {
    return invalidParams("invalid params: expected an array of positional arguments");
  }
  const given: readonly unknown[] = params ?? [];
  if (given.length > def.params.length) {
    return invalidParams(`too many arguments, want at most ${def.params.length}, got ${given.length}`);
  }
  const args: unknown[] = [];
  for (const [index, param] of def.params.entries()) {
    const value = given[index];
    if (value === undefined || (value === null && !param.required)) {
      if (param.required) return invalidParams(`missing value for required argument ${index} (${param.name})`);
      args.push(undefined);
      continue;
    }
    const parsed = param.schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue === undefined || issue.path.length === 0 ? "" : `.${issue.path.map(String).join(".")}`;
      return invalidParams(
        `invalid argument ${index} (${param.name}${where}): ${issue?.message ?? "does not match the expected type"}`,
      );
    }
    args.push(parsed.data);
  }
  return { ok: true, args };
}

export function methodNotFound(name: string): Outcome & { ok: false } {
  return failure(ErrorCode.methodNotFound, `the method ${name} does not exist/is not available`);
}
