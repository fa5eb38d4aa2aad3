#!/usr/bin/env node
// Runs a TypeScript entry file of this package under tsx, with the Promise.withResolvers polyfill loaded first.
// Usage: node bin/run.mjs path/to/file.ts [args...]
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { register } from "tsx/esm/api";

register();
await import("../src/polyfill.ts");
const [entry, ...rest] = process.argv.slice(2);
if (!entry) {
  process.stderr.write("usage: node bin/run.mjs <file.ts> [args...]\n");
  process.exit(2);
}
process.argv = [process.argv[0] ?? "node", resolve(entry), ...rest];
await import(pathToFileURL(resolve(entry)).href);
