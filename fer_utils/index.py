"""The report index of a profile: ``reports/<profile>/index.html`` and the run record ``run.json``.

``run.json`` holds, per notebook, its status (running, ok, failed), wall time, parameters and error;
the runner decides from it whether a re-run resumes. ``index.html`` links every report that exists
with its headline numbers, seed, dataset, checksum, versions, and the files of each model run.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path

from fer_utils import artifacts, runs


def runs_record(out_dir: Path) -> dict:
    """The ``notebooks`` section of ``run.json`` (empty when there is none)."""
    return read_json(out_dir / "run.json").get("notebooks", {})


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_index(out_dir: Path, profile: str) -> Path:
    """Write ``index.html`` linking every report with its headline metrics and metadata."""
    entries = runs_record(out_dir)
    rows, synthetic = [], False
    for stem in sorted(entries):
        rec = entries[stem]
        metrics = read_json(out_dir / stem / runs.METRICS_FILE)
        meta = metrics.get("metadata", {})
        data = meta.get("data", {})
        synthetic |= bool(meta.get("synthetic_data"))
        headline = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(_fmt(v))}</li>"
                           for k, v in metrics.get("headline", {}).items()) or "<li>(no metrics.json)</li>"
        vers = meta.get("versions", {})
        vtxt = ", ".join(f"{k} {vers[k]}" for k in ("tensorflow", "keras", "numpy", "python") if k in vers)
        status = rec.get("status", "?")
        color = {"ok": "#1b5e20", "failed": "#b00020"}.get(status, "#555")
        link = f"<a href='{html.escape(stem)}.html'>{html.escape(stem)}</a>" if (out_dir / f"{stem}.html").exists() \
            else html.escape(stem)
        data_txt = (f"{html.escape(str(data.get('name', '?')))} ({data.get('n', '?')} rows)<br>"
                    f"<code>{html.escape(str(data.get('checksum', ''))[:16])}</code><br>"
                    f"<small>{html.escape(str(data.get('path', '')))}</small>") if data else "-"
        link += _artifact_links(out_dir, stem)
        mode = f"<br><small>{html.escape(rec['mode'])}</small>" if rec.get("mode") else ""
        rows.append(f"<tr><td>{link}</td><td style='color:{color}'><b>{status}</b>{mode}"
                    f"<br>{rec.get('seconds', 0):.1f} s"
                    f"<br><small>{html.escape(rec.get('finished', ''))}</small></td><td><ul>{headline}</ul></td>"
                    f"<td>{meta.get('seed', rec.get('params', {}).get('seed', '-'))}</td><td>{data_txt}</td>"
                    f"<td><small>{html.escape(vtxt)}</small></td></tr>")
    banner = ("<div style='background:#b00020;color:white;padding:14px;font-size:20px;font-weight:bold'>"
              f"&#9888; {html.escape(artifacts.SYNTHETIC_INDEX_BANNER)}</div>") if synthetic else ""
    page = f"""<!doctype html><html><head><meta charset='utf-8'><title>FER suite: {profile}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:6px;vertical-align:top}}th{{background:#eee}}ul{{margin:0;padding-left:1.2em}}</style></head><body>
<h1>FER research suite — profile <code>{html.escape(profile)}</code></h1>{banner}
<p>Generated {_dt.datetime.now().isoformat(timespec='seconds')}. Earlier outputs of re-run notebooks are kept
under <code>_previous/</code>.</p>
<table><tr><th>report</th><th>status / wall time</th><th>headline</th><th>seed</th><th>dataset / sha256</th>
<th>versions</th></tr>{''.join(rows)}</table></body></html>"""
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _artifact_links(out_dir: Path, stem: str) -> str:
    """Links to the artifacts of each model run inside a notebook's run folder."""
    items = []
    for run in runs.finished_run_folders(out_dir / stem):
        rel = run.relative_to(out_dir)
        files = " ".join(f"<a href='{html.escape(str(rel / f))}'>{f.split('.')[0]}</a>"
                         for f in (*runs.RUN_FILES, runs.LAST_MODEL_FILE) if (run / f).exists())
        items.append(f"<li><code>{html.escape(str(run.relative_to(out_dir / stem)))}</code>: {files}</li>")
    return f"<details><summary>{len(items)} model runs</summary><ul>{''.join(items)}</ul></details>" if items else ""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def record(out_dir: Path, stem: str, entry: dict | None):
    """Set (or with None, remove) a notebook's entry in ``run.json``, atomically."""
    path = out_dir / "run.json"
    data = read_json(path) or {"notebooks": {}}
    if entry is None:
        data.setdefault("notebooks", {}).pop(stem, None)
    else:
        data.setdefault("notebooks", {})[stem] = entry
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
