"""Collecting results: model runs read back from their run folders (never retrained) and put side by side.

Runs are only compared when they were trained on the same data: each model run records the checksum
of the prepared dataset (pixels, labels and splits, so the subsample and the validation split are
covered too); :func:`combine_results` and :func:`attention_comparison` say so in a ``same data``
column and print a warning when they differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import runs

DATA_COLUMN = "same data"


def collect_results(run_dir) -> pd.DataFrame:
    """Every model run below ``run_dir`` (their ``metrics.json``) as a table, with each run's data checksum.

    ``<model>/`` runs are indexed by the model name; seed runs and ensembles (``<model>/seed<k>/``,
    ``<model>/ensemble/``) by their folder, with the model's name in ``arch``.
    """
    rows = []
    root = Path(run_dir)
    found = [*root.glob(f"*/{runs.METRICS_FILE}"), *root.glob(f"*/seed*/{runs.METRICS_FILE}"),
             *root.glob(f"*/ensemble/{runs.METRICS_FILE}")]
    for path in sorted(found):
        m = runs.read_metrics(path.parent)
        if "model" in m:
            checksum = m["headline"].get("data_checksum") or m.get("metadata", {}).get("data", {}).get("checksum")
            rel = path.parent.relative_to(root).as_posix()
            rows.append({"model": m["model"] if "/" not in rel else rel, **m["headline"], "data_checksum": checksum,
                         "arch": m["model"]})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def empty_results() -> pd.DataFrame:
    """A results table with no rows (a part of a notebook that did not run in this run, e.g. in a subset)."""
    return pd.DataFrame(index=pd.Index([], name="model"))


def load_histories(run_dir, names) -> dict:
    """``{model: history DataFrame}`` from each model's ``history.csv``."""
    return {n: runs.load_history(Path(run_dir) / n) for n in names}


def trained_runs(results: pd.DataFrame) -> list:
    """The rows of a results table that trained a model (ensembles have no learning curves), as folder names."""
    if "status" not in results:
        return list(results.index)
    return [str(n) for n, st in results["status"].items() if st != "ensembled"]


def sibling_run(run_dir, reports_dir, notebook: str) -> Path:
    """Run folder of another notebook of the same profile (``reports/<profile>/<notebook>``)."""
    base = Path(reports_dir) if reports_dir else Path(run_dir).parent
    return base / notebook


def combine_results(results: pd.DataFrame, other_run) -> pd.DataFrame:
    """This notebook's results plus the model runs found in ``other_run`` (not retrained).

    Adds a ``same data`` column: True where a run was trained and evaluated on the same prepared data
    (checksum) as this notebook's runs, False (with a printed warning naming the runs) otherwise.
    """
    other = collect_results(other_run) if Path(other_run).is_dir() else pd.DataFrame()
    if other.empty:
        print(f"no earlier model runs found in {other_run}: comparing within this notebook only")
        return mark_same_data(results)
    print(f"plain models read from {other_run}: {list(other.index)}")
    return mark_same_data(pd.concat([other[~other.index.isin(results.index)], results]),
                          reference=_reference_checksum(results))


def _reference_checksum(results: pd.DataFrame):
    if "data_checksum" not in results or results.empty:
        return None
    values = results["data_checksum"].dropna()
    return values.iloc[-1] if len(values) else None


def mark_same_data(table: pd.DataFrame, reference=None) -> pd.DataFrame:
    """Add the ``same data`` column (checksum equal to ``reference``, default: the last row's) and warn."""
    if table.empty or "data_checksum" not in table:
        return table
    reference = reference or _reference_checksum(table)
    table = table.copy()
    table[DATA_COLUMN] = table["data_checksum"] == reference
    differ = list(table.index[~table[DATA_COLUMN]])
    if differ:
        print(f"WARNING: {differ} were trained on different data (checksum) from the others; their numbers are "
              "not comparable. Re-run them in the same profile with the same data parameters.")
    return table


def attention_comparison(results: pd.DataFrame, split: str = "PrivateTest") -> pd.DataFrame:
    """Each attention model next to its plain counterpart (the registry's pairs): accuracy and macro-F1 deltas, as
    published and on the deduplicated test split when the results carry it."""
    from fer_utils import models

    col, f1 = f"{split}_accuracy", f"{split}_macro_f1"
    rows = []
    for model, base in models.attention_pairs(results.index):
        row = {"model": model, "baseline": base, "accuracy": results.loc[model, col],
               "baseline accuracy": results.loc[base, col],
               "delta accuracy": results.loc[model, col] - results.loc[base, col],
               "delta macro-F1": results.loc[model, f1] - results.loc[base, f1]}
        dcol, df1 = f"{split}_dedup_accuracy", f"{split}_dedup_macro_f1"
        if dcol in results and pd.notna(results.loc[model, dcol]) and pd.notna(results.loc[base, dcol]):
            row["delta accuracy (dedup)"] = results.loc[model, dcol] - results.loc[base, dcol]
            row["delta macro-F1 (dedup)"] = results.loc[model, df1] - results.loc[base, df1]
        if "data_checksum" in results:
            row[DATA_COLUMN] = bool(results.loc[model, "data_checksum"] == results.loc[base, "data_checksum"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def headline(results: pd.DataFrame, split: str = "PrivateTest") -> dict:
    """Index-page headline: each model's accuracy on ``split`` (and deduplicated), the best model, and which were
    resumed/reused."""
    col = f"{split}_accuracy"
    if results.empty or col not in results:
        return {}
    out = {}
    for m, a in results[col].items():
        out[f"{m} {split} acc"] = round(float(a), 4)
        dedup = results[f"{split}_dedup_accuracy"].get(m) if f"{split}_dedup_accuracy" in results else None
        if dedup is not None and pd.notna(dedup):
            out[f"{m} {split} (dedup) acc"] = round(float(dedup), 4)
    out["best"] = str(results[col].idxmax())
    if "status" in results:
        # Say which models were not trained from scratch by this run.
        for status in ("resumed", "evaluated", "reused"):
            names = [str(m) for m, st in results["status"].items() if st == status]
            if names:
                out[status] = ", ".join(names)
    return out


def confusion_matrices(run_dir, names, split: str, normalized: bool = True) -> dict:
    """``{model: confusion matrix on split}`` read from each model's ``metrics.json``."""
    key = "confusion_matrix_normalized" if normalized else "confusion_matrix"
    out = {}
    for n in names:
        m = runs.read_metrics(Path(run_dir) / n)
        if split in m.get("splits", {}):
            out[n] = m["splits"][split][key]
    return out


def results_records(results: pd.DataFrame) -> list:
    """A results table as JSON-ready records (NaN as None) for ``metrics.json``."""
    return results.reset_index().replace({np.nan: None}).to_dict(orient="records")
