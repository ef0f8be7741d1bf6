// The train page: a form -> POST /api/train; live curves from the server-sent events.
"use strict";

const lossChart = new LineChart(document.getElementById("loss-chart"), { yLabel: "loss" });
const accChart = new LineChart(document.getElementById("acc-chart"), { yLabel: "accuracy" });
const SERIES = {
  loss: [["running mean of the epoch", "#9aa7bd", true], ["train loss", PALETTE[0]], ["val loss", PALETTE[1]]],
  acc: [["running mean of the epoch", "#9aa7bd", true], ["train acc", PALETTE[0]], ["val acc", PALETTE[1]]],
};
let currentRun = null;
let source = null;

function legend(id, entries) {
  document.getElementById(id).replaceChildren(...entries.map(([name, color]) => {
    const swatch = el("i"); swatch.style.background = color;
    return el("span", {}, swatch, name);
  }));
}

function resetCharts(epochs) {
  lossChart.clear(); accChart.clear();
  lossChart.xMax = accChart.xMax = epochs || 1;
  lossChart.draw(); accChart.draw();
  document.getElementById("log").textContent = "";
  document.getElementById("progress").textContent = "";
}

function fillSelect(id, items, chosen) {
  const select = document.getElementById(id);
  select.replaceChildren(...items.map((item) =>
    el("option", { value: item.name, text: item.name, title: item.help || "", selected: item.name === chosen })));
}

async function loadForm() {
  const options = await getJSON("/api/train/options");
  const d = options.defaults || {};
  fillSelect("f-dataset", options.datasets.map((name) => ({ name })), d.dataset || "mnist");
  fillSelect("f-activation", options.activations, d.activation || "relu");
  fillSelect("f-optimizer", options.optimizers, d.optimizer || "adam");
  const lrs = Object.fromEntries(options.optimizers.map((o) => [o.name, o.default_lr]));
  const optimizer = document.getElementById("f-optimizer");
  const lr = document.getElementById("f-lr");
  const showDefaultLr = () => { lr.placeholder = lrs[optimizer.value] != null ? `default ${lrs[optimizer.value]}` : ""; };
  optimizer.addEventListener("change", showDefaultLr);
  showDefaultLr();
  if (d.batch_size) document.getElementById("f-batch_size").placeholder = String(d.batch_size);
  if (d.hidden) document.getElementById("f-hidden").value = d.hidden.join(",");
}

function formOptions() {
  const form = document.getElementById("form");
  const value = (name) => form.elements[name].value.trim();
  const number = (name) => (value(name) === "" ? null : Number(value(name)));
  return {
    dataset: value("dataset") || null,
    hidden: value("hidden"),
    activation: value("activation") || null,
    optimizer: value("optimizer") || null,
    lr: number("lr"),
    epochs: number("epochs"),
    batch_size: number("batch_size"),
    batchnorm: form.elements.batchnorm.checked,
    dropout: number("dropout"),
    weight_decay: number("weight_decay"),
    limit: number("limit"),
  };
}

function setState(s) {
  const status = document.getElementById("status");
  status.textContent = s.state;
  status.className = `status ${s.state}`;
  document.getElementById("run").textContent = s.run ? `run ${s.run}` : "";
  const busy = s.state === "running" || s.state === "stopping";
  document.getElementById("start").disabled = busy;
  document.getElementById("stop").disabled = s.state !== "running";
  const error = document.getElementById("error");
  if (s.state === "failed") error.textContent = s.message;
  else if (s.state === "stopped") error.textContent = "";
  if (s.state === "stopped" && s.message) document.getElementById("progress").textContent = s.message;
  if (s.state === "finished") document.getElementById("progress").textContent = "finished: see it on the Runs page";
}

function connect(since) {
  if (source) source.close();
  source = new EventSource(`/api/train/events?since=${since}`);
  source.addEventListener("status", (e) => {
    const s = JSON.parse(e.data);
    if (s.state === "running" && s.run !== currentRun) {
      currentRun = s.run;
      resetCharts(s.options && s.options.epochs);
    }
    setState(s);
  });
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    lossChart.xMax = accChart.xMax = p.epochs;
    const x = p.epoch - 1 + (p.steps ? p.step / p.steps : 0);
    lossChart.add(SERIES.loss[0][0], SERIES.loss[0][1], { x, y: p.loss }, true);
    if (p.acc !== null) accChart.add(SERIES.acc[0][0], SERIES.acc[0][1], { x, y: p.acc }, true);
    lossChart.draw(); accChart.draw();
    document.getElementById("progress").textContent =
      `epoch ${p.epoch}/${p.epochs}: step ${p.step}/${p.steps} (${Math.round((100 * p.step) / p.steps)}%), ` +
      `running loss ${p.loss.toFixed(4)}${p.acc !== null ? `, accuracy ${p.acc.toFixed(3)}` : ""}`;
  });
  source.addEventListener("epoch", (e) => {
    const r = JSON.parse(e.data);
    if (r.epochs) lossChart.xMax = accChart.xMax = r.epochs;
    const add = (chart, [name, color], y) => { if (y !== null) chart.add(name, color, { x: r.epoch, y }); };
    add(lossChart, SERIES.loss[1], r.train_loss); add(lossChart, SERIES.loss[2], r.val_loss);
    add(accChart, SERIES.acc[1], r.train_acc); add(accChart, SERIES.acc[2], r.val_acc);
    lossChart.draw(); accChart.draw();
  });
  source.addEventListener("log", (e) => {
    const log = document.getElementById("log");
    log.textContent += JSON.parse(e.data).line + "\n";
    log.scrollTop = log.scrollHeight;
  });
}

document.getElementById("start").addEventListener("click", async () => {
  document.getElementById("error").textContent = "";
  try {
    await getJSON("/api/train", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(formOptions()),
    });
  } catch (err) {
    document.getElementById("error").textContent = err.message;
  }
});

document.getElementById("stop").addEventListener("click", async () => {
  try { await getJSON("/api/train/stop", { method: "POST" }); }
  catch (err) { document.getElementById("error").textContent = err.message; }
});

(async () => {
  legend("loss-legend", SERIES.loss); legend("acc-legend", SERIES.acc);
  resetCharts(1);
  try { await loadForm(); } catch (err) { document.getElementById("error").textContent = err.message; }
  const state = await getJSON("/api/train");
  setState(state);
  connect(state.since);
})();
