// The draw page: strokes on a canvas -> PNG -> /api/predict (debounced) -> input, bars, heat map.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const strokes = [];           // each a list of [x, y] in canvas pixels
let current = null;
let timer = null;
let inFlight = 0;
let classNames = [...Array(10).keys()].map(String);
const LINE_WIDTH = 20;

function paint() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#000"; ctx.fillStyle = "#000";
  ctx.lineWidth = LINE_WIDTH; ctx.lineCap = "round"; ctx.lineJoin = "round";
  for (const s of strokes) {
    if (s.length === 1) { ctx.beginPath(); ctx.arc(s[0][0], s[0][1], LINE_WIDTH / 2, 0, 7); ctx.fill(); continue; }
    ctx.beginPath();
    s.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
}

function where(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * (pad.width / r.width), (event.clientY - r.top) * (pad.height / r.height)];
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  current = [where(e)];
  strokes.push(current);
  paint(); schedule(150);
});
pad.addEventListener("pointermove", (e) => {
  if (!current) return;
  current.push(where(e));
  paint(); schedule(150);
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { if (current) { current = null; schedule(0); } });
}
document.getElementById("clear").addEventListener("click", () => { strokes.length = 0; paint(); schedule(0); });
document.getElementById("undo").addEventListener("click", () => { strokes.pop(); paint(); schedule(0); });

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(classifyDrawing, ms);
}

function classifyDrawing() {
  if (!strokes.length) { showBlank("draw a digit"); return; }
  pad.toBlob((blob) => send(blob, "image/png"), "image/png");
}

document.getElementById("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  strokes.length = 0; paint();
  send(file, file.type || "application/octet-stream");
  e.target.value = "";
});

async function send(body, type) {
  const id = ++inFlight;
  const t0 = performance.now();
  let answer;
  try {
    answer = await getJSON("/api/predict", { method: "POST", headers: { "Content-Type": type }, body });
  } catch (err) {
    if (id === inFlight) showError(err.message);
    return;
  }
  if (id !== inFlight) return;  // a newer drawing is on its way
  const roundTrip = performance.now() - t0;
  document.getElementById("timing").textContent =
    `round trip ${roundTrip.toFixed(1)} ms, server ${answer.server_ms.toFixed(1)} ms`;
  document.body.dataset.roundTripMs = roundTrip.toFixed(2);
  show(answer);
}

function showInput(pixels) {
  const c = document.getElementById("input28");
  const g = c.getContext("2d");
  const img = g.createImageData(28, 28);
  pixels.forEach((v, i) => {
    const k = Math.round(Math.max(0, Math.min(1, v)) * 255);
    img.data.set([k, k, k, 255], i * 4);
  });
  g.putImageData(img, 0, 0);
}

function showBars(probs) {
  const bars = document.getElementById("bars");
  bars.replaceChildren();
  const top = probs ? probs.indexOf(Math.max(...probs)) : -1;
  for (let i = 0; i < classNames.length; i++) {
    const p = probs ? probs[i] : 0;
    const cls = i === top ? "top" : "";
    const fill = el("div", { class: "fill" });
    fill.style.width = `${(p * 100).toFixed(1)}%`;
    bars.append(
      el("div", { class: `name ${cls}`, text: classNames[i] }),
      el("div", { class: cls }, el("div", { class: "track" }, fill)),
      el("div", { class: `pct ${cls}`, text: probs ? `${(p * 100).toFixed(1)}%` : "" }),
    );
  }
}

function showHeat(hidden) {
  const panel = document.getElementById("heat-panel");
  if (!hidden) { panel.hidden = true; return; }
  panel.hidden = false;
  const values = hidden.values;
  const cols = Math.ceil(Math.sqrt(values.length));
  const rows = Math.ceil(values.length / cols);
  const c = document.getElementById("heat");
  c.width = cols; c.height = rows;
  c.style.width = `${cols * 14}px`; c.style.height = `${rows * 14}px`;
  const g = c.getContext("2d");
  const img = g.createImageData(cols, rows);
  const max = Math.max(...values, 1e-9), min = Math.min(...values, 0);
  values.forEach((v, i) => {
    const t = (v - min) / (max - min || 1);
    // dark blue (quiet) -> yellow (firing)
    img.data.set([Math.round(20 + 235 * t), Math.round(30 + 200 * t), Math.round(90 * (1 - t)), 255], i * 4);
  });
  for (let i = values.length; i < cols * rows; i++) img.data.set([255, 255, 255, 255], i * 4);
  g.putImageData(img, 0, 0);
  document.getElementById("heat-note").textContent =
    `${values.length} units of ${hidden.layer}; most active: ${hidden.top.slice(0, 5).join(", ")}`;
}

function show(answer) {
  showInput(answer.input);
  if (answer.blank) { showBlank(answer.message || "draw a digit"); return; }
  document.getElementById("label").textContent = answer.class_name;
  document.getElementById("message").textContent =
    `${(answer.probabilities[answer.label] * 100).toFixed(1)}% sure`;
  document.getElementById("message").classList.remove("error");
  showBars(answer.probabilities);
  showHeat(answer.hidden);
}

function showBlank(text) {
  inFlight++;
  document.getElementById("label").textContent = "";
  document.getElementById("message").textContent = text;
  document.getElementById("message").classList.remove("error");
  showInput(new Array(784).fill(0));
  showBars(null);
  showHeat(null);
}

function showError(text) {
  document.getElementById("label").textContent = "";
  const m = document.getElementById("message");
  m.textContent = text; m.classList.add("error");
}

(async () => {
  try { classNames = (await getJSON("/api/model")).class_names; } catch (e) { /* keep digits */ }
  paint(); showBlank("draw a digit");
})();
