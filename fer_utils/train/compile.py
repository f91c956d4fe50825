"""Building and compiling a model from a registry name and a TrainConfig.

One function, :func:`build_compiled_model`, owns precision, distribution strategy, regularizer,
optimizer, loss and learning-rate schedule; training, KerasTuner's ``build(hp)`` and the 5x2cv
trainings all call it, so a model is always compiled the same way.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional

import keras
import tensorflow as tf

from fer_utils.artifacts import cpu_flags
from fer_utils.train.config import LOSSES, PRECISIONS, TrainConfig, choice_error
from fer_utils.train.schedules import effective_step_table, step_schedule


#: What ``weight_decay`` leaves alone, as is usual for decoupled weight decay: biases and batch-norm scales and
#: offsets. A regular expression searched in the variable's name, which on the TensorFlow backend is its whole path
#: (``bn/gamma:0``, ``.../bias/replica_1:0`` under MirroredStrategy), so it matches a whole path part, not a layer
#: name that merely contains one of the words.
NO_WEIGHT_DECAY = r"(^|/)(bias|gamma|beta)(:\d+|/|$)"

#: oneDNN ISA limits (``ONEDNN_MAX_CPU_ISA``) under which bf16 convolutions and matmuls still run natively.
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                     "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT")


def _cpu_supports_bf16() -> bool:
    """True if /proc/cpuinfo advertises native bf16 matmuls (AVX512-BF16/AMX) and oneDNN may use them.

    ``ONEDNN_MAX_CPU_ISA`` below AVX512_CORE_BF16 (e.g. ``AVX2``, the way to measure an AVX2-only CPU on a newer one)
    rules bf16 out: oneDNN then has no bf16 convolution at all. Without /proc/cpuinfo: float32, always safe.
    """
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa and isa not in _ONEDNN_BF16_ISAS:
        return False
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str = "auto") -> str:
    """The dtype policy :func:`set_precision` sets for ``precision`` on this machine, without setting it.

    "auto" picks "mixed_float16" when a GPU is visible, else "mixed_bfloat16" when the CPU has native bf16 matmuls
    (``avx512_bf16``/``amx_bf16`` in /proc/cpuinfo, and oneDNN not limited below them), else "float32".

    Raises:
        ValueError: If ``precision`` is not "float32", "mixed_bfloat16", "mixed_float16" or "auto".
    """
    if precision not in PRECISIONS:
        raise choice_error("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if _cpu_supports_bf16() else "float32"


def set_precision(precision: str = "auto") -> str:
    """Sets the global Keras dtype policy (:func:`resolve_precision`'s choice). Call before building the model.

    Returns:
        The name of the policy that was set.

    Raises:
        ValueError: If ``precision`` is not one of the choices.
    """
    precision = resolve_precision(precision)
    keras.mixed_precision.set_global_policy(precision)
    return precision


def get_strategy() -> tf.distribute.Strategy:
    """The distribution strategy training builds and compiles under.

    More than one visible GPU: ``MirroredStrategy``; otherwise the default strategy. Build and compile the
    model inside ``with get_strategy().scope():``.

    Raises:
        RuntimeError: ``TF_CONFIG`` names a cluster of several workers. ``MultiWorkerMirroredStrategy`` does
            not work with Keras 3's ``model.fit`` (keras-team/keras#20585, tensorflow/tensorflow#72388;
            reproduced here with TensorFlow 2.21 / Keras 3.15: the first step fails converting a ``PerReplica``
            batch). Across machines, spread *trials* with KerasTuner's distributed mode instead.
    """
    if _workers_in_tf_config() > 1:
        raise RuntimeError(
            "TF_CONFIG names several workers, but MultiWorkerMirroredStrategy does not work with Keras 3's "
            "model.fit (keras-team/keras#20585): unset TF_CONFIG; to use several machines, run whole trials on "
            "each with KerasTuner's distributed mode (python -m fer_utils.experiments.tune_workers, see the README)")
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _workers_in_tf_config() -> int:
    """Number of workers (chief included) in ``$TF_CONFIG``'s cluster; 0 without one."""
    import json
    import os

    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON with a 'cluster' ({exc}): {raw[:200]!r}") from exc
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


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
    raise choice_error("loss", cfg.loss, LOSSES)


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

    extra = {"use_ema": True, "ema_momentum": float(cfg.ema_momentum)} if cfg.ema_momentum else {}
    if cfg.weight_decay:
        extra["weight_decay"] = float(cfg.weight_decay)
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=float(cfg.momentum), nesterov=cfg.nesterov, **extra)
    elif cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=lr, **extra)
    else:
        opt = keras.optimizers.RMSprop(learning_rate=lr, **extra)
    if cfg.weight_decay:
        opt.exclude_from_weight_decay(var_names=[NO_WEIGHT_DECAY])
    return opt


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches per epoch of ``n_train`` images (the last batch is kept), for the cosine schedule."""
    return max(1, math.ceil(int(n_train) / int(batch_size)))


def compile_model(model: keras.Model, cfg: TrainConfig, *, steps_per_epoch: Optional[int] = None) -> keras.Model:
    """Compiles a built model with ``cfg``'s optimizer, schedule and loss (accuracy as metric).

    The model must have been built under ``cfg``'s precision and strategy; use
    :func:`build_compiled_model` to get both right. Returns the same model.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig (TrainConfig.from_dict(...)); got {type(cfg).__name__}.")
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    # Optimiser variables must live in the same strategy as the model's.
    with strategy.scope():
        model.compile(optimizer=make_optimizer(cfg, steps_per_epoch), loss=make_loss(cfg), metrics=["accuracy"],
                      run_eagerly=bool(cfg.run_eagerly))
    return model


def build_compiled_model(name: str, cfg: TrainConfig, *, input_shape, num_classes: int,
                         steps_per_epoch: Optional[int] = None, model_kwargs: Optional[dict] = None):
    """Builds a registry model and compiles it from a training config, in one place.

    Sets the precision policy (``cfg.precision``), builds inside the distribution strategy
    (``MirroredStrategy`` on more than one GPU) with ``cfg``'s L1/L2 on every kernel, then compiles
    with ``cfg``'s optimizer, learning-rate schedule and loss.

    Args:
        name: A registry name (``fer_utils.models.available_models()``).
        cfg: The :class:`TrainConfig`.
        input_shape: ``(H, W, C)``.
        num_classes: Number of classes.
        steps_per_epoch: Batches per epoch (needed by ``schedule="cosine"``; see :func:`steps_per_epoch`).
        model_kwargs: Builder overrides (e.g. ``{"filters": [32, 64, 128, 256]}``).

    Returns:
        ``(model, policy)``: the compiled model and the precision policy it was built under.

    Raises:
        TypeError: ``cfg`` is not a TrainConfig.
        ValueError: Unknown model name or builder argument (the message lists the choices).
    """
    from fer_utils import models

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig (TrainConfig.from_dict(...)); got {type(cfg).__name__}.")
    policy = set_precision(cfg.precision)
    with get_strategy().scope():
        model = models.build_model(name, tuple(input_shape), num_classes,
                                   kernel_regularizer=make_regularizer(cfg.l1, cfg.l2), **(model_kwargs or {}))
    return compile_model(model, cfg, steps_per_epoch=steps_per_epoch), policy
