// Tandem status page: polls /api/status every second and draws it.
// Everything that comes from the daemon (configuration labels, reasons, addresses) goes into
// the page through textContent or as attribute values, never as markup.
"use strict";

const POLL_MS = 1000;
const TIMEOUT_MS = 2500;
// The page calls the node unreachable after this long without an answer.
const STALE_MS = 3000;

let lastOk = null; // Date.now() of the last good answer
let lastStatus = null;
let failing = null; // the last error text while the node does not answer

function $(sel, root) {
  return (root || document).querySelector(sel);
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function setText(sel, text, root) {
  const e = $(sel, root);
  if (e) e.textContent = text === undefined || text === null || text === "" ? "-" : String(text);
  return e;
}

function clockTime(ms) {
  const d = new Date(ms);
  return d.toISOString().slice(11, 19) + " UTC";
}

function duration(seconds) {
  if (seconds === undefined || seconds === null) return "-";
  let s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

function setState(dd, state) {
  dd.textContent = state || "-";
  dd.className = "state state-" + (state ? String(state).replace(/[^A-Za-z]/g, "") : "unknown");
  dd.dataset.state = state || "";
}

function renderPair(st) {
  const ha = st.highavailability || {};
  const node = st.node || {};
  const self = $("#node-self");
  setText(".addr", node.nfa, self);
  setState($(".state", self), ha.state);
  setText(".sub-state", ha.sub_state, self);
  setText(".role", ha.role || (ha.configured ? "-" : "stand-alone"), self);
  setText(".sync", ha.sync ? ha.sync.state : null, self);
  setText(".packetio", node.packetio, self);
  setText(".takeover", ha.takeover, self);

  const p = ha.partner;
  const partner = $("#node-partner");
  if (!p) {
    setText(".addr", null, partner);
    setState($(".state", partner), null);
    $(".state", partner).textContent = ha.configured ? "not heard" : "no partner (stand-alone)";
    for (const c of [".sub-state", ".role", ".last-heard", ".config", ".version"]) {
      setText(c, null, partner);
    }
    return;
  }
  setText(".addr", p.address, partner);
  const stateDd = $(".state", partner);
  setState(stateDd, p.state);
  if (p.contact && p.contact !== "ok") {
    stateDd.textContent = p.state + " (last known; contact " + p.contact + ")";
    stateDd.className = "state state-unknown";
  }
  setText(".sub-state", p.sub_state, partner);
  setText(".role", p.role, partner);
  setText(".last-heard", (p.last_heard_ms / 1000).toFixed(1) + " s ago", partner);
  setText(".config", p.config_matches ? "same as this node" : "DIFFERS from this node", partner);
  setText(".version", p.version + (p.compatible ? "" : " (incompatible)"), partner);

  const warnings = $("#warnings");
  warnings.replaceChildren(...(ha.warnings || []).map((w) => el("li", w)));
}

function cell(text, cls) {
  return el("td", text === undefined || text === null ? "-" : text, cls);
}

function fillTable(id, rows, cells) {
  const body = $("#" + id + " tbody");
  const trs = (rows || []).map((r) => {
    const tr = document.createElement("tr");
    for (const c of cells(r)) tr.appendChild(c);
    return tr;
  });
  if (trs.length === 0) {
    const tr = document.createElement("tr");
    const td = el("td", "none", "empty");
    td.colSpan = $("#" + id + " thead tr").children.length;
    tr.appendChild(td);
    trs.push(tr);
  }
  body.replaceChildren(...trs);
}

function renderTables(st) {
  fillTable("clusters", st.clusters, (r) => [
    cell(r.cluster),
    cell(r.label || "", "label"),
    cell((r.ports || []).join("+") || "-"),
    cell(r.active, "num"),
    cell(r.total, "num"),
    cell(r.packets, "num"),
    cell(r.bytes, "num"),
  ]);
  fillTable("ports", st.ports, (r) => [
    cell(r.cluster),
    cell(r.port, "num"),
    cell(r.method),
    cell(r.protocol),
    cell(r.selectionalgorithm),
    cell(r.servers, "num"),
    cell(r.active, "num"),
    cell(r.total, "num"),
    cell(r.packets, "num"),
  ]);
  fillTable("servers", st.servers, (r) => [
    cell(r.cluster),
    cell(r.port, "num"),
    cell(r.server),
    cell(r.label || "", "label"),
    cell(r.weight, "num"),
    cell(r.configured_weight, "num"),
    cell(r.weight_source),
    cell(r.state, "srv-" + String(r.state || "").split(" ")[0]),
    cell(r.active, "num"),
    cell(r.total, "num"),
  ]);
}

function renderTimeline(st) {
  const ha = st.highavailability || {};
  const now = (st.node && st.node.time_ms) || Date.now();
  const items = (ha.transitions || []).map((t) => {
    const li = document.createElement("li");
    li.dataset.from = t.from;
    li.dataset.to = t.to;
    li.appendChild(el("time", clockTime(now - t.age_ms)));
    li.appendChild(el("span", t.from + " \u2192 " + t.to, "change"));
    li.appendChild(el("span", " (" + t.reason + ")", "reason"));
    return li;
  });
  if (items.length === 0) items.push(el("li", "no transition yet", "empty"));
  $("#timeline").replaceChildren(...items);

  const events = (ha.events || [])
    .slice()
    .sort((a, b) => a[0] - b[0])
    .slice(0, 30)
    .map(([age, text]) => {
      const li = document.createElement("li");
      li.appendChild(el("time", clockTime(now - age)));
      li.appendChild(el("span", text));
      return li;
    });
  $("#events").replaceChildren(...events);
}

// Forwarded packets per second (from the cumulative counter) and active connections.
function series(history) {
  const rate = [];
  const conns = [];
  for (let i = 0; i < history.length; i++) {
    const h = history[i];
    conns.push([h.t_ms, h.connections_active]);
    if (i > 0) {
      const prev = history[i - 1];
      const dt = (h.t_ms - prev.t_ms) / 1000;
      const df = h.frames_forwarded - prev.frames_forwarded;
      // A counter that went back (restart) gives no rate for that step.
      if (dt > 0 && df >= 0) rate.push([h.t_ms, df / dt]);
    }
  }
  return { rate, conns };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// An axis label: whole numbers, with decimals on a small scale (0, 0.25, 0.5...).
function tick(v, max) {
  return max >= 4 ? String(Math.round(v)) : String(Math.round(v * 100) / 100);
}

function drawChart(st) {
  const canvas = $("#chart");
  const ctx = canvas.getContext("2d");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 900;
  const h = canvas.clientHeight || 220;
  if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
  if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 56, r: 56, t: 10, b: 22 };
  const history = st.history || [];
  const { rate, conns } = series(history);
  const now = (st.node && st.node.time_ms) || Date.now();
  const t0 = history.length ? Math.min(history[0].t_ms, now - 60000) : now - 60000;
  const x = (t) => pad.l + ((t - t0) / Math.max(1, now - t0)) * (w - pad.l - pad.r);
  const rMax = niceMax(Math.max(0, ...rate.map((p) => p[1])));
  const cMax = niceMax(Math.max(0, ...conns.map((p) => p[1])));
  const y = (v, max) => h - pad.b - (v / max) * (h - pad.t - pad.b);

  ctx.strokeStyle = "#d5dbe1";
  ctx.fillStyle = "#5f6b76";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const yy = y((rMax * i) / 4, rMax);
    ctx.beginPath();
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(w - pad.r, yy);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(tick((rMax * i) / 4, rMax), pad.l - 4, yy + 4);
    ctx.textAlign = "left";
    ctx.fillText(tick((cMax * i) / 4, cMax), w - pad.r + 4, yy + 4);
  }
  ctx.textAlign = "center";
  for (let m = 0; now - m * 60000 >= t0; m++) {
    const xx = x(now - m * 60000);
    ctx.fillText(m === 0 ? "now" : "-" + m + " min", xx, h - 6);
  }
  const line = (pts, max, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v, max)) : ctx.moveTo(x(t), y(v, max))));
    ctx.stroke();
  };
  line(rate, rMax, "#0969da");
  line(conns, cMax, "#bf3989");
}

function render(st) {
  const node = st.node || {};
  setText("#node-name", node.nfa || "(no nfa)");
  setText("#version", node.version);
  setText("#packetio", node.packetio);
  setText("#uptime", duration(node.uptime_seconds));
  renderPair(st);
  renderTables(st);
  renderTimeline(st);
  drawChart(st);
}

function showHealth() {
  const banner = $("#banner");
  const stale = lastOk === null || Date.now() - lastOk > STALE_MS;
  setText("#last-update", lastOk === null ? "never" : clockTime(lastOk));
  document.body.dataset.stale = stale && failing !== null ? "yes" : "no";
  if (failing !== null && stale) {
    const who = lastStatus && lastStatus.node && lastStatus.node.nfa ? lastStatus.node.nfa : "this node";
    banner.textContent =
      "The node " + who + " is not answering (" + failing + "). " +
      (lastOk === null ? "No data yet." : "Data shown is from " + clockTime(lastOk) + ".");
    banner.hidden = false;
  } else {
    banner.hidden = true;
    banner.textContent = "";
  }
}

async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const res = await fetch("/api/status", { cache: "no-store", signal: ctl.signal });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const st = await res.json();
    lastOk = Date.now();
    lastStatus = st;
    failing = null;
    render(st);
  } catch (e) {
    failing = e && e.name === "AbortError" ? "no answer in " + TIMEOUT_MS / 1000 + " s" : String(e && e.message ? e.message : e);
  } finally {
    clearTimeout(timer);
    showHealth();
    setTimeout(poll, POLL_MS);
  }
}

window.addEventListener("resize", () => lastStatus && drawChart(lastStatus));
poll();
