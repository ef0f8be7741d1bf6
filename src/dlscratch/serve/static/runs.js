// The runs page: a sortable table of run folders, overlaid curves, figures of one run.
"use strict";

const fmt = (digits) => (v) => (v === null || v === undefined ? "" : Number(v).toFixed(digits));
const COLUMNS = [
  { key: "name", label: "run", get: (r) => r.name },
  { key: "status", label: "status", get: (r) => r.status },
  { key: "dataset", label: "data", get: (r) => r.config.dataset },
  { key: "hidden", label: "hidden", get: (r) => (r.config.hidden || []).join("x"), sort: (r) => (r.config.hidden || []).reduce((a, b) => a + b, 0) },
  { key: "activation", label: "activation", get: (r) => r.config.activation },
  { key: "optimizer", label: "optimizer", get: (r) => r.config.optimizer },
  { key: "lr", label: "lr", get: (r) => r.config.lr, num: true },
  { key: "epochs", label: "epochs", get: (r) => r.epochs_completed ?? r.config.epochs, num: true },
  { key: "batchnorm", label: "BN", get: (r) => (r.config.batchnorm ? "yes" : "") },
  { key: "dropout", label: "dropout", get: (r) => r.config.dropout || "", num: true },
  { key: "weight_decay", label: "decay", get: (r) => r.config.weight_decay || "", num: true },
  { key: "val_acc", label: "val acc", get: (r) => r.final.val_acc, num: true, show: fmt(4) },
  { key: "test_acc", label: "test acc", get: (r) => r.final.test_acc, num: true, show: fmt(4) },
  { key: "time", label: "time (s)", get: (r) => r.wall_time_s, num: true, show: fmt(1) },
  { key: "modified", label: "modified", get: (r) => r.modified, num: true, show: (v) => new Date(v * 1000).toLocaleString() },
];
let runs = [];
let sortKey = "modified", ascending = false;
const selected = new Set();

function renderTable() {
  const table = document.getElementById("runs");
  const column = COLUMNS.find((c) => c.key === sortKey);
  const key = column.sort || column.get;
  const sorted = [...runs].sort((a, b) => {
    const x = key(a), y = key(b);
    const missing = (v) => v === null || v === undefined || v === "";
    if (missing(x) !== missing(y)) return missing(x) ? 1 : -1;  // blanks last
    const c = column.num ? Number(x) - Number(y) : String(x ?? "").localeCompare(String(y ?? ""));
    return ascending ? c : -c;
  });
  table.tHead.replaceChildren(el("tr", {}, el("th", { text: "" }), ...COLUMNS.map((c) =>
    el("th", {
      text: c.label, "data-key": c.key,
      class: c.key === sortKey ? `sorted ${ascending ? "asc" : ""}` : "",
      onclick: () => { ascending = c.key === sortKey ? !ascending : !c.num; sortKey = c.key; renderTable(); },
    }))));
  table.tBodies[0].replaceChildren(...sorted.map((r) => el("tr", { "data-run": r.name },
    el("td", {}, el("input", {
      type: "checkbox", checked: selected.has(r.name), disabled: !r.has_history, title: r.has_history ? "" : "no history.csv yet",
      onchange: (e) => (e.target.checked ? selected.add(r.name) : selected.delete(r.name)),
    })),
    ...COLUMNS.map((c) => {
      const v = c.get(r);
      if (c.key === "name") return el("td", {}, el("a", { href: "#", text: v, onclick: (e) => { e.preventDefault(); showRun(r); } }));
      return el("td", { class: c.num ? "num" : "", text: c.show ? c.show(v) : (v ?? "") });
    }))));
}

async function showRun(r) {
  const panel = document.getElementById("detail");
  panel.hidden = false;
  const base = `/runs/${encodeURIComponent(r.name)}/files/`;
  const serve = r.has_model ? el("button", {
    type: "button", text: "Draw with this model",
    onclick: async (e) => {
      try { await getJSON("/api/model", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ run: r.name }) });
        e.target.textContent = "served: open the Draw page"; showModel(); }
      catch (err) { e.target.textContent = err.message; }
    },
  }) : null;
  panel.replaceChildren(
    el("h2", { text: r.name }),
    el("p", { class: "small", text: `${r.status}; ` + Object.entries(r.config)
      .filter(([, v]) => v !== null && v !== "" && !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length))
      .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(",") : typeof v === "object" ? JSON.stringify(v) : v}`).join(", ") }),
    Object.keys(r.final).length ? el("p", { class: "small", text: "final: " + Object.entries(r.final)
      .map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(4) : v}`).join(", ") }) : null,
    serve,
    ...(r.figures.length ? r.figures.map((f) => el("div", {}, el("a", { href: base + encodeURIComponent(f), target: "_blank", text: f }),
      el("br"), el("img", { src: base + encodeURIComponent(f), alt: f, loading: "lazy" })))
      : [el("p", { class: "small", text: "no figures (the run has not finished)" })]),
  );
}

async function compare() {
  const names = [...selected];
  const note = document.getElementById("note");
  if (!names.length) { note.textContent = "select runs (with a history) to overlay their curves"; return; }
  const acc = new LineChart(document.getElementById("acc-chart"), { yLabel: "accuracy" });
  const loss = new LineChart(document.getElementById("loss-chart"), { yLabel: "train loss" });
  const entries = [];
  for (const [i, name] of names.entries()) {
    let h;
    try { h = await getJSON(`/api/runs/${encodeURIComponent(name)}/history`); }
    catch (err) { note.textContent = `${name}: ${err.message}`; continue; }
    const col = (c) => h.columns.indexOf(c);
    const color = PALETTE[i % PALETTE.length];
    const accCol = h.rows.some((row) => row[col("val_acc")] !== null) ? "val_acc" : "train_acc";
    acc.set(name, color, h.rows.map((row) => ({ x: row[col("epoch")], y: row[col(accCol)] })));
    loss.set(name, color, h.rows.map((row) => ({ x: row[col("epoch")], y: row[col("train_loss")] })));
    entries.push([name, color]);
  }
  document.getElementById("compare-panel").hidden = false;
  acc.draw(); loss.draw();
  document.getElementById("legend").replaceChildren(...entries.map(([name, color]) => {
    const swatch = el("i"); swatch.style.background = color;
    return el("span", {}, swatch, name);
  }));
}

document.getElementById("compare").addEventListener("click", compare);

(async () => {
  const data = await getJSON("/api/runs");
  runs = data.runs;
  document.getElementById("runs-dir").textContent = data.runs_dir;
  if (data.report) document.getElementById("report").replaceChildren(" - ", el("a", { href: data.report, text: "experiment report" }));
  if (!runs.length) document.getElementById("note").textContent = "No runs yet: start one on the Train page or with dlscratch train.";
  renderTable();
})();
