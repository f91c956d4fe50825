"""Balancing plans and the balanced training file (real + GAN rows, each flagged).

A *plan* says how many generated images each class gets:

- ``"study_a_table3"``  Study A's Table III counts (Angry 1,675, Disgust 5,234, Fear 1,573, Happy 0, Neutral 705,
  Sad 840, Surprise 2,499: 41,235 training images with FER-2013's 28,709)
- ``"to_max"``          every class up to the largest class
- ``"ratio:R"`` or ``{"ratio": R}``  up to the largest class, at most R generated per real image of the class
- ``{"Disgust": 500, ...}``  explicit counts (classes left out get none)

The balanced file (``balanced_train.npz``) holds the whole training set: images, labels, ``is_synthetic``,
class names, the generator's checksum and the checksum of the real rows it extends. A training notebook
takes it by a parameter (:func:`with_balanced_training`): validation and test splits stay those of the
loaded dataset, and the real rows must be exactly its Training rows. Generated rows are only ever
Training rows; every ``FERDataset`` refuses them elsewhere (``dataset.check_generated_only_in_training``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fer_utils.data.dataset import DataError, FERDataset

STUDY_A_TABLE3 = {"Angry": 1675, "Disgust": 5234, "Fear": 1573, "Happy": 0, "Neutral": 705, "Sad": 840,
                  "Surprise": 2499}
PLAN_NAMES = ("study_a_table3", "to_max", "ratio:R", "{class: count}")
BALANCED_FILE = "balanced_train.npz"
FILE_KEYS = ("images", "labels", "is_synthetic", "class_names", "generator_sha256", "real_checksum", "plan")


def plan_counts(plan, class_names, real_counts) -> dict:
    """Generated images per class for ``plan`` given the real training counts (``{class: n}``, every class).

    Raises:
        DataError: an unknown plan, a class the dataset does not have, or a negative count, naming what
            was expected.
    """
    class_names = list(class_names)
    real = np.array([int(real_counts[c]) for c in class_names])
    lower = {c.lower(): c for c in class_names}
    if isinstance(plan, str) and plan.startswith("ratio:"):
        plan = {"ratio": plan.split(":", 1)[1]}
    if plan == "study_a_table3":
        table = {k.lower(): v for k, v in STUDY_A_TABLE3.items()}
        missing = sorted(set(table) - set(lower))
        if missing or len(class_names) != len(table):
            raise DataError(f"plan 'study_a_table3' needs FER-2013's seven classes {list(STUDY_A_TABLE3)}; "
                            f"the dataset has {class_names}")
        return {c: table[c.lower()] for c in class_names}
    if plan == "to_max":
        return {c: int(real.max() - n) for c, n in zip(class_names, real)}
    if isinstance(plan, dict) and set(plan) == {"ratio"}:
        try:
            ratio = float(plan["ratio"])
        except (TypeError, ValueError):
            ratio = -1.0
        if not ratio >= 0:
            raise DataError(f"plan ratio {plan['ratio']!r}: expected a number >= 0 (e.g. 'ratio:1.5')")
        return {c: int(min(real.max() - n, np.floor(ratio * n))) for c, n in zip(class_names, real)}
    if isinstance(plan, dict):
        out = {c: 0 for c in class_names}
        for key, value in plan.items():
            if str(key).lower() not in lower:
                raise DataError(f"plan: unknown class {key!r}; classes are {class_names}")
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise DataError(f"plan: count for {key!r} must be an integer >= 0, received {value!r}")
            out[lower[str(key).lower()]] = int(value)
        return out
    raise DataError(f"unknown balancing plan {plan!r}; expected one of {list(PLAN_NAMES)}")


def plan_label(plan) -> str:
    """A short name of a plan for tables and folders (``to_max``, ``ratio_1.5``, ``explicit``)."""
    if isinstance(plan, str):
        return plan.replace(":", "_")
    if isinstance(plan, dict) and set(plan) == {"ratio"}:
        return f"ratio_{plan['ratio']}"
    return "explicit"


def images_checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of pixels and labels (a GAN's training images; the real rows a balanced file extends)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.asarray(labels).astype("<i8").tobytes())
    return h.hexdigest()


def real_training_checksum(ds: FERDataset) -> str:
    """:func:`images_checksum` of the real Training rows (what a balanced file extends)."""
    mask = (ds.splits == "Training") & ~ds.generated
    return images_checksum(ds.images[mask], ds.labels[mask])


def write_balanced(path, ds: FERDataset, synthetic_images: np.ndarray, synthetic_labels: np.ndarray, *,
                   generator_sha256: str, plan) -> Path:
    """Write ``ds``'s real Training rows plus the generated rows as the balanced training file."""
    mask = (ds.splits == "Training") & ~ds.generated
    images = np.concatenate([ds.images[mask], np.asarray(synthetic_images, dtype=np.uint8)])
    labels = np.concatenate([ds.labels[mask], np.asarray(synthetic_labels, dtype=np.int64)])
    flags = np.concatenate([np.zeros(mask.sum(), bool), np.ones(len(synthetic_images), bool)])
    path = Path(path)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, images=images, labels=labels, is_synthetic=flags,
                        class_names=np.array(ds.class_names), generator_sha256=np.array(generator_sha256),
                        real_checksum=np.array(real_training_checksum(ds)), plan=np.array(repr(plan)))
    tmp.replace(path)
    return path


def read_balanced(path) -> dict:
    """The balanced file's arrays, checked.

    Raises:
        DataError: a missing file or key, or arrays that do not fit together, naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / BALANCED_FILE
    if not path.exists():
        raise DataError(f"{path}: no balanced training file (notebook 02 writes {BALANCED_FILE} in its run folder)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in FILE_KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: not a balanced training file, missing {missing} (expected {list(FILE_KEYS)})")
            out = {k: z[k] for k in FILE_KEYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the balanced training file ({exc})") from exc
    n = len(out["images"])
    if out["images"].ndim != 3 or out["images"].dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 [N, H, W], got {out['images'].dtype} {out['images'].shape}")
    for key in ("labels", "is_synthetic"):
        if len(out[key]) != n:
            raise DataError(f"{path}: {key} has {len(out[key])} rows, images have {n}")
    out["class_names"] = tuple(str(c) for c in out["class_names"])
    out["path"] = path
    return out


def with_balanced_training(ds: FERDataset, path) -> FERDataset:
    """``ds`` with its Training split replaced by the balanced file's rows (real + flagged generated rows).

    Validation (when already carved) and test splits stay untouched. The file's real rows must be
    exactly ``ds``'s real Training rows (same checksum), so a file made for another subsample,
    validation split or dataset is refused.

    Raises:
        DataError: naming the file and what differs.
    """
    from fer_utils.data.dataset import concatenate

    f = read_balanced(path)
    if f["class_names"] != tuple(ds.class_names):
        raise DataError(f"{f['path']}: classes {list(f['class_names'])} differ from the dataset's "
                        f"{list(ds.class_names)}")
    real = ~f["is_synthetic"]
    found = images_checksum(f["images"][real], f["labels"][real])
    if found != real_training_checksum(ds) or str(f["real_checksum"]) != found:
        raise DataError(f"{f['path']}: its real rows are not this dataset's Training rows (another dataset, "
                        "subsample or validation split); run notebook 02 with the same data, seed, max_per_class "
                        "and val_fraction")
    gen = f["is_synthetic"]
    sha = str(f["generator_sha256"])[:12]
    added = FERDataset(images=f["images"][gen], labels=f["labels"][gen], class_names=ds.class_names,
                       splits=np.full(gen.sum(), "Training", dtype=object),
                       source_ids=np.array([f"gan:{sha}:{i}" for i in range(gen.sum())], dtype=object),
                       name=ds.name, generated=np.ones(gen.sum(), bool))
    return concatenate([ds, added], name=ds.name)


def oversampled(ds: FERDataset, counts: dict, seed: int) -> FERDataset:
    """``ds`` with ``counts[c]`` extra Training rows per class resampled from its real Training rows of class c.

    The control for GAN balancing: the same per-class counts as a plan, made of real faces again (uniform with
    replacement), so the classifier sees the same class mix and number of rows per epoch, only not new images.
    The extra rows keep their original's source id (a row seen twice is one photograph; the near-duplicate
    families count each source id once) and are not flagged generated.

    Raises:
        DataError: a class with extra rows but no real Training row to resample.
    """
    from fer_utils.data.dataset import concatenate

    rng = np.random.default_rng([int(seed), 4241])
    real = np.flatnonzero((ds.splits == "Training") & ~ds.generated)
    picks = []
    for c, name in enumerate(ds.class_names):
        n = int(counts.get(name, 0))
        pool = real[ds.labels[real] == c]
        if n and not len(pool):
            raise DataError(f"oversampling: class {name!r} needs {n} rows and has no real Training row")
        picks.append(pool[rng.integers(0, len(pool), n)] if n else np.zeros(0, np.int64))
    return concatenate([ds, ds.subset(np.concatenate(picks))], name=ds.name)
