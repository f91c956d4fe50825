"""Resumable training state: a run's ``backup/`` folder, written atomically and kept double.

Keras' ``BackupAndRestore`` writes ``latest.weights.h5`` in place, so a kill while it writes
leaves a truncated file that fails every later restore. :class:`SafeBackup` writes each state (the
weights, optimizer included, and the epoch) into ``backup/incoming/`` and renames that folder to
``backup/epoch-NNNNN/``: one rename, so the weights and the epoch they belong to appear together or
not at all (two file renames could leave epoch-N weights next to epoch N-1's metadata). The newest
two states are kept; a restore takes the newest complete one and falls back to the one before with a
warning naming the folder. ``history.csv`` is cut back to the restored epoch only after the restore
succeeded. Backups in the earlier layout (``latest.weights.h5`` + ``training_metadata.json``) are
still restored. Each state records the precision (dtype policy) it trained in; resuming in another one is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from fer_utils import progress, runs

WEIGHTS = "latest.weights.h5"  # the earlier layout's files, still restored
METADATA = "training_metadata.json"
PREVIOUS = ".previous"  # suffix of the earlier layout's previous state
STATE_PREFIX = "epoch-"
STATE_WEIGHTS = "state.weights.h5"
STATE_META = "state.json"
INCOMING = "incoming"
KEEP = 2


class BackupError(RuntimeError):
    """No state in a run's backup folder can be restored."""


def _states(backup_dir: Path):
    """``(weights, metadata)`` pairs, newest first: the state folders, then the earlier layout's two pairs."""
    folders = sorted((p for p in backup_dir.glob(f"{STATE_PREFIX}*") if p.is_dir()), reverse=True)
    previous_weights = backup_dir / WEIGHTS.replace(".weights.h5", PREVIOUS + ".weights.h5")
    return [(f / STATE_WEIGHTS, f / STATE_META) for f in folders] + [
        (backup_dir / WEIGHTS, backup_dir / METADATA), (previous_weights, backup_dir / (METADATA + PREVIOUS))]


def backup_epoch(run_dir) -> Optional[int]:
    """The epoch a run's ``backup/`` would resume at: the newest complete, readable state (None without one)."""
    for weights, meta in _states(Path(run_dir) / runs.BACKUP_DIR):
        try:
            if weights.exists():
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


def _seed_generators(model) -> dict:
    """``{"<layer>/<k>": SeedGenerator}`` of every layer (dropout draws its masks from these)."""
    return {f"{layer.name}/{k}": sg for layer in model._flatten_layers()
            for k, sg in enumerate(getattr(layer, "_seed_generators", []))}


def seed_states(model) -> dict:
    """The layers' random generator states: not in Keras' weights file, yet a resumed run must continue them to
    draw the dropout masks an uninterrupted run draws."""
    return {key: [int(v) for v in sg.state.numpy()] for key, sg in _seed_generators(model).items()}


def restore_seed_states(model, states: dict) -> None:
    for key, sg in _seed_generators(model).items():
        if key in states:
            sg.state.assign(np.asarray(states[key], dtype=sg.state.dtype))


#: Why a run or search built in one precision must not continue in another, and the way out (ends mid-sentence).
AUTO_PRECISION_HELP = ("(precision 'auto' picks per machine: mixed_float16 with a GPU, mixed_bfloat16 on a CPU with "
                       "bf16, float32 elsewhere); continue it on a machine of the kind it started on (on a bf16 CPU, "
                       "ONEDNN_MAX_CPU_ISA=AVX2 makes 'auto' pick float32 as an AVX2-only CPU does)")


def _check_precision(meta: Path, model, backup_dir: Path) -> None:
    """Refuses to go on in another precision than the state was trained in (states written before the precision was
    recorded, or unreadable ones, pass: the restore judges those). ``precision: auto`` resolves per machine, so a run
    started on a bf16 CPU and resumed on an AVX2-only one would otherwise switch silently mid-run, and its record
    (the last sitting's precision) would hide it."""
    try:
        saved = json.loads(meta.read_text()).get("precision")
    except (OSError, ValueError, AttributeError):
        return
    now = model.dtype_policy.name
    if saved and saved != now:
        raise BackupError(
            f"{backup_dir}: the run trained in {saved} until this backup; this sitting builds the model in {now} "
            f"{AUTO_PRECISION_HELP}, or move the backup folder away to restart the model from epoch 0.")


class SafeBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` with atomic writes, a previous good state, and a warned fallback.

    Args:
        run_dir: the run folder; the state lives in ``run_dir/backup/``.
        ema: the run's :class:`~fer_utils.train.callbacks.EMAWeights` (weight averaging), if any.
    """

    def __init__(self, run_dir, ema=None):
        self.run_dir = Path(run_dir)
        self.ema = ema  # the run's EMAWeights callback: states are saved with the raw weights in the model
        super().__init__(str(self.run_dir / runs.BACKUP_DIR), double_checkpoint=True)
        self.restored_epoch: Optional[int] = None
        self.expected_epoch: Optional[int] = None  # the epoch fit_model started the data stream at

    def on_train_begin(self, logs=None):
        backup_dir = Path(self.backup_dir)
        present = [(w, m) for w, m in _states(backup_dir) if w.exists() and m.exists()]
        problems = []
        for weights, meta in present:
            _check_precision(meta, self.model, backup_dir)
            try:
                epoch = int(json.loads(meta.read_text())["epoch"])
                if self.model.optimizer is not None and not self.model.optimizer.built:
                    self.model.optimizer.build(self.model.trainable_variables)
                self.model.load_weights(str(weights))
                restore_seed_states(self.model, json.loads(meta.read_text()).get("seed_states") or {})
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{weights.relative_to(backup_dir)}: {type(exc).__name__}: {str(exc)[:200]}")
                if (weights, meta) != present[-1]:
                    message = (f"{backup_dir}: the latest backup cannot be restored ({problems[-1]}); "
                               "falling back to the previous one")
                    warnings.warn(message, stacklevel=2)
                    progress.report(f"warning: {message}")  # on the runner's console too, not only in the notebook
                continue
            self.model._initial_epoch = epoch
            self.restored_epoch = epoch
            if self.expected_epoch is not None and epoch != self.expected_epoch:
                progress.report(f"warning: {backup_dir}: resumed at epoch {epoch}, but the data stream was started "
                                f"for epoch {self.expected_epoch}; training goes on, no longer batch for batch the "
                                "uninterrupted run")
            cut_history(self.run_dir, epoch)  # only now: the restore succeeded
            return
        if present:
            raise BackupError(f"{backup_dir}: no backup can be restored ({'; '.join(problems)}). Move the folder "
                              "away to restart this model from epoch 0 (its history.csv then starts again too).")

    def _save_model(self):
        backup_dir = Path(self.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        incoming = backup_dir / INCOMING
        if incoming.exists():  # a state a kill left half written
            shutil.rmtree(incoming)
        incoming.mkdir()
        with self.ema.raw() if self.ema is not None else contextlib.nullcontext():
            self.model.save_weights(str(incoming / STATE_WEIGHTS), overwrite=True)
        (incoming / STATE_META).write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen,
                                                       "seed_states": seed_states(self.model),
                                                       "precision": self.model.dtype_policy.name}))
        target = backup_dir / f"{STATE_PREFIX}{int(self._current_epoch):05d}"
        if target.exists():  # this epoch was backed up before a restore fell back past it
            shutil.rmtree(target)
        os.replace(incoming, target)  # the pair appears at once
        for old in sorted((p for p in backup_dir.glob(f"{STATE_PREFIX}*") if p.is_dir()), reverse=True)[KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
        for name in (WEIGHTS, METADATA, WEIGHTS.replace(".weights.h5", PREVIOUS + ".weights.h5"), METADATA + PREVIOUS):
            (backup_dir / name).unlink(missing_ok=True)  # the earlier layout's state, now superseded
