// The operator commands against the staking contracts on a real anvil (deployed by src/l1/deploy.ts through the
// staking fixture; no L2 node), with node directories made by `dcn init`'s code: register refuses before governance
// approval and names the step, approve needs the governor role, register sends the node's BLS key, proof of
// possession and peer id signed by its encrypted operator keystore (DCN_KEY_PASSWORD or --password-file) and is
// refused a second time, a bad proof of possession is refused before any gas is spent, --stake self-stakes with the
// same key, the epoch's set then has the sequencer, exit moves it out at the next boundary and is refused twice, and an
// L1 that does not answer is a clear error. Two commands run as processes through bin/dcn.mjs.
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { approveCommand, exitCommand, loadOperatorKey, registerCommand } from "../../src/cli/operator.ts";
import { StakeCliError } from "../../src/cli/stake.ts";
import { initNode } from "../../src/keys/init.ts";
import type { PublicIdentity } from "../../src/keys/keys.ts";
import { KeystoreError } from "../../src/keys/keystore.ts";
import { freePort, jsonRpc } from "../../src/l1/anvil.ts";
import { peerIdBytes } from "../../src/l1/deploy.ts";
import { checkIdentity, OperatorError, readOperator } from "../../src/l1/operator.ts";
import { LUMIA, type StakingChain, startStakingChain } from "../staking/fixture.ts";

const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");
/** anvil's first dev account (its well-known test mnemonic): the fixture's governance. */
const GOVERNANCE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/** anvil's second dev account: no role on the registry. */
const OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8d6e3f3f5d6b8a5c1d";
const PASSWORD = "correct horse battery staple";

let chain: StakingChain;
let dir: string;
let target: { l1: string; registry: string };
let govKeyFile: string;
let otherKeyFile: string;

interface Node {
  readonly dir: string;
  readonly identity: PublicIdentity;
}

/** A node directory as `dcn init` makes it (encrypted keys, cheap scrypt), its operator given ETH for gas. */
async function newNode(name: string): Promise<Node> {
  const nodeDir = join(dir, name);
  const { identity } = await initNode(nodeDir, { password: PASSWORD, scryptN: 1024 });
  await jsonRpc(chain.anvil.url, "anvil_setBalance", [identity.operator, `0x${(10n ** 20n).toString(16)}`], 5_000);
  return { dir: nodeDir, identity };
}

const withPassword = { env: { DCN_KEY_PASSWORD: PASSWORD } };

async function run<T>(command: (o: T, print: (line: string) => void) => Promise<number>, o: T) {
  const lines: string[] = [];
  const code = await command(o, (l) => lines.push(l));
  return { code, out: lines.join("\n") };
}

async function failure<E extends Error>(promise: Promise<unknown>, type: new (...a: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof type) return error;
    throw error;
  }
  throw new Error(`expected a ${type.name}`);
}

const registry = () => chain.registry;

beforeAll(async () => {
  chain = await startStakingChain({ epochLengthBlocks: 5n, minSelfStake: 100n * LUMIA });
  dir = await mkdtemp(join(tmpdir(), "dcn-operator-"));
  govKeyFile = join(dir, "governance.key");
  otherKeyFile = join(dir, "other.key");
  await writeFile(govKeyFile, `${GOVERNANCE_KEY}\n`, { mode: 0o600 });
  await writeFile(otherKeyFile, `${OTHER_KEY}\n`, { mode: 0o600 });
  target = { l1: chain.anvil.url, registry: chain.addresses.registry };
});
afterAll(async () => {
  await chain?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("operator commands", () => {
  it("register: refused before approval (naming the step); approve needs the governor; then registered once", async () => {
    const node = await newNode("a");
    const early = await failure(
      run(registerCommand, { ...target, ...withPassword, dir: node.dir, commissionBps: 700 }),
      OperatorError,
    );
    expect(early.code).toBe("not_approved");
    expect(early.message).toMatch(/is not approved by the registry's governance yet.*dcn approve --operator/);

    const notGov = await failure(
      run(approveCommand, { ...target, operator: node.identity.operator, keyFile: otherKeyFile }),
      OperatorError,
    );
    expect(notGov.code).toBe("not_governor");
    const approved = await run(approveCommand, { ...target, operator: node.identity.operator, keyFile: govKeyFile });
    expect(approved.out).toMatch(/^approved operator 0x[0-9a-fA-F]{40}: tx 0x[0-9a-f]{64} in L1 block \d+$/);
    expect(await registry().read.approved([node.identity.operator])).toBe(true);
    const twice = await run(approveCommand, { ...target, operator: node.identity.operator, keyFile: govKeyFile });
    expect(twice.out).toMatch(/is approved already/);

    // The keystore needs its password, like dcn start.
    const noPassword = await failure(
      run(registerCommand, { ...target, dir: node.dir, env: {}, commissionBps: 700 }),
      KeystoreError,
    );
    expect(noPassword.code).toBe("password_required");
    const wrong = await failure(
      run(registerCommand, { ...target, dir: node.dir, env: { DCN_KEY_PASSWORD: "nope" }, commissionBps: 700 }),
      KeystoreError,
    );
    expect(wrong.code).toBe("wrong_password");

    const done = await run(registerCommand, { ...target, ...withPassword, dir: node.dir, commissionBps: 700 });
    expect(done.code).toBe(0);
    expect(done.out).toMatch(
      new RegExp(
        `^registered sequencer 1: operator ${node.identity.operator}, consensus address ${node.identity.address}`,
      ),
    );
    expect(done.out).toMatch(
      /at least 100 LUMIA of self-stake .* next epoch can start at L1 block \d+ \(now epoch 0\)/,
    );
    // What the registry stores is the node's identity: key, peer id, operator, commission.
    const id = await registry().read.sequencerIdOf([node.identity.operator]);
    expect(id).toBe(1);
    expect(await registry().read.publicKeyOf([id])).toBe(node.identity.blsPublicKey);
    const stored = await registry().read.sequencer([id]);
    expect(stored.peerId).toBe(peerIdBytes(node.identity.peerId));
    expect(stored.operator).toBe(node.identity.operator);
    expect((await chain.staking.read.pool([id])).commissionBps).toBe(700);

    const again = await failure(
      run(registerCommand, { ...target, ...withPassword, dir: node.dir, commissionBps: 700 }),
      OperatorError,
    );
    expect(again.code).toBe("already_registered");
    expect(again.message).toMatch(/already registered sequencer 1 \(active\)/);
  });

  it("refuses a bad proof of possession, a key another sequencer holds, and a commission above the cap", async () => {
    const a = JSON.parse(await readFile(join(dir, "a", "identity.json"), "utf8")) as PublicIdentity;
    const node = await newNode("b");
    await run(approveCommand, { ...target, operator: node.identity.operator, keyFile: govKeyFile });
    // Another key's proof: refused here, before a transaction (the nonce does not move).
    const swapped = { ...node.identity, proofOfPossession: a.proofOfPossession };
    expect(() => checkIdentity(swapped, "identity.json")).toThrow(/proof of possession does not verify/);
    await writeFile(join(node.dir, "identity.json"), JSON.stringify(swapped));
    const nonce = await jsonRpc<Hex>(
      chain.anvil.url,
      "eth_getTransactionCount",
      [node.identity.operator, "latest"],
      5_000,
    );
    const badPop = await failure(run(registerCommand, { ...target, ...withPassword, dir: node.dir }), OperatorError);
    expect(badPop.code).toBe("bad_pop");
    expect(await jsonRpc(chain.anvil.url, "eth_getTransactionCount", [node.identity.operator, "latest"], 5_000)).toBe(
      nonce,
    );
    expect(() => checkIdentity({ ...node.identity, address: a.address }, "x")).toThrow(/address is not the BLS key's/);
    expect(() => checkIdentity({ ...node.identity, peerId: "nope" }, "x")).toThrow(/not a libp2p peer id/);
    // Node a's whole identity, signed by node b's operator: the registry refuses the taken key.
    await writeFile(join(node.dir, "identity.json"), JSON.stringify(a));
    const taken = await failure(run(registerCommand, { ...target, ...withPassword, dir: node.dir }), OperatorError);
    expect(taken.code).toBe("key_taken");
    expect(taken.message).toMatch(/KeyAlreadyRegistered/);
    await writeFile(join(node.dir, "identity.json"), JSON.stringify(node.identity));
    const high = await failure(
      run(registerCommand, { ...target, ...withPassword, dir: node.dir, commissionBps: 5_000 }),
      OperatorError,
    );
    expect(high.code).toBe("refused");
    expect(high.message).toMatch(/CommissionTooHigh\(5000, 2000\)/);
  });

  it("--stake self-stakes with the operator key; the next epoch's set has the sequencer; exit takes it out", async () => {
    const node = await newNode("c");
    await chain.mined(chain.token.write.transfer([node.identity.operator, 500n * LUMIA], chain.gov));
    await run(approveCommand, { ...target, operator: node.identity.operator, keyFile: govKeyFile });
    const passwordFile = join(dir, "password.txt");
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    // A bad amount is refused before anything is sent: no sequencer left without its stake.
    const badAmount = await failure(
      run(registerCommand, { ...target, env: {}, passwordFile, dir: node.dir, stake: "3x" }),
      StakeCliError,
    );
    expect(badAmount.message).toMatch(/--stake 3x is not an amount of LUMIA/);
    expect(await registry().read.sequencerIdOf([node.identity.operator])).toBe(0);
    const done = await run(registerCommand, { ...target, env: {}, passwordFile, dir: node.dir, stake: "300" });
    expect(done.out).toMatch(/approve 300 LUMIA for Staking: tx/);
    expect(done.out).toMatch(/stake 300 LUMIA in sequencer 2: tx/);
    const id = await registry().read.sequencerIdOf([node.identity.operator]);
    expect(await chain.staking.read.stakeOf([id, node.identity.operator])).toBe(300n * LUMIA);

    const epoch = await chain.advanceEpoch();
    const [keys, powers] = await registry().read.validatorSet([epoch]);
    expect(keys).toEqual([node.identity.blsPublicKey]); // node a has no self-stake: not chosen
    expect(powers).toEqual([300n]);

    const { account } = await loadOperatorKey({ dir: node.dir, passwordFile });
    expect(account.address).toBe(node.identity.operator);
    const exit = await run(exitCommand, { ...target, env: {}, passwordFile, dir: node.dir });
    expect(exit.out).toMatch(/^exit requested for sequencer 2: tx 0x[0-9a-f]{64} in L1 block \d+\n/);
    expect(exit.out).toMatch(
      new RegExp(`leaves the validator set with epoch ${epoch + 1n} .*dcn unbond --sequencer 2`),
    );
    expect(
      (await readOperator({ rpcUrl: target.l1, registry: target.registry as Address }, account.address)).status,
    ).toBe("exiting");
    const twice = await failure(run(exitCommand, { ...target, env: {}, passwordFile, dir: node.dir }), OperatorError);
    expect(twice.code).toBe("not_active");
    expect(twice.message).toMatch(/sequencer 2 is exiting already: it leaves the set at the next boundary/);
    const next = await chain.advanceEpoch();
    expect((await registry().read.validatorSet([next]))[0]).toEqual([]);
    expect((await registry().read.sequencer([id])).status).toBe(3); // Exited

    // A key that registered nothing.
    const none = await failure(run(exitCommand, { ...target, keyFile: otherKeyFile, dir: node.dir }), OperatorError);
    expect(none.code).toBe("not_registered");
  });

  it("an L1 that does not answer, and missing arguments, are clear errors; the commands run as processes", async () => {
    const closed = await freePort();
    const down = await failure(
      run(exitCommand, { l1: `http://127.0.0.1:${closed}`, registry: target.registry, keyFile: otherKeyFile, dir }),
      OperatorError,
    );
    expect(down.code).toBe("l1");
    expect(down.message).toMatch(
      /cannot read operator 0x[0-9a-fA-F]{40} from the registry 0x[0-9a-fA-F]{40}: .*is the L1 up/,
    );
    expect(down.message).not.toContain(String(closed)); // the URL may hold an API key
    const noTarget = await failure(run(exitCommand, { keyFile: otherKeyFile, dir }), StakeCliError);
    expect(noTarget.message).toMatch(/no L1: pass --l1 URL, or --devnet DIR/);

    const cli = (args: string[]) => spawnSync(process.execPath, [DCN, ...args], { encoding: "utf8", timeout: 30_000 });
    const usage = cli(["register", "--l1", target.l1, "--registry", target.registry]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/required option '--dir <dir>' not specified/);
    const refused = cli([
      "exit",
      "--dir",
      join(dir, "a"),
      "--key-file",
      otherKeyFile,
      "--l1",
      target.l1,
      "--registry",
      target.registry,
    ]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^dcn: 0x[0-9a-fA-F]{40} operates no sequencer on the registry/);
  });
});
