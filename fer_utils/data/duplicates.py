"""Exact-duplicate and leakage detection (byte-identical images within and across splits)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from fer_utils.data.dataset import FERDataset


# ----------------------------------------------------------------------------- descriptive statistics

def image_hashes(images: np.ndarray) -> np.ndarray:
    """SHA-1 of each image's bytes (hex strings), for exact-duplicate detection."""
    return np.array([hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images], dtype=object)


def find_duplicates(ds: FERDataset) -> pd.DataFrame:
    """Groups of byte-identical images, within and across splits.

    Returns:
        One row per group of 2+ identical images: ``hash``, ``n``, ``splits`` (sorted
        unique), ``labels`` (class names, sorted unique), ``cross_split`` (the group spans
        splits: leakage), ``conflicting`` (different labels), ``source_ids``.
    """
    hashes = image_hashes(ds.images)
    df = pd.DataFrame({"hash": hashes, "split": ds.splits, "label": [ds.class_names[i] for i in ds.labels],
                       "source": ds.source_ids})
    dup = df[df.duplicated("hash", keep=False)]
    rows = []
    for h, g in dup.groupby("hash", sort=False):
        rows.append({"hash": h, "n": len(g), "splits": sorted(set(g.split)), "labels": sorted(set(g.label)),
                     "cross_split": g.split.nunique() > 1, "conflicting": g.label.nunique() > 1,
                     "source_ids": list(g.source)})
    return pd.DataFrame(rows, columns=["hash", "n", "splits", "labels", "cross_split", "conflicting", "source_ids"])


def duplicate_summary(ds: FERDataset, dups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Counts of duplicate groups and rows, in two views.

    Rows 1-4 look at groups of identical images over the whole dataset (all; spanning
    splits = leakage; with conflicting labels). Rows 5-6 group by (image, split), the view
    FER-2013's provenance notes use (1,074 groups / 2,341 rows within a Usage on the real set).
    """
    dups = find_duplicates(ds) if dups is None else dups
    rows = []

    def add(kind, groups, n_rows):
        rows.append({"kind": kind, "groups": int(groups), "rows": int(n_rows)})

    cross = dups["cross_split"].to_numpy(dtype=bool) if len(dups) else np.zeros(0, bool)
    confl = dups["conflicting"].to_numpy(dtype=bool) if len(dups) else np.zeros(0, bool)
    add("identical images (any split)", len(dups), dups["n"].sum() if len(dups) else 0)
    add("groups spanning splits (leakage)", cross.sum(), dups["n"][cross].sum() if len(dups) else 0)
    add("groups with conflicting labels", confl.sum(), dups["n"][confl].sum() if len(dups) else 0)
    per = pd.DataFrame({"hash": image_hashes(ds.images), "split": ds.splits, "label": ds.labels})
    g = per.groupby(["hash", "split"]).agg(n=("label", "size"), labels=("label", "nunique"))
    g = g[g.n > 1]
    add("within one split: groups", len(g), g.n.sum())
    add("within one split: conflicting labels", (g.labels > 1).sum(), g.n[g.labels > 1].sum())
    return pd.DataFrame(rows)




# ----------------------------------------------------------------------------- deduplicated views

def distinct_rows(ds: FERDataset, split: str = "Training", *, real_only: bool = True) -> np.ndarray:
    """Indices of the first row of each distinct image of ``split`` (e.g. a GAN's training images).

    ``real_only`` leaves GAN rows out (a GAN never trains on generated faces).
    """
    mask = ds.splits == split
    if real_only:
        mask &= ~ds.generated
    idx = np.flatnonzero(mask)
    _, first = np.unique(image_hashes(ds.images[idx]), return_index=True)
    return idx[np.sort(first)]


def copies_of_training(ds: FERDataset, train_split=("Training", "Validation")) -> np.ndarray:
    """Boolean mask of rows outside the training rows whose image equals one of them (byte for byte).

    ``train_split`` is a split name or several; by default the original training rows, i.e. ``Training``
    and the ``Validation`` carved from it. FER-2013: 280 PublicTest and 288 PrivateTest images. A test
    split without them is the *deduplicated* test split every comparison also reports.
    """
    names = [train_split] if isinstance(train_split, str) else list(train_split)
    hashes = image_hashes(ds.images)
    inside = np.isin(ds.splits, names)
    train = set(hashes[inside].tolist())
    return np.array([not i and h in train for i, h in zip(inside, hashes)], dtype=bool)


def deduplicated(ds: FERDataset, train_split=("Training", "Validation")) -> FERDataset:
    """``ds`` without the test rows that copy a training image (training rows untouched)."""
    return ds.subset(~copies_of_training(ds, train_split))
