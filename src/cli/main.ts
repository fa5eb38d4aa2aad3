// The `dcn` command line. Each command returns its exit code.
import { readFileSync } from "node:fs";

const USAGE = `Usage: dcn <command> [options]

Commands:
  devnet     Run a local subnet. Until the node runtime lands this runs the consensus simulator demo
             (4 validators in one process on a virtual clock, with faults), and says so.
  version    Print the version.
  help       Print this help.
`;

function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return typeof pkg === "object" && pkg !== null && "version" in pkg ? String(pkg.version) : "unknown";
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "devnet": {
      process.stdout.write(
        "dcn devnet: the node runtime (libp2p, storage, RPC) is not built yet; running the consensus simulator demo.\n\n",
      );
      process.argv = [process.argv[0] ?? "node", "dcn", "--demo", ...rest];
      await import("../../test/sim/cli.ts");
      return typeof process.exitCode === "number" ? process.exitCode : 0;
    }
    case "version":
    case "--version":
      process.stdout.write(`dcn ${version()}\n`);
      return 0;
    case undefined:
    case "help":
    case "--help":
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`dcn: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}
