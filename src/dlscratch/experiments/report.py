"""One offline HTML page for a folder of experiment runs: ``OUT/index.html``.

Every link is relative (``NAME/figure.png``) and the CSS is inline, so the
folder can be zipped, moved or opened from disk without a server or network.
"""

from __future__ import annotations

import datetime
import html
import json
from pathlib import Path

from dlscratch import fileio
from dlscratch.experiments.base import (
    EXACT,
    LESSON,
    MANIFEST,
    NOT_REPRODUCED,
    VERDICTS,
    WITHIN,
    fmt,
    load_manifest,
    verdict_label,
)

INDEX = "index.html"

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin: 0 0 0.3em 0; }
header p, .meta { color: #666; font-size: 0.9em; }
nav ol { columns: 2; font-size: 0.95em; }
section { border-top: 1px solid #ddd; padding: 1.2em 0; }
.shows { font-size: 1.02em; }
.finding { margin: 0.2em 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.4em 0; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { font-family: ui-monospace, Menlo, Consolas, monospace; }
.failed { color: #a00; }
.missing { color: #888; }
details { margin: 0.4em 0; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
a { color: #0b5cad; }
.banner { background: #fff3cd; border: 2px solid #d39e00; color: #5c4400; padding: 0.5em 0.8em;
          font-weight: 600; margin: 0.5em 0; }
.verdict { display: inline-block; padding: 0.05em 0.5em; border-radius: 0.7em; font-weight: 600;
           font-size: 0.85em; white-space: nowrap; }
.v-exact { background: #1e7d32; color: #fff; }
.v-within { background: #c8e6c9; color: #1b4d1e; }
.v-lesson { background: #fff3cd; color: #6b4e00; border: 1px solid #d39e00; }
.v-not { background: #c62828; color: #fff; }
.v-none { background: #eee; color: #555; }
.ours-expect { color: #555; font-style: italic; }
.holds::before { content: "✓ holds: "; color: #1e7d32; font-weight: 700; }
.fails { color: #8b0000; }
.fails::before { content: "✗ does not hold: "; color: #c62828; font-weight: 700; }
"""


def _e(s) -> str:
    return html.escape(str(s), quote=True)


_VERDICT_CLASS = {EXACT: "v-exact", WITHIN: "v-within", LESSON: "v-lesson", NOT_REPRODUCED: "v-not"}


def _verdict_badge(verdict, tolerance="") -> str:
    cls = _VERDICT_CLASS.get(verdict, "v-none")
    label = verdict_label({"verdict": verdict, "tolerance": tolerance})
    return f'<span class="verdict {cls}">{_e(label)}</span>'


def _book_cell(r: dict) -> str:
    if r.get("book") is not None:
        return f'<td class="num">{_e(fmt(r["book"], r.get("digits")))}</td>'
    if r.get("expected"):
        words = _e(r["expected"])
        return f'<td><span class="ours-expect">ours, not the book\'s: {words}</span></td>'
    return "<td>—</td>"


def _finding(f) -> str:
    if isinstance(f, str):
        return f'<p class="finding">▸ {_e(f)}</p>'
    cls = {True: "finding holds", False: "finding fails", None: "finding"}[f.get("holds")]
    return f'<p class="{cls}">{_e(f["text"])}</p>'


def _section(name: str, spec, manifest: dict | None, failure: str | None) -> str:
    parts = [f'<section id="{_e(name)}">']
    title = manifest["title"] if manifest else (spec.title if spec else name)
    parts.append(f"<h2>{_e(title)} <small><code>{_e(name)}</code></small></h2>")
    shows = manifest.get("shows") if manifest else (spec.shows if spec else "")
    if shows:
        parts.append(f'<p class="shows">{_e(shows)}</p>')
    if failure:
        parts.append(f'<p class="failed">This run failed: {_e(failure)}</p>')
    if manifest is None:
        if not failure:
            parts.append(
                f'<p class="missing">Not run yet: <code>dlscratch experiment {_e(name)}</code></p>'
            )
        parts.append("</section>")
        return "\n".join(parts)

    mode = "quick" if manifest["quick"] else "full size"
    if manifest.get("banner"):
        parts.append(f'<p class="banner">{_e(manifest["banner"])}</p>')
    section = f"book section {manifest['section']} · " if manifest.get("section") else ""
    parts.append(
        f'<p class="meta">{_e(section)}{_e(mode)} · seed {manifest["seed"]} · '
        f"{manifest['wall_time_s']:.1f} s · {_e(manifest['started'])} · "
        f"<code>{_e(manifest['command'])}</code></p>"
    )
    for f in manifest.get("findings", []):
        parts.append(_finding(f))
    for fig in manifest.get("figures", []):
        src = f"{name}/{fig}"
        svg = src[: -len(".png")] + ".svg" if fig.endswith(".png") else src
        parts.append(
            f'<a href="{_e(svg)}"><img src="{_e(src)}" alt="{_e(title)}: {_e(fig)}" '
            'loading="lazy"></a>'
        )
    refs = manifest.get("references", [])
    if refs:
        parts.append(
            "<table><tr><th>quantity</th><th>ours</th><th>book</th><th>verdict</th>"
            "<th>claim judged / note</th></tr>"
        )
        for r in refs:
            words = " — ".join(x for x in (r.get("claim", ""), r.get("note", "")) if x)
            parts.append(
                f"<tr><td>{_e(r['quantity'])}</td>"
                f'<td class="num">{_e(fmt(r["ours"], r.get("digits")))}</td>'
                f"{_book_cell(r)}"
                f"<td>{_verdict_badge(r.get('verdict'), r.get('tolerance', ''))}</td>"
                f"<td>{_e(words)}</td></tr>"
            )
        parts.append("</table>")
    links = [f'<a href="{_e(name)}/{_e(f)}">{_e(f)}</a>' for f in manifest.get("series", [])]
    links.append(f'<a href="{_e(name)}/{MANIFEST}">{MANIFEST}</a>')
    parts.append(f'<p class="meta">data: {" · ".join(links)}</p>')
    details = {
        "config": manifest.get("config"),
        "summary": manifest.get("summary"),
        "dataset": manifest.get("dataset"),
        "versions": manifest.get("versions"),
    }
    parts.append(
        "<details><summary>config, numbers, versions</summary><pre>"
        f"{_e(json.dumps(details, indent=2, ensure_ascii=False))}</pre></details>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def build_report(out, failures: dict | None = None, names=None) -> Path:
    """Write ``out/index.html`` covering every experiment (run, failed or not yet run).

    ``failures``: ``{name: message}`` for runs that raised. ``names``: the
    experiments to list, in order (default: all, in book order).
    Returns the path of the page.
    """
    from dlscratch.experiments import EXPERIMENTS

    out = Path(out)
    failures = dict(failures or {})
    names = list(names) if names is not None else list(EXPERIMENTS)
    manifests = {}
    for name in names:
        if (out / name / MANIFEST).is_file() and name not in failures:
            try:
                manifests[name] = load_manifest(out / name)
            except (OSError, ValueError) as exc:
                failures[name] = f"unreadable {MANIFEST}: {exc}"
    done = sum(1 for n in names if n in manifests)
    totals = dict.fromkeys(VERDICTS, 0)
    for m in manifests.values():
        for r in m.get("references", []):
            if r.get("verdict") in totals:
                totals[r["verdict"]] += 1
    tally = " · ".join(f"{_verdict_badge(v)} {n}" for v, n in totals.items())
    quick = [n for n, m in manifests.items() if m.get("quick")]
    top_banner = (
        f'<p class="banner">{len(quick)} of {done} runs are quick-mode runs: tiny sizes, not '
        "the book's setup; their numbers are not comparable to the book's.</p>"
        if quick
        else ""
    )
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    toc = "\n".join(
        f'<li><a href="#{_e(n)}">{_e(EXPERIMENTS[n].title if n in EXPERIMENTS else n)}</a>'
        + ("" if n in manifests else ' <span class="missing">(not run)</span>')
        + (" <small>(quick)</small>" if manifests.get(n, {}).get("quick") else "")
        + "</li>"
        for n in names
    )
    body = "\n".join(
        _section(n, EXPERIMENTS.get(n), manifests.get(n), failures.get(n)) for n in names
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dlscratch experiments</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>dlscratch experiments</h1>
<p>The figures of <em>Deep Learning from Scratch</em>, chapters 3–8, recomputed with dlscratch.
{done} of {len(names)} experiments present · page written {_e(now)}.
Each figure links to its SVG; each section links to its raw CSV series and its
<code>{MANIFEST}</code> (config, seed, versions, dataset checksum, wall time).
The book column holds numbers the book prints; where it prints none, our own expectation
is shown in italics and marked as ours. Every verdict is computed from the run's numbers.</p>
<p>Verdicts: {tally}</p>
{top_banner}
</header>
<nav><ol>
{toc}
</ol></nav>
{body}
</body>
</html>
"""
    return fileio.write_text(out / INDEX, page)
