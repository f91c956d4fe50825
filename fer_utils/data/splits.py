"""Validation splits carved from training only, and per-class subsampling."""

from __future__ import annotations

import numpy as np

from fer_utils.data.dataset import DataError, FERDataset


# ----------------------------------------------------------------------------- splits and subsets

def train_val_split(ds: FERDataset, val_fraction: float = 0.1, seed: int = 0, *, source_split: str = "Training",
                    val_name: str = "Validation") -> FERDataset:
    """Carve a stratified, seeded validation split out of the training split.

    Only real rows of ``source_split`` can move to validation: test splits and synthetic
    (GAN) rows are never touched, so validation never leaks test data or generated faces.
    The one exception is the all-synthetic default dataset, which has no real rows.
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
    stratify = labels if counts[counts > 0].min() >= 2 else None
    _, val_idx = train_test_split(candidates, test_size=val_fraction, random_state=seed, stratify=stratify)
    splits = ds.splits.copy()
    splits[val_idx] = val_name
    return ds.replace(splits=splits)


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


