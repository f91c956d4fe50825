"""Search spaces: what a hyperparameter name means and how its values map onto a training recipe.

A search space is a mapping from a hyperparameter name to its values, read from a profile:

- a **list** under a :class:`~fer_utils.train.TrainConfig` field (``learning_rate: [0.01, 0.001]``) tunes
  that field; under ``model.<argument>`` (``model.dropout: [0.3, 0.5]``) it tunes a builder argument;
- a **mapping** of named settings (``lr: {"0.01": {learning_rate: 0.01}, step: {schedule: step}}``) tunes
  a choice among bundles of such keys (Study C's learning-rate table mixes rates and a schedule).

Every hyperparameter becomes ``hp.Choice`` (KerasTuner's ``GridSearch`` enumerates only ``Choice``
values exactly: a ``Float`` without ``step`` would become ten values). Nothing here imports TensorFlow
(``fer_utils.train`` is imported inside the functions that need :class:`TrainConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

MODEL_PREFIX = "model."

#: Study A, Table IV: default column first in each list (learning rate 0.01, batch 30, coefficient 0.001,
#: SGD, 50 epochs), then the two tuning values. 3^5 = 243 configurations.
TABLE_IV_SPACE = {
    "learning_rate": [0.01, 0.001, 0.005],
    "batch_size": [30, 60, 120],
    "l2": [0.001, 0.01, 0.1],
    "optimizer": ["sgd", "adam", "rmsprop"],
    "epochs": [50, 100, 200],
}
TABLE_IV_DEFAULT = {"learning_rate": 0.01, "batch_size": 30, "l2": 0.001, "optimizer": "sgd", "epochs": 50}

#: Study C, Table 2: four constant learning rates against the step schedule (Adam, cosine loss).
STUDY_C_LR_SPACE = {
    "lr_setting": {
        "0.01": {"learning_rate": 0.01, "schedule": "constant"},
        "0.001": {"learning_rate": 0.001, "schedule": "constant"},
        "0.0001": {"learning_rate": 0.0001, "schedule": "constant"},
        "1e-05": {"learning_rate": 0.00001, "schedule": "constant"},
        "step": {"schedule": "step"},
    }
}


class SpaceError(ValueError):
    """A search space (or a configuration of it) that cannot be used; the message names the key."""


def _check_target(name: str, key: str) -> None:
    from fer_utils.train.config import TrainConfig

    if key.startswith(MODEL_PREFIX):
        if not key[len(MODEL_PREFIX):]:
            raise SpaceError(f"space key {name!r}: 'model.' needs a builder argument name, e.g. model.dropout")
        return
    if key not in TrainConfig.field_names():
        raise SpaceError(f"space key {name!r}: {key!r} is neither a TrainConfig field "
                         f"({', '.join(TrainConfig.field_names())}) nor 'model.<builder argument>'")


def _scalar(v) -> bool:
    return isinstance(v, (bool, int, float, str)) and not (isinstance(v, float) and not math.isfinite(v))


def check_space(space: Mapping) -> dict:
    """Validates a search space and returns it as a plain dict.

    Raises:
        SpaceError: empty space, unknown key, an empty or repeated value list, a value that is not a
            plain number, string or boolean, or a named setting that sets an unknown key.
    """
    if not isinstance(space, Mapping) or not space:
        raise SpaceError(f"a search space must be a non-empty mapping of hyperparameter -> values; got {space!r}")
    out = {}
    for name, values in space.items():
        if isinstance(values, Mapping):
            if not values:
                raise SpaceError(f"space key {name!r}: no named settings")
            for label, setting in values.items():
                if not isinstance(setting, Mapping):
                    raise SpaceError(f"space key {name!r}, setting {label!r}: expected a mapping of keys to values, "
                                     f"got {setting!r}")
                for key in setting:
                    _check_target(f"{name}.{label}", key)
            out[str(name)] = {str(k): dict(v) for k, v in values.items()}
            continue
        _check_target(name, name)
        if not isinstance(values, (list, tuple)) or not values:
            raise SpaceError(f"space key {name!r}: expected a non-empty list of values, got {values!r}")
        bad = [v for v in values if not _scalar(v)]
        if bad:
            raise SpaceError(f"space key {name!r}: values {bad} are not plain numbers, strings or booleans")
        if len(set(map(repr, values))) != len(values):
            raise SpaceError(f"space key {name!r}: repeated values in {list(values)}")
        out[str(name)] = list(values)
    return out


def choices(space: Mapping, name: str) -> list:
    """The ``hp.Choice`` values of one hyperparameter (setting names for a mapping)."""
    values = space[name]
    return list(values) if isinstance(values, Mapping) else list(values)


def grid_size(space: Mapping) -> int:
    """Number of configurations in the full grid."""
    return math.prod(len(choices(space, k)) for k in space)


def without(space: Mapping, *names: str) -> dict:
    """The space with some hyperparameters removed (Hyperband sets epochs itself)."""
    return {k: v for k, v in space.items() if k not in names}


def declare(hp, space: Mapping) -> dict:
    """Declares every hyperparameter of ``space`` on ``hp`` as ``hp.Choice``; returns ``{name: value}``."""
    return {name: hp.Choice(name, choices(space, name)) for name in space}


def apply(space: Mapping, values: Mapping, train_config: Mapping, model_kwargs: Mapping | None = None) -> tuple:
    """Maps hyperparameter values onto a training recipe.

    Args:
        space: a checked space.
        values: ``{name: value}`` for every hyperparameter of ``space`` (extra keys, such as Hyperband's
            ``tuner/...`` bookkeeping, are ignored).
        train_config: the base :class:`TrainConfig` fields the values override.
        model_kwargs: the base builder arguments.

    Returns:
        ``(TrainConfig, model_kwargs dict)``.

    Raises:
        SpaceError: a value missing or not among the space's choices.
        ValueError: the resulting training config is invalid (its message names the key).
    """
    from fer_utils.train.config import TrainConfig

    cfg, kwargs = dict(train_config), dict(model_kwargs or {})
    for name in space:
        if name not in values:
            raise SpaceError(f"no value for hyperparameter {name!r} (space: {list(space)})")
        value = values[name]
        if value not in choices(space, name):
            raise SpaceError(f"{name}={value!r} is not in the space's choices {choices(space, name)}")
        setting = space[name][value] if isinstance(space[name], Mapping) else {name: value}
        for key, v in setting.items():
            if key.startswith(MODEL_PREFIX):
                kwargs[key[len(MODEL_PREFIX):]] = v
            else:
                cfg[key] = v
    return TrainConfig.from_dict(cfg), kwargs


def check_default(space: Mapping, default: Mapping) -> dict:
    """The default configuration as ``{name: value}``, every name of ``space`` set to one of its choices.

    Raises:
        SpaceError: a name missing from ``default``, an extra name, or a value outside the choices.
    """
    missing = [k for k in space if k not in default]
    extra = [k for k in default if k not in space]
    if missing or extra:
        raise SpaceError(f"default configuration {dict(default)}: missing {missing}, not in the space {extra}; "
                         f"it must set exactly the space's hyperparameters {list(space)}")
    for k, v in default.items():
        if v not in choices(space, k):
            raise SpaceError(f"default {k}={v!r} is not among the space's choices {choices(space, k)}")
    return dict(default)
