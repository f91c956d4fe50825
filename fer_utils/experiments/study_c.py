"""Study C: the multi-scale attention residual network on FER+ and CK+, and its SE x BN ablation table.

FER+ runs are named settings (:func:`check_runs`): each a registry model, training-configuration changes over the
notebook's FER+ configuration and a target (the majority label, or the annotators' vote distribution), trained once
in ``ferplus/<name>`` on one data split (same seed, same validation carve-out by near-duplicate families, same test
images), so a table of settings (loss x schedule, Table 2's learning rates, Table 3's SE x BN) compares runs that
differ in what the table names and nothing else: :func:`settings_tables`, McNemar against each table's first run.
Without named runs, each of ``study_c_models`` trains at the notebook's configuration (a run per model, named after
it). CK+: subject-independent folds (:func:`run_study_c_ckplus`), per fold and pooled (:func:`ckplus_folds`,
:func:`pooled_confusion`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils.experiments.published import published_table
from fer_utils.experiments.results import empty_results
from fer_utils import runs as R
from fer_utils.experiments.running import TARGETS, check_model_names, prepare, run_cv, run_model


class FerplusRun(NamedTuple):
    """One planned FER+ run: its registry model, its full training configuration and its target."""

    model: str
    train_config: dict
    target: str = "majority"


def check_runs(runs_: dict, model_names, train_config: dict, tables: dict | None = None) -> dict:
    """The FER+ runs as ``{name: FerplusRun(model, train_config, target)}``, every one checked before anything trains.

    ``runs_``: ``{name: changes}``; ``changes`` may name a registry ``model`` (default: the run's name, which must
    then be a model), the ``published`` setting of Study C it reproduces (:func:`published_accuracies`) and the
    ``target`` it trains on (``majority``, the default: one-hot majority labels; ``distribution``: the FER+ vote
    distribution, as Barsoum et al. 2016 train on it; accuracy is always scored against the majority label), the
    rest are :class:`fer_utils.train.TrainConfig` keys merged over ``train_config``. Empty: one run per name of
    ``model_names`` at ``train_config``. ``tables``: ``{title: [run names]}``, each naming runs that exist.

    Raises:
        ValueError: naming the run and what is wrong (an unknown model or key, a bad value, a published setting
            Study C does not report for that model on FER+, an unknown target, a table naming an unknown run or fewer
            than two).
    """
    from fer_utils import models
    from fer_utils.train.config import TrainConfig

    runs_ = dict(runs_ or {}) or {name: {} for name in model_names}
    known = set(models.available_models())
    out = {}
    for name, changes in runs_.items():
        if not isinstance(changes, dict):
            raise ValueError(f"ferplus_runs[{name!r}]: expected a mapping of changes, got {changes!r}")
        changes = dict(changes)
        model = changes.pop("model", name)
        if model not in known:
            raise ValueError(f"ferplus_runs[{name!r}]: model {model!r} is not a registry model (name one with "
                             f"'model:'); known models: {sorted(known)}")
        if "published" in changes:
            _published_accuracy(name, model, changes.pop("published"))
        target = changes.pop("target", "majority")
        if target not in TARGETS:
            raise ValueError(f"ferplus_runs[{name!r}]: target {target!r} is not one of {list(TARGETS)} (majority: "
                             "one-hot majority labels; distribution: the FER+ vote distribution)")
        cfg = {**train_config, **changes}
        try:
            TrainConfig.from_dict(cfg)
        except (TypeError, ValueError) as err:
            raise ValueError(f"ferplus_runs[{name!r}]: {err}") from None
        out[name] = FerplusRun(model, cfg, target)
    for title, names in (tables or {}).items():
        unknown = [n for n in names if n not in out]
        if unknown or len(names) < 2:
            raise ValueError(f"ferplus_tables[{title!r}]: {names!r} must name two or more runs of ferplus_runs "
                             f"({sorted(out)}); unknown: {unknown}")
    return out


def _published_accuracy(name: str, model: str, setting) -> float:
    pub = published_table(study="C", dataset="ferplus")
    if not isinstance(setting, str):
        raise ValueError(f"ferplus_runs[{name!r}]: published: expected the name of a Study C setting (a string, "
                         f"e.g. 'step schedule'), got {setting!r}")
    rows = pub[(pub.model == model) & (pub.setting == setting)]
    if len(rows) != 1:
        raise ValueError(f"ferplus_runs[{name!r}]: published: {setting!r} is not a setting Study C reports for "
                         f"{model} on FER+; it reports {sorted(pub[pub.model == model].setting)} "
                         f"(fer_utils/published.json)")
    return float(rows.accuracy.iloc[0])


def published_accuracies(runs_: dict) -> dict:
    """``{run name: Study C's published FER+ accuracy}`` for the runs of ``runs_`` (``ferplus_runs``) that name the
    setting they reproduce (``published: <setting>``, a row of ``fer_utils/published.json``)."""
    return {name: _published_accuracy(name, changes.get("model", name), changes["published"])
            for name, changes in (runs_ or {}).items() if isinstance(changes, dict) and "published" in changes}


def selected_runs(planned: dict, only=()) -> dict:
    """The runs of ``planned`` (:func:`check_runs`) named in ``only`` (empty: all of them), in ``planned``'s order.

    Raises:
        ValueError: ``only`` names a run that is not planned.
    """
    unknown = [n for n in only or () if n not in planned]
    if unknown:
        raise ValueError(f"ferplus_only: {unknown} are not FER+ runs of this notebook; its runs are {list(planned)}")
    return {n: v for n, v in planned.items() if not only or n in only}


def run_study_c_ferplus(model_names, ds: D.FERDataset, run_dir, *, seed: int, max_per_class: int = 0,
                        val_fraction: float = 0.1, train_config: dict, runs: dict | None = None,
                        tables: dict | None = None, only=(), **kwargs) -> pd.DataFrame:
    """Study C's networks on FER+ (or its stand-in): train on Training, select on Validation, test on PrivateTest.

    ``runs`` (named settings, :func:`check_runs`) train in ``run_dir/<name>``; without them, each of
    ``model_names`` at ``train_config``; ``only``: the names of those runs to train now (empty: all; a session-sized
    part of a long notebook, the others train in another run of the same folder). FER+'s PublicTest
    (``FER2013Valid``) is reported too but never used for selection. Returns one row per run (index: its name;
    ``arch``: its model).
    """
    planned = selected_runs(check_runs(runs, model_names, train_config, tables), only)
    voted = [name for name, run in planned.items() if run.target == "distribution"]
    if voted and ds.soft_labels is None:
        raise D.DataError(f"{ds.name}: the FER+ runs {voted} train on the vote distribution (target: distribution), "
                          "but this dataset has no votes (a stand-in or another dataset); drop those runs or load FER+")
    prepared = prepare(ds, max_per_class=max_per_class, val_fraction=val_fraction, seed=seed)
    rows = []
    for i, (name, run) in enumerate(planned.items(), start=1):
        print(f"=== FER+ {name} ({i}/{len(planned)}: {run.model}) ===", flush=True)
        rows.append({**run_model(run.model, prepared, Path(run_dir) / name, train_config=run.train_config, seed=seed,
                                 target=run.target, eval_splits=("PublicTest", "PrivateTest"), label=f"FER+ {name}",
                                 **kwargs),
                     "model": name, "arch": run.model})
    return pd.DataFrame(rows).set_index("model")


def settings_tables(tables: dict, ds: D.FERDataset, run_dir, *, runs: dict, train_config: dict, model_names=(),
                    max_per_class: int = 0, val_fraction: float = 0.1, seed: int = 0,
                    split: str = "PrivateTest") -> dict:
    """``{title: table}`` for ``tables`` (``{title: [run names]}``): the runs of ``run_dir`` (those of
    :func:`run_study_c_ferplus` with the same arguments) side by side, what each changes against the table's first
    run, and McNemar's test against it on ``split`` (:func:`fer_utils.experiments.recipe.compare_runs`), and Study
    C's published accuracy for the runs that name the setting they reproduce (``published``; the study's budget is
    200 epochs, the runs' own is the ``epochs`` column). A table some of whose runs have not finished in ``run_dir``
    yet (trained by this run or an earlier one) is left out, and a line says which runs it waits for."""
    from fer_utils.experiments.recipe import compare_runs

    planned = check_runs(runs, model_names, train_config, tables)
    pub = published_accuracies(runs)
    ready = {}
    for title, names in tables.items():
        waiting = [n for n in names if not (Path(run_dir) / n / R.PREDICTIONS_FILE).exists()]
        if waiting:
            print(f"{title}: waits for the FER+ runs {waiting} (not finished in {run_dir})")
        else:
            ready[title] = names
    prepared = prepare(ds, max_per_class=max_per_class, val_fraction=val_fraction, seed=seed) if ready else None
    out = {}
    for title, names in ready.items():
        changes = {n: _describe(planned[n], planned[names[0]]) for n in names}
        table = compare_runs({n: Path(run_dir) / n for n in names}, prepared, split=split, reference=names[0],
                             changes=changes)
        if any(n in pub for n in names):
            table["Study C (published, 200 epochs)"] = [pub.get(n, np.nan) for n in table.index]
        out[title] = table
    return out


def _describe(run: FerplusRun, ref: FerplusRun) -> str:
    parts = [f"model {run.model}"] if run.model != ref.model else []
    parts += [f"{k} {ref.train_config.get(k)!r} -> {v!r}" for k, v in run.train_config.items()
              if ref.train_config.get(k) != v]
    parts += [f"target {ref.target} -> {run.target}"] if run.target != ref.target else []
    return "; ".join(parts) or "(reference)"


def run_study_c_ckplus(model_names, ds: D.FERDataset, run_dir, *, seed: int, k: int = 10, folds=(0,),
                       val_fraction: float = 0.1, **kwargs) -> pd.DataFrame:
    """Study C's networks on CK+ with subject-independent folds; mean (and std) accuracy over ``folds``."""
    check_model_names(model_names)
    rows = [run_cv(name, ds, Path(run_dir) / name, k=k, folds=folds, seed=seed, val_fraction=val_fraction, **kwargs)
            for name in model_names]
    return pd.DataFrame(rows).set_index("model")


def ablation_table(ferplus: pd.DataFrame, ckplus: pd.DataFrame) -> pd.DataFrame:
    """Study C's Table 3 layout: SE x BN (registry flags), our FER+ (PrivateTest) and CK+ (fold mean) vs the paper."""
    from fer_utils import models

    pub = published_table(study="C")
    rows = []
    names = sorted((n for n in models.available_models() if models.model_info(n)["ablation"]),
                   key=lambda n: tuple(models.model_info(n)["ablation"].values()))
    for model in names:
        if model not in ferplus.index and model not in ckplus.index:
            continue
        flags = models.model_info(model)["ablation"]
        ref = {d: pub[(pub.model == model) & (pub.dataset == d)].accuracy for d in ("ferplus", "ckplus")}
        rows.append({"model": model, "SE": flags["se"], "BN": flags["bn"],
                     "FER+ ours": ferplus["PrivateTest_accuracy"].get(model, np.nan)
                     if "PrivateTest_accuracy" in ferplus else np.nan,
                     "FER+ paper": float(ref["ferplus"].iloc[0]) if len(ref["ferplus"]) else np.nan,
                     "CK+ ours": ckplus["Test_accuracy"].get(model, np.nan) if "Test_accuracy" in ckplus else np.nan,
                     "CK+ paper": float(ref["ckplus"].iloc[0]) if len(ref["ckplus"]) else np.nan})
    return pd.DataFrame(rows).set_index("model") if rows else empty_results()


def ckplus_folds(run_dir, model_names) -> pd.DataFrame:
    """Every finished CK+ fold run of ``model_names`` (``run_dir/<model>/fold<i>``): test images, accuracy,
    macro-F1, best validation accuracy, epochs and train minutes; one row per fold."""
    rows = []
    for model in model_names:
        for folder in sorted(Path(run_dir, model).glob("fold*"), key=lambda p: int(p.name[4:] or -1)):
            if not (folder / R.METRICS_FILE).exists():
                continue
            head = R.read_metrics(folder)["headline"]
            p = R.load_predictions(folder)
            rows.append({"model": model, "fold": int(folder.name[4:]), "test images": int(len(p["y_true"])),
                         "accuracy": head.get("Test_accuracy"), "macro_f1": head.get("Test_macro_f1"),
                         "best val acc": head.get("best_val_accuracy"), "epochs": head.get("epochs_run"),
                         "train minutes": round(float(head.get("train_seconds", np.nan)) / 60, 2)})
    return pd.DataFrame(rows)


def pooled_confusion(run_dir, model: str) -> np.ndarray:
    """The confusion matrix (rows: true class) of ``model``'s CK+ folds pooled: every image is tested once."""
    folds = sorted(Path(run_dir, model).glob("fold*/" + R.PREDICTIONS_FILE))
    if not folds:
        raise FileNotFoundError(f"{Path(run_dir, model)}: no fold<i>/{R.PREDICTIONS_FILE}; run the CK+ folds first")
    preds = [R.load_predictions(f.parent) for f in folds]
    k = preds[0]["y_prob"].shape[1]
    matrix = np.zeros((k, k), dtype=np.int64)
    for p in preds:
        np.add.at(matrix, (np.asarray(p["y_true"]), np.asarray(p["y_pred"])), 1)
    return matrix


def study_c_headline(ferplus: pd.DataFrame, ckplus: pd.DataFrame, ferplus_run: str = "msca_resnet") -> dict:
    """Index-page numbers for Study C: the FER+ run ``ferplus_run`` on PrivateTest and the CK+ fold mean."""
    out = {}
    if ferplus_run in ferplus.index:
        out[f"{ferplus_run} FER+ PrivateTest acc"] = round(float(ferplus.loc[ferplus_run, "PrivateTest_accuracy"]),
                                                          4)
    if "msca_resnet" in ckplus.index:
        out["msca_resnet CK+ fold acc"] = round(float(ckplus.loc["msca_resnet", "Test_accuracy"]), 4)
    return out
