// `npm run test:faults`: the whole fault suite against real `dcn start` processes in network namespaces, one fresh
// 4-validator subnet per scenario under a load of signed transfers. Prints one row per scenario: faults injected,
// blocks committed, transactions accepted and lost, safety violations, recovery time; exits 1 when any transaction
// is lost, any safety check fails, or a scenario's liveness check times out. `--only NAME[,NAME]` runs a subset;
// `--seed N` replays the random choices (kill instants, victims, partitions). Figures: docs/reliability.md.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fromHex, keccak256, utf8 } from "../../consensus/bytes.ts";
import { nextHeightValidatorSet, proposerIndex } from "../../consensus/validator-set.ts";
import { generatePeerKey, Network } from "../../p2p/index.ts";
import { signEip1559 } from "../../src/bench/tx.ts";
import { devnetAccounts } from "../../src/cli/devnet.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { generateBlsSecretKey } from "../../src/crypto/blst.ts";
import type { Failpoint } from "../../src/node/failpoints.ts";
import { ByzantineValidator } from "./attacker.ts";
import { Load } from "./load.ts";
import { NetLab, netemSupported, netnsUnavailable, randomLossSupported, sweep } from "./netlab.ts";
import { FAULT_CHAIN_ID, FaultSubnet, sleep } from "./subnet.ts";

interface Row {
  scenario: string;
  faults: string;
  blocks: number;
  accepted: number;
  lost: number;
  safety: number;
  recoveryMs: number | null;
  error: string | null;
  /** What the safety count is made of, and evidence against the Byzantine node. */
  notes: string[];
}

interface Ctx {
  readonly subnet: FaultSubnet;
  /** Nodes not to send transactions to right now (killed). */
  readonly down: Set<number>;
  readonly rand: (n: number) => number;
  /** Validator indices whose evidence would be a safety violation. */
  honest: number[];
}

interface Outcome {
  readonly faults: string;
  readonly recoveryMs: number | null;
  /** Extra safety violations the scenario found (e.g. heights that moved without a quorum). */
  readonly violations?: number;
  /** What `violations` counts, when not heights committed without a quorum. */
  readonly violationsWhat?: string;
  /** Printed under the table. */
  readonly notes?: readonly string[];
}

interface ScenarioSpec {
  /** Validators whose `dcn start` does not run (the Byzantine one's keys are the attacker's). */
  readonly notStarted?: number[];
  /** Extra environment of each node's first start (e.g. an armed failpoint). */
  readonly env?: (subnet: FaultSubnet, rand: (n: number) => number) => Promise<Map<number, Record<string, string>>>;
  /** storage.stateHistory of every node (pruning cycles every that many heights). */
  readonly stateHistory?: number;
  readonly run: (c: Ctx) => Promise<Outcome>;
}

const ALL = [0, 1, 2, 3];

function prng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

const maxHeight = async (subnet: FaultSubnet, indices: readonly number[]) =>
  Math.max(...(await subnet.heights(indices)));

/** Waits until every node in `indices` is 3 heights past the highest head now; returns the wait. */
async function recover(subnet: FaultSubnet, indices: readonly number[] = ALL, timeoutMs = 60_000): Promise<number> {
  const top = await maxHeight(subnet, indices);
  return subnet.waitForHeight(indices, top + 3, timeoutMs);
}

/** The node whose validator proposes round 0 of `height` (static set: priorities advance once per height). */
async function proposerNodeAt(subnet: FaultSubnet, height: number): Promise<number> {
  const genesis = await loadGenesis(subnet.plan.genesisPath);
  let set = genesis.validatorSet;
  for (let h = 1; h < height; h++) set = nextHeightValidatorSet(set);
  const node = (await subnet.validatorIndices(ALL)).indexOf(proposerIndex(set, 0));
  if (node < 0) throw new Error(`no node proposes height ${height}`);
  return node;
}

/** Heights in the load phase (it starts at height 2; a few heights a second), where the failpoints fire. */
const KILL_HEIGHT = 24;

/**
 * One validator armed with DCN_FAILPOINT=<point>@KILL_HEIGHT kills itself there under load; restarted (disarmed)
 * 1 s later it must rejoin without signing anything that conflicts with what it signed before (no evidence on any
 * node), with every block up to its head and (through the common checks) every accepted transaction's receipt.
 */
function killAt(point: Failpoint): ScenarioSpec {
  let victim = -1;
  return {
    env: async (subnet, rand) => {
      // "proposing" fires only on the proposer; any validator prevotes and commits.
      victim = point === "proposing" ? await proposerNodeAt(subnet, KILL_HEIGHT) : rand(4);
      return new Map([[victim, { DCN_FAILPOINT: `${point}@${KILL_HEIGHT}` }]]);
    },
    run: async ({ subnet, down }) => {
      const signal = await subnet.waitForExit(victim, 90_000);
      down.add(victim);
      const marker = `failpoint ${point} at height ${KILL_HEIGHT}: SIGKILL`;
      const log = readFileSync(join(subnet.node(victim).dir, "node.log"), "utf8");
      if (signal !== "SIGKILL" || !log.includes(marker)) {
        throw new Error(`${subnet.node(victim).name} ended with ${signal} without "${marker}" in its log`);
      }
      const others = ALL.filter((i) => i !== victim);
      const atKill = await maxHeight(subnet, others);
      await sleep(1_000);
      subnet.start(victim);
      // The head it restarts from is what its disk kept: a batch written before the kill ("mid-commit") is there.
      let resumedAt = -1;
      await subnet.waitFor(
        `${subnet.node(victim).name} to answer`,
        async () => {
          resumedAt = (await subnet.status(victim))?.headHeight ?? -1;
          return resumedAt >= 0;
        },
        60_000,
      );
      if (point === "mid-commit" && resumedAt < KILL_HEIGHT) {
        throw new Error(
          `restarted at head ${resumedAt}: the block of height ${KILL_HEIGHT} written before the kill is gone`,
        );
      }
      down.delete(victim);
      const recoveryMs = await recover(subnet, ALL, 90_000);
      const holes = await subnet.holes(victim);
      const evidence = (await Promise.all(ALL.map((i) => subnet.metric(i, "dcn_consensus_evidence_total")))).reduce(
        (a, b) => a + b,
        0,
      );
      const refusals = await subnet.metric(victim, "dcn_consensus_signing_refusals_total");
      return {
        faults: `SIGKILL of validator-${victim} by DCN_FAILPOINT=${point}@${KILL_HEIGHT} (others at ${atKill}), restart 1 s later from head ${resumedAt}`,
        recoveryMs,
        violations: holes.length + evidence,
        violationsWhat: "victim's missing blocks + live evidence",
        notes: [
          `victim's blocks missing after restart: ${holes.length}`,
          `evidence detected live, all nodes: ${evidence}`,
          `victim's signing refusals after restart (the safety record at work): ${refusals}`,
        ],
      };
    },
  };
}

/** Sum of `metric` on each of `nodes`. */
const metricPerNode = (subnet: FaultSubnet, nodes: readonly number[], metric: string, labels: string[] = []) =>
  Promise.all(nodes.map((i) => subnet.metric(i, metric, labels)));

const scenarios: Record<string, ScenarioSpec> = {
  "partition-2-2": {
    run: async ({ subnet }) => {
      await subnet.lab.partition([0, 1], [2, 3]);
      await sleep(2_000);
      const frozen = await subnet.heights(ALL);
      await sleep(6_000);
      const later = await subnet.heights(ALL);
      // Without +2/3 on either side nothing may commit: a height that moved would mean a quorum from 2 of 4.
      const moved = later.filter((h, k) => h > (frozen[k] ?? 0)).length;
      await subnet.lab.heal();
      return { faults: "2/2 split for 8 s (no quorum), heal", recoveryMs: await recover(subnet), violations: moved };
    },
  },
  "minority-isolated": {
    run: async ({ subnet }) => {
      let worst = 0;
      for (const v of ALL) {
        const others = ALL.filter((i) => i !== v);
        await subnet.lab.partition([v], others);
        const before = await maxHeight(subnet, others);
        await subnet.waitForHeight(others, before + 3, 30_000); // the majority goes on
        await subnet.lab.heal();
        const top = await maxHeight(subnet, others);
        worst = Math.max(worst, await subnet.waitForHeight([v], top, 60_000));
      }
      return { faults: "each validator cut off in turn (1 vs 3), until the 3 commit 3 heights", recoveryMs: worst };
    },
  },
  "asymmetric-links": {
    run: async ({ subnet }) => {
      await subnet.lab.setLink(0, 1, { kind: "drop" });
      await subnet.lab.setLink(2, 3, { kind: "drop" });
      await subnet.lab.setLink(3, 0, { kind: "drop" });
      const before = await maxHeight(subnet, ALL);
      await subnet.waitForHeight(ALL, before + 5, 60_000); // gossip routes around one-way cuts
      await sleep(10_000);
      await subnet.lab.heal();
      return { faults: "one-way cuts 0->1, 2->3, 3->0 for >= 10 s", recoveryMs: await recover(subnet) };
    },
  },
  "slow-lossy-links": {
    run: async ({ subnet }) => {
      const netem = netemSupported();
      // Without sch_netem: congestion (queueing delay, tail drop) plus random loss from iptables where it exists.
      const randomLoss = !netem && randomLossSupported();
      await subnet.lab.setAll(
        netem
          ? { kind: "netem", delayMs: 100, jitterMs: 50, lossPercent: 5 }
          : { kind: "congest", rateKbit: 1_000, queuePackets: 20 },
      );
      if (randomLoss) await subnet.lab.setRandomLoss(5);
      const before = await maxHeight(subnet, ALL);
      await subnet.waitForHeight(ALL, before + 5, 90_000);
      await sleep(10_000);
      await subnet.lab.heal();
      return {
        faults: netem
          ? "netem on every link: 100+-50 ms delay, 5% loss, >= 10 s"
          : `every link 1 Mbit/s with a 20-packet queue (tail drop)${randomLoss ? " and 5% random loss (iptables)" : ""}, >= 10 s (kernel without sch_netem)`,
        recoveryMs: await recover(subnet),
      };
    },
  },
  "flapping-partitions": {
    run: async ({ subnet, rand }) => {
      const splits = 8;
      for (let k = 0; k < splits; k++) {
        const shuffled = [...ALL].sort(() => rand(3) - 1);
        const cut = 1 + rand(3);
        await subnet.lab.partition(shuffled.slice(0, cut), shuffled.slice(cut));
        await sleep(2_000 + rand(2_000));
        await subnet.lab.heal();
        await sleep(rand(1_500));
      }
      return { faults: `${splits} random splits of 2-4 s, 0-1.5 s apart`, recoveryMs: await recover(subnet) };
    },
  },
  "kill9-random": { run: (ctx) => killRandom(ctx, 8, "") },
  // The same with state pruning every 16 heights: the kills land in copies and drops too. readChain then walks the
  // newest heights' state on every node's disk.
  "kill9-pruning": {
    stateHistory: 16,
    run: (ctx) => killRandom(ctx, 10, " with storage.stateHistory 16 (a pruning cycle every 16 heights)"),
  },
  "kill9-all": {
    run: async ({ subnet, down, rand }) => {
      let worst = 0;
      for (let k = 0; k < 3; k++) {
        await sleep(500 + rand(1_500));
        for (const v of ALL) {
          down.add(v);
          subnet.kill9(v);
        }
        await sleep(500);
        for (const v of ALL) {
          subnet.start(v);
          down.delete(v);
        }
        worst = Math.max(worst, await recover(subnet, ALL, 90_000));
      }
      return { faults: "3x SIGKILL of all 4 validators at once, restart", recoveryMs: worst };
    },
  },
  "double-voter": {
    notStarted: [3],
    run: async (ctx) => {
      const { subnet } = ctx;
      ctx.honest = [0, 1, 2];
      const attacker = await ByzantineValidator.start(subnet, 3, "double-vote");
      try {
        const before = await maxHeight(subnet, [0, 1, 2]);
        await subnet.waitForHeight([0, 1, 2], before + 10, 60_000);
        const evidence = await subnet.metric(0, "dcn_consensus_evidence_total");
        if (!(evidence > 0)) throw new Error("no evidence recorded against the double voter");
        return {
          faults: `validator-3 signs value and nil, prevote and precommit, at every round (${attacker.sent.doubleVotes} votes)`,
          recoveryMs: null,
        };
      } finally {
        await attacker.stop();
      }
    },
  },
  outsiders: {
    notStarted: [3],
    run: async (ctx) => {
      const { subnet } = ctx;
      ctx.honest = [0, 1, 2];
      // An unknown peer key: the gaters refuse the connection.
      const outsider = await Network.create({
        privateKey: generatePeerKey(),
        listen: [`/ip4/${subnet.lab.hostIp}/tcp/0`],
        peers: subnet.validators.map((n) => n.p2p),
        allowedPeers: subnet.nodes.map((n) => n.peerId),
      });
      await outsider.start();
      // validator-3's admitted peer, with a BLS key outside the set (a removed validator's) and replays.
      const attacker = await ByzantineValidator.start(subnet, 3, "passive");
      try {
        await sleep(4_000);
        const admitted = (await Promise.all([0, 1, 2].map((i) => subnet.status(i)))).some((s) =>
          s?.peers.includes(outsider.peerId),
        );
        if (admitted) throw new Error("a validator admitted the unknown peer");
        const rejectsBefore = await subnet.metric(0, "dcn_p2p_gossip_messages_total", ['code="bad_signature"']);
        const forged = await attacker.forge(generateBlsSecretKey(), 40);
        const replayed = await attacker.replay();
        await sleep(2_000);
        const rejects =
          (await subnet.metric(0, "dcn_p2p_gossip_messages_total", ['code="bad_signature"'])) - rejectsBefore;
        if (!(rejects > 0)) throw new Error("no forged vote was rejected as bad_signature");
        const before = await maxHeight(subnet, [0, 1, 2]);
        await subnet.waitForHeight([0, 1, 2], before + 3, 30_000);
        return {
          faults: `unknown peer key (refused); ${forged} votes signed by a key outside the set (${rejects} rejected at validator-0, sender scored down); ${replayed} replayed old votes`,
          recoveryMs: null,
        };
      } finally {
        await outsider.stop();
        await attacker.stop();
      }
    },
  },
  "mempool-flood": {
    notStarted: [3],
    run: async (ctx) => {
      const { subnet } = ctx;
      ctx.honest = [0, 1, 2];
      const rssBefore = [0, 1, 2].map((i) => subnet.rssMiB(i));
      const sign = (key: Uint8Array, nonce: number) =>
        signEip1559(
          {
            chainId: FAULT_CHAIN_ID,
            nonce,
            maxPriorityFeePerGas: 1_000_000_000n,
            maxFeePerGas: 100_000_000_000n,
            gas: 21_000n,
            to: `0x${"fe".repeat(20)}`,
            value: 1n,
            data: new Uint8Array(0),
          },
          key,
        ).raw;
      const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString("hex")}`;
      // Many senders over RPC: 2,000 fresh keys (no balance) and 4 funded accounts sending 500 valid transfers each.
      const strangers = Array.from({ length: 2_000 }, (_, k) => sign(keccak256(utf8(`flood stranger ${k}`)), 0));
      const funded = devnetAccounts().slice(6, 10);
      const valid = funded.flatMap((a) => Array.from({ length: 500 }, (_, n) => sign(fromHex(a.privateKey), n)));
      // One peer over gossip: 3,000 transfers of one funded account with nonces far ahead (never executable).
      const last = funded[3];
      const gapped = Array.from({ length: 3_000 }, (_, n) => sign(fromHex(last?.privateKey ?? "0x"), 10_000 + n));
      const attacker = await ByzantineValidator.start(subnet, 3, "passive");
      let answered = 0;
      try {
        await sleep(2_000);
        const all = [...strangers, ...valid];
        const sending = (async () => {
          for (let k = 0; k < all.length; k += 100) {
            const calls = all
              .slice(k, k + 100)
              .map((raw) => ({ method: "eth_sendRawTransaction", params: [hex(raw)] }));
            const out = await subnet
              .rpc(k % 3)
              .batch(calls)
              .catch(() => []);
            answered += out.length;
          }
        })();
        await Promise.all([sending, attacker.publishTransactions(gapped)]);
        const before = await maxHeight(subnet, [0, 1, 2]);
        await subnet.waitForHeight([0, 1, 2], before + 5, 60_000);
      } finally {
        await attacker.stop();
      }
      const growth = Math.max(...[0, 1, 2].map((i, k) => subnet.rssMiB(i) - (rssBefore[k] ?? 0)));
      return {
        faults:
          `RPC: ${strangers.length} txs from unfunded keys + ${valid.length} valid txs from 4 senders (${answered} answered); ` +
          `gossip from one peer: ${gapped.length} nonce-gapped txs; node RSS growth <= ${growth.toFixed(0)} MiB`,
        recoveryMs: null,
      };
    },
  },
  "vote-flood": {
    notStarted: [3],
    run: async (ctx) => {
      const { subnet } = ctx;
      ctx.honest = [0, 1, 2];
      const attacker = await ByzantineValidator.start(subnet, 3, "passive");
      try {
        await sleep(2_000);
        const before = await maxHeight(subnet, [0, 1, 2]);
        const started = Date.now();
        await attacker.flood(20_000, 400);
        const blocks = (await maxHeight(subnet, [0, 1, 2])) - before;
        if (blocks < 5) throw new Error(`only ${blocks} heights in 20 s of flood`);
        const seconds = (Date.now() - started) / 1_000;
        return {
          faults: `validator-3 floods validly signed stale votes: ${attacker.sent.floodVotes} in ${seconds.toFixed(0)} s`,
          recoveryMs: null,
        };
      } finally {
        await attacker.stop();
      }
    },
  },
  "equivocating-proposer": {
    notStarted: [3],
    run: async (ctx) => {
      const { subnet } = ctx;
      const honest = [0, 1, 2];
      ctx.honest = honest;
      const attacker = await ByzantineValidator.start(subnet, 3, "equivocate");
      try {
        const before = await maxHeight(subnet, honest);
        await subnet.waitFor("3 equivocations", async () => attacker.sent.equivocations >= 3, 90_000);
        await subnet.waitForHeight(honest, before + 10, 60_000);
        // Both blocks of every pair are valid: an honest node that found one invalid would count it here.
        const invalid = await metricPerNode(subnet, honest, "dcn_consensus_invalid_blocks_total");
        if (invalid.some((n) => n > 0))
          throw new Error(`honest nodes judged the attacker's blocks invalid: ${invalid}`);
        const detected = await metricPerNode(subnet, honest, "dcn_consensus_evidence_total", [
          'kind="duplicateProposal"',
        ]);
        if (!detected.every((n) => n > 0)) throw new Error(`duplicateProposal evidence per honest node: ${detected}`);
        if (attacker.proposerMismatches > 0) throw new Error("the attacker's proposer computation is wrong");
        // Valid blocks, so a height where every honest node saw the same one first may commit it; none means every
        // split held (the honest prevotes divided, the round failed, an honest proposer's round decided).
        const committed = await attacker.committedOwnBlocks(subnet, honest);
        return {
          faults: `validator-3, at each of its proposer turns, sends block A to validators 0,1 and B to 2 (alternating): ${attacker.sent.equivocations} pairs at ${attacker.proposedAt.join(" ")}`,
          recoveryMs: null,
          notes: [
            `duplicateProposal evidence detected by validators 0,1,2: ${detected.join("/")}; heights that committed A or B: ${committed}`,
          ],
        };
      } finally {
        await attacker.stop();
      }
    },
  },
  "invalid-block-proposer": {
    notStarted: [3],
    run: async (ctx) => {
      const { subnet } = ctx;
      const honest = [0, 1, 2];
      ctx.honest = honest;
      const attacker = await ByzantineValidator.start(subnet, 3, "invalid-block");
      try {
        const before = await maxHeight(subnet, honest);
        await subnet.waitFor("3 invalid proposals", async () => attacker.sent.invalidBlocks >= 3, 90_000);
        await subnet.waitForHeight(honest, before + 10, 60_000);
        const invalid = await metricPerNode(subnet, honest, "dcn_consensus_invalid_blocks_total", [
          'code="execution_mismatch"',
        ]);
        if (!invalid.every((n) => n > 0)) throw new Error(`invalid blocks counted per honest node: ${invalid}`);
        const logged = honest.filter((i) => {
          const log = readFileSync(join(subnet.node(i).dir, "node.log"), "utf8");
          return log.includes("invalid block proposed") && log.includes("execution_mismatch");
        });
        if (logged.length !== honest.length) throw new Error(`"invalid block proposed" logged only by ${logged}`);
        // No honest node committed a block of the attacker (all of them carry a wrong state root).
        const committed = await attacker.committedOwnBlocks(subnet, honest);
        const connected = await attacker.connectedTo(subnet, 0);
        return {
          faults: `validator-3 proposes blocks with a wrong state root at each of its turns: ${attacker.sent.invalidBlocks} at ${attacker.proposedAt.join(" ")}`,
          recoveryMs: null,
          violations: committed,
          violationsWhat: "attacker blocks committed",
          notes: [
            `invalid blocks counted (execution_mismatch) by validators 0,1,2: ${invalid.join("/")}`,
            `attacker's blocks committed: ${committed}; attacker still connected to validator-0: ${connected}`,
          ],
        };
      } finally {
        await attacker.stop();
      }
    },
  },
  "foreign-key-proposer": {
    notStarted: [3],
    run: async (ctx) => {
      const { subnet } = ctx;
      const honest = [0, 1, 2];
      ctx.honest = honest;
      const attacker = await ByzantineValidator.start(subnet, 3, "foreign-proposer");
      try {
        const rejectsBefore = await metricPerNode(subnet, honest, "dcn_p2p_gossip_messages_total", [
          'code="bad_signature"',
        ]);
        const before = await maxHeight(subnet, honest);
        await subnet.waitFor("3 proposals", async () => attacker.sent.proposals >= 3, 90_000);
        await subnet.waitForHeight(honest, before + 10, 60_000);
        const rejects = (
          await metricPerNode(subnet, honest, "dcn_p2p_gossip_messages_total", ['code="bad_signature"'])
        ).map((n, k) => n - (rejectsBefore[k] ?? 0));
        if (!rejects.some((n) => n > 0)) throw new Error("no proposal signed by a key outside the set was rejected");
        const committed = await attacker.committedOwnBlocks(subnet, honest);
        const connected = await attacker.connectedTo(subnet, 0);
        return {
          faults: `validator-3's peer signs its proposals with a BLS key outside the set: ${attacker.sent.proposals} at ${attacker.proposedAt.join(" ")}`,
          recoveryMs: null,
          violations: committed,
          violationsWhat: "attacker blocks committed",
          notes: [
            `bad_signature rejects at validators 0,1,2: ${rejects.join("/")}; blocks committed: ${committed}; still connected to validator-0: ${connected}`,
          ],
        };
      } finally {
        await attacker.stop();
      }
    },
  },
  "kill-proposing": killAt("proposing"),
  "kill-after-prevote": killAt("after-prevote"),
  "kill-after-precommit": killAt("after-precommit"),
  "kill-mid-commit": killAt("mid-commit"),
  "kill-mid-write": killAt("mid-write"),
};

async function killRandom({ subnet, down, rand }: Ctx, kills: number, what: string): Promise<Outcome> {
  let worst = 0;
  for (let k = 0; k < kills; k++) {
    const v = rand(4);
    await sleep(200 + rand(1_500)); // anywhere in a height: proposing, voting, committing, writing
    down.add(v);
    subnet.kill9(v);
    await sleep(200 + rand(1_800));
    subnet.start(v);
    down.delete(v);
    worst = Math.max(worst, await recover(subnet));
  }
  return {
    faults: `${kills} SIGKILLs of a random validator at random instants, restart 0.2-2 s later${what}`,
    recoveryMs: worst,
  };
}

async function runScenario(name: string, seed: number): Promise<Row> {
  const spec = scenarios[name];
  if (spec === undefined) throw new Error(`no scenario ${name}`);
  const prefix = NetLab.newPrefix();
  const row: Row = {
    scenario: name,
    faults: "",
    blocks: 0,
    accepted: 0,
    lost: 0,
    safety: 0,
    recoveryMs: null,
    error: null,
    notes: [],
  };
  let subnet: FaultSubnet | null = null;
  let load: Load | null = null;
  try {
    subnet = await FaultSubnet.create({
      prefix,
      validators: 4,
      ...(spec.stateHistory === undefined ? {} : { stateHistory: spec.stateHistory }),
    });
    const running = ALL.filter((i) => !(spec.notStarted ?? []).includes(i));
    const rand = prng(seed);
    const env = (await spec.env?.(subnet, rand)) ?? new Map<number, Record<string, string>>();
    for (const i of running) subnet.start(i, env.get(i) ?? {});
    await subnet.waitForHeight(running, 2, 60_000);
    const ctx: Ctx = { subnet, down: new Set(), rand, honest: [...ALL] };
    const s = subnet;
    load = new Load(subnet, {
      chainId: FAULT_CHAIN_ID,
      ratePerSec: 20,
      wallets: 6,
      targets: () => running.filter((i) => !ctx.down.has(i)),
    });
    const h0 = await maxHeight(s, running);
    load.start();
    const outcome = await spec.run(ctx);
    row.faults = outcome.faults;
    row.recoveryMs = outcome.recoveryMs;
    const count = (what: string, n: number) => {
      row.safety += n;
      if (n > 0) row.notes.push(`${what}: ${n}`);
    };
    count(outcome.violationsWhat ?? "heights committed without a quorum", outcome.violations ?? 0);
    row.notes.push(...(outcome.notes ?? []));
    await load.settle(60_000);
    const result = await load.verify(running);
    row.accepted = result.accepted;
    row.lost = result.lost;
    count("receipts that differ or vanished", result.receiptMismatches);
    count("forked heights over RPC", (await s.forks(running)).length);
    row.blocks = (await maxHeight(s, running)) - h0;
    await s.stopAll();
    const { reports, forkHeights } = await s.storedChains();
    count("forked heights on disk", forkHeights.length);
    const gaps = reports.flatMap((r) => r.stateGaps);
    count("stored heights whose state is not whole", gaps.length);
    if (gaps[0] !== undefined) row.notes.push(`first state gap: height ${gaps[0].height}: ${gaps[0].error}`);
    count("evidence against honest validators", (await s.evidenceAgainst(reports, ctx.honest)).length);
    const byzantine = ALL.filter((i) => !ctx.honest.includes(i));
    if (byzantine.length > 0) {
      const against = await s.evidenceAgainst(reports, byzantine);
      row.notes.push(`evidence records against the Byzantine validator, over all nodes: ${against.length}`);
    }
  } catch (error) {
    row.error = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
    if (process.env.DCN_FAULTS_VERBOSE === "1" && error instanceof Error) console.error(error.message);
  } finally {
    await load?.stop();
    await subnet?.close();
    await sweep(prefix);
  }
  return row;
}

function printTable(rows: readonly Row[]): void {
  const header = ["scenario", "faults injected", "blocks", "txs accepted", "txs lost", "safety violations", "recovery"];
  const lines = rows.map((r) => [
    r.scenario,
    (r.error === null ? r.faults : `FAILED: ${r.error}`).replaceAll("|", "/"),
    String(r.blocks),
    String(r.accepted),
    String(r.lost),
    String(r.safety),
    r.recoveryMs === null ? "-" : `${(r.recoveryMs / 1_000).toFixed(1)} s`,
  ]);
  console.log(`| ${header.join(" | ")} |`);
  console.log(`|${header.map(() => "---").join("|")}|`);
  for (const l of lines) console.log(`| ${l.join(" | ")} |`);
  for (const r of rows) if (r.notes.length > 0) console.log(`${r.scenario}: ${r.notes.join("; ")}`);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i < 0 ? undefined : args[i + 1];
  };
  const reason = netnsUnavailable();
  if (reason !== null) {
    console.log(`test:faults skipped: ${reason}. Run as root on Linux with ip netns, veth and tc (htb).`);
    return 0;
  }
  const seed = Number(flag("--seed") ?? Date.now() % 1_000_000);
  const only = flag("--only")?.split(",");
  const names = Object.keys(scenarios).filter((n) => only === undefined || only.includes(n));
  console.log(`fault suite: ${names.length} scenarios, seed ${seed} (replay: npm run test:faults -- --seed ${seed})`);
  const rows: Row[] = [];
  for (const name of names) {
    const started = Date.now();
    const row = await runScenario(name, seed);
    rows.push(row);
    const verdict = row.error === null && row.lost === 0 && row.safety === 0 ? "ok" : "FAIL";
    console.log(`  ${name}: ${verdict} in ${((Date.now() - started) / 1_000).toFixed(0)} s`);
  }
  printTable(rows);
  const failed = rows.filter((r) => r.error !== null || r.lost > 0 || r.safety > 0);
  console.log(failed.length === 0 ? "all scenarios passed" : `${failed.length} scenario(s) failed (seed ${seed})`);
  return failed.length === 0 ? 0 : 1;
}

process.exitCode = await main();
