"""Resumable training state: a run's ``backup/`` folder, written atomically and kept double.

Keras' ``BackupAndRestore`` writes ``latest.weights.h5`` in place, so a kill while it writes
leaves a truncated file that fails every later restore. :class:`SafeBackup` writes each state to
a temporary file and renames it into place (a rename is atomic), keeps the previous good state
next to it, and on restore falls back to that previous state with a warning naming the folder.
``history.csv`` is cut back to the restored epoch only after the restore succeeded.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Optional

import keras

from fer_utils import progress, runs

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"
PREVIOUS = ".previous"  # suffix of the previous good state's files


class BackupError(RuntimeError):
    """No state in a run's backup folder can be restored."""


def _states(backup_dir: Path):
    """``(weights, metadata)`` pairs, newest first."""
    previous_weights = backup_dir / WEIGHTS.replace(".weights.h5", PREVIOUS + ".weights.h5")
    return [(backup_dir / WEIGHTS, backup_dir / METADATA), (previous_weights, backup_dir / (METADATA + PREVIOUS))]


def backup_epoch(run_dir) -> Optional[int]:
    """The epoch a run's ``backup/`` would resume at: the newest readable metadata (None without one)."""
    for _, meta in _states(Path(run_dir) / runs.BACKUP_DIR):
        try:
            return int(json.loads(meta.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def cut_history(run_dir, epoch: int) -> int:
    """Drop ``history.csv`` and ``timings.csv`` rows of epochs ``>= epoch`` (they are about to be re-run).

    In place (truncation, not a new file), because the CSV logger may already hold the file open
    for appending. Returns the number of history rows dropped.
    """
    _cut_csv(Path(run_dir) / runs.TIMINGS_FILE, epoch)
    return _cut_csv(Path(run_dir) / runs.HISTORY_FILE, epoch)


def _cut_csv(path: Path, epoch: int) -> int:
    if not path.exists():
        return 0
    with open(path, "r+", newline="", encoding="utf-8") as f:
        header = f.readline()
        if "epoch" not in header.split(","):
            return 0
        col = header.strip().split(",").index("epoch")
        keep_at, dropped = f.tell(), 0
        while True:
            line = f.readline()
            if not line:
                break
            try:
                e = int(line.split(",")[col])
            except (ValueError, IndexError):
                e = epoch  # a torn last line: drop it
            if e < epoch and not dropped:
                keep_at = f.tell()
            else:
                dropped += 1
        f.truncate(keep_at)
    return dropped


class SafeBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` with atomic writes, a previous good state, and a warned fallback.

    Args:
        run_dir: the run folder; the state lives in ``run_dir/backup/``.
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        super().__init__(str(self.run_dir / runs.BACKUP_DIR), double_checkpoint=True)
        self.restored_epoch: Optional[int] = None

    def on_train_begin(self, logs=None):
        backup_dir = Path(self.backup_dir)
        present = [(w, m) for w, m in _states(backup_dir) if w.exists() and m.exists()]
        problems = []
        for weights, meta in present:
            try:
                epoch = int(json.loads(meta.read_text())["epoch"])
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(str(weights))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{weights.name}: {type(exc).__name__}: {str(exc)[:200]}")
                if (weights, meta) != present[-1]:
                    message = (f"{backup_dir}: the latest backup cannot be restored ({problems[-1]}); "
                               "falling back to the previous one")
                    warnings.warn(message, stacklevel=2)
                    progress.report(f"warning: {message}")  # on the runner's console too, not only in the notebook
                continue
            self.model._initial_epoch = epoch
            self.restored_epoch = epoch
            cut_history(self.run_dir, epoch)  # only now: the restore succeeded
            return
        if present:
            raise BackupError(f"{backup_dir}: no backup can be restored ({'; '.join(problems)}). Move the folder "
                              "away to restart this model from epoch 0 (its history.csv then starts again too).")

    def _save_model(self):
        backup_dir = Path(self.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        (weights, meta), (prev_weights, prev_meta) = _states(backup_dir)
        tmp_weights = backup_dir / "incoming.weights.h5"
        tmp_meta = backup_dir / (METADATA + ".incoming")
        self.model.save_weights(str(tmp_weights), overwrite=True)
        tmp_meta.write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))
        # Rotate with renames only: at every instant a complete state exists on disk.
        if weights.exists() and meta.exists():
            os.replace(weights, prev_weights)
            os.replace(meta, prev_meta)
        os.replace(tmp_weights, weights)
        os.replace(tmp_meta, meta)
