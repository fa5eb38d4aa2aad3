// Registers the staker commands (src/cli/stake.ts, loaded only when one runs: viem is not needed by the others).
import { type Command, InvalidArgumentError } from "commander";

function sequencerId(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 0xffff_ffff)
    throw new InvalidArgumentError("expected a sequencer id (1, 2, ...)");
  return n;
}

const TARGET_HELP = {
  l1: "L1 JSON-RPC endpoint (default: the devnet's, with --devnet)",
  registry: "SequencerRegistry address (default: the devnet's, with --devnet)",
  devnet: "a devnet data dir or its devnet.json: the L1 URL and contract addresses from there",
} as const;

interface TargetFlags {
  l1?: string;
  registry?: string;
  devnet?: string;
}

export function registerStakeCommands(program: Command, out: (line: string) => void, setCode: (c: number) => void) {
  program
    .command("rewards")
    .description("a staker's stake, unbonding stake, pending and claimed LUMIA rewards per pool and epoch (L1 views)")
    .requiredOption("--address <address>", "the staker's (or operator's) L1 address")
    .option("--l1 <url>", TARGET_HELP.l1)
    .option("--registry <address>", TARGET_HELP.registry)
    .option("--devnet <path>", TARGET_HELP.devnet)
    .option(
      "--node <url>",
      "a node's JSON-RPC URL: read the report from its staking index (lumia_getRewards), a few L1 calls of the node's",
    )
    .option("--json", "print JSON (amounts in wei as decimal strings)")
    .action(async (o: TargetFlags & { address: string; json?: boolean; node?: string }) => {
      const { rewardsCommand } = await import("./stake.ts");
      setCode(await rewardsCommand({ ...o, json: o.json === true }, out));
    });

  const actions = [
    ["stake", "self-stake LUMIA in your own sequencer's pool (or --sequencer ID)", true, false],
    ["delegate", "delegate LUMIA to a sequencer's pool", true, false],
    [
      "unbond",
      "start unbonding stake from a pool (--amount N or max); withdraw after the unbonding epochs",
      true,
      true,
    ],
    ["withdraw", "withdraw matured unbonding stake from a pool", false, false],
    ["claim", "claim pending LUMIA rewards from a pool (default: every pool with rewards)", false, false],
  ] as const;
  for (const [name, description, takesAmount, allowsMax] of actions) {
    const command = program
      .command(name)
      .description(`${description}; signs an L1 transaction with --key-file or $DCN_L1_KEY`)
      .option("--key-file <file>", "file holding the L1 private key (0x + 64 hex); default: $DCN_L1_KEY")
      .option("--sequencer <id>", "the pool's sequencer id", sequencerId)
      .option("--l1 <url>", TARGET_HELP.l1)
      .option("--registry <address>", TARGET_HELP.registry)
      .option("--devnet <path>", TARGET_HELP.devnet);
    if (takesAmount) command.requiredOption("--amount <lumia>", `LUMIA, e.g. 100 or 0.5${allowsMax ? ", or max" : ""}`);
    command.action(async (o: TargetFlags & { keyFile?: string; sequencer?: number; amount?: string }) => {
      const { stakerTxCommand } = await import("./stake.ts");
      setCode(await stakerTxCommand(name, o, out));
    });
  }
}
