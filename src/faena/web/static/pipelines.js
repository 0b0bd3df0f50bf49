// faena pipelines page: the pipelines the server's app declares, their runs, and one run as
// a graph (inline SVG drawn here, no library) with each step's state. Same API and token as
// the console (sessionStorage "faena.token", sent as "Authorization: Bearer").
"use strict";

const API = "/api/v1";
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = {
  succeeded: "#2e7d32", running: "#1565c0", queued: "#6a1b9a", scheduled: "#9e9e9e",
  failed: "#ef6c00", dead: "#c62828", cancelled: "#616161",
};

function token() { return sessionStorage.getItem("faena.token") || ""; }

async function api(method, path) {
  const headers = { "Accept": "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  const r = await fetch(API + path, { method, headers, credentials: "same-origin", cache: "no-store" });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) throw new Error((data && (data.detail || data.message)) || `${method} ${path}: HTTP ${r.status}`);
  return data;
}

function status(text, kind) {
  const s = document.getElementById("status");
  s.textContent = text || "";
  s.className = "status" + (kind ? " " + kind : "");
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Each step's layer: its longest path from a root (steps come in topological order).
function layers(steps) {
  const depth = {};
  for (const s of steps) depth[s.name] = Math.max(-1, ...s.upstreams.map((u) => depth[u])) + 1;
  return depth;
}

function graph(run) {
  const depth = layers(run.steps);
  const columns = {};
  for (const s of run.steps) (columns[depth[s.name]] = columns[depth[s.name]] || []).push(s);
  const W = 150, H = 44, GX = 60, GY = 18;
  const at = {};
  let rows = 0;
  for (const [col, steps] of Object.entries(columns)) {
    steps.forEach((s, i) => { at[s.name] = { x: 10 + col * (W + GX), y: 10 + i * (H + GY) }; });
    rows = Math.max(rows, steps.length);
  }
  const width = 20 + Object.keys(columns).length * (W + GX);
  const height = 20 + rows * (H + GY);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `graph of run ${run.id}` });
  for (const s of run.steps) {
    for (const u of s.upstreams) {
      const a = at[u], b = at[s.name];
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
      root.append(svg("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
        fill: "none", stroke: "#90a4ae", "stroke-width": 1.5 }));
    }
  }
  for (const s of run.steps) {
    const p = at[s.name];
    const state = s.state || "pruned";
    const g = svg("g", { "data-step": s.name, "data-state": state, "data-waiting": String(s.waiting) });
    g.append(svg("title", {}, `${s.name}: ${state}${s.error_type ? " (" + s.error_type + ")" : ""}; rule ${s.rule}`));
    g.append(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6,
      fill: COLOURS[s.state] || "#bdbdbd", opacity: s.error_type === "Skipped" ? 0.5 : 1 }));
    g.append(svg("text", { x: p.x + 8, y: p.y + 18, fill: "#fff", "font-size": 13 }, s.name));
    // a released step is scheduled and due: ready for a worker
    const label = s.waiting ? "waiting" : s.state === "scheduled" ? "ready"
      : s.error_type === "Skipped" ? "skipped" : state;
    g.append(svg("text", { x: p.x + 8, y: p.y + 36, fill: "#fff", "font-size": 11 }, label));
    root.append(g);
  }
  return root;
}

async function showRun(id) {
  const box = document.getElementById("run");
  try {
    const run = await api("GET", `/pipeline-runs/${encodeURIComponent(id)}`);
    const act = (what) => async () => {
      try { await api("POST", `/pipeline-runs/${encodeURIComponent(id)}/${what}`); status(`${what}: done`, "ok"); showRun(id); }
      catch (e) { status(e.message, "error"); }
    };
    box.replaceChildren(
      el("h2", {}, `Run ${run.key} — ${run.state}`),
      el("p", {}, el("button", { type: "button", onclick: act("retry") }, "Retry failed steps"), " ",
        el("button", { type: "button", class: "danger", onclick: act("cancel") }, "Cancel run")),
      graph(run));
  } catch (e) { status(e.message, "error"); }
}

async function showRuns(name) {
  const box = document.getElementById("runs");
  try {
    const page = await api("GET", `/pipelines/${encodeURIComponent(name)}/runs?limit=50`);
    const list = el("ul", {});
    for (const r of page.runs) {
      list.append(el("li", {}, el("a", { href: `#run=${r.id}`, onclick: (ev) => { ev.preventDefault(); showRun(r.id); } },
        `${r.key}`), ` ${r.state}, ${r.steps.length} steps`));
    }
    box.replaceChildren(el("h2", {}, `Runs of ${name}`), page.runs.length ? list : el("p", {}, "No runs yet."));
  } catch (e) { status(e.message, "error"); }
}

async function start() {
  const box = document.getElementById("pipelines");
  try {
    const found = await api("GET", "/pipelines");
    const list = el("ul", {});
    for (const p of found) {
      list.append(el("li", {}, el("a", { href: `#pipeline=${p.name}`, onclick: (ev) => { ev.preventDefault(); showRuns(p.name); } },
        p.name), ` (${p.steps.length} steps)`));
    }
    box.replaceChildren(found.length ? list : el("p", {}, "The server's app declares no pipeline."));
    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get("pipeline")) showRuns(hash.get("pipeline"));
    if (hash.get("run")) showRun(hash.get("run"));
  } catch (e) { status(e.message, "error"); }
}

document.addEventListener("DOMContentLoaded", start);
