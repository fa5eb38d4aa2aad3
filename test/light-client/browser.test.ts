// The light client runs in a browser, not only in Node: src/light-client/index.ts bundled for the browser platform
// (esbuild, which fails on any Node built-in) and run in headless Chromium against the synthetic chain's real
// JSON-RPC server (CORS on). The page verifies two set changes' worth of certificates with pure-JS BLS, a balance and
// a transaction, and refuses a wrong genesis, with the same answers as in Node.
// Without /usr/bin/chromium the test is skipped, unless DCN_REQUIRE_CHROMIUM=1 (CI), where that is a failure.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { type Browser, chromium } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { type RpcServer, startRpcServer } from "../../src/rpc/server.ts";
import { alice, anchorOf, CHAIN_ID, ETHER, GENESIS_HASH, GWEI, HEAD, SyntheticChain } from "./chain.ts";

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
const requireChromium = process.env.DCN_REQUIRE_CHROMIUM === "1";

let server: RpcServer | null = null;
let browser: Browser | null = null;

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe.skipIf(!haveChromium && !requireChromium)("light client in headless Chromium", () => {
  it("bundles without Node built-ins and verifies a balance and a transaction in the page", async () => {
    const bundle = await build({
      entryPoints: [join(import.meta.dirname, "../../src/light-client/index.ts")],
      bundle: true,
      platform: "browser",
      format: "iife",
      globalName: "LumiaLightClient",
      write: false,
      logLevel: "silent",
    });
    const code = bundle.outputFiles[0]?.text ?? "";
    expect(code.length).toBeGreaterThan(10_000);

    const chain = await SyntheticChain.build();
    server = await startRpcServer({ host: "127.0.0.1", port: 0, cors: ["*"] }, chain);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.addScriptTag({ content: code });

    const anchor = anchorOf();
    const tx = chain.transactions[0];
    const input = {
      url: server.url,
      chainId: CHAIN_ID.toString(),
      genesisHash: GENESIS_HASH,
      validators: anchor.validators.map((v) => ({
        publicKey: typeof v.publicKey === "string" ? v.publicKey : toHex(v.publicKey),
        votingPower: v.votingPower.toString(),
      })),
      alice: alice.address,
      tx: tx?.hash ?? "0x",
    };
    const result = await page.evaluate(async (i) => {
      type Lib = {
        LightClient: { create(o: unknown): Promise<Record<string, (...a: unknown[]) => Promise<unknown>>> };
        LightClientError: new (...a: unknown[]) => Error & { code: string };
      };
      const lib = (globalThis as unknown as { LumiaLightClient: Lib }).LumiaLightClient;
      const genesis = (genesisHash: string) => ({
        chainId: BigInt(i.chainId),
        genesisHash,
        validators: i.validators.map((v) => ({ publicKey: v.publicKey, votingPower: BigInt(v.votingPower) })),
      });
      const client = await lib.LightClient.create({ rpcUrl: i.url, genesis: genesis(i.genesisHash) });
      const head = (await client.verifiedHeader?.()) as { height: number; signingPower: bigint };
      const balance = (await client.verifiedBalance?.(i.alice)) as { balance: bigint };
      const tx = (await client.verifiedTransaction?.(i.tx)) as { blockNumber: number; receipt: { status: number } };
      const other = await lib.LightClient.create({ rpcUrl: i.url, genesis: genesis(`0x${"77".repeat(32)}`) });
      let refused = "accepted";
      try {
        await other.verifiedHeader?.();
      } catch (e) {
        refused = e instanceof lib.LightClientError ? e.code : String(e);
      }
      return {
        height: head.height,
        signingPower: head.signingPower.toString(),
        balance: balance.balance.toString(),
        txBlock: tx.blockNumber,
        txStatus: tx.receipt.status,
        refused,
      };
    }, input);

    expect(errors).toEqual([]);
    expect(result).toEqual({
      height: HEAD,
      signingPower: "150",
      balance: (100n * ETHER - BigInt(HEAD) * GWEI).toString(),
      txBlock: chain.locations.get(input.tx as `0x${string}`)?.height,
      txStatus: tx?.status,
      refused: "wrong_chain",
    });
  }, 60_000);
});
