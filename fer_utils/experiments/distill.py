"""Knowledge distillation from trained models' test-time-augmented probabilities (a recipe ingredient).

The teacher is one or more trained run folders (e.g. notebook 03's recipe seeds, ensembled). Their class
probabilities on the **Training rows only**, averaged over the members and over the TTA views (ten-crop by
default), are computed once and kept in ``teacher.npz`` with what they were made from: the members' model
checksums, the TTA, the data checksum and the rows' source ids; a file made from anything else is refused, never
silently reused. The seconds they took are kept too: the teacher's cost is stated apart from the student's
training time.

The student trains on soft targets ``(1 - alpha) * one_hot + alpha * teacher`` (Hinton et al. 2015 at temperature
1, offline: the teacher saw each face without augmentation) through ``run_model(target="distribution")``. Validation
and test rows keep their one-hot labels, so checkpoint selection and every test number are unchanged in kind. The
teacher never sees a validation or test row, and a teacher trained on another split of the data cannot be used
unknowingly: its members' run folders must have been trained on this dataset (same data checksum).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from fer_utils import data as D
from fer_utils import progress, runs

TEACHER_FILE = "teacher.npz"


def _model_sha(run_dir) -> str:
    path = Path(run_dir) / runs.MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"teacher member {run_dir}: no {runs.MODEL_FILE} (train it first)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_members(members, ds: D.FERDataset) -> list:
    """The teacher's run folders, each trained on ``ds`` (its recorded data checksum), as Paths.

    Raises:
        ValueError: no member, or a member trained on other data (named, with both checksums).
        FileNotFoundError: a member without a trained model.
    """
    members = [Path(m) for m in members]
    if not members:
        raise ValueError("distillation needs at least one teacher run folder")
    for m in members:
        _model_sha(m)
        recorded = (runs.read_recipe(m) or {}).get("data_checksum")
        if recorded and recorded != ds.checksum:
            raise ValueError(f"teacher member {m} was trained on data {recorded}, not on this dataset ({ds.checksum}): "
                             "its probabilities on these Training rows would come from another split")
    return members


def teacher_probabilities(ds: D.FERDataset, members, out_file, *, tta="ten_crop", batch_size: int = 256) -> dict:
    """The members' averaged ``tta`` probabilities on ``ds``'s Training rows, computed once into ``out_file``.

    Returns:
        ``{"probs": float32 [n_train, K], "rows": indices into ds, "seconds": teacher inference time, "tta",
        "members", "model_sha256", "reused": bool}``.
    """
    from fer_utils.predictor import EnsemblePredictor, load_predictor

    members = check_members(members, ds)
    rows = np.flatnonzero(ds.splits == "Training")
    ids = np.asarray(ds.source_ids)[rows].astype(str)
    record = {"members": np.array([str(m) for m in members]),
              "model_sha256": np.array([_model_sha(m) for m in members]), "tta": np.array(str(tta)),
              "data_checksum": np.array(ds.checksum)}
    out_file = Path(out_file)
    if out_file.exists():
        with np.load(out_file, allow_pickle=False) as z:
            same = (all(np.array_equal(z[k], v) for k, v in record.items()) and np.array_equal(z["source_ids"], ids))
            if same:
                return {"probs": z["probs"], "rows": rows, "seconds": float(z["seconds"]), "tta": str(tta),
                        "members": list(record["members"]), "model_sha256": list(record["model_sha256"]),
                        "reused": True}
        raise ValueError(f"{out_file} holds the probabilities of another teacher or dataset (members, model checksums, "
                         f"TTA, data checksum or rows differ); move it away to compute them again")
    predictors = [load_predictor(m) for m in members]
    teacher = predictors[0] if len(predictors) == 1 else EnsemblePredictor(predictors)
    progress.report(f"teacher: {len(members)} model(s), {tta} TTA, {len(rows)} Training rows")
    t0 = time.perf_counter()
    probs = np.asarray(teacher.predict(ds.images[rows], batch_size=batch_size, tta=tta), dtype=np.float32)
    seconds = time.perf_counter() - t0
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(out_file.name + ".partial.npz")
    np.savez(partial, probs=probs, source_ids=ids, seconds=np.array(seconds), **record)
    partial.replace(out_file)
    return {"probs": probs, "rows": rows, "seconds": seconds, "tta": str(tta), "members": list(record["members"]),
            "model_sha256": list(record["model_sha256"]), "reused": False}


def summary(ds: D.FERDataset, teacher: dict) -> dict:
    """What the soft targets carry: the teacher's accuracy on the Training rows it labels (its members trained on
    them, so this is a fit, not a test), its mean top probability and mean entropy in nats (0 = one-hot,
    ln K = uniform), and the share of rows whose top probability exceeds 0.9."""
    probs, rows = np.asarray(teacher["probs"], dtype=np.float64), np.asarray(teacher["rows"])
    if probs.shape != (len(rows), ds.num_classes):
        raise ValueError(f"teacher probabilities {probs.shape} do not fit {len(rows)} rows and "
                         f"{ds.num_classes} classes")
    top = probs.max(axis=1)
    return {"train_accuracy": float((probs.argmax(axis=1) == ds.labels[rows]).mean()),
            "mean_top_probability": float(top.mean()), "share_top_above_90": float((top > 0.9).mean()),
            "mean_entropy": float(-(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1).mean())}


def distilled(ds: D.FERDataset, teacher: dict, alpha: float) -> D.FERDataset:
    """``ds`` with soft labels: Training rows ``(1 - alpha) * one_hot + alpha * teacher``, every other row one-hot.

    Raises:
        ValueError: ``alpha`` outside [0, 1], or teacher probabilities that do not fit ``ds``'s Training rows.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"distillation alpha={alpha}: expected a number in [0, 1]")
    probs, rows = np.asarray(teacher["probs"], dtype=np.float32), np.asarray(teacher["rows"])
    if probs.shape != (len(rows), ds.num_classes) or not np.array_equal(rows, np.flatnonzero(ds.splits == "Training")):
        raise ValueError(f"teacher probabilities {probs.shape} for {len(rows)} rows do not fit this dataset's "
                         f"{int((ds.splits == 'Training').sum())} Training rows and {ds.num_classes} classes")
    soft = np.eye(ds.num_classes, dtype=np.float32)[ds.labels]
    soft[rows] = (1.0 - float(alpha)) * soft[rows] + float(alpha) * probs
    return ds.replace(soft_labels=soft)


def record(teacher: dict, alpha: float) -> dict:
    """What made a student's soft labels, for its run's recipe (``run_model(distillation=...)``)."""
    return {"members": [str(m) for m in teacher["members"]], "model_sha256": [str(s) for s in teacher["model_sha256"]],
            "tta": str(teacher["tta"]), "alpha": float(alpha)}
