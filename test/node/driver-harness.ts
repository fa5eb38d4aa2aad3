// A consensus driver on a real store for the driver tests: validator 0 of `validators` equal-power validators, with
// every outbox call recorded. Nothing else runs: the test feeds gossip through the driver's own entry points.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { TimeoutParams } from "../../consensus/machine.ts";
import type { Evidence, Signer } from "../../consensus/types.ts";
import { buildGenesis, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { describeKeys, generateKeys } from "../../src/keys/keys.ts";
import { type NodeState, openNodeState } from "../../src/node/assemble.ts";
import { ConsensusDriver, realClock } from "../../src/node/driver.ts";
import { createMetrics } from "../../src/node/metrics.ts";

export interface DriverHarness {
  readonly driver: ConsensusDriver;
  readonly state: NodeState;
  /** Validator i's signer, in genesis order; the driver signs as signers[0]. */
  readonly signers: readonly Signer[];
  readonly commits: number[];
  readonly evidence: Evidence[];
  /** Stops the driver, closes the store and removes the data dir. */
  close(): Promise<void>;
}

export async function driverHarness(opts: {
  readonly chainId: bigint;
  readonly validators: number;
  readonly timeouts: TimeoutParams;
  readonly rebroadcastMs: number;
}): Promise<DriverHarness> {
  const dir = await mkdtemp(join(tmpdir(), "dcn-driver-"));
  const keys = Array.from({ length: opts.validators }, () => generateKeys());
  const genesis = parseGenesis(
    buildGenesis({
      chainId: opts.chainId,
      genesisTimeMs: Date.now() - 1_000,
      validators: keys.map((k, i) => ({ name: `v${i}`, votingPower: 10n, identity: describeKeys(k) })),
    }),
  );
  const state = await openNodeState({
    dataDir: dir,
    genesis,
    executor: { maxBlockBytes: 1 << 20, maxBlockTransactions: 1_000, maxClockDriftMs: 5_000 },
    nowMs: () => Date.now(),
    log: pino({ level: "silent" }),
  });
  const signers = keys.map((k) => createBlstSigner(k.consensus));
  const commits: number[] = [];
  const evidence: Evidence[] = [];
  const driver = new ConsensusDriver(
    {
      chainId: opts.chainId,
      genesisHash: genesis.hash,
      genesisTimeMs: genesis.genesisTimeMs,
      timeouts: opts.timeouts,
      rebroadcastMs: opts.rebroadcastMs,
      blockIntervalMs: 0,
      emptyBlockIntervalMs: 0,
      maxRoundsAhead: 8,
      maxBufferedMessages: 64,
      maxQueuedEvents: 64,
    },
    {
      store: state.store,
      signer: signers[0] as Signer,
      scheme: blstScheme,
      executor: state.executor,
      membership: state.membership,
      clock: realClock,
      log: pino({ level: "silent" }),
      metrics: createMetrics({ defaultMetrics: false }),
      outbox: {
        publishProposal: () => {},
        publishVote: () => {},
        publishCertificate: () => {},
        publishEvidence: (e) => evidence.push(e),
        stalled: () => {},
        behind: () => {},
        committed: (height) => commits.push(height),
      },
    },
  );
  return {
    driver,
    state,
    signers,
    commits,
    evidence,
    close: async () => {
      await driver.stop();
      await state.store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
