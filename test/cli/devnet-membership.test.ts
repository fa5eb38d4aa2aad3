// Acceptance on the devnet, real processes on 127.0.0.1: "a newly approved and staked operator joins the active set at
// the next epoch and starts voting; an exited one stops". `dcn devnet --fresh` (4 validators, no replica, embedded
// L1) runs; a 5th node is made with `dcn init --insecure`, governance approves its operator (`dcn approve`), it
// registers (`dcn register`), gets LUMIA and self-stakes (`dcn stake`), and starts (`dcn start`). After the next
// registry epoch every node's set history has a set with it, certificates of later heights verify against that set
// and carry its bit, and it reports itself as a voting validator at the others' height. Then validator-3 asks to
// leave (`dcn exit`): after the next epoch the set no longer has it, later certificates verify without it, and the
// subnet keeps committing on every remaining node. Then the 5th validator's keys sign two conflicting prevotes (its node
// stopped): the others submit the evidence to the L1 Slashing contract, which slashes and jails it, and the next
// epoch's set drops it. Once a change is on L1 the test mines the L1 up to the registry's
// next epoch block (anvil_mine), so that the devnet's epoch keeper advances the epoch within seconds instead of after up
// to 20 interval-mined blocks.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPublicClient, encodeFunctionData, http } from "viem";
import { afterAll, describe, expect, it } from "vitest";
import { fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { certificateSigners, decodeCertificate, verifyCertificate } from "../../consensus/certificate.ts";
import { voteDigestOf } from "../../consensus/signing.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import { Network } from "../../p2p/index.ts";
import { joiningNodeConfig, stopChild } from "../../src/cli/devnet.ts";
import { blstScheme, createBlstSigner } from "../../src/crypto/blst.ts";
import type { PublicIdentity } from "../../src/keys/keys.ts";
import { loadKeystore } from "../../src/keys/keystore.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { topics } from "../../src/node/messages.ts";
import { LumiaToken, SequencerRegistry, Slashing } from "../../staking-contracts/artifacts.ts";

const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");
/** anvil's first dev account (its well-known test mnemonic): the devnet registry's governance. */
const ANVIL_ACCOUNT_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const dir = mkdtempSync(join(tmpdir(), "dcn-membership-"));
const data = join(dir, "devnet");
const started: ChildProcess[] = [];
const anvilPids: number[] = [];

afterAll(async () => {
  // The joining node first (it polls the devnet's L1), then the devnet, which stops its nodes and anvil.
  for (const child of [...started].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }
  for (const pid of anvilPids) if (alive(pid)) process.kill(pid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Ports from the pid, in a range of their own (test/cli/devnet-fixture.ts lists them all), below Linux's ephemeral
 * range (32768-60999): a fixed port there can be taken at any moment by an outgoing connection's local port.
 */
function ports() {
  const base = 28_000 + ((process.pid * 17) % 100) * 20;
  return {
    devnet: [
      "--base-port",
      base,
      "--metrics-base-port",
      base + 5,
      "--rpc-base-port",
      base + 10,
      "--l1-port",
      base + 15,
    ],
    joining: { p2p: base + 4, metrics: base + 9, rpc: base + 14 },
  };
}

/** One `dcn` command as a process; resolves with its exit code and output. */
function dcn(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DCN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(3_000),
  });
  const json = (await res.json()) as { result?: T; error?: { message: string } };
  if (json.error !== undefined) throw new Error(`${method}: ${json.error.message}`);
  return json.result as T;
}

interface Status {
  role: string;
  address: string | null;
  headHeight: number;
  votingNow: boolean;
  l1: { epoch?: number | null };
}

async function status(rpcUrl: string): Promise<Status | null> {
  try {
    return await rpc<Status>(rpcUrl, "lumia_status");
  } catch {
    return null;
  }
}

/** Processes whose exit fails the test at once (with the logs) instead of at the next timeout. */
const mustRun: { name: string; child: ChildProcess }[] = [];

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, log: () => string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = mustRun.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
    if (dead !== undefined) throw new Error(`${dead.name} exited while waiting for ${what}\n${log()}`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}\n${log()}`);
}

/** The set history of a node with each set's members, rebuilt from keys and powers (its id checked). */
async function setHistory(rpcUrl: string): Promise<{ fromHeight: number; set: ValidatorSet }[]> {
  const history = await rpc<{ fromHeight: Hex; id: Hex }[]>(rpcUrl, "lumia_getValidatorSetHistory");
  return Promise.all(
    history.map(async (h) => {
      const json = await rpc<{ validators: { publicKey: Hex; votingPower: Hex }[] }>(rpcUrl, "lumia_getValidatorSet", [
        h.id,
      ]);
      const set = createValidatorSet(
        json.validators.map((v) => ({ publicKey: fromHex(v.publicKey), votingPower: BigInt(v.votingPower) })),
      );
      expect(set.id).toBe(h.id);
      return { fromHeight: Number(h.fromHeight), set };
    }),
  );
}

const setAt = (history: { fromHeight: number; set: ValidatorSet }[], height: number): ValidatorSet => {
  const entry = history.filter((h) => h.fromHeight <= height).at(-1);
  if (entry === undefined) throw new Error(`no set for height ${height}`);
  return entry.set;
};

/**
 * The certificate of `height` from a node, verified (BLS) against `set`; returns the signers' addresses, or null when
 * the node did not answer (a busy machine: ask again).
 */
async function signersAt(rpcUrl: string, height: number, set: ValidatorSet): Promise<string[] | null> {
  const answer = await rpc<{ certificate: Hex }>(rpcUrl, "lumia_getCertificate", [`0x${height.toString(16)}`]).catch(
    () => null,
  );
  if (answer === null) return null;
  const cert = decodeCertificate(fromHex(answer.certificate));
  const verdict = verifyCertificate(cert, set, { scheme: blstScheme });
  expect(verdict, `certificate of height ${height}`).toMatchObject({ ok: true });
  return certificateSigners(cert, set).map((i) => set.validators[i]?.address ?? "");
}

/**
 * Mines the L1 up to the block where the registry's current epoch may end: the devnet's epoch keeper (which checks every
 * 2 s) then advances the epoch at once, as it would after the epoch's blocks had come one a second.
 */
async function mineToNextEpoch(l1: string, registry: Hex): Promise<void> {
  const data = encodeFunctionData({ abi: SequencerRegistry.abi, functionName: "nextEpochBlock" });
  const [due, head] = await Promise.all([
    jsonRpc<Hex>(l1, "eth_call", [{ to: registry, data }, "latest"], 5_000),
    jsonRpc<Hex>(l1, "eth_blockNumber", [], 5_000),
  ]);
  const blocks = BigInt(due) - BigInt(head);
  if (blocks > 0n) await jsonRpc(l1, "anvil_mine", [`0x${blocks.toString(16)}`], 5_000);
}

interface DevnetJson {
  chainId: string;
  l1: { rpc: string; pid: number | null; contracts: Record<string, Hex> };
  nodes: { name: string; rpc: string; metrics: string; address: string; p2p: string; peerId: string }[];
}

describe("validators join and leave a running devnet through the L1 registry", () => {
  it("a registered and staked 5th validator enters the set and votes; an exited one leaves it", async () => {
    const p = ports();
    const devnetOut = { text: "" };
    const devnet = spawn(
      process.execPath,
      [DCN, "devnet", "--fresh", "--validators", "4", "--replicas", "0", "--data-dir", data, ...p.devnet.map(String)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    started.push(devnet);
    mustRun.push({ name: "dcn devnet", child: devnet });
    devnet.stdout.on("data", (d: Buffer) => {
      devnetOut.text += d.toString();
    });
    devnet.stderr.on("data", (d: Buffer) => {
      devnetOut.text += d.toString();
    });
    const nodeDir = join(dir, "validator-new");
    const logs = () => {
      const tails = ["validator-0", "validator-3"].map((n) => join(data, n, "node.log"));
      tails.push(join(nodeDir, "node.log"));
      const parts = tails
        .filter((f) => existsSync(f))
        .map((f) => {
          const lines = readFileSync(f, "utf8").trimEnd().split("\n");
          // A crash's cause is at the top of its stack trace, not in the last lines.
          const firstError = lines.findIndex((l) => /^\S*Error|"level":"(fatal|error)"/.test(l));
          const head = firstError >= 0 ? lines.slice(firstError, firstError + 6) : [];
          return `--- ${f}\n${[...head, "...", ...lines.slice(-10)].join("\n")}`;
        });
      return `${devnetOut.text.split("\n").slice(-15).join("\n")}\n${parts.join("\n")}`;
    };
    // The new operator's keys meanwhile (they need no devnet).
    const initDone = dcn(["init", "--insecure", "--dir", nodeDir]);
    const devnetPath = join(data, "devnet.json");
    await waitUntil("the devnet's nodes", async () => devnetOut.text.includes("wrote"), 60_000, logs);
    const info = JSON.parse(readFileSync(devnetPath, "utf8")) as DevnetJson;
    if (info.l1.pid !== null) anvilPids.push(info.l1.pid);
    const [v0, v1, v2, v3] = info.nodes;
    if (v0 === undefined || v1 === undefined || v2 === undefined || v3 === undefined) throw new Error("4 nodes");
    await waitUntil(
      "4 validators committing",
      async () => (await Promise.all(info.nodes.map((n) => status(n.rpc)))).every((s) => (s?.headHeight ?? 0) >= 2),
      60_000,
      logs,
    );

    // The operator side: keys, governance approval, registration, LUMIA and ETH for gas, self-stake, start.
    const init = await initDone;
    expect(init.code, init.out).toBe(0);
    const identity = JSON.parse(readFileSync(join(nodeDir, "identity.json"), "utf8")) as PublicIdentity;
    const joining = await joiningNodeConfig(data, nodeDir, p.joining);
    const govKey = join(dir, "governance.key");
    writeFileSync(govKey, `${ANVIL_ACCOUNT_0_KEY}\n`, { mode: 0o600 });
    const l1 = info.l1.rpc;
    const [governance] = await jsonRpc<Hex[]>(l1, "eth_accounts", [], 5_000);
    const tx = (params: Record<string, string>) =>
      jsonRpc<Hex>(l1, "eth_sendTransaction", [{ from: governance, ...params }], 5_000);
    await tx({ to: identity.operator, value: `0x${(10n ** 19n).toString(16)}` });
    const token = info.l1.contracts.token;
    if (token === undefined) throw new Error("no token");
    const lumia = 150n * 10n ** 18n;
    await tx({
      to: token,
      data: encodeFunctionData({ abi: LumiaToken.abi, functionName: "transfer", args: [identity.operator, lumia] }),
    });

    const early = await dcn(["register", "--dir", nodeDir, "--devnet", data]);
    expect(early.code).toBe(1);
    expect(early.out).toMatch(/is not approved by the registry's governance yet.*dcn approve --operator/);
    const approve = await dcn(["approve", "--operator", identity.operator, "--key-file", govKey, "--devnet", data]);
    expect(approve.code, approve.out).toBe(0);
    expect(approve.out).toMatch(/approved operator 0x[0-9a-fA-F]{40}: tx 0x[0-9a-f]{64}/);
    const register = await dcn(["register", "--dir", nodeDir, "--devnet", data]);
    expect(register.code, register.out).toBe(0);
    expect(register.out).toMatch(/registered sequencer 5: operator/);
    // dcn stake with the operator key (the insecure devnet keystore holds it in the clear).
    const operatorKey = join(dir, "operator.key");
    const keystore = JSON.parse(readFileSync(join(nodeDir, "keys", "operator.json"), "utf8")) as { secret: string };
    writeFileSync(operatorKey, `${keystore.secret}\n`, { mode: 0o600 });
    const stake = await dcn(["stake", "--amount", "100", "--key-file", operatorKey, "--devnet", data]);
    expect(stake.code, stake.out).toBe(0);
    expect(stake.out).toMatch(/stake 100 LUMIA in sequencer 5/);

    const log = openSync(join(nodeDir, "node.log"), "a");
    const node = spawn(process.execPath, [DCN, "start", "--config", joining.configPath], {
      stdio: ["ignore", log, log],
    });
    started.push(node);
    mustRun.push({ name: "the joining node", child: node });
    const registry = info.l1.contracts.registry;
    if (registry === undefined) throw new Error("no registry");
    await mineToNextEpoch(l1, registry);

    // The next epoch's set has it: every node's history gains a set with the new validator.
    let joinedAt = 0;
    await waitUntil(
      "a validator set with the new validator",
      async () => {
        const history = await setHistory(v0.rpc).catch(() => []);
        const entry = history.find((h) => h.set.validators.some((v) => v.address === identity.address));
        joinedAt = entry?.fromHeight ?? 0;
        return entry !== undefined;
      },
      90_000,
      logs,
    );
    const afterJoin = await setHistory(v0.rpc);
    const joinedSet = setAt(afterJoin, joinedAt);
    expect(joinedSet.validators.map((v) => v.address).sort()).toEqual(
      [identity.address, ...info.nodes.map((n) => n.address)].sort(),
    );
    // It votes: certificates of later heights verify against the 5-validator set and carry its bit.
    let carried = 0;
    let next = joinedAt;
    await waitUntil(
      "3 certificates signed by the new validator",
      async () => {
        const head = (await status(v0.rpc))?.headHeight ?? 0;
        for (; next <= head; next++) {
          const signers = await signersAt(v0.rpc, next, setAt(afterJoin, next));
          if (signers === null) return false;
          if (signers.includes(identity.address)) carried++;
        }
        return carried >= 3;
      },
      60_000,
      logs,
    );
    const self = await status(joining.rpc);
    expect(self).toMatchObject({ role: "validator", address: identity.address, votingNow: true });
    const v0Head = (await status(v0.rpc))?.headHeight ?? 0;
    await waitUntil(
      "the new node at the others' height",
      async () => ((await status(joining.rpc))?.headHeight ?? 0) >= v0Head,
      30_000,
      logs,
    );

    // validator-3 leaves: after the next epoch the set no longer has it, and later certificates verify without it.
    const exit = await dcn(["exit", "--dir", join(data, "validator-3"), "--devnet", data]);
    expect(exit.code, exit.out).toBe(0);
    expect(exit.out).toMatch(/exit requested for sequencer 4: tx 0x[0-9a-f]{64}.*\n.*leaves the validator set/);
    const again = await dcn(["exit", "--dir", join(data, "validator-3"), "--devnet", data]);
    expect(again.code).toBe(1);
    // "exited" when the epoch keeper advanced the registry between the two commands.
    expect(again.out).toMatch(/sequencer 4 is exit(ing|ed) already/);
    await mineToNextEpoch(l1, registry);
    let leftAt = 0;
    await waitUntil(
      "a validator set without validator-3",
      async () => {
        const history = await setHistory(v0.rpc).catch(() => []);
        const entry = history.find(
          (h) => h.fromHeight > joinedAt && !h.set.validators.some((v) => v.address === v3.address),
        );
        leftAt = entry?.fromHeight ?? 0;
        return entry !== undefined;
      },
      90_000,
      logs,
    );
    const afterExit = await setHistory(v0.rpc);
    expect(
      setAt(afterExit, leftAt)
        .validators.map((v) => v.address)
        .sort(),
    ).toEqual([identity.address, v0.address, v1.address, v2.address].sort());
    const remaining = [v0, v1, v2, { rpc: joining.rpc }];
    await waitUntil(
      "every remaining node 5 heights past the exit",
      async () =>
        (await Promise.all(remaining.map((n) => status(n.rpc)))).every((s) => (s?.headHeight ?? 0) >= leftAt + 5),
      60_000,
      logs,
    );
    for (let h = leftAt; h < leftAt + 5; h++) {
      const signers = await signersAt(v1.rpc, h, setAt(afterExit, h));
      expect(signers).not.toBeNull();
      expect(signers).not.toContain(v3.address);
    }
    // Every remaining node, the one that synced from genesis included, has the same set history.
    const ids = (h: { fromHeight: number; set: ValidatorSet }[]) => h.map((e) => `${e.fromHeight}:${e.set.id}`);
    for (const n of remaining) expect(ids(await setHistory(n.rpc))).toEqual(ids(afterExit));
    // The exited validator's node follows the chain without a vote.
    await waitUntil(
      "validator-3 no longer voting",
      async () => (await status(v3.rpc))?.votingNow === false,
      20_000,
      logs,
    );

    // The 5th validator equivocates: with its node stopped, its keys sign two different prevotes of one round, sent to
    // the others over libp2p. Their evidence goes to the L1 Slashing contract (l1.slashing in the devnet's configs):
    // the validator is slashed and jailed, and the next epoch's set no longer has it.
    mustRun.splice(
      mustRun.findIndex((m) => m.child === node),
      1,
    );
    await stopChild(node);
    const peerKey = await loadKeystore(join(nodeDir, "keys", "peer.json"), "peer", undefined);
    const consensusKey = await loadKeystore(join(nodeDir, "keys", "consensus.json"), "consensus", undefined);
    const equivocator = createBlstSigner(consensusKey.secret);
    const votesTopic = topics(BigInt(info.chainId)).votes;
    const net = await Network.create({
      privateKey: peerKey.secret,
      listen: ["/ip4/127.0.0.1/tcp/0"],
      peers: info.nodes.slice(0, 3).map((n) => n.p2p),
      allowedPeers: info.nodes.map((n) => n.peerId),
    });
    net.subscribe({
      name: votesTopic,
      maxBytes: 1 << 16,
      queueLength: 16,
      dropPolicy: "drop-oldest",
      validate: (data: Uint8Array) => ({ kind: "accept" as const, value: data }),
      onMessage: () => {},
    });
    await net.start();
    try {
      const evidenceOn = async (n: { metrics: string }) => {
        const text = await (await fetch(`${n.metrics}/metrics`)).text();
        return text.split("\n").some((l) => /^dcn_consensus_evidence_total\{.*\} [1-9]/.test(l));
      };
      // Gossip gives no receipt and a height may commit before the votes arrive: send a fresh pair until one is
      // caught. The others are at most a height apart: the pair is for the one v0 is deciding.
      for (let attempt = 0; attempt < 40; attempt++) {
        const height = ((await status(v0.rpc))?.headHeight ?? 0) + 1;
        const set = setAt(afterExit, height);
        const index = set.validators.findIndex((v) => v.address === identity.address);
        for (const label of ["a", "b"]) {
          const vote = {
            type: "prevote" as const,
            height,
            round: 0,
            value: toHex(keccak256(utf8(`equivocation ${attempt} ${label}`))),
            validatorIndex: index,
          };
          const signature = equivocator.sign(voteDigestOf(BigInt(info.chainId), vote));
          await net.publish(votesTopic, encodeSignedVote({ ...vote, signature })).catch(() => undefined);
        }
        await new Promise((r) => setTimeout(r, 500));
        if ((await Promise.all(info.nodes.slice(0, 3).map(evidenceOn))).some(Boolean)) break;
      }
    } finally {
      await net.stop();
    }
    const slashing = info.l1.contracts.slashing;
    if (slashing === undefined) throw new Error("no Slashing contract");
    const l1Client = createPublicClient({ transport: http(l1) });
    const slashed = async () =>
      (
        await l1Client.getContractEvents({
          address: slashing,
          abi: Slashing.abi,
          eventName: "EquivocationSlashed",
          fromBlock: 0n,
        })
      ).map((e) => (e.args as { sequencerId: number }).sequencerId);
    await waitUntil("EquivocationSlashed on L1", async () => (await slashed()).length > 0, 60_000, logs);
    const sequencerId = Number(
      await l1Client.readContract({
        address: registry,
        abi: SequencerRegistry.abi,
        functionName: "sequencerIdOf",
        args: [identity.operator as Hex],
      }),
    );
    expect(await slashed()).toEqual([sequencerId]);
    // The submitter logs it once it has seen the receipt (this test may see the event first).
    await waitUntil(
      "a validator's log of the submission",
      async () =>
        info.nodes
          .slice(0, 3)
          .some((n) =>
            readFileSync(join(data, n.name, "node.log"), "utf8").includes("submitted equivocation evidence"),
          ),
      15_000,
      logs,
    );
    // Jailed: the next epoch's set drops it.
    await mineToNextEpoch(l1, registry);
    await waitUntil(
      "a validator set without the jailed validator",
      async () => {
        const history = await setHistory(v0.rpc).catch(() => []);
        return history.some(
          (h) => h.fromHeight > leftAt && !h.set.validators.some((v) => v.address === identity.address),
        );
      },
      90_000,
      logs,
    );
  }, 300_000);
});
