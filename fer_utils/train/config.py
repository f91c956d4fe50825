"""The training configuration: :class:`TrainConfig`, validated once when made and frozen afterwards."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

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


def choice_error(key: str, value: Any, choices: Sequence[Any]) -> ValueError:
    """The error for a value outside its choices, naming the key, the value and the choices."""
    return ValueError(
        f"Invalid {key}={value!r}; expected one of {list(choices)}."
    )


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
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
        steps_per_epoch: At most this many batches per epoch (0 = the whole
            training split). A cap for quick checks (the smoke profile's big
            backbones); a split with fewer batches is used whole.
        ema_momentum: Exponential moving average of the weights (Polyak averaging; 0 = off, e.g. 0.999):
            validation, the best checkpoint and the final model use the averaged weights, training the raw ones
            (Keras' optimizer ``use_ema``; batch-norm statistics are the raw model's).
        weight_decay: Decoupled weight decay (AdamW's, Loshchilov & Hutter 2019; 0 = off, e.g. 0.05): each step
            shrinks every kernel by ``weight_decay * lr`` of itself, apart from the loss's gradient (Keras' optimizer
            ``weight_decay``). Biases and batch-norm scales and offsets are not decayed. Unlike ``l2`` it is not
            divided away by Adam's per-weight step size. Keras does not save that exclusion with the optimizer:
            to train a saved model further, compile it with :func:`fer_utils.train.compile_model`, not Keras' loader.
        keep_last: Also keep the last epoch's model as ``last.keras`` beside the best checkpoint (``model.keras``),
            so the two can be compared without training twice (a schedule that decays to 0 ends on its best
            weights more often than a noisy validation split says).
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
    step_table: tuple = STUDY_C_STEP_TABLE
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
    steps_per_epoch: int = 0
    ema_momentum: float = 0.0
    weight_decay: float = 0.0
    keep_last: bool = False

    def __post_init__(self):
        # Validated once, here; the config is frozen, so it cannot become invalid later.
        _validate_step_table(self.step_table)
        object.__setattr__(self, "step_table", tuple((int(a), float(b)) for a, b in self.step_table))
        self._validate()

    def replace(self, **changes) -> "TrainConfig":
        """A new validated config with some values changed (this one is frozen)."""
        unknown = [k for k in changes if k not in self.field_names()]
        if unknown:
            raise ValueError(f"Unknown TrainConfig key(s) {unknown}; valid keys are: {', '.join(self.field_names())}.")
        return dataclasses.replace(self, **changes)

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
        d = dataclasses.asdict(self)
        d["step_table"] = [list(p) for p in self.step_table]
        return d

    def _validate(self) -> None:
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
                raise choice_error(key, getattr(self, key), choices)
        for key in ("nesterov", "tensorboard", "run_eagerly", "keep_last"):
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
        check("weight_decay", lambda v: is_num(v) and 0 <= v < 1, "a number in [0, 1)")
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
        check("steps_per_epoch", lambda v: is_int(v) and v >= 0, "an integer >= 0 (0 = the whole split)")
        check("ema_momentum", lambda v: is_num(v) and 0 <= v < 1, "a number in [0, 1) (0 = off, e.g. 0.999)")
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
