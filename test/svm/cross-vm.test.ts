// Cross-VM calls on the node's real parts (openNodeState: level store, execution core, SVM executor, mempool, block
// executor, JSON-RPC methods): a Solidity contract pays lamports from its derived SVM account through the precompile,
// a Solana transaction calls an EVM contract through the gateway program; each block is built by one node and
// validated by another. Atomicity: a reverted frame or transaction undoes the SVM side, a failing gateway call undoes
// every EVM call of its transaction. Refusals: forged signers, DELEGATECALL, re-entry, mixed gateway transactions.
import { AccountRole, type Address, getAddressDecoder, getAddressEncoder } from "@solana/kit";
import { decodeFunctionResult, encodeDeployData, encodeFunctionData, getContractAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { concatBytes, fromHex, type Hex, keccak256, toHex } from "../../consensus/bytes.ts";
import { type Block, SVM_TX_PREFIX } from "../../src/chain/block.ts";
import type { Genesis } from "../../src/config/genesis.ts";
import { REWARD_POOL_ADDRESS } from "../../src/execution/core.ts";
import {
  EVM_GATEWAY_PROGRAM,
  encodeGatewayCall,
  evmAddressOf,
  INVOKE_BASE_GAS,
  SVM_PRECOMPILE_ABI,
  SVM_PRECOMPILE_ADDRESS,
  type SvmSide,
  svmAccountOf,
} from "../../src/execution/cross-vm.ts";
import { decodeTransaction } from "../../src/execution/tx.ts";
import type { NodeState } from "../../src/node/assemble.ts";
import { svmRootOf } from "../../src/node/executor.ts";
import { addressOf, testAccount } from "../execution/helpers.ts";
import { contracts } from "../fixtures/contracts.ts";
import { buildTx, SOL, signer, transferIx } from "./helpers.ts";
import { NodeStates, singleValidatorGenesis } from "./node-fixture.ts";

const CHAIN = 7_008n;
const GWEI = 1_000_000_000n;
const pubkeyBytes = (address: string) => new Uint8Array(getAddressEncoder().encode(address as Address));
const addressOfKey = (bytes: Uint8Array) => getAddressDecoder().decode(bytes);

describe("cross-VM calls", () => {
  let nodes: NodeStates;
  let genesis: Genesis;
  let a: NodeState;
  let b: NodeState;
  const evmSender = testAccount(1);
  let nonce = 0;
  let height = 0;
  let payer: Awaited<ReturnType<typeof signer>>;
  let payee: Awaited<ReturnType<typeof signer>>;
  const { SvmPayer, Counter } = contracts();
  const payerContract = getContractAddress({ from: addressOf(evmSender), nonce: 0n });
  const counter = getContractAddress({ from: addressOf(evmSender), nonce: 1n });

  const proposer = (): Hex => genesis.validatorSet.validators[0]?.address ?? "0x";
  const entry = (wire: Uint8Array) => concatBytes(Uint8Array.of(SVM_TX_PREFIX), wire);
  const lamportsOf = async (state: NodeState, address: string) =>
    (await state.executor.svm.reader(svmRootOf(state.executor.head.vmRoots)).getAccount(address))?.lamports ?? 0n;
  const evmBalance = async (address: Hex) =>
    (await a.core.reader(a.executor.head.vmRoots).getAccount(address))?.balance ?? 0n;
  const evmCallEnv = () => ({
    chainId: CHAIN,
    height: a.executor.head.height + 1,
    timestampMs: a.executor.head.timestampMs + 1,
    coinbase: `0x${"00".repeat(20)}` as Hex,
    gasLimit: a.executor.head.gasLimit,
    baseFeePerGas: a.executor.nextBaseFee(),
    prevRandao: a.executor.head.hash,
  });
  const read = async (abi: typeof Counter.abi, to: Hex, functionName: string): Promise<unknown> => {
    const data = encodeFunctionData({ abi, functionName });
    const result = await a.executor.call(a.executor.head.vmRoots, evmCallEnv(), { to, data });
    return decodeFunctionResult({ abi, functionName, data: result.returnData });
  };

  /** Signs an EVM transaction from evmSender and adds it to a's pool; returns its hash. */
  const evmTx = async (fields: { to?: Hex; data?: Hex; value?: bigint; gas?: bigint }): Promise<Hex> => {
    const raw = await evmSender.signTransaction({
      chainId: Number(CHAIN),
      nonce: nonce++,
      ...(fields.to === undefined ? {} : { to: fields.to }),
      data: fields.data ?? "0x",
      value: fields.value ?? 0n,
      gas: fields.gas ?? 1_000_000n,
      type: "eip1559",
      maxFeePerGas: 5n * GWEI,
      maxPriorityFeePerGas: GWEI,
    });
    const bytes = fromHex(raw);
    const added = await a.mempool.add(bytes, { kind: "local" });
    if (!added.ok) throw new Error(`EVM tx refused: ${added.code}: ${added.message}`);
    return toHex(keccak256(bytes));
  };
  /** Calldata of SvmPayer.`fn`(payee, lamports). */
  const payCall = (fn: "pay" | "payThenRevert" | "payInnerAndCatch" | "viaDelegatecall", lamports: bigint): Hex =>
    encodeFunctionData({ abi: SvmPayer.abi, functionName: fn, args: [toHex(pubkeyBytes(payee.address)), lamports] });
  const svmTx = async (wire: Uint8Array): Promise<string> => {
    const added = await a.mempool.add(entry(wire), { kind: "local" });
    if (!added.ok) throw new Error(`SVM tx refused: ${added.code}: ${added.message}`);
    return added.signature ?? "";
  };

  /** Builds the next block on a, validates it on b, commits it on both. */
  const nextBlock = async (): Promise<Block> => {
    height += 1;
    const built = await a.executor.build(height, proposer(), nodes.sets());
    if (built === null) throw new Error("no block");
    expect(await b.executor.validate(built.block, built.bytes, nodes.sets(), false)).toBeNull();
    for (const state of [a, b]) await nodes.commit(state, built.block, built.bytes);
    expect(b.executor.head.stateRoot).toBe(a.executor.head.stateRoot);
    return built.block;
  };
  const receipt = async (hash: Hex) =>
    (await nodes.eth(a, "eth_getTransactionReceipt", [hash])) as { status: Hex; gasUsed: Hex; logs: unknown[] };
  const solanaTx = async (signature: string) =>
    (await nodes.solana(a, "getTransaction", [
      signature,
      { commitment: "confirmed", encoding: "json", maxSupportedTransactionVersion: 0 },
    ])) as { meta: { err: unknown; computeUnitsConsumed: number; logMessages: string[]; fee: number } };

  beforeAll(async () => {
    payer = await signer(11);
    payee = await signer(12);
    genesis = singleValidatorGenesis(CHAIN, addressOf(evmSender), 10n ** 22n, {
      address: payer.address,
      lamports: 10n * SOL,
    });
    nodes = new NodeStates(genesis);
    a = (await nodes.state()).state;
    b = (await nodes.state()).state;
  });

  afterAll(async () => {
    await nodes?.close();
  });

  let derived = "";

  it("answers a contract's derived SVM account (a PDA of the gateway program) and funds it from Solana", async () => {
    await evmTx({ data: encodeDeployData({ abi: SvmPayer.abi, bytecode: SvmPayer.bytecode }), gas: 3_000_000n });
    await evmTx({ data: encodeDeployData({ abi: Counter.abi, bytecode: Counter.bytecode }), gas: 1_000_000n });
    await nextBlock();
    const answer = await a.executor.call(a.executor.head.vmRoots, evmCallEnv(), {
      to: SVM_PRECOMPILE_ADDRESS,
      data: encodeFunctionData({ abi: SVM_PRECOMPILE_ABI, functionName: "svmAccountOf", args: [payerContract] }),
    });
    expect(answer.status).toBe(1);
    const expected = await svmAccountOf(payerContract);
    expect(answer.returnData).toBe(toHex(expected));
    derived = addressOfKey(expected);
    // A call whose height's blockhash window is not in memory (an old block on a long chain) still runs.
    const far = await a.executor.call(
      a.executor.head.vmRoots,
      { ...evmCallEnv(), height: a.executor.head.height + 1_000 },
      {
        to: SVM_PRECOMPILE_ADDRESS,
        data: encodeFunctionData({ abi: SVM_PRECOMPILE_ABI, functionName: "svmAccountOf", args: [payerContract] }),
      },
    );
    expect(far.returnData).toBe(toHex(expected));
    const blockhash = a.executor.latestSvmBlockhash().blockhash;
    await svmTx(await buildTx(payer, [transferIx(payer, derived as Address, 2n * SOL)], blockhash));
    await nextBlock();
    expect(await lamportsOf(a, derived)).toBe(2n * SOL);
  });

  it("a contract pays lamports from its derived account: both VMs change in one block another node validates", async () => {
    const hash = await evmTx({
      to: payerContract,
      data: payCall("pay", SOL / 2n),
    });
    const block = await nextBlock();
    expect(block.transactions).toHaveLength(1);
    const r = await receipt(hash);
    expect(r.status).toBe("0x1");
    expect(BigInt(r.gasUsed)).toBeGreaterThan(INVOKE_BASE_GAS);
    expect(r.logs).toHaveLength(1);
    for (const state of [a, b]) {
      expect(await lamportsOf(state, payee.address)).toBe(SOL / 2n);
      expect(await lamportsOf(state, derived)).toBe(2n * SOL - SOL / 2n);
    }
    expect(await read(SvmPayer.abi, payerContract, "payments")).toBe(1n);
  });

  it("undoes the SVM side with a reverted transaction, and with a reverted inner frame the caller catches", async () => {
    const before = { payee: await lamportsOf(a, payee.address), derived: await lamportsOf(a, derived) };
    const reverted = await evmTx({
      to: payerContract,
      data: payCall("payThenRevert", SOL / 4n),
    });
    const caught = await evmTx({
      to: payerContract,
      data: payCall("payInnerAndCatch", SOL / 4n),
    });
    await nextBlock();
    expect((await receipt(reverted)).status).toBe("0x0");
    expect((await receipt(caught)).status).toBe("0x1");
    expect(await read(SvmPayer.abi, payerContract, "payments")).toBe(101n);
    for (const state of [a, b]) {
      expect(await lamportsOf(state, payee.address)).toBe(before.payee);
      expect(await lamportsOf(state, derived)).toBe(before.derived);
    }
  });

  it("refuses a signer other than the caller's account, DELEGATECALL, and an instruction the SVM rejects", async () => {
    const env = evmCallEnv();
    const victim = toHex(pubkeyBytes(payer.address));
    const forged = await a.executor.call(a.executor.head.vmRoots, env, {
      from: addressOf(evmSender),
      to: payerContract,
      data: encodeFunctionData({
        abi: SvmPayer.abi,
        functionName: "forge",
        args: [victim, toHex(pubkeyBytes(payee.address)), 1n],
      }),
    });
    expect(forged.status).toBe(0);
    expect(forged.revertReason).toBe("svm: only the caller's derived account can sign");
    const delegated = await a.executor.call(a.executor.head.vmRoots, env, {
      to: payerContract,
      data: payCall("viaDelegatecall", 1n),
    });
    const [ok, out] = decodeFunctionResult({
      abi: SvmPayer.abi,
      functionName: "viaDelegatecall",
      data: delegated.returnData,
    }) as [boolean, Hex];
    expect(ok).toBe(false);
    expect(Buffer.from(out.slice(2 + 8 + 128), "hex").toString()).toContain("invoke must be a CALL");
    // More lamports than the derived account holds: the system program fails, the call reverts with its error.
    const tooMuch = await a.executor.call(a.executor.head.vmRoots, env, {
      to: payerContract,
      data: payCall("pay", 100n * SOL),
    });
    expect(tooMuch.status).toBe(0);
    expect(tooMuch.revertReason).toMatch(/^svm: .*InstructionError/);
  });

  it("stops the whole execution when the SVM side throws (a bug) rather than run on with open checkpoints", async () => {
    const raw = await evmSender.signTransaction({
      chainId: Number(CHAIN),
      nonce,
      to: payerContract,
      data: payCall("pay", 1n),
      gas: 1_000_000n,
      type: "eip1559",
      maxFeePerGas: 5n * GWEI,
      maxPriorityFeePerGas: GWEI,
    });
    const decoded = decodeTransaction(fromHex(raw), CHAIN);
    if (!decoded.ok) throw new Error(decoded.message);
    // Fault injection at the seam: the journal calls are honoured, the invoke throws as a litesvm bug would.
    const throwing: SvmSide = {
      checkpoint: () => undefined,
      keepCheckpoint: () => undefined,
      revertCheckpoint: () => undefined,
      invoke: async () => {
        throw new Error("boom");
      },
    };
    const head = a.executor.head;
    await expect(
      a.core.execute(head.stateRoot, head.vmRoots, evmCallEnv(), [decoded.tx], "build", undefined, { svm: throwing }),
    ).rejects.toMatchObject({ code: "internal" });
  });

  it("a Solana transaction calls an EVM contract from its signer's derived address, paying gas in the native coin", async () => {
    const from = evmAddressOf(pubkeyBytes(payer.address));
    await evmTx({ to: from, value: 10n ** 18n, gas: 21_000n });
    await nextBlock();
    const poolBefore = await evmBalance(REWARD_POOL_ADDRESS);
    const balanceBefore = await evmBalance(from);
    const lamportsBefore = await lamportsOf(a, payer.address);
    const bump = fromHex(encodeFunctionData({ abi: Counter.abi, functionName: "bump", args: [5n] }));
    const ix = {
      programAddress: EVM_GATEWAY_PROGRAM as Address,
      accounts: [{ address: payer.address, role: AccountRole.READONLY_SIGNER, signer: payer }],
      data: encodeGatewayCall(counter, 200_000n, bump),
    };
    const signature = await svmTx(await buildTx(payer, [ix], a.executor.latestSvmBlockhash().blockhash));
    const block = await nextBlock();
    const tx = await solanaTx(signature);
    expect(tx.meta.err).toBeNull();
    expect(await read(Counter.abi, counter, "count")).toBe(5n);
    expect(((await read(Counter.abi, counter, "lastCaller")) as string).toLowerCase()).toBe(from);
    const gas = BigInt(tx.meta.computeUnitsConsumed);
    expect(gas).toBeGreaterThan(21_000n);
    expect(block.header.gasUsed).toBe(gas);
    const baseFee = block.header.baseFeePerGas;
    expect(await evmBalance(from)).toBe(balanceBefore - gas * baseFee);
    expect(await evmBalance(REWARD_POOL_ADDRESS)).toBe(poolBefore + gas * baseFee);
    expect(await lamportsOf(a, payer.address)).toBe(lamportsBefore - 5_000n);
    expect(tx.meta.logMessages.some((l) => l.includes("EVM call 0") && l.includes("success"))).toBe(true);
  });

  it("a failing gateway call undoes every EVM call of its transaction, which pays its fee and gas only", async () => {
    const from = evmAddressOf(pubkeyBytes(payer.address));
    const balanceBefore = await evmBalance(from);
    const bump = fromHex(encodeFunctionData({ abi: Counter.abi, functionName: "bump", args: [1n] }));
    const fail = fromHex(encodeFunctionData({ abi: Counter.abi, functionName: "fail" }));
    const account = [{ address: payer.address, role: AccountRole.READONLY_SIGNER, signer: payer }];
    const ixs = [
      {
        programAddress: EVM_GATEWAY_PROGRAM as Address,
        accounts: account,
        data: encodeGatewayCall(counter, 100_000n, bump),
      },
      {
        programAddress: EVM_GATEWAY_PROGRAM as Address,
        accounts: account,
        data: encodeGatewayCall(counter, 100_000n, fail),
      },
    ];
    const signature = await svmTx(await buildTx(payer, ixs, a.executor.latestSvmBlockhash().blockhash));
    const block = await nextBlock();
    const tx = await solanaTx(signature);
    expect(JSON.stringify(tx.meta.err)).toContain("EvmCallFailed(1, revert: counter says no)");
    expect(await read(Counter.abi, counter, "count")).toBe(5n);
    const gas = BigInt(tx.meta.computeUnitsConsumed);
    expect(await evmBalance(from)).toBe(balanceBefore - gas * block.header.baseFeePerGas);
  });

  it("refuses an EVM call that would re-enter the SVM, and gateway calls mixed with other instructions", async () => {
    const pay = fromHex(
      encodeFunctionData({ abi: SvmPayer.abi, functionName: "pay", args: [toHex(pubkeyBytes(payee.address)), 1n] }),
    );
    const account = [{ address: payer.address, role: AccountRole.READONLY_SIGNER, signer: payer }];
    const blockhash = a.executor.latestSvmBlockhash().blockhash;
    const reentry = await svmTx(
      await buildTx(
        payer,
        [
          {
            programAddress: EVM_GATEWAY_PROGRAM as Address,
            accounts: account,
            data: encodeGatewayCall(payerContract, 500_000n, pay),
          },
        ],
        blockhash,
      ),
    );
    await nextBlock();
    const tx = await solanaTx(reentry);
    expect(JSON.stringify(tx.meta.err)).toContain("ReentrantCrossVmCall");
    expect(await read(SvmPayer.abi, payerContract, "payments")).toBe(101n);

    const mixed = await buildTx(
      payer,
      [
        transferIx(payer, payee.address, 1n),
        {
          programAddress: EVM_GATEWAY_PROGRAM as Address,
          accounts: account,
          data: encodeGatewayCall(counter, 100_000n, pay),
        },
      ],
      a.executor.latestSvmBlockhash().blockhash,
    );
    const refused = await a.mempool.add(entry(mixed), { kind: "peer", peer: "p" });
    expect(refused.ok ? "ok" : refused.code).toBe("unsupported_type");
    expect(refused.ok ? "" : refused.message).toContain("EVM gateway calls cannot share a transaction");
  });
});
