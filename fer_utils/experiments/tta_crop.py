"""The crop side of ten-crop test-time augmentation, chosen on validation (issue 24).

Owns one choice: ``crop_fraction`` of a run's preprocessing record. Ten-crop averages five crops (the four corners
and the centre), each with its mirror, resized back to the model's input, so the crop side sets both how far the
views shift and how much they zoom in. The recipe's 0.875 (42 of 48 pixels, a 1.14x zoom) was a default that no
measurement chose, while the recipe trains with shifts and zooms of at most 10%.

:func:`validation_grid` scores run folders' models with ten-crop at each candidate fraction on the validation split
(notebook 03's carve-out: near-duplicate families on one side); :func:`choose` takes the fraction with the best mean
validation accuracy over the runs; :func:`test_table` scores each run on a test split with the chosen fraction
against the run's own, as published and without near-duplicates of training images, with McNemar's test on the same
images. Nothing is trained and the test split plays no part in the choice. ``benchmarks/tta_crop.py`` is the command
line.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import runs, stats
from fer_utils import data as D
from fer_utils.evaluate import compute_metrics
from fer_utils.evaluate.tta import crop_boxes
from fer_utils.experiments.recipe import split_rows
from fer_utils.predictor import load_predictor

#: Columns of :func:`validation_grid`; a cached row is reused only when its model, data and image count match.
GRID_COLUMNS = ["run", "crop fraction", "crop px", "accuracy", "images", "model_sha256", "data_checksum"]


def crop_pixels(fractions, side: int) -> dict:
    """``{fraction: crop side in pixels}`` in the order given.

    Raises:
        ValueError: a fraction outside (0, 1) (at 1 the five crops are one image: that is ``flip``), or two fractions
            that crop the same number of pixels (say which).
    """
    out, seen = {}, {}
    for f in fractions:
        f = float(f)
        if not 0 < f < 1:
            raise ValueError(f"crop fraction {f!r}: expected a number in (0, 1); at 1 the five crops are one image")
        px = crop_boxes(side, side, f, ten=True)[0]
        if px in seen:
            raise ValueError(f"crop fractions {seen[px]} and {f} both crop {px} of {side} pixels: give one of them")
        seen[px], out[f] = f, px
    return out


def with_crop(predictor, fraction: float):
    """A shallow copy of ``predictor`` whose ten-crop takes ``fraction`` of the side (the model is shared)."""
    out = copy.copy(predictor)
    out.preprocessing = {**predictor.preprocessing, "crop_fraction": float(fraction)}
    return out


def validation_grid(folders: dict, ds: D.FERDataset, fractions, *, split: str = "Validation",
                    cache=None) -> pd.DataFrame:
    """Ten-crop accuracy on ``split`` of every run's model (``{label: run folder}``) at every fraction.

    ``cache``: a CSV of earlier rows (:data:`GRID_COLUMNS`) of this split, rewritten after each new row, so a killed
    run resumes where it stopped; rows of another model file, dataset or number of images are not reused.
    """
    rows = split_rows(ds, split)
    cache = Path(cache) if cache else None
    done = pd.read_csv(cache) if cache and cache.exists() else pd.DataFrame(columns=GRID_COLUMNS)
    if list(done.columns) != GRID_COLUMNS:
        raise ValueError(f"{cache}: expected the columns {GRID_COLUMNS}; got {list(done.columns)}")
    out = []
    for label, folder in folders.items():
        predictor, sha = load_predictor(folder), D.file_sha256(Path(folder) / runs.MODEL_FILE)
        for f, px in crop_pixels(fractions, int(predictor.preprocessing["input_size"][0])).items():
            hit = done[(done["run"] == label) & np.isclose(done["crop fraction"], f) & (done["model_sha256"] == sha)
                       & (done["data_checksum"] == ds.checksum) & (done["images"] == len(rows))]
            if len(hit):
                out.append(hit.iloc[0].to_dict())
                continue
            right = with_crop(predictor, f).predict(ds.images[rows], tta="ten_crop").argmax(1) == ds.labels[rows]
            out.append({"run": label, "crop fraction": f, "crop px": px, "accuracy": float(right.mean()),
                        "images": len(rows), "model_sha256": sha, "data_checksum": ds.checksum})
            if cache:
                kept = done[~done.set_index(["run", "crop fraction"]).index.isin([(label, f)])]
                pd.concat([kept, pd.DataFrame(out)]).drop_duplicates(["run", "crop fraction"], keep="last").to_csv(
                    cache, index=False)
    return pd.DataFrame(out, columns=GRID_COLUMNS)


def choose(grid: pd.DataFrame) -> float:
    """The fraction with the best mean accuracy over the runs of ``grid`` (only fractions scored on every run); a tie
    goes to the larger crop, the milder change of the image.

    Raises:
        ValueError: no fraction was scored on every run.
    """
    runs_n = grid["run"].nunique()
    by = grid.groupby("crop fraction")["accuracy"].agg(["mean", "count"])
    by = by[by["count"] == runs_n].round({"mean": 12})  # equal means tie, whatever the summation order
    if by.empty:
        raise ValueError(f"no crop fraction was scored on all {runs_n} runs; the grid has {sorted(grid['run'])}")
    return float(by.reset_index().sort_values(["mean", "crop fraction"], ascending=False).iloc[0]["crop fraction"])


def test_table(folders: dict, ds: D.FERDataset, fraction: float, *, split: str = "PrivateTest") -> pd.DataFrame:
    """Each run on ``split`` with ten-crop at its own fraction and at ``fraction``: accuracy and macro-F1 as published
    and without near-duplicates of training images (``data.leaked_rows``), the difference, McNemar's p and the
    discordant counts (images only the own crop gets right / only the chosen one).

    Raises:
        ValueError: a run whose own TTA is not ten-crop (its own score would not be its published one).
    """
    rows = split_rows(ds, split)
    keep = ~D.leaked_rows(ds)[rows]
    y = ds.labels[rows]
    out = []
    for label, folder in folders.items():
        predictor = load_predictor(folder)
        if predictor.preprocessing["tta"] != "ten_crop":
            raise ValueError(f"{folder}: its TTA is {predictor.preprocessing['tta']!r}, not ten_crop; the table "
                             "compares a run's own ten-crop with the chosen crop")
        own = float(predictor.preprocessing["crop_fraction"])
        pred = {name: with_crop(predictor, f).predict(ds.images[rows], tta="ten_crop").argmax(1)
                for name, f in (("own", own), ("chosen", fraction))}
        row = {"run": label, "split": split, "own fraction": own, "chosen fraction": float(fraction)}
        for name, p in pred.items():
            row[f"{name} accuracy"] = float((p == y).mean())
            row[f"{name} macro-F1"] = compute_metrics(y, p, ds.class_names)["macro_f1"]
            row[f"{name} dedup accuracy"] = float((p == y)[keep].mean())
            row[f"{name} dedup macro-F1"] = compute_metrics(y[keep], p[keep], ds.class_names)["macro_f1"]
        test = stats.mcnemar_test(y, pred["own"], pred["chosen"])
        row.update({"diff": row["chosen accuracy"] - row["own accuracy"],
                    "diff dedup": row["chosen dedup accuracy"] - row["own dedup accuracy"],
                    "McNemar p": test["p"], "own right only": test["a right b wrong"],
                    "chosen right only": test["a wrong b right"],
                    "images": len(rows), "images dedup": int(keep.sum())})
        out.append(row)
    return pd.DataFrame(out)


def markdown(grid: pd.DataFrame, table: pd.DataFrame, fraction: float) -> str:
    """The validation grid (runs x fractions, mean last) and the test table, as Markdown."""
    wide = grid.pivot_table(index="run", columns="crop fraction", values="accuracy", sort=False)
    px = grid.groupby("crop fraction")["crop px"].first()
    head = " | ".join(f"{f:g} ({px[f]} px){' chosen' if np.isclose(f, fraction) else ''}" for f in wide.columns)
    lines = [f"| run | {head} |", "|---" * (len(wide.columns) + 1) + "|"]
    for label, r in [*wide.iterrows(), ("mean", wide.mean())]:
        lines.append(f"| {label} | " + " | ".join(f"{v:.4f}" for v in r) + " |")
    lines += ["", "| run | own (dedup) | chosen (dedup) | diff (dedup) | macro-F1 own / chosen | McNemar p "
              "(own right / chosen right) |", "|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['run']} | {r['own accuracy']:.4f} ({r['own dedup accuracy']:.4f}) | "
                     f"{r['chosen accuracy']:.4f} ({r['chosen dedup accuracy']:.4f}) | {100 * r['diff']:+.2f} "
                     f"({100 * r['diff dedup']:+.2f}) | {r['own macro-F1']:.3f} / {r['chosen macro-F1']:.3f} | "
                     f"{r['McNemar p']:.2g} ({r['own right only']} / {r['chosen right only']}) |")
    return "\n".join(lines) + "\n"
