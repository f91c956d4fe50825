"""Exploratory data analysis: the tables and checks of notebook 01.

This module owns the EDA stage: the duplicate/leakage analysis (byte copies and near-duplicates: counts per split
pair and per class, families with conflicting labels, example pairs by hash distance), FER vs FER+ label agreement,
CK+ subjects per class, and the headline of the EDA run. The comparisons with the studies'
published tables live with the published numbers (:mod:`fer_utils.experiments.published`). Figures come from
:mod:`fer_utils.plots`; this module only decides what to show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_utils import data as D


def ferplus_agreement(ferplus: D.FERDataset | None):
    """FER-2013 label vs FER+ majority vote: a cross-table and the agreement rate (None without FER+)."""
    if ferplus is None:
        return None, None
    fer_labels = ferplus.meta["fer_label"].to_numpy()
    return D.label_agreement(fer_labels, ferplus.labels), D.agreement_rate(fer_labels, ferplus.labels)


def ferplus_drop_reasons(ferplus: D.FERDataset) -> pd.Series:
    """Why FER+ rows were dropped (majority unknown / NF / tie / no name), counted."""
    reasons = pd.Series([r for _, r in ferplus.skipped], dtype=object)
    return reasons.value_counts().rename("rows dropped")


KIND_ORDER = {"exact": 0, "near": 1, "mirror": 2}


def near_duplicates(ds: D.FERDataset) -> dict:
    """Near-duplicates of ``ds`` (``data.dataset_pairs``: byte copies, re-crops, re-exposures, mirrors) in tables.

    Returns:
        ``pairs``: every verified pair with both rows' source id, split and label, kind, score, hash distance and
        family (notebook 01's ``near_duplicates.csv``); ``by_split_pair``: for each split and each split it may
        leak into, the images with a duplicate there, by their best kind; ``by_class``: per class, the test images
        whose family holds a Training (or Validation) image; ``conflicting``: families whose members carry
        different labels, by majority class; ``families``: the family table; ``family``: the id of every row.
    """
    pairs = D.dataset_pairs(ds)
    family = D.families(ds, pairs)
    table = D.family_table(ds, family)
    out = pairs.assign(source_i=ds.source_ids[pairs["i"].to_numpy(int)],
                       source_j=ds.source_ids[pairs["j"].to_numpy(int)], family=family[pairs["i"].to_numpy(int)])
    both = pd.concat([pairs[["i", "split_i", "split_j", "kind"]],
                      pairs.rename(columns={"i": "j", "j": "i", "split_i": "split_j", "split_j": "split_i"})
                      [["i", "split_i", "split_j", "kind"]]], ignore_index=True)
    both["rank"] = both["kind"].map(KIND_ORDER)
    best = both.groupby(["split_i", "split_j", "i"])["rank"].min().reset_index()
    kinds = list(KIND_ORDER)
    rows = []
    for (a, b), g in best.groupby(["split_i", "split_j"], sort=False):
        counts = g["rank"].value_counts()
        size = int((ds.splits == a).sum())
        by_kind = {k: int(counts.get(n, 0)) for n, k in enumerate(kinds)}
        rows.append({"images of": a, "with a duplicate in": b, **by_kind, "any": len(g), "of": size,
                     "share": len(g) / max(1, size)})
    by_pair = pd.DataFrame(rows, columns=["images of", "with a duplicate in", *kinds, "any", "of", "share"])
    train = [s for s in ("Training", "Validation") if s in ds.split_names]
    leaked, copies = D.leaked_rows(ds, train, family), D.copies_of_training(ds, train)
    tests = ~np.isin(ds.splits, train)
    by_class = pd.DataFrame([{"class": c, "test images": int((tests & (ds.labels == k)).sum()),
                              "copies of training (any kind)": int((leaked & (ds.labels == k)).sum()),
                              "byte copies": int((copies & (ds.labels == k)).sum())}
                             for k, c in enumerate(ds.class_names)]).set_index("class")
    by_class["share"] = by_class["copies of training (any kind)"] / by_class["test images"].clip(lower=1)
    confl = table[table["conflicting"].astype(bool)]
    conflicting = pd.DataFrame({"families": confl["majority"].value_counts(),
                                "rows": confl.groupby("majority")["n"].sum()}).fillna(0).astype(int)
    conflicting.index.name = "majority class"
    return {"pairs": out, "by_split_pair": by_pair, "by_class": by_class, "conflicting": conflicting,
            "families": table, "family": family}


def example_pairs(ds: D.FERDataset, pairs: pd.DataFrame, distances=(0, 2, 4, 6, 8, 10, 12, 14), seed: int = 0):
    """One near or mirror pair per hash distance (the closest available above each value), as ``(top, bottom,
    titles)`` for ``plots.image_pairs``: what the finder calls one photograph at each distance."""
    near = pairs[pairs["kind"] != "exact"]
    top, bottom, titles = [], [], []
    rng = np.random.default_rng(seed)
    for d in distances:
        at = near[near["distance"] == d]
        if at.empty:
            continue
        r = at.iloc[int(rng.integers(len(at)))]
        i, j = int(r["i"]), int(r["j"])
        top.append(ds.images[i])
        bottom.append(ds.images[j][:, ::-1] if r["kind"] == "mirror" else ds.images[j])
        titles.append(f"d={d} {r['kind']}\n{r['score']:.2f} {ds.splits[i][:7]}")
    return top, bottom, titles


def summary(ds: D.FERDataset, dups: pd.DataFrame, comparison: pd.DataFrame, agreement_rate=None,
            ckplus: D.FERDataset | None = None, near: dict | None = None) -> dict:
    """Headline numbers for the report index (``near``: :func:`near_duplicates`)."""
    head = {"dataset": ds.name + (" (SYNTHETIC)" if ds.is_synthetic else ""), "images": int(len(ds))}
    head.update({f"n_{s}": int((ds.splits == s).sum()) for s in ds.split_names})
    head["duplicate_groups"] = int(len(dups))
    head["duplicate_groups_across_splits"] = int(dups["cross_split"].sum()) if len(dups) else 0
    head["duplicate_groups_conflicting"] = int(dups["conflicting"].sum()) if len(dups) else 0
    if near is not None:
        by_class = near["by_class"]
        head["test_copies_of_training_any_kind"] = int(by_class["copies of training (any kind)"].sum())
        head["test_copies_of_training_bytes"] = int(by_class["byte copies"].sum())
        head["near_duplicate_families"] = int(len(near["families"]))
        head["families_conflicting_labels"] = int(near["conflicting"]["families"].sum())
    if not comparison.empty:
        head["counts_match_published"] = bool(comparison["match"].all())
    if agreement_rate is not None:
        head["fer_vs_ferplus_agreement"] = round(float(agreement_rate), 4)
    if ckplus is not None:
        head["ckplus_subjects"] = int(ckplus.meta["subject"].nunique())
    return head


def sample_ids(ds: D.FERDataset, n: int = 5) -> list:
    """A few source ids per split (for the record of what was loaded)."""
    return {s: ds.source_ids[ds.splits == s][:n].tolist() for s in ds.split_names}


def class_balance(ds: D.FERDataset) -> pd.DataFrame:
    """Per split: the imbalance ratio (largest / smallest class) and the majority-class baseline accuracy."""
    rows = []
    for s in ds.split_names:
        counts = np.bincount(ds.labels[ds.splits == s], minlength=ds.num_classes)
        nz = counts[counts > 0]
        rows.append({"split": s, "imbalance ratio": float(nz.max() / nz.min()) if len(nz) else np.nan,
                     "majority class": ds.class_names[int(counts.argmax())],
                     "majority baseline accuracy": float(counts.max() / counts.sum()) if counts.sum() else np.nan})
    return pd.DataFrame(rows).set_index("split")
