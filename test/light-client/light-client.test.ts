// The light client against a synthetic certified chain served by the node's real JSON-RPC server: it follows two
// validator-set changes, proves balances, storage and transactions, and refuses every lie we could think of with the
// right code: an uncommitted set change, a hidden set change, a rewritten history, members that do not hash to the
// set id, a certificate below 2/3, a bad aggregate signature, a header that is not the certified one, another chain,
// and proofs that do not match the claims. BLS verification is the default pure-JS noble scheme (browsers).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, type Hex, toHex, uintBytes } from "../../consensus/bytes.ts";
import { decodeCertificate, encodeCertificate } from "../../consensus/certificate.ts";
import { decode, encode } from "../../consensus/codec.ts";
import { blockHash, headerSchema } from "../../src/chain/block.ts";
import { LightClient, type LightClientOptions } from "../../src/light-client/client.ts";
import { LightClientError, type LightClientErrorCode } from "../../src/light-client/errors.ts";
import { httpTransport, type RpcTransport } from "../../src/light-client/transport.ts";
import { type RpcServer, startRpcServer } from "../../src/rpc/server.ts";
import {
  alice,
  anchorOf,
  BOB_FROM_HEIGHT,
  bob,
  CHAIN_ID,
  certificateOf,
  ETHER,
  GWEI,
  HEAD,
  honestSetAt,
  SET_A,
  SET_B,
  SET_C,
  SET_D,
  SyntheticChain,
  TOKEN,
} from "./chain.ts";

type Tamper = (method: string, params: readonly unknown[], result: unknown) => unknown | Promise<unknown>;

/** A transport that forwards to the honest server and rewrites answers: what a lying node does. */
function lyingTransport(url: string, tamper: Tamper): RpcTransport {
  const honest = httpTransport(url);
  return {
    async request(method, params) {
      return tamper(method, params, structuredClone(await honest.request(method, params)));
    },
  };
}

async function refusal(promise: Promise<unknown>): Promise<LightClientError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof LightClientError) return error;
    throw error;
  }
  throw new Error("expected a refusal, the light client accepted");
}

async function expectRefused(promise: Promise<unknown>, code: LightClientErrorCode, message?: RegExp): Promise<void> {
  const error = await refusal(promise);
  expect(error.code, error.message).toBe(code);
  if (message !== undefined) expect(error.message).toMatch(message);
}

type Json = Record<string, unknown>;

function withCertificate(result: unknown, edit: (c: ReturnType<typeof decodeCertificate>) => object): Json {
  const r = result as Json;
  const cert = decodeCertificate(fromHex(r.certificate as Hex));
  return { ...r, certificate: toHex(encodeCertificate({ ...cert, ...edit(cert) })) };
}

describe("light client on a synthetic certified chain", () => {
  let chain: SyntheticChain;
  let server: RpcServer;
  let forged: SyntheticChain;
  let forgedServer: RpcServer;

  beforeAll(async () => {
    chain = await SyntheticChain.build();
    server = await startRpcServer({ host: "127.0.0.1", port: 0 }, chain);
    // Keys D take over at 5 although the certified block 4 commits to set B: a fork signed by keys nobody trusts.
    forged = await SyntheticChain.build({
      setAt: (h) => (h <= 4 ? SET_A : SET_D),
      nextSetOf: (h) => (h === 4 ? SET_B : h < 4 ? SET_A : SET_D),
    });
    forgedServer = await startRpcServer({ host: "127.0.0.1", port: 0 }, forged);
  });

  afterAll(async () => {
    await server?.close();
    await forgedServer?.close();
  });

  const honest = (extra: Partial<LightClientOptions> = {}) =>
    LightClient.create({ rpcUrl: server.url, genesis: anchorOf(), ...extra } as LightClientOptions);
  const lying = (tamper: Tamper) =>
    LightClient.create({ transport: lyingTransport(server.url, tamper), genesis: anchorOf() });

  it("verifies headers across two validator-set changes, naming who signed with how much power", async () => {
    const client = await honest();
    const head = await client.verifiedHeader();
    expect(head.height).toBe(HEAD);
    expect(head.hash).toBe(chain.committed.get(HEAD)?.hash);
    expect(head.validatorSetId).toBe(SET_C.set.id);
    // Height 12 is a multiple of 3, but C cannot lose a member and keep > 2/3 (100 of 150): all three signed.
    expect(head.signers.map((s) => s.index)).toEqual([0, 1, 2]);
    expect(head.signingPower).toBe(150n);
    expect(client.trustedSets()).toEqual([
      { fromHeight: 1, id: SET_A.set.id },
      { fromHeight: 5, id: SET_B.set.id },
      { fromHeight: 9, id: SET_C.set.id },
    ]);
    for (const height of [1, 3, 4, 5, 6, 8, 9]) {
      const h = await client.verifiedHeader(height);
      expect(h.validatorSetId).toBe(honestSetAt(height).set.id);
      expect(h.header.stateRoot).toBe(chain.committed.get(height)?.block.header.stateRoot);
    }
    // Height 6 (set B, powers 40/30/20/10 in set order): the last validator was silent, 90 of 100 signed.
    const six = await client.verifiedHeader(6);
    expect(six.signers.map((s) => s.index)).toEqual([0, 1, 2]);
    expect(six.signingPower).toBe(90n);
    expect(six.totalVotingPower).toBe(100n);
    // Names come from the anchor, which knows only the genesis set.
    expect((await client.verifiedHeader(3)).signers.every((s) => s.name?.startsWith("A"))).toBe(true);
  });

  it("proves balances, accounts, absent accounts and storage slots at any verified height", async () => {
    const client = await honest();
    const balance = await client.verifiedBalance(alice.address);
    expect(balance.balance).toBe(100n * ETHER - BigInt(HEAD) * GWEI);
    expect(balance.header.height).toBe(HEAD);
    const early = await client.verifiedAccount(alice.address, 2);
    expect(early.balance).toBe(100n * ETHER - 2n * GWEI);
    expect(early.nonce).toBe(2n);
    expect(early.exists).toBe(true);
    // Bob's account is created at height 3: before that the proof shows it absent and the balance is 0.
    const absent = await client.verifiedAccount(bob.address, BOB_FROM_HEIGHT - 1);
    expect(absent.exists).toBe(false);
    expect(absent.balance).toBe(0n);
    expect((await client.verifiedBalance(bob.address, 7)).balance).toBe(7000n);
    const nobody = await client.verifiedBalance(`0x${"ee".repeat(20)}`);
    expect(nobody.balance).toBe(0n);
    expect((await client.verifiedStorage(TOKEN, "0x0")).value).toBe(toHex(uintBytes(42, 32)));
    expect((await client.verifiedStorage(TOKEN, "0x07", 5)).value).toBe(toHex(uintBytes(5, 32)));
    expect((await client.verifiedStorage(TOKEN, "0x09")).value).toBe(toHex(uintBytes(0, 32)));
    // An account without storage (empty storage root) and an absent account: every slot is zero.
    expect((await client.verifiedStorage(alice.address, "0x0")).value).toBe(toHex(uintBytes(0, 32)));
    expect((await client.verifiedStorage(bob.address, "0x1", 1)).value).toBe(toHex(uintBytes(0, 32)));
  });

  it("proves transactions and decodes their receipts from the proven bytes", async () => {
    const client = await honest();
    for (const tx of chain.transactions) {
      const location = chain.locations.get(tx.hash);
      const stored = chain.committed.get(location?.height ?? -1)?.receipts[location?.index ?? -1];
      const v = await client.verifiedTransaction(tx.hash);
      expect(v.blockNumber).toBe(location?.height);
      expect(v.transactionIndex).toBe(location?.index);
      expect(v.transaction).toBe(tx.raw);
      expect(v.receipt.type).toBe(tx.type);
      expect(v.receipt.status).toBe(tx.status);
      expect(v.receipt.cumulativeGasUsed).toBe(stored?.cumulativeGasUsed);
      expect(v.receipt.logs).toEqual(tx.logs);
      expect(v.header.validatorSetId).toBe(honestSetAt(v.blockNumber).set.id);
    }
    expect(chain.transactions.map((t) => t.status)).toContain(0);
    await expectRefused(client.verifiedTransaction(`0x${"12".repeat(32)}`), "not_found");
    await expectRefused(client.verifiedHeader(HEAD + 5), "not_found");
  });

  it("refuses a set change the last header of the old set does not commit to", async () => {
    const client = await LightClient.create({ rpcUrl: forgedServer.url, genesis: anchorOf() });
    await expect(client.verifiedHeader(3)).resolves.toMatchObject({ height: 3 });
    await expectRefused(client.verifiedHeader(), "unknown_validator_set", /certified block 4 commits to next set/);
    // The forged blocks themselves carry valid certificates of D: only the chain of trust rules them out.
    const d = await forged.certificate(6);
    expect(d?.validatorSetId).toBe(SET_D.set.id);
  });

  it("refuses a node that hides a set change or rewrites the history it gave before", async () => {
    const hiding = await lying((method, _params, result) =>
      method === "lumia_getValidatorSetHistory" ? (result as unknown[]).slice(0, 1) : result,
    );
    await expectRefused(hiding.verifiedHeader(6), "unknown_validator_set", /names validator set/);

    let calls = 0;
    const rewriting = await lying((method, _params, result) => {
      if (method !== "lumia_getValidatorSetHistory" || calls++ === 0) return result;
      const entries = result as { fromHeight: Hex; id: Hex }[];
      return [entries[0], { ...entries[1], fromHeight: "0x6" }, entries[2]];
    });
    await rewriting.verifiedHeader(6);
    // Fetched after block 6's certificate, the history is complete up to 6: no new fetch below it.
    await expect(rewriting.verifiedHeader(5)).resolves.toMatchObject({ height: 5 });
    expect(calls).toBe(1);
    await expectRefused(rewriting.verifiedHeader(10), "unknown_validator_set", /rewrites change #1/);
    expect(calls).toBe(2);
  });

  it("refuses members that do not hash to the set id the chain committed to", async () => {
    const client = await lying((method, _params, result) => {
      if (method !== "lumia_getValidatorSet" || result === null) return result;
      const r = result as { validators: { votingPower: Hex }[] };
      // B with one power raised: the swapped-in set would need fewer real signatures for a quorum.
      return { ...r, validators: r.validators.map((v, i) => (i === 0 ? { ...v, votingPower: "0x3e8" } : v)) };
    });
    await expectRefused(client.verifiedHeader(6), "bad_validator_set", /hash to/);
  });

  it("refuses a certificate below 2/3 of the power, even with a valid aggregate of its signers", async () => {
    const client = await lying((method, params, result) => {
      if (method !== "lumia_getCertificate" || params[0] !== "0x6") return result;
      const c = chain.committed.get(6);
      if (c === undefined) throw new Error("no block 6");
      // Validators 0 and 3 of B hold 40 + 10 = 50 of 100: real signatures, aggregated correctly, not enough power.
      return withCertificate(result, () => certificateOf(SET_B, 6, c.hash, [0, 3]));
    });
    await expectRefused(client.verifiedHeader(6), "bad_certificate", /insufficient_power/);
  });

  it("refuses a bad aggregate signature and a tampered signer bitmap", async () => {
    const badSignature = await lying((method, params, result) => {
      if (method !== "lumia_getCertificate" || params[0] !== "0x7") return result;
      const other = certificateOf(SET_B, 7, chain.committed.get(8)?.hash as Hex, [0, 1, 2, 3]);
      return withCertificate(result, () => ({ signature: other.signature }));
    });
    await expectRefused(badSignature.verifiedHeader(7), "bad_certificate", /bad_signature/);

    const badBitmap = await lying((method, params, result) => {
      if (method !== "lumia_getCertificate" || params[0] !== "0x7") return result;
      // Claim validator 3 did not sign while the aggregate still contains its signature.
      return withCertificate(result, (c) => ({ signers: Uint8Array.of((c.signers[0] as number) & ~0b1000) }));
    });
    await expectRefused(badBitmap.verifiedHeader(7), "bad_certificate", /bad_signature/);
  });

  it("refuses a header that is not the certified block, and one whose state root is not its VM roots'", async () => {
    const changed = await lying((method, params, result) => {
      if (method !== "lumia_getCertificate" || params[0] !== "0x8") return result;
      const r = result as Json;
      const header = decode(headerSchema, fromHex(r.header as Hex));
      return { ...r, header: toHex(encode(headerSchema, { ...header, gasUsed: header.gasUsed + 1n })) };
    });
    await expectRefused(changed.verifiedHeader(8), "header_mismatch", /hashes to/);

    const nine = chain.committed.get(9)?.certificate;
    if (nine === undefined) throw new Error("no block 9");
    const otherHeight = await lying((method, params, result) =>
      method === "lumia_getCertificate" && params[0] === "0x8"
        ? { ...(result as Json), certificate: toHex(encodeCertificate(nine)) }
        : result,
    );
    // The (valid) certificate of 9 with the header of 8.
    await expectRefused(otherHeight.verifiedHeader(8), "header_mismatch");

    // A header the validators did sign, but whose stateRoot is not the root over its vmRoots (a broken chain).
    const inconsistent = await lying((method, params, result) => {
      if (method !== "lumia_getCertificate" || params[0] !== "0x8") return result;
      const r = result as Json;
      const header = { ...decode(headerSchema, fromHex(r.header as Hex)), stateRoot: `0x${"ab".repeat(32)}` as Hex };
      const hash = blockHash(header);
      return {
        ...r,
        blockHash: hash,
        header: toHex(encode(headerSchema, header)),
        certificate: toHex(encodeCertificate(certificateOf(SET_B, 8, hash, [0, 1, 2, 3]))),
      };
    });
    await expectRefused(inconsistent.verifiedHeader(8), "header_mismatch", /vmRoots give/);
  });

  it("refuses another chain: chain id, genesis hash, genesis validators", async () => {
    await expectRefused(
      LightClient.create({ rpcUrl: server.url, genesis: anchorOf(SET_A, { chainId: CHAIN_ID + 1n }) }),
      "wrong_chain",
      /chain id/,
    );
    const otherGenesis = await LightClient.create({
      rpcUrl: server.url,
      genesis: anchorOf(SET_A, { genesisHash: `0x${"77".repeat(32)}` }),
    });
    await expectRefused(otherGenesis.verifiedHeader(), "wrong_chain", /genesis hash/);
    const otherSet = await LightClient.create({ rpcUrl: server.url, genesis: anchorOf(SET_B) });
    await expectRefused(otherSet.verifiedBalance(alice.address), "wrong_chain", /genesis set/);
  });

  it("refuses state proofs that do not match their claims or do not reach the certified root", async () => {
    const balance = await lying((method, _params, result) =>
      method === "eth_getProof" ? { ...(result as Json), balance: "0xde0b6b3a7640000" } : result,
    );
    await expectRefused(balance.verifiedBalance(alice.address), "bad_proof", /claims balance 0xde0b6b3a7640000/);

    const truncated = await lying((method, _params, result) => {
      if (method !== "eth_getProof") return result;
      const r = result as { accountProof: Hex[] };
      return { ...r, accountProof: r.accountProof.slice(0, -1) };
    });
    await expectRefused(truncated.verifiedBalance(alice.address), "bad_proof", /does not lead/);

    // Bob's (valid) proof served for alice: it does not contain alice's leaf.
    const swapped = await lying(async (method, params, result) => {
      if (method !== "eth_getProof" || params[0] !== alice.address.toLowerCase()) return result;
      const bobs = (await httpTransport(server.url).request("eth_getProof", [bob.address, [], params[2]])) as Json;
      return { ...(result as Json), accountProof: bobs.accountProof };
    });
    await expectRefused(swapped.verifiedBalance(alice.address), "bad_proof", /does not lead/);
    const empty = await lying((method, _params, result) =>
      method === "eth_getProof" ? { ...(result as Json), accountProof: [] } : result,
    );
    await expectRefused(empty.verifiedBalance(alice.address), "bad_proof", /does not lead/);

    const absentLie = await lying((method, _params, result) =>
      method === "eth_getProof" ? { ...(result as Json), balance: "0x5" } : result,
    );
    await expectRefused(absentLie.verifiedBalance(bob.address, 1), "bad_proof", /claims balance 0x5/);

    const storage = await lying((method, _params, result) => {
      if (method !== "eth_getProof") return result;
      const r = result as { storageProof: { value: Hex }[] };
      return { ...r, storageProof: r.storageProof.map((s) => ({ ...s, value: "0x2b" })) };
    });
    await expectRefused(storage.verifiedStorage(TOKEN, "0x0"), "bad_proof", /slot/);
  });

  it("refuses transaction answers whose transaction, receipt or header are not the proven ones", async () => {
    const [first, second] = chain.transactions;
    if (first === undefined || second === undefined) throw new Error("no transactions");
    const tamper = (edit: (r: Json) => Json) =>
      lying((method, _params, result) =>
        method === "lumia_getTransactionCertificate" ? edit(result as Json) : result,
      );

    const receipt = await tamper((r) => {
      const bytes = fromHex(r.receipt as Hex);
      // type (1 byte) || list header (0xf9 + 2 length bytes: the bloom alone is 256) || status: 0x01 -> 0x80 (empty),
      // success now reads as failure and the receipt still decodes.
      expect([bytes[0], bytes[1], bytes[4]]).toEqual([2, 0xf9, 0x01]);
      bytes[4] = 0x80;
      return { ...r, receipt: toHex(bytes) };
    });
    await expectRefused(receipt.verifiedTransaction(first.hash), "bad_proof", /receipt 0/);

    const otherTx = await tamper((r) => ({ ...r, transaction: second.raw }));
    await expectRefused(otherTx.verifiedTransaction(first.hash), "bad_proof", /hashes to/);

    const otherIndex = await tamper((r) => ({ ...r, transactionIndex: "0x1" }));
    await expectRefused(otherIndex.verifiedTransaction(first.hash), "bad_proof");

    const header = await tamper((r) => {
      const text = r.header as string;
      return { ...r, header: `${text.slice(0, -1)}${text.endsWith("0") ? "1" : "0"}` };
    });
    await expectRefused(header.verifiedTransaction(first.hash), "header_mismatch");
  });
});
