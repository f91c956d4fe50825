"""FER+ (``fer2013new.csv``): crowd votes on FER-2013 pixels, majority labels and vote distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils.data.classes import FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS
from fer_utils.data.dataset import DataError, FERDataset
from fer_utils.data.fer2013_csv import load_fer2013_csv


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
    total = len(fer) + len(fer.skipped)  # the csv's data rows: those kept and those skipped (strict=False)
    if len(votes) != total or rows.max() >= len(votes):
        raise DataError(f"{ferplus_csv}: has {len(votes)} rows but {fer_csv} has {total}; FER+ must be aligned row "
                        f"by row with fer2013.csv (from row {min(len(votes), total)} on, a row is in one file only)")
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
    kept = fer.subset(idx)
    meta = pd.DataFrame({"row": rows[idx], "fer_label": fer.labels[idx],
                         "image_name": v["Image name"].to_numpy()[idx], "target": target})
    skipped = fer.skipped + [(f"{Path(ferplus_csv).name}:row={rows[i]}",
                              reason[i] if named[i] else "no image name (NF)") for i in np.flatnonzero(~keep)]
    return kept.replace(labels=majority[idx].astype(np.int64), class_names=FERPLUS_CLASSES,
                        soft_labels=dist[idx].astype(np.float32), name="ferplus", path=str(ferplus_csv),
                        meta=meta, skipped=skipped)


def read_ferplus_votes(path) -> pd.DataFrame:
    """Read ``fer2013new.csv``, checking its columns and vote values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected FER+ fer2013new.csv)")
    expected = ["Usage", "Image name", *FERPLUS_VOTE_COLUMNS]
    try:
        df = pd.read_csv(path, dtype={"Image name": str})
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty (expected FER+ votes with header {','.join(expected)})") from exc
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as a csv ({type(exc).__name__}: {exc}); expected FER+ votes "
                        f"with header {','.join(expected)}") from exc
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {','.join(expected)}")
    vals = df[list(FERPLUS_VOTE_COLUMNS)]
    bad = ~vals.apply(lambda c: pd.to_numeric(c, errors="coerce")).notna().all(axis=1)
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: row {r} has a non-numeric vote count, expected integers in "
                        f"{list(FERPLUS_VOTE_COLUMNS)}")
    counts = vals.apply(lambda c: pd.to_numeric(c, errors="coerce")).to_numpy(dtype=np.float64)
    negative = np.argwhere(counts < 0)
    if len(negative):
        r, c = (int(v) for v in negative[0])
        raise DataError(f"{path}: row {r}, column {FERPLUS_VOTE_COLUMNS[c]!r} has a negative vote count "
                        f"({counts[r, c]:g}); expected integers >= 0")
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


