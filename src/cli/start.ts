// `dcn start --config FILE`: loads and validates the config and genesis, decrypts the keys, runs the node until
// SIGINT/SIGTERM (clean stop, exit 0) or a fatal error (exit 1).
import { existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { loadConfig, readKeyPassword } from "../config/config.ts";
import { loadGenesis } from "../config/genesis.ts";
import { loadKeystore } from "../keys/keystore.ts";
import { createLogger } from "../node/log.ts";
import { DcnNode } from "../node/node.ts";
import { StateSyncError } from "../node/state-sync.ts";
import { isDiskFull } from "../storage/errors.ts";

export interface StartOptions {
  readonly config: string;
  /** Exit when this process id disappears (set by `dcn devnet` so that no node outlives it). */
  readonly parentPid?: number;
}

export async function startCommand(opts: StartOptions): Promise<number> {
  const config = await loadConfig(opts.config);
  const log = createLogger({
    level: config.log.level,
    format: config.log.format,
    base: { node: basename(dirname(resolve(opts.config))) },
  });
  const genesis = await loadGenesis(config.genesis);
  const pw = await readKeyPassword(config);
  const peer = await loadKeystore(join(config.keys.dir, "peer.json"), "peer", pw);
  const consensus =
    config.role === "validator" ? await loadKeystore(join(config.keys.dir, "consensus.json"), "consensus", pw) : null;
  // The operator key pays for the validator's L1 transactions (work reports); without it the node signs reports and
  // leaves their submission to the other validators.
  const operatorPath = join(config.keys.dir, "operator.json");
  const operator =
    config.role === "validator" && config.l1 !== null && existsSync(operatorPath)
      ? await loadKeystore(operatorPath, "operator", pw)
      : null;
  if (peer.insecure || consensus?.insecure === true) {
    log.warn({ keys: config.keys.dir }, "keys are stored unencrypted (--insecure): acceptable for a devnet only");
  }
  // A signal while the node is being created (a state sync can take long) aborts the creation; after it, stops it.
  const opening = new AbortController();
  let onSignal = () => opening.abort();
  let signalled = false;
  const signalHandler = () => {
    if (signalled) return;
    signalled = true;
    onSignal();
  };
  process.once("SIGINT", signalHandler);
  process.once("SIGTERM", signalHandler);
  let node: DcnNode;
  try {
    node = await DcnNode.create(
      config,
      genesis,
      { consensus: consensus?.secret ?? null, peer: peer.secret, operator: operator?.secret ?? null },
      log,
      opening.signal,
    );
  } catch (error) {
    if (error instanceof StateSyncError && error.code === "stopped") {
      log.info("stopped during state sync (what it fetched is reused by the next start)");
      log.flush();
      return 0;
    }
    if (isDiskFull(error)) {
      log.fatal({ err: error }, fatalMessage(error, config.dataDir));
      log.flush();
      return 1;
    }
    throw error;
  }
  let finish: (code: number) => void = () => {};
  const exited = new Promise<number>((r) => {
    finish = r;
  });
  const stop = (code: number) => {
    node.stop().then(
      () => finish(code),
      (err: unknown) => {
        log.error({ err }, "error while stopping");
        finish(1);
      },
    );
  };
  onSignal = () => stop(0);
  if (signalled) {
    // Asked to stop while it was being created: close what was opened, never start.
    stop(0);
    const code = await exited;
    log.flush();
    return code;
  }
  await node.start(
    (err) => {
      log.fatal({ err }, fatalMessage(err, config.dataDir));
      stop(1);
    },
    (head) => {
      log.info(
        { head, haltHeight: config.consensus.haltHeight },
        "stopping at the halt height (consensus.haltHeight): start again with a higher one, or none, to go on",
      );
      stop(0);
    },
  );
  let watch: ReturnType<typeof setInterval> | undefined;
  if (opts.parentPid !== undefined) {
    const parent = opts.parentPid;
    watch = setInterval(() => {
      try {
        process.kill(parent, 0);
      } catch {
        log.warn({ parent }, "parent process is gone: stopping");
        stop(0);
      }
    }, 1_000);
  }
  const code = await exited;
  if (watch !== undefined) clearInterval(watch);
  log.flush();
  return code;
}

/**
 * What the fatal log line says. A full disk is named: the write that failed was never acknowledged (commits and the
 * safety record are single synced batches, and nothing is signed before its record is written), so the node restarts
 * from what is on disk once there is space.
 */
function fatalMessage(error: unknown, dataDir: string): string {
  if (!isDiskFull(error)) return "fatal error: stopping";
  return `the disk holding the data directory ${dataDir} is full: stopping. Free space or grow the volume, then start the node again; everything it committed or signed is on disk`;
}
