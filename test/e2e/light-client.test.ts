// The light client against a live 3-validator subnet of `dcn start` processes: a verified balance equals
// eth_getBalance, a verified transaction receipt equals eth_getTransactionReceipt (a contract that logs, a call that
// runs out of gas, a transfer). Then a lying proxy (an HTTP server here, forwarding to a node and tampering one field
// per case) and each lie refused with its code; and `dcn verify` as an operator runs it, against the node and the proxy.
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromHex, type Hex, keccak256, toHex, utf8 } from "../../consensus/bytes.ts";
import { decodeCertificate, encodeCertificate } from "../../consensus/certificate.ts";
import { devnetAccounts } from "../../src/cli/devnet.ts";
import { loadGenesis } from "../../src/config/genesis.ts";
import { jsonRpc } from "../../src/l1/anvil.ts";
import { anchorFromGenesis, LightClient, LightClientError, type TrustAnchor } from "../../src/light-client/index.ts";
import { Cluster } from "./cluster.ts";

const DCN = join(import.meta.dirname, "../../bin/dcn.mjs");
const GWEI = 1_000_000_000n;
const TOPIC = toHex(keccak256(utf8("Logged(uint256)")));
// Runtime: MSTORE(0, 42); LOG1(0, 32, TOPIC); STOP. Init code copies the 44 runtime bytes (at offset 12) and returns.
const RUNTIME = `0x602a6000527f${TOPIC.slice(2)}60206000a100`;
const INIT = `0x602c600c600039602c6000f3${RUNTIME.slice(2)}` as Hex;

type Json = Record<string, unknown>;
type Tamper = (method: string, result: unknown) => unknown;

const rpc = (url: string, method: string, params: unknown[]): Promise<unknown> => jsonRpc(url, method, params, 15_000);

/** An HTTP JSON-RPC proxy to `target` that passes every answer through the current `tamper`. */
async function lyingProxy(target: string): Promise<{ url: string; server: Server; set(t: Tamper | null): void }> {
  let tamper: Tamper | null = null;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const request = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { method: string };
      const upstream = await fetch(target, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: Buffer.concat(chunks),
      });
      const answer = (await upstream.json()) as Json;
      if (tamper !== null && "result" in answer && answer.result !== null) {
        answer.result = tamper(request.method, answer.result);
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, server, set: (t) => (tamper = t) };
}

function dcn(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    // Asynchronous: the lying proxy answering the child lives in this process.
    const child = spawn(process.execPath, [DCN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

async function refusedWith(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof LightClientError) return `${error.code}: ${error.message}`;
    throw error;
  }
  return "accepted";
}

describe("light client against a live subnet", () => {
  let cluster: Cluster;
  let proxy: Awaited<ReturnType<typeof lyingProxy>>;
  let anchor: TrustAnchor;
  let url: string;
  const [sender] = devnetAccounts();
  const recipient: Hex = `0x${"5e".repeat(20)}`;
  const txs: Record<"deploy" | "log" | "outOfGas" | "transfer", Hex> = {
    deploy: "0x",
    log: "0x",
    outOfGas: "0x",
    transfer: "0x",
  };

  beforeAll(async () => {
    cluster = await Cluster.create({ validators: 3, replicas: 0 });
    for (const v of cluster.validators) cluster.start(v.name);
    url = cluster.node("validator-1").rpc;
    anchor = anchorFromGenesis(await loadGenesis(cluster.plan.genesisPath));
    proxy = await lyingProxy(url);
    await cluster.waitForHeight(
      cluster.validators.map((v) => v.name),
      2,
      60_000,
    );
    if (sender === undefined) throw new Error("no devnet account");
    const account = privateKeyToAccount(sender.privateKey);
    const chainId = Number(cluster.plan.chainId);
    const fee = { chainId, type: "eip1559", maxFeePerGas: 10n * GWEI, maxPriorityFeePerGas: GWEI } as const;
    const contract = toHex(keccak256(fromHex(`0xd694${sender.address.slice(2)}80`)).subarray(12)); // nonce 0
    const raws = {
      deploy: await account.signTransaction({ ...fee, nonce: 0, data: INIT, gas: 200_000n }),
      log: await account.signTransaction({ ...fee, nonce: 1, to: contract, gas: 60_000n }),
      // LOG1 alone needs more than the 50 gas left after the intrinsic 21,000: included, status 0.
      outOfGas: await account.signTransaction({ ...fee, nonce: 2, to: contract, gas: 21_050n }),
      transfer: await account.signTransaction({ ...fee, nonce: 3, to: recipient, value: 12_345n * GWEI, gas: 21_000n }),
    };
    for (const [name, raw] of Object.entries(raws) as [keyof typeof txs, Hex][]) {
      txs[name] = (await rpc(url, "eth_sendRawTransaction", [raw])) as Hex;
    }
    await cluster.waitFor(
      "the transactions to be committed",
      async () => (await rpc(url, "eth_getTransactionReceipt", [txs.transfer])) !== null,
      30_000,
    );
  }, 120_000);

  afterAll(async () => {
    await new Promise((r) => proxy?.server.close(r));
    await cluster?.close();
  });

  it("verifies a balance equal to eth_getBalance and receipts equal to the node's", async () => {
    const client = await LightClient.create({ rpcUrl: url, genesis: anchor });
    const verified = await client.verifiedBalance(recipient);
    const at = `0x${verified.header.height.toString(16)}`;
    expect(verified.balance).toBe(12_345n * GWEI);
    expect(verified.balance).toBe(BigInt((await rpc(url, "eth_getBalance", [recipient, at])) as Hex));
    expect(verified.header.signingPower * 3n).toBeGreaterThan(verified.header.totalVotingPower * 2n);
    expect(verified.header.signers.map((s) => s.name).sort()).toEqual(["validator-0", "validator-1", "validator-2"]);
    const senderBalance = await client.verifiedBalance(sender?.address as Hex, verified.header.height);
    expect(senderBalance.balance).toBe(BigInt((await rpc(url, "eth_getBalance", [sender?.address, at])) as Hex));

    for (const hash of Object.values(txs)) {
      const v = await client.verifiedTransaction(hash);
      const node = (await rpc(url, "eth_getTransactionReceipt", [hash])) as {
        status: Hex;
        cumulativeGasUsed: Hex;
        blockNumber: Hex;
        blockHash: Hex;
        transactionIndex: Hex;
        logs: { address: Hex; topics: Hex[]; data: Hex }[];
      };
      expect({
        status: v.receipt.status,
        cumulativeGasUsed: v.receipt.cumulativeGasUsed,
        blockNumber: v.blockNumber,
        blockHash: v.blockHash,
        transactionIndex: v.transactionIndex,
        logs: v.receipt.logs,
      }).toEqual({
        status: Number(node.status),
        cumulativeGasUsed: BigInt(node.cumulativeGasUsed),
        blockNumber: Number(node.blockNumber),
        blockHash: node.blockHash,
        transactionIndex: Number(node.transactionIndex),
        logs: node.logs.map((l) => ({ address: l.address, topics: l.topics, data: l.data })),
      });
    }
    const logged = await client.verifiedTransaction(txs.log);
    expect(logged.receipt.logs[0]?.topics).toEqual([TOPIC]);
    expect((await client.verifiedTransaction(txs.outOfGas)).receipt.status).toBe(0);
    // Static sets today: one entry, the genesis set from height 1.
    expect(await rpc(url, "lumia_getValidatorSetHistory", [])).toEqual([
      { fromHeight: "0x1", id: client.genesisValidatorSetId },
    ]);
  }, 60_000);

  it("refuses each lie of a proxy with the right code", async () => {
    const flipByte = (hex: Hex, fromEnd: number): Hex => {
      const bytes = fromHex(hex);
      const i = bytes.length - fromEnd;
      bytes[i] = (bytes[i] as number) ^ 0x01;
      return toHex(bytes);
    };
    const onCertificate =
      (edit: (c: ReturnType<typeof decodeCertificate>) => object): Tamper =>
      (method, result) => {
        if (method !== "lumia_getCertificate") return result;
        const r = result as Json;
        const cert = decodeCertificate(fromHex(r.certificate as Hex));
        return { ...r, certificate: toHex(encodeCertificate({ ...cert, ...edit(cert) })) };
      };
    const onTxCertificate =
      (edit: (r: Json) => Json): Tamper =>
      (method, result) =>
        method === "lumia_getTransactionCertificate" ? edit(result as Json) : result;
    const receiptEdit = (edit: (bytes: Uint8Array) => void) =>
      onTxCertificate((r) => {
        const bytes = fromHex(r.receipt as Hex);
        edit(bytes);
        return { ...r, receipt: toHex(bytes) };
      });
    const cases: { name: string; tamper: Tamper; ask: (c: LightClient) => Promise<unknown>; refusal: RegExp }[] = [
      {
        name: "balance in eth_getProof",
        tamper: (method, result) =>
          method === "eth_getProof" ? { ...(result as Json), balance: `0x${(10n ** 24n).toString(16)}` } : result,
        ask: (c) => c.verifiedBalance(recipient),
        refusal: /^bad_proof: .*claims balance/,
      },
      {
        name: "certificate signature",
        tamper: onCertificate((c) => ({ signature: fromHex(flipByte(toHex(c.signature), 1)) })),
        ask: (c) => c.verifiedBalance(recipient),
        refusal: /^bad_certificate: .*bad_signature/,
      },
      {
        name: "certificate signers (one of three dropped: 2/3 is not more than 2/3)",
        tamper: onCertificate((c) => ({ signers: Uint8Array.of((c.signers[0] as number) & 0b110) })),
        ask: (c) => c.verifiedBalance(recipient),
        refusal: /^bad_certificate: .*insufficient_power/,
      },
      {
        name: "header",
        tamper: (method, result) =>
          method === "lumia_getCertificate"
            ? { ...(result as Json), header: flipByte((result as Json).header as Hex, 40) }
            : result,
        ask: (c) => c.verifiedBalance(recipient),
        refusal: /^header_mismatch: .*hashes to/,
      },
      {
        // A legacy-free typed receipt: type || 0xf9 len len || status (0x01 success) ...: success becomes failure.
        name: "receipt status",
        tamper: receiptEdit((bytes) => {
          bytes[4] = bytes[4] === 0x01 ? 0x80 : 0x01;
        }),
        ask: (c) => c.verifiedTransaction(txs.log),
        refusal: /^bad_proof: .*receipt \d+: the bytes served differ/,
      },
      {
        name: "receipt log data (42 -> 43, the last byte of the log's data word)",
        tamper: receiptEdit((bytes) => {
          const i = bytes.length - 1;
          bytes[i] = (bytes[i] as number) + 1;
        }),
        ask: (c) => c.verifiedTransaction(txs.log),
        refusal: /^bad_proof: .*receipt \d+: the bytes served differ/,
      },
    ];
    const client = await LightClient.create({ rpcUrl: proxy.url, genesis: anchor });
    proxy.set(null);
    await expect(client.verifiedBalance(recipient)).resolves.toMatchObject({ balance: 12_345n * GWEI });
    for (const c of cases) {
      proxy.set(c.tamper);
      // A fresh client per lie: nothing verified earlier through the proxy is reused.
      const fresh = await LightClient.create({ rpcUrl: proxy.url, genesis: anchor });
      expect(await refusedWith(c.ask(fresh)), c.name).toMatch(c.refusal);
    }
    proxy.set(null);
  }, 60_000);

  it("dcn verify prints the verified balance and transaction, and REFUSED with a non-zero exit for a lie", async () => {
    const genesis = cluster.plan.genesisPath;
    const ok = await dcn(["verify", "--rpc", url, "--balance", recipient, "--genesis", genesis]);
    expect(ok.code, ok.out + ok.err).toBe(0);
    expect(ok.out).toMatch(new RegExp(`verified balance of ${recipient} at block \\d+`));
    expect(ok.out).toContain("0.000012345 LUMIA (12345000000000 wei)");
    expect(ok.out).toMatch(/certified by 3 of 3 validators, voting power 300 of 300/);
    expect(ok.out).toContain("validator-0");

    const tx = await dcn(["verify", "--rpc", url, "--tx", txs.log, "--genesis", genesis, "--json"]);
    expect(tx.code, tx.out + tx.err).toBe(0);
    const json = JSON.parse(tx.out) as { verified: boolean; receipt: { status: number; logs: { topics: Hex[] }[] } };
    expect(json.verified).toBe(true);
    expect(json.receipt.status).toBe(1);
    expect(json.receipt.logs[0]?.topics).toEqual([TOPIC]);

    proxy.set((method, result) =>
      method === "eth_getProof" ? { ...(result as Json), balance: "0xde0b6b3a7640000" } : result,
    );
    const lie = await dcn(["verify", "--rpc", proxy.url, "--balance", recipient, "--genesis", genesis]);
    proxy.set(null);
    expect(lie.code, lie.out + lie.err).toBe(1);
    expect(lie.out).toMatch(/^REFUSED: bad_proof: eth_getProof claims balance 0xde0b6b3a7640000/);
  }, 90_000);
});
