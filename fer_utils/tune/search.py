"""KerasTuner searches over the suite's training recipe: the hypermodel, the four tuners, the search's
state on disk and the table of its trials.

- :class:`FERHyperModel`: ``build(hp)`` only maps hyperparameters onto :func:`fer_utils.train.build_compiled_model`
  (the compile function every training uses); ``fit(hp, ...)`` maps batch size and epochs and trains on the
  run's own input pipelines (:func:`fer_utils.pipeline.input_pipelines`). A trial's score is the
  **best epoch's validation accuracy**, returned explicitly: a run keeps its best-validation checkpoint, so
  this is the validation accuracy of the model the configuration delivers. The final epoch's value is kept too.
- Every trial starts from the search's seed (same initial weights, same batches: common random numbers),
  so differences between trials come from the hyperparameters, and a configuration scores the same in
  any process or worker.
- Epochs: ``GridSearch``, ``RandomSearch`` and ``BayesianOptimization`` tune ``epochs`` like any other
  hyperparameter; ``Hyperband`` drops it from the space and uses its own budget (``max_epochs``, ``factor``),
  continuing promoted trials from their predecessor's best checkpoint (:func:`epoch_policy` says so).
- State: KerasTuner keeps ``oracle.json`` and ``trial_*/`` in the search folder; ``search.json`` there
  records what the search is (space, tuner settings, model, base recipe, data checksum, seed, and the precision its
  trials build in on this machine: ``precision: auto`` resolves per machine; not in distributed mode). A search
  with the same record resumes (finished trials are never re-run; an interrupted one restarts from scratch);
  a different record is an error naming the folder, unless ``overwrite`` moves the old folder aside.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd

from fer_utils import artifacts, progress, runs
from fer_utils.tune import distributed as dist
from fer_utils.tune import space as S

TUNERS = ("grid", "hyperband", "bayesian", "random")
#: Settings each tuner accepts (KerasTuner's own argument names) and their defaults.
TUNER_SETTINGS = {
    "grid": {"max_trials": None},
    "hyperband": {"max_epochs": None, "factor": 3, "hyperband_iterations": 1},
    "bayesian": {"max_trials": 10, "num_initial_points": None},
    "random": {"max_trials": 10},
}
OBJECTIVE = "val_accuracy"
SEARCH_FILE = "search.json"
TRIALS_FILE = "trials.csv"
REPLACED = runs.REPLACED_PREFIX  # a replaced search sits beside its folder as <folder>.replaced-<time>


class StopSearch(Exception):
    """Raised after ``stop_after`` trials of one call (a deliberate interruption; the state is saved)."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a trial trains with except the hyperparameters (those come from the space)."""

    model: str
    train_config: dict
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    input_size: int = 48
    normalization: str = "auto"
    augment: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    target: str = "majority"


def check_tuner(kind: str, settings: Mapping | None, space: Mapping) -> dict:
    """The tuner's settings with defaults filled in; errors name the tuner and key.

    Raises:
        ValueError: an unknown tuner or setting, or a setting that does not fit the space.
    """
    if kind not in TUNERS:
        raise ValueError(f"unknown tuner {kind!r}; expected one of {list(TUNERS)}")
    settings = dict(settings or {})
    unknown = [k for k in settings if k not in TUNER_SETTINGS[kind]]
    if unknown:
        raise ValueError(f"tuner {kind!r}: unknown setting(s) {unknown}; accepted: {list(TUNER_SETTINGS[kind])}")
    out = {**TUNER_SETTINGS[kind], **settings}
    if kind == "hyperband" and out["max_epochs"] is None:
        epochs = S.choices(space, "epochs") if "epochs" in space else []
        if not epochs:
            raise ValueError("tuner 'hyperband' needs max_epochs (the space does not tune epochs to take it from)")
        out["max_epochs"] = int(max(epochs))
    for key in ("max_trials", "max_epochs", "num_initial_points", "hyperband_iterations"):
        v = out.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"tuner {kind!r}: {key}={v!r}; expected an integer >= 1")
    if kind == "hyperband" and not (isinstance(out["factor"], int) and out["factor"] >= 2):
        raise ValueError(f"tuner 'hyperband': factor={out['factor']!r}; expected an integer >= 2")
    return out


def tuned_space(kind: str, space: Mapping) -> dict:
    """The space a tuner searches: Hyperband's has no ``epochs`` (its own budget sets them)."""
    return S.without(space, "epochs") if kind == "hyperband" else dict(space)


def epoch_policy(kind: str, settings: Mapping) -> str:
    """How a tuner treats epochs, for the report."""
    if kind == "hyperband":
        return (f"Hyperband sets epochs itself (max_epochs={settings['max_epochs']}, factor={settings['factor']}): "
                "'epochs' is not tuned; promoted trials continue from their predecessor's best checkpoint (weights, "
                "optimizer step count and moments, dropout generators), and schedules that depend on the run length "
                "use max_epochs")
    return "epochs is a hyperparameter like the others; each trial trains its configuration's epochs from scratch"


class FERHyperModel(kt.HyperModel):
    """A registry model, trained the suite's way, with a search space over its recipe.

    Args:
        recipe: the :class:`Recipe` every trial shares.
        ds: a prepared dataset with ``Training`` and ``Validation`` splits (test splits are never read).
        space: a checked search space (:func:`fer_utils.tune.space.check_space`).
        max_epochs: the run length under Hyperband (its schedules' length); None otherwise.
    """

    def __init__(self, recipe: Recipe, ds, space: Mapping, max_epochs: int | None = None):
        from fer_utils import models

        super().__init__(name=recipe.model)
        self.recipe, self.ds, self.space = recipe, ds, dict(space)
        base = dict(recipe.train_config)
        if max_epochs:
            base["epochs"] = int(max_epochs)
        self.base_config = base
        self.size, self.channels, self.normalization, _ = models.resolve_input(
            recipe.model, recipe.input_size, recipe.normalization, (recipe.model_kwargs or {}).get("weights"))
        self.n_train = len(ds.split("Training"))

    def configuration(self, values: Mapping) -> tuple:
        """``(TrainConfig, model_kwargs)`` of one point of the space."""
        return S.apply(self.space, values, self.base_config, self.recipe.model_kwargs)

    def build(self, hp):
        from fer_utils import train

        cfg, kwargs = self.configuration(S.declare(hp, self.space))
        steps = train.steps_per_epoch(self.n_train, cfg.batch_size)
        model, _ = train.build_compiled_model(self.recipe.model, cfg, input_shape=(self.size, self.size, self.channels),
                                              num_classes=self.ds.num_classes, model_kwargs=kwargs,
                                              steps_per_epoch=min(steps, cfg.steps_per_epoch or math.inf))
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
        from fer_utils import train
        from fer_utils.pipeline import input_pipelines

        cfg, _ = self.configuration(hp.values)
        train_ds, val_ds, _ = input_pipelines(self.ds, batch_size=cfg.batch_size, size=self.size,
                                              channels=self.channels, normalization=self.normalization,
                                              augment=self.recipe.augment or None, seed=self.recipe.seed,
                                              target=self.recipe.target)
        counts = np.bincount(self.ds.split("Training").labels, minlength=self.ds.num_classes)
        # a Hyperband trial continued from epoch k (initial_epoch) sees the batches of an uninterrupted run from k on
        train_ds, steps, class_weight = train.fit_arguments(cfg, train_ds, counts, start_epoch=int(initial_epoch))
        keras.utils.set_random_seed(int(self.recipe.seed))
        t0 = time.perf_counter()
        history = model.fit(train_ds, validation_data=val_ds, epochs=int(epochs or cfg.epochs),
                            initial_epoch=int(initial_epoch), steps_per_epoch=steps, class_weight=class_weight,
                            callbacks=_with_seed_states(callbacks), verbose=0, shuffle=False)
        val = [float(v) for v in history.history.get(OBJECTIVE, [])]
        if not val or not np.isfinite(val).any():
            raise ValueError(f"trial gave no finite {OBJECTIVE} (history: {val})")
        return {OBJECTIVE: float(np.nanmax(val)), "final_val_accuracy": val[-1], "epochs_run": float(len(val)),
                "fit_seconds": round(time.perf_counter() - t0, 2)}


SEED_STATES_FILE = "seed_states.json"


class _SeedStatesBeside(keras.callbacks.Callback):
    """Writes the layers' random generator states (dropout masks) beside each checkpoint KerasTuner saves: Keras'
    weights file does not hold them, and a promoted Hyperband trial needs them to continue as the run it extends."""

    def __init__(self, checkpoint):
        super().__init__()
        self.checkpoint, self._best = checkpoint, None

    def on_epoch_begin(self, epoch, logs=None):
        self._best = self.checkpoint.best_value

    def on_epoch_end(self, epoch, logs=None):  # runs after the checkpoint callback: it decided whether to save
        if not self.checkpoint.objective.has_value(logs) or self.checkpoint.best_value != self._best:
            from fer_utils.train.backup import seed_states

            Path(self.checkpoint.filepath).with_name(SEED_STATES_FILE).write_text(json.dumps(seed_states(self.model)))


def _with_seed_states(callbacks) -> list:
    from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

    out = []
    for c in callbacks or []:
        out.append(c)
        if isinstance(c, SaveBestEpoch):
            out.append(_SeedStatesBeside(c))
    return out


class _SuiteTuner:
    """Mixin for the KerasTuner tuners: each trial starts from the search's seed; progress lines; stop_after."""

    suite_seed = 0
    suite_label = "search"
    stop_after = None
    _trials_this_call = 0

    def run_trial(self, trial, *args, **kwargs):
        artifacts.set_seed(self.suite_seed)
        t0 = time.perf_counter()
        results = super().run_trial(trial, *args, **kwargs)
        seconds = round(time.perf_counter() - t0, 2)
        for r in results if isinstance(results, list) else [results]:
            if isinstance(r, dict):
                r["trial_seconds"] = seconds
        return results

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        keras.backend.clear_session()
        self._trials_this_call += 1
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        recorded = self.oracle.get_trial(trial.trial_id).metrics  # a worker's copy lacks the chief's metrics
        score = recorded.get_last_value(OBJECTIVE) if recorded.exists(OBJECTIVE) else float("nan")
        who = f"[{self.tuner_id}] " if dist.role() != "single" else ""
        progress.report(f"{who}{self.suite_label} trial {trial.trial_id} {trial.status}: {values} "
                        f"-> {OBJECTIVE} {score:.4f}")
        if self.stop_after and self._trials_this_call >= self.stop_after:
            raise StopSearch(f"stopped after {self._trials_this_call} trial(s) as asked")
        progress.check_stop(f"{self.suite_label} trial {trial.trial_id}")  # the runner's --stop-after


class ResumableGridOracle(kt.oracles.GridSearchOracle):
    """KerasTuner's grid oracle, able to resume.

    KerasTuner 1.4.8 does not save the grid oracle's position (its ordered trial list and the queue of trials
    whose next combination is pending; keras-team/keras-tuner#1055), so a reloaded grid search stops at once
    or fails with a ``KeyError``. Both are rebuilt here from the trials on record, in grid order; trials that
    were running when the search was interrupted are re-run by KerasTuner's retry queue.
    """

    def set_state(self, state):
        from keras_tuner.src.tuners.gridsearch import LinkedList

        super().set_state(state)
        order = functools.cmp_to_key(lambda a, b: self._compare(self.trials[a].hyperparameters.values,
                                                                self.trials[b].hyperparameters.values))
        started = sorted((t for t in self.start_order if t in self.trials), key=order)
        self._ordered_ids = LinkedList()
        for trial_id in started:
            self._ordered_ids.insert(trial_id)
        self._populate_next = list(started)


class GridTuner(_SuiteTuner, kt.Tuner):
    """Grid search (``kt.GridSearch``'s oracle, resumable) with the suite's trial seeding."""


class HyperbandTuner(_SuiteTuner, kt.Hyperband):
    """``kt.Hyperband`` with the suite's trial seeding; a promoted trial continues its predecessor's optimizer.

    KerasTuner 1.4.8 loads the predecessor's checkpoint into a freshly compiled model whose optimizer has no
    variables yet, so Keras skips the optimizer's state (with a warning): the step count, and with it the learning-rate
    schedule, restarts (a second warm-up in the middle of the run, a cosine from the top) and so do Adam's moments.
    The optimizer is built first here, so the checkpoint restores both, and the layers' random generator states
    (dropout masks; saved beside each checkpoint) are restored too: a continued trial trains as the same
    configuration trained whole would.
    """

    def _build_hypermodel(self, hp):
        model = kt.Tuner._build_hypermodel(self, hp)  # not kt.Hyperband's: it loads before the optimizer exists
        if "tuner/trial_id" in hp.values:
            if not model.built:
                model.build_from_config(json.loads(Path(self._get_build_config_fname(
                    hp.values["tuner/trial_id"])).read_text()))
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(self._get_checkpoint_fname(hp.values["tuner/trial_id"]))
            states = Path(self._get_checkpoint_fname(hp.values["tuner/trial_id"])).with_name(SEED_STATES_FILE)
            if states.exists():  # trials of earlier versions have none: their continuations draw fresh masks
                from fer_utils.train.backup import restore_seed_states

                restore_seed_states(model, json.loads(states.read_text()))
        return model


class BayesianTuner(_SuiteTuner, kt.BayesianOptimization):
    """``kt.BayesianOptimization`` with the suite's trial seeding."""


class RandomTuner(_SuiteTuner, kt.RandomSearch):
    """``kt.RandomSearch`` with the suite's trial seeding."""


_CLASSES = {"grid": GridTuner, "hyperband": HyperbandTuner, "bayesian": BayesianTuner, "random": RandomTuner}


def fingerprint(kind: str, settings: Mapping, space: Mapping, recipe: Recipe, data_checksum: str,
                distributed: bool = False) -> dict:
    """What a search is; two searches may share state only when these are equal.

    ``precision`` is the dtype policy the trials train in on this machine (``precision: auto`` resolves per machine;
    the resolved choices when the space tunes it): a search started on a bf16 CPU and resumed on an AVX2-only one
    would otherwise mix precisions between its trials, and a promoted Hyperband trial would continue its predecessor
    in another one. ``distributed``: the chief trains nothing and each worker trains in its own machine's
    precision, so none is recorded."""
    from fer_utils import train

    base = recipe.train_config.get("precision", train.TrainConfig.precision)
    precision = None if distributed else _trial_precisions(space, base)
    return {"tuner": kind, "tuner_settings": dict(settings), "space": dict(space), "objective": OBJECTIVE,
            "recipe": dataclasses.asdict(recipe), "data_checksum": data_checksum, "precision": precision}


def _trial_precisions(space: Mapping, base: str):
    """The dtype policy trials build in on this machine (``base``, the recipe's precision, resolved), or the sorted
    policies they can build in when the space sets ``precision`` (as a list of values, or in named settings)."""
    from fer_utils import train

    named, always = set(), False
    for name, values in space.items():
        if isinstance(values, Mapping):
            sets = [setting["precision"] for setting in values.values() if "precision" in setting]
            named.update(sets)
            always = always or len(sets) == len(values)
        elif name == "precision":
            named.update(values)
            always = True
    if not named:
        return train.resolve_precision(base)
    return sorted({train.resolve_precision(p) for p in (named if always else named | {base})})


def _differences(old: Mapping, new: Mapping) -> list:
    norm = lambda d: json.loads(json.dumps(d, sort_keys=True, default=str))  # noqa: E731
    old, new = norm(old), norm(new)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _older(old, record: Mapping) -> dict:
    """A record to compare: one that is not a JSON object is unreadable; one with no precision (written before it was
    recorded, or by a distributed search) stays resumable, and a distributed search compares none."""
    if not isinstance(old, dict):
        return {"unreadable": f"not a JSON object: {old!r}"[:200]}
    if old.get("precision") is None or record.get("precision") is None:
        return {**old, "precision": record.get("precision")}
    return old


def _precision_hint(old: Mapping, record: Mapping) -> str:
    from fer_utils.train.backup import AUTO_PRECISION_HELP

    return f": its trials trained in {old.get('precision')}, this machine builds them in {record.get('precision')} " \
        + AUTO_PRECISION_HELP


def prepare_search_dir(folder, record: Mapping, overwrite: bool = False) -> str:
    """Checks (or starts) a search folder before any tuner touches it; returns ``"new"`` or ``"resume"``.

    Raises:
        FileExistsError: the folder holds another search (its differing keys named) or state without a
            ``search.json``, and not ``overwrite``; with ``overwrite`` it is moved to
            ``<folder>.replaced-<time>`` (never deleted).
    """
    folder = Path(folder)
    meta = folder / SEARCH_FILE
    if folder.exists() and any(folder.iterdir()):
        if meta.exists():
            try:
                saved = json.loads(meta.read_text())
                old = _older(saved, record)
            except (OSError, ValueError) as exc:
                saved = old = {"unreadable": str(exc)}
            changed = _differences(old, record)
        else:
            changed = [f"{SEARCH_FILE} missing"]
        if not changed and not overwrite:
            if record.get("precision") is not None and old != saved:
                runs.write_json(meta, dict(record))  # a record without a precision gains this machine's
            return "resume"
        if not overwrite:
            raise FileExistsError(f"{folder} holds the state of another search (differs in {changed}"
                                  f"{_precision_hint(old, record) if 'precision' in changed else ''}); it is "
                                  "never reused silently: pass overwrite=True (runner: --fresh) to move it aside, "
                                  "or choose another run folder")
        dest = folder.with_name(f"{folder.name}.{REPLACED}{time.strftime('%Y%m%d-%H%M%S')}")
        suffix = 1
        while dest.exists():
            dest = dest.with_name(f"{folder.name}.{REPLACED}{time.strftime('%Y%m%d-%H%M%S')}.{suffix}")
            suffix += 1
        shutil.move(str(folder), str(dest))
        progress.report(f"earlier search moved aside to {dest}")
    folder.mkdir(parents=True, exist_ok=True)
    runs.write_json(meta, dict(record))
    return "new"


def check_same_search(folder, record: Mapping) -> None:
    """A worker's check that the chief prepared the same search (same data, space, recipe; the precision is each
    worker's own, see :func:`fingerprint`).

    Raises:
        RuntimeError: naming the folder and the keys that differ.
    """
    try:
        old = json.loads((Path(folder) / SEARCH_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{folder}: the chief's {SEARCH_FILE} is unreadable ({exc})") from exc
    changed = _differences(_older(old, record), record)  # a worker's record has no precision: none is compared
    if changed:
        raise RuntimeError(f"{folder}: this worker's search differs from the chief's in {changed}; start every "
                           "process with the same profile and parameters")


def quietly(fn, *args, **kwargs):
    """Runs ``fn`` without the warnings every trial would repeat in the report.

    TensorFlow's retracing notice (each trial builds a new model), and Keras' note that a Hyperband
    continuation loads weights without the predecessor's optimizer state (KerasTuner saves weights only).
    """
    import warnings

    import tensorflow as tf

    level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return fn(*args, **kwargs)
    finally:
        tf.get_logger().setLevel(level)


def make_tuner(kind: str, hypermodel: FERHyperModel, folder, *, settings: Mapping, seed: int, label: str = "",
               stop_after: int | None = None):
    """The KerasTuner tuner of ``kind`` whose state lives in ``folder`` (reloaded when it is there)."""
    folder = Path(folder)
    cls = _CLASSES[kind]
    extra = {k: v for k, v in settings.items() if v is not None}
    objective = kt.Objective(OBJECTIVE, "max")
    where = dict(directory=str(folder.parent), project_name=folder.name, overwrite=False)
    if kind == "grid":
        oracle = ResumableGridOracle(objective=objective, seed=int(seed), **extra)
        tuner = cls(oracle=oracle, hypermodel=hypermodel, **where)
    else:
        tuner = cls(hypermodel=hypermodel, objective=objective, seed=int(seed), **extra, **where)
    tuner.suite_seed, tuner.suite_label, tuner.stop_after = int(seed), label or kind, stop_after
    return tuner


def trials_table(tuner, kind: str, space: Mapping) -> pd.DataFrame:
    """One row per trial: trial id, tuner, every hyperparameter, scores, epochs run, seconds, status."""
    rows = []
    for tid, t in sorted(tuner.oracle.trials.items()):
        values = t.hyperparameters.values
        m = t.metrics

        def get(name):
            return float(m.get_last_value(name)) if m.exists(name) else float("nan")

        row = {"trial": tid, "tuner": kind, **{k: values.get(k) for k in space}}
        if kind == "hyperband":
            row.update({"epochs": values.get("tuner/epochs"), "initial_epoch": values.get("tuner/initial_epoch"),
                        "bracket": values.get("tuner/bracket"), "round": values.get("tuner/round")})
        row.update({OBJECTIVE: get(OBJECTIVE), "final_val_accuracy": get("final_val_accuracy"),
                    "epochs_run": get("epochs_run"), "wall_seconds": get("trial_seconds"), "status": str(t.status)})
        rows.append(row)
    return pd.DataFrame(rows)


def best_row(table: pd.DataFrame):
    """The best completed trial's row (ties: the earliest trial), or None when no trial completed."""
    done = table[(table.status == "COMPLETED") & table[OBJECTIVE].notna()] if len(table) else table
    return done.sort_values([OBJECTIVE, "trial"], ascending=[False, True]).iloc[0] if len(done) else None


def best_values(table: pd.DataFrame, space: Mapping) -> dict:
    """The hyperparameter values of the best completed trial (ties: the earliest trial)."""
    best = best_row(table)
    if best is None:
        raise ValueError("no completed trial to take a best configuration from")
    out = {}
    for k in space:
        v = best[k]
        out[k] = v.item() if hasattr(v, "item") else v
    return out
