"""Learning-rate step tables (Study C's, absolute or rescaled to shorter runs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from fer_utils.train.config import STEP_TABLE_SCALES, STUDY_C_EPOCHS, TrainConfig, choice_error


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
    raise choice_error("step_table_scale", cfg.step_table_scale, STEP_TABLE_SCALES)


