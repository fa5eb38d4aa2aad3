// A Byzantine validator for the fault suite, built on the node's own libraries: it holds a genesis validator's real
// peer and BLS keys (its `dcn start` is not running), joins the subnet over libp2p from the bridge address, and sends
// real signed bytes. "double-vote": for every honest prevote it sees at a (height, round), it signs the same value and
// nil as both prevote and precommit, each a valid signature: the honest nodes must record evidence and stay safe.
// "flood": valid signatures on stale votes (past heights, many rounds), as fast as it can sign: useless messages the
// honest nodes must drop cheaply while they keep committing.
// "equivocate": whenever this validator is the proposer of (height, round) it builds two different valid blocks for
// the parent (both empty, differing in the timestamp; see buildBlock) and publishes proposal A to some honest peers
// and B to the others: every honest node must record duplicateProposal evidence against it and nobody may fork.
// "invalid-block": as proposer it publishes one block whose state root is wrong: honest nodes prevote nil.
// "foreign-proposer": as proposer it signs its proposals with a BLS key outside the set (a removed validator's, or
// a stranger's): refused at the gossip check as bad_signature, the sending peer scored down.
import { join } from "node:path";
import { type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { type Certificate, encodeCertificate } from "../../consensus/certificate.ts";
import { proposalDigest, voteDigest } from "../../consensus/signing.ts";
import type { Proposal, SignedVote, ValidatorSet, VoteType } from "../../consensus/types.ts";
import { nextHeightValidatorSet, proposerIndex } from "../../consensus/validator-set.ts";
import { decodeSignedVote, encodeSignedVote } from "../../consensus/wire.ts";
import { Network } from "../../p2p/index.ts";
import {
  type Block,
  type BlockHeader,
  blockHash,
  decodeBlock,
  EMPTY_BLOOM,
  EMPTY_DEPOSITS_HASH,
  encodeBlock,
} from "../../src/chain/block.ts";
import { EMPTY_TRIE_ROOT } from "../../src/chain/ordered-trie.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { createBlstSigner, generateBlsSecretKey } from "../../src/crypto/blst.ts";
import { ExecutionCore } from "../../src/execution/core.ts";
import { loadKeystore } from "../../src/keys/keystore.ts";
import {
  decodeCertificateMessage,
  decodeProposalMessage,
  encodeProposalMessage,
  encodeTransactionBatch,
  MAX_GOSSIP_BATCH_BYTES,
  topics,
} from "../../src/node/messages.ts";
import type { FaultSubnet } from "./subnet.ts";

export type AttackerMode = "double-vote" | "passive" | "equivocate" | "invalid-block" | "foreign-proposer";

/** Blocks of recent proposals kept to find the parent a certificate names. */
const MAX_BLOCKS = 64;

/** The part of gossipsub's publish this attacker narrows to chosen peers (internal to @libp2p/gossipsub 17). */
interface PeerSelection {
  selectPeersToPublish(topic: string, flood?: boolean): { tosend: Set<string> };
}

/** What the attacker knows of the chain head: the last certified block it holds the body of. */
interface Parent {
  readonly header: BlockHeader;
  readonly hash: Hex;
  readonly certificate: Uint8Array;
}

const MAX_TRACKED = 10_000;

export class ByzantineValidator {
  /** Signed messages sent, by kind. */
  readonly sent = { doubleVotes: 0, floodVotes: 0, proposals: 0, equivocations: 0, invalidBlocks: 0 };
  /** Heights (and rounds) at which it proposed, as "height/round". */
  readonly proposedAt: string[] = [];
  /** Honest proposals whose proposer index differs from this attacker's own proposer computation (must stay 0). */
  proposerMismatches = 0;
  /** Hashes of every block it proposed. */
  readonly proposedHashes = new Set<Hex>();
  private readonly blocks = new Map<Hex, Block>();
  private parent: Parent | null = null;
  /** Highest round seen in votes of the height after the parent. */
  private roundSeen = 0;
  private readonly proposed = new Set<string>();
  /** The set deciding `height` (priorities advance per height: the proposer rotates). */
  private setAt: { height: number; set: ValidatorSet };
  /** Non-null while a publish must reach only these peer ids. */
  private publishOnlyTo: ReadonlySet<string> | null = null;
  private publishing: Promise<unknown> = Promise.resolve();
  private flip = false;
  private readonly foreignSign = createBlstSigner(generateBlsSecretKey()).sign;
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
    private readonly mode: AttackerMode,
    genesisSet: ValidatorSet,
    private readonly address: Hex,
    /** Honest validators' peer ids, split in two groups for equivocation. */
    private readonly halves: readonly [ReadonlySet<string>, ReadonlySet<string>],
  ) {
    this.setAt = { height: 1, set: genesisSet };
  }

  /** Runs as `subnet.node(index)` (which must not be started) from the harness's bridge address. */
  static async start(subnet: FaultSubnet, index: number, mode: AttackerMode): Promise<ByzantineValidator> {
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
    const honest = validators.map((n) => n.peerId);
    const cut = Math.ceil(honest.length / 2);
    const attacker = new ByzantineValidator(
      net,
      signer.sign,
      validatorIndex,
      subnet.plan.chainId,
      mode,
      genesis.validatorSet,
      address as Hex,
      [new Set(honest.slice(0, cut)), new Set(honest.slice(cut))],
    );
    attacker.narrowPublish();
    const proposing = mode === "equivocate" || mode === "invalid-block" || mode === "foreign-proposer";
    if (proposing) {
      net.subscribe({
        name: topics(subnet.plan.chainId).proposals,
        maxBytes: 1 << 22,
        queueLength: 64,
        dropPolicy: "drop-oldest",
        validate: (data) => {
          try {
            return { kind: "accept", value: decodeProposalMessage(data) };
          } catch {
            return { kind: "reject", code: "malformed" };
          }
        },
        onMessage: (m: { proposal: Proposal; block: Uint8Array }) => attacker.onProposal(m.proposal, m.block),
      });
      net.subscribe({
        name: topics(subnet.plan.chainId).certificates,
        maxBytes: 1 << 14,
        queueLength: 64,
        dropPolicy: "drop-oldest",
        validate: (data) => {
          try {
            return { kind: "accept", value: decodeCertificateMessage(data) };
          } catch {
            return { kind: "reject", code: "malformed" };
          }
        },
        onMessage: (c: Certificate) => attacker.onCertificate(c),
      });
    }
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
      maxBytes: MAX_GOSSIP_BATCH_BYTES,
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
    if (this.parent !== null && vote.height === this.parent.header.height + 1 && vote.round > this.roundSeen) {
      this.roundSeen = vote.round;
      this.maybePropose();
    }
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

  // ---- proposer attacks ----

  /** Makes publishTo() possible: gossipsub publishes to every topic peer (floodPublish) unless narrowed here. */
  private narrowPublish(): void {
    const pubsub = (this.net as unknown as { node: { services: { pubsub: PeerSelection } } }).node.services.pubsub;
    const select = pubsub.selectPeersToPublish.bind(pubsub);
    pubsub.selectPeersToPublish = (topic, flood) => {
      const out = select(topic, flood);
      const only = this.publishOnlyTo;
      if (only !== null) for (const id of [...out.tosend]) if (!only.has(id)) out.tosend.delete(id);
      return out;
    };
  }

  /** Publishes to `peers` only (serialized: the narrowing holds across gossipsub's awaits). */
  private publishTo(topic: string, data: Uint8Array, peers: ReadonlySet<string> | null): Promise<unknown> {
    this.publishing = this.publishing.then(async () => {
      this.publishOnlyTo = peers;
      try {
        await this.net.publish(topic, data);
      } catch {
        // a proposal nobody receives only costs the attacker its round
      } finally {
        this.publishOnlyTo = null;
      }
    });
    return this.publishing;
  }

  private setFor(height: number): ValidatorSet {
    // A static set (no L1): the same members, proposer priorities advanced once per height.
    if (height < this.setAt.height) throw new Error(`set of height ${height} asked after ${this.setAt.height}`);
    let { height: h, set } = this.setAt;
    while (h < height) {
      set = nextHeightValidatorSet(set);
      h++;
    }
    this.setAt = { height: h, set };
    return set;
  }

  private onProposal(proposal: Proposal, bytes: Uint8Array): void {
    try {
      const block = decodeBlock(bytes);
      if (this.blocks.size >= MAX_BLOCKS) {
        const oldest = this.blocks.keys().next().value;
        if (oldest !== undefined) this.blocks.delete(oldest);
      }
      this.blocks.set(blockHash(block.header), block);
      if (proposal.height >= this.setAt.height) {
        const expected = proposerIndex(this.setFor(proposal.height), proposal.round);
        if (expected !== proposal.proposerIndex) this.proposerMismatches++;
      }
    } catch {
      // honest nodes checked it already
    }
  }

  private onCertificate(cert: Certificate): void {
    if (this.parent !== null && cert.height <= this.parent.header.height) return;
    const block = this.blocks.get(cert.blockHash);
    if (block === undefined || block.header.height !== cert.height) return;
    this.parent = { header: block.header, hash: cert.blockHash, certificate: encodeCertificate(cert) };
    this.roundSeen = 0;
    this.maybePropose();
  }

  /** Proposes at (next height, round seen) and the round after when this validator is their proposer. */
  private maybePropose(): void {
    const parent = this.parent;
    if (parent === null) return;
    const height = parent.header.height + 1;
    if (height < this.setAt.height) return;
    const set = this.setFor(height);
    for (const round of [this.roundSeen, this.roundSeen + 1]) {
      const key = `${height}/${round}`;
      if (this.proposed.has(key) || proposerIndex(set, round) !== this.validatorIndex) continue;
      if (this.proposed.size >= MAX_TRACKED) this.proposed.clear();
      this.proposed.add(key);
      this.proposedAt.push(key);
      void this.propose(parent, height, round);
    }
  }

  /**
   * An empty block on `parent`, valid by the node's own rules: no transactions and no deposits (no L1) leave the
   * state as it was (the reward pool gets nothing without fees), so the roots are the parent's and the empty trie's,
   * and the base fee follows the parent by the execution core's EIP-1559 rule. `timestampMs` is the proposer's free
   * choice: two timestamps give two different valid blocks.
   */
  private buildBlock(parent: Parent, height: number, timestampMs: number, wrongStateRoot: boolean): Block {
    const p = parent.header;
    const header: BlockHeader = {
      chainId: p.chainId,
      height,
      timestampMs,
      parentHash: parent.hash,
      l1Origin: p.l1Origin,
      proposer: this.address,
      validatorSetId: p.nextValidatorSetId,
      nextValidatorSetId: p.nextValidatorSetId,
      lastCertificateHash: toHex(keccak256(parent.certificate)),
      depositsHash: EMPTY_DEPOSITS_HASH,
      nextDepositNonce: p.nextDepositNonce,
      transactionsRoot: EMPTY_TRIE_ROOT,
      receiptsRoot: EMPTY_TRIE_ROOT,
      stateRoot: wrongStateRoot ? toHex(keccak256(utf8(`not the state at ${height}`))) : p.stateRoot,
      gasLimit: p.gasLimit,
      gasUsed: 0n,
      // nextBaseFee reads only its argument: the rule itself, not a copy of it.
      baseFeePerGas: ExecutionCore.prototype.nextBaseFee.call(undefined, p),
      logsBloom: EMPTY_BLOOM,
      vmRoots: p.vmRoots,
    };
    return { header, lastCertificate: parent.certificate, deposits: [], transactions: [] };
  }

  private proposalMessage(block: Block, height: number, round: number, foreign: boolean): Uint8Array {
    const proposal: Proposal = {
      height,
      round,
      polRound: -1,
      value: blockHash(block.header),
      proposerIndex: this.validatorIndex,
    };
    this.proposedHashes.add(proposal.value);
    const digest = proposalDigest(this.chainId, proposal);
    const signature = foreign ? this.foreignSign(digest) : this.sign(digest);
    return encodeProposalMessage({ proposal: { ...proposal, signature }, block: encodeBlock(block) });
  }

  private async propose(parent: Parent, height: number, round: number): Promise<void> {
    const topic = topics(this.chainId).proposals;
    const timestampMs = Math.max(Date.now(), parent.header.timestampMs + 1);
    this.sent.proposals++;
    if (this.mode === "equivocate") {
      const a = this.proposalMessage(this.buildBlock(parent, height, timestampMs, false), height, round, false);
      const b = this.proposalMessage(this.buildBlock(parent, height, timestampMs + 1, false), height, round, false);
      // Alternate which group gets A, so over many heights every honest node sees both orders.
      this.flip = !this.flip;
      const [first, second] = this.flip ? this.halves : [this.halves[1], this.halves[0]];
      this.sent.equivocations++;
      await Promise.all([this.publishTo(topic, a, first), this.publishTo(topic, b, second)]);
      return;
    }
    const wrong = this.mode === "invalid-block";
    const message = this.proposalMessage(
      this.buildBlock(parent, height, timestampMs, wrong),
      height,
      round,
      this.mode === "foreign-proposer",
    );
    if (wrong) this.sent.invalidBlocks++;
    await this.publishTo(topic, message, null);
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

  /** Publishes raw transactions on the transactions topic, 64 per message (a mempool flood from one peer). */
  async publishTransactions(raws: readonly Uint8Array[]): Promise<void> {
    const topic = topics(this.chainId).transactions;
    for (let i = 0; i < raws.length; i += 64) {
      await this.net.publish(topic, encodeTransactionBatch(raws.slice(i, i + 64))).catch(() => undefined);
    }
  }

  /** Heights at which one of `nodes` holds a block this attacker proposed (over JSON-RPC). */
  async committedOwnBlocks(subnet: FaultSubnet, nodes: readonly number[]): Promise<number> {
    let heights = 0;
    for (const hashes of (await subnet.blockHashes(nodes)).values()) {
      if (hashes.some((h) => h !== null && this.proposedHashes.has(h.toLowerCase() as Hex))) heights++;
    }
    return heights;
  }

  /** Whether node i lists this attacker's peer among its connected peers. */
  async connectedTo(subnet: FaultSubnet, i: number): Promise<boolean> {
    return (await subnet.status(i))?.peers.includes(this.net.peerId) ?? false;
  }

  connectedPeers(): string[] {
    return this.net.connectedPeers();
  }

  async stop(): Promise<void> {
    this.flooding = false;
    await this.net.stop();
  }
}
