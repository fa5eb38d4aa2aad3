// The `dcn` command as an operator runs it: real processes, real files. init -> genesis -> a config error naming the
// field and the fix. `dcn devnet` and `dcn status` are in devnet.test.ts.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
