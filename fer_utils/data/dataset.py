"""The one in-memory dataset type, :class:`FERDataset`, and :class:`DataError`.

Every loader fills a ``FERDataset``; every change of one goes through ``dataclasses.replace``
(the type is frozen), so the checks in ``__post_init__`` run on every dataset the suite uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from typing import Sequence

import numpy as np
import pandas as pd


class DataError(ValueError):
    """A dataset file or folder is not what the loader expected."""


@dataclasses.dataclass(frozen=True, eq=False)
class FERDataset:
    """Images with labels, split names and provenance, all in memory.

    Attributes:
        images: uint8 array ``[N, H, W]`` (grey).
        labels: int64 array ``[N]`` of class indices into ``class_names``.
        class_names: Class names in label order.
        splits: str array ``[N]``: the split each row belongs to (e.g. ``"Training"``).
        source_ids: str array ``[N]``: where each row came from (``"fer2013.csv.gz:row=12"``,
            a file path, ``"synthetic:...``).
        name: Dataset name (``"fer2013"``, ``"ferplus"``, ``"ckplus"``, ``"synthetic"``...).
        path: Where it was loaded from ("" for generated data).
        synthetic: bool array ``[N]``: rows that are not real faces (the procedural default, or GAN rows).
        generated: bool array ``[N]``: rows a GAN generated (a subset of ``synthetic``); they may only be
            Training rows, and never move to validation.
        soft_labels: optional float32 ``[N, K]`` target distributions (FER+ votes).
        meta: optional per-row DataFrame of extra columns (subject, FER label, ...).
        skipped: rows a ``strict=False`` loader skipped, as ``(source, reason)`` pairs.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple
    splits: np.ndarray
    source_ids: np.ndarray
    name: str = "dataset"
    path: str = ""
    synthetic: np.ndarray | None = None
    generated: np.ndarray | None = None
    soft_labels: np.ndarray | None = None
    meta: pd.DataFrame | None = None
    skipped: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        # Frozen: normalise the fields once here; every later change goes through replace(),
        # which runs these checks again.
        def put(field, value):
            object.__setattr__(self, field, value)

        put("images", np.asarray(self.images))
        put("labels", np.asarray(self.labels, dtype=np.int64))
        put("splits", np.asarray(self.splits, dtype=object))
        put("source_ids", np.asarray(self.source_ids, dtype=object))
        put("class_names", tuple(self.class_names))
        put("skipped", list(self.skipped))
        n = len(self.images)
        put("generated", np.zeros(n, dtype=bool) if self.generated is None else np.asarray(self.generated, dtype=bool))
        put("synthetic", np.zeros(n, dtype=bool) if self.synthetic is None else np.asarray(self.synthetic, dtype=bool))
        if self.soft_labels is not None:
            put("soft_labels", np.asarray(self.soft_labels, dtype=np.float32))
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise DataError(f"{self.name}: images must be uint8 [N,H,W], got {self.images.dtype} {self.images.shape}")
        for field in ("labels", "splits", "source_ids", "synthetic", "generated"):
            if len(getattr(self, field)) != n:
                raise DataError(f"{self.name}: {field} has {len(getattr(self, field))} rows, images have {n}")
        put("synthetic", self.synthetic | self.generated)  # GAN rows are synthetic too
        if len(set(c.lower() for c in self.class_names)) != len(self.class_names):
            raise DataError(f"{self.name}: class names must be distinct, got {list(self.class_names)}")
        if self.soft_labels is not None and self.soft_labels.shape != (n, len(self.class_names)):
            raise DataError(f"{self.name}: soft_labels must be [{n}, {len(self.class_names)}], "
                            f"got {self.soft_labels.shape}")
        if self.meta is not None and len(self.meta) != n:
            raise DataError(f"{self.name}: meta has {len(self.meta)} rows, images have {n}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(f"{self.name}: labels must lie in 0..{len(self.class_names) - 1}")
        check_generated_only_in_training(self)

    def replace(self, **changes) -> "FERDataset":
        """A copy with some fields changed; the dataset's checks run again on the result."""
        return dataclasses.replace(self, **changes)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        """``(H, W)`` of every image."""
        return tuple(self.images.shape[1:])

    @property
    def split_names(self) -> list:
        """Split names in order of first appearance."""
        return list(dict.fromkeys(self.splits.tolist()))

    @property
    def is_synthetic(self) -> bool:
        """True when every row is generated (the built-in default dataset)."""
        return bool(len(self)) and bool(self.synthetic.all())

    @property
    def checksum(self) -> str:
        """SHA-256 over pixels, labels, split names and class names (hex)."""
        h = hashlib.sha256()
        h.update(repr((self.class_names, self.images.shape)).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype("<i8").tobytes())
        h.update("\n".join(map(str, self.splits.tolist())).encode())
        h.update(self.synthetic.tobytes())
        if self.generated.any():  # only then, so checksums of data without GAN rows stay what they were
            h.update(b"generated" + self.generated.tobytes())
        return h.hexdigest()

    def subset(self, index) -> "FERDataset":
        """Rows selected by a boolean mask or an index array, as a new dataset."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return self.replace(
            images=self.images[index],
            labels=self.labels[index],
            splits=self.splits[index],
            source_ids=self.source_ids[index],
            synthetic=self.synthetic[index],
            generated=self.generated[index],
            soft_labels=None if self.soft_labels is None else self.soft_labels[index],
            meta=None if self.meta is None else self.meta.iloc[index].reset_index(drop=True),
            skipped=list(self.skipped),
        )

    def split(self, name: str) -> "FERDataset":
        """The rows of one split.

        Raises:
            DataError: if the split has no rows, listing the splits that exist.
        """
        mask = self.splits == name
        if not mask.any():
            raise DataError(f"{self.name} ({self.path or 'in memory'}): split {name!r} is empty; "
                            f"splits present: {self.split_names}")
        return self.subset(mask)

    def with_split_names(self, mapping: dict) -> "FERDataset":
        """A copy with split names renamed through ``mapping`` (others unchanged)."""
        return self.replace(splits=np.array([mapping.get(s, s) for s in self.splits], dtype=object))

    def class_counts(self) -> pd.DataFrame:
        """Counts per class (rows) and split (columns), with totals."""
        table = pd.crosstab(pd.Categorical([self.class_names[i] for i in self.labels], categories=self.class_names),
                            pd.Categorical(self.splits, categories=self.split_names), dropna=False)
        table.index.name, table.columns.name = "class", "split"
        table = table.astype(int)
        table["total"] = table.sum(axis=1)
        table.loc["total"] = table.sum(axis=0)
        return table

    def describe(self) -> dict:
        """A small JSON-serialisable description (name, path, size, splits, checksum)."""
        return {
            "name": self.name,
            "path": self.path,
            "n": int(len(self)),
            "image_shape": list(self.image_shape),
            "classes": list(self.class_names),
            "splits": {s: int((self.splits == s).sum()) for s in self.split_names},
            "synthetic_rows": int(self.synthetic.sum()),
            "generated_rows": int(self.generated.sum()),
            "checksum": self.checksum,
            "skipped_rows": len(self.skipped),
        }


def check_generated_only_in_training(ds: "FERDataset") -> None:
    """GAN-generated rows may only be Training rows (never validation or test).

    Raises:
        DataError: naming the first offending rows and their splits.
    """
    bad = np.flatnonzero(ds.generated & (ds.splits != "Training"))
    if len(bad):
        shown = ", ".join(f"row {i} ({ds.source_ids[i]}) in {ds.splits[i]}" for i in bad[:3])
        raise DataError(f"{ds.name}: {len(bad)} GAN-generated row(s) outside Training ({shown}); generated "
                        "images may only ever enter the training split")


def concatenate(datasets: Sequence[FERDataset], name: str | None = None) -> FERDataset:
    """Stack datasets with the same classes and image size (e.g. real + GAN rows)."""
    first = datasets[0]
    for d in datasets[1:]:
        if d.class_names != first.class_names or d.image_shape != first.image_shape:
            raise DataError(f"cannot concatenate {d.name} {d.class_names} {d.image_shape} with "
                            f"{first.name} {first.class_names} {first.image_shape}")
    soft = None
    if all(d.soft_labels is not None for d in datasets):
        soft = np.concatenate([d.soft_labels for d in datasets])
    meta = None
    if all(d.meta is not None for d in datasets):
        meta = pd.concat([d.meta for d in datasets], ignore_index=True)
    return FERDataset(
        images=np.concatenate([d.images for d in datasets]),
        labels=np.concatenate([d.labels for d in datasets]),
        class_names=first.class_names,
        splits=np.concatenate([d.splits for d in datasets]),
        source_ids=np.concatenate([d.source_ids for d in datasets]),
        name=name or first.name, path=first.path,
        synthetic=np.concatenate([d.synthetic for d in datasets]),
        generated=np.concatenate([d.generated for d in datasets]),
        soft_labels=soft, meta=meta,
        skipped=[s for d in datasets for s in d.skipped],
    )


def report_skipped(ds: FERDataset):
    """Warn (once, with the first few) about rows a ``strict=False`` loader skipped."""
    if ds.skipped:
        shown = "; ".join(f"{s}: {r}" for s, r in ds.skipped[:5])
        warnings.warn(f"{ds.path}: skipped {len(ds.skipped)} bad row(s) (strict=False): {shown}"
                      + (" ..." if len(ds.skipped) > 5 else ""), stacklevel=3)


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

