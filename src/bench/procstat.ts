// CPU time and memory of the processes under test, from Linux /proc (no dependency, no sampling thread):
// /proc/<pid>/stat fields 14-15 (utime, stime, in clock ticks) and /proc/<pid>/status VmRSS / VmHWM (kB).
// Node processes are found by their command line: `dcn start --config FILE` (how `dcn devnet` and the e2e cluster
// start them), matched to a JSON-RPC endpoint by the rpc.port in FILE. Elsewhere than Linux every figure is null.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { isAbsolute, join } from "node:path";

/** Clock ticks per second of utime/stime (USER_HZ); 100 on every Linux we run on, asked once. */
const CLOCK_TICKS_PER_S = (() => {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();
/** Config files read while looking for nodes: a node config is a few kB. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** CPU time (user + system) the process has used so far, in ms; null when it is gone or /proc is missing. */
export function cpuTimeMs(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces: fields are counted after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_S;
}

export interface MemoryKb {
  /** Resident set size now. */
  readonly rssKb: number;
  /** Peak resident set size over the process's life. */
  readonly peakRssKb: number;
}

export function memoryKb(pid: number): MemoryKb | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const field = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    return m === null ? null : Number(m[1]);
  };
  const rss = field("VmRSS");
  const hwm = field("VmHWM");
  return rss === null ? null : { rssKb: rss, peakRssKb: hwm ?? rss };
}

export interface NodeProcess {
  readonly pid: number;
  readonly configPath: string;
  readonly rpcPort: number | null;
}

/** Every running `dcn start --config FILE` process with the rpc.port of its config. */
export function findNodeProcesses(): NodeProcess[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: NodeProcess[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const at = args.indexOf("--config");
    if (at < 0 || !args.includes("start") || !args.some((a) => a.endsWith("dcn.mjs") || a.endsWith("main.ts")))
      continue;
    const given = args[at + 1];
    if (given === undefined) continue;
    let configPath = given;
    try {
      if (!isAbsolute(given)) configPath = join(readlinkSync(`/proc/${pid}/cwd`), given);
    } catch {
      continue;
    }
    out.push({ pid, configPath, rpcPort: rpcPortOf(configPath) });
  }
  return out;
}

function rpcPortOf(configPath: string): number | null {
  try {
    const text = readFileSync(configPath, "utf8");
    if (text.length > MAX_CONFIG_BYTES) return null;
    const config = JSON.parse(text) as { rpc?: { port?: unknown } };
    const port = config.rpc?.port;
    // The config default (docs/config-reference.md) when the file names none.
    return typeof port === "number" ? port : 8545;
  } catch {
    return null;
  }
}

/** The pid serving each loopback JSON-RPC URL (null when none is found, e.g. a remote node). */
export function nodePidsForRpc(urls: readonly string[]): (number | null)[] {
  const nodes = findNodeProcesses();
  return urls.map((url) => {
    const u = new URL(url);
    if (!["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) return null;
    const port = Number(u.port === "" ? 80 : u.port);
    const matches = nodes.filter((n) => n.rpcPort === port);
    return matches.length === 1 ? (matches[0]?.pid ?? null) : null;
  });
}
