"""Datasets: loading, validating, discovering and describing facial-expression data.

This module owns the one in-memory dataset type (:class:`FERDataset`) and every way of
filling it: the original FER-2013 csv, the Kaggle FER-2013 folder layout, FER+ votes,
CK+ (folders or npz) with subject-independent folds, any ``<root>/<class>/<images>``
folder, and the synthetic default. It also owns the checks a researcher relies on:
validation splits carved from training only, duplicate/leakage detection and the
per-split statistics the EDA notebook shows.

Bad input raises :class:`DataError` naming the file, row or path and what was expected.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_SPLITS = ("Training", "PublicTest", "PrivateTest")
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_VOTE_COLUMNS = FERPLUS_CLASSES + ("unknown", "NF")
CKPLUS_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
FER_PIXELS = 48 * 48
# Kaggle (msambare) test files keep the original split in their name prefix.
_KAGGLE_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)
_CK_SUBJECT = re.compile(r"^(S\d{3})_")


class DataError(ValueError):
    """A dataset file or folder is not what the loader expected."""


@dataclasses.dataclass
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
        synthetic: bool array ``[N]``: rows that are generated, not real (GAN or the
            procedural default). Synthetic rows never enter validation or test splits.
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
    soft_labels: np.ndarray | None = None
    meta: pd.DataFrame | None = None
    skipped: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.splits = np.asarray(self.splits, dtype=object)
        self.source_ids = np.asarray(self.source_ids, dtype=object)
        self.class_names = tuple(self.class_names)
        n = len(self.images)
        if self.synthetic is None:
            self.synthetic = np.zeros(n, dtype=bool)
        self.synthetic = np.asarray(self.synthetic, dtype=bool)
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise DataError(f"{self.name}: images must be uint8 [N,H,W], got {self.images.dtype} {self.images.shape}")
        for field in ("labels", "splits", "source_ids", "synthetic"):
            if len(getattr(self, field)) != n:
                raise DataError(f"{self.name}: {field} has {len(getattr(self, field))} rows, images have {n}")
        if self.soft_labels is not None and self.soft_labels.shape != (n, len(self.class_names)):
            raise DataError(f"{self.name}: soft_labels must be [{n}, {len(self.class_names)}], got {self.soft_labels.shape}")
        if self.meta is not None and len(self.meta) != n:
            raise DataError(f"{self.name}: meta has {len(self.meta)} rows, images have {n}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(f"{self.name}: labels must lie in 0..{len(self.class_names) - 1}")

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
        return h.hexdigest()

    def subset(self, index) -> "FERDataset":
        """Rows selected by a boolean mask or an index array, as a new dataset."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return dataclasses.replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            splits=self.splits[index],
            source_ids=self.source_ids[index],
            synthetic=self.synthetic[index],
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
        return dataclasses.replace(self, splits=np.array([mapping.get(s, s) for s in self.splits], dtype=object))

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
            "checksum": self.checksum,
            "skipped_rows": len(self.skipped),
        }


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
        soft_labels=soft, meta=meta,
        skipped=[s for d in datasets for s in d.skipped],
    )


# ----------------------------------------------------------------------------- FER-2013 csv

def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


def _bad_row(problems: list, strict: bool, path: Path, row: int, reason: str):
    """Raise for a bad csv row, or record it when ``strict`` is False."""
    if strict:
        raise DataError(f"{path}: data row {row} (line {row + 2}): {reason}")
    problems.append((f"{path.name}:row={row}", reason))


def _parse_pixels(pixels: pd.Series, path: Path, strict: bool, problems: list, n_pixels: int):
    """Parse space-separated pixel strings into uint8 rows.

    A fast path hands all rows to pandas' C parser; only when that finds anything odd
    does a row-by-row pass run, so that the error names the exact row and problem.
    Returns the pixel matrix and a boolean mask of the rows kept.
    """
    values = pixels.fillna("").astype(str).tolist()
    counts = np.fromiter((v.count(" ") + 1 if v.strip() else 0 for v in values), dtype=np.int64, count=len(values))
    if len(values) and (counts == n_pixels).all():
        try:
            arr = pd.read_csv(io.StringIO("\n".join(values)), sep=" ", header=None, dtype=np.float64,
                              engine="c", na_filter=False).to_numpy()
            if arr.shape == (len(values), n_pixels) and np.isfinite(arr).all() \
                    and (arr >= 0).all() and (arr <= 255).all() and (arr == np.round(arr)).all():
                return arr.astype(np.uint8), np.ones(len(values), dtype=bool)
        except (ValueError, pd.errors.ParserError):
            pass  # fall through to the precise row-by-row check
    out = np.zeros((len(values), n_pixels), dtype=np.uint8)
    keep = np.ones(len(values), dtype=bool)
    for i, v in enumerate(values):
        parts = v.split()
        if len(parts) != n_pixels:
            keep[i] = False
            _bad_row(problems, strict, path, i, f"'pixels' has {len(parts)} values, expected {n_pixels} (48x48)")
            continue
        try:
            row = np.array([int(p) for p in parts], dtype=np.int64)
        except ValueError:
            bad = next(p for p in parts if not p.lstrip("-").isdigit())
            keep[i] = False
            _bad_row(problems, strict, path, i, f"'pixels' has a non-numeric value {bad!r}, expected integers 0-255")
            continue
        if row.min() < 0 or row.max() > 255:
            keep[i] = False
            _bad_row(problems, strict, path, i, f"'pixels' value out of range ({row.min()}..{row.max()}), expected 0-255")
            continue
        out[i] = row
    return out, keep


def load_fer2013_csv(path, *, strict: bool = True, image_size: int = 48, cache_dir=None) -> FERDataset:
    """Load the original FER-2013 csv (``emotion,pixels,Usage``; plain or ``.gz``).

    Args:
        path: ``fer2013.csv`` or ``fer2013.csv.gz``.
        strict: if True (default) the first bad row raises; if False bad rows are skipped,
            counted in a warning and listed in ``dataset.skipped``.
        image_size: side of the square images (48 for FER-2013).
        cache_dir: folder for a parsed ``.npz`` cache keyed by the file's SHA-256
            (``None``: ``$FER_CACHE_DIR`` or ``~/.cache/fer_utils``; ``False``: no cache).

    Returns:
        A dataset with splits ``Training``, ``PublicTest`` and ``PrivateTest`` and source ids
        ``<file>:row=<i>`` (0-based data row, i.e. file line i+2).

    Raises:
        DataError: missing file or columns, wrong pixel count, non-numeric pixels, unknown
            label or Usage, or an empty file; the message names file, row and expectation.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the FER-2013 csv with columns emotion,pixels,Usage)")
    cache = _cache_path(path, cache_dir, f"fer2013-{image_size}-{strict}")
    if cache is not None and cache.is_file():
        return _load_cache(cache, path)
    try:
        with _open_text(path) as fh:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read as a csv ({exc})") from exc
    expected = ["emotion", "pixels", "Usage"]
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected header {','.join(expected)}, "
                        f"found {','.join(map(str, df.columns))}")
    if len(df) == 0:
        raise DataError(f"{path}: has a header but no data rows (expected 35,887 rows for FER-2013)")
    problems: list = []
    keep = np.ones(len(df), dtype=bool)
    labels = np.full(len(df), -1, dtype=np.int64)
    for i, (e, u) in enumerate(zip(df["emotion"].tolist(), df["Usage"].tolist())):
        e = e.strip()
        if not e.isdigit() or int(e) >= len(FER2013_CLASSES):
            keep[i] = False
            _bad_row(problems, strict, path, i, f"unknown label emotion={e!r}, expected an integer 0-6 "
                                                 f"({', '.join(f'{k}={c}' for k, c in enumerate(FER2013_CLASSES))})")
            continue
        if u.strip() not in FER2013_SPLITS:
            keep[i] = False
            _bad_row(problems, strict, path, i, f"unknown Usage={u!r}, expected one of {list(FER2013_SPLITS)}")
            continue
        labels[i] = int(e)
    pixels, pix_ok = _parse_pixels(df["pixels"], path, strict, problems, image_size * image_size)
    keep &= pix_ok
    if not keep.any():
        raise DataError(f"{path}: no valid rows left ({len(problems)} bad rows, first: {problems[:1]})")
    rows = np.flatnonzero(keep)
    ds = FERDataset(
        images=pixels[rows].reshape(-1, image_size, image_size),
        labels=labels[rows],
        class_names=FER2013_CLASSES,
        splits=df["Usage"].str.strip().to_numpy(dtype=object)[rows],
        source_ids=np.array([f"{path.name}:row={r}" for r in rows], dtype=object),
        name="fer2013", path=str(path), skipped=problems,
        meta=pd.DataFrame({"row": rows}),
    )
    _report_skipped(ds)
    if cache is not None and not problems:
        _save_cache(cache, ds)
    return ds


def _report_skipped(ds: FERDataset):
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


def _cache_path(path: Path, cache_dir, tag: str):
    if cache_dir is False:
        return None
    root = Path(cache_dir or os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer_utils")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home is no reason to fail; just parse every time
    return root / f"{tag}-{file_sha256(path)[:24]}.npz"


def _save_cache(cache: Path, ds: FERDataset):
    tmp = cache.with_suffix(".tmp.npz")
    try:
        np.savez(tmp, images=ds.images, labels=ds.labels, splits=ds.splits.astype(str),
                 source_ids=ds.source_ids.astype(str), class_names=np.array(ds.class_names),
                 rows=ds.meta["row"].to_numpy(), name=np.array(ds.name))
        tmp.replace(cache)  # atomic: a half-written cache is never read
    except OSError:
        pass


def _load_cache(cache: Path, path: Path) -> FERDataset:
    with np.load(cache, allow_pickle=False) as z:
        return FERDataset(images=z["images"], labels=z["labels"], class_names=tuple(z["class_names"].tolist()),
                          splits=z["splits"].astype(object), source_ids=z["source_ids"].astype(object),
                          name=str(z["name"]), path=str(path), meta=pd.DataFrame({"row": z["rows"]}))


# ----------------------------------------------------------------------------- image folders

def _read_image(path: Path, image_size) -> np.ndarray:
    """Read one image file as uint8 grey, optionally resized to ``image_size``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if image_size is not None and im.size != (image_size[1], image_size[0]):
                im = im.resize((image_size[1], image_size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc}); "
                        f"expected a {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} file") from exc


def _size_tuple(image_size):
    if image_size is None:
        return None
    return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)


def _class_folders(root: Path, class_names):
    """Class folders of ``root`` in label order, checking expected ones exist and are not empty."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (expected <root>/<class>/<images>)")
    present = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if class_names is None:
        if not present:
            raise DataError(f"{root}: has no class folders (expected <root>/<class>/<images>)")
        class_names = tuple(present)
    lower = {k.lower(): v for k, v in present.items()}
    folders = []
    for c in class_names:
        folder = present.get(c) or lower.get(c.lower())
        if folder is None:
            raise DataError(f"{root}: missing class folder {c!r}; expected folders {list(class_names)}, "
                            f"found {sorted(present)}")
        folders.append(folder)
    extra = sorted(set(k.lower() for k in present) - set(c.lower() for c in class_names))
    if extra:
        raise DataError(f"{root}: unexpected class folder(s) {extra}; expected {list(class_names)}")
    return tuple(class_names), folders


def _list_images(folder: Path, strict: bool, problems: list):
    files = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            if strict:
                raise DataError(f"{p}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
            problems.append((str(p), "not an image file"))
            continue
        files.append(p)
    if not files:
        raise DataError(f"{folder}: class folder is empty (expected at least one image)")
    return files


def load_image_folder(root, *, class_names=None, split: str = "all", image_size=None, strict: bool = True,
                      name: str = "folder") -> FERDataset:
    """Load any ``<root>/<class>/<images>`` folder.

    Args:
        root: the folder holding one sub-folder per class.
        class_names: expected classes in label order (case-insensitive folder match); ``None``
            takes the sub-folders in sorted order.
        split: split name given to every row.
        image_size: ``int`` or ``(H, W)`` to resize to; ``None`` requires all images to share a size.
        strict: if False, unreadable files are skipped and reported instead of raising.
        name: dataset name.

    Raises:
        DataError: missing root or class folder, empty class folder, non-image or unreadable
            file, or mismatched image sizes, naming the path.
    """
    root = Path(root)
    size = _size_tuple(image_size)
    class_names, folders = _class_folders(root, class_names)
    images, labels, sources, problems = [], [], [], []
    for label, folder in enumerate(folders):
        for f in _list_images(folder, strict, problems):
            try:
                img = _read_image(f, size)
            except DataError as exc:
                if strict:
                    raise
                problems.append((str(f), str(exc)))
                continue
            if images and img.shape != images[0].shape:
                raise DataError(f"{f}: image is {img.shape[1]}x{img.shape[0]}, expected {images[0].shape[1]}x"
                                f"{images[0].shape[0]} like {sources[0]}; pass image_size= to resize")
            images.append(img)
            labels.append(label)
            sources.append(str(f))
    if not images:
        raise DataError(f"{root}: split {split!r} is empty (no readable images)")
    ds = FERDataset(images=np.stack(images), labels=np.array(labels), class_names=class_names,
                    splits=np.array([split] * len(images), dtype=object), source_ids=np.array(sources, dtype=object),
                    name=name, path=str(root), skipped=problems)
    _report_skipped(ds)
    return ds


def load_fer2013_folders(root, *, image_size=48, strict: bool = True) -> FERDataset:
    """Load the Kaggle FER-2013 layout ``train/<class>/*`` and ``test/<class>/*``.

    ``train`` becomes ``Training``. Test files named ``PublicTest_*``/``PrivateTest_*`` (the
    msambare layout) restore the two original test splits; other test files go to ``Test``.

    Raises:
        DataError: as :func:`load_image_folder`, or a missing/empty ``train``/``test`` folder.
    """
    root = Path(root)
    parts = []
    for sub, split in (("train", "Training"), ("test", "Test")):
        folder = root / sub
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (expected the Kaggle layout {root}/train/<class>/ "
                            f"and {root}/test/<class>/)")
        parts.append(load_image_folder(folder, class_names=FER2013_CLASSES, split=split, image_size=image_size,
                                       strict=strict, name="fer2013"))
    ds = concatenate(parts, name="fer2013")
    names = [Path(s).name for s in ds.source_ids]
    ds.splits = np.array([
        (_canonical_split(m.group(1)) if (m := _KAGGLE_PREFIX.match(n)) and sp == "Test" else sp)
        for n, sp in zip(names, ds.splits)], dtype=object)
    ds.path = str(root)
    return ds


def _canonical_split(prefix: str) -> str:
    return {s.lower(): s for s in FER2013_SPLITS}[prefix.lower()]


# ----------------------------------------------------------------------------- FER+

def load_ferplus(fer_csv, ferplus_csv, *, target: str = "majority", tie_rule: str = "drop",
                 strict: bool = True, cache_dir=None) -> FERDataset:
    """FER+ labels (``fer2013new.csv``) on FER-2013 pixels, aligned row by row.

    Rules (stated because the literature varies):

    * rows whose FER-2013 pixels are missing from FER+ (empty ``Image name``) are dropped;
    * the majority class is the arg-max of the 10 vote columns; rows whose majority is
      ``unknown`` or ``NF`` (not a face) are dropped;
    * ties between the top emotion votes: ``tie_rule="drop"`` (default) drops the row,
      ``"first"`` keeps the first tied class in FER+ column order;
    * ``soft_labels`` always holds the vote distribution over the 8 emotions (votes for
      unknown/NF removed, renormalised), for ``target="distribution"`` training.

    Args:
        fer_csv: FER-2013 csv (pixels and Usage).
        ferplus_csv: ``fer2013new.csv``.
        target: ``"majority"`` or ``"distribution"`` (recorded in ``meta``; labels are the majority either way).
        tie_rule: ``"drop"`` or ``"first"``.
        strict: passed to the FER-2013 loader.
        cache_dir: as :func:`load_fer2013_csv`.

    Returns:
        Dataset with the 8 FER+ classes; ``meta`` holds ``row``, ``fer_label`` and ``votes``.

    Raises:
        DataError: missing columns, different row counts, or a Usage mismatch at a row.
    """
    if target not in ("majority", "distribution"):
        raise DataError(f"target={target!r}: expected 'majority' or 'distribution'")
    if tie_rule not in ("drop", "first"):
        raise DataError(f"tie_rule={tie_rule!r}: expected 'drop' or 'first'")
    fer = load_fer2013_csv(fer_csv, strict=strict, cache_dir=cache_dir)
    votes = read_ferplus_votes(ferplus_csv)
    rows = fer.meta["row"].to_numpy()
    if rows.max() >= len(votes):
        raise DataError(f"{ferplus_csv}: has {len(votes)} rows but {fer_csv} has row {rows.max()}; "
                        "FER+ must be aligned row by row with fer2013.csv")
    v = votes.iloc[rows].reset_index(drop=True)
    mismatch = np.flatnonzero(v["Usage"].to_numpy(dtype=object) != fer.splits)
    if len(mismatch):
        r = rows[mismatch[0]]
        raise DataError(f"{ferplus_csv}: row {r} has Usage={v['Usage'].iloc[mismatch[0]]!r} but {fer_csv} row {r} "
                        f"has {fer.splits[mismatch[0]]!r}; the files are not aligned row by row")
    counts = v[list(FERPLUS_VOTE_COLUMNS)].to_numpy(dtype=np.float64)
    majority, reason = ferplus_majority(counts, tie_rule=tie_rule)
    named = v["Image name"].fillna("").astype(str).str.strip().to_numpy() != ""
    keep = (majority >= 0) & named
    emo = counts[:, :len(FERPLUS_CLASSES)]
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = emo / emo.sum(axis=1, keepdims=True)
    keep &= np.isfinite(dist).all(axis=1)
    idx = np.flatnonzero(keep)
    ds = fer.subset(idx)
    ds.labels = majority[idx].astype(np.int64)
    ds.class_names = FERPLUS_CLASSES
    ds.soft_labels = dist[idx].astype(np.float32)
    ds.name, ds.path = "ferplus", f"{ferplus_csv}"
    ds.meta = pd.DataFrame({"row": rows[idx], "fer_label": fer.labels[idx], "image_name": v["Image name"].to_numpy()[idx],
                            "target": target})
    ds.skipped = fer.skipped + [(f"{Path(ferplus_csv).name}:row={rows[i]}", reason[i] if named[i] else "no image name (NF)")
                                for i in np.flatnonzero(~keep)]
    return ds


def read_ferplus_votes(path) -> pd.DataFrame:
    """Read ``fer2013new.csv``, checking its columns and vote values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected FER+ fer2013new.csv)")
    df = pd.read_csv(path, dtype={"Image name": str})
    expected = ["Usage", "Image name", *FERPLUS_VOTE_COLUMNS]
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {','.join(expected)}")
    vals = df[list(FERPLUS_VOTE_COLUMNS)]
    bad = ~vals.apply(lambda c: pd.to_numeric(c, errors="coerce")).notna().all(axis=1)
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: row {r} has a non-numeric vote count, expected integers in {list(FERPLUS_VOTE_COLUMNS)}")
    return df


def ferplus_majority(counts: np.ndarray, tie_rule: str = "drop"):
    """Majority class per row of FER+ vote counts ``[N, 10]``.

    Returns:
        ``(labels, reasons)``: label in 0..7, or -1 with a reason (``"majority unknown"``,
        ``"majority NF"``, ``"tie"``, ``"no votes"``).
    """
    counts = np.asarray(counts, dtype=np.float64)
    top = counts.max(axis=1)
    n_top = (counts == top[:, None]).sum(axis=1)
    arg = counts.argmax(axis=1)
    labels = arg.copy()
    reasons = np.array([""] * len(counts), dtype=object)
    for i in range(len(counts)):
        if top[i] <= 0:
            labels[i], reasons[i] = -1, "no votes"
        elif arg[i] >= len(FERPLUS_CLASSES):
            labels[i], reasons[i] = -1, f"majority {FERPLUS_VOTE_COLUMNS[arg[i]]}"
        elif n_top[i] > 1 and tie_rule == "drop":
            labels[i], reasons[i] = -1, "tie"
    return labels, reasons


# ----------------------------------------------------------------------------- CK+

def parse_ck_subject(filename: str) -> str:
    """Subject id (``S###``) from a CK+ file name ``S###_###_########.png``."""
    m = _CK_SUBJECT.match(Path(filename).name)
    if not m:
        raise DataError(f"{filename}: CK+ file name does not start with a subject id S###_ "
                        "(expected S###_###_########.png)")
    return m.group(1)


def load_ckplus(path, *, strict: bool = True) -> FERDataset:
    """CK+48 from the common folder layout ``CK+48/<class>/S###_...png`` or ``ckplus48.npz``.

    Subjects are parsed from the file names into ``meta["subject"]``; use
    :func:`subject_kfold` for subject-independent folds. Every row has split ``"all"``.
    """
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"{path}: file not found (expected ckplus48.npz)")
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("images", "labels", "class_names", "filenames") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}")
            files = z["filenames"].astype(str)
            ds = FERDataset(images=z["images"].astype(np.uint8), labels=z["labels"].astype(np.int64),
                            class_names=tuple(z["class_names"].astype(str).tolist()),
                            splits=np.array(["all"] * len(files), dtype=object),
                            source_ids=np.array([f"{path.name}:{f}" for f in files], dtype=object),
                            name="ckplus", path=str(path))
    else:
        ds = load_image_folder(path, class_names=None, split="all", strict=strict, name="ckplus")
        files = ds.source_ids
    ds.meta = pd.DataFrame({"subject": [parse_ck_subject(f) for f in files],
                            "sequence": ["_".join(Path(f).name.split("_")[:2]) for f in files]})
    return ds


def subject_kfold(ds: FERDataset, k: int = 10, seed: int = 0, group: str = "subject"):
    """Subject-independent stratified k folds: no subject appears on both sides.

    Returns:
        List of ``(train_index, test_index)`` integer arrays.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if ds.meta is None or group not in ds.meta:
        raise DataError(f"{ds.name}: no per-row {group!r} column; load CK+ with load_ckplus()")
    groups = ds.meta[group].to_numpy()
    n_groups = len(set(groups))
    if k < 2 or k > n_groups:
        raise DataError(f"k={k}: expected 2 <= k <= number of {group}s ({n_groups})")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(ds)), ds.labels, groups)]


def fold_dataset(ds: FERDataset, fold: int, k: int = 10, seed: int = 0, val_fraction: float = 0.1) -> FERDataset:
    """One subject-independent fold as splits ``Training``/``Validation``/``Test``.

    Validation subjects are carved from the fold's training subjects, never from its test.
    """
    folds = subject_kfold(ds, k, seed)
    if not 0 <= fold < k:
        raise DataError(f"fold={fold}: expected 0..{k - 1}")
    tr, te = folds[fold]
    splits = np.array(["Training"] * len(ds), dtype=object)
    splits[te] = "Test"
    if val_fraction > 0:
        subjects = np.array(sorted(set(ds.meta["subject"].to_numpy()[tr])))
        rng = np.random.default_rng(seed + fold)
        n_val = max(1, int(round(val_fraction * len(subjects))))
        val_subjects = set(rng.choice(subjects, size=n_val, replace=False).tolist())
        val_mask = np.isin(ds.meta["subject"].to_numpy(), list(val_subjects))
        val_mask[te] = False
        splits[val_mask] = "Validation"
    return dataclasses.replace(ds, splits=splits)


# ----------------------------------------------------------------------------- synthetic default

def load_synthetic(n_per_class: int = 60, *, seed: int = 0, size: int = 48,
                   split_fractions=(0.8, 0.1, 0.1)) -> FERDataset:
    """The built-in synthetic FER-like dataset (procedurally drawn faces).

    Class frequencies follow FER-2013's (Happy most, Disgust least) scaled so that the
    average class has ``n_per_class`` images; rows are split into ``Training``,
    ``PublicTest`` and ``PrivateTest`` by ``split_fractions``, stratified.
    """
    from fer_utils import synthetic

    if n_per_class < 3:
        raise DataError(f"n_per_class={n_per_class}: expected at least 3 (one image per split)")
    fer_train = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], dtype=np.float64)
    per_class = np.maximum(3, np.round(fer_train / fer_train.mean() * n_per_class)).astype(int)
    images, labels = synthetic.make_synthetic_faces(per_class.tolist(), size=size, seed=seed)
    splits = np.empty(len(labels), dtype=object)
    rng = np.random.default_rng(seed)
    for c in range(len(FER2013_CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, int(round(split_fractions[1] * len(idx))))
        n_priv = max(1, int(round(split_fractions[2] * len(idx))))
        splits[idx] = "Training"
        splits[idx[:n_test]] = "PublicTest"
        splits[idx[n_test:n_test + n_priv]] = "PrivateTest"
    return FERDataset(images=images, labels=labels, class_names=FER2013_CLASSES, splits=splits,
                      source_ids=np.array([f"synthetic:seed={seed}:i={i}" for i in range(len(labels))], dtype=object),
                      name="synthetic", path="", synthetic=np.ones(len(labels), dtype=bool))


# ----------------------------------------------------------------------------- discovery

DATASETS = ("fer2013", "ferplus", "ckplus", "folder", "synthetic")


@dataclasses.dataclass
class DataSource:
    """Where a dataset was found: its kind and the paths a loader needs."""

    kind: str
    path: str
    extra: dict = dataclasses.field(default_factory=dict)


def candidate_roots(data_dir="auto") -> list:
    """Folders searched for datasets, in order.

    ``auto`` means ``$FER_DATA_DIR``, ``./data``, ``../data`` and the usual Kaggle inputs
    (``/kaggle/input/*``); any other value is taken as the only root.
    """
    if data_dir not in (None, "", "auto"):
        return [Path(data_dir)]
    roots = []
    if os.environ.get("FER_DATA_DIR"):
        roots.append(Path(os.environ["FER_DATA_DIR"]))
    roots += [Path("data"), Path("..") / "data"]
    kaggle = Path("/kaggle/input")
    if kaggle.is_dir():
        roots += [kaggle] + sorted(p for p in kaggle.iterdir() if p.is_dir())
    return roots


def _find_in_root(root: Path, kind: str):
    if not root.is_dir():
        return None
    if kind in ("fer2013", "ferplus"):
        for rel in ("fer2013/fer2013.csv.gz", "fer2013/fer2013.csv", "fer2013.csv.gz", "fer2013.csv",
                    "fer2013/fer2013/fer2013.csv"):
            csv = root / rel
            if csv.is_file():
                if kind == "fer2013":
                    return DataSource("fer2013_csv", str(csv))
                for prel in ("ferplus/fer2013new.csv", "fer2013new.csv", "FERPlus/fer2013new.csv"):
                    if (root / prel).is_file():
                        return DataSource("ferplus", str(root / prel), {"fer_csv": str(csv)})
        if kind == "fer2013":
            for rel in ("", "fer2013"):
                base = root / rel
                if (base / "train").is_dir() and (base / "test").is_dir():
                    return DataSource("fer2013_folders", str(base))
    if kind == "ckplus":
        for rel in ("ckplus/CK+48", "CK+48", "ckplus/ckplus48.npz", "ckplus48.npz", "ckplus"):
            p = root / rel
            if p.is_file() or (p.is_dir() and (p / "anger").is_dir()):
                return DataSource("ckplus", str(p))
    return None


def discover(kind: str, data_dir="auto") -> DataSource | None:
    """Find a dataset of ``kind`` (``fer2013``, ``ferplus``, ``ckplus``) under the candidate roots."""
    for root in candidate_roots(data_dir):
        found = _find_in_root(root, kind)
        if found:
            return found
    return None


def load_dataset(dataset: str = "auto", data_dir="auto", *, synthetic_per_class: int = 60, seed: int = 0,
                 strict: bool = True, **kwargs) -> FERDataset:
    """Load a dataset by name, discovering its files.

    Args:
        dataset: ``"auto"`` (FER-2013 if found, else the synthetic default), ``"fer2013"``,
            ``"ferplus"``, ``"ckplus"``, ``"folder"`` (``data_dir`` is a ``<class>/<images>`` root)
            or ``"synthetic"``.
        data_dir: ``"auto"`` (see :func:`candidate_roots`) or a folder or file path.
        synthetic_per_class: size of the synthetic default.
        seed: seed of the synthetic default.
        strict: loaders raise on the first bad row (True) or skip and report (False).
        **kwargs: passed to the loader (e.g. ``tie_rule`` for FER+).

    Raises:
        DataError: an explicitly requested dataset was not found; lists the folders searched.
    """
    if dataset not in ("auto",) + DATASETS:
        raise DataError(f"dataset={dataset!r}: expected one of {['auto', *DATASETS]}")
    if dataset == "synthetic":
        return load_synthetic(synthetic_per_class, seed=seed)
    if dataset == "folder":
        return load_image_folder(data_dir, strict=strict, **kwargs)
    p = Path(str(data_dir))
    if data_dir not in (None, "", "auto") and p.is_file():
        src = DataSource("ckplus" if dataset == "ckplus" else "fer2013_csv", str(p))
    else:
        src = discover("fer2013" if dataset == "auto" else dataset, data_dir)
    if src is None:
        if dataset == "auto":
            warnings.warn("No FER-2013 found in " + ", ".join(map(str, candidate_roots(data_dir)))
                          + ": using the built-in SYNTHETIC dataset. Set FER_DATA_DIR or data_dir to use real data.",
                          stacklevel=2)
            return load_synthetic(synthetic_per_class, seed=seed)
        raise DataError(f"dataset {dataset!r} not found; searched {[str(r) for r in candidate_roots(data_dir)]}. "
                        "Set data_dir or $FER_DATA_DIR to the folder holding it (see README: Data).")
    if src.kind == "fer2013_csv":
        return load_fer2013_csv(src.path, strict=strict, **kwargs)
    if src.kind == "fer2013_folders":
        return load_fer2013_folders(src.path, strict=strict, **kwargs)
    if src.kind == "ferplus":
        return load_ferplus(src.extra["fer_csv"], src.path, strict=strict, **kwargs)
    return load_ckplus(src.path, strict=strict)


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
    eligible = np.ones(len(ds), dtype=bool) if ds.is_synthetic else ~ds.synthetic
    candidates = np.flatnonzero((ds.splits == source_split) & eligible)
    if len(candidates) == 0:
        raise DataError(f"{ds.name}: split {source_split!r} is empty; splits present: {ds.split_names}")
    labels = ds.labels[candidates]
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    _, val_idx = train_test_split(candidates, test_size=val_fraction, random_state=seed, stratify=stratify)
    splits = ds.splits.copy()
    splits[val_idx] = val_name
    return dataclasses.replace(ds, splits=splits)


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


# FER-2013 class -> FER+ class with the same meaning.
FER_TO_FERPLUS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                  "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}


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
