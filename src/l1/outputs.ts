// Outputs (docs/hard-finality.md "Outputs"): every `outputInterval` heights a validator proposes the header of the
// newest multiple of the interval below its head to the L1 OutputOracle, with the block's canonical certificate (the
// store's, below the head) and the registry epoch whose set decided that height: the set of height H is the registry's
// epoch at the L1 origin of block H - 2 (the genesis origin for H <= 2; src/node/membership.ts). The validators take
// turns like the batcher: output H / interval is due to set member ((H / interval) mod n) once block H + 1 exists,
// to the next one `staggerMs` later; each re-reads the oracle first. The oracle itself refuses a height that is not
// above its last one, so a lost race costs a gas estimate, not a transaction.
//
// FinalizedTracker serves the RPC's `finalized` tag: the height of the newest output in the oracle's state at the
// L1's `finalized` block, i.e. the highest height covered by an output whose L1 block is final.
import { type Address, BaseError, ContractFunctionZeroDataError, type Hex, type PublicClient } from "viem";
import { toHex } from "../../consensus/bytes.ts";
import { OutputOracle } from "../../staking-contracts/artifacts.ts";
import { g2ToEip2537 } from "../../staking-contracts/eip2537.ts";
import { decodeBlockHead, encodeHeader } from "../chain/block.ts";
import type { Logger } from "../node/log.ts";
import type { ChainStore } from "../storage/chain-store.ts";
import { type FinalityMetrics, turnOf } from "./batcher.ts";
import { PassInFlight } from "./passes.ts";
import { firstLine, type L1Sender, revertOf } from "./sender.ts";
import type { L1Ref, L1View } from "./view.ts";

export interface OutputProposerParams {
  /** Heights between two outputs (outputs are at multiples of it). */
  readonly outputInterval: number;
  readonly staggerMs: number;
  readonly pollMs: number;
}

export type OutputPhase = "idle" | "waiting" | "proposing" | "backoff";

export interface OutputStatus {
  readonly l1OutputHeight: number;
  readonly phase: OutputPhase;
  readonly lastTx: Hex | null;
  readonly lastError: string | null;
}

/** The newest L2 height in `oracle` (0 when it has none), at `blockTag` or a block number. */
export async function latestOutputHeight(
  client: PublicClient,
  oracle: Address,
  at: { blockTag: "latest" | "finalized" } | { blockNumber: bigint } = { blockTag: "latest" },
): Promise<number> {
  try {
    const output = (await client.readContract({
      address: oracle,
      abi: OutputOracle.abi,
      functionName: "latestOutput",
      ...at,
    })) as { height: bigint };
    return Number(output.height);
  } catch (error) {
    // No output yet: the oracle reverts UnknownOutput(0, 0).
    if (revertOf(error)?.name === "UnknownOutput") return 0;
    // At a block before the oracle existed (the L1's finalized block lags by minutes) it has no code.
    if (error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionZeroDataError) !== null) return 0;
    throw error;
  }
}

/**
 * The newest L2 height among the outputs proposed at or before L1 block `l1Block`, read from the oracle's output list
 * at its latest block: outputs are only ever appended, each with the L1 block it was proposed in, so the answer is
 * what `latestOutput()` gives at `l1Block` without reading that block's state (an endpoint that keeps only its newest
 * states, or an anvil resumed from a dump, has none for it). A bisection over `outputAt(i).l1BlockNumber`.
 */
export async function outputHeightAtBlock(client: PublicClient, oracle: Address, l1Block: bigint): Promise<number> {
  const read = <T>(functionName: "outputCount" | "outputAt", args: readonly bigint[] = []) =>
    client.readContract({
      address: oracle,
      abi: OutputOracle.abi,
      functionName,
      args,
      blockTag: "latest",
    } as never) as Promise<T>;
  const count = BigInt(await read<bigint>("outputCount"));
  const at = (i: bigint) => read<{ height: bigint; l1BlockNumber: bigint }>("outputAt", [i]);
  // The last index whose output was proposed at or before `l1Block` (-1: none yet).
  let low = -1n;
  let high = count - 1n;
  while (low < high) {
    const mid = (low + high + 1n) / 2n;
    if (BigInt((await at(mid)).l1BlockNumber) <= l1Block) low = mid;
    else high = mid - 1n;
  }
  return low < 0n ? 0 : Number((await at(low)).height);
}

export class OutputProposer {
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly passes = new PassInFlight();
  private failures = 0;
  private nextAttemptMs = 0;
  private state: { l1Height: number; phase: OutputPhase; lastTx: Hex | null; lastError: string | null } = {
    l1Height: 0,
    phase: "idle",
    lastTx: null,
    lastError: null,
  };

  constructor(
    private readonly params: OutputProposerParams,
    private readonly m: {
      readonly oracle: Address;
      readonly client: PublicClient;
      readonly store: Pick<ChainStore, "headHeight" | "getBlock" | "getCertificate" | "validatorSetFor">;
      readonly l1: L1View;
      /** The genesis L1 origin: it stands for the origin of heights <= 0. */
      readonly genesisOrigin: L1Ref;
      readonly sender: L1Sender;
      readonly ownAddress: Hex;
      readonly log: Logger;
      readonly metrics: FinalityMetrics;
      readonly nowMs: () => number;
    },
  ) {
    if (!(Number.isSafeInteger(params.outputInterval) && params.outputInterval >= 1)) {
      throw new RangeError(`outputInterval must be a positive integer, got ${params.outputInterval}`);
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.params.pollMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  status(): OutputStatus {
    return {
      l1OutputHeight: this.state.l1Height,
      phase: this.state.phase,
      lastTx: this.state.lastTx,
      lastError: this.state.lastError,
    };
  }

  async tick(): Promise<void> {
    if (this.timer === null) return;
    await this.passes.run(() => this.guardedPass());
  }

  /** Resolves when the pass in flight, if any, has ended: the node waits for it (a while) before closing the store. */
  idle(): Promise<void> {
    return this.passes.idle();
  }

  /**
   * The lowest height the next output reads (history pruning keeps it): its block, the next one and the block two
   * heights before it, whose L1 origin names the epoch of its set.
   */
  historyNeededFrom(): number {
    const interval = this.params.outputInterval;
    return Math.max(1, Math.floor((this.m.store.headHeight - 1) / interval) * interval - 2);
  }

  private async guardedPass(): Promise<void> {
    try {
      await this.pass();
    } catch (error) {
      // Stopped meanwhile, and the store closed under a pass that outlived the node's wait: the next start reads the
      // oracle again.
      if (this.timer === null) {
        this.m.log.debug({ err: firstLine(error) }, "output proposer pass cut short: the node is stopping");
        return;
      }
      this.state.lastError = firstLine(error);
      this.m.log.warn({ err: firstLine(error) }, "output proposer pass failed");
    }
  }

  private async pass(): Promise<void> {
    const head = this.m.store.headHeight;
    const interval = this.params.outputInterval;
    // The newest multiple of the interval strictly below the head: its certificate is canonical.
    const target = Math.floor((head - 1) / interval) * interval;
    const onL1 = await latestOutputHeight(this.m.client, this.m.oracle);
    this.state.l1Height = onL1;
    this.m.metrics.outputHeight.set(onL1);
    if (target < 1 || target <= onL1) {
      this.state.phase = "idle";
      return;
    }
    const now = this.m.nowMs();
    if (now < this.nextAttemptMs) {
      this.state.phase = "backoff";
      return;
    }
    const [blockBytes, nextBytes, certificate] = await Promise.all([
      this.m.store.getBlock(target),
      this.m.store.getBlock(target + 1),
      this.m.store.getCertificate(target),
    ]);
    if (blockBytes === undefined || nextBytes === undefined || certificate === undefined) return;
    const set = this.m.store.validatorSetFor(this.m.store.headHeight + 1);
    const turn = turnOf(set, this.m.ownAddress, BigInt(target / interval));
    if (turn === null) {
      this.state.phase = "idle";
      return;
    }
    // Due once block target + 1 exists (by its header time, which every node reads the same).
    const slotMs = decodeBlockHead(nextBytes).header.timestampMs + turn * this.params.staggerMs;
    if (now < slotMs) {
      this.state.phase = "waiting";
      return;
    }
    const block = decodeBlockHead(blockBytes);
    const epoch = await this.epochOf(target, block.header.validatorSetId);
    if (epoch === null) return;
    if (epoch === "mismatch") {
      this.state.lastError = `the set of height ${target} is not a registry epoch's set`;
      this.backoff();
      return;
    }
    if ((await latestOutputHeight(this.m.client, this.m.oracle)) >= target) return;
    this.state.phase = "proposing";
    const outcome = await this.m.sender.send("output", {
      address: this.m.oracle,
      abi: OutputOracle.abi,
      functionName: "proposeOutput",
      args: [
        epoch,
        toHex(encodeHeader(block.header)),
        certificate.round,
        toHex(certificate.signers),
        toHex(certificate.signature),
        toHex(g2ToEip2537(certificate.signature)),
      ],
    });
    const outcomeLabel =
      outcome.kind === "refused" && outcome.error === "HeightNotIncreasing" ? "already_proposed" : outcome.kind;
    this.m.metrics.outputProposals.inc({ outcome: outcomeLabel });
    switch (outcome.kind) {
      case "mined":
        this.failures = 0;
        this.state.phase = "idle";
        this.state.lastTx = outcome.txHash;
        this.state.lastError = null;
        this.m.log.info(
          {
            height: target,
            epoch: epoch.toString(),
            tx: outcome.txHash,
            l1Block: outcome.l1Block.toString(),
            gas: outcome.gasUsed.toString(),
          },
          "output proposed to L1",
        );
        return;
      case "refused":
        if (outcome.error === "HeightNotIncreasing") {
          this.state.phase = "idle";
          return;
        }
        this.state.lastError = outcome.reason;
        this.m.log.warn({ height: target, reason: outcome.reason }, "the output oracle refuses the output");
        this.backoff();
        return;
      case "withdrawn":
        this.state.phase = "idle";
        return;
      case "stopped":
        this.m.log.info({ height: target, reason: outcome.reason }, "output left pending: the node is stopping");
        return;
      case "fee_cap":
      case "failed":
        this.state.lastError = outcome.reason;
        this.m.log.warn({ height: target, outcome: outcome.kind, reason: outcome.reason }, "output not proposed");
        this.backoff();
        return;
    }
  }

  /**
   * The registry epoch whose set decided `height`: the epoch at the L1 origin of height - 2. Null when the L1 view
   * cannot say yet; "mismatch" when that epoch's set is not the header's (a genesis set the registry never had).
   */
  private async epochOf(height: number, setId: Hex): Promise<bigint | "mismatch" | null> {
    let origin = this.m.genesisOrigin;
    if (height - 2 >= 1) {
      const bytes = await this.m.store.getBlock(height - 2);
      if (bytes === undefined) return null;
      origin = decodeBlockHead(bytes).header.l1Origin;
    }
    const answer = await this.m.l1.epochAt(origin);
    if (answer.kind !== "ok") {
      this.m.log.debug({ height, reason: answer.reason }, "output proposer waits for the L1 view");
      return null;
    }
    return answer.value.setId.toLowerCase() === setId.toLowerCase() ? answer.value.epoch : "mismatch";
  }

  private backoff(): void {
    this.failures += 1;
    this.state.phase = "backoff";
    this.nextAttemptMs = this.m.nowMs() + Math.min(60_000, 1_000 * 2 ** this.failures);
  }
}

/** The RPC's `finalized` height: the newest output in the oracle's state at the L1's finalized block. */
export class FinalizedTracker {
  /** Whether the last read had to go through the output list (the endpoint served no state at `finalized`). */
  private fromHistory = false;

  private height = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private busy = false;
  private reported = false;

  constructor(
    private readonly m: {
      readonly oracle: Address;
      readonly client: PublicClient;
      readonly pollMs: number;
      readonly log: Logger;
      readonly metrics: FinalityMetrics;
    },
  ) {}

  /** Highest L2 height finalized on L1 (0 = the genesis until an output is in a finalized L1 block). */
  get finalizedHeight(): number {
    return this.height;
  }

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.m.pollMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * `latestOutput()` at the L1's finalized block; when that block's state is not served (not a revert), the same
   * answer from the output list at the latest block.
   */
  private async readFinalized(): Promise<number> {
    try {
      const height = await latestOutputHeight(this.m.client, this.m.oracle, { blockTag: "finalized" });
      this.fromHistory = false;
      return height;
    } catch (error) {
      if (revertOf(error) !== null) throw error;
      const finalized = await this.m.client.getBlock({ blockTag: "finalized" });
      const height = await outputHeightAtBlock(this.m.client, this.m.oracle, finalized.number);
      if (!this.fromHistory) {
        this.m.log.info(
          { l1Block: Number(finalized.number), reason: firstLine(error) },
          "the L1 endpoint does not serve the state of its finalized block: reading the finalized output from the output list",
        );
      }
      this.fromHistory = true;
      return height;
    }
  }

  async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const height = await this.readFinalized();
      // Finality only moves forward (an L1 that answered a lower finalized block is wrong or reorged beyond finality).
      if (height > this.height) {
        this.height = height;
        this.m.metrics.finalizedHeight.set(height);
        this.m.log.info({ height }, "L2 height finalized on L1");
      }
      this.reported = false;
    } catch (error) {
      if (!this.reported) this.m.log.warn({ err: firstLine(error) }, "cannot read the finalized output from L1");
      this.reported = true;
    } finally {
      this.busy = false;
    }
  }
}
