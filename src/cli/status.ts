// `dcn status`: one line per node of a devnet (or the nodes given with --url): role, committed height, round,
// peers, time since the last commit, head hash.
import { readFile } from "node:fs/promises";
import { fetchStatus } from "./devnet.ts";

export interface StatusOptions {
  readonly urls: readonly string[];
  readonly devnet: string | undefined;
}

export async function statusCommand(opts: StatusOptions, print: (line: string) => void): Promise<number> {
  const targets: { name: string; url: string }[] = opts.urls.map((url) => ({ name: url, url }));
  if (targets.length === 0) {
    const path = opts.devnet ?? ".devnet/devnet.json";
    let json: { nodes?: { name?: string; metrics?: string }[] };
    try {
      json = JSON.parse(await readFile(path, "utf8")) as typeof json;
    } catch {
      print(
        `dcn status: cannot read ${path}; pass --devnet PATH or --url http://HOST:PORT (a node's metrics endpoint)`,
      );
      return 2;
    }
    for (const n of json.nodes ?? [])
      if (n.metrics !== undefined) targets.push({ name: n.name ?? n.metrics, url: n.metrics });
  }
  const rows = await Promise.all(targets.map(async (t) => ({ t, s: await fetchStatus(t.url) })));
  print(
    `${"node".padEnd(14)} ${"role".padEnd(9)} ${"height".padStart(7)} ${"round".padStart(5)} ${"peers".padStart(5)} ` +
      `${"last commit".padStart(11)} ${"voting".padEnd(6)} head`,
  );
  let down = 0;
  for (const { t, s } of rows) {
    if (s === null) {
      down++;
      print(`${t.name.padEnd(14)} unreachable (${t.url})`);
      continue;
    }
    const ago = s.lastCommitAgoMs === null ? "-" : `${(s.lastCommitAgoMs / 1000).toFixed(1)} s`;
    print(
      `${t.name.padEnd(14)} ${s.role.padEnd(9)} ${String(s.headHeight).padStart(7)} ${String(s.round).padStart(5)} ` +
        `${String(s.peers.length).padStart(5)} ${ago.padStart(11)} ${(s.votingNow ? "yes" : "no").padEnd(6)} ${s.headHash ?? "-"}`,
    );
  }
  return down === 0 ? 0 : 1;
}
