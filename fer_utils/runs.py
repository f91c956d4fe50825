"""The run-folder contract: every file of a model's run folder, written and read back here only.

A model run folder (one per trained model, e.g. ``reports/cpu/03_baselines/cnn/``)::

    run_dir/
        train_config.json   the TrainConfig used (round-trips via TrainConfig.from_dict)
        history.csv         one row per finished epoch, with the learning rate (same seed -> same bytes)
        timings.csv         wall seconds of each finished epoch, its end, CPU kind, boot id and the cores other
                            processes used (kept apart: timings never repeat)
        model.keras         best checkpoint on validation
        preprocessing.json  what a face goes through before the model: classes, input size, channels,
                            normalization and its statistics, TTA used at evaluation
        predictions.npz     test-split probabilities with labels, source ids and split per row
        metrics.json        headline numbers, per-split metrics and the reproducibility metadata
        recipe.json         what the run was asked to do (model, data checksum, training and preprocessing
                            settings, seed): a re-run with the same recipe resumes or reuses the run
        backup/             resumable state while a run is unfinished
        tb/                 TensorBoard logs (optional)
        replaced-<stamp>/   an earlier run's files, moved aside together (never deleted); after a re-evaluation
                            with another TTA, only the earlier evaluation's files

An ensemble run folder (e.g. ``03_baselines/msca_resnet/ensemble/``) holds ``ensemble.json`` (its member run
folders, relative to it, with their data checksums) instead of a model, and the same ``metrics.json`` and
``predictions.npz``.

A notebook's run folder holds the same ``metrics.json`` (its headline for the index page).
:func:`fer_utils.predictor.load_predictor` turns a model, ensemble or exported folder into a predictor whose
``predict`` takes uint8 faces; evaluation uses it too, so prediction and evaluation cannot drift apart.

Importing this module imports no TensorFlow (the runner reads file names from it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
TIMINGS_FILE = "timings.csv"
MODEL_FILE = "model.keras"
#: The last epoch's model, kept beside the best one when ``TrainConfig.keep_last``.
LAST_MODEL_FILE = "last.keras"
CONFIG_FILE = "train_config.json"
PREDICTIONS_FILE = "predictions.npz"
PREPROCESSING_FILE = "preprocessing.json"
RECIPE_FILE = "recipe.json"
ENSEMBLE_FILE = "ensemble.json"
BACKUP_DIR = "backup"
#: How an earlier run's files moved aside (:func:`move_aside`) name their folder: ``replaced-<timestamp>``.
REPLACED_PREFIX = "replaced-"
TENSORBOARD_DIR = "tb"
#: The files of a finished model run (linked from the index; moved aside together on overwrite).
RUN_FILES = (METRICS_FILE, HISTORY_FILE, PREDICTIONS_FILE, MODEL_FILE, CONFIG_FILE, PREPROCESSING_FILE, TIMINGS_FILE,
             RECIPE_FILE)
#: The files an evaluation writes: moved aside together when a finished model is evaluated again (another TTA).
EVALUATION_FILES = (METRICS_FILE, PREDICTIONS_FILE, PREPROCESSING_FILE, RECIPE_FILE)
#: Keys every preprocessing.json has.
PREPROCESSING_KEYS = ("class_names", "input_size", "channels", "normalization", "norm_mean", "norm_std", "tta",
                      "crop_fraction", "resize")


# ----------------------------------------------------------------------------- JSON files

def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path, payload: dict) -> Path:
    """Write JSON atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, sort_keys=False))
    tmp.replace(path)
    return path


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found ({what})")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); expected {what}") from exc


def write_metrics(run_dir, headline: dict, metadata: dict, **sections) -> Path:
    """Write ``metrics.json``: ``headline`` (shown on the index page), ``metadata`` and more sections.

    Args:
        run_dir: a notebook's or a model's run folder.
        headline: a few key numbers or strings (e.g. ``{"PrivateTest_accuracy": 0.71}``).
        metadata: from :func:`fer_utils.artifacts.run_metadata`.
        **sections: any further JSON-serialisable sections (per-split metrics, tables).
    """
    return write_json(Path(run_dir) / METRICS_FILE, {"headline": headline, "metadata": metadata, **sections})


def read_metrics(run_dir) -> dict:
    """Read a run folder's ``metrics.json``.

    Raises:
        FileNotFoundError: naming the file and the notebook that should have written it.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run the notebook that writes {Path(run_dir).name} first")
    return json.loads(path.read_text())


def write_train_config(run_dir, config: dict) -> Path:
    """Write ``train_config.json`` (a ``TrainConfig.to_dict()``)."""
    return write_json(Path(run_dir) / CONFIG_FILE, config)


def read_train_config(run_dir) -> dict:
    """Read ``train_config.json`` as a dict (``TrainConfig.from_dict`` makes it a config again)."""
    return _read_json(Path(run_dir) / CONFIG_FILE, "the training configuration of a run")


def write_preprocessing(run_dir, *, class_names, input_size, channels: int, normalization: str,
                        norm_mean: Optional[float] = None, norm_std: Optional[float] = None,
                        tta: Optional[str] = None, crop_fraction: float = 0.875, **extra) -> Path:
    """Write ``preprocessing.json``: everything a face goes through before the model sees it.

    ``resize`` is always ``"pad"``: the face is resized to ``input_size`` with its aspect ratio kept
    (padding), exactly as :func:`fer_utils.pipeline.make_dataset` does.
    """
    size = [int(input_size), int(input_size)] if np.isscalar(input_size) else [int(v) for v in input_size]
    spec = {"class_names": [str(c) for c in class_names], "input_size": size, "channels": int(channels),
            "normalization": normalization, "norm_mean": norm_mean, "norm_std": norm_std, "tta": tta,
            "crop_fraction": float(crop_fraction), "resize": "pad", **extra}
    return write_json(Path(run_dir) / PREPROCESSING_FILE, spec)


def read_preprocessing(run_dir) -> dict:
    """Read ``preprocessing.json``, checking it has every key a predictor needs."""
    path = Path(run_dir) / PREPROCESSING_FILE
    spec = _read_json(path, "the preprocessing record every trained model writes")
    missing = [k for k in PREPROCESSING_KEYS if k not in spec]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; expected {list(PREPROCESSING_KEYS)}")
    return spec


def write_recipe(run_dir, recipe: dict) -> Path:
    """Write ``recipe.json``: what this run was asked to do."""
    return write_json(Path(run_dir) / RECIPE_FILE, recipe)


def read_recipe(run_dir) -> Optional[dict]:
    """``recipe.json`` as a dict, or None when absent or unreadable."""
    try:
        return json.loads((Path(run_dir) / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return None


def run_state(run_dir) -> str:
    """Where a model run folder stands.

    Returns:
        ``"new"`` (nothing trained), ``"interrupted"`` (resumable state in ``backup/``),
        ``"trained"`` (training finished, evaluation did not: ``model.keras`` without ``metrics.json``)
        or ``"finished"`` (``metrics.json`` written).
    """
    run_dir = Path(run_dir)
    if (run_dir / METRICS_FILE).is_file():
        return "finished"
    if (run_dir / BACKUP_DIR).is_dir():
        return "interrupted"
    if (run_dir / MODEL_FILE).is_file() and history_rows(run_dir):
        return "trained"
    return "new"


def recipe_differences(old: Optional[dict], new: dict) -> list:
    """Keys whose values differ between two recipes (all keys when there is no old recipe)."""
    old = old or {}
    new = json.loads(json.dumps(_jsonable(new)))
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


# ----------------------------------------------------------------------------- history and model

def history_rows(run_dir, file: str = HISTORY_FILE) -> list:
    """The rows of ``history.csv`` (or ``timings.csv``) as dicts of strings ([] when absent)."""
    import csv

    path = Path(run_dir) / file
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_history(run_dir):
    """``history.csv`` as a pandas DataFrame indexed by epoch.

    Raises:
        FileNotFoundError: If the history file does not exist.
    """
    import pandas as pd

    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        raise FileNotFoundError(f"No training history at {path}.")
    return pd.read_csv(path).set_index("epoch")


def load_model(run_dir, *, compile: bool = False):
    """The best checkpoint of a run (``model.keras``).

    Raises:
        FileNotFoundError: If the checkpoint does not exist.
    """
    import keras

    import fer_utils.models  # noqa: F401  (registers the custom layers before deserialising)

    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}; training writes it after the first epoch that "
                                "improves the monitored metric.")
    return keras.saving.load_model(str(path), compile=compile)


def finished_files(run_dir) -> list:
    """The files and folders of an earlier run present in ``run_dir`` (empty history files ignored)."""
    run_dir = Path(run_dir)
    names = list(RUN_FILES) + [LAST_MODEL_FILE, ENSEMBLE_FILE, BACKUP_DIR, TENSORBOARD_DIR]
    return [run_dir / n for n in names if (run_dir / n).exists()]


def finished_run_folders(folder) -> list:
    """The run folders below ``folder`` (a notebook's run folder) that hold a finished run's ``metrics.json``, sorted;
    ``folder``'s own ``metrics.json`` (the notebook's), archives (``_previous``, ``replaced-*``) and backups are not
    run folders."""
    folder = Path(folder)
    out = []
    for metrics in sorted(folder.glob(f"*/**/{METRICS_FILE}")):
        parts = metrics.parent.relative_to(folder).parts
        if not any(p in ("_previous", BACKUP_DIR) or p.startswith(REPLACED_PREFIX) for p in parts):
            out.append(metrics.parent)
    return out


def move_aside(run_dir, names: Optional[Sequence[str]] = None) -> Optional[Path]:
    """Move every file of an earlier run (or those of ``names`` present, e.g. :data:`EVALUATION_FILES`) into
    ``run_dir/replaced-<timestamp>/`` together; returns it (None when there was nothing to move)."""
    run_dir = Path(run_dir)
    leftovers = finished_files(run_dir) if names is None else [run_dir / n for n in names if (run_dir / n).exists()]
    if not leftovers:
        return None
    dest = run_dir / (REPLACED_PREFIX + time.strftime("%Y%m%d-%H%M%S"))
    suffix = 1
    while dest.exists():
        dest = dest.with_name(f"{dest.name.split('.')[0]}.{suffix}")
        suffix += 1
    dest.mkdir()
    for path in leftovers:
        shutil.move(str(path), str(dest / path.name))
    return dest


# ----------------------------------------------------------------------------- predictions.npz

def _predictions_path(path) -> Path:
    p = Path(path)
    # A run folder gets the standard file name; an explicit *.npz path is used as given.
    return p if p.suffix == ".npz" else p / PREDICTIONS_FILE


def save_predictions(path, y_true, y_prob, *, source_ids=None, split=None,
                     class_names: Optional[Sequence[str]] = None) -> Path:
    """Write predictions to ``predictions.npz`` (no pickled objects).

    Args:
        path: Run folder (writes ``<path>/predictions.npz``) or a ``.npz`` path.
        y_true: ``[N]`` labels or ``[N, K]`` one-hot/soft labels (stored as argmax labels).
        y_prob: ``[N, K]`` probabilities.
        source_ids: Optional ``[N]`` ids linking rows to the source images.
        split: Optional split name for all rows or a per-row ``[N]`` array of split names.
        class_names: Optional K class names.

    Raises:
        ValueError: If the arrays' lengths or class counts disagree.
    """
    from fer_utils.evaluate.metrics import to_labels

    prob = np.asarray(y_prob, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f"Invalid y_prob shape {prob.shape}; expected [N, K].")
    n, k = prob.shape
    yt = to_labels(y_true, k, "y_true")
    if len(yt) != n:
        raise ValueError(f"y_true has {len(yt)} samples but y_prob has {n}.")
    arrays: dict[str, np.ndarray] = {"y_true": yt, "y_prob": prob, "y_pred": np.argmax(prob, axis=1).astype(np.int64)}
    if source_ids is not None:
        ids = np.asarray(source_ids)
        if ids.dtype == object:
            ids = ids.astype(str)
        if len(ids) != n:
            raise ValueError(f"source_ids has {len(ids)} entries but y_prob has {n} rows.")
        arrays["source_ids"] = ids
    if split is not None:
        sp = np.asarray(split)
        if sp.ndim == 0:
            sp = np.full(n, str(split))
        elif len(sp) != n:
            raise ValueError(f"split has {len(sp)} entries but y_prob has {n} rows.")
        arrays["split"] = sp.astype(str)
    if class_names is not None:
        names = [str(c) for c in class_names]
        if len(names) != k:
            raise ValueError(f"class_names has {len(names)} names but y_prob has {k} columns.")
        arrays["class_names"] = np.asarray(names)
    out = _predictions_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    return out


def load_predictions(path) -> dict[str, Any]:
    """Read a file written by :func:`save_predictions`.

    Returns:
        Dict with ``y_true`` (int64 [N]), ``y_prob`` (float32 [N, K]), ``y_pred`` (int64 [N]),
        ``source_ids`` (array or None), ``split`` (str array or None), ``class_names`` (list or None).

    Raises:
        FileNotFoundError: If the file does not exist (names the path).
    """
    p = _predictions_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No predictions file at {p}.")
    with np.load(p, allow_pickle=False) as data:
        return {
            "y_true": data["y_true"].astype(np.int64),
            "y_prob": data["y_prob"].astype(np.float32),
            "y_pred": data["y_pred"].astype(np.int64),
            "source_ids": data["source_ids"] if "source_ids" in data else None,
            "split": data["split"].astype(str) if "split" in data else None,
            "class_names": [str(c) for c in data["class_names"]] if "class_names" in data else None,
        }


# ----------------------------------------------------------------------------- ensemble.json

def write_ensemble(run_dir, members: Sequence, *, checksums: Sequence[str] = ()) -> Path:
    """Write ``ensemble.json``: the member run folders (stored relative to ``run_dir``) and their data checksums."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rel = [os.path.relpath(Path(m).resolve(), run_dir.resolve()) for m in members]
    return write_json(run_dir / ENSEMBLE_FILE, {"members": rel, "data_checksums": list(checksums),
                                               "combination": "mean of member probabilities"})


def ensemble_members(run_dir) -> list:
    """The member run folders of an ensemble folder (from ``ensemble.json``), each checked to exist."""
    path = Path(run_dir) / ENSEMBLE_FILE
    spec = _read_json(path, "the member list of an ensemble folder")
    members = spec.get("members")
    if not isinstance(members, list) or not members:
        raise ValueError(f"{path}: 'members' must be a non-empty list of run folders; got {members!r}")
    folders = [(Path(run_dir) / m).resolve() for m in members]
    missing = [str(f) for f in folders if not (f / MODEL_FILE).exists()]
    if missing:
        raise FileNotFoundError(f"{path}: member run(s) without {MODEL_FILE}: {missing}")
    return folders
