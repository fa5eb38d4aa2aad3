// `dcn genesis`: the subnet coordinator turns the validators' identity.json files (written by `dcn init`) into a
// genesis file. Every proof of possession is verified on the way (buildGenesis validates what it builds).
import { readFile, writeFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { buildGenesis } from "../config/genesis.ts";
import type { PublicIdentity } from "../keys/keys.ts";

export interface GenesisOptions {
  readonly chainId: bigint;
  /** `PATH[:POWER]` per validator; the name is the identity file's directory name. */
  readonly validators: readonly string[];
  readonly out: string;
  readonly genesisTimeMs: number;
}

export async function genesisCommand(o: GenesisOptions, print: (line: string) => void): Promise<number> {
  const validators = [];
  for (const spec of o.validators) {
    const match = /^(.*?)(?::(\d+))?$/.exec(spec);
    const path = match?.[1] ?? spec;
    const power = BigInt(match?.[2] ?? "100");
    let identity: PublicIdentity;
    try {
      identity = JSON.parse(await readFile(path, "utf8")) as PublicIdentity;
    } catch (error) {
      print(
        `dcn genesis: cannot read identity ${path}: ${(error as Error).message}. Fix: pass the identity.json that dcn init wrote`,
      );
      return 2;
    }
    validators.push({ name: basename(dirname(path)) || path, votingPower: power, identity });
  }
  const genesis = buildGenesis({ chainId: o.chainId, genesisTimeMs: o.genesisTimeMs, validators });
  await writeFile(o.out, `${JSON.stringify(genesis, null, 2)}\n`);
  print(`wrote ${o.out}: chain id ${o.chainId}, ${validators.length} validators`);
  return 0;
}
