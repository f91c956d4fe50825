"""Compiling and fitting FER models from a parameter dictionary.

This module owns everything between "a built model plus ``tf.data`` pipelines"
and "a finished run folder": the :class:`TrainConfig` parameter record and its
validation, optimisers, losses (including Study C's cosine loss), kernel
regularisers, learning-rate schedules (constant, Study C's step table,
reduce-on-plateau, cosine with warm-up), the callback set (best-on-validation
checkpoint, resumable backups, CSV history with the per-epoch learning rate,
NaN guard, optional early stopping and TensorBoard), mixed-precision policy
selection and the distribution strategy.

It does not build models (``fer_utils.models``), build input pipelines
(``fer_utils.pipeline``) or seed anything at import time. Importing it only
imports TensorFlow/Keras; :func:`set_precision` and seeding happen only when
called explicitly.

Run folder layout written by :func:`fit_model`::

    run_dir/
        train_config.json   the TrainConfig used (round-trips via from_dict)
        history.csv         one row per finished epoch (appended on resume)
        model.keras         best model on ``cfg.checkpoint_monitor``
        backup/             BackupAndRestore state; present only while a run
                            is unfinished (deleted by Keras on completion)
        tb/                 TensorBoard logs (if ``cfg.tensorboard``)
        replaced-<stamp>/   an earlier run's results, moved aside (never
                            deleted) when ``overwrite=True``
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import tensorflow as tf
import keras

# --------------------------------------------------------------------------- #
# Choices and constants
# --------------------------------------------------------------------------- #

OPTIMIZERS = ("sgd", "adam", "rmsprop")
LOSSES = ("crossentropy", "cosine")
SCHEDULES = ("constant", "step", "plateau", "cosine")
STEP_TABLE_SCALES = ("absolute", "relative")
CLASS_WEIGHTS = (None, "balanced")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
VERBOSE_LEVELS = (0, 1, 2)

#: Study C's step table as ``[start_epoch, learning_rate]`` pairs, with
#: 0-based Keras epoch indices ``e``: e <= 80 -> 1e-3, 81 <= e <= 120 -> 1e-4,
#: 121..160 -> 1e-5, 161..180 -> 1e-6, e >= 181 -> 5e-7 (200 epochs in total).
STUDY_C_STEP_TABLE: tuple[tuple[int, float], ...] = (
    (0, 1e-3),
    (81, 1e-4),
    (121, 1e-5),
    (161, 1e-6),
    (181, 5e-7),
)
#: Number of epochs Study C's table was written for; "relative" scaling maps
#: this length onto ``TrainConfig.epochs``.
STUDY_C_EPOCHS = 200

HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"
CONFIG_FILE = "train_config.json"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tb"


def _choice_error(key: str, value: Any, choices: Sequence[Any]) -> ValueError:
    return ValueError(
        f"Invalid {key}={value!r}; expected one of {list(choices)}."
    )


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class TrainConfig:
    """Every training hyper-parameter of one run.

    ``batch_size`` is recorded here but applied by whoever builds the
    ``tf.data`` pipelines (``pipeline.make_dataset(batch_size=...)``);
    ``l1``/``l2`` are applied by the model builders through
    ``kernel_regularizer=make_regularizer(cfg.l1, cfg.l2)``; ``precision`` is
    applied by calling :func:`set_precision` *before* building the model.
    :func:`fit_model` uses everything else.

    Attributes:
        optimizer: "sgd", "adam" or "rmsprop".
        learning_rate: Initial learning rate (peak rate for "cosine"; ignored
            by "step", whose table holds absolute rates).
        momentum: SGD momentum.
        nesterov: Use Nesterov momentum with SGD.
        l1: L1 kernel-regularisation coefficient (0 = off).
        l2: L2 kernel-regularisation coefficient (0 = off). Keras' L2 adds
            ``l2 * sum(w**2)`` (no 1/2 factor).
        batch_size: Mini-batch size for the input pipelines.
        epochs: Total number of epochs (a resumed run stops at the same total).
        loss: "crossentropy" (categorical, with ``label_smoothing``) or
            "cosine" (Study C: ``-cos(y_true, y_pred)``).
        label_smoothing: Label smoothing for "crossentropy" only.
        schedule: "constant", "step", "plateau" or "cosine".
        step_table: ``[start_epoch, lr]`` pairs with 0-based epoch indices;
            epoch ``e`` uses the rate of the last pair whose start is ``<= e``.
            Defaults to Study C's table (:data:`STUDY_C_STEP_TABLE`).
        step_table_scale: "absolute" uses the start epochs as written;
            "relative" rescales them by ``epochs / step_table_epochs`` (rounded
            half up), so a 20-epoch run follows the 200-epoch shape with
            boundaries at 8, 12, 16 and 18.
        step_table_epochs: Run length the table was written for.
        plateau_factor: ReduceLROnPlateau multiplication factor.
        plateau_patience: ReduceLROnPlateau patience in epochs.
        plateau_min_lr: ReduceLROnPlateau lower bound.
        warmup_epochs: Linear warm-up epochs (0 to lr) for "cosine".
        class_weight: None or "balanced" (``n / (K * count_k)``).
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        early_stopping_patience: Epochs without improvement of
            ``checkpoint_monitor`` before stopping (0 = off).
        tensorboard: Write TensorBoard logs to ``run_dir/tb``.
        checkpoint_monitor: Quantity that selects the best checkpoint (and
            drives early stopping).
        verbose: Keras ``fit`` verbosity (0, 1 or 2).
        run_eagerly: Skip graph tracing (``model.compile(run_eagerly=True)``).
            Slower per step, but tracing a big backbone costs 20-75 s on a CPU,
            so the smoke profile's one-step fits are about 4x faster eagerly.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    l1: float = 0.0
    l2: float = 0.0
    batch_size: int = 64
    epochs: int = 30
    loss: str = "crossentropy"
    label_smoothing: float = 0.0
    schedule: str = "constant"
    step_table: list = dataclasses.field(
        default_factory=lambda: [list(p) for p in STUDY_C_STEP_TABLE]
    )
    step_table_scale: str = "absolute"
    step_table_epochs: int = STUDY_C_EPOCHS
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    plateau_min_lr: float = 1e-7
    warmup_epochs: int = 0
    class_weight: Optional[str] = None
    precision: str = "auto"
    early_stopping_patience: int = 0
    tensorboard: bool = False
    checkpoint_monitor: str = "val_accuracy"
    verbose: int = 2
    run_eagerly: bool = False

    def __post_init__(self):
        self.validate()

    @classmethod
    def field_names(cls) -> list[str]:
        """Returns the valid configuration keys, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Builds a validated config from a (possibly partial) mapping.

        Missing keys take their defaults.

        Args:
            d: Mapping of field name to value, e.g. a parameter profile
                section or a loaded ``train_config.json``.

        Returns:
            The validated :class:`TrainConfig`.

        Raises:
            ValueError: On an unknown key (the message lists the valid keys)
                or an invalid value (the message lists the accepted values).
        """
        if not isinstance(d, Mapping):
            raise TypeError(
                f"TrainConfig.from_dict expects a mapping, got {type(d).__name__}."
            )
        valid = cls.field_names()
        for key in d:
            if key not in valid:
                raise ValueError(
                    f"Unknown TrainConfig key {key!r}; valid keys are: "
                    f"{', '.join(valid)}."
                )
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict that round-trips via from_dict."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Checks every value; raises ValueError naming the bad key/value."""
        for key, choices in (
            ("optimizer", OPTIMIZERS),
            ("loss", LOSSES),
            ("schedule", SCHEDULES),
            ("step_table_scale", STEP_TABLE_SCALES),
            ("class_weight", CLASS_WEIGHTS),
            ("precision", PRECISIONS),
            ("verbose", VERBOSE_LEVELS),
        ):
            if getattr(self, key) not in choices:
                raise _choice_error(key, getattr(self, key), choices)
        for key in ("nesterov", "tensorboard"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(
                    f"Invalid {key}={getattr(self, key)!r}; expected true or false."
                )

        def check(key, ok, expected):
            value = getattr(self, key)
            # bool is an int subclass; a True epoch count is a typo, not a value.
            if isinstance(value, bool) or not ok(value):
                raise ValueError(f"Invalid {key}={value!r}; expected {expected}.")

        is_num = lambda v: isinstance(v, (int, float, np.number))  # noqa: E731
        is_int = lambda v: isinstance(v, (int, np.integer))  # noqa: E731
        check("learning_rate", lambda v: is_num(v) and v > 0, "a number > 0")
        check("momentum", lambda v: is_num(v) and 0 <= v < 1, "a number in [0, 1)")
        check("l1", lambda v: is_num(v) and v >= 0, "a number >= 0")
        check("l2", lambda v: is_num(v) and v >= 0, "a number >= 0")
        check("batch_size", lambda v: is_int(v) and v >= 1, "an integer >= 1")
        check("epochs", lambda v: is_int(v) and v >= 1, "an integer >= 1")
        check(
            "label_smoothing",
            lambda v: is_num(v) and 0 <= v < 1,
            "a number in [0, 1)",
        )
        check("step_table_epochs", lambda v: is_int(v) and v >= 1, "an integer >= 1")
        check(
            "plateau_factor", lambda v: is_num(v) and 0 < v < 1, "a number in (0, 1)"
        )
        check("plateau_patience", lambda v: is_int(v) and v >= 0, "an integer >= 0")
        check("plateau_min_lr", lambda v: is_num(v) and v >= 0, "a number >= 0")
        check(
            "warmup_epochs",
            lambda v: is_int(v) and 0 <= v < self.epochs,
            f"an integer in [0, epochs={self.epochs})",
        )
        check(
            "early_stopping_patience",
            lambda v: is_int(v) and v >= 0,
            "an integer >= 0 (0 = off)",
        )
        check(
            "checkpoint_monitor",
            lambda v: isinstance(v, str) and v,
            "a metric name such as 'val_accuracy' or 'val_loss'",
        )
        if self.loss == "cosine" and self.label_smoothing:
            raise ValueError(
                f"Invalid label_smoothing={self.label_smoothing!r} with "
                "loss='cosine'; label smoothing is only supported with "
                "loss='crossentropy' (set label_smoothing=0)."
            )
        _validate_step_table(self.step_table)
        if self.warmup_epochs and self.schedule != "cosine":
            warnings.warn(
                f"warmup_epochs={self.warmup_epochs} is only used by "
                f"schedule='cosine' (got schedule={self.schedule!r}).",
                stacklevel=3,
            )


def _validate_step_table(table) -> None:
    expected = (
        "a non-empty list of [start_epoch, lr] pairs with integer start epochs "
        ">= 0 in strictly increasing order, the first starting at 0, and lr > 0"
    )
    try:
        pairs = [(p[0], p[1]) for p in table]
        if len(pairs) != len(table) or any(len(p) != 2 for p in table):
            raise TypeError
    except (TypeError, IndexError, KeyError):
        raise ValueError(f"Invalid step_table={table!r}; expected {expected}.")
    starts = [s for s, _ in pairs]
    ok = (
        bool(pairs)
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in starts)
        and all(isinstance(lr, (int, float, np.number)) and lr > 0 for _, lr in pairs)
        and starts[0] == 0
        and all(a < b for a, b in zip(starts, starts[1:]))
    )
    if not ok:
        raise ValueError(f"Invalid step_table={table!r}; expected {expected}.")


def _as_config(cfg) -> TrainConfig:
    if isinstance(cfg, TrainConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return TrainConfig.from_dict(cfg)
    raise TypeError(
        f"cfg must be a TrainConfig or a mapping, got {type(cfg).__name__}."
    )


# --------------------------------------------------------------------------- #
# Precision and distribution
# --------------------------------------------------------------------------- #


def _cpu_supports_bf16() -> bool:
    """True if /proc/cpuinfo advertises native bf16 matmuls (AVX512-BF16/AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        # Not Linux (or no procfs): be conservative, float32 is always safe.
        pass
    return False


def set_precision(precision: str = "auto") -> str:
    """Sets the global Keras dtype policy. Call before building the model.

    Args:
        precision: "float32", "mixed_bfloat16", "mixed_float16" or "auto".
            "auto" picks "mixed_float16" when a GPU is visible, else
            "mixed_bfloat16" when the CPU has native bf16 matmuls
            (``avx512_bf16``/``amx_bf16`` in /proc/cpuinfo), else "float32".

    Returns:
        The name of the policy that was set.

    Raises:
        ValueError: If ``precision`` is not one of the choices.
    """
    if precision not in PRECISIONS:
        raise _choice_error("precision", precision, PRECISIONS)
    if precision == "auto":
        if tf.config.list_physical_devices("GPU"):
            precision = "mixed_float16"
        elif _cpu_supports_bf16():
            precision = "mixed_bfloat16"
        else:
            precision = "float32"
    keras.mixed_precision.set_global_policy(precision)
    return precision


def get_strategy() -> tf.distribute.Strategy:
    """Returns MirroredStrategy with more than one visible GPU, else the default.

    Build and compile the model inside ``with get_strategy().scope():``.
    """
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


# --------------------------------------------------------------------------- #
# Optimiser, loss, regulariser, schedules
# --------------------------------------------------------------------------- #


def make_regularizer(l1: float = 0.0, l2: float = 0.0):
    """Returns the kernel regulariser for the model builders, or None.

    Args:
        l1: L1 coefficient (0 = off).
        l2: L2 coefficient (0 = off); adds ``l2 * sum(w**2)``.

    Returns:
        ``keras.regularizers.L1``, ``L2``, ``L1L2`` or None when both are 0.

    Raises:
        ValueError: If a coefficient is negative.
    """
    for key, value in (("l1", l1), ("l2", l2)):
        if value < 0:
            raise ValueError(f"Invalid {key}={value!r}; expected a number >= 0.")
    if l1 and l2:
        return keras.regularizers.L1L2(l1=float(l1), l2=float(l2))
    if l1:
        return keras.regularizers.L1(float(l1))
    if l2:
        return keras.regularizers.L2(float(l2))
    return None


def make_loss(cfg: TrainConfig) -> keras.losses.Loss:
    """Returns the training loss for ``cfg.loss``.

    Args:
        cfg: Training configuration.

    Returns:
        ``CategoricalCrossentropy(label_smoothing=...)`` for "crossentropy";
        ``CosineSimilarity(axis=-1)`` for "cosine", which is exactly Study C's
        ``-cos(y_true, y_pred)`` (Keras negates the similarity).

    Raises:
        ValueError: If ``cfg.loss`` is unknown.
    """
    if cfg.loss == "crossentropy":
        return keras.losses.CategoricalCrossentropy(
            label_smoothing=float(cfg.label_smoothing)
        )
    if cfg.loss == "cosine":
        return keras.losses.CosineSimilarity(axis=-1, name="cosine_loss")
    raise _choice_error("loss", cfg.loss, LOSSES)


def scale_step_table(
    table: Sequence[Sequence[float]],
    epochs: int,
    reference_epochs: int = STUDY_C_EPOCHS,
) -> list[list]:
    """Rescales a step table's start epochs from ``reference_epochs`` to ``epochs``.

    Each start epoch ``s`` becomes ``floor(s * epochs / reference_epochs + 0.5)``
    (round half up). Study C's table at ``epochs=20`` starts its steps at
    epochs 8, 12, 16 and 18. Entries that collide keep the later one, matching
    :func:`step_schedule`'s "last start <= epoch wins" rule; a later step never
    moves to epoch 0, so the table's initial rate always trains the first epoch
    (without this a 1-epoch smoke run would start at the second rate).

    Args:
        table: ``[start_epoch, lr]`` pairs.
        epochs: Target run length.
        reference_epochs: Run length the table was written for.

    Returns:
        A new ``[[start_epoch, lr], ...]`` list.
    """
    factor = epochs / reference_epochs
    scaled: dict[int, float] = {}
    for i, (start, lr) in enumerate(table):
        new = int(math.floor(start * factor + 0.5))
        scaled[new if i == 0 or start == 0 else max(1, new)] = float(lr)
    return [[s, lr] for s, lr in sorted(scaled.items())]


def step_schedule(epoch: int, table: Sequence[Sequence[float]]) -> float:
    """Learning rate of a step table at a 0-based epoch index.

    Args:
        epoch: 0-based Keras epoch index.
        table: ``[start_epoch, lr]`` pairs sorted by start epoch.

    Returns:
        The rate of the last pair whose start epoch is ``<= epoch`` (the first
        pair's rate for epochs before it).
    """
    lr = float(table[0][1])
    for start, value in table:
        if epoch >= start:
            lr = float(value)
        else:
            break
    return lr


def effective_step_table(cfg: TrainConfig) -> list[list]:
    """The step table ``cfg`` trains with, after "relative" scaling if asked."""
    if cfg.step_table_scale == "relative":
        return scale_step_table(cfg.step_table, cfg.epochs, cfg.step_table_epochs)
    if cfg.step_table_scale == "absolute":
        return [[int(s), float(lr)] for s, lr in cfg.step_table]
    raise _choice_error("step_table_scale", cfg.step_table_scale, STEP_TABLE_SCALES)


def make_optimizer(
    cfg: TrainConfig, steps_per_epoch: Optional[int] = None
) -> keras.optimizers.Optimizer:
    """Builds the optimiser, with the cosine schedule inside it if requested.

    Args:
        cfg: Training configuration.
        steps_per_epoch: Batches per epoch; required for ``schedule="cosine"``
            (the decay length is ``epochs * steps_per_epoch``).

    Returns:
        A Keras optimiser. For "step" its initial rate is the table's rate at
        epoch 0; for "constant"/"plateau" it is ``cfg.learning_rate``.

    Raises:
        ValueError: If the optimiser or schedule is unknown, or
            ``steps_per_epoch`` is missing for the cosine schedule.
    """
    if cfg.schedule not in SCHEDULES:
        raise _choice_error("schedule", cfg.schedule, SCHEDULES)
    if cfg.optimizer not in OPTIMIZERS:
        raise _choice_error("optimizer", cfg.optimizer, OPTIMIZERS)

    lr: Any = float(cfg.learning_rate)
    if cfg.schedule == "step":
        lr = step_schedule(0, effective_step_table(cfg))
    elif cfg.schedule == "cosine":
        if not steps_per_epoch or steps_per_epoch < 1:
            raise ValueError(
                f"Invalid steps_per_epoch={steps_per_epoch!r}; schedule='cosine' "
                "needs a positive number of batches per epoch."
            )
        total = int(cfg.epochs * steps_per_epoch)
        warmup = int(cfg.warmup_epochs * steps_per_epoch)
        if warmup:
            # Keras' warm-up ramps linearly from initial_learning_rate to
            # warmup_target, then decays from warmup_target.
            lr = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0,
                decay_steps=max(total - warmup, 1),
                warmup_target=float(cfg.learning_rate),
                warmup_steps=warmup,
            )
        else:
            lr = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=float(cfg.learning_rate),
                decay_steps=max(total, 1),
            )

    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=lr, momentum=float(cfg.momentum), nesterov=cfg.nesterov
        )
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    return keras.optimizers.RMSprop(learning_rate=lr)


# --------------------------------------------------------------------------- #
# Callbacks
# --------------------------------------------------------------------------- #


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


def _monitor_mode(monitor: str) -> str:
    # Explicit mode: Keras' "auto" cannot infer direction for every metric
    # name before the metrics are built, and we need it to seed the best value.
    return "min" if "loss" in monitor else "max"


def _history_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _backup_epoch(run_dir: Path) -> Optional[int]:
    meta = run_dir / BACKUP_DIR / "training_metadata.json"
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _best_so_far(run_dir: Path, monitor: str) -> Optional[float]:
    values = []
    for row in _history_rows(run_dir / HISTORY_FILE):
        try:
            values.append(float(row[monitor]))
        except (KeyError, TypeError, ValueError):
            continue
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return min(values) if _monitor_mode(monitor) == "min" else max(values)


def make_callbacks(
    cfg: TrainConfig, run_dir, *, has_validation: bool = True
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

    Returns:
        The list of callbacks to pass to ``model.fit``.

    Raises:
        ValueError: If ``cfg.schedule`` is unknown.
    """
    if cfg.schedule not in SCHEDULES:
        raise _choice_error("schedule", cfg.schedule, SCHEDULES)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    monitor = cfg.checkpoint_monitor
    if not has_validation and monitor.startswith("val_"):
        monitor = monitor[len("val_"):]
    mode = _monitor_mode(monitor)

    callbacks: list[keras.callbacks.Callback] = [
        LearningRateLogger(),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
    ]

    resuming = (run_dir / BACKUP_DIR).exists()
    threshold = _best_so_far(run_dir, cfg.checkpoint_monitor) if resuming else None
    callbacks.append(
        keras.callbacks.ModelCheckpoint(
            str(run_dir / MODEL_FILE),
            monitor=cfg.checkpoint_monitor,
            mode=_monitor_mode(cfg.checkpoint_monitor),
            save_best_only=has_validation,
            initial_value_threshold=threshold,
            verbose=0,
        )
    )
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / TENSORBOARD_DIR)))

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
    callbacks.append(keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR)))
    return callbacks


def _scheduled_lr(epoch: int, lr: float = None, *, table) -> float:
    # LearningRateScheduler passes (epoch, current_lr); the table ignores lr.
    return step_schedule(epoch, table)


# --------------------------------------------------------------------------- #
# Run folder management
# --------------------------------------------------------------------------- #


def _prepare_run_dir(run_dir: Path, overwrite: bool) -> bool:
    """Checks the run folder; returns True when resuming an interrupted run.

    A folder with a finished run's results (history.csv rows or model.keras)
    and no backup/ is refused unless ``overwrite``; with ``overwrite`` those
    results are moved to ``replaced-<timestamp>/`` rather than deleted.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    history = run_dir / HISTORY_FILE
    backup = run_dir / BACKUP_DIR

    if overwrite:
        leftovers = [
            run_dir / name
            for name in (HISTORY_FILE, MODEL_FILE, CONFIG_FILE, BACKUP_DIR, TENSORBOARD_DIR)
            if (run_dir / name).exists()
        ]
        if leftovers:
            dest = run_dir / time.strftime("replaced-%Y%m%d-%H%M%S")
            suffix = 1
            while dest.exists():
                dest = dest.with_name(f"{dest.name.split('.')[0]}.{suffix}")
                suffix += 1
            dest.mkdir()
            for path in leftovers:
                shutil.move(str(path), str(dest / path.name))
        return False

    if backup.exists():
        # Resuming: drop history rows of epochs that the backup predates
        # (written just before an interruption); they are about to be re-run.
        start = _backup_epoch(run_dir)
        rows = _history_rows(history)
        if start is not None and rows and any(int(r["epoch"]) >= start for r in rows):
            keep = [r for r in rows if int(r["epoch"]) < start]
            with open(history, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                writer.writeheader()
                writer.writerows(keep)
        return True

    has_rows = bool(_history_rows(history))
    if history.exists() and not has_rows:
        # Header-only/empty file from a run that died before its first epoch
        # ended: nothing to keep, and appending under a stale header could
        # misalign columns.
        history.unlink()
    found = [p.name for p in (history, run_dir / MODEL_FILE) if p.exists()]
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
    path = run_dir / CONFIG_FILE
    new = cfg.to_dict()
    if resuming and path.exists():
        try:
            old = json.loads(path.read_text())
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
    path.write_text(json.dumps(new, indent=2, sort_keys=False) + "\n")


def _steps_per_epoch(ds) -> Optional[int]:
    if not isinstance(ds, tf.data.Dataset):
        return None
    n = int(ds.cardinality())
    if n >= 0:
        return n
    if n == int(tf.data.INFINITE_CARDINALITY):
        return None
    # Unknown cardinality (e.g. after filter): count once.
    return int(ds.reduce(np.int64(0), lambda c, _: c + 1))


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


def fit_model(
    model: keras.Model,
    train_ds,
    val_ds,
    cfg,
    run_dir,
    *,
    class_counts=None,
    seed: Optional[int] = None,
    overwrite: bool = False,
    callbacks: Optional[Sequence[keras.callbacks.Callback]] = None,
) -> keras.callbacks.History:
    """Compiles ``model`` from ``cfg`` and fits it, writing a run folder.

    If ``run_dir/backup`` exists (a previous call was interrupted), training
    resumes from the last finished epoch up to ``cfg.epochs`` and history.csv
    is appended to. If the folder holds a finished run instead, this refuses
    unless ``overwrite=True``, which moves the old results to
    ``run_dir/replaced-<timestamp>/`` (nothing is deleted).

    Args:
        model: A built Keras model whose last layer outputs probabilities.
        train_ds: Training ``tf.data.Dataset`` of ``(x, y_onehot)`` batches.
        val_ds: Validation dataset (or None).
        cfg: :class:`TrainConfig` or a mapping for ``TrainConfig.from_dict``.
        run_dir: Run folder.
        class_counts: Per-class training counts for
            ``cfg.class_weight == "balanced"``; counted from ``train_ds`` (one
            pass, argmax of y) when omitted.
        seed: If given, ``keras.utils.set_random_seed(seed)`` before compiling.
        overwrite: Start afresh in a folder that holds a finished run.
        callbacks: Extra callbacks, run after the built-in ones.

    Returns:
        The ``keras.callbacks.History`` of this call (a resumed call holds only
        the epochs it ran; history.csv holds all of them). Reload the best
        model with :func:`load_best_model`.

    Raises:
        FileExistsError: If ``run_dir`` holds a finished run and not
            ``overwrite``.
        ValueError: On an invalid configuration.
    """
    cfg = _as_config(cfg)
    cfg.validate()
    run_dir = Path(run_dir)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))

    resuming = _prepare_run_dir(run_dir, overwrite)

    class_weight = None
    if cfg.class_weight == "balanced":
        counts = class_counts if class_counts is not None else _count_classes(train_ds)
        class_weight = balanced_class_weights(counts)

    steps = _steps_per_epoch(train_ds) if cfg.schedule == "cosine" else None
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    # Optimiser variables must live in the same strategy as the model's.
    with strategy.scope():
        model.compile(
            optimizer=make_optimizer(cfg, steps),
            loss=make_loss(cfg),
            metrics=["accuracy"],
            run_eagerly=bool(cfg.run_eagerly),
        )

    _write_config(run_dir, cfg, resuming)
    cbs = make_callbacks(cfg, run_dir, has_validation=val_ds is not None)
    cbs += list(callbacks or [])
    try:
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=int(cfg.epochs),
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


def load_best_model(run_dir, *, compile: bool = True) -> keras.Model:
    """Loads ``run_dir/model.keras`` (the best checkpoint of a run).

    Imports ``fer_utils.models`` first (if present) so its registered custom
    layers deserialise.

    Args:
        run_dir: Run folder written by :func:`fit_model`.
        compile: Restore the compiled loss/optimiser too.

    Returns:
        The loaded model.

    Raises:
        FileNotFoundError: If the checkpoint does not exist.
    """
    path = Path(run_dir) / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"No checkpoint at {path}; fit_model writes it after the first "
            "epoch that improves the monitored metric."
        )
    try:
        import fer_utils.models  # noqa: F401  (registers custom layers)
    except ModuleNotFoundError as e:
        if e.name != "fer_utils.models":
            raise
    return keras.saving.load_model(str(path), compile=compile)


def load_history(run_dir):
    """Reads ``run_dir/history.csv`` into a pandas DataFrame indexed by epoch.

    Raises:
        FileNotFoundError: If the history file does not exist.
    """
    import pandas as pd

    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        raise FileNotFoundError(f"No training history at {path}.")
    return pd.read_csv(path).set_index("epoch")


__all__ = [
    "TrainConfig",
    "STUDY_C_STEP_TABLE",
    "STUDY_C_EPOCHS",
    "LearningRateLogger",
    "set_precision",
    "get_strategy",
    "make_regularizer",
    "make_loss",
    "make_optimizer",
    "scale_step_table",
    "step_schedule",
    "effective_step_table",
    "make_callbacks",
    "balanced_class_weights",
    "fit_model",
    "load_best_model",
    "load_history",
]
