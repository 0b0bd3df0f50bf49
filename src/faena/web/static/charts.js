// faena web console: per-minute charts as inline SVG, drawn by faena's own code (no
// third-party library, nothing from a CDN). Colours come from classes in console.css, so the
// strict Content-Security-Policy (no inline style) holds.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function clock(ts) {
  const d = new Date(ts * 1000);
  return d.toISOString().slice(11, 16) + " UTC";
}

// A stacked bar per minute. minutes: [{minute, succeeded, retried, dead, cancelled}];
// series: [{key, label, cls}]. Returns a <figure> with the chart, its scale and a legend.
function minuteChart(id, title, minutes, series) {
  const W = 600, H = 140, n = Math.max(1, minutes.length);
  const totals = minutes.map(m => series.reduce((a, s) => a + (m[s.key] || 0), 0));
  const top = Math.max(1, ...totals);
  const step = W / n, gap = step > 4 ? 1 : 0;
  const bars = [];
  minutes.forEach((m, i) => {
    let y = H;
    for (const s of series) {
      const v = m[s.key] || 0;
      if (!v) continue;
      const h = (v / top) * H;
      y -= h;
      bars.push(svgEl("rect", { x: (i * step).toFixed(2), y: y.toFixed(2),
        width: Math.max(0.5, step - gap).toFixed(2), height: h.toFixed(2),
        class: s.cls },
        svgEl("title", {}, `${clock(m.minute)}: ${v} ${s.label}`)));
    }
  });
  const sums = series.map(s => `${minutes.reduce((a, m) => a + (m[s.key] || 0), 0)} ${s.label}`);
  const label = `${title}: ${sums.join(", ")} over ${minutes.length} minutes; busiest minute ${Math.max(0, ...totals)}`;
  const chart = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
    class: "chart", role: "img", "aria-label": label },
    svgEl("title", {}, label),
    svgEl("line", { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: "axis" }),
    ...bars);
  const figure = document.createElement("figure");
  figure.className = "chart-box";
  figure.id = id;
  const caption = document.createElement("figcaption");
  const head = document.createElement("span");
  head.textContent = title;
  const scale = document.createElement("span");
  scale.className = "muted";
  scale.textContent = `max ${top} / min`;
  caption.append(head, scale);
  const axis = document.createElement("div");
  axis.className = "chart-axis muted";
  const from = document.createElement("span");
  const to = document.createElement("span");
  from.textContent = minutes.length ? clock(minutes[0].minute) : "";
  to.textContent = minutes.length ? clock(minutes[minutes.length - 1].minute) : "";
  axis.append(from, to);
  const legend = document.createElement("ul");
  legend.className = "legend";
  series.forEach((s, i) => {
    const li = document.createElement("li");
    const key = document.createElement("span");
    key.className = "key " + s.cls;
    li.append(key, sums[i]);
    legend.append(li);
  });
  figure.append(caption, chart, axis, legend);
  return figure;
}

window.faenaCharts = { minuteChart };
