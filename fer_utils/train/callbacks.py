"""The callbacks of a training run, in the order they must run, and the progress line per epoch."""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path
from typing import Optional

import keras

from fer_utils import progress, runs
from fer_utils.train.backup import SafeBackup
from fer_utils.train.config import TrainConfig
from fer_utils.train.schedules import effective_step_table, step_schedule


class LearningRateLogger(keras.callbacks.Callback):
    """Writes the learning rate used in each epoch to ``logs["lr"]``.

    The value is read at the end of the epoch's last training step, before
    any end-of-epoch callback (e.g. ReduceLROnPlateau) changes it, so place
    this callback first. For in-optimiser schedules (cosine) it is the rate
    of the epoch's last step.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        lr = self.model.optimizer.learning_rate
        # A Keras Variable (constant/step/plateau) or a tensor (schedules).
        logs["lr"] = float(lr.numpy() if hasattr(lr, "numpy") else lr)


#: ``timings.csv``'s columns: what an epoch's wall seconds can be read against.
TIMING_COLUMNS = ("epoch", "seconds", "ended", "cpu", "boot", "others_cores", "steal_cores")


def _machine_seconds() -> Optional[tuple]:
    """``(busy, steal)`` CPU seconds of the whole machine since boot, every core and process (None without
    /proc/stat): busy is all of :func:`fer_utils.artifacts.cpu_times` but idle, iowait and steal; steal is the time the
    hypervisor gave to other guests."""
    from fer_utils.artifacts import cpu_times

    times = cpu_times()
    if not times:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(times) - times[3] - times[4] - times[7]) / hz, times[7] / hz


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _boot_id() -> str:
    """A random id of this boot of this machine (the same for every sitting on it, another on another machine)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


class EpochTimer(keras.callbacks.Callback):
    """Appends each finished epoch's wall seconds (training + validation) to ``timings.csv``, with what they can be
    read against: when the epoch ended (UTC), the CPU kind (:func:`.artifacts.cpu_kind`), the machine's boot id
    (tells sittings on different machines apart without naming them) and ``others_cores``, the cores other processes
    kept busy meanwhile on average (the machine's busy time from /proc/stat less this process's; empty without it),
    and ``steal_cores``, the cores' time the hypervisor gave to other guests meanwhile. In a container /proc/stat and
    the boot id are the host's.

    Kept apart from ``history.csv`` so that the history of two runs with the same seed is
    byte-identical; whole-run training time after interruptions is the sum of these rows. A file of the earlier
    two-column layout (``epoch,seconds``) gains the columns, its rows left empty there.
    """

    def __init__(self, run_dir):
        super().__init__()
        self.path = Path(run_dir) / runs.TIMINGS_FILE

    def on_train_begin(self, logs=None):
        from fer_utils.artifacts import cpu_kind

        self._cpu, self._boot = cpu_kind(), _boot_id()
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, encoding="utf-8") as f:
                header = f.readline().strip()
            if header != ",".join(TIMING_COLUMNS):  # the earlier layout: rewritten whole or not at all
                partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
                self._write(runs.history_rows(self.path.parent, runs.TIMINGS_FILE), partial, mode="w")
                os.replace(partial, self.path)

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._machine, self._own = time.perf_counter(), _machine_seconds(), _own_seconds()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - getattr(self, "_start", time.perf_counter())
        machine, others, steal = _machine_seconds(), "", ""
        if machine is not None and getattr(self, "_machine", None) is not None and seconds > 0:
            busy_elsewhere = (machine[0] - self._machine[0]) - (_own_seconds() - self._own)
            others = f"{max(0.0, busy_elsewhere / seconds):.2f}"
            steal = f"{max(0.0, (machine[1] - self._machine[1]) / seconds):.2f}"
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._write([{"epoch": epoch, "seconds": f"{seconds:.3f}", "ended": ended, "cpu": getattr(self, "_cpu", ""),
                      "boot": getattr(self, "_boot", ""), "others_cores": others, "steal_cores": steal}], self.path)

    @staticmethod
    def _write(rows, path: Path, mode: str = "a"):
        import csv

        new = mode == "w" or not path.exists() or path.stat().st_size == 0
        with open(path, mode, newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=TIMING_COLUMNS, restval="", extrasaction="ignore",
                                    lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerows(rows)


class ProgressReporter(keras.callbacks.Callback):
    """One progress line per finished epoch (``fer_utils.progress``; the runner shows it on the console).

    Args:
        label: what is training (a model name, ``ferplus/msca_resnet``...).
        epochs: the run's total number of epochs.
    """

    def __init__(self, label: str, epochs: int):
        super().__init__()
        self.label, self.epochs = label, int(epochs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = " ".join(f"{k} {logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs)
        progress.report(f"{self.label} epoch {epoch + 1}/{self.epochs} {shown}".rstrip())


class StopAtCheckpoint(keras.callbacks.Callback):
    """Ends training after an epoch whose backup is written once the runner's ``--stop-after`` time has passed
    (:func:`fer_utils.progress.check_stop`); last in the callback list, so that epoch's history row and backup
    exist. Never after the final epoch: a finished run completes."""

    def __init__(self, label: str = "training"):
        super().__init__()
        self.label = label

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < int(self.params.get("epochs") or 0):
            progress.check_stop(f"{self.label} epoch {epoch + 1}")


def _monitor_mode(monitor: str) -> str:
    # Explicit mode: Keras' "auto" cannot infer direction for every metric
    # name before the metrics are built, and we need it to seed the best value.
    return "min" if "loss" in monitor else "max"


def _best_so_far(run_dir: Path, monitor: str) -> Optional[float]:
    values = []
    for row in runs.history_rows(run_dir):
        try:
            values.append(float(row[monitor]))
        except (KeyError, TypeError, ValueError):
            continue
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return min(values) if _monitor_mode(monitor) == "min" else max(values)


def make_callbacks(
    cfg: TrainConfig, run_dir, *, has_validation: bool = True, label: str | None = None
) -> list[keras.callbacks.Callback]:
    """Builds the callback list for one run, in the order they must run.

    Order matters: the lr logger reads the rate before ReduceLROnPlateau
    changes it; CSVLogger and ModelCheckpoint see the completed logs; the
    schedulers act before BackupAndRestore saves, so a resumed run restarts
    with the updated rate.

    When ``run_dir/backup`` exists (resuming), the checkpoint's best value is
    seeded from the existing history.csv, so the first resumed epoch does not
    overwrite a better model.keras from before the interruption.

    Args:
        cfg: Training configuration.
        run_dir: Run folder (created if missing).
        has_validation: False when fitting without validation data; then the
            checkpoint saves the latest model each epoch, and the plateau /
            early-stopping monitors use training quantities.
        label: the name progress lines give the run (default: the run folder's name).

    Returns:
        The list of callbacks to pass to ``model.fit``.

    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    monitor = cfg.checkpoint_monitor
    if not has_validation and monitor.startswith("val_"):
        monitor = monitor[len("val_"):]
    mode = _monitor_mode(monitor)

    # EMA first: at an epoch's end it puts the averaged weights in place for the logs, the checkpoint and the
    # schedulers; the backup (last) saves the raw weights with the averages in the optimizer (EMAWeights.raw).
    ema = [EMAWeights()] if cfg.ema_momentum else []
    callbacks: list[keras.callbacks.Callback] = ema + [
        LearningRateLogger(),
        keras.callbacks.TerminateOnNaN(),
        ProgressReporter(label or Path(run_dir).name, cfg.epochs),
        keras.callbacks.CSVLogger(str(run_dir / runs.HISTORY_FILE), append=True),
        EpochTimer(run_dir),
    ]

    resuming = (run_dir / runs.BACKUP_DIR).exists()
    threshold = _best_so_far(run_dir, cfg.checkpoint_monitor) if resuming else None
    callbacks.append(
        keras.callbacks.ModelCheckpoint(
            str(run_dir / runs.MODEL_FILE),
            monitor=cfg.checkpoint_monitor,
            mode=_monitor_mode(cfg.checkpoint_monitor),
            save_best_only=has_validation,
            initial_value_threshold=threshold,
            verbose=0,
        )
    )
    if cfg.keep_last:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(run_dir / runs.LAST_MODEL_FILE), save_best_only=False,
                                                         verbose=0))
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / runs.TENSORBOARD_DIR)))

    if cfg.schedule == "step":
        callbacks.append(
            keras.callbacks.LearningRateScheduler(
                functools.partial(_scheduled_lr, table=effective_step_table(cfg))
            )
        )
    elif cfg.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss" if has_validation else "loss",
                factor=float(cfg.plateau_factor),
                patience=int(cfg.plateau_patience),
                min_lr=float(cfg.plateau_min_lr),
                verbose=0,
            )
        )
    if cfg.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=int(cfg.early_stopping_patience),
                restore_best_weights=True,
            )
        )
    callbacks.append(SafeBackup(run_dir, ema=ema[0] if ema else None))
    return callbacks


class EMAWeights(keras.callbacks.SwapEMAWeights):
    """Keras' ``SwapEMAWeights(swap_on_epoch=True)`` with exact swaps: a copy instead of Keras' in-place
    ``a + b, a - b`` arithmetic, whose rounding would change the raw weights at every swap (so a resumed run,
    which restores the raw weights unswapped, would drift from the uninterrupted one)."""

    def __init__(self):
        super().__init__(swap_on_epoch=True)

    def _swap_variables(self):
        self._apply_to_ema_optimizers(self._backend_swap_variables, self._backend_swap_variables)

    def raw(self):
        """A context in which the model holds its raw (training) weights, e.g. to back them up."""
        import contextlib

        @contextlib.contextmanager
        def swapped():
            swap = self._ema_weights_in_model
            if swap:
                self._swap_variables()
            try:
                yield
            finally:
                if swap:
                    self._swap_variables()

        return swapped()


def _scheduled_lr(epoch: int, lr: float = None, *, table) -> float:
    # LearningRateScheduler passes (epoch, current_lr); the table ignores lr.
    return step_schedule(epoch, table)


