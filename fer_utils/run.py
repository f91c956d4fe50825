"""The suite runner: execute the numbered notebooks with papermill and build the report index.

``python -m fer_utils.run --profile smoke|cpu|paper [--only 01,03] [--param key=value]``

This module owns the order of execution, the check of every parameter before anything
runs, the executed notebooks and their HTML under ``reports/<profile>/``, and
``reports/<profile>/index.html`` with each report's headline metrics and run metadata.
A failing notebook stops the run with exit code 1; its partial HTML still shows the failing
cell. Earlier results are never overwritten: a notebook's previous outputs are moved to
``reports/<profile>/_previous/<timestamp>/`` before it runs again.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import os
import shutil
import sys
import time
from pathlib import Path

from fer_utils import params as P

ROOT = Path(__file__).resolve().parent.parent
# Cell timeouts per profile (seconds): papermill has none by default, and a hung cell in CI
# should fail rather than stall forever.
CELL_TIMEOUT = {"smoke": 900, "cpu": 6 * 3600, "paper": None}


def _previous_dir(out_dir: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return out_dir / "_previous" / stamp


def archive_previous(out_dir: Path, stem: str, archive: Path | None) -> Path | None:
    """Move a notebook's earlier outputs (run folder, .ipynb, .html) into ``archive``."""
    olds = [out_dir / stem, out_dir / f"{stem}.ipynb", out_dir / f"{stem}.html"]
    olds = [p for p in olds if p.exists() and not (p.is_dir() and not any(p.iterdir()))]
    if not olds:
        return archive
    archive = archive or _previous_dir(out_dir)
    archive.mkdir(parents=True, exist_ok=True)
    for p in olds:
        shutil.move(str(p), str(archive / p.name))
    return archive


def to_html(ipynb: Path) -> Path:
    """Render an executed notebook to HTML next to it (images embedded)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    out = ipynb.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def execute(notebook: Path, output: Path, parameters: dict, timeout, log_output: bool) -> None:
    """Run one notebook with papermill (cwd = its folder, like JupyterLab)."""
    import papermill as pm

    pm.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(notebook.parent),
                        kernel_name="python3", progress_bar=False, log_output=log_output,
                        execution_timeout=timeout, report_mode=False)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_index(out_dir: Path, profile: str) -> Path:
    """Write ``index.html`` linking every report with its headline metrics and metadata."""
    runs = _read_json(out_dir / "run.json").get("notebooks", {})
    rows, synthetic = [], False
    for stem in sorted(runs):
        rec = runs[stem]
        metrics = _read_json(out_dir / stem / "metrics.json")
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
        rows.append(f"<tr><td>{link}</td><td style='color:{color}'><b>{status}</b><br>{rec.get('seconds', 0):.1f} s"
                    f"<br><small>{html.escape(rec.get('finished', ''))}</small></td><td><ul>{headline}</ul></td>"
                    f"<td>{meta.get('seed', rec.get('params', {}).get('seed', '-'))}</td><td>{data_txt}</td>"
                    f"<td><small>{html.escape(vtxt)}</small></td></tr>")
    banner = ("<div style='background:#b00020;color:white;padding:14px;font-size:20px;font-weight:bold'>"
              "&#9888; SYNTHETIC DATA: at least one report below ran on the built-in synthetic faces, "
              "not a real dataset.</div>") if synthetic else ""
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


ARTIFACTS = ("metrics.json", "history.csv", "predictions.npz", "model.keras")


def _artifact_links(out_dir: Path, stem: str) -> str:
    """Links to the artifacts of each model run inside a notebook's run folder."""
    items = []
    for metrics in sorted((out_dir / stem).glob("**/metrics.json")):
        run = metrics.parent
        if run == out_dir / stem:
            continue
        rel = run.relative_to(out_dir)
        files = " ".join(f"<a href='{html.escape(str(rel / f))}'>{f.split('.')[0]}</a>" for f in ARTIFACTS
                         if (run / f).exists())
        items.append(f"<li><code>{html.escape(str(run.relative_to(out_dir / stem)))}</code>: {files}</li>")
    return f"<details><summary>{len(items)} model runs</summary><ul>{''.join(items)}</ul></details>" if items else ""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _record(out_dir: Path, stem: str, record: dict):
    path = out_dir / "run.json"
    data = _read_json(path) or {"notebooks": {}}
    data.setdefault("notebooks", {})[stem] = record
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def main(argv=None) -> int:
    """Command-line entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(prog="python -m fer_utils.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke", help="params/<profile>.yaml (smoke, cpu, paper)")
    ap.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,03")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter (NN.key=value for one notebook); repeatable")
    ap.add_argument("--reports-dir", default=str(ROOT / "reports"))
    ap.add_argument("--notebooks-dir", default=str(ROOT / "notebooks"))
    ap.add_argument("--params-dir", default=str(ROOT / "params"))
    ap.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    ap.add_argument("--log-output", action="store_true", help="stream notebook output to this terminal")
    args = ap.parse_args(argv)

    try:
        only = [o for o in args.only.split(",") if o.strip()]
        notebooks = P.list_notebooks(args.notebooks_dir, only)
        if not notebooks:
            raise P.ParamsError(f"{args.notebooks_dir}: no numbered notebooks (NN_name.ipynb) found")
        profile = P.load_profile(args.profile, args.params_dir)
        resolved = P.resolve(profile, notebooks, args.param)
    except P.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The kernel must import this checkout's fer_utils whatever the notebook's cwd is.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    out_dir = Path(args.reports_dir).resolve() / args.profile
    out_dir.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout if args.timeout is not None else CELL_TIMEOUT.get(args.profile)
    archive = None
    total = time.perf_counter()
    for nb in notebooks:
        stem = nb.stem
        archive = archive_previous(out_dir, stem, archive)
        run_dir = out_dir / stem
        run_dir.mkdir(parents=True)
        parameters = dict(resolved[stem], profile=args.profile, run_dir=str(run_dir), reports_dir=str(out_dir))
        output = out_dir / f"{stem}.ipynb"
        print(f"[{args.profile}] {stem} ...", flush=True)
        t0 = time.perf_counter()
        status, error = "ok", ""
        try:
            execute(nb, output, parameters, timeout, args.log_output)
        except Exception as exc:  # papermill raises its own error types for failing cells and timeouts
            status, error = "failed", f"{type(exc).__name__}: {str(exc).strip()[-2000:]}"
        seconds = time.perf_counter() - t0
        if output.exists():
            try:
                to_html(output)
            except Exception as exc:  # a rendering problem must not hide the notebook's own status
                print(f"  warning: HTML rendering of {output} failed: {exc}", file=sys.stderr)
        _record(out_dir, stem, {"status": status, "seconds": round(seconds, 1), "params": parameters,
                                "finished": _dt.datetime.now().isoformat(timespec="seconds"), "error": error})
        write_index(out_dir, args.profile)
        print(f"  {status} in {seconds:.1f} s -> {output.with_suffix('.html')}", flush=True)
        if status != "ok":
            print(f"error: notebook {stem} failed; see {output.with_suffix('.html')}\n{error}", file=sys.stderr)
            return 1
    print(f"done in {time.perf_counter() - total:.1f} s; index: {out_dir / 'index.html'}")
    if archive:
        print(f"previous outputs kept in {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
