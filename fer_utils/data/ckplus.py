"""CK+48 (folders or npz), subjects parsed from file names, subject-independent folds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils.data.classes import CKPLUS_CLASSES, SINGLE_TEST_SPLIT
from fer_utils.data.dataset import DataError, FERDataset
from fer_utils.data.folders import load_image_folder

_CK_SUBJECT = re.compile(r"^(S\d{3})_")


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
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: not a readable npz file ({type(exc).__name__}: {exc}); expected arrays "
                            "images, labels, class_names, filenames") from exc
        with z:
            missing = [k for k in ("images", "labels", "class_names", "filenames") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {missing}")
            files = z["filenames"].astype(str)
            names = tuple(z["class_names"].astype(str).tolist())
            if tuple(n.lower() for n in names) != CKPLUS_CLASSES:
                raise DataError(f"{path}: class_names {list(names)} are not CK+'s {list(CKPLUS_CLASSES)} "
                                "(in this order; missing: "
                                f"{sorted(set(CKPLUS_CLASSES) - {n.lower() for n in names})})")
            ds = FERDataset(images=z["images"].astype(np.uint8), labels=z["labels"].astype(np.int64),
                            class_names=CKPLUS_CLASSES,
                            splits=np.array(["all"] * len(files), dtype=object),
                            source_ids=np.array([f"{path.name}:{f}" for f in files], dtype=object),
                            name="ckplus", path=str(path))
    else:
        # The known CK+ classes, matched case-insensitively: a missing or misspelt class folder is an
        # error naming it, never a silently shorter class list with shifted label indices.
        ds = load_image_folder(path, class_names=CKPLUS_CLASSES, split="all", strict=strict, name="ckplus")
        files = ds.source_ids
    return ds.replace(meta=pd.DataFrame({"subject": [parse_ck_subject(f) for f in files],
                                         "sequence": ["_".join(Path(f).name.split("_")[:2]) for f in files]}))


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
    splits[te] = SINGLE_TEST_SPLIT
    if val_fraction > 0:
        subjects = np.array(sorted(set(ds.meta["subject"].to_numpy()[tr])))
        rng = np.random.default_rng(seed + fold)
        n_val = max(1, int(round(val_fraction * len(subjects))))
        val_subjects = set(rng.choice(subjects, size=n_val, replace=False).tolist())
        val_mask = np.isin(ds.meta["subject"].to_numpy(), list(val_subjects))
        val_mask[te] = False
        splits[val_mask] = "Validation"
    return ds.replace(splits=splits)


