// Acceptance of the Solana VM on a real subnet: 4 `dcn start` processes, no L1. A @solana/kit client, exactly as a
// wallet would use it (createSolanaRpc against the node's JSON-RPC port, transactions built and signed with kit,
// confirmation by polling getSignatureStatuses), makes a SOL transfer and an SPL token mint and transfer from a
// devnet Solana dev key; balances are read back over RPC; the block holding them is certified (verified with the
// validator set rebuilt from keys). A Solidity contract deployed with viem pays lamports from its derived SVM account
// through the SVM precompile: the light client verifies the EVM receipt against the certified header, and the payee's
// balance is read back over the Solana RPC of two nodes. Then a validator is stopped and restarted: its head header's
// SVM root (vmRoots entry 2) is what it was, its balances are the same, and it keeps committing with the others.
import { join } from "node:path";
import {
  type Address,
  appendTransactionMessageInstructions,
  assertIsTransactionWithBlockhashLifetime,
  createKeyPairSignerFromPrivateKeyBytes,
  createSolanaRpc,
  createSolanaRpcSubscriptions,
  createTransactionMessage,
  devnet,
  generateKeyPairSigner,
  getAddressDecoder,
  getAddressEncoder,
  getBase64EncodedWireTransaction,
  getSignatureFromTransaction,
  type Instruction,
  type KeyPairSigner,
  pipe,
  type Signature,
  sendAndConfirmTransactionFactory,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
} from "@solana/kit";
import { getTransferSolInstruction } from "@solana-program/system";
import {
  fetchToken,
  getMintSize,
  getMintToInstruction,
  getTokenSize,
  getTransferInstruction,
} from "@solana-program/token";
import { createPublicClient, createWalletClient, defineChain, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, type Hex } from "../../consensus/bytes.ts";
import { decodeCertificate, verifyCertificate } from "../../consensus/certificate.ts";
import { decode } from "../../consensus/codec.ts";
import { createValidatorSet } from "../../consensus/validator-set.ts";
import { decodeBlock, headerSchema } from "../../src/chain/block.ts";
import { devnetAccounts, devnetSolanaAccounts } from "../../src/cli/devnet.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { SVM_PRECOMPILE_ABI, SVM_PRECOMPILE_ADDRESS } from "../../src/execution/cross-vm.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { anchorFromGenesis, LightClient } from "../../src/light-client/index.ts";
import { ChainStore } from "../../src/storage/chain-store.ts";
import { contracts } from "../fixtures/contracts.ts";
import { splSetupInstructions } from "../svm/helpers.ts";
import { Cluster, sleep } from "./cluster.ts";

const SOL = 1_000_000_000n;
const rpcCall = (url: string, method: string, params: unknown[]): Promise<unknown> =>
  jsonRpc(url, method, params, 15_000);

describe("Solana transactions on the subnet", () => {
  let cluster: Cluster;
  let alice: KeyPairSigner;
  let bob: KeyPairSigner;
  let url: string;
  let rpc: ReturnType<typeof createSolanaRpc>;
  let bobToken: KeyPairSigner;
  let tokenSlot = 0n;
  let lastSignature = "" as Signature;

  /** Builds, signs and sends with kit, then polls getSignatureStatuses until confirmed; returns the slot. */
  async function send(instructions: readonly Instruction[], payer: KeyPairSigner): Promise<bigint> {
    const { value: latest } = await rpc.getLatestBlockhash({ commitment: "confirmed" }).send();
    const message = pipe(
      createTransactionMessage({ version: 0 }),
      (m) => setTransactionMessageFeePayerSigner(payer, m),
      (m) => setTransactionMessageLifetimeUsingBlockhash(latest, m),
      (m) => appendTransactionMessageInstructions(instructions, m),
    );
    const signed = await signTransactionMessageWithSigners(message);
    const signature: Signature = await rpc
      .sendTransaction(getBase64EncodedWireTransaction(signed), { encoding: "base64", skipPreflight: true })
      .send();
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const { value } = await rpc.getSignatureStatuses([signature]).send();
      const status = value[0];
      if (status !== null && status !== undefined && status.confirmationStatus !== "processed") {
        expect(status.err).toBeNull();
        lastSignature = signature;
        return status.slot;
      }
      await sleep(150);
    }
    throw new Error(`transaction ${signature} not confirmed in 30 s\n${cluster.logTails(10)}`);
  }

  const balance = async (node: string, address: Address): Promise<bigint> =>
    (await createSolanaRpc(cluster.node(node).rpc).getBalance(address, { commitment: "confirmed" }).send()).value;
  const tokens = async (node: string, address: Address): Promise<bigint> =>
    (await fetchToken(createSolanaRpc(cluster.node(node).rpc), address, { commitment: "confirmed" })).data.amount;

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 4, replicas: 0 });
    for (const v of cluster.validators) cluster.start(v.name);
    const key = devnetSolanaAccounts()[0];
    if (key === undefined) throw new Error("no Solana dev key");
    alice = await createKeyPairSignerFromPrivateKeyBytes(fromHex(key.secretKey));
    bob = await generateKeyPairSigner();
    url = cluster.node("validator-0").rpc;
    rpc = createSolanaRpc(url);
    await cluster.waitForHeight(
      cluster.validators.map((v) => v.name),
      2,
      40_000,
    );
  }, 60_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it("transfers SOL from a funded dev key, confirmed by kit's sendAndConfirmTransaction over WebSocket", async () => {
    expect(await balance("validator-0", alice.address)).toBe(1_000n * SOL);
    // kit's own confirmation: signatureNotifications and slotNotifications on the node's WebSocket, as a wallet does.
    const rpcSubscriptions = createSolanaRpcSubscriptions(devnet(url.replace(/^http/, "ws")));
    const sendAndConfirm = sendAndConfirmTransactionFactory({ rpc: createSolanaRpc(devnet(url)), rpcSubscriptions });
    const { value: latest } = await rpc.getLatestBlockhash({ commitment: "confirmed" }).send();
    const signed = await signTransactionMessageWithSigners(
      pipe(
        createTransactionMessage({ version: 0 }),
        (m) => setTransactionMessageFeePayerSigner(alice, m),
        (m) => setTransactionMessageLifetimeUsingBlockhash(latest, m),
        (m) =>
          appendTransactionMessageInstructions(
            [getTransferSolInstruction({ source: alice, destination: bob.address, amount: SOL })],
            m,
          ),
      ),
    );
    assertIsTransactionWithBlockhashLifetime(signed);
    // logsSubscribe as kit asks for it: one filtered by an account the transfer mentions, one for everything.
    const abort = new AbortController();
    const [mentioning, all, bobAccount] = await Promise.all([
      rpcSubscriptions
        .logsNotifications({ mentions: [bob.address] }, { commitment: "confirmed" })
        .subscribe({ abortSignal: abort.signal }),
      rpcSubscriptions.logsNotifications("all", { commitment: "confirmed" }).subscribe({ abortSignal: abort.signal }),
      // accountSubscribe as kit asks for it: bob's account, which the transfer creates.
      rpcSubscriptions
        .accountNotifications(bob.address, { commitment: "confirmed", encoding: "base64" })
        .subscribe({ abortSignal: abort.signal }),
    ]);
    // Iteration starts before the send: kit hands an iterator only what arrives while it waits.
    const firsts = [mentioning, all].map((stream) => stream[Symbol.asyncIterator]().next());
    const bobChanged = bobAccount[Symbol.asyncIterator]().next();
    await sendAndConfirm(signed, { commitment: "confirmed", skipPreflight: true });
    const changed = await bobChanged;
    expect(changed.value?.value).toMatchObject({ lamports: SOL, owner: "11111111111111111111111111111111", space: 0n });
    expect(changed.value?.context.slot).toBeGreaterThan(0n);
    for (const next of firsts) {
      const first = await next;
      expect(first.value?.value).toMatchObject({
        signature: getSignatureFromTransaction(signed),
        err: null,
        logs: expect.arrayContaining(["Program 11111111111111111111111111111111 invoke [1]"]),
      });
    }
    abort.abort();
    const { value: statuses } = await rpc.getSignatureStatuses([getSignatureFromTransaction(signed)]).send();
    const slot = statuses[0]?.slot ?? 0n;
    expect(statuses[0]?.err).toBeNull();
    expect(slot).toBeGreaterThan(0n);
    expect(await balance("validator-0", bob.address)).toBe(SOL);
    // Every node executed it: another validator answers the same.
    await cluster.waitFor(
      "validator-3 at the transfer's slot",
      async () => (await cluster.height("validator-3")) >= Number(slot),
      10_000,
    );
    expect(await balance("validator-3", bob.address)).toBe(SOL);
    expect(await balance("validator-0", alice.address)).toBe(999n * SOL - 5_000n);
  }, 40_000);

  it("creates an SPL mint, mints and transfers tokens", async () => {
    const mint = await generateKeyPairSigner();
    const aliceToken = await generateKeyPairSigner();
    bobToken = await generateKeyPairSigner();
    const rentMint = await rpc.getMinimumBalanceForRentExemption(BigInt(getMintSize())).send();
    const rentToken = await rpc.getMinimumBalanceForRentExemption(BigInt(getTokenSize())).send();
    expect(rentMint).toBe(1_461_600n);
    await send(
      splSetupInstructions({
        payer: alice,
        mint,
        accounts: [
          [aliceToken, alice.address],
          [bobToken, bob.address],
        ],
        rentMint,
        rentToken,
      }),
      alice,
    );
    await send(
      [getMintToInstruction({ mint: mint.address, token: aliceToken.address, mintAuthority: alice, amount: 1_000n })],
      alice,
    );
    tokenSlot = await send(
      [
        getTransferInstruction({
          source: aliceToken.address,
          destination: bobToken.address,
          authority: alice,
          amount: 300n,
        }),
      ],
      alice,
    );
    expect(await tokens("validator-0", aliceToken.address)).toBe(700n);
    expect(await tokens("validator-0", bobToken.address)).toBe(300n);
    // What an explorer or wallet reads back, through kit's own response parsing.
    const tx = await rpc
      .getTransaction(lastSignature, { commitment: "confirmed", encoding: "json", maxSupportedTransactionVersion: 0 })
      .send();
    expect(tx?.slot).toBe(tokenSlot);
    expect(tx?.meta?.err).toBeNull();
    expect(tx?.meta?.fee).toBe(5_000n);
    expect(
      tx?.meta?.logMessages?.some((l) => l.includes("Program TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA success")),
    ).toBe(true);
    expect(tx?.transaction.signatures[0]).toBe(lastSignature);
    // Lamports per account key before and after: the fee payer (alice, key 0) paid the fee, nothing else moved.
    const keys = tx?.transaction.message.accountKeys ?? [];
    expect(tx?.meta?.preBalances).toHaveLength(keys.length);
    expect((tx?.meta?.preBalances[0] ?? 0n) - (tx?.meta?.postBalances[0] ?? 0n)).toBe(5_000n);
    expect(tx?.meta?.preBalances.slice(1)).toEqual(tx?.meta?.postBalances.slice(1));
    expect(await rpc.getSlot({ commitment: "confirmed" }).send()).toBeGreaterThanOrEqual(tokenSlot);
    expect((await rpc.getEpochInfo().send()).slotsInEpoch).toBe(432_000n);
  }, 60_000);

  it("the block holding the token transfer is certified by the validator set", async () => {
    const c = (await rpcCall(url, "lumia_getCertificate", [`0x${tokenSlot.toString(16)}`])) as {
      certificate: Hex;
      validatorSetId: Hex;
      header: Hex;
    };
    const s = (await rpcCall(url, "lumia_getValidatorSet", [c.validatorSetId])) as {
      validators: { publicKey: Hex; votingPower: Hex }[];
    };
    const set = createValidatorSet(
      s.validators.map((v) => ({ publicKey: fromHex(v.publicKey), votingPower: BigInt(v.votingPower) })),
    );
    const cert = decodeCertificate(fromHex(c.certificate));
    expect(cert.height).toBe(Number(tokenSlot));
    expect(verifyCertificate(cert, set, { chainId: cluster.plan.chainId }).ok).toBe(true);
    // The certified header commits to an SVM root (vmRoots entry 2).
    const header = decode(headerSchema, fromHex(c.header));
    expect(header.vmRoots.map((r) => r.vm)).toEqual([1, 2]);
  }, 20_000);

  it("a Solidity contract pays lamports through the SVM precompile; the light client verifies its receipt", async () => {
    const { SvmPayer } = contracts();
    const key = devnetAccounts()[0];
    if (key === undefined) throw new Error("no EVM dev key");
    const chain = defineChain({
      id: Number(cluster.plan.chainId),
      name: "lumia-e2e",
      nativeCurrency: { name: "LUMIA", symbol: "LUMIA", decimals: 18 },
      rpcUrls: { default: { http: [url] } },
    });
    const account = privateKeyToAccount(key.privateKey);
    const wallet = createWalletClient({ account, chain, transport: http(url) });
    const client = createPublicClient({ chain, transport: http(url) });
    const deployHash = await wallet.deployContract({ abi: SvmPayer.abi, bytecode: SvmPayer.bytecode, gas: 3_000_000n });
    const deployed = await client.waitForTransactionReceipt({ hash: deployHash, pollingInterval: 150 });
    const contract = deployed.contractAddress;
    if (contract === null || contract === undefined) throw new Error("no contract address");
    // The contract's own SVM account, as the precompile derives it; funded from Solana like any account.
    const pda = await client.readContract({
      address: SVM_PRECOMPILE_ADDRESS,
      abi: SVM_PRECOMPILE_ABI,
      functionName: "svmAccountOf",
      args: [contract],
    });
    const derived = getAddressDecoder().decode(fromHex(pda));
    await send([getTransferSolInstruction({ source: alice, destination: derived, amount: 2n * SOL })], alice);
    const before = await balance("validator-0", bob.address);
    const bobKey = `0x${Buffer.from(getAddressEncoder().encode(bob.address)).toString("hex")}` as Hex;
    const payHash = await wallet.writeContract({
      address: contract,
      abi: SvmPayer.abi,
      functionName: "pay",
      args: [bobKey, SOL / 4n],
      gas: 500_000n,
    });
    const paid = await client.waitForTransactionReceipt({ hash: payHash, pollingInterval: 150 });
    expect(paid.status).toBe("success");
    expect(await balance("validator-0", bob.address)).toBe(before + SOL / 4n);
    expect(await balance("validator-0", derived)).toBe(2n * SOL - SOL / 4n);
    await cluster.waitFor(
      "validator-3 at the payment's block",
      async () => (await cluster.height("validator-3")) >= Number(paid.blockNumber),
      10_000,
    );
    expect(await balance("validator-3", bob.address)).toBe(before + SOL / 4n);
    // Certified: the receipt is proven under the receipts root of a header whose certificate the client verified
    // against the genesis set; that header's state root commits to both VMs' roots.
    const light = await LightClient.create({
      rpcUrl: url,
      genesis: anchorFromGenesis(await loadGenesis(cluster.plan.genesisPath)),
    });
    const verified = await light.verifiedTransaction(payHash);
    expect(verified.receipt.status).toBe(1);
    expect(verified.blockNumber).toBe(Number(paid.blockNumber));
    expect(verified.receipt.logs).toHaveLength(1);
  }, 60_000);

  it("a restarted validator keeps its SVM root and balances, and keeps committing", async () => {
    const v = "validator-2";
    await cluster.stop(v);
    const head = await svmHead(v);
    cluster.start(v);
    const othersHead = await cluster.height("validator-0");
    await cluster.waitForHeight([v], Math.max(othersHead, head.height) + 3, 40_000);
    expect(await balance(v, bob.address)).toBe(SOL + SOL / 4n);
    expect(await tokens(v, bobToken.address)).toBe(300n);
    await cluster.stop(v);
    const after = await svmHead(v);
    expect(after.rootAt(head.height)).toBe(head.root);
    // Blocks committed after the restart were executed to the same SVM roots as the others certified.
    expect(after.height).toBeGreaterThan(head.height);
  }, 90_000);

  /** A stopped node's head height and SVM root, read from its store; `rootAt` gives earlier heights' roots. */
  async function svmHead(name: string) {
    const genesis = await loadGenesis(cluster.plan.genesisPath);
    const store = await ChainStore.open(join(cluster.node(name).dir, "data", "chain"), {
      genesisHash: genesis.hash,
      genesisValidatorSet: genesis.validatorSet,
    });
    try {
      const roots = new Map<number, Hex>();
      for (let h = 1; h <= store.headHeight; h++) {
        const bytes = await store.getBlock(h);
        if (bytes === undefined) throw new Error(`${name}: block ${h} missing`);
        const root = decodeBlock(bytes).header.vmRoots.find((r) => r.vm === 2)?.root;
        if (root === undefined) throw new Error(`${name}: block ${h} has no SVM root`);
        roots.set(h, root);
      }
      const height = store.headHeight;
      return { height, root: roots.get(height), rootAt: (h: number) => roots.get(h) };
    } finally {
      await store.close();
    }
  }
});
