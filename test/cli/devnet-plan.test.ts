// A devnet data dir made by another version of the node (other storage or genesis format) is refused up front with
// the fix (--fresh), instead of every node failing on its data dir; a dir made with other options says so too.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_CHAIN_ID, DevnetError, prepareDevnet } from "../../src/cli/devnet.ts";
import { GENESIS_VERSION } from "../../src/config/genesis.ts";
import { SCHEMA_VERSION } from "../../src/storage/chain-store.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const options = (dir: string) => ({
  dir,
  validators: 4,
  replicas: 1,
  basePort: 26656,
  metricsBasePort: 9100,
  rpcBasePort: 8545,
  fresh: false,
  chainId: DEFAULT_CHAIN_ID,
});

async function planDir(plan: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "dcn-devnet-plan-"));
  dirs.push(dir);
  await writeFile(join(dir, "plan.json"), JSON.stringify(plan));
  return dir;
}

const base = {
  chainId: DEFAULT_CHAIN_ID.toString(),
  validators: 4,
  replicas: 1,
  basePort: 26656,
  metricsBasePort: 9100,
  rpcBasePort: 8545,
};

describe("devnet data dirs", () => {
  it("refuses a dir of older data formats and names --fresh", async () => {
    for (const plan of [base, { ...base, formats: { storage: SCHEMA_VERSION - 1, genesis: GENESIS_VERSION } }]) {
      const error = await prepareDevnet(options(await planDir(plan))).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DevnetError);
      expect((error as DevnetError).code).toBe("plan_mismatch");
      expect((error as Error).message).toMatch(/another version of this node.*--fresh/);
    }
  });

  it("refuses a dir made with other options", async () => {
    const plan = { ...base, validators: 3, formats: { storage: SCHEMA_VERSION, genesis: GENESIS_VERSION } };
    const error = await prepareDevnet(options(await planDir(plan))).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/other options.*--fresh/);
  });
});
