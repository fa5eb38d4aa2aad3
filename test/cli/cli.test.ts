// The `dcn` command as an operator runs it: real processes, real files. init -> genesis -> a config error naming the
// field and the fix; and `dcn devnet`: N processes, devnet.json, heights advancing, Ctrl-C stops every child.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");
const dir = mkdtempSync(join(tmpdir(), "dcn-cli-"));

function dcn(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [DCN, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("dcn init, genesis and start", () => {
  it("creates encrypted keys (refusing without a password), builds a genesis from identities, and explains config errors", () => {
    const refused = dcn(["init", "--dir", join(dir, "a")], { DCN_KEY_PASSWORD: "" });
    expect(refused.code).toBe(2);
    expect(refused.out).toContain("password is required");

    const a = dcn(["init", "--dir", join(dir, "a")], { DCN_KEY_PASSWORD: "correct horse" });
    expect(a.code, a.err).toBe(0);
    const keystore = JSON.parse(readFileSync(join(dir, "a", "keys", "consensus.json"), "utf8"));
    expect(keystore.crypto.kdf.function).toBe("scrypt"); // EIP-2335, not plain text
    expect(JSON.stringify(keystore)).not.toContain("secret");
    expect(dcn(["init", "--dir", join(dir, "b"), "--insecure"]).code).toBe(0);

    const genesisPath = join(dir, "genesis.json");
    const g = dcn([
      "genesis",
      "--chain-id",
      "4242",
      "--validator",
      join(dir, "a", "identity.json"),
      `${join(dir, "b", "identity.json")}:300`,
      "--out",
      genesisPath,
    ]);
    expect(g.code, g.err + g.out).toBe(0);
    const genesis = JSON.parse(readFileSync(genesisPath, "utf8"));
    expect(genesis.chainId).toBe("4242");
    expect(genesis.validators.map((v: { votingPower: string }) => v.votingPower).sort()).toEqual(["100", "300"]);

    const config = join(dir, "a", "config.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: "data",
        genesis: "../genesis.json",
        p2p: { listn: ["/ip4/127.0.0.1/tcp/0"] },
        metrics: { port: -1 },
      }),
    );
    const bad = dcn(["start", "--config", config]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/p2p\.listn/);
    expect(bad.err).toMatch(/listen/); // the fix names the intended key
    expect(bad.err).toMatch(/metrics\.port/);
  }, 120_000);
});

describe("dcn devnet", () => {
  it("runs N validator processes, writes devnet.json, commits, and stops every process on SIGINT", async () => {
    const data = join(dir, "devnet");
    const base = 30_000 + ((process.pid * 13) % 500) * 10;
    const child = spawn(
      process.execPath,
      [
        DCN,
        "devnet",
        "--validators",
        "4",
        "--replicas",
        "0",
        "--data-dir",
        data,
        "--base-port",
        String(base),
        "--metrics-base-port",
        String(base + 5),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    const deadline = Date.now() + 60_000;
    let heights: number[] = [];
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      if (!existsSync(join(data, "devnet.json"))) continue;
      const devnet = JSON.parse(readFileSync(join(data, "devnet.json"), "utf8"));
      heights = await Promise.all(
        devnet.nodes.map(async (n: { metrics: string }) => {
          try {
            const res = await fetch(`${n.metrics}/status`);
            return ((await res.json()) as { headHeight: number }).headHeight;
          } catch {
            return -1;
          }
        }),
      );
      if (heights.length === 4 && heights.every((h) => h >= 3)) break;
    }
    expect(heights, output).toHaveLength(4);
    expect(
      heights.every((h) => h >= 3),
      `heights ${heights}\n${output}`,
    ).toBe(true);
    const pids = [...output.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(4);

    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(output).toContain("all nodes stopped");
    for (const pid of pids) expect(() => process.kill(pid, 0), `node ${pid} outlived the devnet`).toThrow();
  }, 120_000);
});
