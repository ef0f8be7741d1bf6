// dlscratch serve: what the three pages share (no libraries; works offline).
"use strict";

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
      : `${response.status} ${response.statusText}`;
    const error = new Error(text);
    error.status = response.status;
    throw error;
  }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

async function showModel() {
  const target = document.getElementById("model");
  if (!target) return;
  try {
    const info = await getJSON("/api/model");
    const cfg = info.config || {};
    const sizes = cfg.hidden_size_list ? [cfg.input_size, ...cfg.hidden_size_list, cfg.output_size].join("-") : "";
    target.textContent = `model: ${info.source}${sizes ? " (" + sizes + " " + (cfg.activation || "") + ")" : ""}`;
  } catch (e) { target.textContent = `model: ${e.message}`; }
}

// A small line chart on a canvas: series of {x, y} points, axes with a few ticks.
class LineChart {
  constructor(canvas, { yLabel = "", yMin = null, yMax = null } = {}) {
    this.canvas = canvas; this.yLabel = yLabel; this.yMin = yMin; this.yMax = yMax;
    this.series = new Map();  // name -> {color, points, dashed}
    this.xMax = 1;
  }
  clear() { this.series.clear(); this.draw(); }
  set(name, color, points, dashed = false) { this.series.set(name, { color, points, dashed }); }
  add(name, color, point, dashed = false) {
    if (!this.series.has(name)) this.series.set(name, { color, points: [], dashed });
    this.series.get(name).points.push(point);
  }
  pointCount() { let n = 0; for (const s of this.series.values()) n += s.points.length; return n; }
  draw() {
    const c = this.canvas, ctx = c.getContext("2d");
    const W = c.width, H = c.height, L = 46, R = 10, T = 10, B = 26;
    ctx.clearRect(0, 0, W, H);
    const all = [...this.series.values()].flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
    c.dataset.points = String(all.length);
    let xMax = Math.max(this.xMax, ...all.map((p) => p.x));
    let yMin = this.yMin ?? Math.min(...all.map((p) => p.y));
    let yMax = this.yMax ?? Math.max(...all.map((p) => p.y));
    if (!all.length) { yMin = this.yMin ?? 0; yMax = this.yMax ?? 1; }
    if (yMax - yMin < 1e-9) { yMax += 0.5; yMin -= 0.5; }
    const px = (x) => L + (x / xMax) * (W - L - R);
    const py = (y) => T + (1 - (y - yMin) / (yMax - yMin)) * (H - T - B);
    ctx.strokeStyle = "#d9dde5"; ctx.fillStyle = "#667085"; ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = yMin + (i / 4) * (yMax - yMin);
      ctx.beginPath(); ctx.moveTo(L, py(y)); ctx.lineTo(W - R, py(y)); ctx.stroke();
      ctx.fillText(y.toPrecision(3), 2, py(y) + 4);
    }
    const step = Math.max(1, Math.ceil(xMax / 8));
    for (let x = 0; x <= xMax + 1e-9; x += step) ctx.fillText(String(+x.toFixed(2)), px(x) - 3, H - 8);
    ctx.fillText(this.yLabel, L + 4, T + 10);
    for (const s of this.series.values()) {
      const pts = s.points.filter((p) => Number.isFinite(p.y));
      if (!pts.length) continue;
      ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 2;
      ctx.setLineDash(s.dashed ? [5, 4] : []);
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo(px(p.x), py(p.y)) : ctx.moveTo(px(p.x), py(p.y))));
      ctx.stroke();
      ctx.setLineDash([]);
      if (pts.length < 60) for (const p of pts) { ctx.beginPath(); ctx.arc(px(p.x), py(p.y), 2.5, 0, 7); ctx.fill(); }
    }
  }
}

const PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7ea4", "#57606a"];
document.addEventListener("DOMContentLoaded", showModel);
