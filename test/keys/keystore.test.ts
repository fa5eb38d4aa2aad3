import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isValidKeystore } from "@chainsafe/bls-keystore";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { toHex } from "../../consensus/bytes.ts";
import { initNode, keyFilePath } from "../../src/keys/init.ts";
import { describeKeys, generateKeys, type KeyKind, peerIdOf } from "../../src/keys/keys.ts";
import { KeystoreError, loadKeystore, saveKeystore } from "../../src/keys/keystore.ts";

// Low scrypt cost keeps each encryption well under a millisecond; the format is the same as at 2^18.
const FAST = { scryptN: 16 };
const KINDS: readonly KeyKind[] = ["consensus", "peer", "operator"];

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "dcn-keystore-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(KeystoreError);
    return (error as KeystoreError).code;
  }
  throw new Error("expected a KeystoreError");
}

describe("EIP-2335 keystores", () => {
  it("round-trips every kind, writes mode 0600 and valid EIP-2335 JSON", async () => {
    const keys = generateKeys();
    for (const kind of KINDS) {
      const path = join(dir, `${kind}.json`);
      await saveKeystore(path, kind, keys[kind], { password: "correct horse" }, FAST);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      const json: unknown = JSON.parse(await readFile(path, "utf8"));
      expect(isValidKeystore(json)).toBe(true);
      expect(json).toMatchObject({ version: 4, description: `lumia-dcn ${kind} key`, path: "" });
      expect(JSON.stringify(json)).not.toContain(toHex(keys[kind].subarray(0, 32)).slice(2));
      const loaded = await loadKeystore(path, kind, "correct horse");
      expect(loaded).toEqual({ secret: keys[kind], insecure: false });
    }
    const consensus = JSON.parse(await readFile(join(dir, "consensus.json"), "utf8")) as { pubkey: string };
    expect(`0x${consensus.pubkey}`).toBe(describeKeys(keys).blsPublicKey);
  });

  it("keeps the peer id across save and load", async () => {
    const { peer } = generateKeys();
    const path = join(dir, "peer.json");
    await saveKeystore(path, "peer", peer, { password: "pw" }, FAST);
    expect(peerIdOf((await loadKeystore(path, "peer", "pw")).secret)).toBe(peerIdOf(peer));
  });

  it("reports a wrong password, a missing password and a wrong kind by code", async () => {
    const { consensus } = generateKeys();
    const path = join(dir, "consensus.json");
    await saveKeystore(path, "consensus", consensus, { password: "right" }, FAST);
    expect(await codeOf(loadKeystore(path, "consensus", "wrong"))).toBe("wrong_password");
    expect(await codeOf(loadKeystore(path, "consensus", undefined))).toBe("password_required");
    expect(await codeOf(loadKeystore(path, "peer", "right"))).toBe("wrong_kind");
    const error: unknown = await loadKeystore(path, "operator", "right").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeystoreError);
    expect((error as KeystoreError).file).toBe(path);
    expect((error as KeystoreError).message).toContain(path);
    expect((error as KeystoreError).message).toMatch(/expected the operator key.*Fix:/);
  });

  it("never overwrites a key file", async () => {
    const a = generateKeys();
    const path = join(dir, "operator.json");
    await saveKeystore(path, "operator", a.operator, { password: "pw" }, FAST);
    const before = await readFile(path, "utf8");
    expect(await codeOf(saveKeystore(path, "operator", generateKeys().operator, { password: "pw" }, FAST))).toBe(
      "exists",
    );
    expect(await readFile(path, "utf8")).toBe(before);
  });

  it("refuses missing, garbled, tampered and overpriced files", async () => {
    expect(await codeOf(loadKeystore(join(dir, "absent.json"), "peer", "pw"))).toBe("not_found");
    const garbage = join(dir, "garbage.json");
    await writeFile(garbage, "{ not json");
    expect(await codeOf(loadKeystore(garbage, "peer", "pw"))).toBe("malformed");

    const keys = generateKeys();
    const path = join(dir, "consensus.json");
    await saveKeystore(path, "consensus", keys.consensus, { password: "pw" }, FAST);
    const json = JSON.parse(await readFile(path, "utf8")) as {
      pubkey: string;
      crypto: { kdf: { params: { n: number } } };
    };

    // A recorded pubkey of another key: the file was tampered with or mixed up.
    const mixed = join(dir, "mixed.json");
    await writeFile(mixed, JSON.stringify({ ...json, pubkey: describeKeys(generateKeys()).blsPublicKey.slice(2) }));
    expect(await codeOf(loadKeystore(mixed, "consensus", "pw"))).toBe("malformed");

    // A cost that would allocate 128 GiB is refused before the KDF runs.
    const costly = join(dir, "costly.json");
    json.crypto.kdf.params.n = 2 ** 30;
    await writeFile(costly, JSON.stringify(json));
    expect(await codeOf(loadKeystore(costly, "consensus", "pw"))).toBe("malformed");
  });

  it("refuses an empty password", async () => {
    const path = join(dir, "peer.json");
    expect(await codeOf(saveKeystore(path, "peer", generateKeys().peer, { password: "" }, FAST))).toBe(
      "password_required",
    );
  });
});

describe("insecure key files", () => {
  it("stores the secret in the clear and says so when loaded, whatever the password", async () => {
    const keys = generateKeys();
    for (const kind of KINDS) {
      const path = join(dir, `${kind}.json`);
      await saveKeystore(path, kind, keys[kind], { insecure: true });
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      const stored = kind === "peer" ? keys.peer.subarray(0, 32) : keys[kind]; // a peer key is stored as its seed
      expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ kind, insecure: true, secret: toHex(stored) });
      expect(await loadKeystore(path, kind, undefined)).toEqual({ secret: keys[kind], insecure: true });
      expect(await loadKeystore(path, kind, "ignored")).toEqual({ secret: keys[kind], insecure: true });
    }
    expect(await codeOf(loadKeystore(join(dir, "peer.json"), "operator", undefined))).toBe("wrong_kind");
  });

  it("accepts libp2p's 64-byte raw peer key by hand, but checks it", async () => {
    const path = join(dir, "peer.json");
    const key = generateKeys().peer;
    await writeFile(path, JSON.stringify({ kind: "peer", insecure: true, secret: toHex(key) }));
    expect(await loadKeystore(path, "peer", undefined)).toEqual({ secret: key, insecure: true });
    key[63] = (key[63] as number) ^ 0xff;
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ kind: "peer", insecure: true, secret: toHex(key) }));
    expect(await codeOf(loadKeystore(bad, "peer", undefined))).toBe("malformed");
  });
});

describe("initNode", () => {
  it("writes three keystores and the public identity, which matches the keys", async () => {
    const result = await initNode(dir, { password: "pw", scryptN: 16 });
    const loaded = {
      consensus: (await loadKeystore(keyFilePath(join(dir, "keys"), "consensus"), "consensus", "pw")).secret,
      peer: (await loadKeystore(keyFilePath(join(dir, "keys"), "peer"), "peer", "pw")).secret,
      operator: (await loadKeystore(keyFilePath(join(dir, "keys"), "operator"), "operator", "pw")).secret,
    };
    expect(describeKeys(loaded)).toEqual(result.identity);
    expect(JSON.parse(await readFile(join(dir, "identity.json"), "utf8"))).toEqual(result.identity);
    expect(result.insecure).toBe(false);
    for (const kind of KINDS) expect((await stat(result.files[kind])).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "keys"))).mode & 0o777).toBe(0o700);
  });

  it("refuses to overwrite existing keys and leaves them intact", async () => {
    const first = await initNode(dir, { insecure: true });
    const before = await readFile(first.files.consensus, "utf8");
    expect(await codeOf(initNode(dir, { insecure: true }))).toBe("exists");
    expect(await codeOf(initNode(dir, { password: "pw", scryptN: 16 }))).toBe("exists");
    expect(await readFile(first.files.consensus, "utf8")).toBe(before);
    expect(first.insecure).toBe(true);
    expect((await loadKeystore(first.files.peer, "peer", undefined)).insecure).toBe(true);
  });

  it("needs a password unless insecure", async () => {
    expect(await codeOf(initNode(dir, {}))).toBe("password_required");
  });
});
