"""Exploratory data analysis: the tables and checks of notebook 01.

This module owns the EDA stage: loading the datasets it can find, comparing class counts
with the published tables, the duplicate/leakage analysis, FER vs FER+ label agreement,
CK+ subjects per class, and the ``metrics.json`` of the EDA run. Figures come from
:mod:`fer_utils.plots`; this module only decides what to show.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import data as D

PUBLISHED = Path(__file__).with_name("published.json")


def published() -> dict:
    """The studies' published numbers (``fer_utils/published.json``, sources named inside)."""
    return json.loads(PUBLISHED.read_text())


def compare_with_published(ds: D.FERDataset) -> pd.DataFrame:
    """FER-2013 class counts next to Study A's Table II, with a ``match`` column.

    Returns an empty frame for datasets that are not FER-2013 with its three splits.
    """
    ref = published()["fer2013_class_counts"]
    if ds.class_names != tuple(ref["classes"]) or not {"Training", "PublicTest", "PrivateTest"} <= set(ds.split_names):
        return pd.DataFrame()
    counts = ds.class_counts()
    rows = []
    for i, name in enumerate(ref["classes"]):
        train = int(counts.loc[name, "Training"])
        test = int(counts.loc[name, "PublicTest"] + counts.loc[name, "PrivateTest"])
        rows.append({"class": name, "train": train, "published train": ref["train"][i], "test (Public+Private)": test,
                     "published test": ref["test"][i],
                     "match": train == ref["train"][i] and test == ref["test"][i]})
    return pd.DataFrame(rows).set_index("class")


def split_totals(ds: D.FERDataset) -> pd.DataFrame:
    """Rows per split next to the published FER-2013 totals (where the split names match)."""
    ref = published()["fer2013_class_counts"]["split_totals"]
    return pd.DataFrame([{"split": s, "rows": int((ds.splits == s).sum()), "published (FER-2013)": ref.get(s)}
                         for s in ds.split_names]).set_index("split")


def optional_dataset(kind: str, data_dir="auto", **kwargs):
    """Load ``ferplus`` or ``ckplus`` if it can be found, else return None (with the reason printed)."""
    try:
        return D.load_dataset(kind, data_dir, **kwargs)
    except D.DataError as exc:
        print(f"{kind}: not available ({exc})")
        return None


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


def summary(ds: D.FERDataset, dups: pd.DataFrame, comparison: pd.DataFrame, agreement_rate=None,
            ckplus: D.FERDataset | None = None) -> dict:
    """Headline numbers for the report index."""
    head = {"dataset": ds.name + (" (SYNTHETIC)" if ds.is_synthetic else ""), "images": int(len(ds))}
    head.update({f"n_{s}": int((ds.splits == s).sum()) for s in ds.split_names})
    head["duplicate_groups"] = int(len(dups))
    head["duplicate_groups_across_splits"] = int(dups["cross_split"].sum()) if len(dups) else 0
    head["duplicate_groups_conflicting"] = int(dups["conflicting"].sum()) if len(dups) else 0
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
