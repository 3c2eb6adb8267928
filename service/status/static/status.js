// The udpd status page: polls status.json once a second, keeps the last
// 15 minutes of per-second rates, and draws the table and the charts as
// plain SVG. No library, nothing loaded from elsewhere.
"use strict";

const WINDOW = 900; // seconds of history kept and drawn
const MAX_CHARTS = 48; // per-listener charts drawn (the JSON has them all)
const SVG = "http://www.w3.org/2000/svg";

// The history as the page holds it: one time per sample (Unix ms), and
// per series arrays of the same length.
const state = { times: [], total: null, listeners: new Map(), updates: 0, polled: 0 };

function emptySeries(n) {
  return { received: new Array(n).fill(0), sent: new Array(n).fill(0), dropped: new Array(n).fill(0) };
}

function pushSample(dst, src, i) {
  for (const k of ["received", "sent", "dropped"]) dst[k].push(src ? src[k][i] : 0);
}

// merge adds the samples of doc.history newer than those held, follows
// listeners that came and went, and drops what is older than WINDOW.
function merge(h) {
  const last = state.times.length ? state.times[state.times.length - 1] : -Infinity;
  const ids = new Set(Object.keys(h.listeners));
  for (const id of [...state.listeners.keys()]) if (!ids.has(id)) state.listeners.delete(id);
  for (const id of ids) if (!state.listeners.has(id)) state.listeners.set(id, emptySeries(state.times.length));
  if (!state.total) state.total = emptySeries(state.times.length);
  h.times.forEach((t, i) => {
    if (t <= last) return;
    state.times.push(t);
    pushSample(state.total, h.total, i);
    for (const [id, s] of state.listeners) pushSample(s, h.listeners[id], i);
  });
  const extra = state.times.length - WINDOW;
  if (extra > 0) {
    state.times.splice(0, extra);
    for (const s of [state.total, ...state.listeners.values()]) {
      for (const k of ["received", "sent", "dropped"]) s[k].splice(0, extra);
    }
  }
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
function niceCeil(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 1e9) return (v / 1e9).toFixed(v >= 1e10 ? 0 : 1) + "G";
  if (v >= 1e6) return (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + "M";
  if (v >= 1e4) return (v / 1e3).toFixed(0) + "k";
  if (v >= 100 || Number.isInteger(v)) return v.toFixed(0);
  return v.toFixed(1);
}

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// drawChart draws three lines (in, out, dropped) of series s over the
// last WINDOW seconds into container, replacing what was there.
function drawChart(container, s, w, h) {
  const pad = { l: 44, r: 8, t: 8, b: 18 };
  const end = state.times.length ? state.times[state.times.length - 1] : Date.now();
  const start = end - WINDOW * 1000;
  const lines = [["in", s.received], ["out", s.sent], ["drop", s.dropped]];
  const top = niceCeil(Math.max(0, ...lines.flatMap(([, v]) => v)));
  const x = (t) => pad.l + ((t - start) / (WINDOW * 1000)) * (w - pad.l - pad.r);
  const y = (v) => pad.t + (1 - v / top) * (h - pad.t - pad.b);

  const svg = el("svg:svg", { viewBox: `0 0 ${w} ${h}`, role: "img" });
  for (const v of [0, top / 2, top]) {
    svg.append(el("svg:line", { class: "axis", x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v) }));
    svg.append(el("svg:text", { x: pad.l - 4, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  for (const m of [15, 10, 5, 0]) {
    const label = m === 0 ? "now" : `-${m}m`;
    svg.append(el("svg:text", { x: x(end - m * 60000), y: h - 4, "text-anchor": m === 0 ? "end" : "middle" }, label));
  }
  for (const [cls, values] of lines) {
    const pts = state.times.map((t, i) => `${x(t).toFixed(1)},${y(values[i]).toFixed(1)}`).join(" ");
    svg.append(el("svg:polyline", { class: cls, points: pts }));
  }
  container.replaceChildren(svg);
}

function last(a) {
  return a && a.length ? a[a.length - 1] : 0;
}

function drawTable(doc) {
  const body = document.querySelector("#listeners tbody");
  const rows = doc.listeners.map((l) => {
    const s = state.listeners.get(l.id);
    const c = l.counters;
    const tr = el("tr", { "data-id": l.id });
    const cells = [
      [l.id], [l.address], [l.boundAddress], [l.workers, "n"], [l.state], [l.generation, "n"],
      [fmt(last(s && s.received)), "n in"], [fmt(last(s && s.sent)), "n out"], [fmt(last(s && s.dropped)), "n drop"],
      [c.datagramsReceived, "n received"], [c.datagramsSent, "n sent"], [c.bytesReceived, "n"], [c.bytesSent, "n"],
      [c.repliesTooLarge, "n"], [c.sendErrors, "n"], [c.loopBlocked, "n"],
      [c.rateLimited, "n"], [c.kernelDrops, "n"], [c.readErrors, "n"],
    ];
    cells.forEach(([v, cls], i) => {
      const td = el("td", cls ? { class: cls } : {}, String(v));
      if (i >= 13 && v > 0) td.classList.add("hot");
      tr.append(td);
    });
    return tr;
  });
  body.replaceChildren(...rows);
  const t = doc.total;
  const foot = el("tr");
  foot.append(el("td", { colspan: 6 }, "total (stopped listeners included)"));
  for (const v of [fmt(last(state.total.received)), fmt(last(state.total.sent)), fmt(last(state.total.dropped)),
    t.datagramsReceived, t.datagramsSent, t.bytesReceived, t.bytesSent, t.repliesTooLarge, t.sendErrors,
    t.loopBlocked, t.rateLimited, t.kernelDrops, t.readErrors]) {
    foot.append(el("td", { class: "n" }, String(v)));
  }
  document.querySelector("#listeners tfoot").replaceChildren(foot);
}

function drawCharts(doc) {
  const grid = document.getElementById("charts");
  const ids = doc.listeners.map((l) => l.id).filter((id) => state.listeners.has(id));
  const shown = ids.slice(0, MAX_CHARTS);
  const figs = shown.map((id) => {
    let fig = grid.querySelector(`figure[data-id="${CSS.escape(id)}"]`);
    if (!fig) {
      fig = el("figure", { "data-id": id });
      fig.append(el("figcaption", {}, id), el("div", { class: "chart" }));
    }
    drawChart(fig.querySelector(".chart"), state.listeners.get(id), 400, 120);
    return fig;
  });
  grid.replaceChildren(...figs);
  document.getElementById("more").textContent =
    ids.length > shown.length ? `${ids.length - shown.length} more listeners: see status.json` : "";
}

function uptime(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s % 60}s`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s % 60}s`;
}

function render(doc) {
  const health = document.getElementById("health");
  health.textContent = doc.health;
  health.className = "badge " + doc.health.toLowerCase().replace("_", "-");
  document.getElementById("version").textContent = doc.version;
  document.getElementById("uptime").textContent = uptime(doc.uptimeSeconds);
  document.getElementById("count").textContent = String(doc.listeners.length);
  document.getElementById("updated").textContent = new Date(doc.time).toLocaleTimeString();
  drawChart(document.getElementById("total-chart"), state.total, 800, 200);
  drawTable(doc);
  drawCharts(doc);
}

async function poll() {
  const err = document.getElementById("error");
  try {
    // The first request takes the whole history, later ones what came
    // since the last (a tab in the background polls less often).
    const q = state.times.length ? `?seconds=${Math.min(WINDOW, Math.ceil((performance.now() - state.polled) / 1000) + 3)}` : "";
    const resp = await fetch("status.json" + q, { cache: "no-store" });
    if (!resp.ok) throw new Error(`status.json: HTTP ${resp.status}`);
    const doc = await resp.json();
    state.polled = performance.now();
    merge(doc.history);
    render(doc);
    state.updates++;
    document.body.dataset.updates = String(state.updates);
    err.hidden = true;
  } catch (e) {
    err.textContent = `udpd is not answering (${e.message}); retrying every second.`;
    err.hidden = false;
  }
  setTimeout(poll, 1000);
}

poll();
