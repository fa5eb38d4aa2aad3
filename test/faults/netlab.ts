// Linux network namespaces for the fault suite: one namespace per node, each with a veth whose other end sits on a
// bridge in the root namespace (which holds the bridge address, so the test process reaches every node's RPC and
// status). Per directed link (node i -> node j) the namespace's egress has an htb class selected by a u32 filter on
// the destination address; its leaf qdisc is the fault: `pfifo limit 0` drops everything (a silent partition, no ICMP,
// no RST), a low htb rate with a short queue is a congested link (queueing delay and tail drop), and `netem` adds delay
// and loss where the kernel has sch_netem (the CI kernel of this repository does not: see netemSupported()).
// Everything a lab creates carries its prefix, and sweep(prefix) removes leftovers of a run that died.
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Interface names are at most 15 bytes: prefix (<= 8) + "-br" / "-h12". */
const MAX_PREFIX_LENGTH = 8;
export const MAX_LAB_NODES = 32;
/** Traffic to the bridge (the harness) and unshaped links: far above anything a test sends. */
const UNSHAPED_RATE = "10gbit";

export type NetLabErrorCode = "command_failed" | "unavailable";

export class NetLabError extends Error {
  override readonly name = "NetLabError";
  constructor(
    readonly code: NetLabErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A directed link's fault; `null` restores it. */
export type LinkFault =
  | { readonly kind: "drop" }
  /** Congestion: the link carries `rateKbit` with a queue of `queuePackets`; the rest is tail-dropped. */
  | { readonly kind: "congest"; readonly rateKbit: number; readonly queuePackets: number }
  /** Needs sch_netem. */
  | { readonly kind: "netem"; readonly delayMs: number; readonly jitterMs: number; readonly lossPercent: number };

async function sh(args: readonly string[], ns?: string): Promise<string> {
  const argv = ns === undefined ? [...args] : ["netns", "exec", ns, ...args];
  const cmd = ns === undefined ? (args[0] ?? "") : "ip";
  const rest = ns === undefined ? argv.slice(1) : argv;
  try {
    const { stdout } = await run(cmd, rest, { timeout: 10_000 });
    return stdout;
  } catch (cause) {
    const stderr = (cause as { stderr?: string }).stderr ?? "";
    throw new NetLabError("command_failed", `${cmd} ${rest.join(" ")} failed: ${stderr.trim()}`, { cause });
  }
}

/** Why namespaces cannot be used here, or null when they can (root, `ip netns`, veth, bridge, htb all work). */
export function netnsUnavailable(): string | null {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "network namespaces need root";
  const probe = `dcfp${process.pid % 10_000}`;
  const steps = [
    ["ip", "netns", "add", probe],
    ["ip", "netns", "exec", probe, "ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1"],
    ["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "a0", "root", "handle", "1:", "htb"],
  ];
  try {
    for (const [cmd, ...args] of steps) {
      const r = spawnSync(cmd ?? "", args, { encoding: "utf8", timeout: 10_000 });
      if (r.error !== undefined) return `${cmd} is not available: ${r.error.message}`;
      if (r.status !== 0) return `\`${[cmd, ...args].join(" ")}\` failed: ${r.stderr.trim()}`;
    }
    return null;
  } finally {
    spawnSync("ip", ["netns", "del", probe]);
  }
}

/** Whether this kernel has sch_netem (delay and random loss). */
export function netemSupported(): boolean {
  const probe = `dcfq${process.pid % 10_000}`;
  try {
    if (spawnSync("ip", ["netns", "add", probe]).status !== 0) return false;
    const ns = (args: string[]) => spawnSync("ip", ["netns", "exec", probe, ...args]).status === 0;
    return (
      ns(["ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1"]) &&
      ns(["tc", "qdisc", "add", "dev", "a0", "root", "netem", "delay", "1ms"])
    );
  } finally {
    spawnSync("ip", ["netns", "del", probe]);
  }
}

/**
 * Whether packets can be dropped at random without sch_netem: iptables' `statistic` match (netfilter is in this
 * kernel; .ci/run installs the iptables package).
 */
export function randomLossSupported(): boolean {
  const probe = `dcrl${process.pid % 10_000}`;
  try {
    if (spawnSync("ip", ["netns", "add", probe]).status !== 0) return false;
    const rule = ["-A", "OUTPUT", "-d", "10.0.0.1", "-m", "statistic", "--mode", "random", "--probability", "0.5"];
    return spawnSync("ip", ["netns", "exec", probe, "iptables", ...rule, "-j", "DROP"]).status === 0;
  } catch {
    return false;
  } finally {
    spawnSync("ip", ["netns", "del", probe]);
  }
}

/** Removes every namespace and link whose name starts with `prefix` (a run that crashed leaves them). */
export async function sweep(prefix: string): Promise<void> {
  if (prefix.length < 3) throw new RangeError(`refusing to sweep the short prefix "${prefix}"`);
  const namespaces = (await sh(["ip", "netns", "list"]).catch(() => ""))
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(prefix));
  for (const ns of namespaces) {
    // Processes still inside (a node that outlived its test) die with their namespace's network, not by themselves.
    const pids = (await sh(["ip", "netns", "pids", ns]).catch(() => ""))
      .split("\n")
      .map(Number)
      .filter((p) => Number.isInteger(p) && p > 0);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await sh(["ip", "netns", "del", ns]).catch(() => undefined);
  }
  const links = (await sh(["ip", "-o", "link", "show"]).catch(() => ""))
    .split("\n")
    .map((l) => (l.split(": ")[1] ?? "").split("@")[0] ?? "")
    .filter((n) => n.startsWith(prefix));
  for (const link of links) await sh(["ip", "link", "del", link]).catch(() => undefined);
}

export interface LabNode {
  readonly index: number;
  readonly ns: string;
  readonly ip: string;
}

/** Namespaces and links of one run; `destroy()` (or `sweep(prefix)`) removes them all. */
export class NetLab {
  private readonly faults = new Map<string, LinkFault>();
  private randomLossPercent = 0;

  private constructor(
    readonly prefix: string,
    readonly subnet: string,
    readonly nodes: readonly LabNode[],
  ) {}

  get bridge(): string {
    return `${this.prefix}-br`;
  }

  get hostIp(): string {
    return `${this.subnet}.254`;
  }

  /** A fresh prefix for this run: "dcf" + 5 characters from the pid and time. */
  static newPrefix(): string {
    return `dcf${((process.pid * 7919 + Date.now()) % 36 ** 5).toString(36).padStart(5, "0")}`;
  }

  static async create(prefix: string, count: number): Promise<NetLab> {
    if (prefix.length > MAX_PREFIX_LENGTH || !/^[a-z0-9]+$/.test(prefix)) {
      throw new RangeError(`prefix "${prefix}" must be 1-${MAX_PREFIX_LENGTH} lowercase letters or digits`);
    }
    if (!Number.isInteger(count) || count < 1 || count > MAX_LAB_NODES) {
      throw new RangeError(`a lab has 1-${MAX_LAB_NODES} nodes, asked for ${count}`);
    }
    const reason = netnsUnavailable();
    if (reason !== null) throw new NetLabError("unavailable", reason);
    // A /24 per run, picked from the prefix, so that two runs on one machine do not share routes.
    let octet = 0;
    for (const c of prefix) octet = (octet * 31 + c.charCodeAt(0)) % 250;
    const subnet = `10.213.${octet}`;
    const nodes = Array.from({ length: count }, (_, i) => ({
      index: i,
      ns: `${prefix}-n${i}`,
      ip: `${subnet}.${i + 1}`,
    }));
    const lab = new NetLab(prefix, subnet, nodes);
    try {
      await sh(["ip", "link", "add", lab.bridge, "type", "bridge"]);
      await sh(["ip", "addr", "add", `${lab.hostIp}/24`, "dev", lab.bridge]);
      await sh(["ip", "link", "set", lab.bridge, "up"]);
      for (const n of nodes) {
        const host = `${prefix}-h${n.index}`;
        const peer = `${prefix}-p${n.index}`;
        await sh(["ip", "netns", "add", n.ns]);
        await sh(["ip", "link", "add", host, "type", "veth", "peer", "name", peer]);
        await sh(["ip", "link", "set", peer, "netns", n.ns]);
        await sh(["ip", "link", "set", peer, "name", "eth0"], n.ns);
        await sh(["ip", "addr", "add", `${n.ip}/24`, "dev", "eth0"], n.ns);
        await sh(["ip", "link", "set", "eth0", "up"], n.ns);
        await sh(["ip", "link", "set", "lo", "up"], n.ns);
        await sh(["ip", "link", "set", host, "master", lab.bridge]);
        await sh(["ip", "link", "set", host, "up"]);
        // Egress tree: class 1:1 (default, unshaped), and one class per destination node, 1:(100 + j).
        await sh(
          ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1", "r2q", "1000"],
          n.ns,
        );
        await sh(
          ["tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", UNSHAPED_RATE],
          n.ns,
        );
        for (const m of nodes) {
          if (m.index === n.index) continue;
          await sh(
            ["tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", `1:${100 + m.index}`].concat([
              "htb",
              "rate",
              UNSHAPED_RATE,
            ]),
            n.ns,
          );
          await sh(
            ["tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32"].concat([
              "match",
              "ip",
              "dst",
              `${m.ip}/32`,
              "flowid",
              `1:${100 + m.index}`,
            ]),
            n.ns,
          );
        }
      }
      return lab;
    } catch (error) {
      await sweep(prefix);
      throw error;
    }
  }

  /** Sets (or with null clears) the fault of the directed link from -> to. */
  async setLink(from: number, to: number, fault: LinkFault | null): Promise<void> {
    const src = this.nodes[from];
    const dst = this.nodes[to];
    if (src === undefined || dst === undefined || from === to) throw new RangeError(`no link ${from} -> ${to}`);
    const classid = `1:${100 + to}`;
    const handle = `${100 + to}:`;
    const key = `${from}>${to}`;
    const rate = fault?.kind === "congest" ? `${fault.rateKbit}kbit` : UNSHAPED_RATE;
    await sh(["tc", "class", "change", "dev", "eth0", "parent", "1:", "classid", classid, "htb", "rate", rate], src.ns);
    if (fault === null) {
      if (this.faults.has(key)) {
        await sh(["tc", "qdisc", "del", "dev", "eth0", "parent", classid], src.ns).catch(() => undefined);
      }
      this.faults.delete(key);
      return;
    }
    const leaf =
      fault.kind === "drop"
        ? ["pfifo", "limit", "0"]
        : fault.kind === "congest"
          ? ["pfifo", "limit", String(fault.queuePackets)]
          : ["netem", "delay", `${fault.delayMs}ms`, `${fault.jitterMs}ms`, "loss", `${fault.lossPercent}%`];
    await sh(["tc", "qdisc", "replace", "dev", "eth0", "parent", classid, "handle", handle, ...leaf], src.ns);
    this.faults.set(key, fault);
  }

  /** No traffic between the two groups, in either direction. */
  async partition(a: readonly number[], b: readonly number[]): Promise<void> {
    for (const i of a) {
      for (const j of b) {
        await this.setLink(i, j, { kind: "drop" });
        await this.setLink(j, i, { kind: "drop" });
      }
    }
  }

  /** The same fault on every link between nodes (both directions). */
  async setAll(fault: LinkFault | null): Promise<void> {
    for (const a of this.nodes) {
      for (const b of this.nodes) if (a.index !== b.index) await this.setLink(a.index, b.index, fault);
    }
  }

  /**
   * Drops `percent` % of the packets each node sends to the other nodes, at random (iptables statistic; the harness's
   * bridge address is spared, so RPC and status keep working); 0 removes it. Independent of the htb link faults.
   */
  async setRandomLoss(percent: number): Promise<void> {
    if (percent < 0 || percent >= 100) throw new RangeError(`loss ${percent}% outside [0, 100)`);
    for (const n of this.nodes) {
      await sh(["iptables", "-F", "OUTPUT"], n.ns);
      if (percent === 0) continue;
      for (const peer of this.nodes) {
        if (peer.index === n.index) continue;
        const probability = (percent / 100).toFixed(4);
        const match = ["-m", "statistic", "--mode", "random", "--probability", probability];
        await sh(["iptables", "-A", "OUTPUT", "-d", peer.ip, ...match, "-j", "DROP"], n.ns);
      }
    }
    this.randomLossPercent = percent;
  }

  /** Packets dropped so far by the random-loss rules (iptables counters of every node's OUTPUT chain). */
  async randomLossDrops(): Promise<number> {
    let total = 0;
    for (const n of this.nodes) {
      const out = await sh(["iptables", "-L", "OUTPUT", "-n", "-v", "-x"], n.ns);
      for (const line of out.split("\n")) {
        const fields = line.trim().split(/\s+/);
        if (fields[2] === "DROP") total += Number(fields[0]);
      }
    }
    return total;
  }

  /** Clears every fault. */
  async heal(): Promise<void> {
    if (this.randomLossPercent > 0) await this.setRandomLoss(0);
    for (const key of [...this.faults.keys()]) {
      const [from, to] = key.split(">").map(Number);
      await this.setLink(from ?? -1, to ?? -1, null);
    }
  }

  async destroy(): Promise<void> {
    await sweep(this.prefix);
  }
}
