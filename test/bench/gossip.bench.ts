// Transaction gossip cost: CPU per transaction to carry transfers from one node to another over the node's own
// network stack (libp2p TCP, Noise, Yamux, gossipsub; the transactions topic's background validation queue), one
// transaction per message (the baseline: what every transaction cost before batches) against batches of 2 to 16
// (what a node sends when several of its clients' transactions are admitted in one turn of its event loop).
// Both nodes run in this process, so the CPU is the sender's and the receiver's together; the validator accepts
// without pooling, so only the transport is measured. Usage: node bin/run.mjs test/bench/gossip.bench.ts [--txs N]
import { setImmediate as nextTurn } from "node:timers/promises";
import { generatePeerKey, Network, peerIdFromPrivateKey } from "../../p2p/index.ts";
import { median } from "../../src/bench/stats.ts";
import { encodeTransactionBatch, MAX_GOSSIP_BATCH_BYTES } from "../../src/node/messages.ts";

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const TXS = arg("--txs", 6_000);
const REPEATS = arg("--repeats", 5);
const SIZES = [1, 2, 4, 8, 16];
/** A signed EIP-1559 transfer is about 110-115 bytes. */
const TX_BYTES = 112;
const TOPIC = "/lumia/dcn/bench/transactions/2";

async function main(): Promise<void> {
  const keys = [generatePeerKey(), generatePeerKey()] as const;
  const ids = keys.map((k) => peerIdFromPrivateKey(k));
  let received = 0;
  const node = async (key: Uint8Array, peers: string[], counts: boolean) => {
    const net = await Network.create({ privateKey: key, listen: ["/ip4/127.0.0.1/tcp/0"], peers, allowedPeers: ids });
    net.subscribe<Uint8Array>({
      name: TOPIC,
      maxBytes: MAX_GOSSIP_BATCH_BYTES,
      queueLength: 1 << 20,
      dropPolicy: "drop-newest",
      background: true,
      validate: (data) => {
        if (counts) received++;
        return { kind: "accept", value: data, forward: false };
      },
      onMessage: () => {},
    });
    await net.start();
    return net;
  };
  const sender = await node(keys[0], [], false);
  const receiver = await node(keys[1], [sender.addresses()[0] as string], true);
  try {
    while (!sender.topicPeers(TOPIC).includes(ids[1] as string)) await new Promise((r) => setTimeout(r, 50));
    let seq = 0;
    const tx = () => {
      const bytes = new Uint8Array(TX_BYTES);
      bytes[0] = 2;
      new DataView(bytes.buffer).setUint32(1, seq++); // distinct payloads: gossipsub drops repeats
      return bytes;
    };
    const run = async (perMessage: number): Promise<number> => {
      const messages = Math.ceil(TXS / perMessage);
      received = 0;
      const start = process.cpuUsage();
      for (let m = 0; m < messages; m++) {
        await sender.publish(TOPIC, encodeTransactionBatch(Array.from({ length: perMessage }, tx)));
        if (m % 32 === 31) await nextTurn();
      }
      while (received < messages) await new Promise((r) => setTimeout(r, 2));
      const used = process.cpuUsage(start);
      return (used.user + used.system) / (messages * perMessage);
    };
    await run(1); // warm-up: JIT, yamux windows
    const perTx = new Map<number, number[]>(SIZES.map((s) => [s, []]));
    for (let r = 0; r < REPEATS; r++) for (const s of SIZES) perTx.get(s)?.push(await run(s));
    const base = median(perTx.get(1) ?? []);
    console.log(
      `gossip of ${TXS} transactions of ${TX_BYTES} bytes, sender and receiver in one process, median of ${REPEATS}`,
    );
    console.log("| transactions per message | CPU us per transaction | CPU us per message | baseline / this |");
    console.log("|---:|---:|---:|---:|");
    for (const s of SIZES) {
      const us = median(perTx.get(s) ?? []);
      const label = s === 1 ? "1 (baseline)" : String(s);
      console.log(`| ${label} | ${us.toFixed(1)} | ${(us * s).toFixed(1)} | ${(base / us).toFixed(2)}x |`);
    }
  } finally {
    await receiver.stop();
    await sender.stop();
  }
}

await main();
