import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_TIMEOUTS } from "../../consensus/machine.ts";
import {
  ConfigError,
  configJsonSchema,
  configTemplate,
  DEFAULT_FINALITY,
  loadConfig,
  parseConfig,
  readKeyPassword,
} from "../../src/config/config.ts";
import type { Issue } from "../../src/config/issues.ts";

const PEER_A = "12D3KooWQJKqoEyXXRRMDxAzaNfs71bgS7RSr4vAsfBWPxaC2JRH";
const PEER_B = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq";
const MINIMAL = { dataDir: "data", genesis: "../genesis.json" };

function issuesOf(json: unknown): readonly Issue[] {
  try {
    parseConfig(json, "/srv/node", "config.json");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error("expected a ConfigError");
}

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dcn-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("parseConfig", () => {
  it("fills in every default and resolves paths against the config's directory", () => {
    const config = parseConfig(MINIMAL, "/srv/node/a");
    expect(config).toEqual({
      source: "config",
      baseDir: "/srv/node/a",
      role: "validator",
      dataDir: "/srv/node/a/data",
      genesis: "/srv/node/genesis.json",
      keys: { dir: "/srv/node/a/keys", passwordFile: null },
      p2p: { listen: ["/ip4/0.0.0.0/tcp/26656"], peers: [], replicas: [] },
      consensus: {
        timeouts: DEFAULT_TIMEOUTS,
        proposeTimeoutMaxMs: 4000,
        rebroadcastMs: 1000,
        blockIntervalMs: 0,
        emptyBlockIntervalMs: 1000,
        doppelgangerWaitMs: 30_000,
        haltHeight: null,
        maxBlockBytes: 2_000_000,
        maxBlockTransactions: 10_000,
      },
      mempool: {
        maxCount: 50_000,
        maxBytes: 64 * 1024 * 1024,
        maxPerSender: 256,
        maxNonceGap: 64,
        minReplacementBumpPercent: 10,
        peerRatePerSecond: 2_000,
      },
      storage: { stateHistory: 10_000, blockHistory: 0 },
      sync: { stateSync: false },
      metrics: { enabled: true, host: "127.0.0.1", port: 9100 },
      rpc: { enabled: true, host: "127.0.0.1", port: 8545, cors: [], debug: false },
      log: { level: "info", format: "json" },
      l1: null,
    });
  });

  it("takes L1 fallback endpoints, each checked like rpcUrl, at most 8", () => {
    const l1 = {
      rpcUrl: "http://127.0.0.1:8645",
      fallbackRpcUrls: ["https://backup.example/rpc?key=k", "wss://b2.example"],
    };
    expect(parseConfig({ ...MINIMAL, l1 }, "/srv").l1?.fallbackRpcUrls).toEqual(l1.fallbackRpcUrls);
    expect(() => parseConfig({ ...MINIMAL, l1: { ...l1, fallbackRpcUrls: ["ftp://x.example"] } }, "/srv")).toThrow(
      /l1\.fallbackRpcUrls\[0\]: "ftp:\/\/x\.example" uses ftp/,
    );
    const nine = Array.from({ length: 9 }, (_, i) => `http://b${i}.example`);
    expect(() => parseConfig({ ...MINIMAL, l1: { ...l1, fallbackRpcUrls: nine } }, "/srv")).toThrow(/fallbackRpcUrls/);
  });

  it("takes an optional l1 section: http or ws URL, poll interval 2 s, 6 confirmations, no registry by default", () => {
    expect(parseConfig({ ...MINIMAL, l1: { rpcUrl: "http://127.0.0.1:8645" } }, "/srv").l1).toEqual({
      rpcUrl: "http://127.0.0.1:8645",
      fallbackRpcUrls: [],
      pollIntervalMs: 2000,
      confirmations: 6,
      registry: null,
      slashing: null,
      deriveFromL1: false,
      ...DEFAULT_FINALITY,
      beaconUrl: null,
    });
    const registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    expect(
      parseConfig(
        {
          ...MINIMAL,
          l1: {
            rpcUrl: "wss://l1.example/v3/key",
            pollIntervalMs: 500,
            confirmations: 2,
            registry,
            slashing: registry,
          },
        },
        "/srv",
      ).l1,
    ).toEqual({
      rpcUrl: "wss://l1.example/v3/key",
      fallbackRpcUrls: [],
      pollIntervalMs: 500,
      confirmations: 2,
      registry,
      slashing: registry,
      deriveFromL1: false,
      ...DEFAULT_FINALITY,
      beaconUrl: null,
    });
  });

  it("maps every field of a full config, timeouts onto TimeoutParams", () => {
    const config = parseConfig(
      {
        role: "replica",
        dataDir: "/var/lib/dcn",
        genesis: "genesis.json",
        keys: { dir: "secrets", passwordFile: "pw.txt" },
        p2p: {
          listen: ["/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/26656"],
          peers: [`/ip4/10.0.0.2/tcp/26656/p2p/${PEER_A}`, `/dns4/node-b.example/tcp/26656/p2p/${PEER_B}`],
          replicas: [PEER_B],
        },
        consensus: {
          timeoutProposeMs: 3000,
          timeoutProposeDeltaMs: 100,
          timeoutPrevoteMs: 200,
          timeoutPrevoteDeltaMs: 10,
          timeoutPrecommitMs: 300,
          timeoutPrecommitDeltaMs: 20,
          rebroadcastMs: 500,
          blockIntervalMs: 250,
          maxBlockBytes: 100_000,
          maxBlockTransactions: 50,
        },
        mempool: {
          maxTransactions: 200_000,
          maxBytes: 256 * 1024 * 1024,
          maxPerSender: 1024,
          maxNonceGap: 512,
          replacementBumpPercent: 12,
          peerRatePerSecond: 8_000,
        },
        storage: { stateHistory: 0, blockHistory: 100_000 },
        metrics: { enabled: false, host: "0.0.0.0", port: 0 },
        log: { level: "debug", format: "pretty" },
      },
      "/etc/dcn",
    );
    expect(config.role).toBe("replica");
    expect(config.dataDir).toBe("/var/lib/dcn");
    expect(config.keys).toEqual({ dir: "/etc/dcn/secrets", passwordFile: "/etc/dcn/pw.txt" });
    expect(config.p2p.peers).toEqual([
      { multiaddr: `/ip4/10.0.0.2/tcp/26656/p2p/${PEER_A}`, peerId: PEER_A },
      { multiaddr: `/dns4/node-b.example/tcp/26656/p2p/${PEER_B}`, peerId: PEER_B },
    ]);
    expect(config.consensus.timeouts).toEqual({
      proposeMs: 3000,
      proposeDeltaMs: 100,
      prevoteMs: 200,
      prevoteDeltaMs: 10,
      precommitMs: 300,
      precommitDeltaMs: 20,
    });
    expect(config.consensus.blockIntervalMs).toBe(250);
    expect(config.mempool).toEqual({
      maxCount: 200_000,
      maxBytes: 256 * 1024 * 1024,
      maxPerSender: 1024,
      maxNonceGap: 512,
      minReplacementBumpPercent: 12,
      peerRatePerSecond: 8_000,
    });
    expect(config.storage).toEqual({ stateHistory: 0, blockHistory: 100_000 });
    expect(config.metrics).toEqual({ enabled: false, host: "0.0.0.0", port: 0 });
    expect(config.log).toEqual({ level: "debug", format: "pretty" });
  });

  // Each bad config gives exactly the expected issue: where, what, and a fix that helps.
  const cases: readonly { name: string; json: unknown; path: string; message: RegExp; fix: RegExp }[] = [
    {
      name: "a misspelt key suggests the right one",
      json: { ...MINIMAL, p2p: { listn: ["/ip4/0.0.0.0/tcp/1"] } },
      path: "p2p.listn",
      message: /unknown key "listn"/,
      fix: /did you mean "listen"\?/,
    },
    {
      name: "a misspelt timeout suggests the right one",
      json: { ...MINIMAL, consensus: { timeoutPropseMs: 10 } },
      path: "consensus.timeoutPropseMs",
      message: /unknown key/,
      fix: /did you mean "timeoutProposeMs"\?/,
    },
    {
      name: "a key in the wrong case suggests the right one",
      json: { ...MINIMAL, metrics: { Port: 1 } },
      path: "metrics.Port",
      message: /unknown key "Port"/,
      fix: /did you mean "port"\?/,
    },
    {
      name: "an unrelated unknown key lists the allowed ones",
      json: { ...MINIMAL, webui: {} },
      path: "webui",
      message: /unknown key "webui"/,
      fix: /remove it; the keys allowed here are role, dataDir, genesis, keys, p2p, consensus, mempool, storage, sync, metrics, rpc, log/,
    },
    {
      name: "a bad multiaddr",
      json: { ...MINIMAL, p2p: { listen: ["/ip4/1.2.3/tcp/x"] } },
      path: "p2p.listen[0]",
      message: /^"\/ip4\/1\.2\.3\/tcp\/x" is not a multiaddr/,
      fix: /^use a form like \/ip4\/127\.0\.0\.1\/tcp\/26656$/,
    },
    {
      name: "a listen address that is not TCP",
      json: { ...MINIMAL, p2p: { listen: ["/ip4/0.0.0.0/udp/26656"] } },
      path: "p2p.listen[0]",
      message: /not an \/ip4 or \/ip6 TCP address/,
      fix: /TCP only/,
    },
    {
      name: "a peer without /p2p/<id>",
      json: { ...MINIMAL, p2p: { peers: ["/ip4/10.0.0.2/tcp/26656"] } },
      path: "p2p.peers[0]",
      message: /does not end in \/p2p\/<peerId>/,
      fix: /append the peer's id, e\.g\. \/ip4\/10\.0\.0\.2\/tcp\/26656\/p2p\/12D3KooW.*identity\.json/,
    },
    {
      name: "the same peer twice",
      json: { ...MINIMAL, p2p: { peers: [`/ip4/10.0.0.2/tcp/1/p2p/${PEER_A}`, `/ip4/10.0.0.3/tcp/1/p2p/${PEER_A}`] } },
      path: "p2p.peers[1]",
      message: /listed again \(first at \[0\]\)/,
      fix: /list it once/,
    },
    {
      name: "a replica that is not a peer id",
      json: { ...MINIMAL, p2p: { replicas: ["node-7"] } },
      path: "p2p.replicas[0]",
      message: /"node-7" is not a libp2p peer id/,
      fix: /identity\.json/,
    },
    {
      name: "a negative port",
      json: { ...MINIMAL, metrics: { port: -1 } },
      path: "metrics.port",
      message: /^-1 is below the minimum 0$/,
      fix: /^use a number in \[0, 65535\]$/,
    },
    {
      name: "a block size above what gossip carries",
      json: { ...MINIMAL, consensus: { maxBlockBytes: 8_000_000 } },
      path: "consensus.maxBlockBytes",
      message: /above the maximum 4000000/,
      fix: /\[1024, 4000000\]/,
    },
    {
      name: "a pool smaller than its largest transaction",
      json: { ...MINIMAL, mempool: { maxBytes: 65_536 } },
      path: "mempool.maxBytes",
      message: /below the minimum 1048576/,
      fix: /\[1048576, 17179869184\]/,
    },
    {
      name: "a zero per-peer rate",
      json: { ...MINIMAL, mempool: { peerRatePerSecond: 0 } },
      path: "mempool.peerRatePerSecond",
      message: /below the minimum 1/,
      fix: /\[1, 1000000\]/,
    },
    {
      name: "a fractional timeout",
      json: { ...MINIMAL, consensus: { timeoutPrevoteMs: 2.5 } },
      path: "consensus.timeoutPrevoteMs",
      message: /2\.5 is a number, expected an integer/,
      fix: /use an integer such as 500/,
    },
    {
      name: "a number in quotes",
      json: { ...MINIMAL, consensus: { timeoutProposeMs: "1000" } },
      path: "consensus.timeoutProposeMs",
      message: /"1000" is a string, expected a number/,
      fix: /write the number without quotes: 1000/,
    },
    {
      name: "a bad log level lists the allowed ones",
      json: { ...MINIMAL, log: { level: "verbose" } },
      path: "log.level",
      message: /"verbose" is not one of "fatal", "error", "warn", "info", "debug", "trace"/,
      fix: /^use one of "fatal", "error", "warn", "info", "debug", "trace"$/,
    },
    {
      name: "a near-miss enum value gets a suggestion",
      json: { ...MINIMAL, role: "validtor" },
      path: "role",
      message: /"validtor" is not one of "validator", "replica"/,
      fix: /did you mean "validator"\?/,
    },
    {
      name: "a state history too short to prune by",
      json: { ...MINIMAL, storage: { stateHistory: 8 } },
      path: "storage.stateHistory",
      message: /must be 0 \(keep all\) or at least 16/,
      fix: /./,
    },
    {
      name: "a block history shorter than the block hashes a restart reads",
      json: { ...MINIMAL, storage: { blockHistory: 255 } },
      path: "storage.blockHistory",
      message: /must be 0 \(keep all\) or at least 256/,
      fix: /./,
    },
    {
      name: "a missing required field",
      json: { genesis: "genesis.json" },
      path: "dataDir",
      message: /is required but missing/,
      fix: /add "dataDir": "data"/,
    },
    {
      name: "a section of the wrong type",
      json: { ...MINIMAL, p2p: ["/ip4/0.0.0.0/tcp/1"] },
      path: "p2p",
      message: /is an array, expected an object/,
      fix: /use an object/,
    },
    {
      name: "an L1 URL without a scheme",
      json: { ...MINIMAL, l1: { rpcUrl: "127.0.0.1:8645" } },
      path: "l1.rpcUrl",
      message: /"127\.0\.0\.1:8645" (is not a URL|uses 127\.0\.0\.1, not http)/,
      fix: /e\.g\. http:\/\/127\.0\.0\.1:8645/,
    },
    {
      name: "an L1 URL with another scheme",
      json: { ...MINIMAL, l1: { rpcUrl: "ftp://l1.example" } },
      path: "l1.rpcUrl",
      message: /"ftp:\/\/l1\.example" uses ftp, not http, https, ws or wss/,
      fix: /over HTTP or WebSocket/,
    },
    {
      name: "an L1 registry that is not an address",
      json: { ...MINIMAL, l1: { rpcUrl: "http://127.0.0.1:8645", registry: "0x1234" } },
      path: "l1.registry",
      message: /"0x1234" is not a 20-byte hex address/,
      fix: /SequencerRegistry address/,
    },
    {
      name: "an l1 section without its URL",
      json: { ...MINIMAL, l1: { pollIntervalMs: 1000 } },
      path: "l1.rpcUrl",
      message: /is required but missing/,
      fix: /add "rpcUrl": "http:\/\/127\.0\.0\.1:8645"/,
    },
    {
      name: "an L1 poll interval too short",
      json: { ...MINIMAL, l1: { rpcUrl: "http://127.0.0.1:8645", pollIntervalMs: 10 } },
      path: "l1.pollIntervalMs",
      message: /^10 is below the minimum 100$/,
      fix: /\[100, 600000\]/,
    },
    {
      name: "a misspelt l1 key",
      json: { ...MINIMAL, l1: { rpcUrl: "http://127.0.0.1:8645", pollInterval: 1000 } },
      path: "l1.pollInterval",
      message: /unknown key "pollInterval"/,
      fix: /did you mean "pollIntervalMs"\?/,
    },
    {
      name: "a metrics host with a scheme",
      json: { ...MINIMAL, metrics: { host: "http://localhost" } },
      path: "metrics.host",
      message: /not a host name or IP address/,
      fix: /without scheme or port/,
    },
  ];

  for (const c of cases) {
    it(`reports ${c.name}`, () => {
      const issues = issuesOf(c.json);
      expect(issues).toHaveLength(1);
      const [issue] = issues;
      expect(issue?.path).toBe(c.path);
      expect(issue?.message).toMatch(c.message);
      expect(issue?.fix).toMatch(c.fix);
    });
  }

  it("reports every issue at once, one line each, naming the file", () => {
    let error: unknown;
    try {
      parseConfig(
        { dataDir: "d", p2p: { listen: ["/ip4/1.2.3/tcp/x"] }, metrics: { port: 70000 } },
        "/x",
        "config.json",
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as ConfigError).message.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines).toContain(`config.json: genesis: is required but missing. Fix: add "genesis": "genesis.json"`);
    expect(lines).toContain(
      `config.json: p2p.listen[0]: "/ip4/1.2.3/tcp/x" is not a multiaddr (Invalid IPv4 address "1.2.3"). ` +
        "Fix: use a form like /ip4/127.0.0.1/tcp/26656",
    );
    expect(lines).toContain(
      "config.json: metrics.port: 70000 is above the maximum 65535. Fix: use a number in [0, 65535]",
    );
    expect((error as ConfigError).code).toBe("invalid");
  });

  it("refuses a document that is not an object", () => {
    expect(issuesOf(null)[0]).toMatchObject({ path: "", message: "is null, expected an object" });
  });
});

describe("loadConfig", () => {
  it("reads the file and resolves paths against its directory", async () => {
    const path = join(dir, "config.json");
    await writeFile(path, JSON.stringify({ ...MINIMAL, keys: { passwordFile: "pw" } }));
    const config = await loadConfig(path);
    expect(config.source).toBe("config.json");
    expect(config.dataDir).toBe(join(dir, "data"));
    expect(config.genesis).toBe(join(dir, "..", "genesis.json"));
    expect(config.keys).toEqual({ dir: join(dir, "keys"), passwordFile: join(dir, "pw") });
  });

  it("names missing files and bad JSON", async () => {
    await expect(loadConfig(join(dir, "absent.json"))).rejects.toMatchObject({ code: "not_found" });
    const path = join(dir, "broken.json");
    await writeFile(path, '{ "dataDir": "d", }');
    const error = await loadConfig(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe("bad_json");
    expect((error as ConfigError).message).toMatch(/^broken\.json: \(top level\): not valid JSON.*Fix: JSON allows no/);
  });

  it("round-trips the template it offers", async () => {
    const path = join(dir, "template.json");
    await writeFile(path, JSON.stringify(configTemplate({ dataDir: "data", genesis: "genesis.json" })));
    const config = await loadConfig(path);
    expect(config.consensus.timeouts).toEqual(DEFAULT_TIMEOUTS);
    expect(config.p2p.listen).toEqual(["/ip4/0.0.0.0/tcp/26656"]);
  });
});

describe("readKeyPassword", () => {
  it("prefers DCN_KEY_PASSWORD, then the password file without its trailing newline", async () => {
    const file = join(dir, "password.txt");
    await writeFile(file, "s3cret pass\n");
    const config = parseConfig({ ...MINIMAL, keys: { passwordFile: "password.txt" } }, dir);
    expect(await readKeyPassword(config, { DCN_KEY_PASSWORD: "from-env" })).toBe("from-env");
    expect(await readKeyPassword(config, {})).toBe("s3cret pass");
    expect(await readKeyPassword(parseConfig(MINIMAL, dir), {})).toBeUndefined();
  });

  it("reports a missing password file against keys.passwordFile", async () => {
    const config = parseConfig({ ...MINIMAL, keys: { passwordFile: "nope.txt" } }, dir);
    const error = await readKeyPassword(config, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues[0]?.path).toBe("keys.passwordFile");
    expect((error as ConfigError).code).toBe("not_found");
  });
});

describe("configJsonSchema", () => {
  it("describes the file: strict objects, required fields, defaults", () => {
    const schema = configJsonSchema() as {
      required: string[];
      additionalProperties: boolean;
      properties: Record<string, { default?: unknown; properties?: Record<string, { default?: unknown }> }>;
    };
    expect(schema.required).toEqual(["dataDir", "genesis"]);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.role?.default).toBe("validator");
    expect(schema.properties.consensus?.properties?.timeoutProposeMs?.default).toBe(1000);
    expect(schema.properties.metrics?.properties?.port?.default).toBe(9100);
  });
});

describe("config/example.json", () => {
  it("is a valid config (the documented example stays true)", async () => {
    const { loadConfig } = await import("../../src/config/config.ts");
    const config = await loadConfig(new URL("../../config/example.json", import.meta.url).pathname);
    expect(config.role).toBe("validator");
    expect(config.p2p.peers).toHaveLength(1);
    expect(config.l1).toEqual({
      rpcUrl: "http://127.0.0.1:8645",
      fallbackRpcUrls: [],
      pollIntervalMs: 2000,
      confirmations: 6,
      registry: null,
      slashing: null,
      deriveFromL1: false,
      ...DEFAULT_FINALITY,
      beaconUrl: "http://127.0.0.1:5052",
    });
  });
});
