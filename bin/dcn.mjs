#!/usr/bin/env node
// The `dcn` command: loads the TypeScript CLI under tsx, with the Promise.withResolvers polyfill loaded first.
import { register } from "tsx/esm/api";

register();
await import("../src/polyfill.ts");
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
