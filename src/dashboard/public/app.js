// The node dashboard: polls /api/dashboard every second and renders it. Every value from the node goes into the
// page through textContent (or a title attribute), never parsed as markup, so names and other data cannot inject
// any. The charts (uPlot) keep up to MAX_POINTS blocks seen since the page was opened.

(() => {
  const POLL_MS = 1000;
  const MAX_POINTS = 600;
  const CERT_COLUMNS = 20;
  const CERT_ROWS = 20;

  const byId = (id) => document.getElementById(id);
  const setText = (id, text) => {
    const node = byId(id);
    if (node !== null) node.textContent = String(text);
  };
  const make = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  };
  const short = (hex) => {
    if (typeof hex !== "string") return "-";
    return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex;
  };
  const nameOf = (name, address) => (typeof name === "string" && name !== "" ? name : short(address));
  const seconds = (ms) => (ms === null || ms === undefined ? "-" : `${(ms / 1000).toFixed(1)} s ago`);
  const bytes = (n) => {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  };

  /** height -> { t: block time in s, tps, finalityMs } */
  const points = new Map();
  const plots = { tps: null, latency: null };

  function chartWidth(container) {
    return Math.max(280, Math.floor(container.clientWidth) - 8);
  }

  function makePlot(containerId, label, stroke) {
    const container = byId(containerId);
    if (container === null || typeof uPlot !== "function") return null;
    const opts = {
      width: chartWidth(container),
      height: 220,
      scales: { x: { time: true } },
      series: [{}, { label, stroke, width: 1.5, spanGaps: false }],
      axes: [{}, { size: 60 }],
      legend: { show: true },
    };
    return new uPlot(opts, [[], []], container);
  }

  function updateCharts(blocks) {
    for (const b of blocks) {
      if (!points.has(b.height)) {
        points.set(b.height, { t: b.timestampMs / 1000, tps: b.tps, finalityMs: b.finalityMs });
      } else if (b.finalityMs !== null) {
        points.get(b.height).finalityMs = b.finalityMs;
      }
    }
    const heights = [...points.keys()].sort((a, b) => a - b);
    while (heights.length > MAX_POINTS) points.delete(heights.shift());
    const xs = heights.map((h) => points.get(h).t);
    if (plots.tps === null) plots.tps = makePlot("tps-chart", "tx/s", "#2f6fdf");
    if (plots.latency === null) plots.latency = makePlot("latency-chart", "ms", "#c2410c");
    plots.tps?.setData([xs, heights.map((h) => points.get(h).tps)]);
    plots.latency?.setData([xs, heights.map((h) => points.get(h).finalityMs)]);
  }

  function renderValidators(d) {
    const certs = d.blocks.slice(0, CERT_COLUMNS);
    const head = byId("validators-head");
    while (head.children.length > 5) head.removeChild(head.lastChild);
    for (const b of certs) head.appendChild(make("th", b.height, "cert-col"));
    const total = Number(d.totalVotingPower);
    const body = byId("validators").tBodies[0];
    const rows = [];
    for (const v of d.validators) {
      const tr = make("tr");
      if (v.self) tr.className = "self";
      tr.appendChild(make("td", `${nameOf(v.name, v.address)}${v.self ? " (this node)" : ""}`));
      tr.appendChild(make("td", short(v.address), "mono"));
      tr.appendChild(make("td", v.votingPower, "num"));
      tr.appendChild(make("td", total > 0 ? `${((100 * Number(v.votingPower)) / total).toFixed(1)}%` : "-", "num"));
      const address = v.address.toLowerCase();
      let signed = 0;
      const cells = certs.map((b) => {
        const did = b.signers.some((s) => s.toLowerCase() === address);
        if (did) signed++;
        const td = make("td", did ? "●" : "·", did ? "cert-col signed" : "cert-col missed");
        td.title = `height ${b.height}: ${did ? "signed" : "not in the certificate"}`;
        return td;
      });
      tr.appendChild(make("td", `${signed}/${certs.length}`, "num"));
      for (const td of cells) tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderBlocks(d) {
    const names = new Map(d.validators.map((v) => [v.address.toLowerCase(), nameOf(v.name, v.address)]));
    const body = byId("certificates").tBodies[0];
    const rows = d.blocks.slice(0, CERT_ROWS).map((b) => {
      const tr = make("tr");
      tr.appendChild(make("td", b.height, "num"));
      tr.appendChild(make("td", b.round, "num"));
      const hash = make("td", short(b.hash), "mono");
      hash.title = b.hash;
      tr.appendChild(hash);
      tr.appendChild(make("td", nameOf(b.proposerName, b.proposer)));
      tr.appendChild(make("td", b.transactions, "num"));
      tr.appendChild(make("td", b.signers.map((s) => names.get(s.toLowerCase()) ?? short(s)).join(", ")));
      tr.appendChild(make("td", `${b.signingPower}/${b.totalPower}`, "num"));
      tr.appendChild(make("td", b.finalityMs === null ? "-" : b.finalityMs, "num"));
      return tr;
    });
    body.replaceChildren(...rows);
  }

  function renderL1(l1) {
    const card = byId("l1");
    if (!l1.configured) {
      setText("l1", "not configured");
      setText("l1-detail", "no l1 section in the node config");
      card.className = "big muted";
      return;
    }
    const age = l1.lastUpdateMs === null ? "never answered" : `updated ${seconds(Date.now() - l1.lastUpdateMs)}`;
    setText("l1", l1.headBlock === null ? "-" : `#${l1.headBlock}`);
    setText("l1-detail", l1.connected ? `chain ${l1.chainId} · ${age}` : `down: ${l1.error ?? "?"} · ${age}`);
    card.className = l1.connected ? "big ok" : "big bad";
  }

  function render(d) {
    const self = d.validators.find((v) => v.self);
    setText("node-name", self ? nameOf(self.name, self.address) : d.node.role);
    setText("chain-id", d.node.chainId);
    setText("role", d.node.role);
    setText("peer-id", short(d.node.peerId));
    byId("peer-id").title = d.node.peerId;
    const c = d.consensus;
    setText("head-height", c.headHeight);
    setText("last-commit", seconds(c.lastCommitAgoMs));
    setText("height", c.height);
    setText("round", c.round);
    setText("step", c.step);
    setText("proposer", c.proposer === null ? "-" : nameOf(c.proposerName, c.proposer));
    setText("peers", d.peers.count);
    byId("peers").title = d.peers.ids.join("\n");
    setText("mempool", `${d.mempool.count} txs`);
    setText("mempool-bytes", bytes(d.mempool.bytes));
    renderL1(d.l1);
    renderValidators(d);
    renderBlocks(d);
    updateCharts(d.blocks);
    setText("updated", `updated ${new Date(d.generatedAtMs).toLocaleTimeString()}`);
  }

  function connection(ok, detail) {
    const badge = byId("conn");
    badge.textContent = ok ? "live" : `no answer (${detail})`;
    badge.className = ok ? "badge ok" : "badge bad";
  }

  async function poll() {
    try {
      const res = await fetch("/api/dashboard", { cache: "no-store" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      render(await res.json());
      connection(true, "");
    } catch (err) {
      connection(false, err instanceof Error ? err.message : String(err));
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  window.addEventListener("resize", () => {
    for (const [key, id] of [
      ["tps", "tps-chart"],
      ["latency", "latency-chart"],
    ]) {
      const container = byId(id);
      if (plots[key] !== null && container !== null) plots[key].setSize({ width: chartWidth(container), height: 220 });
    }
  });

  void poll();
})();
