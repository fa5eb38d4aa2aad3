// A consensus driver on a real store for the driver tests: validator 0 of `validators` equal-power validators, with
// every outbox call recorded. Nothing else runs: the test feeds gossip through the driver's own entry points.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { TimeoutParams } from "../../consensus/machine.ts";
import type { Evidence, SignedProposal, SignedVote, Signer } from "../../consensus/types.ts";
import { buildGenesis, type Genesis, parseGenesis } from "../../src/config/genesis.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import { describeKeys, generateKeys } from "../../src/keys/keys.ts";
import { type NodeState, openNodeState } from "../../src/node/assemble.ts";
import { ConsensusDriver, realClock } from "../../src/node/driver.ts";
import { createMetrics, type NodeMetrics } from "../../src/node/metrics.ts";

/** Timeouts for a one-validator chain, which proposes and commits every height by itself. */
export const SOLO_TIMEOUTS: TimeoutParams = {
  proposeMs: 200,
  proposeDeltaMs: 50,
  prevoteMs: 100,
  prevoteDeltaMs: 50,
  precommitMs: 100,
  precommitDeltaMs: 50,
};

export interface DriverHarness {
  /** The driver running now (restart() replaces it). */
  readonly driver: ConsensusDriver;
  readonly state: NodeState;
  readonly genesis: Genesis;
  /** Validator i's signer, in genesis order; the driver signs as signers[0]. */
  readonly signers: readonly Signer[];
  readonly commits: number[];
  readonly evidence: Evidence[];
  /** Votes and proposals the driver published. */
  readonly published: (SignedVote | SignedProposal)[];
  /** Heads the driver reported halting at (haltHeight). */
  readonly halts: number[];
  readonly metrics: NodeMetrics;
  /** Stops the driver and makes a new one on the same store (not started), as a process restart would. */
  restart(): Promise<ConsensusDriver>;
  /** Stops the driver, closes the store and removes the data dir. */
  close(): Promise<void>;
}

export async function driverHarness(opts: {
  readonly chainId: bigint;
  readonly validators: number;
  readonly timeouts: TimeoutParams;
  readonly rebroadcastMs: number;
  readonly doppelgangerWaitMs?: number;
  readonly haltHeight?: number;
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
  const published: (SignedVote | SignedProposal)[] = [];
  const halts: number[] = [];
  const metrics = createMetrics({ defaultMetrics: false });
  const make = () =>
    new ConsensusDriver(
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
        ...(opts.doppelgangerWaitMs === undefined ? {} : { doppelgangerWaitMs: opts.doppelgangerWaitMs }),
        ...(opts.haltHeight === undefined ? {} : { haltHeight: opts.haltHeight }),
      },
      {
        store: state.store,
        signer: signers[0] as Signer,
        scheme: blstScheme,
        executor: state.executor,
        membership: state.membership,
        clock: realClock,
        log: pino({ level: "silent" }),
        metrics,
        outbox: {
          publishProposal: (p) => published.push(p),
          publishVote: (v) => published.push(v),
          publishCertificate: () => {},
          publishEvidence: (e) => evidence.push(e),
          stalled: () => {},
          behind: () => {},
          committed: (height) => commits.push(height),
          halted: (height) => halts.push(height),
        },
      },
    );
  let driver = make();
  return {
    get driver() {
      return driver;
    },
    state,
    genesis,
    signers,
    commits,
    evidence,
    published,
    halts,
    metrics,
    restart: async () => {
      await driver.stop();
      driver = make();
      return driver;
    },
    close: async () => {
      await driver.stop();
      await state.store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
