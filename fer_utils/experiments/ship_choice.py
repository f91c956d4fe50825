"""Which finished recipe run the shipped default model should be: one rule, on validation, with a margin (issue 24).

Owns the rule the shipped model is (re-)chosen by. Until now two rules were in use and disagreed: every shipped model
was the run with the best no-TTA validation accuracy of its best epoch (``best_val_accuracy`` in ``metrics.json``),
while what ships computes ten-crop, and a lead of a few faces of 2,872 decided. The rule here was committed before
its command first ran, but not blind: nine of the fifteen other runs it was first applied to already had ten-crop
validation scores at the shipped side on file, all below the shipped run's, and every run's test score was known:

1. Every candidate run is scored on notebook 03's validation split (near-duplicate families on one side) with what
   the shipped model computes: ten-crop at the crop side it ships with (:data:`SHIP_CROP`, the ``cpu`` profile's).
2. The leader is the run with the most right answers; a tie keeps the shipped run, and between other runs goes to
   the label first in alphabetical order.
3. The shipped run is replaced by the leader only if the leader is right more often and McNemar's test of the two on
   the same validation images gives ``p < alpha`` after Holm's correction over every candidate compared with the
   shipped run (the leader is the best of many, so its unadjusted p would overstate it). Otherwise it stays. The
   family holds every candidate, worse ones too: Holm controls the family-wise error whichever they are, but the
   bar the leader must clear depends on which runs are in the pool.

:func:`decide` applies the rule to predictions; :func:`validation_predictions` makes them from run folders, cached so
a killed run resumes; :func:`table` is the file ``benchmarks/ship_choice.py`` writes. The test split takes no part:
the table carries each run's published PrivateTest score only for the reader, and :func:`decide` never sees it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import runs, stats
from fer_utils import data as D
from fer_utils.experiments.recipe import split_rows
from fer_utils.experiments.tta_crop import with_crop
from fer_utils.predictor import load_predictor

#: The crop side of ten-crop the shipped model uses (``params/cpu.yaml``'s and the model card's ``crop_fraction``).
SHIP_CROP = 0.98
#: Family-wise error rate of a replacement.
ALPHA = 0.05


def validation_predictions(folders: dict, ds: D.FERDataset, *, fraction: float = SHIP_CROP,
                           split: str = "Validation", cache=None) -> dict:
    """``{label: predicted class per image of split}`` of every run folder's model with ten-crop at ``fraction``.

    ``cache``: an ``.npz`` of earlier predictions, rewritten after each run, so a killed call resumes; an entry is
    reused only for the same label, model file, preprocessing record, dataset, split and its size, and fraction (its
    key holds all of them).
    """
    rows = split_rows(ds, split)
    cache = Path(cache) if cache else None
    done = {}
    if cache and cache.exists():
        with np.load(cache) as z:
            done = {k: z[k] for k in z.files}
    out = {}
    for label, folder in folders.items():
        sha = D.file_sha256(Path(folder) / runs.MODEL_FILE)
        pre = D.file_sha256(Path(folder) / runs.PREPROCESSING_FILE)[:16]
        key = f"{label}|{sha}|{pre}|{ds.checksum}|{split}|{len(rows)}|{float(fraction):g}"
        if key not in done:
            predictor = with_crop(load_predictor(folder), fraction)
            done[key] = predictor.predict(ds.images[rows], tta="ten_crop").argmax(1).astype(np.int8)
            if cache:
                tmp = cache.with_name(cache.stem + ".partial.npz")
                np.savez(tmp, **done)
                tmp.replace(cache)
        out[label] = np.asarray(done[key], dtype=np.int64)
    return out


def decide(y, predictions: dict, shipped: str, *, alpha: float = ALPHA) -> dict:
    """The rule (module docstring) on ``{label: predicted classes}`` of the same images with true classes ``y``.

    Returns ``leader``, ``choice`` (the leader or ``shipped``), ``replace``, the leader's ``p`` and Holm-adjusted
    ``p_holm`` against the shipped run (NaN when the leader is the shipped run), and ``rows``: per run its right
    answers, the faces only it / only the shipped run gets right, McNemar's p, Holm's p and the smallest accuracy
    difference the test would detect with 80% power at that many discordant faces.

    Raises:
        ValueError: ``shipped`` not among the predictions, or predictions that are not one class per image of ``y``.
    """
    y = np.asarray(y)
    if shipped not in predictions:
        raise ValueError(f"shipped run {shipped!r} is not among the candidates {sorted(predictions)}")
    bad = {k: np.shape(p) for k, p in predictions.items() if np.ndim(p) != 1 or len(p) != len(y)}
    if bad:
        raise ValueError(f"predictions of shape {bad}: expected one class per image, ({len(y)},)")
    right = {k: int((np.asarray(p) == y).sum()) for k, p in predictions.items()}
    order = sorted(predictions, key=lambda k: (-right[k], k != shipped, k))
    leader = order[0]
    rows, pvals = [], []
    for label in predictions:
        row = {"run": label, "right": right[label], "images": len(y), "accuracy": right[label] / len(y)}
        if label == shipped:
            row.update({"only this right": 0, "only shipped right": 0, "McNemar p": np.nan, "detectable": np.nan})
        else:
            test = stats.mcnemar_test(y, predictions[shipped], predictions[label])
            discordant = test["a right b wrong"] + test["a wrong b right"]
            row.update({"only this right": test["a wrong b right"], "only shipped right": test["a right b wrong"],
                        "McNemar p": test["p"],
                        "detectable": stats.detectable_difference_mcnemar(len(y), discordant)})
        rows.append(row)
        pvals.append(row["McNemar p"])
    adjusted, _ = stats.holm(pvals, alpha=alpha)
    for row, p in zip(rows, adjusted):
        row["Holm p"] = float(p)
    by = {r["run"]: r for r in rows}
    p_leader, p_holm = by[leader]["McNemar p"], by[leader]["Holm p"]
    replace = bool(leader != shipped and right[leader] > right[shipped] and p_holm < alpha)
    return {"leader": leader, "choice": leader if replace else shipped, "replace": replace, "shipped": shipped,
            "p": float(p_leader), "p_holm": float(p_holm), "alpha": alpha, "rows": rows}


def table(decision: dict, folders: dict, *, fraction: float = SHIP_CROP) -> pd.DataFrame:
    """:func:`decide`'s rows with each run's own record beside them: its no-TTA best-epoch validation accuracy (the
    earlier rule), epochs, and its published PrivateTest accuracy (ten-crop at its own side; not used by the rule),
    sorted by the rule's accuracy."""
    out = []
    for row in decision["rows"]:
        head = runs.read_metrics(folders[row["run"]])["headline"]
        out.append({**row, "crop fraction": float(fraction),
                    "shipped": row["run"] == decision["shipped"], "leader": row["run"] == decision["leader"],
                    "best val no TTA (earlier rule)": head.get("best_val_accuracy"),
                    "epochs": head.get("epochs_run"),
                    "PrivateTest published (not used)": head.get("PrivateTest_accuracy")})
    return pd.DataFrame(out).sort_values(["right", "run"], ascending=[False, True]).reset_index(drop=True)


def verdict(decision: dict) -> str:
    """One sentence: the choice and why."""
    leader, shipped = decision["leader"], decision["shipped"]
    if leader == shipped:
        return f"keep {shipped}: it has the most right answers itself"
    by = {r["run"]: r for r in decision["rows"]}
    lead = by[leader]["right"] - by[shipped]["right"]
    word = f"replace {shipped} with" if decision["replace"] else f"keep {shipped} over"
    return (f"{word} {leader}: {lead:+d} right answers of {by[leader]['images']}, McNemar p {decision['p']:.3g}, "
            f"{decision['p_holm']:.3g} after Holm over {len(by) - 1} candidates (alpha {decision['alpha']:g})")


def markdown(tab: pd.DataFrame, decision: dict, *, fraction: float = SHIP_CROP) -> str:
    """:func:`table` as Markdown, with the verdict under it."""
    lines = [f"Ten-crop at crop side {fraction:g} on {int(tab['images'].iloc[0])} validation images; shipped: "
             f"{decision['shipped']}.", "",
             "| run | epochs | ten-crop val acc (right) | only this / only shipped right | McNemar p (Holm) | "
             "detectable (80%) | best val no TTA (earlier rule) | PrivateTest published (not used) |",
             "|---" * 8 + "|"]
    for _, r in tab.iterrows():
        mark = " (shipped)" if r["shipped"] else (" (leader)" if r["leader"] else "")
        test = "-" if r["shipped"] else f"{r['McNemar p']:.2g} ({r['Holm p']:.2g})"
        det = "-" if r["shipped"] or not np.isfinite(r["detectable"]) else f"{100 * r['detectable']:.2f} pts"
        lines.append(f"| {r['run']}{mark} | {r['epochs']} | {r['accuracy']:.4f} ({r['right']}) | "
                     f"{r['only this right']} / {r['only shipped right']} | {test} | {det} | "
                     f"{r['best val no TTA (earlier rule)']:.4f} | {r['PrivateTest published (not used)']:.4f} |")
    return "\n".join(lines) + f"\n\n**Verdict**: {verdict(decision)}.\n"
