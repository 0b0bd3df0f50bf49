// faena web console: plain JavaScript written for faena, no third-party code.
// It reads and changes the broker through /api/v1 with the token pasted in the login field
// (kept in sessionStorage, sent as "Authorization: Bearer"; never in a URL).
"use strict";

const API = "/api/v1";
const POLL_MS = 2000;
const PAGE = 50;
const STATES = ["queued", "scheduled", "running", "failed", "dead", "succeeded", "cancelled"];
const TOKEN_KEY = "faena.token";

// ---- helpers ----------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(API + path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) {
    let msg = (data && (data.detail || data.message)) || `${method} ${API}${path}: HTTP ${r.status}`;
    if (r.status === 401) msg = "The server needs a token: paste an admin or read token above. (" + msg + ")";
    throw new ApiError(r.status, msg);
  }
  return data;
}

function setStatus(text, kind) {
  const s = document.getElementById("status");
  s.textContent = text || "";
  s.className = "status" + (kind ? " " + kind : "");
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

function when(ts) {
  if (ts === null || ts === undefined) return "–";
  const d = new Date(ts * 1000);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function stateBadge(state) { return h("span", { class: "state state-" + state }, state); }

function table(columns, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(c => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map(row => h("tr", {}, columns.map(c =>
      h("td", { "data-label": c.label, class: c.num ? "num" : null }, c.cell(row)))))));
}

function field(label, input) {
  const id = "f-" + label.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

function pretty(value) { return JSON.stringify(value, null, 2); }

// ---- routing ----------------------------------------------------------------------------
function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  return { parts, params: new URLSearchParams(query || "") };
}

let current = null;   // { refresh: async () => void }
let busy = false;

async function show() {
  const { parts, params } = route();
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  main.replaceChildren();
  setStatus("");
  pollError = false;
  const views = { overview: overviewView, queues: queuesView, pools: poolsView, jobs: jobsView, workers: workersView };
  let view;
  if (page === "jobs" && parts[1]) view = jobView(decodeURIComponent(parts[1]));
  else if (views[page]) view = views[page](params);
  else view = notFoundView(page);
  current = view;
  main.append(view.root);
  document.title = view.title + " · faena console";
  await tick(true);
}

let pollError = false;  // whether the status line shows a failed refresh (cleared once one works)

async function tick(first) {
  if (!current || busy) return;
  if (!first && document.visibilityState !== "visible") return;
  busy = true;
  const view = current;
  try {
    await view.refresh();
    if (view === current && pollError) { setStatus(""); pollError = false; }
  } catch (e) {
    if (view === current) { setStatus(e.message, "error"); pollError = true; }
  } finally {
    busy = false;
  }
}

// Runs a change (retry, cancel, resize), then says what happened and refreshes the view.
async function act(what, fn) {
  pollError = false;
  try {
    await fn();
    setStatus(what, "ok");
  } catch (e) {
    setStatus(e.message, "error");
    return false;
  }
  await refreshKeepingStatus();
  return true;
}

async function refreshKeepingStatus() {
  if (!current) return;
  try { await current.refresh(); } catch (e) { setStatus(e.message, "error"); }
}

// ---- pages ------------------------------------------------------------------------------
function notFoundView(page) {
  return { title: "Not found", root: h("section", {}, h("h1", {}, "No page " + page),
    h("p", {}, h("a", { href: "#/overview" }, "Go to the overview"))), refresh: async () => {} };
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
  return age(seconds);
}

const STATS_EVERY_MS = 10000;  // the window moves by minutes: no need to read it every poll

function overviewView() {
  const states = h("div", { class: "cards", id: "state-counts" });
  const charts = h("div", { class: "charts", id: "charts" });
  const latency = h("div", { id: "latency" });
  const totals = h("div", { class: "cards", id: "totals" });
  const root = h("section", {}, h("h1", {}, "Overview"),
    h("h2", {}, "Jobs by state"), states,
    h("h2", {}, "Finished per minute, last hour"), charts,
    h("h2", {}, "Wait and run time, last hour"), latency,
    h("h2", {}, "Queues, pools and workers"), totals,
    h("p", { class: "muted" }, "Counts, charts and percentiles are read from the store, so every server shows the same. " +
      "Percentiles are over the most recent finished jobs (at most the sample shown); wait is start minus due time, run is finish minus start."));
  let stats = null, statsAt = 0;
  async function refresh() {
    const fresh = !stats || Date.now() - statsAt > STATS_EVERY_MS;
    const [got, queues, pools, workers] = await Promise.all([
      fresh ? api("GET", "/stats?minutes=60") : Promise.resolve(stats),
      api("GET", "/queues"), api("GET", "/pools"), api("GET", "/workers")]);
    if (fresh) { stats = got; statsAt = Date.now(); }
    states.replaceChildren(...STATES.map(s => h("div", { class: "card" },
      h("a", { href: "#/jobs?state=" + s },
        h("span", { class: "n" }, String(stats.states[s] || 0)),
        h("span", { class: "k" }, s)))));
    if (fresh) {
      charts.replaceChildren(
        faenaCharts.minuteChart("throughput", "Succeeded", stats.minutes,
          [{ key: "succeeded", label: "succeeded", cls: "c-good" }]),
        faenaCharts.minuteChart("failures", "Failures: retried, dead and cancelled", stats.minutes,
          [{ key: "retried", label: "retried", cls: "c-warn" }, { key: "dead", label: "dead", cls: "c-bad" },
           { key: "cancelled", label: "cancelled", cls: "c-muted" }]));
      const row = (name, p) => ({ name, ...p });
      latency.replaceChildren(table([
        { label: "", cell: r => r.name },
        { label: "p50", num: true, cell: r => duration(r.p50) },
        { label: "p95", num: true, cell: r => duration(r.p95) },
        { label: "p99", num: true, cell: r => duration(r.p99) },
        { label: "Jobs in sample", num: true, cell: r => r.count + " of at most " + stats.sample_limit },
      ], [row("Wait", stats.wait_time), row("Run", stats.run_time)], "Nothing finished in the last hour."));
    }
    const sum = (xs, k) => xs.reduce((a, x) => a + x[k], 0);
    const q = queues.queues, p = pools.pools;
    const oldest = q.length ? Math.max(...q.map(x => x.oldest_age)) : 0;
    const card = (n, k, href) => h("div", { class: "card" },
      h("a", { href }, h("span", { class: "n" }, n), h("span", { class: "k" }, k)));
    totals.replaceChildren(
      card(sum(q, "waiting"), "waiting (queue depth)", "#/queues"),
      card(sum(q, "scheduled"), "scheduled", "#/queues"),
      card(sum(q, "running"), "running", "#/queues"),
      card(age(oldest), "oldest waiting", "#/queues"),
      card(q.length, "queues", "#/queues"),
      card(sum(p, "used") + " / " + sum(p, "size"), "pool slots used / size", "#/pools"),
      card(q.filter(x => x.paused).length, "queues paused", "#/queues"),
      card(workers.workers.filter(w => w.state === "running").length, "workers running", "#/workers"),
      card(workers.workers.filter(w => w.state === "lost").length, "workers lost", "#/workers"));
  }
  return { title: "Overview", root, refresh };
}

function queuesView() {
  const body = h("div", { id: "queues" });
  const root = h("section", {}, h("h1", {}, "Queues"), body,
    h("p", { class: "muted" }, "A paused queue keeps taking jobs, but no worker claims them until it is resumed; the pause is kept in the store."));
  async function refresh() {
    const data = await api("GET", "/queues");
    body.replaceChildren(table([
      { label: "Queue", cell: r => h("a", { href: "#/jobs?queue=" + encodeURIComponent(r.queue) }, r.queue) },
      { label: "Waiting", num: true, cell: r => r.waiting },
      { label: "Scheduled", num: true, cell: r => r.scheduled },
      { label: "Running", num: true, cell: r => r.running },
      { label: "Oldest waiting", num: true, cell: r => age(r.oldest_age) },
      { label: "Claims", cell: r => r.paused ? h("span", { class: "state state-dead" }, "paused") : h("span", { class: "state state-succeeded" }, "active") },
      { label: "", cell: r => r.paused
          ? h("button", { type: "button", class: "primary", "aria-label": "Resume " + r.queue, onclick: () =>
              act(`Queue ${r.queue} resumed: workers claim its jobs again.`, () => api("POST", `/queues/${encodeURIComponent(r.queue)}/resume`)) }, "Resume")
          : h("button", { type: "button", class: "danger", "aria-label": "Pause " + r.queue, onclick: () =>
              act(`Queue ${r.queue} paused: running jobs finish, no new one starts.`, () => api("POST", `/queues/${encodeURIComponent(r.queue)}/pause`)) }, "Pause") },
    ], data.queues, "No queue has jobs waiting, scheduled or running, and none is paused."));
  }
  return { title: "Queues", root, refresh };
}

function poolsView() {
  const body = h("div", { id: "pools" });
  const name = h("input", { name: "pool", required: true, maxlength: 64, spellcheck: "false", autocomplete: "off" });
  const size = h("input", { name: "size", type: "number", min: 0, step: 1, required: true, inputmode: "numeric" });
  const form = h("form", { class: "form", id: "resize", onsubmit: async (ev) => {
    ev.preventDefault();
    const pool = name.value.trim(), n = Number(size.value);
    if (!pool || !Number.isInteger(n) || n < 0) {
      setStatus("Give a pool name and a size that is a whole number, 0 or more.", "error");
      return;
    }
    await act(`Pool ${pool} now has ${n} slots.`, () =>
      api("PUT", "/pools/" + encodeURIComponent(pool), { size: n }));
  } }, field("Pool", name), field("Slots", size), h("button", { type: "submit", class: "primary" }, "Resize pool"));
  const root = h("section", {}, h("h1", {}, "Pools"), body,
    h("h2", {}, "Create or resize a pool"), form,
    h("p", { class: "muted" }, "A pool limits how many of its jobs run at once across all workers; size 0 stops new ones from starting."));
  async function refresh() {
    const data = await api("GET", "/pools");
    body.replaceChildren(table([
      { label: "Pool", cell: r => r.pool },
      { label: "Slots", num: true, cell: r => r.size },
      { label: "Used", num: true, cell: r => r.used },
      { label: "Open", num: true, cell: r => Math.max(0, r.size - r.used) },
      { label: "In use", cell: r => h("div", { class: "bar", role: "img", "aria-label": `${r.used} of ${r.size} slots used` },
          h("span", { style: null, "data-w": 1 })) },
      { label: "", cell: r => h("button", { type: "button", "aria-label": "Resize " + r.pool, onclick: () => {
          name.value = r.pool; size.value = r.size; size.focus(); } }, "Resize…") },
    ], data.pools, "No pool yet: create one below."));
    // widths set from script (the CSP admits no inline style attributes)
    body.querySelectorAll("tbody tr").forEach((tr, i) => {
      const r = data.pools[i];
      const span = tr.querySelector(".bar span");
      if (span) span.style.width = (r.size ? Math.min(100, 100 * r.used / r.size) : (r.used ? 100 : 0)) + "%";
    });
  }
  return { title: "Pools", root, refresh };
}

// The cursors of the pages before this one, for "Newer": kept while the filters stay the same.
const trail = { key: null, back: [] };
const RANGES = { "": 0, "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800 };
const FILTERS = ["state", "queue", "task", "text", "since", "until", "limit"];  // limit: page size

function localInput(ts) {  // POSIX seconds -> the value of an <input type="datetime-local">
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function jobsView(params) {
  const cursor = params.get("cursor") || "";
  const key = FILTERS.map(k => params.get(k) || "").join("\u0000");
  if (trail.key !== key) { trail.key = key; trail.back = []; }
  const input = (name, attrs) => h("input", { name, value: params.get(name) || "", spellcheck: "false", autocomplete: "off", ...attrs });
  const state = h("select", { name: "state" }, h("option", { value: "" }, "any"),
    STATES.map(s => h("option", { value: s }, s)));
  state.value = params.get("state") || "";
  const queue = input("queue"), task = input("task");
  const text = input("text", { type: "search", maxlength: 200, placeholder: "in args, kwargs or error" });
  const range = h("select", { name: "range" }, h("option", { value: "" }, "any time"),
    h("option", { value: "15m" }, "last 15 minutes"), h("option", { value: "1h" }, "last hour"),
    h("option", { value: "24h" }, "last 24 hours"), h("option", { value: "7d" }, "last 7 days"),
    h("option", { value: "custom" }, "from … until …"));
  range.value = params.get("range") || (params.get("since") || params.get("until") ? "custom" : "");
  const from = h("input", { name: "from", type: "datetime-local", value: localInput(Number(params.get("since"))) });
  const until = h("input", { name: "until", type: "datetime-local", value: localInput(Number(params.get("until"))) });
  const custom = h("div", { class: "custom-range" }, field("From", from), field("Until", until));
  const showCustom = () => { custom.hidden = range.value !== "custom"; };
  range.addEventListener("change", showCustom);
  showCustom();
  const go = (next) => {
    const q = new URLSearchParams();
    if (state.value) q.set("state", state.value);
    for (const [k, el] of [["queue", queue], ["task", task], ["text", text]]) if (el.value.trim()) q.set(k, el.value.trim());
    if (range.value === "custom") {
      q.set("range", "custom");
      if (from.value) q.set("since", String(new Date(from.value).getTime() / 1000));
      if (until.value) q.set("until", String(new Date(until.value).getTime() / 1000));
    } else if (range.value) {
      q.set("range", range.value);
      q.set("since", String(Math.floor(Date.now() / 1000) - RANGES[range.value]));
    }
    if (params.get("limit")) q.set("limit", params.get("limit"));
    if (next) q.set("cursor", next);
    const s = q.toString();
    location.hash = "#/jobs" + (s ? "?" + s : "");
  };
  const filters = h("form", { class: "filters", role: "search", onsubmit: (ev) => { ev.preventDefault(); go(""); } },
    field("Search", text), field("State", state), field("Queue", queue), field("Task", task),
    field("Enqueued", range), custom,
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("button", { type: "button", onclick: () => {
      state.value = ""; queue.value = ""; task.value = ""; text.value = ""; range.value = ""; go(""); } }, "Clear"));
  const body = h("div", { id: "jobs" });
  const newest = h("button", { type: "button", id: "newest", onclick: () => { trail.back = []; go(""); } }, "⇤ Newest");
  const prev = h("button", { type: "button", id: "prev", onclick: () => { go(trail.back.pop() || ""); } }, "← Newer");
  const next = h("button", { type: "button", id: "next" }, "Older →");
  const where = h("span", { class: "muted", id: "where" });
  const scoped = !(params.get("text") || params.get("since") || params.get("until"));
  const retryAll = h("button", { type: "button", id: "retry-dead", class: "danger",
    title: scoped ? "POST /api/v1/bulk/retry with this state, queue and task" :
      "Bulk retry selects by queue and task only: clear the search text and the time range to use it" },
    "Retry all dead matching");
  let nextCursor = null;
  next.addEventListener("click", () => { if (nextCursor) { trail.back.push(cursor); go(nextCursor); } });
  retryAll.addEventListener("click", async () => {
    const filter = { state: "dead" };
    if (params.get("queue")) filter.queue = params.get("queue");
    if (params.get("task")) filter.task = params.get("task");
    pollError = false;
    let total = 0;
    try {
      for (let round = 0; round < 100; round++) {  // 1000 a call: at most 100 000 jobs a click
        const done = await api("POST", "/bulk/retry", filter);
        total += done.changed;
        if (!done.more) break;
      }
    } catch (e) {
      setStatus(`Retried ${total}, then: ${e.message}`, "error");
      return;
    }
    setStatus(`Retried ${total} dead job${total === 1 ? "" : "s"} matching.`, "ok");
    await refreshKeepingStatus();
  });
  const root = h("section", {}, h("h1", {}, "Jobs"), filters,
    h("div", { class: "actions" }, retryAll), body, h("div", { class: "pager" }, newest, prev, next, where));
  async function refresh() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const k of FILTERS) if (params.get(k)) q.set(k, params.get(k));
    if (cursor) q.set("cursor", cursor);
    const page = await api("GET", "/jobs?" + q.toString());
    nextCursor = page.next_cursor;
    retryAll.disabled = !scoped || (state.value !== "" && state.value !== "dead");
    prev.disabled = !cursor;
    newest.disabled = !cursor;
    next.disabled = !nextCursor;
    const depth = trail.back.length;
    where.textContent = (page.jobs.length ? `page ${depth + 1}, ${page.jobs.length} jobs, newest first` : "") +
      (page.truncated ? " · looked at the most a page may without filling it: more may match, go on with Older →" : "");
    body.replaceChildren(table([
      { label: "Job", cell: j => h("a", { class: "mono", href: "#/jobs/" + encodeURIComponent(j.id) }, j.id) },
      { label: "Task", cell: j => j.task },
      { label: "Queue", cell: j => j.queue },
      { label: "State", cell: j => stateBadge(j.state) },
      { label: "Attempt", num: true, cell: j => `${j.attempt} / ${j.max_attempts}` },
      { label: "Enqueued", cell: j => when(j.enqueued_at) },
    ], page.jobs, page.truncated ? "None found among the jobs looked at; more may match: Older → goes on." :
      (cursor ? "No more jobs." : "No job matches these filters.")));
  }
  return { title: "Jobs", root, refresh };
}

function jobView(id) {
  const body = h("div", { id: "job" });
  const retry = h("button", { type: "button", id: "retry", class: "primary" }, "Retry");
  const cancel = h("button", { type: "button", id: "cancel", class: "danger" }, "Cancel");
  retry.addEventListener("click", () => act("Job queued again with a fresh budget of attempts.", () =>
    api("POST", `/jobs/${encodeURIComponent(id)}/retry`)));
  cancel.addEventListener("click", () => act("Cancel sent.", () =>
    api("POST", `/jobs/${encodeURIComponent(id)}/cancel`)));
  const root = h("section", {}, h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")),
    h("h1", {}, "Job ", h("span", { class: "mono" }, id)),
    h("div", { class: "actions" }, retry, cancel), body);
  async function refresh() {
    const j = await api("GET", "/jobs/" + encodeURIComponent(id));
    retry.disabled = !(j.state === "dead" || j.state === "cancelled");
    cancel.disabled = !(j.state === "queued" || j.state === "scheduled" || j.state === "running" || j.state === "failed") || j.cancel_requested;
    const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    const parts = [
      h("dl", { class: "props" },
        row("State", [stateBadge(j.state), j.cancel_requested ? " (cancel requested)" : ""]),
        row("Task", j.task), row("Queue", j.queue), row("Pool", `${j.pool} (${j.pool_slots} slot${j.pool_slots === 1 ? "" : "s"})`),
        row("Priority", j.priority), row("Attempt", `${j.attempt} (at most ${j.max_attempts} per run; tries ${j.tries})`),
        row("Timeout", j.timeout === null ? "none" : j.timeout + " s"),
        row("Idempotency key", j.idempotency_key || "–"),
        row("Enqueued", when(j.enqueued_at)), row("Run at", when(j.run_at)),
        row("Started", when(j.started_at)), row("Finished", when(j.finished_at)),
        row("Lease expires", when(j.lease_expires_at)), row("Worker", j.worker || "–")),
      h("h2", {}, "Arguments"), h("pre", { id: "args" }, pretty({ args: j.args, kwargs: j.kwargs })),
    ];
    if (j.result !== null && j.result !== undefined) parts.push(h("h2", {}, "Result"), h("pre", { id: "result" }, pretty(j.result)));
    if (j.error) {
      const earlier = j.state === "succeeded" || j.state === "queued" || j.state === "running";
      parts.push(h("h2", {}, earlier ? "Last error (an earlier attempt)" : "Error"), h("pre", { id: "error" }, `${j.error.type}: ${j.error.message}`));
      if (j.error.traceback) parts.push(h("h2", {}, "Traceback"), h("pre", { id: "traceback" }, j.error.traceback));
    }
    const attempts = j.attempts || [];
    parts.push(h("h2", {}, "Attempts"), h("div", { id: "attempts" }, table([
      { label: "#", cell: a => String(a.attempt) },
      { label: "Worker", cell: a => a.worker || "–" },
      { label: "Started", cell: a => when(a.started_at) },
      { label: "Finished", cell: a => when(a.finished_at) },
      { label: "Outcome", cell: a => h("span", { class: "outcome state-" + a.outcome }, a.outcome) },
      { label: "Error", cell: a => a.error ? h("span", { class: "mono", title: a.error.traceback || "" }, `${a.error.type}: ${a.error.message}`) : "–" },
    ], attempts, "No attempt has ended yet.")));
    body.replaceChildren(...parts);
  }
  return { title: "Job " + id.slice(0, 12), root, refresh };
}

// The Autoscaling section of the workers page: each autoscaler's last report in the store.
function autoscalingTable(autoscalers, now) {
  const metricText = m => m.error ? `${m.metric}: ${m.error}`
    : `${m.metric}: ${m.current ?? "–"} vs target ${m.target ?? "–"} (wants ${m.proposal ?? "–"})`;
  return table([
    { label: "Autoscaler", cell: a => h("span", { class: "mono" }, a.name) },
    { label: "State", cell: a => a.stale
      ? h("span", { class: "state state-lost", title: `no report for over ${age(a.stale_after)}` }, "stale")
      : h("span", { class: "state state-running" }, "live") },
    { label: "Actual / desired", cell: a => {
        // the CSP refuses style attributes: the width is set through the DOM
        const fill = h("span", {});
        fill.style.width = Math.min(100, Math.round(100 * a.current / Math.max(a.max_replicas, 1))) + "%";
        return h("div", {}, h("strong", {}, `${a.current} / ${a.desired}`),
          h("span", { class: "muted" }, ` (${a.min_replicas}..${a.max_replicas})`),
          h("div", { class: "bar", role: "img",
            "aria-label": `${a.current} of ${a.desired} desired workers ready (max ${a.max_replicas})` }, fill));
      } },
    { label: "Reason", cell: a => h("div", {}, h("div", { class: "mono" }, a.reason),
        a.limited_by ? h("div", { class: "muted" }, a.limited_by) : null) },
    { label: "Metric vs target", cell: a => a.metrics.length
      ? h("ul", { class: "plain" }, a.metrics.map(m => h("li", { class: "mono" }, metricText(m)))) : "–" },
    { label: "Scaled", num: true, cell: a => a.last_scale_at === null ? "–" : age(now - a.last_scale_at) + " ago" },
    { label: "Updated", num: true, cell: a => age(now - a.updated_at) + " ago" },
  ], autoscalers, "No autoscaler reports to this broker (faena up or faena autoscale write their state here).");
}

function workersView() {
  const body = h("div", { id: "workers" });
  const scaling = h("div", { id: "autoscaling" });
  const root = h("section", {}, h("h1", {}, "Workers"),
    h("h2", {}, "Autoscaling"), scaling,
    h("p", { class: "muted" }, "Desired is what the autoscaler's HPA rules want now; actual is the worker processes started and not draining. The reason says which rule set the count: the metrics, a behaviour policy, a stabilization window, the replica bounds or the tolerance."),
    h("h2", {}, "Worker registry"), body,
    h("p", { class: "muted" }, "Each worker process reports itself at every heartbeat; one silent for longer than its lease is shown as lost."));
  async function refresh() {
    const [data, scalers] = await Promise.all([api("GET", "/workers"), api("GET", "/autoscaler")]);
    scaling.replaceChildren(autoscalingTable(scalers.autoscalers, Date.now() / 1000));
    const now = Date.now() / 1000;
    const badge = { running: "running", draining: "scheduled", stopped: "cancelled", lost: "dead" };
    body.replaceChildren(table([
      { label: "Worker", cell: w => h("span", { class: "mono" }, w.id) },
      { label: "State", cell: w => h("span", { class: "state state-" + (badge[w.state] || "queued") }, w.state) },
      { label: "Host", cell: w => `${w.host} (pid ${w.pid})` },
      { label: "Queues", cell: w => w.queues.join(", ") || "all" },
      { label: "Concurrency", num: true, cell: w => w.concurrency },
      { label: "Version", cell: w => w.version },
      { label: "Started", cell: w => when(w.started_at) },
      { label: "Last seen", num: true, cell: w => age(now - w.seen_at) + " ago" },
    ], data.workers, "No worker has registered with this broker."));
  }
  return { title: "Workers", root, refresh };
}

// ---- start ------------------------------------------------------------------------------
function start() {
  const input = document.getElementById("token");
  input.value = token() ? "••••••••" : "";
  document.getElementById("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    if (v && v !== "••••••••") sessionStorage.setItem(TOKEN_KEY, v);
    input.value = token() ? "••••••••" : "";
    setStatus(token() ? "Token kept for this tab (sessionStorage)." : "No token: reads work only on a server without tokens.", "ok");
    refreshKeepingStatus();
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    input.value = "";
    setStatus("Token forgotten.", "ok");
    refreshKeepingStatus();
  });
  window.addEventListener("hashchange", show);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") tick(); });
  setInterval(() => tick(), POLL_MS);
  show();
}

start();
