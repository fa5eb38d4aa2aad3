// anvil (Foundry's local Ethereum node) as a child process on 127.0.0.1: the embedded L1 of `dcn devnet` and the
// reference EVM of the tests. One way to find the binary and one way to start it, shared by both.
// The binary comes from the optional npm package @foundry-rs/anvil-linux-amd64 (Linux x64 only); elsewhere an
// `anvil` on PATH (Foundry's installer) is used. Nothing here reaches the network: anvil runs offline.
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { delimiter, dirname, join } from "node:path";

export const ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64";
/** Chain id of the embedded devnet L1 (anvil's own default). */
export const DEVNET_L1_CHAIN_ID = 31_337n;
export const DEFAULT_ANVIL_START_TIMEOUT_MS = 15_000;
/** Kept of anvil's stderr for the error message when it dies while starting. */
const STDERR_TAIL_MAX_BYTES = 4096;

export type AnvilErrorCode = "not_found" | "port_in_use" | "start_failed";

/** anvil is not installed, its port is taken, or it did not come up. The message names the way out. */
export class AnvilError extends Error {
  override readonly name = "AnvilError";
  constructor(
    readonly code: AnvilErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Path of the anvil binary: the npm package first (a pinned version), then `anvil` on PATH; null when neither exists.
 * `env` and `resolvePackage` are parameters so that tests can see the fallback without uninstalling anything.
 */
export function findAnvil(
  env: Readonly<Record<string, string | undefined>> = process.env,
  resolvePackage: (id: string) => string = createRequire(import.meta.url).resolve,
): string | null {
  try {
    const bin = join(dirname(resolvePackage(`${ANVIL_PACKAGE}/package.json`)), "bin", "anvil");
    if (isExecutable(bin)) return bin;
  } catch {
    // not installed (an optional dependency: absent off Linux x64, or with --omit=optional)
  }
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const bin = join(dir, "anvil");
    if (isExecutable(bin)) return bin;
  }
  return null;
}

/** findAnvil(), or an AnvilError saying how to get one (or how to do without). */
export function requireAnvil(hint: string, find: () => string | null = findAnvil): string {
  const bin = find();
  if (bin === null) {
    throw new AnvilError(
      "not_found",
      `anvil is not installed: the optional package ${ANVIL_PACKAGE} is missing (it exists for Linux x64 only) and no ` +
        `anvil is on PATH. ${hint}`,
    );
  }
  return bin;
}

/** A TCP port on 127.0.0.1 free at the time of the call. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True when nothing listens on host:port (checked by binding it for a moment). */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export interface AnvilOptions {
  /** 0 = a free port picked here. */
  readonly port: number;
  readonly chainId: bigint;
  /** anvil's `--state`: loaded at start when the file exists, written on exit (and every `stateIntervalS`). */
  readonly statePath?: string;
  readonly stateIntervalS?: number;
  /** Interval mining; undefined = a block per transaction (anvil's automine). */
  readonly blockTimeS?: number;
  /** More anvil flags (e.g. --no-mining, --base-fee). */
  readonly args?: readonly string[];
  /** File descriptor that receives anvil's stdout and stderr (e.g. a log file); default: discarded. */
  readonly logFd?: number;
  /** Own process group, so a Ctrl-C at the terminal reaches only the parent, which stops anvil when it chooses. */
  readonly detached?: boolean;
  readonly startTimeoutMs?: number;
  /** What the caller's user can do instead, added to the not_found and port_in_use messages. */
  readonly hints?: { readonly notFound?: string; readonly portInUse?: string };
}

export interface AnvilProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly chainId: bigint;
  readonly child: ChildProcess;
  /** SIGTERM (anvil then writes its state), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** One JSON-RPC call over HTTP; throws on transport errors and on an error answer. */
export async function jsonRpc<T>(url: string, method: string, params: unknown[], timeoutMs: number): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await res.json()) as { result?: T; error?: { code: number; message: string } };
  if (body.error !== undefined) throw new Error(`${method}: ${body.error.message} (${body.error.code})`);
  return body.result as T;
}

/** Starts anvil on 127.0.0.1 and waits until it answers eth_chainId with the chain id asked for. */
export async function startAnvil(opts: AnvilOptions): Promise<AnvilProcess> {
  const bin = requireAnvil(opts.hints?.notFound ?? "");
  const host = "127.0.0.1";
  const port = opts.port === 0 ? await freePort() : opts.port;
  // Without this check a process already on the port (say, an anvil left from an earlier run) would answer the
  // readiness probe in place of ours.
  if (!(await portIsFree(host, port))) {
    throw new AnvilError(
      "port_in_use",
      `${host}:${port} is in use, so anvil cannot listen there. ${opts.hints?.portInUse ?? ""}`,
    );
  }
  const args = ["--host", host, "--port", String(port), "--chain-id", opts.chainId.toString()];
  if (opts.statePath !== undefined) args.push("--state", opts.statePath);
  if (opts.stateIntervalS !== undefined) args.push("--state-interval", String(opts.stateIntervalS));
  if (opts.blockTimeS !== undefined) args.push("--block-time", String(opts.blockTimeS));
  args.push(...(opts.args ?? []));
  const out = opts.logFd ?? "ignore";
  const child = spawn(bin, args, { stdio: ["ignore", out, "pipe"], detached: opts.detached === true });
  let stderrTail = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-STDERR_TAIL_MAX_BYTES);
  });
  const spawnFailure: { error: Error | null } = { error: null };
  child.once("error", (err) => {
    spawnFailure.error = err;
  });
  const url = `http://${host}:${port}`;
  const pid = child.pid;
  const stop = (graceMs = 10_000) => stopProcess(child, graceMs);
  const timeoutMs = opts.startTimeoutMs ?? DEFAULT_ANVIL_START_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const spawnError = spawnFailure.error;
    if (spawnError !== null || child.exitCode !== null || child.signalCode !== null || pid === undefined) {
      await stop(0);
      const why = spawnError ?? `exit ${child.exitCode ?? child.signalCode}`;
      throw new AnvilError("start_failed", `anvil (${bin}) failed to start: ${String(why)}\n${stderrTail.trim()}`, {
        cause: spawnError ?? undefined,
      });
    }
    try {
      const id = BigInt(await jsonRpc<string>(url, "eth_chainId", [], 1_000));
      if (id !== opts.chainId) {
        await stop(0);
        throw new AnvilError(
          "start_failed",
          `anvil on ${url} reports chain id ${id}, not ${opts.chainId} (its --state file holds another chain?)`,
        );
      }
      break;
    } catch (error) {
      if (error instanceof AnvilError) throw error;
      if (Date.now() > deadline) {
        await stop(0);
        throw new AnvilError("start_failed", `anvil did not answer on ${url} within ${timeoutMs} ms`, {
          cause: error,
        });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Drained from now on so that a chatty anvil never blocks on a full pipe.
  child.stderr?.resume();
  return { url, port, pid, chainId: opts.chainId, child, stop };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stopProcess(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill(graceMs === 0 ? "SIGKILL" : "SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Stops an anvil left running by an earlier run that died without cleaning up (SIGKILL of its parent), recognised by
 * its pid file and its command line naming `marker` (the state file). Returns the pid it stopped, or null.
 */
export async function stopLeftoverAnvil(pidFile: string, marker: string): Promise<number | null> {
  if (!existsSync(pidFile)) return null;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) return null;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return null; // gone (or no /proc: nothing to recognise it by, so leave it alone)
  }
  if (!cmdline.includes("anvil") || !cmdline.includes(marker)) return null;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return null;
  }
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return pid;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // exited meanwhile
  }
  return pid;
}
