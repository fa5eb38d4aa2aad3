// `dcn verify`: ask a node for a balance or a transaction and check the answer with the light client instead of
// trusting it (certificate of more than 2/3 of the trusted validator power, header hash, Merkle proofs). Prints the
// verified answer and who signed it, or "REFUSED: <code>: <why>" and exits 1.
import { existsSync } from "node:fs";
import { loadGenesis } from "../config/genesis.ts";
import {
  anchorFromGenesis,
  LightClient,
  LightClientError,
  type VerifiedHeader,
  type VerifiedTransaction,
} from "../light-client/index.ts";

/** Where `dcn devnet` writes its genesis by default (src/cli/devnet.ts: <data dir>/genesis.json). */
export const DEVNET_GENESIS = ".devnet/genesis.json";

export interface VerifyOptions {
  readonly rpc: string;
  readonly tx?: string | undefined;
  readonly balance?: string | undefined;
  readonly block?: number | undefined;
  readonly genesis?: string | undefined;
  readonly json: boolean;
}

export async function verifyCommand(opts: VerifyOptions, print: (line: string) => void): Promise<number> {
  if ((opts.tx === undefined) === (opts.balance === undefined)) {
    print("dcn verify: give exactly one of --tx HASH or --balance ADDRESS");
    return 2;
  }
  if (opts.tx !== undefined && opts.block !== undefined) {
    print("dcn verify: --block applies to --balance; a transaction's block is where it was committed");
    return 2;
  }
  const genesisPath = opts.genesis ?? (existsSync(DEVNET_GENESIS) ? DEVNET_GENESIS : undefined);
  if (genesisPath === undefined) {
    print(
      `dcn verify: no genesis to trust: pass --genesis FILE (the subnet's genesis.json; ${DEVNET_GENESIS} is absent)`,
    );
    return 2;
  }
  // GenesisError carries a code: main prints its message (file, field, fix) and exits 1.
  const genesis = await loadGenesis(genesisPath);
  const names = new Map(genesis.validators.map((v) => [v.address, v.name]));
  try {
    const client = await LightClient.create({ rpcUrl: opts.rpc, genesis: anchorFromGenesis(genesis) });
    if (opts.balance !== undefined) {
      const v = await client.verifiedBalance(opts.balance as `0x${string}`, opts.block ?? "latest");
      if (opts.json) {
        print(
          JSON.stringify({
            verified: true,
            kind: "balance",
            address: v.address,
            balance: v.balance.toString(),
            ...headerJson(v.header, names),
          }),
        );
      } else {
        print(`verified balance of ${v.address} at block ${v.header.height} (${v.header.hash})`);
        print(`  ${formatLumia(v.balance)} LUMIA (${v.balance} wei)`);
        for (const line of signedBy(v.header, names)) print(line);
      }
      return 0;
    }
    const v = await client.verifiedTransaction(opts.tx as `0x${string}`);
    if (opts.json) {
      print(
        JSON.stringify({ verified: true, kind: "transaction", ...transactionJson(v), ...headerJson(v.header, names) }),
      );
    } else {
      const r = v.receipt;
      print(`verified transaction ${v.transactionHash}`);
      print(`  in block ${v.blockNumber} (${v.blockHash}) at index ${v.transactionIndex}, type ${r.type}`);
      print(`  status ${r.status === 1 ? "success" : "failed"}, cumulative gas used ${r.cumulativeGasUsed}`);
      print(`  ${r.logs.length} log${r.logs.length === 1 ? "" : "s"}`);
      for (const [i, log] of r.logs.entries()) {
        print(`    #${i} ${log.address} topics [${log.topics.join(", ")}] data ${log.data}`);
      }
      for (const line of signedBy(v.header, names)) print(line);
    }
    return 0;
  } catch (error) {
    if (!(error instanceof LightClientError)) throw error;
    if (opts.json) print(JSON.stringify({ verified: false, code: error.code, message: error.message }));
    else print(`REFUSED: ${error.code}: ${error.message}`);
    return 1;
  }
}

function signedBy(h: VerifiedHeader, names: ReadonlyMap<string, string>): string[] {
  return [
    `  certified by ${h.signers.length} of ${h.validatorCount} validators, voting power ${h.signingPower} of ` +
      `${h.totalVotingPower} (more than 2/3), validator set ${h.validatorSetId}`,
    `  signers: ${h.signers.map((s) => `${names.get(s.address) ?? s.name ?? "?"} (${s.address})`).join(", ")}`,
  ];
}

function headerJson(h: VerifiedHeader, names: ReadonlyMap<string, string>) {
  return {
    block: { number: h.height, hash: h.hash, stateRoot: h.header.stateRoot },
    certificate: {
      round: h.certificate.round,
      validatorSetId: h.validatorSetId,
      signers: h.signers.map((s) => ({
        index: s.index,
        address: s.address,
        name: names.get(s.address) ?? s.name ?? null,
        votingPower: s.votingPower.toString(),
      })),
      signingPower: h.signingPower.toString(),
      totalVotingPower: h.totalVotingPower.toString(),
    },
  };
}

function transactionJson(v: VerifiedTransaction) {
  return {
    transactionHash: v.transactionHash,
    transactionIndex: v.transactionIndex,
    receipt: {
      type: v.receipt.type,
      status: v.receipt.status,
      cumulativeGasUsed: v.receipt.cumulativeGasUsed.toString(),
      logs: v.receipt.logs,
    },
  };
}

/** wei as LUMIA (18 decimals), trailing zeros of the fraction dropped. */
export function formatLumia(wei: bigint): string {
  const whole = wei / 10n ** 18n;
  const fraction = (wei % 10n ** 18n).toString().padStart(18, "0").replace(/0+$/, "");
  return fraction === "" ? whole.toString() : `${whole}.${fraction}`;
}
