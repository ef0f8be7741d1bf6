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
from dlscratch.experiments.base import MANIFEST, fmt, load_manifest

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
"""


def _e(s) -> str:
    return html.escape(str(s), quote=True)


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
    section = f"book section {manifest['section']} · " if manifest.get("section") else ""
    parts.append(
        f'<p class="meta">{_e(section)}{_e(mode)} · seed {manifest["seed"]} · '
        f"{manifest['wall_time_s']:.1f} s · {_e(manifest['started'])} · "
        f"<code>{_e(manifest['command'])}</code></p>"
    )
    for sentence in manifest.get("findings", []):
        parts.append(f'<p class="finding">▸ {_e(sentence)}</p>')
    for fig in manifest.get("figures", []):
        src = f"{name}/{fig}"
        svg = src[: -len(".png")] + ".svg" if fig.endswith(".png") else src
        parts.append(
            f'<a href="{_e(svg)}"><img src="{_e(src)}" alt="{_e(title)}: {_e(fig)}" '
            'loading="lazy"></a>'
        )
    refs = manifest.get("references", [])
    if refs:
        parts.append("<table><tr><th>quantity</th><th>ours</th><th>book</th><th>note</th></tr>")
        for r in refs:
            parts.append(
                f"<tr><td>{_e(r['quantity'])}</td>"
                f'<td class="num">{_e(fmt(r["ours"], r.get("digits")))}</td>'
                f'<td class="num">{_e(fmt(r["book"], r.get("digits")))}</td>'
                f"<td>{_e(r.get('note', ''))}</td></tr>"
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
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    toc = "\n".join(
        f'<li><a href="#{_e(n)}">{_e(EXPERIMENTS[n].title if n in EXPERIMENTS else n)}</a>'
        + ("" if n in manifests else ' <span class="missing">(not run)</span>')
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
<p>The figures of <em>Deep Learning from Scratch</em>, chapters 3–6, recomputed with dlscratch.
{done} of {len(names)} experiments present · page written {_e(now)}.
Each figure links to its SVG; each section links to its raw CSV series and its
<code>{MANIFEST}</code> (config, seed, versions, dataset checksum, wall time).</p>
</header>
<nav><ol>
{toc}
</ol></nav>
{body}
</body>
</html>
"""
    return fileio.write_text(out / INDEX, page)
