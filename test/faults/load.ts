// Load for the fault suite: wallets (the devnet's funded accounts) send signed EIP-1559 transfers over JSON-RPC to
// whichever node the scenario says is up, as real wallets do: a window of unconfirmed nonces, and a transaction that
// is not committed within `resendAfterMs` is sent again to another node (a mempool is not durable: a node killed with
// SIGKILL forgets what it held). A transaction is "accepted" once a node answered eth_sendRawTransaction with its hash;
// `settle()` keeps re-sending until each accepted transaction has a receipt, and "lost" is what still has none.
import { fromHex, type Hex } from "../../consensus/bytes.ts";
import { signEip1559 } from "../../src/bench/tx.ts";
import { devnetAccounts } from "../../src/cli/devnet.ts";
import type { FaultSubnet } from "./subnet.ts";

const GWEI = 1_000_000_000n;
/** Unconfirmed nonces per wallet: bounds what a killed node can take with it. */
const WINDOW = 12;
const TICK_MS = 100;
const MAX_ACCEPTED = 100_000;
const SINK = "0x000000000000000000000000000000000000fa17" as Hex;

interface Sent {
  readonly hash: Hex;
  readonly raw: Hex;
  readonly wallet: number;
  readonly nonce: number;
  lastSentMs: number;
}

interface Wallet {
  readonly key: Uint8Array;
  readonly address: Hex;
  nextNonce: number;
  /** Nonces below this are committed (eth_getTransactionCount "latest" of some node). */
  committed: number;
}

export interface LoadOptions {
  readonly chainId: bigint;
  /** Transactions per second over all wallets. */
  readonly ratePerSec: number;
  /** At most the devnet's 10 funded accounts. */
  readonly wallets: number;
  /** Nodes to send to now (those up and reachable); called at every send. */
  readonly targets: () => readonly number[];
  readonly resendAfterMs?: number;
}

export interface LoadResult {
  readonly accepted: number;
  /** Accepted transactions with no receipt on any node after settle(). */
  readonly lost: number;
  readonly resent: number;
  /** A node at or past the height of a receipt another node returned, without that receipt or with another block. */
  readonly receiptMismatches: number;
}

export class Load {
  private readonly wallets: Wallet[];
  private readonly sent = new Map<string, Sent>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private busy = false;
  private credit = 0;
  private resent = 0;
  private rr = 0;

  constructor(
    private readonly subnet: FaultSubnet,
    private readonly opts: LoadOptions,
  ) {
    const accounts = devnetAccounts().slice(0, opts.wallets);
    this.wallets = accounts.map((a) => ({
      key: fromHex(a.privateKey),
      address: a.address,
      nextNonce: 0,
      committed: 0,
    }));
  }

  get accepted(): number {
    return this.sent.size;
  }

  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.tick()
        .catch(() => undefined)
        .finally(() => {
          this.busy = false;
        });
    }, TICK_MS);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    while (this.busy) await sleep(20);
  }

  private pickTarget(): number | null {
    const t = this.opts.targets();
    if (t.length === 0) return null;
    this.rr = (this.rr + 1) % t.length;
    return t[this.rr] ?? null;
  }

  private async send(raw: Hex): Promise<"accepted" | "known" | "refused" | "unreachable"> {
    const target = this.pickTarget();
    if (target === null) return "unreachable";
    try {
      await this.subnet.rpc(target).call("eth_sendRawTransaction", [raw]);
      return "accepted";
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/already known|nonce too low/.test(message)) return "known";
      if ((error as { code?: string }).code === "rpc_error") return "refused";
      return "unreachable";
    }
  }

  private async refreshCommitted(): Promise<void> {
    const targets = this.opts.targets();
    const node = targets[Math.floor(Math.random() * targets.length)];
    if (node === undefined) return;
    const answers = await this.subnet
      .rpc(node)
      .batch(this.wallets.map((w) => ({ method: "eth_getTransactionCount", params: [w.address, "latest"] })))
      .catch(() => null);
    answers?.forEach((a, k) => {
      const w = this.wallets[k];
      if (a.ok && w !== undefined) w.committed = Math.max(w.committed, Number(BigInt(a.result as string)));
    });
  }

  private async tick(): Promise<void> {
    await this.refreshCommitted();
    const now = Date.now();
    const resendAfterMs = this.opts.resendAfterMs ?? 5_000;
    for (const s of this.sent.values()) {
      const w = this.wallets[s.wallet];
      if (w === undefined || s.nonce < w.committed || now - s.lastSentMs < resendAfterMs) continue;
      s.lastSentMs = now;
      this.resent++;
      await this.send(s.raw);
    }
    this.credit += (this.opts.ratePerSec * TICK_MS) / 1_000;
    for (let k = 0; this.credit >= 1 && k < this.wallets.length * WINDOW; k++) {
      const wi = k % this.wallets.length;
      const w = this.wallets[wi];
      if (w === undefined || w.nextNonce - w.committed >= WINDOW || this.sent.size >= MAX_ACCEPTED) continue;
      this.credit -= 1;
      const tx = signEip1559(
        {
          chainId: this.opts.chainId,
          nonce: w.nextNonce,
          maxPriorityFeePerGas: GWEI,
          maxFeePerGas: 100n * GWEI,
          gas: 21_000n,
          to: SINK,
          value: 1n,
          data: new Uint8Array(0),
        },
        w.key,
      );
      const raw = `0x${Buffer.from(tx.raw).toString("hex")}` as Hex;
      const outcome = await this.send(raw);
      if (outcome === "accepted" || outcome === "known") {
        this.sent.set(tx.hash, { hash: tx.hash, raw, wallet: wi, nonce: w.nextNonce, lastSentMs: Date.now() });
        w.nextNonce++;
      }
    }
    if (this.credit > this.opts.ratePerSec) this.credit = this.opts.ratePerSec;
  }

  /** Stops sending new transactions; re-sends the uncommitted ones until all are committed or `timeoutMs` passes. */
  async settle(timeoutMs: number): Promise<void> {
    await this.stop();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await this.refreshCommitted();
      const pending = [...this.sent.values()].filter((s) => s.nonce >= (this.wallets[s.wallet]?.committed ?? 0));
      if (pending.length === 0) return;
      for (const s of pending) {
        if (Date.now() - s.lastSentMs < 2_000) continue;
        s.lastSentMs = Date.now();
        this.resent++;
        await this.send(s.raw);
      }
      await sleep(300);
    }
  }

  /** Receipts of every accepted transaction on every node in `indices` (all running). */
  async verify(indices: readonly number[]): Promise<LoadResult> {
    const hashes = [...this.sent.keys()];
    const heads = await this.subnet.heights(indices);
    const perNode: ({ blockHash: Hex; blockNumber: number } | null)[][] = [];
    for (const i of indices) {
      const receipts: ({ blockHash: Hex; blockNumber: number } | null)[] = [];
      for (let k = 0; k < hashes.length; k += 100) {
        const calls = hashes.slice(k, k + 100).map((h) => ({ method: "eth_getTransactionReceipt", params: [h] }));
        const answers = await this.subnet
          .rpc(i)
          .batch(calls)
          .catch(() => calls.map(() => null));
        for (const a of answers) {
          const r = a?.ok === true ? (a.result as { blockHash: Hex; blockNumber: Hex } | null) : null;
          receipts.push(r === null ? null : { blockHash: r.blockHash, blockNumber: Number(BigInt(r.blockNumber)) });
        }
      }
      perNode.push(receipts);
    }
    let lost = 0;
    let receiptMismatches = 0;
    hashes.forEach((_, k) => {
      const seen = perNode.map((r) => r[k] ?? null);
      const first = seen.find((r) => r !== null);
      if (first === undefined) {
        lost++;
        return;
      }
      seen.forEach((r, n) => {
        const head = heads[n] ?? -1;
        if (head >= first.blockNumber && (r === null || r.blockHash !== first.blockHash)) receiptMismatches++;
      });
    });
    return { accepted: hashes.length, lost, resent: this.resent, receiptMismatches };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
