// Compiles staking-contracts/src/**/*.sol offline with solc-js (the npm `solc` package's bundled wasm), resolving
// `@openzeppelin/contracts/...` imports from node_modules, and writes staking-contracts/artifacts.ts: one
// `export const Name = { abi: [...] as const, bytecode: "0x..." } as const` per deployable contract, formatted by
// Biome. artifacts.ts is committed; test/staking/artifacts.test.ts rebuilds it in memory and fails when the committed
// file differs (stale sources, compiler or settings).
//
//   npm run build:contracts        (node bin/run.mjs staking-contracts/build.ts)
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { keccak256, toHex, utf8 } from "../consensus/bytes.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..");
export const SOURCE_DIR = join(HERE, "src");
export const ARTIFACTS_PATH = join(HERE, "artifacts.ts");
/** The contracts exported to artifacts.ts, in this order (BlsHarness is test-only). */
export const CONTRACT_NAMES = [
  "LumiaToken",
  "SequencerRegistry",
  "Staking",
  "Rewards",
  "Slashing",
  "BatchInbox",
  "OutputOracle",
  "Portal",
  "L2MessagePasser",
  "BridgedEth",
  "BlsHarness",
];
/** L2 predeploys: their runtime code goes into a genesis allocation, so artifacts.ts also exports it. */
export const RUNTIME_CODE_CONTRACTS = ["L2MessagePasser", "BridgedEth"];
export const SOLC_SETTINGS = {
  evmVersion: "prague",
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
} as const;
/** EIP-170: deployable runtime code. */
export const MAX_RUNTIME_BYTES = 24_576;
/** Largest source file read, so a stray file cannot make the build read without limit. */
const MAX_SOURCE_BYTES = 1_000_000;

const require = createRequire(import.meta.url);

export type BuildErrorCode = "compile_failed" | "missing_contract" | "too_large" | "import_not_found" | "format_failed";

export class BuildError extends Error {
  override readonly name = "BuildError";
  constructor(
    readonly code: BuildErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Artifact {
  readonly abi: readonly unknown[];
  readonly bytecode: `0x${string}`;
  readonly deployedBytecode: `0x${string}`;
  readonly runtimeBytes: number;
}

export interface BuildResult {
  readonly solcVersion: string;
  /** `inputsHash` of what was compiled. */
  readonly inputsHash: `0x${string}`;
  readonly contracts: Readonly<Record<string, Artifact>>;
}

interface Solc {
  version(): string;
  compile(input: string, callbacks: { import: (path: string) => { contents: string } | { error: string } }): string;
}

/** Source unit name ("src/Staking.sol", relative to staking-contracts/ with "/") -> content. */
export function readSources(dir: string = SOURCE_DIR): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".sol")) {
        const text = readFileSync(path, "utf8");
        if (text.length > MAX_SOURCE_BYTES) throw new BuildError("compile_failed", `${path} is over 1 MB`);
        out[relative(HERE, path).split(sep).join("/")] = text;
      }
    }
  };
  walk(dir);
  return out;
}

function resolveImport(path: string): { contents: string } | { error: string } {
  if (!path.startsWith("@openzeppelin/contracts/") || path.includes("..")) {
    return { error: `import ${path} is outside @openzeppelin/contracts and the sources` };
  }
  try {
    return { contents: readFileSync(require.resolve(path), "utf8") };
  } catch (error) {
    return { error: `import ${path} not found in node_modules: ${String(error)}` };
  }
}

function solcCompiler(): Solc {
  return require("solc") as Solc;
}

/**
 * keccak256 over everything the bytecode depends on: the compiler version, the settings, the OpenZeppelin version and
 * every source (name and content). artifacts.ts records it; a test recomputes it without compiling.
 */
export function inputsHash(sources: Record<string, string> = readSources()): `0x${string}` {
  const oz = JSON.parse(readFileSync(require.resolve("@openzeppelin/contracts/package.json"), "utf8")) as {
    version: string;
  };
  const names = Object.keys(sources).sort();
  const material = JSON.stringify({
    solc: solcCompiler().version(),
    settings: SOLC_SETTINGS,
    openzeppelin: oz.version,
    sources: names.map((name) => [name, sources[name]]),
  });
  return toHex(keccak256(utf8(material)));
}

/** Compiles every source with solc-js; throws BuildError on compiler errors or an oversize contract. */
export function compileContracts(sources: Record<string, string> = readSources()): BuildResult {
  const solc = solcCompiler();
  const input = {
    language: "Solidity",
    sources: Object.fromEntries(Object.entries(sources).map(([name, content]) => [name, { content }])),
    settings: SOLC_SETTINGS,
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveImport })) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts?: Record<
      string,
      Record<string, { abi: unknown[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>
    >;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) {
    throw new BuildError("compile_failed", errors.map((e) => e.formattedMessage).join("\n"));
  }
  const contracts: Record<string, Artifact> = {};
  for (const name of CONTRACT_NAMES) {
    const unit = Object.keys(output.contracts ?? {}).find((u) => output.contracts?.[u]?.[name] !== undefined);
    const compiled = unit === undefined ? undefined : output.contracts?.[unit]?.[name];
    if (compiled === undefined) throw new BuildError("missing_contract", `contract ${name} is not in the solc output`);
    const runtimeBytes = compiled.evm.deployedBytecode.object.length / 2;
    if (runtimeBytes > MAX_RUNTIME_BYTES) {
      throw new BuildError("too_large", `${name} runtime code is ${runtimeBytes} bytes, over EIP-170's 24,576`);
    }
    contracts[name] = {
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      runtimeBytes,
    };
  }
  return { solcVersion: solc.version(), inputsHash: inputsHash(sources), contracts };
}

/** artifacts.ts before formatting. */
export function renderArtifacts(result: BuildResult): string {
  const lines = [
    "// Generated by staking-contracts/build.ts (`npm run build:contracts`) from staking-contracts/src: do not edit.",
    "// test/staking/artifacts.test.ts fails when this file is stale.",
    `export const SOLC_VERSION = ${JSON.stringify(result.solcVersion)};`,
    `export const SOLC_SETTINGS = ${JSON.stringify(SOLC_SETTINGS)} as const;`,
    "/** keccak256 of the compiler version, settings, OpenZeppelin version and sources (build.ts inputsHash). */",
    `export const INPUTS_HASH = ${JSON.stringify(result.inputsHash)};`,
    "",
  ];
  for (const name of CONTRACT_NAMES) {
    const c = result.contracts[name];
    if (c === undefined) throw new BuildError("missing_contract", `contract ${name} missing from the build`);
    const runtime = RUNTIME_CODE_CONTRACTS.includes(name)
      ? `, deployedBytecode: ${JSON.stringify(c.deployedBytecode)}`
      : "";
    lines.push(
      `/** Runtime code: ${c.runtimeBytes} bytes. */`,
      `export const ${name} = { abi: ${JSON.stringify(c.abi)} as const, bytecode: ${JSON.stringify(c.bytecode)}${runtime} } as const;`,
      "",
    );
  }
  return lines.join("\n");
}

/** Formats TypeScript with the repository's Biome (as `npm run format` would), so the committed file passes lint. */
export function formatWithBiome(source: string, path: string = ARTIFACTS_PATH): string {
  const biome = join(ROOT, "node_modules", ".bin", "biome");
  const run = spawnSync(biome, ["format", `--stdin-file-path=${relative(ROOT, path)}`], {
    cwd: ROOT,
    input: source,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error !== undefined || run.status !== 0) {
    throw new BuildError("format_failed", `biome format failed: ${run.stderr || String(run.error)}`, {
      cause: run.error,
    });
  }
  return run.stdout;
}

/** The content artifacts.ts must have for the current sources, compiler and settings. */
export function buildArtifactsSource(): string {
  return formatWithBiome(renderArtifacts(compileContracts()));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now();
  const result = compileContracts();
  writeFileSync(ARTIFACTS_PATH, formatWithBiome(renderArtifacts(result)));
  for (const name of CONTRACT_NAMES) {
    process.stdout.write(`${name}: ${result.contracts[name]?.runtimeBytes ?? 0} bytes of runtime code\n`);
  }
  process.stdout.write(
    `wrote ${relative(ROOT, ARTIFACTS_PATH)} with solc ${result.solcVersion} in ${Date.now() - started} ms\n`,
  );
}
