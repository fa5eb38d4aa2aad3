// A Byzantine validator for the fault suite, built on the node's own libraries: it holds a genesis validator's real
// peer and BLS keys (its `dcn start` is not running), joins the subnet over libp2p from the bridge address, and sends
// real signed bytes. "double-vote": for every honest prevote it sees at a (height, round), it signs the same value and
// nil as both prevote and precommit, each a valid signature: the honest nodes must record evidence and stay safe.
// "flood": valid signatures on stale votes (past heights, many rounds), as fast as it can sign: useless messages the
// honest nodes must drop cheaply while they keep committing.
import { join } from "node:path";
import type { Hex } from "../../consensus/bytes.ts";
import { voteDigest } from "../../consensus/signing.ts";
import type { SignedVote, VoteType } from "../../consensus/types.ts";
import { decodeSignedVote, encodeSignedVote } from "../../consensus/wire.ts";
import { Network } from "../../p2p/index.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { createBlstSigner } from "../../src/crypto/blst.ts";
import { loadKeystore } from "../../src/keys/keystore.ts";
import { topics } from "../../src/node/messages.ts";
import type { FaultSubnet } from "./subnet.ts";

const MAX_TRACKED = 10_000;

export class ByzantineValidator {
  /** Signed messages sent, by kind. */
  readonly sent = { doubleVotes: 0, floodVotes: 0 };
  private readonly equivocated = new Set<string>();
  private highestSeen = 0;
  /** Honest votes seen, kept to be replayed later (at most MAX_TRACKED). */
  private readonly captured: Uint8Array[] = [];
  private flooding = false;

  private constructor(
    private readonly net: Network,
    private readonly sign: (digest: Uint8Array) => Uint8Array,
    readonly validatorIndex: number,
    private readonly chainId: bigint,
    private readonly mode: "double-vote" | "passive",
  ) {}

  /** Runs as `subnet.node(index)` (which must not be started) from the harness's bridge address. */
  static async start(subnet: FaultSubnet, index: number, mode: "double-vote" | "passive"): Promise<ByzantineValidator> {
    const me = subnet.node(index);
    const peer = await loadKeystore(join(me.dir, "keys", "peer.json"), "peer", undefined);
    const bls = await loadKeystore(join(me.dir, "keys", "consensus.json"), "consensus", undefined);
    const signer = createBlstSigner(bls.secret);
    const genesis = await loadGenesis(subnet.plan.genesisPath);
    const address = (subnet.plan.nodes[index]?.identity.address ?? "").toLowerCase();
    const validatorIndex = genesis.validatorSet.validators.findIndex((v) => v.address.toLowerCase() === address);
    if (validatorIndex < 0) throw new Error(`${me.name} is not in the genesis set`);
    const validators = subnet.validators.filter((n) => n.index !== index);
    const net = await Network.create({
      privateKey: peer.secret,
      listen: [`/ip4/${subnet.lab.hostIp}/tcp/0`],
      peers: validators.map((n) => n.p2p),
      allowedPeers: subnet.nodes.map((n) => n.peerId),
    });
    const attacker = new ByzantineValidator(net, signer.sign, validatorIndex, subnet.plan.chainId, mode);
    net.subscribe({
      name: topics(subnet.plan.chainId).votes,
      maxBytes: 1 << 12,
      queueLength: 256,
      dropPolicy: "drop-oldest",
      validate: (data) => {
        try {
          return { kind: "accept", value: decodeSignedVote(data) };
        } catch {
          return { kind: "reject", code: "malformed" };
        }
      },
      onMessage: (vote: SignedVote) => attacker.onVote(vote),
    });
    net.subscribe({
      name: topics(subnet.plan.chainId).transactions,
      maxBytes: 1 << 17,
      queueLength: 16,
      dropPolicy: "drop-oldest",
      validate: () => ({ kind: "ignore", code: "attacker" }),
      onMessage: () => {},
    });
    await net.start();
    return attacker;
  }

  private signed(type: VoteType, height: number, round: number, value: Hex | null): Uint8Array {
    const signature = this.sign(voteDigest(this.chainId, type, height, round, value));
    return encodeSignedVote({ type, height, round, value, validatorIndex: this.validatorIndex, signature });
  }

  private onVote(vote: SignedVote): void {
    this.highestSeen = Math.max(this.highestSeen, vote.height);
    if (this.captured.length < MAX_TRACKED && vote.validatorIndex !== this.validatorIndex) {
      this.captured.push(encodeSignedVote(vote));
    }
    if (this.mode !== "double-vote" || vote.value === null || vote.validatorIndex === this.validatorIndex) return;
    const key = `${vote.height}/${vote.round}`;
    if (this.equivocated.has(key)) return;
    if (this.equivocated.size >= MAX_TRACKED) this.equivocated.clear();
    this.equivocated.add(key);
    const topic = topics(this.chainId).votes;
    for (const type of ["prevote", "precommit"] as const) {
      for (const value of [vote.value, null]) {
        this.sent.doubleVotes++;
        void this.net.publish(topic, this.signed(type, vote.height, vote.round, value)).catch(() => undefined);
      }
    }
  }

  /** Signs and publishes stale votes (heights already committed) until stopFlood(); `ratePerSec` at most. */
  async flood(durationMs: number, ratePerSec: number): Promise<void> {
    this.flooding = true;
    const topic = topics(this.chainId).votes;
    const deadline = Date.now() + durationMs;
    let round = 0;
    while (this.flooding && Date.now() < deadline) {
      const started = Date.now();
      const batch = Math.max(1, Math.floor(ratePerSec / 20));
      for (let k = 0; k < batch; k++) {
        const height = Math.max(1, this.highestSeen - 2 - (k % 3));
        round = (round + 1) % 1_000;
        this.sent.floodVotes++;
        void this.net.publish(topic, this.signed("prevote", height, round, null)).catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - started))));
    }
    this.flooding = false;
  }

  /**
   * Votes for the next height under this validator's index but signed by `foreignKey` (a key not in the set: a
   * removed validator's, or another subnet's), each distinct. Returns how many were published.
   */
  async forge(foreignKey: Uint8Array, count: number): Promise<number> {
    const foreign = createBlstSigner(foreignKey);
    const topic = topics(this.chainId).votes;
    for (let k = 0; k < count; k++) {
      const height = this.highestSeen + 1;
      const signature = foreign.sign(voteDigest(this.chainId, "prevote", height, k, null));
      const bytes = encodeSignedVote({
        type: "prevote",
        height,
        round: k,
        value: null,
        validatorIndex: this.validatorIndex,
        signature,
      });
      await this.net.publish(topic, bytes).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
    return count;
  }

  /** Re-publishes the honest votes captured so far (old heights by now). Returns how many. */
  async replay(): Promise<number> {
    const topic = topics(this.chainId).votes;
    for (const bytes of this.captured) await this.net.publish(topic, bytes).catch(() => undefined);
    return this.captured.length;
  }

  /** Publishes raw transactions on the transactions topic (a mempool flood from one peer). */
  async publishTransactions(raws: readonly Uint8Array[]): Promise<void> {
    const topic = topics(this.chainId).transactions;
    for (const raw of raws) await this.net.publish(topic, raw).catch(() => undefined);
  }

  connectedPeers(): string[] {
    return this.net.connectedPeers();
  }

  async stop(): Promise<void> {
    this.flooding = false;
    await this.net.stop();
  }
}
