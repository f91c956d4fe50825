"""Training FER models from a parameter dictionary.

- ``config``     :class:`TrainConfig`: every hyper-parameter, validated when made, frozen afterwards
- ``schedules``  learning-rate step tables (Study C's, absolute or rescaled)
- ``compile``    precision, strategy, regularizer, optimizer, loss, schedule:
                 :func:`build_compiled_model` (used by training, KerasTuner's ``build(hp)`` and 5x2cv)
- ``backup``     resumable state written atomically and kept double, restored with a fallback
- ``callbacks``  checkpoint, resumable backup, CSV history with the learning rate, NaN guard, progress lines
- ``fit``        :func:`fit_model`: fits a compiled model, owns callbacks and the run folder's training files

Importing it imports TensorFlow/Keras; nothing is seeded or set at import time.
"""

from fer_utils.train.backup import BackupError, SafeBackup, backup_epoch, cut_history
from fer_utils.train.callbacks import LearningRateLogger, ProgressReporter, make_callbacks
from fer_utils.train.compile import (
    build_compiled_model,
    compile_model,
    get_strategy,
    make_loss,
    make_optimizer,
    make_regularizer,
    resolve_precision,
    set_precision,
    steps_per_epoch,
)
from fer_utils.train.config import (
    CLASS_WEIGHTS,
    LOSSES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STEP_TABLE_SCALES,
    STUDY_C_EPOCHS,
    STUDY_C_STEP_TABLE,
    TrainConfig,
)
from fer_utils.train.fit import balanced_class_weights, fit_arguments, fit_model
from fer_utils.train.schedules import effective_step_table, scale_step_table, step_schedule

__all__ = [
    "BackupError", "SafeBackup", "backup_epoch", "cut_history",
    "CLASS_WEIGHTS", "LOSSES", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "STEP_TABLE_SCALES", "STUDY_C_EPOCHS",
    "STUDY_C_STEP_TABLE", "LearningRateLogger", "ProgressReporter", "TrainConfig", "balanced_class_weights",
    "build_compiled_model", "compile_model", "effective_step_table", "fit_arguments", "fit_model", "get_strategy",
    "make_callbacks", "make_loss", "make_optimizer", "make_regularizer", "resolve_precision",
    "scale_step_table", "set_precision", "step_schedule", "steps_per_epoch",
]
