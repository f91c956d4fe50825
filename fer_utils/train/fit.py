"""Fitting a compiled model: callbacks, class weights, resuming, and the run folder's training files."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from fer_utils import runs
from fer_utils.train.backup import SafeBackup, backup_epoch
from fer_utils.train.callbacks import StopAtCheckpoint, make_callbacks
from fer_utils.train.config import TrainConfig


def _prepare_run_dir(run_dir: Path, overwrite: bool) -> bool:
    """Checks the run folder; returns True when resuming an interrupted run.

    A folder with a finished run's results (history.csv rows or model.keras)
    and no backup/ is refused unless ``overwrite``; with ``overwrite`` every
    file of the earlier run (metrics and predictions included) is moved to
    ``replaced-<timestamp>/`` together, never deleted.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    history = run_dir / runs.HISTORY_FILE
    backup = run_dir / runs.BACKUP_DIR

    if overwrite:
        runs.move_aside(run_dir)
        return False

    if backup.exists():
        # Resuming: the backup callback restores the state, then cuts history.csv back to it.
        return True

    has_rows = bool(runs.history_rows(run_dir))
    if history.exists() and not has_rows:
        # Header-only/empty file from a run that died before its first epoch
        # ended: nothing to keep, and appending under a stale header could
        # misalign columns.
        history.unlink()
    found = [p.name for p in (history, run_dir / runs.MODEL_FILE) if p.exists()]
    if found:
        raise FileExistsError(
            f"{run_dir} already holds a finished run ({', '.join(found)}; "
            f"{history} would be appended to and mixed with the new run). "
            f"Pass overwrite=True to move the old results to "
            f"{run_dir}/replaced-<timestamp>/, or choose another run_dir. "
            f"(An interrupted run resumes only while {backup} exists.)"
        )
    return False


def _write_config(run_dir: Path, cfg: TrainConfig, resuming: bool) -> None:
    new = cfg.to_dict()
    if resuming and (run_dir / runs.CONFIG_FILE).exists():
        try:
            old = runs.read_train_config(run_dir)
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict):
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if changed:
                warnings.warn(
                    f"Resuming {run_dir} with a different TrainConfig "
                    f"(changed keys: {', '.join(changed)}); the history will "
                    "mix both settings.",
                    stacklevel=3,
                )
    runs.write_train_config(run_dir, new)


def _count_classes(ds) -> np.ndarray:
    counts = None
    for batch in ds:
        y = np.asarray(batch[1])
        k = y.shape[-1]
        labels = np.argmax(y, axis=-1).ravel()
        c = np.bincount(labels, minlength=k)
        counts = c if counts is None else counts + c
    if counts is None:
        raise ValueError("Cannot compute class weights: the training dataset is empty.")
    return counts


def epoch_steps(cfg: TrainConfig, n_batches: Optional[int]) -> Optional[int]:
    """Batches per epoch for ``model.fit``: ``cfg.steps_per_epoch`` as a cap, None for the whole split."""
    if not cfg.steps_per_epoch or (n_batches is not None and n_batches <= cfg.steps_per_epoch):
        return None
    return int(cfg.steps_per_epoch)


def _n_batches(ds) -> Optional[int]:
    if isinstance(ds, tf.data.Dataset):
        n = int(ds.cardinality())
        return n if n >= 0 else None
    return None


def balanced_class_weights(class_counts) -> dict[int, float]:
    """Returns ``{k: n / (K * count_k)}`` (scikit-learn's "balanced").

    Args:
        class_counts: Sequence of per-class sample counts (length K).

    Returns:
        Dict from class index to weight; classes with no samples get 1.0
        (they never occur, so the value is irrelevant but must exist).
    """
    counts = np.asarray(class_counts, dtype=np.float64).ravel()
    if counts.size == 0 or np.any(counts < 0):
        raise ValueError(
            f"Invalid class_counts={list(class_counts)!r}; expected K >= 1 "
            "non-negative counts."
        )
    n, k = counts.sum(), counts.size
    return {
        i: (float(n / (k * c)) if c > 0 else 1.0) for i, c in enumerate(counts)
    }


# --------------------------------------------------------------------------- #
# Fitting
# --------------------------------------------------------------------------- #


def fit_arguments(cfg: TrainConfig, train_ds, class_counts=None, *, start_epoch: int = 0) -> tuple:
    """What ``model.fit`` needs from ``cfg`` besides callbacks: ``(train_ds, steps_per_epoch, class_weight)``.

    ``cfg.steps_per_epoch`` caps an epoch (capped epochs take consecutive batches of an endless reshuffled
    stream); ``cfg.class_weight="balanced"`` weights classes by ``class_counts`` (counted from ``train_ds`` when
    omitted). Shared by :func:`fit_model` and KerasTuner's ``HyperModel.fit`` so that a trial trains exactly as a
    run does.

    ``train_ds`` is a :class:`fer_utils.pipeline.TrainingStream` (what runs and trials use) or a finite
    ``tf.data.Dataset``. A stream is started at batch ``start_epoch * steps_per_epoch``, so a run resumed (or a
    Hyperband trial continued) at ``start_epoch`` sees the batches an uninterrupted run sees from there on.
    """
    from fer_utils.pipeline import TrainingStream

    class_weight = None
    if isinstance(train_ds, TrainingStream):
        if cfg.class_weight == "balanced":
            class_weight = balanced_class_weights(class_counts if class_counts is not None
                                                  else train_ds.class_counts())
        steps = epoch_steps(cfg, train_ds.batches_per_epoch) or train_ds.batches_per_epoch
        return train_ds.dataset(start_batch=int(start_epoch) * steps), steps, class_weight
    if cfg.class_weight == "balanced":
        counts = class_counts if class_counts is not None else _count_classes(train_ds)
        class_weight = balanced_class_weights(counts)
    steps = epoch_steps(cfg, _n_batches(train_ds))
    if steps is not None and isinstance(train_ds, tf.data.Dataset):
        train_ds = train_ds.repeat()
    return train_ds, steps, class_weight


def fit_model(
    model: keras.Model,
    train_ds,
    val_ds,
    cfg: TrainConfig,
    run_dir,
    *,
    class_counts=None,
    seed: Optional[int] = None,
    overwrite: bool = False,
    callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
    label: Optional[str] = None,
) -> keras.callbacks.History:
    """Fits a compiled model, writing the run folder's training files.

    Compiling is not done here: build and compile with
    :func:`fer_utils.train.build_compiled_model` (or :func:`compile_model` for a model you built).
    This function owns only callbacks and the run folder.

    If ``run_dir/backup`` exists (a previous call was interrupted), training
    resumes from the last finished epoch up to ``cfg.epochs`` and history.csv
    is appended to. If the folder holds a finished run instead, this refuses
    unless ``overwrite=True``, which moves the old results to
    ``run_dir/replaced-<timestamp>/`` (nothing is deleted).

    Args:
        model: A compiled Keras model whose last layer outputs probabilities.
        train_ds: Training ``tf.data.Dataset`` of ``(x, y_onehot)`` batches.
        val_ds: Validation dataset (or None).
        cfg: The :class:`TrainConfig` the model was compiled with.
        run_dir: Run folder.
        class_counts: Per-class training counts for
            ``cfg.class_weight == "balanced"``; counted from ``train_ds`` (one
            pass, argmax of y) when omitted.
        seed: If given, ``keras.utils.set_random_seed(seed)`` before fitting.
        overwrite: Start afresh in a folder that holds a finished run.
        callbacks: Extra callbacks, run after the built-in ones.
        label: The name progress lines give this run (default: the run folder's name).

    Returns:
        The ``keras.callbacks.History`` of this call (a resumed call holds only
        the epochs it ran; history.csv holds all of them). Reload the best
        model with :func:`fer_utils.runs.load_model`.

    Raises:
        FileExistsError: If ``run_dir`` holds a finished run and not ``overwrite``.
        TypeError: ``cfg`` is not a TrainConfig.
        ValueError: The model is not compiled.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig (TrainConfig.from_dict(...)); got {type(cfg).__name__}.")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(f"model {model.name!r} is not compiled; build it with train.build_compiled_model(...) "
                         "or compile it with train.compile_model(model, cfg, steps_per_epoch=...).")
    run_dir = Path(run_dir)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))

    resuming = _prepare_run_dir(run_dir, overwrite)
    # A resumed run's data stream starts where the backup's epoch left it (exact for a TrainingStream).
    start_epoch = (backup_epoch(run_dir) or 0) if resuming else 0
    train_ds, steps, class_weight = fit_arguments(cfg, train_ds, class_counts, start_epoch=start_epoch)
    _write_config(run_dir, cfg, resuming)
    cbs = make_callbacks(cfg, run_dir, has_validation=val_ds is not None, label=label)
    for cb in cbs:
        if isinstance(cb, SafeBackup):
            cb.expected_epoch = start_epoch
    cbs += list(callbacks or [])
    cbs.append(StopAtCheckpoint(label or run_dir.name))  # last: the epoch's backup and history row are written
    try:
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=int(cfg.epochs),
            steps_per_epoch=steps,
            verbose=cfg.verbose,
            callbacks=cbs,
            class_weight=class_weight,
            # Shuffling belongs to the tf.data pipeline; Keras ignores (and
            # warns about) shuffle=True for datasets.
            shuffle=not isinstance(train_ds, tf.data.Dataset),
        )
    finally:
        # An exception skips on_train_end; close the CSV so the rows already
        # written are complete on disk and the handle is not leaked.
        for cb in cbs:
            f = getattr(cb, "csv_file", None)
            if isinstance(cb, keras.callbacks.CSVLogger) and f is not None and not f.closed:
                f.close()
    return history
