"""Descriptive statistics of a dataset: pixel intensities, FER vs FER+ agreement, CK+ subjects, samples."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from fer_utils.data.classes import FER2013_CLASSES, FER_TO_FERPLUS, FERPLUS_CLASSES
from fer_utils.data.dataset import DataError, FERDataset


def pixel_stats(ds: FERDataset) -> pd.DataFrame:
    """Pixel-intensity statistics per class: mean, std, median, share of near-black/white pixels, contrast."""
    rows = []
    for c, name in enumerate(ds.class_names):
        x = ds.images[ds.labels == c].astype(np.float32)
        if not len(x):
            continue
        per_image_std = x.reshape(len(x), -1).std(axis=1)
        rows.append({"class": name, "n": len(x), "mean": float(x.mean()), "std": float(x.std()),
                     "median": float(np.median(x)), "mean_image_contrast": float(per_image_std.mean()),
                     "low_contrast_images": int((per_image_std < 10).sum()),
                     "dark_pixels_%": float((x < 16).mean() * 100), "bright_pixels_%": float((x > 240).mean() * 100)})
    return pd.DataFrame(rows).set_index("class")


def label_agreement(fer_labels: np.ndarray, ferplus_labels: np.ndarray) -> pd.DataFrame:
    """Cross-table of FER-2013 labels (rows) against FER+ majority labels (columns)."""
    table = pd.crosstab(pd.Categorical([FER2013_CLASSES[i] for i in fer_labels], categories=FER2013_CLASSES),
                        pd.Categorical([FERPLUS_CLASSES[i] for i in ferplus_labels], categories=FERPLUS_CLASSES),
                        dropna=False)
    table.index.name, table.columns.name = "FER-2013", "FER+ majority"
    return table


def agreement_rate(fer_labels: np.ndarray, ferplus_labels: np.ndarray) -> float:
    """Share of rows whose FER-2013 label means the same as the FER+ majority label."""
    mapped = np.array([FERPLUS_CLASSES.index(FER_TO_FERPLUS[FER2013_CLASSES[i]]) for i in fer_labels])
    return float((mapped == np.asarray(ferplus_labels)).mean()) if len(mapped) else float("nan")


def subjects_per_class(ds: FERDataset) -> pd.DataFrame:
    """CK+: number of images, sequences and distinct subjects per class."""
    if ds.meta is None or "subject" not in ds.meta:
        raise DataError(f"{ds.name}: no subject column (load CK+ with load_ckplus())")
    df = pd.DataFrame({"class": [ds.class_names[i] for i in ds.labels], "subject": ds.meta["subject"],
                       "sequence": ds.meta.get("sequence", ds.meta["subject"])})
    out = df.groupby("class").agg(images=("subject", "size"), sequences=("sequence", "nunique"),
                                  subjects=("subject", "nunique"))
    return out.reindex(ds.class_names)


def iter_class_samples(ds: FERDataset, per_class: int, seed: int = 0) -> Iterable:
    """``(class_name, images)`` with up to ``per_class`` seeded random images of each class."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(ds.class_names):
        idx = np.flatnonzero(ds.labels == c)
        yield name, ds.images[rng.permutation(idx)[:per_class]]
