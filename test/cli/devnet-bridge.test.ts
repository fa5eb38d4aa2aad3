// Deposits and withdrawals on a real devnet (anvil + 4 validator processes), with the `dcn bridge` commands as a user
// runs them (docs/hard-finality.md):
// - LUMIA and ETH deposited on L1 reach the L2: the native balance and the BridgedEth token balance;
// - a LUMIA and an ETH withdrawal started on the L2 are proven on L1 against a certified output, refused before the
//   Portal's delay, then paid once; a second finalize is refused;
// - a forged withdrawal (another amount) and a tampered proof are refused by the Portal.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  formatEther,
  type Hex,
  http,
  parseEther,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import {
  BridgeError,
  endpoint,
  finalizeWithdrawal,
  sentMessageSlot,
  withdrawalHash,
  withdrawalStatus,
} from "../../src/l1/bridge.ts";
import { BRIDGED_ETH_ADDRESS, L2_MESSAGE_PASSER_ADDRESS } from "../../src/l1/deploy-finality.ts";
import { revertOf } from "../../src/l1/sender.ts";
import { BridgedEth, LumiaToken, OutputOracle, Portal } from "../../staking-contracts/artifacts.ts";
import { devnetFixture, rpc, waitUntil } from "./devnet-fixture.ts";

const fixture = devnetFixture("devnet-bridge", 18_000);

interface Started {
  withdrawal: { nonce: string; sender: Address; l1Recipient: Address; asset: number; amount: string };
  hash: Hex;
  l2TxHash: Hex;
  height: string;
}

describe("the L1 bridge on the devnet", () => {
  it("moves LUMIA and ETH to the L2 and back, refusing forged withdrawals and early or repeated payouts", async () => {
    const { devnet, show, dcn, data } = await fixture.start(["--validators", "4", "--replicas", "0"]);
    const l1Url = devnet.l1.rpc;
    const l2Url = devnet.nodes[0]?.rpc ?? "";
    const { portal, token } = devnet.l1.contracts as Record<string, Address>;
    if (portal === undefined || token === undefined) throw new Error("devnet.json lacks the portal");
    const l1 = createPublicClient({ transport: http(l1Url) });
    await waitUntil(
      "the L2 at height 3",
      async () => BigInt(await rpc<Hex>(l2Url, "eth_blockNumber")) >= 3n,
      60_000,
      show,
    );

    // A user with ETH and LUMIA on L1 only (nothing on the L2 yet), its key in a file.
    const key = generatePrivateKey();
    const user = privateKeyToAccount(key);
    const keyFile = join(data, "user.key");
    writeFileSync(keyFile, key, { mode: 0o600 });
    const recipient = privateKeyToAccount(generatePrivateKey()).address;
    await rpc(l1Url, "anvil_setBalance", [user.address, `0x${parseEther("10").toString(16)}`]);
    const [governance] = await rpc<Address[]>(l1Url, "eth_accounts");
    if (governance === undefined) throw new Error("anvil has no accounts");
    const gov = createWalletClient({ transport: http(l1Url) });
    const funding = await gov.writeContract({
      account: governance,
      chain: null,
      address: token,
      abi: LumiaToken.abi,
      functionName: "transfer",
      args: [user.address, parseEther("100")],
    });
    await l1.waitForTransactionReceipt({ hash: funding });
    const bridge = (args: string[]) => {
      const r = dcn(["bridge", ...args, "--devnet", data, "--key-file", keyFile, "--json"]);
      return {
        ...r,
        json: r.code === 0 ? (JSON.parse(r.out.trim().split("\n").pop() ?? "{}") as Record<string, unknown>) : null,
      };
    };

    // ---- Deposits: 10 LUMIA (the L2's native coin: it pays the user's gas there) and 1 ETH (BridgedEth tokens).
    const lumiaDeposit = bridge(["deposit", "--asset", "lumia", "--amount", "10"]);
    expect(lumiaDeposit.code, lumiaDeposit.err).toBe(0);
    const ethDeposit = bridge(["deposit", "--asset", "eth", "--amount", "1"]);
    expect(ethDeposit.code, ethDeposit.err).toBe(0);
    const bridgedEthOf = async (who: Address) =>
      BigInt(
        await rpc<Hex>(l2Url, "eth_call", [
          {
            to: BRIDGED_ETH_ADDRESS,
            data: encodeFunctionData({ abi: BridgedEth.abi, functionName: "balanceOf", args: [who] }),
          },
          "latest",
        ]),
      );
    await waitUntil(
      "both deposits on the L2",
      async () =>
        BigInt(await rpc<Hex>(l2Url, "eth_getBalance", [user.address, "latest"])) === parseEther("10") &&
        (await bridgedEthOf(user.address)) === parseEther("1"),
      30_000,
      show,
    );

    // ---- Withdrawals started on the L2.
    const lumiaOut = bridge(["withdraw", "--asset", "lumia", "--amount", "2", "--to", recipient]);
    expect(lumiaOut.code, lumiaOut.err).toBe(0);
    const ethOut = bridge(["withdraw", "--asset", "eth", "--amount", "0.5", "--to", recipient]);
    expect(ethOut.code, ethOut.err).toBe(0);
    const started = [lumiaOut.json, ethOut.json] as unknown as Started[];
    expect(await bridgedEthOf(user.address)).toBe(parseEther("0.5"));
    const [lumiaW, ethW] = started;
    if (lumiaW === undefined || ethW === undefined) throw new Error("no withdrawals");
    expect(lumiaW.withdrawal).toMatchObject({ asset: 1, amount: parseEther("2").toString(), l1Recipient: recipient });
    expect(ethW.withdrawal).toMatchObject({ asset: 0, amount: parseEther("0.5").toString() });

    // ---- Proven once an output covers them; refused before the delay; paid once after it.
    const l1Endpoint = await endpoint(l1Url);
    const startedOf = (w: Started) => ({
      withdrawal: {
        nonce: BigInt(w.withdrawal.nonce),
        sender: w.withdrawal.sender,
        l1Recipient: w.withdrawal.l1Recipient,
        asset: w.withdrawal.asset,
        amount: BigInt(w.withdrawal.amount),
      },
      hash: w.hash,
      l2TxHash: w.l2TxHash,
      height: BigInt(w.height),
    });
    for (const w of started) {
      await waitUntil(
        `an output at or above L2 height ${w.height}`,
        async () => (await withdrawalStatus(l1Endpoint, portal, startedOf(w))).output !== null,
        90_000,
        show,
      );
      const proved = bridge(["prove", "--tx", w.l2TxHash]);
      expect(proved.code, proved.err).toBe(0);
      // Right away (in-process: a command takes seconds to start here), before the devnet's 10 s delay: refused.
      const early = await finalizeWithdrawal(l1Endpoint, user, portal, startedOf(w)).then(
        () => "paid",
        (error: unknown) => (error instanceof BridgeError ? error.code : String(error)),
      );
      expect(early).toBe("too_early");
      const again = bridge(["prove", "--tx", w.l2TxHash]);
      expect(again.code).toBe(1);
      expect(again.err).toContain("AlreadyProven");
    }

    // ---- A forged withdrawal (another amount) and a tampered proof, against the same real output and proofs.
    const oracle = (await l1.readContract({ address: portal, abi: Portal.abi, functionName: "oracle" })) as Address;
    const index = (await l1.readContract({
      address: oracle,
      abi: OutputOracle.abi,
      functionName: "outputIndexForHeight",
      args: [BigInt(lumiaW.height)],
    })) as bigint;
    const output = (await l1.readContract({
      address: oracle,
      abi: OutputOracle.abi,
      functionName: "outputAt",
      args: [index],
    })) as {
      height: bigint;
    };
    const certified = await rpc<{ header: Hex }>(l2Url, "lumia_getCertificate", [`0x${output.height.toString(16)}`]);
    const real = {
      nonce: BigInt(lumiaW.withdrawal.nonce),
      sender: lumiaW.withdrawal.sender,
      l1Recipient: lumiaW.withdrawal.l1Recipient,
      asset: lumiaW.withdrawal.asset,
      amount: BigInt(lumiaW.withdrawal.amount),
    };
    expect(withdrawalHash(real)).toBe(lumiaW.hash);
    const l2 = createPublicClient({ transport: http(l2Url) });
    const forged = { ...real, amount: parseEther("9") };
    const proofOf = (hash: Hex) =>
      l2.getProof({
        address: L2_MESSAGE_PASSER_ADDRESS,
        storageKeys: [sentMessageSlot(hash)],
        blockNumber: output.height,
      });
    const refusal = async (w: typeof real, accountProof: readonly Hex[], storageProof: readonly Hex[]) => {
      try {
        await l1.simulateContract({
          account: user,
          address: portal,
          abi: Portal.abi,
          functionName: "proveWithdrawal",
          args: [w, index, certified.header, accountProof, storageProof],
        });
        return null;
      } catch (error) {
        return revertOf(error)?.name ?? "unnamed";
      }
    };
    const forgedProof = await proofOf(withdrawalHash(forged));
    expect(await refusal(forged, forgedProof.accountProof, forgedProof.storageProof[0]?.proof ?? [])).toMatch(
      /WithdrawalNotSent|InvalidStorageProof/,
    );
    const realProof = await proofOf(lumiaW.hash);
    const flipped = realProof.accountProof.map((node, i) =>
      i === 1 ? (`${node.slice(0, 20)}${node[20] === "0" ? "1" : "0"}${node.slice(21)}` as Hex) : node,
    );
    // A fresh withdrawal identity (the real one is already proven): the proof check is what refuses it.
    expect(await refusal({ ...real, nonce: 99n }, flipped, realProof.storageProof[0]?.proof ?? [])).toMatch(
      /InvalidAccountProof|InvalidStorageProof|WithdrawalNotSent/,
    );

    // ---- After the devnet's 10 s delay: paid once, in LUMIA and ETH.
    const lumiaBefore = (await l1.readContract({
      address: token,
      abi: LumiaToken.abi,
      functionName: "balanceOf",
      args: [recipient],
    })) as bigint;
    const ethBefore = await l1.getBalance({ address: recipient });
    await waitUntil(
      "both withdrawals finalizable",
      async () => {
        const now = (await l1.getBlock({ blockTag: "latest" })).timestamp;
        const all = await Promise.all(started.map((w) => withdrawalStatus(l1Endpoint, portal, startedOf(w))));
        return all.every((st) => st.finalizableAt !== null && st.finalizableAt <= now);
      },
      60_000,
      show,
    );
    for (const w of started) {
      const paid = bridge(["finalize", "--tx", w.l2TxHash]);
      expect(paid.code, paid.err).toBe(0);
    }
    const status = bridge(["status", "--tx", lumiaW.l2TxHash]);
    expect(status.json).toMatchObject({ finalized: true });
    const lumiaAfter = (await l1.readContract({
      address: token,
      abi: LumiaToken.abi,
      functionName: "balanceOf",
      args: [recipient],
    })) as bigint;
    expect(lumiaAfter - lumiaBefore).toBe(parseEther("2"));
    expect(formatEther((await l1.getBalance({ address: recipient })) - ethBefore)).toBe("0.5");
    const twice = bridge(["finalize", "--tx", ethW.l2TxHash]);
    expect(twice.code).toBe(1);
    expect(twice.err).toContain("AlreadyFinalized");
  }, 300_000);
});
