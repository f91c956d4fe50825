"""Duplicates and leakage: byte-identical images, near-duplicates (the same photograph re-cropped, re-exposed or
mirrored), their families across splits, and the views without them.

- :func:`near_duplicates` ``(a, b)``: each image of ``a`` with its best match in ``b`` (``exact``, ``near``,
  ``mirror``) and the match's score; the finder itself (method, measured recall and false matches) lives in
  :mod:`fer_utils.data.near` and is re-exported here.
- :func:`dataset_pairs` (every verified pair of a dataset's rows, cached by the images' checksum),
  :func:`families` (connected groups over all splits), :func:`family_table` (their splits and labels; conflicting
  labels estimate label noise), :func:`leaked_rows` (rows outside the training splits whose family holds a training
  image: what every "dedup" number leaves out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_utils.data.dataset import FERDataset
from fer_utils.data.near import (  # noqa: F401 (re-exported: the finder is part of this module's contract)
    NEAR_THRESHOLD,
    SHIFT,
    _unique,
    image_hashes,
    near_duplicate_pairs,
    near_duplicates,
)


# ----------------------------------------------------------------------------- descriptive statistics

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

def distinct_rows(ds: FERDataset, split: str = "Training", *, real_only: bool = True, by_family: bool = True
                  ) -> np.ndarray:
    """Indices of the first row of each distinct photograph of ``split`` (e.g. a GAN's training images).

    ``by_family`` (default): one row per near-duplicate family (:func:`families`: byte copies, re-crops,
    re-exposures and mirrors count once); else one per distinct byte content. ``real_only`` leaves GAN rows out
    (a GAN never trains on generated faces).
    """
    mask = ds.splits == split
    if real_only:
        mask &= ~ds.generated
    idx = np.flatnonzero(mask)
    keys = families(ds)[idx] if by_family else image_hashes(ds.images[idx])
    _, first = np.unique(keys, return_index=True)
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
    """``ds`` without the test rows that copy a training image, byte for byte or as a near-duplicate or mirror
    (:func:`leaked_rows`; training rows untouched)."""
    return ds.subset(~leaked_rows(ds, train_split))


# ----------------------------------------------------------------------------- families over a dataset

def _real_rows(ds: FERDataset) -> np.ndarray:
    """Rows the families cover: every row but GAN-generated ones, each source id once (an oversampled row is
    its original again, ``data.oversampled``)."""
    rows = np.flatnonzero(~ds.generated)
    _, first = np.unique(ds.source_ids[rows].astype(str), return_index=True)
    return rows[np.sort(first)]


def dataset_pairs(ds: FERDataset, *, cache_dir=None) -> pd.DataFrame:
    """:func:`near_duplicate_pairs` of ``ds``'s real rows, as dataset rows (``i``, ``j``) with each side's split
    and class name (``split_i``, ``split_j``, ``label_i``, ``label_j``). Where rows name their subject
    (``meta["subject"]``, CK+), pairs of two subjects are dropped: two people are never one photograph. The
    procedural default dataset (drawn faces, alike by design) and images under 24 px have byte copies only."""
    rows = _real_rows(ds)
    if ds.is_synthetic or min(ds.images.shape[1:]) < 4 * SHIFT:  # drawn faces are alike by design; tiny images
        # have no detail to compare: only byte copies count
        firsts, ids = _unique(ds.images[rows])
        p = pd.DataFrame([(int(firsts[u]), r) for r, u in enumerate(ids) if firsts[u] != r], columns=["i", "j"],
                         dtype=np.int64).assign(kind="exact", score=1.0, distance=0)
    else:
        p = near_duplicate_pairs(ds.images[rows], cache_dir=cache_dir)
    p["i"], p["j"] = rows[p["i"].to_numpy(int)], rows[p["j"].to_numpy(int)]
    subject = None if ds.meta is None or "subject" not in ds.meta else ds.meta["subject"].astype(str).to_numpy()
    if subject is not None:  # two people are never one photograph (CK+: subject-independent folds stay so)
        p = p[subject[p["i"].to_numpy(int)] == subject[p["j"].to_numpy(int)]].reset_index(drop=True)
    names = np.asarray(ds.class_names, dtype=object)
    for side in ("i", "j"):
        p[f"split_{side}"] = ds.splits[p[side].to_numpy(int)]
        p[f"label_{side}"] = names[ds.labels[p[side].to_numpy(int)]]
    return p


def families(ds: FERDataset, pairs: pd.DataFrame | None = None) -> np.ndarray:
    """A family id for every row: rows joined by any chain of duplicate pairs (exact, near, mirror) share one, over
    all splits. Ids run 0.. in order of each family's first row; rows without duplicates (and GAN rows) are
    families of one; a real row repeating an earlier row's source id (``data.oversampled``) joins its family."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = dataset_pairs(ds) if pairs is None else pairs
    n = len(ds)
    real = np.flatnonzero(~ds.generated)
    _, first, inverse = np.unique(ds.source_ids[real].astype(str), return_index=True, return_inverse=True)
    original = real[first[inverse.ravel()]]
    repeat = original != real
    i = np.concatenate([pairs["i"].to_numpy(int), original[repeat]])
    j = np.concatenate([pairs["j"].to_numpy(int), real[repeat]])
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    _, first, inverse = np.unique(comp, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.ravel()]


def family_table(ds: FERDataset, family: np.ndarray | None = None) -> pd.DataFrame:
    """Families of two or more rows: ``family``, ``n``, ``splits`` and ``labels`` (sorted unique), ``cross_split``,
    ``conflicting`` (more than one label: label noise, since they show one photograph), ``majority`` (the most common
    label), ``source_ids``."""
    family = families(ds) if family is None else family
    df = pd.DataFrame({"family": family, "split": ds.splits, "label": np.asarray(ds.class_names)[ds.labels],
                       "source": ds.source_ids})
    df = df[df.duplicated("family", keep=False)]
    rows = [{"family": int(f), "n": len(g), "splits": sorted(set(g.split)), "labels": sorted(set(g.label)),
             "cross_split": g.split.nunique() > 1, "conflicting": g.label.nunique() > 1,
             "majority": g.label.value_counts().index[0], "source_ids": list(g.source)}
            for f, g in df.groupby("family", sort=True)]
    return pd.DataFrame(rows, columns=["family", "n", "splits", "labels", "cross_split", "conflicting", "majority",
                                       "source_ids"]).astype({"family": np.int64, "n": np.int64, "cross_split": bool,
                                                              "conflicting": bool})


def leaked_rows(ds: FERDataset, train_split=("Training", "Validation"), family: np.ndarray | None = None
                ) -> np.ndarray:
    """Boolean mask of rows outside ``train_split`` whose family holds a row of it: byte copies, near-duplicates and
    mirrors of a training image (FER-2013: 568 byte copies among the test splits, more than 900 test images in
    all; docs/data.md). Every "dedup" number leaves these rows out."""
    names = [train_split] if isinstance(train_split, str) else list(train_split)
    family = families(ds) if family is None else family
    inside = np.isin(ds.splits, names)
    return ~inside & np.isin(family, np.unique(family[inside]))
