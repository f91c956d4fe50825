"""FER-2013 in its original csv form (``emotion,pixels,Usage``, plain or gzip), with a parse cache."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils.data.classes import FER2013_CLASSES, FER2013_SPLITS
from fer_utils.data.dataset import DataError, FERDataset, file_sha256, report_skipped


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


def _parse_pixels(pixels: pd.Series, path: Path, strict: bool, problems: list, n_pixels: int, rejected=None):
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
        if rejected is not None and rejected[i]:
            keep[i] = False
            continue
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
            _bad_row(problems, strict, path, i, f"'pixels' value out of range ({row.min()}..{row.max()}), "
                                                 "expected 0-255")
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
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty (expected the FER-2013 csv with header "
                        "emotion,pixels,Usage)") from exc
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read as a csv ({type(exc).__name__}: {exc}); expected the FER-2013 csv "
                        "(plain or gzip) with header emotion,pixels,Usage") from exc
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
    # Rows already rejected (label, Usage) are not checked again: each bad row is reported once.
    pixels, pix_ok = _parse_pixels(df["pixels"], path, strict, problems, image_size * image_size, rejected=~keep)
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
    report_skipped(ds)
    if cache is not None and not problems:
        _save_cache(cache, ds)
    return ds



def cache_root(cache_dir=None):
    """The folder of parse caches (``cache_dir``, ``$FER_CACHE_DIR`` or ``~/.cache/fer_utils``), created; None when
    ``cache_dir`` is False or the folder cannot be made (a read-only home is no reason to fail: work every time)."""
    if cache_dir is False:
        return None
    root = Path(cache_dir or os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer_utils")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return root


def _cache_path(path: Path, cache_dir, tag: str):
    root = cache_root(cache_dir)
    return None if root is None else root / f"{tag}-{file_sha256(path)[:24]}.npz"


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


