// Reads a V8 CPU profile (node --cpu-prof) and says where a process spent its time: self time per function (time
// on top of the stack) and per area of the node (BLS, secp256k1, keccak, trie/level, EVM, JSON-RPC, gossip...).
import { readFile } from "node:fs/promises";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileEntry {
  readonly function: string;
  readonly location: string;
  readonly area: string;
  readonly selfMs: number;
  /** Share of the busy time (idle excluded). */
  readonly selfPercent: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly top: readonly ProfileEntry[];
  readonly areas: readonly { readonly area: string; readonly selfMs: number; readonly selfPercent: number }[];
}

/** First match wins: the area of a function by its script URL (or V8's pseudo-functions by name). */
const AREAS: readonly [string, RegExp][] = [
  ["GC", /^\(garbage collector\)$/],
  ["BLS", /blst|bls/i],
  ["secp256k1", /secp256k1/],
  ["keccak", /sha3|keccak/i],
  ["RLP", /@ethereumjs\/rlp/],
  ["trie/level", /@ethereumjs\/mpt|classic-level|abstract-level|\/level\/|src\/storage\/|src\/light-client\/trie/],
  ["EVM", /@ethereumjs\/(evm|vm|statemanager|common|tx|util|block)|src\/execution\//],
  ["JSON-RPC", /src\/rpc\/|node:_http|node:http|\/ws\/lib\//],
  ["gossip/p2p", /libp2p|gossipsub|yamux|noise|multiaddr|uint8arraylist|\/it-|protons|\/p2p\//],
  ["mempool", /src\/mempool\//],
  ["consensus/node", /consensus\/|src\/node\/|src\/chain\//],
  ["logging", /pino|sonic-boom/],
  ["profiler (overhead)", /^node:inspector/],
  ["node internals", /^node:/],
];

export function areaOf(functionName: string, url: string): string {
  if (functionName === "(idle)") return "idle";
  if (functionName === "(program)") return "(program: native, outside JS)";
  for (const [area, re] of AREAS) if (re.test(url) || (url === "" && re.test(functionName))) return area;
  return "other";
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) return url.slice(nm + "node_modules/".length);
  const root = url.search(/\/(src|consensus|p2p|test)\//);
  return root >= 0 ? url.slice(root + 1) : url.replace(/^file:\/\//, "");
}

/** V8's pseudo-frames, which have no script and no caller worth naming. */
const PSEUDO = new Set(["(garbage collector)", "(program)", "(idle)", "(root)"]);

export function summarizeProfile(profile: CpuProfile, topN = 10): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parentOf.set(c, n.id);
  }
  // Builtins and native bindings (no script URL) are charged to the area of their nearest caller that has one.
  const callerUrl = (node: ProfileNode): string => {
    let id: number | undefined = node.id;
    for (let depth = 0; id !== undefined && depth < 64; depth++) {
      const n = byId.get(id);
      if (n === undefined) break;
      if (n.callFrame.url !== "") return n.callFrame.url;
      id = parentOf.get(id);
    }
    return "";
  };
  const self = new Map<string, { fn: string; location: string; area: string; us: number }>();
  let totalUs = 0;
  let idleUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] as number);
    const dt = profile.timeDeltas[i] ?? 0;
    if (node === undefined || dt <= 0) continue;
    totalUs += dt;
    const { functionName, url, lineNumber } = node.callFrame;
    const native = url === "" && !PSEUDO.has(functionName);
    const via = native ? callerUrl(node) : url;
    const area = areaOf(functionName, via);
    if (area === "idle") {
      idleUs += dt;
      continue;
    }
    // tsx compiles each .ts file on load, so V8's line numbers there do not match the source: the file only.
    const where = (u: string, line: number | null) =>
      u.endsWith(".ts") || line === null ? shortUrl(u) : `${shortUrl(u)}:${line + 1}`;
    const location = native
      ? via === ""
        ? "(native)"
        : `(native) from ${where(via, null)}`
      : url === ""
        ? ""
        : where(url, lineNumber);
    const key = `${functionName}@${location}`;
    const entry = self.get(key) ?? { fn: functionName === "" ? "(anonymous)" : functionName, location, area, us: 0 };
    entry.us += dt;
    self.set(key, entry);
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const entries = [...self.values()].sort((a, b) => b.us - a.us);
  const areas = new Map<string, number>();
  for (const e of entries) areas.set(e.area, (areas.get(e.area) ?? 0) + e.us);
  const pct = (us: number) => Math.round((1000 * us) / busyUs) / 10;
  return {
    totalMs: Math.round(totalUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    top: entries.slice(0, topN).map((e) => ({
      function: e.fn,
      location: e.location,
      area: e.area,
      selfMs: Math.round(e.us / 1000),
      selfPercent: pct(e.us),
    })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, selfMs: Math.round(us / 1000), selfPercent: pct(us) })),
  };
}

export async function summarizeProfileFile(path: string, topN = 10): Promise<ProfileSummary> {
  return summarizeProfile(JSON.parse(await readFile(path, "utf8")) as CpuProfile, topN);
}

export function renderProfile(title: string, s: ProfileSummary): string {
  const lines = [
    `${title}: ${(s.totalMs / 1000).toFixed(1)} s profiled, ${(((s.totalMs - s.idleMs) / Math.max(1, s.totalMs)) * 100).toFixed(0)}% busy`,
    "",
    "| # | function | where | area | self ms | % of busy |",
    "|---:|---|---|---|---:|---:|",
    ...s.top.map(
      (e, i) => `| ${i + 1} | \`${e.function}\` | ${e.location} | ${e.area} | ${e.selfMs} | ${e.selfPercent} |`,
    ),
    "",
    "| area | self ms | % of busy |",
    "|---|---:|---:|",
    ...s.areas.map((a) => `| ${a.area} | ${a.selfMs} | ${a.selfPercent} |`),
    "",
  ];
  return lines.join("\n");
}
