// The API page: every path of /openapi.json with its method, summary and description.
"use strict";

(async () => {
  const target = document.getElementById("endpoints");
  let spec;
  try { spec = await getJSON("/openapi.json"); } catch (err) { target.textContent = err.message; return; }
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const body = op.requestBody ? Object.keys(op.requestBody.content || {}).join(", ") : "";
      const params = (op.parameters || []).map((p) => `${p.name} (${p.in})`).join(", ");
      target.append(el("section", { class: "endpoint", style: "margin: 0.8em 0" },
        el("h3", { style: "margin: 0; font-size: 1em" },
          el("code", { text: `${method.toUpperCase()} ${path}` }), ` - ${op.summary || ""}`),
        op.description ? el("pre", { class: "small", style: "white-space: pre-wrap; margin: 0.3em 0", text: op.description }) : null,
        params ? el("p", { class: "small", text: `parameters: ${params}` }) : null,
        body ? el("p", { class: "small", text: `body: ${body}` }) : null,
        el("p", { class: "small", text: `answers: ${Object.keys(op.responses || {}).join(", ")}` })));
    }
  }
})();
