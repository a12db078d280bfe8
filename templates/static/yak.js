// YAK — what every page's script shares: building DOM from data (always as
// text: textContent / createElement, never markup from data), calling the
// page's JSON API, number and time formats, and the header's leader slot,
// driven by the page's one server-sent event stream.
"use strict";

const Yak = (() => {
  /** Creates an element; `props.text` becomes its text, `props.class` its
   *  class, `on*` listeners, the rest attributes. Children are nodes or
   *  strings (added as text). */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const $ = (selector, root = document) => root.querySelector(selector);

  /** An error answer of the UI's API: `{"error": code, "message": text}`. */
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Calls the page's own API; resolves to the JSON answer or throws an
   *  ApiError carrying the server's message. */
  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network", "This UI's server cannot be reached (" + e.message + ").");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const message = (data && data.message) || text || response.statusText;
      throw new ApiError(response.status, (data && data.error) || "http_" + response.status, message);
    }
    return data;
  }

  /** Shows a result line: kind is ok, error, warn or busy. */
  function show(node, kind, ...parts) {
    if (kind) node.dataset.kind = kind;
    else delete node.dataset.kind;
    node.replaceChildren(...parts.map((p) => (p instanceof Node ? p : document.createTextNode(String(p)))));
  }

  /** Shows an error (an ApiError or any Error) with its code. */
  function showError(node, error) {
    const parts = [];
    if (error && error.code && error.code !== "network") parts.push(el("span", { class: "code-tag", text: error.code }));
    parts.push(error && error.message ? error.message : String(error));
    show(node, "error", ...parts);
  }

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const fmt = {
    int: (n) => integer.format(n || 0),
    rate: (n) => (n >= 100 ? integer.format(n) : decimal.format(n || 0)) + "/s",
    bytes(n) {
      const units = ["bytes", "KB", "MB", "GB", "TB"];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) {
        n /= 1024;
        i += 1;
      }
      return (i === 0 ? integer.format(n) : decimal.format(n)) + " " + units[i];
    },
    duration(secs) {
      if (secs === null || secs === undefined || !isFinite(secs)) return "–";
      secs = Math.max(0, Math.round(secs));
      if (secs < 60) return secs + " s";
      const m = Math.floor(secs / 60);
      const s = secs % 60;
      if (m < 60) return m + " min " + String(s).padStart(2, "0") + " s";
      return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
    },
    /** HH:MM:SS.mmm, local time. */
    time(ms) {
      const d = new Date(ms);
      const two = (n) => String(n).padStart(2, "0");
      return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()) + "." + String(d.getMilliseconds()).padStart(3, "0");
    },
    iso: (ms) => new Date(ms).toISOString(),
  };

  // ----- the header's leader slot -----
  const STATE_TEXT = {
    connecting: "connecting…",
    connected: "connected",
    reconnecting: "reconnecting",
    no_leader: "no leader",
  };
  let leader = null;
  let streamUp = false;
  let everUp = false;

  function renderCluster() {
    const box = $("#cluster");
    if (!box) return;
    let state = leader ? leader.state : "connecting";
    let message = leader && leader.message;
    if (!streamUp && everUp) {
      state = "reconnecting";
      message = "lost the connection to this UI's server; retrying";
    }
    box.dataset.state = state;
    $("#cluster-state").textContent = STATE_TEXT[state] || state;
    const slot = $("#cluster-leader");
    const parts = [];
    if (leader && leader.leader_id) {
      parts.push(state === "connected" ? "leader " : "last leader ");
      parts.push(el("span", { class: "leader-id", text: leader.leader_id }));
      if (leader.leader_url) parts.push(" ", el("span", { class: "leader-url", text: leader.leader_url }));
      if (leader.epoch) parts.push(" · epoch " + leader.epoch);
    }
    slot.replaceChildren(...parts);
    box.title = message || (leader && leader.leader_url ? "leader at " + leader.leader_url : "");
  }

  /** Opens the page's event stream. `handlers` maps event names to
   *  functions of the parsed data; `leader` events (and the leader in
   *  `hello`) also drive the header. */
  function connect(path, handlers) {
    const source = new EventSource(path);
    source.addEventListener("open", () => {
      streamUp = true;
      everUp = true;
      renderCluster();
    });
    source.addEventListener("error", () => {
      streamUp = false;
      renderCluster();
    });
    const names = new Set([...Object.keys(handlers), "leader"]);
    for (const name of names) {
      source.addEventListener(name, (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        if (name === "leader") {
          leader = data;
          renderCluster();
        } else if (name === "hello" && data.leader) {
          leader = data.leader;
          renderCluster();
        }
        if (handlers[name]) handlers[name](data);
      });
    }
    return source;
  }

  return { el, $, api, ApiError, show, showError, fmt, connect };
})();
