// `dcn status`: a table of the validators of a subnet: voting power and share, committed height, round, proposer of
// the node's head block, peers, lag behind the highest head, and whether each signed the last certificate.
// Sources: the nodes of a devnet (`--devnet DIR|devnet.json`, default .devnet), status endpoints (`--url`), or one
// node's JSON-RPC (`--rpc URL`: lumia_status + lumia_getValidatorSet; only that node's row has height and peers).
// Each node's head block (eth_getBlockByNumber) and certificate (lumia_getCertificate) come from its JSON-RPC; the
// validator set from lumia_getValidatorSet of the node with the highest head. `--json` prints the same as JSON.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";

export interface StatusOptions {
  readonly urls: readonly string[];
  readonly devnet: string | undefined;
  readonly rpc?: string | undefined;
  readonly json?: boolean;
}

const RPC_TIMEOUT_MS = 2_000;
/** A devnet.json larger than this is not one `dcn devnet` wrote. */
const DEVNET_JSON_MAX_BYTES = 1024 * 1024;
const MAX_TARGETS = 256;

/** A node's /status (NodeStatus) as far as the CLI reads it. */
export interface NodeStatusJson {
  readonly chainId?: string;
  readonly role: string;
  readonly address?: string | null;
  readonly height: number;
  readonly round: number;
  readonly step?: string;
  readonly headHeight: number;
  readonly headHash: string | null;
  readonly peers: readonly string[];
  readonly votingNow: boolean;
  readonly lastCommitAgoMs: number | null;
  /** Doppelganger protection's pause (absent from nodes older than it). */
  readonly signingPausedForMs?: number | null;
  /** This node's clock against the other validators' (absent from nodes older than it). */
  readonly clockOffsetMs?: number | null;
  /** consensus.haltHeight (absent from nodes older than it). */
  readonly haltHeight?: number | null;
  readonly rpc?: string | null;
  readonly l1?: { readonly configured: boolean; readonly connected: boolean; readonly headBlock: number | null };
}

/** GET <metricsUrl>/status; null when the node does not answer. */
export async function fetchStatus(metricsUrl: string, timeoutMs = 2_000): Promise<NodeStatusJson | null> {
  try {
    const res = await fetch(`${metricsUrl}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    return (await res.json()) as NodeStatusJson;
  } catch {
    return null;
  }
}

interface Target {
  readonly name: string;
  readonly metrics: string | null;
  readonly rpc: string | null;
}

interface NodeView {
  readonly target: Target;
  readonly status: NodeStatusJson | null;
  /** Proposer (consensus address) of the node's head block. */
  readonly lastProposer: string | null;
  readonly certificate: { readonly validatorSetId: string; readonly signers: readonly number[] } | null;
}

export interface StatusRow {
  readonly name: string;
  readonly address: string | null;
  readonly role: string;
  readonly votingPower: string | null;
  readonly sharePercent: number | null;
  readonly height: number | null;
  readonly round: number | null;
  readonly lastProposer: string | null;
  readonly peers: number | null;
  readonly lag: number | null;
  /** In the signer bitmap of the last certificate of the highest node; null without a certificate. */
  readonly signedLast: boolean | null;
  /** The node's clock against the other validators' in ms (> 0 ahead); null when unknown. */
  readonly clockOffsetMs: number | null;
  /** How long the validator still signs nothing (doppelganger protection); null when it signs. */
  readonly signingPausedForMs: number | null;
  /** The height the node stops at (consensus.haltHeight); null = none. */
  readonly haltHeight: number | null;
  /** "ok", "unreachable", or "not queried" (a validator no source covers). */
  readonly state: "ok" | "unreachable" | "not queried";
  readonly source: string | null;
}

export interface StatusReport {
  readonly chainId: string | null;
  readonly validatorSet: { readonly id: string; readonly totalVotingPower: string; readonly size: number } | null;
  readonly highestHead: number | null;
  readonly lastProposer: string | null;
  readonly rows: readonly StatusRow[];
}

async function rpcCall<T>(url: string, method: string, params: unknown[]): Promise<T | null> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      signal: AbortSignal.timeout(RPC_TIMEOUT_MS),
    });
    if (!res.ok) return null;
    const body = (await res.json()) as { result?: T };
    return body.result ?? null;
  } catch {
    return null;
  }
}

/** A JSON-RPC quantity ("0x1f") or decimal string as a bigint; null for anything else. */
function quantity(value: unknown): bigint | null {
  if (typeof value !== "string" || !/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(value)) return null;
  return BigInt(value);
}

async function readTargets(opts: StatusOptions): Promise<{ targets: Target[]; names: Map<string, string> } | string> {
  const names = new Map<string, string>();
  if (opts.rpc !== undefined) return { targets: [{ name: opts.rpc, metrics: null, rpc: opts.rpc }], names };
  if (opts.urls.length > 0) {
    return { targets: opts.urls.slice(0, MAX_TARGETS).map((url) => ({ name: url, metrics: url, rpc: null })), names };
  }
  let path = opts.devnet ?? ".devnet";
  let json: { nodes?: { name?: string; metrics?: string; rpc?: string; address?: string }[] };
  try {
    if ((await stat(path)).isDirectory()) path = join(path, "devnet.json");
    const info = await stat(path);
    if (info.size > DEVNET_JSON_MAX_BYTES) return `${path} has ${info.size} bytes: not a devnet.json`;
    json = JSON.parse(await readFile(path, "utf8")) as typeof json;
  } catch {
    return (
      `cannot read ${path}; pass --devnet DIR (a devnet's data dir or its devnet.json), --rpc URL (a node's ` +
      "JSON-RPC) or --url http://HOST:PORT (a node's metrics endpoint)"
    );
  }
  const targets: Target[] = [];
  for (const n of (json.nodes ?? []).slice(0, MAX_TARGETS)) {
    if (n.metrics === undefined && n.rpc === undefined) continue;
    const name = n.name ?? n.metrics ?? n.rpc ?? "?";
    targets.push({ name, metrics: n.metrics ?? null, rpc: n.rpc ?? null });
    if (typeof n.address === "string") names.set(n.address.toLowerCase(), name);
  }
  return { targets, names };
}

async function viewOf(target: Target): Promise<NodeView> {
  let status: NodeStatusJson | null = null;
  if (target.metrics !== null) status = await fetchStatus(target.metrics, RPC_TIMEOUT_MS);
  else if (target.rpc !== null) status = await rpcCall<NodeStatusJson>(target.rpc, "lumia_status", []);
  const rpc = target.rpc ?? (typeof status?.rpc === "string" ? status.rpc : null);
  if (status === null || rpc === null) return { target, status, lastProposer: null, certificate: null };
  const [block, cert] = await Promise.all([
    rpcCall<{ miner?: string }>(rpc, "eth_getBlockByNumber", ["latest", false]),
    rpcCall<{ validatorSetId?: string; signers?: number[] }>(rpc, "lumia_getCertificate", ["latest"]),
  ]);
  return {
    target,
    status,
    lastProposer: typeof block?.miner === "string" ? block.miner : null,
    certificate:
      typeof cert?.validatorSetId === "string" && Array.isArray(cert.signers)
        ? { validatorSetId: cert.validatorSetId, signers: cert.signers }
        : null,
  };
}

/** Gathers the report; exported for tests. */
export async function collectStatus(opts: StatusOptions): Promise<StatusReport | string> {
  const read = await readTargets(opts);
  if (typeof read === "string") return read;
  const { targets, names } = read;
  const views = await Promise.all(targets.map(viewOf));
  const up = views.filter((v) => v.status !== null);
  const highest = up.reduce<NodeView | null>(
    (best, v) => (best === null || (v.status?.headHeight ?? -1) > (best.status?.headHeight ?? -1) ? v : best),
    null,
  );
  const highestHead = highest?.status?.headHeight ?? null;
  const withCert = up
    .filter((v) => v.certificate !== null)
    .sort((a, b) => (b.status?.headHeight ?? 0) - (a.status?.headHeight ?? 0))[0];
  const setSource = withCert?.target.rpc ?? (typeof withCert?.status?.rpc === "string" ? withCert.status.rpc : null);
  const rawSet =
    withCert?.certificate === null || withCert === undefined || setSource === null
      ? null
      : await rpcCall<{
          id?: string;
          totalVotingPower?: string;
          validators?: { address?: string; votingPower?: string }[];
        }>(setSource, "lumia_getValidatorSet", [withCert.certificate.validatorSetId]);
  const validators = (rawSet?.validators ?? []).flatMap((v) =>
    typeof v.address === "string" ? [{ address: v.address, power: quantity(v.votingPower) ?? 0n }] : [],
  );
  const total = quantity(rawSet?.totalVotingPower) ?? validators.reduce((sum, v) => sum + v.power, 0n);
  const signers = new Set(withCert?.certificate?.signers ?? []);
  const nameOf = (address: string | null): string | null =>
    address === null ? null : (names.get(address.toLowerCase()) ?? address);
  const byAddress = new Map<string, NodeView>();
  for (const v of views) {
    const a = v.status?.address;
    if (typeof a === "string") byAddress.set(a.toLowerCase(), v);
  }
  const rowOf = (
    v: NodeView | undefined,
    base: Pick<StatusRow, "name" | "address" | "votingPower" | "sharePercent" | "signedLast">,
    role: string,
  ): StatusRow => {
    const s = v?.status ?? null;
    return {
      ...base,
      role: s?.role ?? role,
      height: s?.headHeight ?? null,
      round: s?.round ?? null,
      lastProposer: nameOf(v?.lastProposer ?? null),
      peers: s === null ? null : s.peers.length,
      clockOffsetMs: s?.clockOffsetMs ?? null,
      signingPausedForMs: s?.signingPausedForMs ?? null,
      haltHeight: s?.haltHeight ?? null,
      lag: s === null || highestHead === null ? null : highestHead - s.headHeight,
      state: v === undefined ? "not queried" : s === null ? "unreachable" : "ok",
      source: v === undefined ? null : (v.target.metrics ?? v.target.rpc),
    };
  };
  const rows: StatusRow[] = [];
  const shown = new Set<NodeView>();
  validators.forEach((val, i) => {
    const v = byAddress.get(val.address.toLowerCase());
    if (v !== undefined) shown.add(v);
    rows.push(
      rowOf(
        v,
        {
          name: nameOf(val.address) ?? val.address,
          address: val.address,
          votingPower: val.power.toString(),
          sharePercent: total === 0n ? null : Number((val.power * 10_000n) / total) / 100,
          signedLast: withCert === undefined ? null : signers.has(i),
        },
        "validator",
      ),
    );
  });
  // Nodes outside the set (replicas), and nodes that did not answer (their address is unknown).
  for (const v of views) {
    if (shown.has(v)) continue;
    const address = typeof v.status?.address === "string" ? v.status.address : null;
    rows.push(
      rowOf(
        v,
        { name: v.target.name, address, votingPower: null, sharePercent: null, signedLast: null },
        v.status === null ? "?" : v.status.role,
      ),
    );
  }
  const chainId = up.map((v) => v.status?.chainId).find((c) => c !== undefined);
  return {
    chainId: chainId ?? null,
    validatorSet:
      rawSet === null || typeof rawSet.id !== "string"
        ? null
        : { id: rawSet.id, totalVotingPower: total.toString(), size: validators.length },
    highestHead,
    lastProposer: nameOf(highest?.lastProposer ?? null),
    rows,
  };
}

function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  numeric: ReadonlySet<number>,
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function shortHex(text: string | null): string {
  if (text === null) return "-";
  return /^0x[0-9a-fA-F]{16,}$/.test(text) ? `${text.slice(0, 8)}…${text.slice(-4)}` : text;
}

export async function statusCommand(opts: StatusOptions, print: (line: string) => void): Promise<number> {
  const report = await collectStatus(opts);
  if (typeof report === "string") {
    print(`dcn status: ${report}`);
    return 2;
  }
  const down = report.rows.filter((r) => r.state === "unreachable").length;
  if (opts.json === true) {
    print(JSON.stringify(report, null, 2));
    return down === 0 ? 0 : 1;
  }
  const set = report.validatorSet;
  print(
    `chain ${report.chainId ?? "?"}  ` +
      (set === null
        ? "validator set: unknown (no node answered lumia_getCertificate)"
        : `validator set ${shortHex(set.id)}: ${set.size} validators, total power ${set.totalVotingPower}`) +
      `  highest head ${report.highestHead ?? "-"}  last proposer ${shortHex(report.lastProposer)}`,
  );
  const dash = (v: number | string | null) => (v === null ? "-" : String(v));
  const lines = table(
    [
      "node",
      "role",
      "address",
      "power",
      "share",
      "height",
      "round",
      "last proposer",
      "peers",
      "lag",
      "signed",
      "clock",
      "state",
    ],
    report.rows.map((r) => [
      r.name,
      r.role,
      shortHex(r.address),
      dash(r.votingPower),
      r.sharePercent === null ? "-" : `${r.sharePercent.toFixed(1)}%`,
      dash(r.height),
      dash(r.round),
      shortHex(r.lastProposer),
      dash(r.peers),
      dash(r.lag),
      r.signedLast === null ? "-" : r.signedLast ? "yes" : "no",
      r.clockOffsetMs === null
        ? "-"
        : `${r.clockOffsetMs >= 0 ? "+" : "-"}${(Math.abs(r.clockOffsetMs) / 1000).toFixed(1)}s`,
      r.state === "unreachable"
        ? `unreachable (${r.source ?? "?"})`
        : r.signingPausedForMs !== null
          ? `signing paused ${Math.ceil(r.signingPausedForMs / 1000)} s (its key signs elsewhere)`
          : r.haltHeight !== null
            ? `${r.state}, halts at ${r.haltHeight}`
            : r.state,
    ]),
    new Set([3, 4, 5, 6, 8, 9, 11]),
  );
  for (const l of lines) print(l);
  if (opts.rpc !== undefined) {
    print("only the node behind --rpc was asked: other validators show their power and the last certificate only");
  }
  return down === 0 ? 0 : 1;
}
