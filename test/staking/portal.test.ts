// Portal on anvil: deposits (consecutive nonces, bounds) and withdrawals end to end. The L2 is the node's execution
// core on level with the L2MessagePasser predeploy: a user calls initiateWithdrawal there, the block's v6 header is
// certified by the node's BLS code and proposed to the OutputOracle, and the withdrawal is proven on L1 with the
// execution core's eth_getProof proofs (real Merkle-Patricia proofs), then finalized after the delay.
import { type Address, decodeErrorResult, encodeFunctionData, getAddress, type Hex } from "viem";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../consensus/bytes.ts";
import { encodeHeader } from "../../src/chain/block.ts";
import { BRIDGED_ETH_ADDRESS } from "../../src/l1/deploy-finality.ts";
import { BridgedEth, L2MessagePasser } from "../../staking-contracts/artifacts.ts";
import { env } from "../execution/helpers.ts";
import {
  ASSET,
  certifyHeader,
  type FinalityChain,
  headerOf,
  L2_MESSAGE_PASSER_ADDRESS,
  L2_USER,
  type L2Block,
  proposal,
  revertOf,
  startFinalityChain,
  startL2,
  TEST_FINALITY_PARAMS,
  testHeader,
  type Withdrawal,
  withdrawalHash,
  withdrawalProof,
} from "./finality-fixture.ts";
import { LUMIA, SUBNET_CHAIN_ID } from "./fixture.ts";

const ETHER = 10n ** 18n;
const DELAY = TEST_FINALITY_PARAMS.finalizationDelaySeconds;

let chain: FinalityChain;
let l2: Awaited<ReturnType<typeof startL2>>;
let snapshot: Hex;
let block: L2Block;
let header: Hex;
/** Withdrawals initiated in L2 block 1: 1 ETH to recipient A, 5 LUMIA to recipient B. */
let ethWithdrawal: Withdrawal;
let lumiaWithdrawal: Withdrawal;
let recipientA: Address;
let recipientB: Address;
let depositor: Address;

beforeAll(async () => {
  chain = await startFinalityChain();
  l2 = await startL2();
  recipientA = chain.users[10] as Address;
  recipientB = chain.users[11] as Address;
  depositor = chain.users[12] as Address;
  await chain.fundAccount(depositor, 100_000n * LUMIA);
  block = await l2.withdrawBlock([
    { l1Recipient: recipientA, asset: ASSET.eth, amount: ETHER },
    { l1Recipient: recipientB, asset: ASSET.lumia, amount: 5n * LUMIA },
  ]);
  [ethWithdrawal, lumiaWithdrawal] = block.withdrawals as [Withdrawal, Withdrawal];
  const h = headerOf(block.result, 1, await chain.setIdOf(1n));
  header = toHex(encodeHeader(h));
  await chain.mined(
    chain.finality.outputOracle.write.proposeOutput(
      proposal(1n, h, 0, certifyHeader(h, 0, chain.setKeys, [0, 1, 2])),
      chain.gov,
    ),
  );
});
afterAll(async () => {
  await chain?.stop();
  await l2?.stop();
});
beforeEach(async () => {
  snapshot = await chain.snapshot();
});
afterEach(async () => {
  await chain.revert(snapshot);
});

const portal = () => chain.finality.portal;
const tuple = (w: Withdrawal) => ({ ...w, asset: w.asset });

async function prove(w: Withdrawal, proofs?: { accountProof: Hex[]; storageProof: Hex[] }, outputIndex = 0n) {
  const p = proofs ?? (await withdrawalProof(block, w));
  return chain.mined(
    portal().write.proveWithdrawal([tuple(w), outputIndex, header, p.accountProof, p.storageProof], chain.gov),
  );
}
const simulateProve = async (
  w: Withdrawal,
  p: { accountProof: Hex[]; storageProof: Hex[] },
  outputIndex = 0n,
  h: Hex = header,
) => portal().simulate.proveWithdrawal([tuple(w), outputIndex, h, p.accountProof, p.storageProof], chain.gov);
const finalize = (w: Withdrawal) => chain.mined(portal().write.finalizeWithdrawal([tuple(w)], chain.gov));
const simulateFinalize = (w: Withdrawal) => portal().simulate.finalizeWithdrawal([tuple(w)], chain.gov);
const elapse = async (seconds: bigint) => {
  await chain.testClient.increaseTime({ seconds: Number(seconds) });
  await chain.testClient.mine({ blocks: 1 });
};
const depositEth = (amount: bigint, to: Address = recipientA) =>
  chain.mined(portal().write.depositETH([to], { ...chain.as(depositor), value: amount }));
const depositLumia = async (amount: bigint, to: Address = recipientA) => {
  await chain.mined(chain.token.write.approve([chain.finality.addresses.portal, amount], chain.as(depositor)));
  return chain.mined(portal().write.depositLumia([to, amount], chain.as(depositor)));
};
const flip = (hex: Hex, byte: number): Hex => {
  const bytes = fromHex(hex);
  bytes[byte] = (bytes[byte] ?? 0) ^ 0x01;
  return toHex(bytes);
};

describe("deposits", () => {
  it("emits DepositInitiated with consecutive nonces from 0 and holds the assets", async () => {
    const receipts = [
      await depositEth(ETHER),
      await depositLumia(10n * LUMIA, recipientB),
      await depositEth(2n * ETHER, recipientB),
    ];
    const events = await portal().getEvents.DepositInitiated({}, { fromBlock: receipts[0]?.blockNumber });
    expect(events.map((e) => e.args)).toEqual([
      { nonce: 0n, from: getAddress(depositor), to: getAddress(recipientA), asset: ASSET.eth, amount: ETHER },
      { nonce: 1n, from: getAddress(depositor), to: getAddress(recipientB), asset: ASSET.lumia, amount: 10n * LUMIA },
      { nonce: 2n, from: getAddress(depositor), to: getAddress(recipientB), asset: ASSET.eth, amount: 2n * ETHER },
    ]);
    expect(await portal().read.depositNonce()).toBe(3n);
    expect(await chain.publicClient.getBalance({ address: chain.finality.addresses.portal })).toBe(3n * ETHER);
    expect(await chain.token.read.balanceOf([chain.finality.addresses.portal])).toBe(10n * LUMIA);
    expect(await portal().read.totalDeposited([ASSET.eth])).toBe(3n * ETHER);
    expect(await portal().read.totalDeposited([ASSET.lumia])).toBe(10n * LUMIA);
  });

  it("refuses deposits below the minimum or above the cap, and to the zero address", async () => {
    const { minEth, maxEth, minLumia, maxLumia } = TEST_FINALITY_PARAMS.deposit;
    for (const amount of [minEth - 1n, maxEth + 1n, 0n]) {
      const call = portal().simulate.depositETH([recipientA], { ...chain.as(depositor), value: amount });
      expect(await revertOf(call), `${amount} wei`).toBe("DepositOutOfRange");
    }
    await chain.mined(chain.token.write.approve([chain.finality.addresses.portal, 2n ** 255n], chain.as(depositor)));
    for (const amount of [minLumia - 1n, maxLumia + 1n]) {
      const call = portal().simulate.depositLumia([recipientA, amount], chain.as(depositor));
      expect(await revertOf(call), `${amount} LUMIA wei`).toBe("DepositOutOfRange");
    }
    const zero = portal().simulate.depositETH(["0x0000000000000000000000000000000000000000"], {
      ...chain.as(depositor),
      value: ETHER,
    });
    expect(await revertOf(zero)).toBe("ZeroAddress");
    // The bounds themselves are accepted.
    await depositEth(minEth);
    await depositEth(maxEth);
    await depositLumia(maxLumia);
    expect(await portal().read.depositNonce()).toBe(3n);
  });
});

describe("withdrawals", () => {
  it("the L2 block really holds the withdrawals: the message passer's slot is 1 under the certified root", async () => {
    const { value } = await withdrawalProof(block, ethWithdrawal);
    expect(BigInt(value)).toBe(1n);
    const account = await l2.core.reader(block.result.vmRoots).getAccount(L2_MESSAGE_PASSER_ADDRESS);
    // initiateWithdrawal keeps the LUMIA (native coin) it is sent; BridgedEth burned the ETH tokens it withdrew: the
    // deposit minted 1 ETH to the user, the withdrawal burned it, so balance and total supply are 0 again.
    expect(account?.balance).toBe(5n * LUMIA);
    const bridged = async (fn: "balanceOf" | "totalSupply", args: readonly Hex[]) => {
      const data = encodeFunctionData({ abi: BridgedEth.abi, functionName: fn, args: args as never });
      const r = await l2.core.call(block.result.vmRoots, env(2, { chainId: SUBNET_CHAIN_ID }), {
        to: BRIDGED_ETH_ADDRESS,
        data,
      });
      return BigInt(r.returnData);
    };
    expect(await bridged("balanceOf", [L2_USER.address])).toBe(0n);
    expect(await bridged("totalSupply", [])).toBe(0n);
    // Native LUMIA cannot leave as ETH, and only BridgedEth may start an ETH withdrawal.
    const passer = async (data: Hex, value = 0n) => {
      const call = { from: L2_USER.address as Hex, to: L2_MESSAGE_PASSER_ADDRESS, data, value };
      const r = await l2.core.call(block.result.vmRoots, env(2, { chainId: SUBNET_CHAIN_ID }), call);
      return r.status === 1 ? null : decodeErrorResult({ abi: L2MessagePasser.abi, data: r.returnData }).errorName;
    };
    const asEth = encodeFunctionData({
      abi: L2MessagePasser.abi,
      functionName: "initiateWithdrawal",
      args: [L2_USER.address, ASSET.eth],
    });
    expect(await passer(asEth, ETHER)).toBe("UnknownAsset");
    const direct = encodeFunctionData({
      abi: L2MessagePasser.abi,
      functionName: "initiateEthWithdrawal",
      args: [L2_USER.address, L2_USER.address, ETHER],
    });
    expect(await passer(direct)).toBe("NotBridgedEth");
    expect(withdrawalHash(ethWithdrawal)).toBe(
      await chain.publicClient.readContract({
        address: chain.finality.addresses.portal,
        abi: portal().abi,
        functionName: "hashWithdrawal",
        args: [tuple(ethWithdrawal)],
      }),
    );
    expect(ethWithdrawal.sender).toBe(L2_USER.address);
  });

  it("proves, waits the delay, pays the recipient once", async () => {
    await depositEth(3n * ETHER, recipientB);
    const proven = await prove(ethWithdrawal);
    const events = await portal().getEvents.WithdrawalProven({}, { blockHash: proven.blockHash });
    expect(events.map((e) => e.args)).toEqual([
      { withdrawalHash: withdrawalHash(ethWithdrawal), outputIndex: 0n, l1Recipient: getAddress(recipientA) },
    ]);
    expect(await revertOf(simulateFinalize(ethWithdrawal))).toBe("TooEarly");
    await elapse(DELAY - 5n);
    expect(await revertOf(simulateFinalize(ethWithdrawal))).toBe("TooEarly");
    await elapse(5n);
    const before = await chain.publicClient.getBalance({ address: recipientA });
    await finalize(ethWithdrawal); // sent by governance: the recipient pays no gas
    expect(await chain.publicClient.getBalance({ address: recipientA })).toBe(before + ETHER);
    expect(await chain.publicClient.getBalance({ address: chain.finality.addresses.portal })).toBe(2n * ETHER);
    expect(await portal().read.totalWithdrawn([ASSET.eth])).toBe(ETHER);
    expect(await revertOf(simulateFinalize(ethWithdrawal))).toBe("AlreadyFinalized");
    const p = await withdrawalProof(block, ethWithdrawal);
    expect(await revertOf(simulateProve(ethWithdrawal, p))).toBe("AlreadyFinalized");
  });

  it("refuses forged proofs: one flipped byte in either proof, a withdrawal never initiated", async () => {
    await depositEth(3n * ETHER);
    const p = await withdrawalProof(block, ethWithdrawal);
    for (const [i, node] of p.accountProof.entries()) {
      const accountProof = p.accountProof.map((n, j) => (j === i ? flip(n, Math.floor(fromHex(node).length / 2)) : n));
      expect(await revertOf(simulateProve(ethWithdrawal, { ...p, accountProof })), `account node ${i}`).toBe(
        "InvalidAccountProof",
      );
    }
    for (const [i, node] of p.storageProof.entries()) {
      const storageProof = p.storageProof.map((n, j) => (j === i ? flip(n, fromHex(node).length - 1) : n));
      expect(await revertOf(simulateProve(ethWithdrawal, { ...p, storageProof })), `storage node ${i}`).toBe(
        "InvalidStorageProof",
      );
    }
    // Never initiated: 2 ETH instead of 1 (another hash), with the genuine proof of the real one and with the L2's
    // own (exclusion) proof of the forged one's slot.
    const forged: Withdrawal = { ...ethWithdrawal, amount: 2n * ETHER };
    expect(await revertOf(simulateProve(forged, p))).toBe("InvalidStorageProof");
    const exclusion = await withdrawalProof(block, forged);
    expect(BigInt(exclusion.value)).toBe(0n);
    expect(await revertOf(simulateProve(forged, exclusion))).toBe("InvalidStorageProof");
    // Another recipient.
    expect(await revertOf(simulateProve({ ...ethWithdrawal, l1Recipient: depositor }, p))).toBe("InvalidStorageProof");
    // Unknown asset id.
    expect(await revertOf(simulateProve({ ...ethWithdrawal, asset: 2 }, p))).toBe("UnknownAsset");
    // Proof of the right account under another output's root: another certified output, without the withdrawal.
    expect(await revertOf(simulateProve(ethWithdrawal, p, 1n))).toBe("UnknownOutput");
    const setId = await chain.setIdOf(1n);
    const other = testHeader(2, setId);
    await chain.mined(
      chain.finality.outputOracle.write.proposeOutput(
        proposal(1n, other, 0, certifyHeader(other, 0, chain.setKeys, [0, 1, 2])),
        chain.gov,
      ),
    );
    expect(await revertOf(simulateProve(ethWithdrawal, p, 1n))).toBe("HeaderMismatch");
    expect(await revertOf(simulateProve(ethWithdrawal, p, 1n, toHex(encodeHeader(other))))).toBe("InvalidAccountProof");
    // Nothing was proven, so nothing can be finalized.
    expect(await revertOf(simulateFinalize(ethWithdrawal))).toBe("NotProven");
    // The genuine proof still works, once.
    await prove(ethWithdrawal, p);
    expect(await revertOf(simulateProve(ethWithdrawal, p))).toBe("AlreadyProven");
  });

  it("never pays more of an asset than was deposited of it", async () => {
    // 5 LUMIA to withdraw; only 1 deposited (plenty of ETH, which does not count).
    await depositEth(5n * ETHER);
    await depositLumia(LUMIA);
    await prove(lumiaWithdrawal);
    await elapse(DELAY);
    expect(await revertOf(simulateFinalize(lumiaWithdrawal))).toBe("InsufficientBridgeBalance");
    await depositLumia(4n * LUMIA);
    const before = await chain.token.read.balanceOf([recipientB]);
    await finalize(lumiaWithdrawal);
    expect(await chain.token.read.balanceOf([recipientB])).toBe(before + 5n * LUMIA);
    expect(await chain.token.read.balanceOf([chain.finality.addresses.portal])).toBe(0n);
    expect(await revertOf(simulateFinalize(lumiaWithdrawal))).toBe("AlreadyFinalized");
  });
});
