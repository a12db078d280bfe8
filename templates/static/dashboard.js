// The node dashboard: renders each snapshot from /events (one a second).
// All data goes into the page as text (Yak.el / textContent), never markup.
"use strict";

(() => {
  const { el, $, fmt } = Yak;
  const COLOURS = ["#4f46e5", "#16a34a", "#dc2626", "#d97706", "#0891b2", "#9333ea", "#db2777", "#65a30d"];
  const LAG_COLOUR = "#64748b";
  let last = null;
  let lastAt = 0;

  function text(id, value) {
    const node = document.getElementById(id);
    if (node) node.textContent = value;
  }

  function renderHero(s) {
    const role = $("#role");
    role.dataset.role = s.node.role;
    role.textContent = s.node.role.toUpperCase();
    text("node-url", s.node.url);
    const line = $("#leader-line");
    if (s.node.role === "leader") {
      line.replaceChildren("This node leads and acknowledges writes.");
    } else if (s.node.leader_url) {
      line.replaceChildren("Following ", el("a", { href: s.node.leader_url + "/", text: s.node.leader_id }), " at ", s.node.leader_url + ".");
    } else if (s.node.role === "fenced") {
      line.replaceChildren("Fenced: its lease could not be renewed in time, so it acknowledges nothing.");
    } else {
      line.replaceChildren("No leader is known right now.");
    }
    text("epoch", fmt.int(s.node.epoch));
    text("lease-holder", s.node.lease_holder || "none");
    text("lease-left", s.node.lease_ttl_ms === null ? "–" : (s.node.lease_ttl_ms / 1000).toFixed(1) + " s");
    text("redis", s.node.redis_ok ? "reachable" : "unreachable");
    $("#redis").style.color = s.node.redis_ok ? "var(--ok)" : "var(--bad)";
    text("uptime", fmt.duration(s.node.uptime_s));
    text("produced", fmt.int(s.produced_total));
    text("consumed", fmt.int(s.consumed_total));
  }

  function renderNodes(s) {
    const rows = s.nodes.map((n) => {
      const age = Math.max(0, s.at_ms - n.heartbeat_ms);
      return el("tr", { class: age > 3000 ? "stale" : null },
        el("td", {}, el("a", { href: n.url + "/", text: n.id }), n.id === s.node.id ? " (this node)" : ""),
        el("td", { class: "mono", text: n.url }),
        el("td", { text: n.role }),
        el("td", { class: "num", text: fmt.int(n.epoch) }),
        el("td", { class: "num", text: (age / 1000).toFixed(1) + " s ago" }));
    });
    $("#nodes").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "table-empty", text: "no nodes registered (is Redis reachable?)" }))]));
  }

  /** A topic's retention rule, in words. */
  function retentionRule(config) {
    const parts = [];
    if (config && config.retention_bytes) parts.push("≤ " + fmt.bytes(config.retention_bytes));
    if (config && config.retention_ms) parts.push("≤ " + (config.retention_ms / 1000).toLocaleString() + " s old");
    return parts.length ? "keeps " + parts.join(", ") : "keeps everything";
  }

  function renderPartitions(s) {
    const rows = [];
    for (const t of s.topics) {
      for (const p of t.partitions) {
        const followers = p.followers.length
          ? p.followers.map((f) => f.id + " @" + fmt.int(f.offset) + " lag " + fmt.int(f.lag) + (f.in_sync ? "" : " (out of ISR)")).join(", ")
          : s.node.role === "leader" ? "none" : "(known to the leader)";
        rows.push(el("tr", { "data-topic": t.name, "data-partition": p.partition },
          el("td", {}, t.name, p.partition === 0 ? el("div", { class: "card-sub retention", text: retentionRule(t.config) }) : ""),
          el("td", { class: "num", text: p.partition }),
          el("td", { class: "num", text: fmt.int(p.log_start_offset) }),
          el("td", { class: "num log-end", text: fmt.int(p.log_end_offset) }),
          el("td", { class: "num hwm", text: fmt.int(p.high_water_mark) }),
          el("td", { class: "mono isr" }, p.isr.join(", ") || "–",
            p.isr.length < p.replicas
              ? el("span", { class: "badge under-replicated", "data-state": "under-replicated", title: "fewer replicas in sync than live nodes", text: p.isr.length + " of " + p.replicas + " in sync" })
              : ""),
          el("td", { class: "mono", text: followers }),
          el("td", { class: "num", text: fmt.bytes(p.size_bytes) })));
      }
    }
    $("#partitions").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 8, class: "table-empty", text: "no topics yet" }))]));
  }

  /** The consumer groups of the cluster (a node that does not report them
   *  shows none). */
  function renderGroups(s) {
    const groups = s.groups || [];
    const rows = groups.map((g) =>
      el("tr", { "data-group": g.group },
        el("td", { class: "mono", text: g.group }),
        el("td", {}, el("span", { class: "badge group-state", "data-state": g.state, text: g.state })),
        el("td", { class: "num", text: fmt.int(g.generation) }),
        el("td", { class: "num members", text: fmt.int(g.members) }),
        el("td", { class: "mono", text: g.topics.join(", ") || "–" }),
        el("td", { class: "num lag", text: fmt.int(g.lag) })));
    $("#groups").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "table-empty", text: "no consumer groups" }))]));
  }

  function renderActivity(s) {
    // Kinds not named here (a group's changes, topic creation, …) get the
    // neutral dot; yak.css gives "group" its own colour.
    const level = { error: "error", step_down: "warn", fenced: "error", isr_shrink: "warn", truncation: "warn", election: "ok", isr_expand: "ok" };
    const items = s.activity.map((a) =>
      el("li", { "data-level": level[a.kind] || null, "data-kind": a.kind },
        el("span", { class: "dot" }),
        el("time", { datetime: fmt.iso(a.at_ms), text: fmt.time(a.at_ms) }),
        el("span", {}, el("strong", { text: a.kind + " " }), a.message)));
    $("#activity").replaceChildren(...(items.length ? items : [el("li", { class: "log-empty", text: "nothing yet" })]));
  }

  /** Draws series (arrays of numbers or nulls) as lines in an SVG 600×150. */
  function chart(svg, legend, series) {
    const W = 600, H = 150, LEFT = 44, BOTTOM = 16, TOP = 8;
    const values = series.flatMap((s) => s.values.filter((v) => v !== null));
    const max = Math.max(1, ...values) * 1.1;
    const n = Math.max(2, ...series.map((s) => s.values.length));
    const x = (i) => LEFT + (i * (W - LEFT - 4)) / (n - 1);
    const y = (v) => TOP + (H - TOP - BOTTOM) * (1 - v / max);
    const ns = "http://www.w3.org/2000/svg";
    const make = (tag, attrs, content) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (content !== undefined) node.textContent = content;
      return node;
    };
    const parts = [];
    for (const f of [0, 0.5, 1]) {
      const v = max * f;
      parts.push(make("line", { class: "grid", x1: LEFT, x2: W, y1: y(v), y2: y(v) }));
      parts.push(make("text", { x: LEFT - 6, y: y(v) + 4, "text-anchor": "end" }, v >= 100 ? Math.round(v) : v.toFixed(1)));
    }
    parts.push(make("text", { x: LEFT, y: H - 2 }, "−" + (n - 1) + " s"));
    parts.push(make("text", { x: W - 4, y: H - 2, "text-anchor": "end" }, "now"));
    for (const s of series) {
      let points = [];
      const flush = () => {
        if (points.length > 1) parts.push(make("polyline", { points: points.join(" "), stroke: s.colour }));
        points = [];
      };
      const offset = n - s.values.length;
      s.values.forEach((v, i) => (v === null ? flush() : points.push(x(i + offset).toFixed(1) + "," + y(v).toFixed(1))));
      flush();
    }
    svg.replaceChildren(...parts);
    legend.replaceChildren(...series.map((s) => {
      const latest = [...s.values].reverse().find((v) => v !== null);
      // Through the CSSOM: the content security policy refuses style attributes.
      const swatch = el("i");
      swatch.style.background = s.colour;
      return el("span", {}, swatch, s.label + " ", el("strong", { text: latest === undefined ? "–" : s.format(latest) }));
    }));
  }

  function renderCharts(s) {
    const rate = [
      { label: "produce total", values: s.series.produce_total, colour: COLOURS[0], format: fmt.rate },
      { label: "consume total", values: s.series.consume_total, colour: COLOURS[1], format: fmt.rate },
    ];
    Object.entries(s.series.produce_by_topic).forEach(([topic, values], i) => {
      if (Object.keys(s.series.produce_by_topic).length > 1) {
        rate.push({ label: "produce " + topic, values, colour: COLOURS[(i + 2) % COLOURS.length], format: fmt.rate });
      }
    });
    chart($("#chart-rate"), $("#legend-rate"), rate);
    const ms = (v) => v.toFixed(2) + " ms";
    chart($("#chart-repl"), $("#legend-repl"), [
      { label: "p50", values: s.series.replication_p50_ms, colour: COLOURS[0], format: ms },
      { label: "p99", values: s.series.replication_p99_ms, colour: COLOURS[2], format: ms },
      { label: "max lag", values: s.series.max_follower_lag, colour: LAG_COLOUR, format: fmt.int },
    ]);
  }

  function render(s) {
    last = s;
    lastAt = Date.now();
    $("#down").hidden = true;
    renderHero(s);
    renderNodes(s);
    renderPartitions(s);
    renderCharts(s);
    renderGroups(s);
    renderActivity(s);
    $("#partitions-note").textContent = s.node.role === "leader"
      ? "as the leader holds them: ISR and each follower's offset and lag"
      : "as this follower holds them; the leader's dashboard shows follower lag";
  }

  /** When the node stops answering, say so and offer the others. */
  function watchdog() {
    if (!last || Date.now() - lastAt < 4000) return;
    const role = $("#role");
    role.dataset.role = "down";
    role.textContent = "DOWN";
    const others = last.nodes.filter((n) => n.id !== last.node.id);
    $("#down-links").replaceChildren(...(others.length
      ? others.map((n) => el("a", { href: n.url + "/", text: n.id + " (" + n.url + ")" }))
      : ["none known"]));
    $("#down").hidden = false;
  }

  // The client token, once typed in (the control calls of a guarded
  // cluster carry it too).
  let clientToken = sessionStorage.getItem("yak-token");

  /**
   * Demo controls (a `yak up` cluster only): kill -9 or restart this node
   * through yak up's supervisor, which answers while this node is dead.
   */
  function demoControls() {
    const card = $("#demo");
    if (!card) return;
    const base = card.dataset.controlUrl + "/procs/" + encodeURIComponent(card.dataset.node);
    const call = async (action, button) => {
      button.disabled = true;
      text("demo-status", action === "kill" ? "killing…" : "restarting…");
      try {
        const headers = clientToken ? { Authorization: "Bearer " + clientToken } : {};
        const answer = await fetch(base + "/" + action, { method: "POST", headers });
        const body = await answer.json().catch(() => ({}));
        text("demo-status", answer.ok
          ? (action === "kill" ? "killed (pid " + body.pid + "); the page turns DOWN in a few seconds" : "restarted (pid " + body.pid + ")")
          : (body.message || "the supervisor answered " + answer.status));
      } catch (_) {
        text("demo-status", "yak up's supervisor is not reachable at " + card.dataset.controlUrl);
      } finally {
        button.disabled = false;
      }
    };
    $("#demo-kill").addEventListener("click", (e) => call("kill", e.currentTarget));
    $("#demo-restart").addEventListener("click", (e) => call("restart", e.currentTarget));
  }

  // A node started with --client-token answers 401 without it. EventSource
  // cannot send headers, so the page asks for the token once and trades it
  // at POST /session for an HttpOnly cookie that the stream then carries.
  async function start() {
    let status = 0;
    try {
      status = (await fetch("/stats")).status;
    } catch (_) {
      // Unreachable now: the stream below retries on its own.
    }
    if (status !== 401) {
      Yak.connect("/events", { stats: render });
      return;
    }
    const login = $("#login");
    login.hidden = false;
    $("#login-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = $("#login-token").value;
      const answer = await fetch("/session", { method: "POST", headers: { Authorization: "Bearer " + token } });
      if (answer.ok) {
        clientToken = token;
        sessionStorage.setItem("yak-token", token);
        login.hidden = true;
        Yak.connect("/events", { stats: render });
      } else {
        text("login-error", "That is not this node's client token.");
      }
    });
  }

  demoControls();
  start();
  setInterval(watchdog, 1000);
})();
