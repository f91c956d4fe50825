"""Hyperparameter search with KerasTuner (notebook 05) and its scale-out on KerasTuner's distributed mode.

- ``space``        search spaces from params (Study A's Table IV grid, Study C's learning-rate table), mapped
                   onto a :class:`~fer_utils.train.TrainConfig` and builder arguments (no TensorFlow)
- ``search``       the hypermodel (``build(hp)`` -> ``train.build_compiled_model``; ``fit`` maps batch size and
                   epochs), the four tuners, the search folder's state (``search.json``), the trials table
- ``distributed``  KerasTuner's distributed mode: roles, ports and start-up order of notebook 05 as the chief
                   (the oracle) and N worker processes, over ``KERASTUNER_TUNER_ID``/``KERASTUNER_ORACLE_IP``/
                   ``_PORT``; the launcher is ``python -m fer_utils.experiments.tune_workers --profile P --workers N``

Import ``fer_utils.tune.search`` explicitly: it imports KerasTuner and TensorFlow; this package does not.
"""

from fer_utils.tune.space import (
    STUDY_C_LR_SPACE,
    TABLE_IV_DEFAULT,
    TABLE_IV_SPACE,
    SpaceError,
    apply,
    check_default,
    check_space,
    grid_size,
)

__all__ = ["STUDY_C_LR_SPACE", "TABLE_IV_DEFAULT", "TABLE_IV_SPACE", "SpaceError", "apply", "check_default",
           "check_space", "grid_size"]
