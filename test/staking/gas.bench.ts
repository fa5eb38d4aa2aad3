// Gas report of the staking contracts on anvil (Prague): `npm run bench:gas` prints a Markdown table (the figures in
// staking-contracts/README.md come from it). Sets of 4, 25 and 100 validators (the MAX_VALIDATORS_LIMIT): the
// per-validator costs are the epoch snapshot, the certificate's key aggregation and the report's distribution.
import type { Address, Hex } from "viem";
import { toHex, uintBytes } from "../../consensus/bytes.ts";
import { voteDigest, type WorkReportEntry } from "../../consensus/signing.ts";
import { encodeSignedVote } from "../../consensus/wire.ts";
import { encodeHeader } from "../../src/chain/block.ts";
import { ASSET, deployFinality } from "../../src/l1/deploy-finality.ts";
import { BlsHarness } from "../../staking-contracts/artifacts.ts";
import { g1ToEip2537, g2ToEip2537 } from "../../staking-contracts/eip2537.ts";
import {
  certifyHeader,
  headerOf,
  proposal,
  startL2,
  TEST_FINALITY_PARAMS,
  testHeader,
  withdrawalProof,
} from "./finality-fixture.ts";
import { L1_CHAIN_ID, LUMIA, type OperatorKeys, operatorKeys, SUBNET_CHAIN_ID, startStakingChain } from "./fixture.ts";

const SIZES = [4, 25, 100];

const rows: { operation: string; validators: number | "-"; gas: bigint }[] = [];
const record = (operation: string, validators: number | "-", gas: bigint) => {
  rows.push({ operation, validators, gas });
};

const chain = await startStakingChain({ maxValidators: 100, minSelfStake: 1_000n * LUMIA });
const l2 = await startL2();
try {
  const { testClient, publicClient } = chain;
  const finality = await deployFinality({
    rpcUrl: chain.anvil.url,
    chainId: L1_CHAIN_ID,
    deployer: chain.governance,
    registry: chain.addresses.registry,
    token: chain.addresses.token,
    subnetChainId: SUBNET_CHAIN_ID,
    params: TEST_FINALITY_PARAMS,
  });
  await chain.mined(chain.token.write.approve([chain.addresses.rewards, 2n ** 255n], chain.gov));
  await chain.mined(chain.rewards.write.fund([1_000_000n * LUMIA], chain.gov));

  // Operators are impersonated addresses, so that 100 of them need no keys.
  const operator = (i: number): Address => `0xbeef${(i + 1).toString(16).padStart(36, "0")}`;
  const keysByPublicKey = new Map<string, OperatorKeys>();
  let registered = 0;
  async function grow(n: number): Promise<void> {
    for (; registered < n; registered++) {
      const op = operator(registered);
      await testClient.impersonateAccount({ address: op });
      await testClient.setBalance({ address: op, value: 10n ** 20n });
      await chain.fundAccount(op, 10_000n * LUMIA);
      const keys = operatorKeys(100 + registered);
      keysByPublicKey.set(keys.publicKey, keys);
      const { registerGas } = await chain.addSequencer(op, keys, 0n);
      const id = await chain.registry.read.sequencerIdOf([op]);
      const first = await chain.mined(chain.staking.write.stake([id, 1_000n * LUMIA], chain.as(op)));
      if (registered === 0) {
        record("register (key, PoP pairing check, peer id)", "-", registerGas);
        record("stake (first, self-stake)", "-", first.gasUsed);
        const again = await chain.mined(
          chain.staking.write.stake([id, 1_000n * LUMIA + BigInt(registered)], chain.as(op)),
        );
        record("stake (add to a position)", "-", again.gasUsed);
      } else {
        await chain.mined(chain.staking.write.stake([id, BigInt(registered) * LUMIA], chain.as(op)));
      }
    }
  }

  const delegator = chain.users[0] as Address;
  await chain.fundAccount(delegator, 100_000n * LUMIA);
  let lastSize = 0;
  for (const n of SIZES) {
    await grow(n);
    lastSize = n;
    const before = await publicClient.getBlockNumber({ cacheTime: 0 });
    await chain.advanceEpoch();
    const receipts = await chain.registry.getEvents.EpochAdvanced({}, { fromBlock: before + 1n });
    const advanced = receipts.at(-1);
    if (advanced?.transactionHash == null) throw new Error("no EpochAdvanced");
    const receipt = await publicClient.getTransactionReceipt({ hash: advanced.transactionHash });
    record("advanceEpoch (snapshot and id of the set)", n, receipt.gasUsed);
    const epoch = await chain.registry.read.currentEpoch();
    await chain.advanceEpoch();
    const setKeys = await chain.keysInSetOrder(epoch, keysByPublicKey);
    const entries: WorkReportEntry[] = setKeys.map((_, i) => ({
      blocksProposed: BigInt(i + 1),
      precommitsSigned: 100n,
      batchesPosted: 1n,
    }));
    const cert = chain.certify(
      epoch,
      entries,
      setKeys,
      setKeys.map((_, i) => i),
    );
    const report = await chain.mined(chain.rewards.write.submitReport([epoch, entries, cert], chain.gov));
    record("submitReport (all sign: aggregate, pairing, distribution)", n, report.gasUsed);
    const header = testHeader(n, (await chain.registry.read.epochInfo([epoch])).setId);
    const signers = setKeys.map((_, i) => i);
    const output = await chain.mined(
      finality.outputOracle.write.proposeOutput(
        proposal(epoch, header, 0, certifyHeader(header, 0, setKeys, signers)),
        chain.gov,
      ),
    );
    record("proposeOutput (all sign: header checks, aggregate, pairing)", n, output.gasUsed);
  }

  // Hard finality: a 100 kB calldata batch, deposits, and a withdrawal proven with the L2 execution core's proofs.
  const batch = toHex(Uint8Array.from({ length: 100_000 }, (_, i) => (i * 131 + 7) & 0xff));
  const batchReceipt = await chain.mined(
    finality.batchInbox.write.submitBatch([1n, 100n, batch], chain.as(operator(0))),
  );
  record("submitBatch (100 kB calldata)", "-", batchReceipt.gasUsed);
  const depositor = chain.users[1] as Address;
  await chain.fundAccount(depositor, 10_000n * LUMIA);
  await chain.mined(chain.token.write.approve([finality.addresses.portal, 2n ** 255n], chain.as(depositor)));
  const firstDeposit = await chain.mined(
    finality.portal.write.depositETH([depositor], { ...chain.as(depositor), value: 10n ** 18n }),
  );
  record("depositETH (first)", "-", firstDeposit.gasUsed);
  const ethDeposit = await chain.mined(
    finality.portal.write.depositETH([depositor], { ...chain.as(depositor), value: 10n ** 18n }),
  );
  record("depositETH", "-", ethDeposit.gasUsed);
  const lumiaDeposit = await chain.mined(finality.portal.write.depositLumia([depositor, LUMIA], chain.as(depositor)));
  record("depositLumia", "-", lumiaDeposit.gasUsed);
  const recipient = chain.users[2] as Address;
  const l2Block = await l2.withdrawBlock([{ l1Recipient: recipient, asset: ASSET.eth, amount: 10n ** 17n }]);
  const withdrawal = l2Block.withdrawals[0];
  if (withdrawal === undefined) throw new Error("no withdrawal");
  const outputEpoch = await chain.registry.read.currentEpoch();
  const outputKeys = await chain.keysInSetOrder(outputEpoch, keysByPublicKey);
  const l2Header = headerOf(l2Block.result, 1_000, (await chain.registry.read.epochInfo([outputEpoch])).setId);
  await chain.mined(
    finality.outputOracle.write.proposeOutput(
      proposal(
        outputEpoch,
        l2Header,
        0,
        certifyHeader(
          l2Header,
          0,
          outputKeys,
          outputKeys.map((_, i) => i),
        ),
      ),
      chain.gov,
    ),
  );
  const outputIndex = (await finality.outputOracle.read.outputCount()) - 1n;
  const proof = await withdrawalProof(l2Block, withdrawal);
  const proven = await chain.mined(
    finality.portal.write.proveWithdrawal(
      [withdrawal, outputIndex, toHex(encodeHeader(l2Header)), proof.accountProof, proof.storageProof],
      chain.gov,
    ),
  );
  record(
    `proveWithdrawal (${proof.accountProof.length}+${proof.storageProof.length} proof nodes)`,
    "-",
    proven.gasUsed,
  );
  await testClient.increaseTime({ seconds: Number(TEST_FINALITY_PARAMS.finalizationDelaySeconds) });
  await testClient.mine({ blocks: 1 });
  const finalized = await chain.mined(finality.portal.write.finalizeWithdrawal([withdrawal], chain.gov));
  record("finalizeWithdrawal (ETH)", "-", finalized.gasUsed);

  // Delegator actions on a pool that has earned rewards.
  const id = await chain.registry.read.sequencerIdOf([operator(0)]);
  const delegate = await chain.mined(chain.staking.write.stake([id, 500n * LUMIA], chain.as(delegator)));
  record("stake (delegate, first)", "-", delegate.gasUsed);
  const epoch = await chain.registry.read.currentEpoch();
  await chain.advanceEpoch();
  const setKeys = await chain.keysInSetOrder(epoch, keysByPublicKey);
  const entries = setKeys.map(() => ({ blocksProposed: 1n, precommitsSigned: 1n, batchesPosted: 1n }));
  const cert = chain.certify(
    epoch,
    entries,
    setKeys,
    setKeys.map((_, i) => i),
  );
  await chain.mined(chain.rewards.write.submitReport([epoch, entries, cert], chain.gov));
  record("claim", "-", (await chain.mined(chain.rewards.write.claim([id], chain.as(operator(0))))).gasUsed);
  record("compound", "-", (await chain.mined(chain.rewards.write.compound([id], chain.as(delegator)))).gasUsed);
  record(
    "claimCommission",
    "-",
    (await chain.mined(chain.rewards.write.claimCommission(chain.as(operator(0))))).gasUsed,
  );
  record(
    "unbond",
    "-",
    (await chain.mined(chain.staking.write.unbond([id, 100n * LUMIA], chain.as(delegator)))).gasUsed,
  );
  for (let i = 0; i < 2; i++) await chain.advanceEpoch();
  record("withdraw", "-", (await chain.mined(chain.staking.write.withdraw([id], chain.as(delegator)))).gasUsed);

  // Equivocation by set index 0 of the current epoch.
  const current = await chain.registry.read.currentEpoch();
  const currentKeys = await chain.keysInSetOrder(current, keysByPublicKey);
  const votes = [1, 2].map((tag) => {
    const value = toHex(uintBytes(tag, 32));
    const keys = currentKeys[0] as OperatorKeys;
    const signature = keys.signer.sign(voteDigest(SUBNET_CHAIN_ID, "precommit", 77, 0, value));
    const encoded = encodeSignedVote({ type: "precommit", height: 77, round: 0, value, validatorIndex: 0, signature });
    return { encoded: toHex(encoded), signatureG2: toHex(g2ToEip2537(signature)) };
  }) as [{ encoded: Hex; signatureG2: Hex }, { encoded: Hex; signatureG2: Hex }];
  const slash = await chain.mined(chain.slashing.write.submitEvidence([current, votes[0], votes[1]], chain.gov));
  record("submitEvidence (2 pairing checks, slash, jail)", lastSize, slash.gasUsed);

  // One BLS verification alone (hash to G2 + pairing), measured inside the EVM.
  const harness = await chain.deployContract(BlsHarness, []);
  const keys = operatorKeys(1);
  const digest = voteDigest(SUBNET_CHAIN_ID, "precommit", 1, 0, toHex(uintBytes(1, 32)));
  const [, verifyGas] = await publicClient.readContract({
    address: harness,
    abi: BlsHarness.abi,
    functionName: "verifyGas",
    args: [toHex(g1ToEip2537(keys.signer.publicKey)), toHex(digest), toHex(g2ToEip2537(keys.signer.sign(digest)))],
  });
  record("BLS.verify alone (hash to G2 + 2-pair pairing)", "-", verifyGas);

  const lines = ["| operation | validators | gas |", "|---|---:|---:|"];
  for (const r of rows) lines.push(`| ${r.operation} | ${r.validators} | ${r.gas.toLocaleString("en-US")} |`);
  process.stdout.write(`${lines.join("\n")}\n`);
} finally {
  await chain.stop();
  await l2.stop();
}
