// The admission list from L1: local peers first, then the epoch's members and the next epoch's candidates, once each.
// Against real anvil and libp2p: a node whose peer id registers in the SequencerRegistry is refused before, and
// admitted (and connects) once the mirror sees the registration at a confirmed block.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { admissionList } from "../../src/l1/admission.ts";
import { peerIdBytes, sequencerRegistration } from "../../src/l1/deploy.ts";
import { type L1Membership, L1Mirror } from "../../src/l1/mirror.ts";
import { identity, type NodeFixture, startNode, waitFor } from "../p2p/helpers.ts";
import { operatorKeys, type StakingChain, startStakingChain } from "../staking/fixture.ts";

const member = (peerId: string) => ({ publicKey: "0x" as const, votingPower: 1n, peerId, operator: "0x" as const });

describe("admissionList", () => {
  it("is the local peers without L1, and adds members and candidates once each, skipping unparsable ids", () => {
    expect(admissionList(["a", "b"], null)).toEqual(["a", "b"]);
    const m: L1Membership = {
      at: { number: 10n, hash: "0x01" },
      epoch: 3n,
      members: [member("b"), member("c"), member("")],
      candidatePeerIds: ["c", "d"],
    };
    expect(admissionList(["a", "b"], m)).toEqual(["a", "b", "c", "d"]);
  });
});

describe("admission from the L1 registry", () => {
  let chain: StakingChain;
  const nodes: NodeFixture[] = [];
  let mirror: L1Mirror | null = null;
  beforeAll(async () => {
    chain = await startStakingChain();
  });
  afterAll(async () => {
    await mirror?.stop();
    await Promise.all(nodes.map((n) => n.net.stop()));
    await chain?.stop();
  });

  it("admits a sequencer's peer once its registration is confirmed, then it connects", async () => {
    const local = identity();
    const outsider = identity();
    const a = await startNode(local, { allowedPeers: [] });
    nodes.push(a);
    mirror = await L1Mirror.open(
      {
        rpcUrl: chain.anvil.url,
        pollIntervalMs: 100,
        confirmations: 1,
        registry: chain.addresses.registry,
        dbPath: null,
      },
      { onMembership: (m) => a.net.setAllowedPeers(admissionList([], m)) },
    );
    await mirror.pollOnce();
    expect(a.net.isAdmitted(outsider.id)).toBe(false);

    const operator = chain.users[0];
    if (operator === undefined) throw new Error("accounts");
    const keys = operatorKeys(7);
    await chain.addSequencer(
      operator,
      sequencerRegistration(keys.publicKey, keys.proofOfPossession, peerIdBytes(outsider.id)),
      0n, // no stake transaction: the registration is the newest block
    );
    await mirror.pollOnce();
    // Registered, but the block is not at depth yet.
    expect(a.net.isAdmitted(outsider.id)).toBe(false);
    await chain.testClient.mine({ blocks: 1 });
    await mirror.pollOnce();
    expect(mirror.currentMembership()?.candidatePeerIds).toEqual([outsider.id]);
    expect(a.net.isAdmitted(outsider.id)).toBe(true);

    const address = a.net.addresses()[0];
    if (address === undefined) throw new Error("no listen address");
    const b = await startNode(outsider, { allowedPeers: [local.id], peers: [address] });
    nodes.push(b);
    await waitFor("the registered peer connects", () => a.net.connectedPeers().includes(outsider.id), 15_000);
  });
});
