"""Validation splits carved from training only, and per-class subsampling."""

from __future__ import annotations

import numpy as np

from fer_utils.data.dataset import DataError, FERDataset


# ----------------------------------------------------------------------------- splits and subsets

def train_val_split(ds: FERDataset, val_fraction: float = 0.1, seed: int = 0, *, source_split: str = "Training",
                    val_name: str = "Validation", group: bool = True, family=None) -> FERDataset:
    """Carve a stratified, seeded validation split out of the training split.

    Only real rows of ``source_split`` can move to validation: test splits and synthetic
    (GAN) rows are never touched, so validation never leaks test data or generated faces.
    The one exception is the all-synthetic default dataset, which has no real rows.

    ``group`` (default): whole near-duplicate families (``duplicates.families``: byte copies, re-crops,
    re-exposures and mirrors of one photograph) go to one side, so validation holds no copy of a training image;
    classes keep their shares (each class's validation count is ``val_fraction`` of its rows, to within the few
    families that would overshoot). ``family``: the family id of every row, when already computed. The procedural
    default dataset (no photographs) and images under 24 px are split row by row.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction={val_fraction}: expected a number between 0 and 1")
    from sklearn.model_selection import train_test_split

    # GAN rows mixed into real data never validate; a wholly synthetic dataset (the built-in
    # default) has nothing else, so its own rows are used.
    eligible = ~ds.generated if ds.is_synthetic else ~ds.synthetic
    candidates = np.flatnonzero((ds.splits == source_split) & eligible)
    if len(candidates) == 0:
        raise DataError(f"{ds.name}: split {source_split!r} is empty; splits present: {ds.split_names}")
    labels = ds.labels[candidates]
    counts = np.bincount(labels)
    if group and not ds.is_synthetic and min(ds.images.shape[1:]) >= 24:
        from fer_utils.data.duplicates import families

        family = families(ds) if family is None else np.asarray(family)
        val_idx = grouped_sample(candidates, labels, family[candidates], val_fraction, seed)
    else:
        stratify = labels if counts[counts > 0].min() >= 2 else None
        _, val_idx = train_test_split(candidates, test_size=val_fraction, random_state=seed, stratify=stratify)
    splits = ds.splits.copy()
    splits[val_idx] = val_name
    return ds.replace(splits=splits)


def grouped_sample(rows: np.ndarray, labels: np.ndarray, family: np.ndarray, fraction: float, seed: int
                    ) -> np.ndarray:
    """Rows of whole families, visited in a seeded random order, taken while no class exceeds its target
    (``round(fraction * count)``, at least one for a class of two or more rows)."""
    counts = np.bincount(labels)
    target = np.where(counts >= 2, np.maximum(1, np.round(fraction * counts)), 0).astype(int)
    taken = np.zeros_like(target)
    ids, inverse = np.unique(family, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    chosen = []
    for f in np.random.default_rng(seed).permutation(len(ids)):
        need = np.bincount(labels[members[f]], minlength=len(target))
        if np.all(taken + need <= target):
            taken += need
            chosen.append(members[f])
            if np.array_equal(taken, target):
                break
    return np.sort(rows[np.concatenate(chosen)]) if chosen else np.zeros(0, np.int64)


def limit_per_class(ds: FERDataset, max_per_class: int, seed: int = 0) -> FERDataset:
    """At most ``max_per_class`` rows of each class in each split (seeded); 0 keeps all."""
    if not max_per_class:
        return ds
    rng = np.random.default_rng(seed)
    keep = []
    for s in ds.split_names:
        for c in range(ds.num_classes):
            idx = np.flatnonzero((ds.splits == s) & (ds.labels == c))
            keep.append(rng.permutation(idx)[:max_per_class])
    return ds.subset(np.sort(np.concatenate(keep)))


