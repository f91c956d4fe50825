"""Finding datasets on disk and loading them by name.

``auto`` looks in ``$FER_DATA_DIR``, ``./data``, ``../data`` and the Kaggle inputs.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

from fer_utils import progress
from fer_utils.data.ckplus import load_ckplus
from fer_utils.data.dataset import DataError, FERDataset
from fer_utils.data.fer2013_csv import load_fer2013_csv
from fer_utils.data.ferplus import load_ferplus
from fer_utils.data.folders import load_image_folder
from fer_utils.data.kaggle import load_fer2013_folders
from fer_utils.data.synthetic import load_synthetic, synthetic_stand_in


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
        for rel in CKPLUS_PLACES:
            p = root / rel
            if p.is_file() or _has_ck_class_folder(p):
                return DataSource("ckplus", str(p))
    return None


#: Where CK+ is looked for under a root, in order: the folder copy first, then the npz.
CKPLUS_PLACES = ("ckplus/CK+48", "CK+48", "ckplus/ckplus48.npz", "ckplus48.npz", "ckplus")


def _has_ck_class_folder(path: Path) -> bool:
    """A folder holding at least one CK+ class folder, matched case-insensitively (as ``load_ckplus`` matches them):
    it is the CK+ copy, and ``load_ckplus`` names any class it lacks instead of a silent fall-back to the npz."""
    from fer_utils.data.classes import CKPLUS_CLASSES

    return path.is_dir() and any(c.is_dir() and c.name.lower() in CKPLUS_CLASSES for c in path.iterdir())


def discover(kind: str, data_dir="auto") -> DataSource | None:
    """Find a dataset of ``kind`` (``fer2013``, ``ferplus``, ``ckplus``) under the candidate roots."""
    for root in candidate_roots(data_dir):
        found = _find_in_root(root, kind)
        if found:
            return found
    return None


def _is_ferplus_votes(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "Image name" in fh.readline()
    except OSError:
        return False


def _source_for_file(path: Path, dataset: str) -> DataSource:
    """The source a single file given as ``data_dir`` stands for, given the requested ``dataset``.

    FER+ needs two files: given either ``fer2013new.csv`` or the FER-2013 csv, the other one is
    looked for in the same folder and its parent (the layout of *Data* in the README).
    """
    if dataset == "ckplus":
        return DataSource("ckplus", str(path))
    if dataset != "ferplus":
        if _is_ferplus_votes(path):
            raise DataError(f"{path}: is the FER+ votes file (fer2013new.csv), not the FER-2013 csv; use "
                            "dataset='ferplus' or point data_dir at fer2013.csv(.gz)")
        return DataSource("fer2013_csv", str(path))
    near = [path.parent, path.parent.parent]
    if _is_ferplus_votes(path):
        for root in near:
            found = _find_in_root(root, "fer2013")
            if found is not None and found.kind == "fer2013_csv":
                return DataSource("ferplus", str(path), {"fer_csv": found.path})
        raise DataError(f"{path}: FER+ votes need the FER-2013 csv for their pixels; none found in "
                        f"{[str(r) for r in near]} (expected fer2013.csv(.gz) there or in a fer2013/ folder)")
    for root in near:
        for prel in ("ferplus/fer2013new.csv", "fer2013new.csv", "FERPlus/fer2013new.csv"):
            if (root / prel).is_file():
                return DataSource("ferplus", str(root / prel), {"fer_csv": str(path)})
    raise DataError(f"{path}: dataset='ferplus' needs fer2013new.csv (FER+ votes); none found in "
                    f"{[str(r) for r in near]}")


def locate(dataset: str, data_dir="auto") -> DataSource | None:
    """Where ``dataset`` (``auto``/``fer2013``, ``ferplus``, ``ckplus``) would be loaded from, or None.

    ``data_dir`` may be a folder (searched) or a file (taken as the dataset's file).

    Raises:
        DataError: a file given as ``data_dir`` that cannot be the requested dataset.
    """
    p = Path(str(data_dir))
    if data_dir not in (None, "", "auto") and p.is_file():
        return _source_for_file(p, dataset)
    return discover("fer2013" if dataset == "auto" else dataset, data_dir)


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
    src = locate(dataset, data_dir)
    if src is None:
        if dataset == "auto" and data_dir in (None, "", "auto"):
            message = ("No FER-2013 found in " + ", ".join(map(str, candidate_roots(data_dir)))
                       + ": using the built-in SYNTHETIC dataset. Set FER_DATA_DIR or data_dir to use real data.")
            warnings.warn(message, stacklevel=2)
            progress.report(message)  # the runner's console says so, not only the report
            return load_synthetic(synthetic_per_class, seed=seed)
        if not Path(str(data_dir)).exists() and data_dir not in (None, "", "auto"):
            raise DataError(f"data_dir={str(data_dir)!r} does not exist (dataset={dataset!r}); give the folder that "
                            "holds the datasets, or data_dir='auto' to search $FER_DATA_DIR, ./data, ../data and "
                            "/kaggle/input (and fall back to the synthetic default)")
        raise DataError(f"dataset {dataset!r} not found; searched {[str(r) for r in candidate_roots(data_dir)]}. "
                        "Set data_dir or $FER_DATA_DIR to the folder holding it (see README: Data).")
    if src.kind == "fer2013_csv":
        return load_fer2013_csv(src.path, strict=strict, **kwargs)
    if src.kind == "fer2013_folders":
        return load_fer2013_folders(src.path, strict=strict, **kwargs)
    if src.kind == "ferplus":
        return load_ferplus(src.extra["fer_csv"], src.path, strict=strict, **kwargs)
    progress.report(f"CK+: using {src.path} (the first of {', '.join(CKPLUS_PLACES)} under its data folder that is "
                    "a file or holds CK+ class folders)")
    return load_ckplus(src.path, strict=strict)




def load_optional(kind: str, data_dir="auto", *, stand_in: bool = False, synthetic_per_class: int = 60,
                  seed: int = 0, force_synthetic: bool = False, **kwargs) -> FERDataset | None:
    """A secondary dataset (``ferplus``, ``ckplus``) that a notebook can do without.

    Found: the dataset. Not found (or ``force_synthetic``, e.g. when the run is on the synthetic
    default): with ``stand_in`` the synthetic stand-in (:func:`synthetic_stand_in`), said loudly;
    without, None, with the reason printed.
    """
    if data_dir not in (None, "", "auto") and not Path(str(data_dir)).exists():
        raise DataError(f"data_dir={str(data_dir)!r} does not exist (looking for {kind}); give the folder that "
                        "holds the datasets, or data_dir='auto'")
    if force_synthetic:
        reason = "the run uses the synthetic default"
    elif locate(kind, data_dir) is not None:
        return load_dataset(kind, data_dir, **kwargs)  # found: a broken file is an error, not a fallback
    else:
        reason = f"searched {[str(r) for r in candidate_roots(data_dir)]}"
    if not stand_in:
        print(f"{kind}: not available ({reason})")
        return None
    print(f"!!! {kind} not found ({reason}): using the SYNTHETIC stand-in; its numbers say nothing about {kind} !!!")
    return synthetic_stand_in(kind, synthetic_per_class, seed=seed)


def expected_splits(dataset: str = "auto", data_dir="auto") -> tuple:
    """The split names a dataset will have once loaded, found without loading it (for checks before training).

    Returns:
        ``(source description, split names)``; the synthetic default when ``auto`` finds nothing. A Kaggle
        folder copy has ``PublicTest``/``PrivateTest`` only when its test file names carry those prefixes,
        else one ``Test`` split. CK+ has one split (``all``), folded later into Training/Validation/Test.

    Raises:
        DataError: as :func:`load_dataset` for a missing explicit ``data_dir`` or dataset.
    """
    from fer_utils.data.classes import FER2013_SPLITS, SINGLE_TEST_SPLIT
    from fer_utils.data.kaggle import _KAGGLE_PREFIX

    if dataset == "synthetic":
        return "synthetic default", FER2013_SPLITS
    if dataset == "folder":
        return f"folder {data_dir}", ("all",)
    src = locate(dataset, data_dir)
    if src is None:
        if dataset == "auto" and data_dir in (None, "", "auto"):
            return "synthetic default (no dataset found)", FER2013_SPLITS
        if data_dir not in (None, "", "auto") and not Path(str(data_dir)).exists():
            raise DataError(f"data_dir={str(data_dir)!r} does not exist (dataset={dataset!r})")
        raise DataError(f"dataset {dataset!r} not found; searched {[str(r) for r in candidate_roots(data_dir)]}")
    if src.kind == "fer2013_folders":
        test = Path(src.path) / "test"
        names = (p.name for p in test.glob("*/*"))
        prefixed = any(_KAGGLE_PREFIX.match(n) for n in names)
        return f"{src.kind} {src.path}", FER2013_SPLITS if prefixed else ("Training", SINGLE_TEST_SPLIT)
    if src.kind == "ckplus":
        return f"ckplus {src.path}", ("all",)
    return f"{src.kind} {src.path}", FER2013_SPLITS
