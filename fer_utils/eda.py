"""Exploratory data analysis: the tables and checks of notebook 01.

This module owns the EDA stage: the duplicate/leakage analysis, FER vs FER+ label agreement,
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
