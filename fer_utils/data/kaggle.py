"""FER-2013 in the Kaggle folder layout (``train/<class>/*``, ``test/<class>/*``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fer_utils.data.classes import FER2013_CLASSES, FER2013_SPLITS, SINGLE_TEST_SPLIT
from fer_utils.data.dataset import DataError, FERDataset, concatenate
from fer_utils.data.folders import load_image_folder

# Kaggle (msambare) test files keep the original split in their name prefix.
_KAGGLE_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)


def load_fer2013_folders(root, *, image_size=48, strict: bool = True) -> FERDataset:
    """Load the Kaggle FER-2013 layout ``train/<class>/*`` and ``test/<class>/*``.

    ``train`` becomes ``Training``. Test files named ``PublicTest_*``/``PrivateTest_*`` (the
    msambare layout) restore the two original test splits; other test files go to ``Test``.

    Raises:
        DataError: as :func:`load_image_folder`, or a missing/empty ``train``/``test`` folder.
    """
    root = Path(root)
    parts = []
    for sub, split in (("train", "Training"), ("test", SINGLE_TEST_SPLIT)):
        folder = root / sub
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found (expected the Kaggle layout {root}/train/<class>/ "
                            f"and {root}/test/<class>/)")
        parts.append(load_image_folder(folder, class_names=FER2013_CLASSES, split=split, image_size=image_size,
                                       strict=strict, name="fer2013"))
    ds = concatenate(parts, name="fer2013")
    names = [Path(s).name for s in ds.source_ids]
    splits = np.array([
        (_canonical_split(m.group(1)) if (m := _KAGGLE_PREFIX.match(n)) and sp == SINGLE_TEST_SPLIT else sp)
        for n, sp in zip(names, ds.splits)], dtype=object)
    return ds.replace(splits=splits, path=str(root))


def _canonical_split(prefix: str) -> str:
    return {s.lower(): s for s in FER2013_SPLITS}[prefix.lower()]


