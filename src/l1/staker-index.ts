// The L1 mirror's staking index: for each address, the pools it ever staked in (Staking `Staked` events) and its
// claims (Rewards `Claimed` events), read from confirmed L1 blocks as the mirror confirms them and kept in the
// mirror's own DB. lumia_getStake / lumia_getRewards read positions only in those pools and take the claims from
// here, so an answer costs a handful of eth_calls whatever the age of the chain or the number of sequencers,
// instead of an eth_call per registered pool and an eth_getLogs scan of the whole history per request.
//
// The index is built from the registry's deployment (epoch 0's first block) upwards, in ranges of `scanBlocks`
// (halved while the endpoint refuses a range), and remembers the hash of the last block it read. A record that
// does not match the canonical chain any more (a reorg below the confirmation depth, possibly while the node was
// down) or other contracts (another deployment) is dropped and the index is built again.
import type { Level } from "level";
import type { Address, Hex, PublicClient } from "viem";
import { parseEventLogs } from "viem";
import { Rewards, Staking } from "../../staking-contracts/artifacts.ts";
import { type IndexedStaker, readLogsSplitting, STAKER_LIMITS, type StakingContracts } from "./staker.ts";

export const STAKER_INDEX_LIMITS = {
  /** L1 blocks per eth_getLogs (halved while the endpoint refuses). */
  scanBlocks: 2_000n,
} as const;

/** What the index needs of a key-value store: the mirror's level DB, or memory when it has none. */
export interface IndexStore {
  get(key: string): Promise<string | undefined>;
  put(entries: readonly (readonly [string, string])[]): Promise<void>;
  /** Entries whose key starts with `prefix`, in key order (reverse: from the last), at most `limit`. */
  entries(prefix: string, opts?: { reverse?: boolean; limit?: number }): AsyncIterable<readonly [string, string]>;
  clear(): Promise<void>;
}

export function levelIndexStore(db: Level<string, string>, name: string): IndexStore {
  const sub = db.sublevel<string, string>(name, { valueEncoding: "utf8" });
  return {
    get: (key) => sub.get(key),
    put: (entries) => sub.batch(entries.map(([key, value]) => ({ type: "put" as const, key, value }))),
    entries: (prefix, opts = {}) =>
      sub.iterator({ gte: prefix, lt: `${prefix}\uffff`, reverse: opts.reverse ?? false, limit: opts.limit ?? -1 }),
    clear: () => sub.clear(),
  };
}

export function memoryIndexStore(): IndexStore {
  const map = new Map<string, string>();
  return {
    get: async (key) => map.get(key),
    put: async (entries) => {
      for (const [key, value] of entries) map.set(key, value);
    },
    async *entries(prefix, opts = {}) {
      const keys = [...map.keys()].filter((k) => k.startsWith(prefix)).sort();
      if (opts.reverse === true) keys.reverse();
      for (const key of keys.slice(0, opts.limit ?? keys.length)) yield [key, map.get(key) as string] as const;
    },
    clear: async () => map.clear(),
  };
}

/** Where the index stands: the contracts it reads and the last L1 block read (its hash, to notice a reorg). */
interface Cursor {
  readonly staking: Address;
  readonly rewards: Address;
  readonly from: bigint;
  readonly number: bigint;
  readonly hash: Hex;
}

/** What a build or extension of the index needs from the mirror. */
export interface IndexContext {
  readonly client: PublicClient;
  readonly contracts: StakingContracts;
  /** The registry's first block (epoch 0's start): no staking event is older. */
  readonly startBlock: bigint;
  /** The hash of canonical L1 block `n` (the mirror's window, else a header read). */
  readonly hashOf: (n: bigint) => Promise<Hex>;
  readonly log?: (level: "info" | "warn", msg: string, fields: Record<string, unknown>) => void;
  readonly progress?: (block: bigint) => void;
}

/** The index is behind the block asked about: how far it has read. */
export interface IndexBehind {
  readonly behind: true;
  readonly indexedTo: bigint | null;
}

const CURSOR_KEY = "cursor";
const pad = (n: bigint | number, width: number) => n.toString(16).padStart(width, "0");
const poolKey = (account: string, sequencerId: number) => `p:${account}:${pad(sequencerId, 8)}`;
const claimPrefix = (account: string) => `c:${account}:`;
const totalKey = (account: string) => `t:${account}`;

export class StakerIndex {
  private cursor: Cursor | null | undefined;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly store: IndexStore) {}

  /** The last L1 block the index has read (null: none yet). */
  async indexedTo(): Promise<bigint | null> {
    return (await this.loadCursor())?.number ?? null;
  }

  /** Stops extending (between ranges) and waits for the range under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running?.catch(() => {});
  }

  /** Reads the staking events up to `target` (confirmed); one extension at a time, later callers wait for it. */
  async advance(target: bigint, ctx: IndexContext): Promise<void> {
    for (;;) {
      if (this.running === null) {
        const run = this.extend(target, ctx).finally(() => {
          if (this.running === run) this.running = null;
        });
        this.running = run;
        return run;
      }
      await this.running.catch(() => {});
      if ((this.cursor?.number ?? -1n) >= target) return;
    }
  }

  /** An extension is under way (the mirror's poll then starts none). */
  get busy(): boolean {
    return this.running !== null;
  }

  /**
   * The pools `account` ever staked in and its newest claims (at most STAKER_LIMITS.maxClaims, oldest first) up to
   * L1 block `upTo`, with the total of all its claims up to there; `behind` when the index has not read `upTo` yet.
   */
  async of(account: Address, upTo: bigint): Promise<IndexedStaker | IndexBehind> {
    const cursor = await this.loadCursor();
    if (cursor === null || cursor.number < upTo) return { behind: true, indexedTo: cursor?.number ?? null };
    const who = account.toLowerCase();
    const pools: number[] = [];
    for await (const [key] of this.store.entries(`p:${who}:`)) pools.push(Number.parseInt(key.slice(-8), 16));
    // Newest first: claims read after `upTo` (the index may be ahead of the report's block) are left out.
    let total = BigInt((await this.store.get(totalKey(who))) ?? "0");
    const claims: IndexedStaker["claims"][number][] = [];
    for await (const [key, value] of this.store.entries(claimPrefix(who), { reverse: true })) {
      const blockNumber = BigInt(`0x${key.slice(claimPrefix(who).length, claimPrefix(who).length + 16)}`);
      const [id, amount] = value.split(":");
      const claim = { sequencerId: Number(id), amount: BigInt(amount ?? "0"), blockNumber };
      if (blockNumber > upTo) {
        total -= claim.amount;
        continue;
      }
      claims.push(claim);
      if (claims.length === STAKER_LIMITS.maxClaims) break;
    }
    return { pools, claims: claims.reverse(), totalClaimed: total };
  }

  private async loadCursor(): Promise<Cursor | null> {
    if (this.cursor === undefined) {
      const saved = await this.store.get(CURSOR_KEY);
      if (saved === undefined) this.cursor = null;
      else {
        const j = JSON.parse(saved) as { staking: Address; rewards: Address; from: string; number: string; hash: Hex };
        this.cursor = { ...j, from: BigInt(j.from), number: BigInt(j.number) };
      }
    }
    return this.cursor;
  }

  private async extend(target: bigint, ctx: IndexContext): Promise<void> {
    let cursor = await this.loadCursor();
    const c = ctx.contracts;
    if (cursor !== null) {
      const same =
        cursor.staking === c.staking.toLowerCase() &&
        cursor.rewards === c.rewards.toLowerCase() &&
        cursor.from === ctx.startBlock;
      const canonical = same && (await ctx.hashOf(cursor.number)) === cursor.hash;
      if (!canonical) {
        ctx.log?.("warn", "the staking index does not match the L1 chain or contracts any more: building it again", {
          indexedTo: Number(cursor.number),
          reason: same ? "its last block was replaced (an L1 reorg below the confirmation depth)" : "other contracts",
        });
        await this.store.clear();
        this.cursor = cursor = null;
      }
    }
    const totals = new Map<string, bigint>();
    for (let from = cursor === null ? ctx.startBlock : cursor.number + 1n; from <= target && !this.stopped; ) {
      const end =
        from + STAKER_INDEX_LIMITS.scanBlocks - 1n < target ? from + STAKER_INDEX_LIMITS.scanBlocks - 1n : target;
      const [logs, hash] = await Promise.all([
        readLogsSplitting(
          (fromBlock, toBlock) => ctx.client.getLogs({ address: [c.staking, c.rewards], fromBlock, toBlock }),
          from,
          end,
        ),
        ctx.hashOf(end),
      ]);
      const entries: [string, string][] = [];
      const events = [
        ...parseEventLogs({ abi: Staking.abi, eventName: "Staked", logs, strict: true }).filter(
          (l) => l.address.toLowerCase() === c.staking.toLowerCase(),
        ),
        ...parseEventLogs({ abi: Rewards.abi, eventName: "Claimed", logs, strict: true }).filter(
          (l) => l.address.toLowerCase() === c.rewards.toLowerCase(),
        ),
      ];
      for (const log of events) {
        const who = log.args.account.toLowerCase();
        if (log.eventName === "Staked") {
          entries.push([poolKey(who, log.args.sequencerId), ""]);
          continue;
        }
        const key = `${claimPrefix(who)}${pad(log.blockNumber, 16)}:${pad(log.logIndex, 8)}`;
        entries.push([key, `${log.args.sequencerId}:${log.args.amount}`]);
        const total = totals.get(who) ?? BigInt((await this.store.get(totalKey(who))) ?? "0");
        totals.set(who, total + log.args.amount);
      }
      for (const [who, total] of totals) entries.push([totalKey(who), total.toString()]);
      totals.clear();
      const next: Cursor = {
        staking: c.staking.toLowerCase() as Address,
        rewards: c.rewards.toLowerCase() as Address,
        from: ctx.startBlock,
        number: end,
        hash: hash.toLowerCase() as Hex,
      };
      entries.push([
        CURSOR_KEY,
        JSON.stringify({ ...next, from: next.from.toString(), number: next.number.toString() }),
      ]);
      // The events of the range and the cursor that says they were read, in one write.
      await this.store.put(entries);
      this.cursor = next;
      ctx.progress?.(end);
      from = end + 1n;
    }
  }
}
