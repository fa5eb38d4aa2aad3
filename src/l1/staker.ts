// A staker's position on the L1 staking contracts, read from their views (and the Rewards `Claimed` events): stake
// and unbonding per sequencer pool, pending rewards, commission owed to an operator, and what was claimed, by epoch.
// One reader for `dcn rewards` and for lumia_getStake / lumia_getRewards (which read at the mirror's confirmed block).
import { type Address, BaseError, type GetContractEventsReturnType, type Hex, type PublicClient, RpcError } from "viem";
import { z } from "zod";
import { Rewards, SequencerRegistry, Staking } from "../../staking-contracts/artifacts.ts";

export const STAKER_LIMITS = {
  /** The registry allows 128 open sequencers; ids only grow, so a long-lived registry may count more. */
  maxSequencers: 512,
  /** Claims listed (the newest); the total counts every claim. */
  maxClaims: 256,
} as const;

/**
 * The registry's epoch at L1 block `number`: the last epoch whose first block (`epochInfo(e).startBlock`) is at or
 * before it, found by bisection over the epochs up to `currentEpoch` (epochs start in increasing block order). Start
 * blocks never change once an epoch exists, so they are read at any later block, whose state every endpoint serves,
 * and `startOf` may cache them. null: the registry did not exist yet at `number`.
 */
export async function epochAtBlock(
  number: bigint,
  currentEpoch: bigint,
  startOf: (epoch: bigint) => Promise<bigint>,
): Promise<bigint | null> {
  if ((await startOf(0n)) > number) return null;
  let low = 0n;
  let high = currentEpoch;
  while (low < high) {
    const mid = (low + high + 1n) / 2n;
    if ((await startOf(mid)) <= number) low = mid;
    else high = mid - 1n;
  }
  return low;
}

export interface StakingContracts {
  readonly registry: Address;
  readonly staking: Address;
  readonly rewards: Address;
  readonly token: Address;
}

/** Where to read: a block hash (the mirror's confirmed block) or a block number. */
export type ReadAt = { readonly blockHash: Hex } | { readonly blockNumber: bigint };

/** The staking, rewards and token addresses the registry points to. */
export async function resolveStakingContracts(
  client: PublicClient,
  registry: Address,
  at: ReadAt,
): Promise<StakingContracts> {
  const staking = (await client.readContract({
    address: registry,
    abi: SequencerRegistry.abi,
    functionName: "staking",
    ...at,
  })) as Address;
  const [rewards, token] = await Promise.all([
    client.readContract({ address: staking, abi: Staking.abi, functionName: "rewards", ...at }),
    client.readContract({ address: staking, abi: Staking.abi, functionName: "token", ...at }),
  ]);
  return { registry, staking, rewards: rewards as Address, token: token as Address };
}

export interface StakerPosition {
  readonly sequencerId: number;
  readonly operator: Address;
  /** Active stake (wei): counts for power and rewards. */
  readonly stake: bigint;
  /** Unbonding (wei): no power, no rewards, still slashable until withdrawn. */
  readonly unbonding: bigint;
  /** Claimable rewards (wei). */
  readonly pending: bigint;
}

export interface StakerClaim {
  readonly sequencerId: number;
  readonly amount: bigint;
  readonly blockNumber: bigint;
  /** The registry's epoch at the claim's block. */
  readonly epoch: bigint;
}

export interface StakerReport {
  readonly address: Address;
  readonly block: { readonly number: bigint; readonly hash: Hex };
  readonly epoch: bigint;
  /** Pools in which the address has stake, unbonding stake or pending rewards, by sequencer id. */
  readonly positions: readonly StakerPosition[];
  readonly totalStake: bigint;
  readonly totalUnbonding: bigint;
  readonly totalPending: bigint;
  /** Commission owed to the address as an operator (claimCommission). */
  readonly commissionOwed: bigint;
  /** The newest maxClaims claims, oldest first (null when not asked for). */
  readonly claims: readonly StakerClaim[] | null;
  /** The listed claims summed by epoch. */
  readonly claimedByEpoch: readonly { readonly epoch: bigint; readonly amount: bigint }[] | null;
  /** Every claim of the address, listed or not. */
  readonly totalClaimed: bigint | null;
}

/** A `Claimed` event of the Rewards contract: what an address took out of a pool, and when. */
export interface ClaimEvent {
  readonly sequencerId: number;
  readonly amount: bigint;
  readonly blockNumber: bigint;
}

/**
 * What the L1 mirror's staking index (src/l1/staker-index.ts) knows of an address up to the report's block: the pools
 * it ever staked in (a position, unbonding or reward can exist in no other) and its claims.
 */
export interface IndexedStaker {
  readonly pools: readonly number[];
  /** The newest claims (at most STAKER_LIMITS.maxClaims), oldest first. */
  readonly claims: readonly ClaimEvent[];
  /** Every claim of the address summed. */
  readonly totalClaimed: bigint;
}

export interface StakerReadOptions {
  /** The mirror's index: read only these pools and take the claims from it (no eth_getLogs). Without it, every
   * pool of the registry is read and the claims come from the Claimed events since the registry's deployment. */
  readonly indexed?: IndexedStaker;
  /** The first L1 block of a registry epoch (fixed once the epoch exists), read at the report's block when not
   * given; the mirror passes its cache. */
  readonly epochStart?: (epoch: bigint, blockHash: Hex) => Promise<bigint>;
}

/** Reads the position of `address` at `at`; `withClaims` adds its claims up to that block. */
export async function readStakerReport(
  client: PublicClient,
  c: StakingContracts,
  address: Address,
  at: ReadAt,
  withClaims: boolean,
  opts: StakerReadOptions = {},
): Promise<StakerReport> {
  const block = await client.getBlock("blockHash" in at ? { blockHash: at.blockHash } : at);
  if (block.hash === null || block.number === null) throw new Error("cannot read a staker at a pending block");
  const pinned = { blockHash: block.hash } as const;
  const [ids, epoch, commissionOwed] = await Promise.all([
    opts.indexed !== undefined
      ? opts.indexed.pools.slice(0, STAKER_LIMITS.maxSequencers)
      : client
          .readContract({ address: c.registry, abi: SequencerRegistry.abi, functionName: "sequencerCount", ...pinned })
          .then((count) =>
            Array.from({ length: Math.min(Number(count), STAKER_LIMITS.maxSequencers) }, (_, i) => i + 1),
          ),
    client.readContract({ address: c.registry, abi: SequencerRegistry.abi, functionName: "currentEpoch", ...pinned }),
    client.readContract({
      address: c.rewards,
      abi: Rewards.abi,
      functionName: "commissionOf",
      args: [address],
      ...pinned,
    }),
  ]);
  const rows = await Promise.all(
    ids.map(async (id) => {
      const [stake, unbonding, pending, operator] = await Promise.all([
        client.readContract({
          address: c.staking,
          abi: Staking.abi,
          functionName: "stakeOf",
          args: [id, address],
          ...pinned,
        }),
        client.readContract({
          address: c.staking,
          abi: Staking.abi,
          functionName: "unbondingOf",
          args: [id, address],
          ...pinned,
        }),
        client.readContract({
          address: c.rewards,
          abi: Rewards.abi,
          functionName: "pendingRewards",
          args: [id, address],
          ...pinned,
        }),
        client.readContract({
          address: c.registry,
          abi: SequencerRegistry.abi,
          functionName: "operatorOf",
          args: [id],
          ...pinned,
        }),
      ]);
      return { sequencerId: id, operator: operator as Address, stake, unbonding, pending };
    }),
  );
  const positions = rows.filter((r) => r.stake > 0n || r.unbonding > 0n || r.pending > 0n);
  const sum = (f: (p: StakerPosition) => bigint) => positions.reduce((s, p) => s + f(p), 0n);
  let claims: StakerClaim[] | null = null;
  let claimedByEpoch: { epoch: bigint; amount: bigint }[] | null = null;
  let totalClaimed: bigint | null = null;
  if (withClaims) {
    // Epochs of the claims from the registry's epoch history at this block: no state of old blocks is needed.
    const readStart =
      opts.epochStart ??
      (async (e: bigint) => {
        const info = (await client.readContract({
          address: c.registry,
          abi: SequencerRegistry.abi,
          functionName: "epochInfo",
          args: [e],
          ...pinned,
        })) as { startBlock: bigint };
        return BigInt(info.startBlock);
      });
    const starts = new Map<bigint, bigint>();
    const startOf = async (e: bigint): Promise<bigint> => {
      let first = starts.get(e);
      if (first === undefined) {
        first = await readStart(e, block.hash);
        starts.set(e, first);
      }
      return first;
    };
    // Epoch 0 starts at the registry's deployment, before the Rewards contract: no claim is older.
    const all = opts.indexed?.claims ?? (await claimedEvents(client, c, address, await startOf(0n), block.number));
    totalClaimed = opts.indexed?.totalClaimed ?? all.reduce((sum, claim) => sum + claim.amount, 0n);
    claims = [];
    for (const claim of all.slice(-STAKER_LIMITS.maxClaims)) {
      claims.push({ ...claim, epoch: (await epochAtBlock(claim.blockNumber, BigInt(epoch), startOf)) ?? 0n });
    }
    const byEpoch = new Map<bigint, bigint>();
    for (const claim of claims) byEpoch.set(claim.epoch, (byEpoch.get(claim.epoch) ?? 0n) + claim.amount);
    claimedByEpoch = [...byEpoch]
      .map(([e, amount]) => ({ epoch: e, amount }))
      .sort((a, b) => (a.epoch < b.epoch ? -1 : 1));
  }
  return {
    address,
    block: { number: block.number, hash: block.hash },
    epoch,
    positions,
    totalStake: sum((p) => p.stake),
    totalUnbonding: sum((p) => p.unbonding),
    totalPending: sum((p) => p.pending),
    commissionOwed,
    claims,
    claimedByEpoch,
    totalClaimed,
  };
}

/**
 * Logs of L1 blocks `from` to `to` read by `read`, in order. Many endpoints refuse an eth_getLogs over a long block
 * range (or with too many results) with a JSON-RPC error: the range is then halved until each part is answered,
 * whatever the endpoint's limit. A transport failure (no answer) is thrown at once.
 */
export async function readLogsSplitting<T>(
  read: (from: bigint, to: bigint) => Promise<T[]>,
  from: bigint,
  to: bigint,
): Promise<T[]> {
  try {
    return await read(from, to);
  } catch (error) {
    const answered = error instanceof BaseError && error.walk((e) => e instanceof RpcError) !== null;
    if (to <= from || !answered) throw error;
    const mid = from + (to - from) / 2n;
    const lower = await readLogsSplitting(read, from, mid);
    return [...lower, ...(await readLogsSplitting(read, mid + 1n, to))];
  }
}

/** The Claimed events of `account` in L1 blocks `from` to `to`, oldest first. */
async function claimedEvents(
  client: PublicClient,
  c: StakingContracts,
  account: Address,
  from: bigint,
  to: bigint,
): Promise<ClaimEvent[]> {
  const logs = await readLogsSplitting(
    (fromBlock, toBlock): Promise<ClaimedLog[]> =>
      client.getContractEvents({
        address: c.rewards,
        abi: Rewards.abi,
        eventName: "Claimed",
        args: { account },
        fromBlock,
        toBlock,
      }),
    from,
    to,
  );
  return logs.map((log) => ({
    sequencerId: Number(log.args.sequencerId ?? 0),
    amount: log.args.amount ?? 0n,
    blockNumber: log.blockNumber ?? 0n,
  }));
}

type ClaimedLog = GetContractEventsReturnType<typeof Rewards.abi, "Claimed">[number];

/** The report as JSON: amounts as decimal strings of wei. */
export function stakerReportJson(r: StakerReport): Record<string, unknown> {
  const s = (v: bigint) => v.toString();
  return {
    address: r.address,
    block: { number: s(r.block.number), hash: r.block.hash },
    epoch: s(r.epoch),
    positions: r.positions.map((p) => ({
      sequencerId: p.sequencerId,
      operator: p.operator,
      stake: s(p.stake),
      unbonding: s(p.unbonding),
      pending: s(p.pending),
    })),
    totalStake: s(r.totalStake),
    totalUnbonding: s(r.totalUnbonding),
    totalPending: s(r.totalPending),
    commissionOwed: s(r.commissionOwed),
    claims:
      r.claims?.map((c) => ({
        sequencerId: c.sequencerId,
        amount: s(c.amount),
        blockNumber: s(c.blockNumber),
        epoch: s(c.epoch),
      })) ?? null,
    claimedByEpoch: r.claimedByEpoch?.map((e) => ({ epoch: s(e.epoch), amount: s(e.amount) })) ?? null,
    totalClaimed: r.totalClaimed === null ? null : s(r.totalClaimed),
  };
}

const wei = z
  .string()
  .regex(/^[0-9]{1,78}$/)
  .transform((v) => BigInt(v));
const hexOf = (bytes: number) =>
  z
    .string()
    .regex(new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`))
    .transform((v) => v as Hex);
const staker = z.object({
  address: hexOf(20),
  block: z.object({ number: wei, hash: hexOf(32) }),
  epoch: wei,
  positions: z
    .array(
      z.object({
        sequencerId: z.number().int().min(0),
        operator: hexOf(20),
        stake: wei,
        unbonding: wei,
        pending: wei,
      }),
    )
    .max(STAKER_LIMITS.maxSequencers),
  totalStake: wei,
  totalUnbonding: wei,
  totalPending: wei,
  commissionOwed: wei,
  claims: z
    .array(z.object({ sequencerId: z.number().int().min(0), amount: wei, blockNumber: wei, epoch: wei }))
    .max(STAKER_LIMITS.maxClaims)
    .nullable(),
  claimedByEpoch: z.array(z.object({ epoch: wei, amount: wei })).nullable(),
  totalClaimed: wei.nullable(),
});

/** A report from its JSON (a node's lumia_getRewards answer); null when it is not one. */
export function stakerReportFromJson(json: unknown): StakerReport | null {
  const parsed = staker.safeParse(json);
  return parsed.success ? parsed.data : null;
}
