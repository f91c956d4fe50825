"""Notebook 05's recipes: KerasTuner searches per model and strategy, their cost, the best configuration,
default vs best on the test splits, and Study C's learning-rate table.

Validation comes from the training split; the searches never read a test split. Test splits are
evaluated once per model, for the default and the best configuration only (through
:func:`fer_utils.experiments.running.run_model`, so both are ordinary run folders that notebook 06 reads).
``best_config.json`` holds each model's best configuration as a full training config; notebooks 03/04
take it with ``tuned_from="05"`` (:func:`apply_tuned`).

Every search runs the same way alone or distributed (:mod:`fer_utils.tune.distributed`): the chief (or a
single process) checks and prepares the search folder, workers wait for it and train trials.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils import progress, runs
from fer_utils.tune import distributed as dist
from fer_utils.tune import space as S

BEST_CONFIG_FILE = "best_config.json"
STUDY_C_DIR = "study_c_lr"
#: Study C's Table 2 settings in :data:`fer_utils.tune.STUDY_C_LR_SPACE` -> the published setting names.
STUDY_C_SETTINGS = {"0.01": "learning rate 0.01", "0.001": "learning rate 0.001", "0.0001": "learning rate 0.0001",
                    "1e-05": "learning rate 0.00001", "step": "step schedule"}


def search_order(models, tuners, study_c_datasets=()) -> list:
    """Every search of notebook 05 in the order it runs (its position is its oracle port offset)."""
    return [("fer2013", m, t) for m in models for t in tuners] + [(d, "study_c", "grid") for d in study_c_datasets]


def describe(space: dict, default_config: dict, tuners, tuner_settings: dict | None = None) -> pd.DataFrame:
    """The search space and what each strategy will do with it (checked before any training)."""
    from fer_utils.tune.search import check_tuner, epoch_policy, tuned_space

    space = S.check_space(space)
    S.check_default(space, default_config)
    rows = [{"hyperparameter": k, "values": ", ".join(map(str, S.choices(space, k))), "default": default_config[k]}
            for k in space]
    from IPython.display import display

    print(f"Search space: {S.grid_size(space)} configurations")
    display(pd.DataFrame(rows).set_index("hyperparameter"))
    plan = []
    for kind in tuners:
        settings = check_tuner(kind, (tuner_settings or {}).get(kind), space)
        size = S.grid_size(tuned_space(kind, space))
        trials = ("set by its brackets" if kind == "hyperband"
                  else min(settings["max_trials"] or size, size) if kind == "grid" else settings["max_trials"])
        plan.append({"tuner": kind, "trials": trials, "settings": json.dumps(settings),
                     "epochs": epoch_policy(kind, settings)})
    return pd.DataFrame(plan).set_index("tuner")


def write_trials(run_dir, outcomes: dict) -> pd.DataFrame:
    """Every trial of every search as one table, written to the run folder's ``trials.csv``."""
    from fer_utils.tune.search import TRIALS_FILE

    table = all_trials(outcomes)
    table.to_csv(Path(run_dir) / TRIALS_FILE, index=False)
    return table


def run_search(ds: D.FERDataset, folder, *, recipe, kind: str, space: dict, settings: dict | None = None,
               position: int = 0, overwrite: bool = False, stop_after: int | None = None, label: str = "") -> dict:
    """One KerasTuner search in ``folder``; resumes an interrupted one, refuses another search's state.

    Returns:
        ``{"kind", "folder", "trials" (DataFrame; empty in a worker), "space", "settings", "seconds", "status",
        "trained_here"}``; ``status`` is ``new``, ``resume``, ``stopped`` (``stop_after`` reached) or ``worker``;
        ``trained_here`` counts the trials this process trained.
    """
    from fer_utils.tune import search as T

    space = S.check_space(space)
    settings = T.check_tuner(kind, settings, space)
    tuned = T.tuned_space(kind, space)
    folder = Path(folder)
    role = dist.role()
    port = dist.use_port(position)
    record = T.fingerprint(kind, settings, tuned, recipe, ds.checksum, distributed=role != "single")
    if role == "worker":
        dist.wait_for_chief(folder)
        T.check_same_search(folder, record)
        status = "worker"
    else:
        status = T.prepare_search_dir(folder, record, overwrite)
        if role == "chief":
            dist.mark_ready(folder, port)
        done = len(list(folder.glob("trial_*")))
        progress.report(f"{label or kind}: " + (f"resuming, {done} trial(s) on record" if status == "resume"
                                                  else "new search") + f" in {folder}")
    tuner = _tuner(T, kind, recipe, ds, tuned, settings, folder, label, stop_after)
    t0 = time.perf_counter()
    try:
        T.quietly(tuner.search, verbose=0)
    except T.StopSearch:
        status = "stopped"
    seconds = time.perf_counter() - t0
    if role == "worker":  # the trials live in the chief's oracle; this worker knows only what it trained
        table = pd.DataFrame()
    else:
        table = T.trials_table(tuner, kind, tuned)
        table.to_csv(folder / T.TRIALS_FILE, index=False)
    return {"kind": kind, "folder": folder, "trials": table, "space": tuned, "settings": settings,
            "seconds": round(seconds, 1), "status": status, "trained_here": int(tuner._trials_this_call)}


def _tuner(T, kind, recipe, ds, tuned, settings, folder, label, stop_after=None):
    import keras

    keras.backend.clear_session()
    hypermodel = T.FERHyperModel(recipe, ds, tuned, max_epochs=settings.get("max_epochs") if kind == "hyperband"
                                 else None)
    return T.make_tuner(kind, hypermodel, folder, settings=settings, seed=recipe.seed, label=label,
                        stop_after=stop_after)


def search_models(ds: D.FERDataset, run_dir, *, models, tuners, space: dict, tuner_settings: dict | None = None,
                  train_config: dict, train_configs: dict | None = None, model_kwargs: dict | None = None,
                  input_size: int = 48, input_sizes: dict | None = None, normalization: str = "auto",
                  augment: dict | None = None, seed: int = 0, overwrite: bool = False) -> dict:
    """Every strategy in ``tuners`` over ``space`` for every model; ``{model: {tuner: outcome}}``.

    Each search lives in ``run_dir/<model>/<tuner>/`` with its ``trials.csv``.
    """
    from fer_utils.tune.search import Recipe

    out = {}
    order = search_order(models, tuners)
    for model in models:
        recipe = Recipe(model=model, train_config={**train_config, **((train_configs or {}).get(model) or {})},
                        model_kwargs=dict((model_kwargs or {}).get(model) or {}),
                        input_size=int((input_sizes or {}).get(model, input_size)), normalization=normalization,
                        augment=dict(augment or {}), seed=int(seed))
        out[model] = {}
        for kind in tuners:
            progress.report(f"search {model} / {kind}")
            out[model][kind] = run_search(ds, Path(run_dir) / model / kind, recipe=recipe, kind=kind, space=space,
                                          settings=(tuner_settings or {}).get(kind), label=f"{model}/{kind}",
                                          position=order.index(("fer2013", model, kind)), overwrite=overwrite)
    return out


def all_trials(outcomes: dict) -> pd.DataFrame:
    """Every trial of every search, one table (``trials.csv`` of the notebook's run folder)."""
    frames = [o["trials"].assign(model=model) for model, by_kind in outcomes.items() for o in by_kind.values()]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return df[["model"] + [c for c in df.columns if c != "model"]] if len(df) else df


def cost_table(outcomes: dict) -> pd.DataFrame:
    """Each strategy's cost (trials, epochs, wall time) and the best validation accuracy it found, per model."""
    from fer_utils.tune.search import OBJECTIVE, best_values, epoch_policy

    rows = []
    for model, by_kind in outcomes.items():
        for kind, o in by_kind.items():
            t = o["trials"]
            done = t[t.status == "COMPLETED"]
            best = done[OBJECTIVE].max() if len(done) else np.nan
            rows.append({"model": model, "tuner": kind, "trials": len(t), "completed": len(done),
                         "epochs": float(t.epochs_run.sum()), "wall_seconds": round(float(t.wall_seconds.sum()), 1),
                         "best_val_accuracy": best,
                         "best_config": json.dumps(best_values(t, o["space"])) if len(done) else "",
                         "epochs policy": epoch_policy(kind, o["settings"])})
    df = pd.DataFrame(rows)
    for model in df.model.unique() if len(df) else []:
        ref = df[(df.model == model) & (df.tuner == "grid")]
        if len(ref):
            mask = df.model == model
            df.loc[mask, "cost vs grid (epochs)"] = df.loc[mask, "epochs"] / float(ref.epochs.iloc[0])
            df.loc[mask, "gap to grid best"] = df.loc[mask, "best_val_accuracy"] - float(ref.best_val_accuracy.iloc[0])
    return df


def best_per_model(outcomes: dict) -> dict:
    """``{model: (tuner, trial row)}``: the best completed trial over every strategy (ties: grid first)."""
    from fer_utils.tune.search import OBJECTIVE, best_row

    out = {}
    for model, by_kind in outcomes.items():
        best = None
        for kind, o in by_kind.items():
            row = best_row(o["trials"])
            if row is not None and (best is None or row[OBJECTIVE] > best[1][OBJECTIVE]):
                best = (kind, row)
        if best is not None:
            out[model] = best
    return out


def write_best_config(run_dir, outcomes: dict, *, train_config: dict, train_configs: dict | None = None,
                      model_kwargs: dict | None = None, space: dict, data_checksum: str,
                      default_config: dict | None = None) -> dict:
    """``best_config.json``: per model the best configuration as a full training config (and builder arguments),
    and under ``"default"`` the default configuration the same way (notebook 06 compares the two)."""
    from fer_utils.tune.search import OBJECTIVE

    payload = {}
    for model, (kind, row) in best_per_model(outcomes).items():
        tuned = outcomes[model][kind]["space"]
        values = {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in tuned}
        base = {**train_config, **((train_configs or {}).get(model) or {})}
        base_default = dict(base)
        if kind == "hyperband":
            # Hyperband trained this trial to its own epoch count: that is the configuration's length.
            base["epochs"] = int(row["epochs"])
        cfg, kwargs = S.apply(tuned, values, base, (model_kwargs or {}).get(model))
        payload[model] = {"train_config": cfg.to_dict(), "model_kwargs": kwargs, "hyperparameters": values,
                          "val_accuracy": float(row[OBJECTIVE]), "tuner": kind, "trial": str(row["trial"]),
                          "data_checksum": data_checksum}
        if default_config:
            d_cfg, d_kwargs = S.apply(space, S.check_default(space, default_config), base_default,
                                      (model_kwargs or {}).get(model))
            payload[model]["default"] = {"train_config": d_cfg.to_dict(), "model_kwargs": d_kwargs,
                                         "hyperparameters": dict(default_config)}
    runs.write_json(Path(run_dir) / BEST_CONFIG_FILE, payload)
    return payload


def evaluate_default_and_best(ds: D.FERDataset, run_dir, best: dict, *, default_config: dict, space: dict,
                              train_config: dict, train_configs: dict | None = None, model_kwargs: dict | None = None,
                              input_size: int = 48, input_sizes: dict | None = None, eval_splits=(), **kwargs):
    """Trains the default and the best configuration of each model once and evaluates the test splits.

    Run folders ``run_dir/<model>/default`` and ``run_dir/<model>/best`` (one folder when they are the same).
    """
    from fer_utils.experiments.running import run_model

    default_values = S.check_default(space, default_config)
    rows = []
    for model, entry in best.items():
        base = {**train_config, **((train_configs or {}).get(model) or {})}
        if entry.get("default"):
            d_cfg, d_kwargs = entry["default"]["train_config"], entry["default"]["model_kwargs"]
        else:
            cfg, d_kwargs = S.apply(space, default_values, base, (model_kwargs or {}).get(model))
            d_cfg = cfg.to_dict()
        configs = {"default": (d_cfg, d_kwargs), "best": (entry["train_config"], entry["model_kwargs"])}
        same = configs["default"] == configs["best"]
        for which, (cfg, kw) in configs.items():
            folder = Path(run_dir) / model / ("default" if same else which)
            r = run_model(model, ds, folder, train_config=cfg, model_kwargs=kw, eval_splits=eval_splits,
                          input_size=int((input_sizes or {}).get(model, input_size)), label=f"{model} {which}",
                          **kwargs)
            rows.append({"model": model, "configuration": which, "same as default": same,
                         "search val accuracy": entry["val_accuracy"] if which == "best" else np.nan,
                         **{k: v for k, v in r.items() if k != "model"}})
    return pd.DataFrame(rows).set_index(["model", "configuration"])


def default_vs_best(evaluated: pd.DataFrame, report_split: str) -> pd.DataFrame:
    """Default and best side by side per model: validation (search, retrained) and every test split."""
    cols = ["search val accuracy", "best_val_accuracy"] + [c for c in evaluated.columns
                                                         if c.endswith(("_accuracy", "_macro_f1"))
                                                         and c not in ("best_val_accuracy",)]
    table = evaluated[[c for c in dict.fromkeys(cols) if c in evaluated.columns]].rename(
        columns={"best_val_accuracy": "retrained val accuracy"})
    print(f"Test splits evaluated once per configuration; {report_split} is the report split.")
    return table


def study_c_lr_searches(datasets: dict, run_dir, *, model: str, space: dict, positions: dict, seed: int = 0,
                        overwrite: bool = False, model_kwargs: dict | None = None, **recipes) -> dict:
    """Study C's learning-rate table as a grid search per dataset: ``{dataset: outcome}``.

    Args:
        datasets: ``{"ferplus": prepared FER+, "ckplus": CK+ fold with Training/Validation/Test}``.
        positions: each dataset's position in :func:`search_order`.
        recipes: ``<dataset>_train_config`` and ``augment`` for the recipe.
    """
    from fer_utils.tune.search import Recipe

    out = {}
    for name, ds in datasets.items():
        recipe = Recipe(model=model, train_config=dict(recipes[f"{name}_train_config"]),
                        model_kwargs=dict(model_kwargs or {}), augment=dict(recipes.get("augment") or {}),
                        normalization="auto", seed=int(seed),
                        target="majority")
        out[name] = run_search(ds, Path(run_dir) / STUDY_C_DIR / name, recipe=recipe, kind="grid", space=space,
                               position=positions[name], overwrite=overwrite, label=f"Study C lr / {name}")
    return out


def study_c_lr_table(outcomes: dict) -> pd.DataFrame:
    """Our validation accuracy per learning-rate setting beside Study C's Table 2 (test accuracies)."""
    from fer_utils.experiments.published import published_table
    from fer_utils.tune.search import OBJECTIVE

    pub = published_table(study="C")
    rows = []
    for setting, published_name in STUDY_C_SETTINGS.items():
        row = {"setting": setting}
        for name, o in outcomes.items():
            t = o["trials"]
            hit = t[t[list(o["space"])[0]].astype(str) == setting]
            row[f"{name} ours (validation)"] = float(hit[OBJECTIVE].iloc[0]) if len(hit) else np.nan
            ref = pub[(pub.dataset == name) & (pub.setting == published_name)]
            row[f"{name} Study C (test)"] = float(ref.accuracy.iloc[0]) if len(ref) else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def study_c_datasets(names, *, data_dir, dataset: str, synthetic_per_class: int, seed: int, val_fraction: float,
                     ferplus_max_per_class: int = 0, ckplus_max_per_class: int = 0, ckplus_k: int = 10) -> dict:
    """FER+ (Training/Validation) and CK+ fold 0 (subject-independent) prepared for the learning-rate searches."""
    from fer_utils.experiments.running import prepare

    out = {}
    for name in names:
        ds = D.load_optional(name, data_dir, stand_in=True, synthetic_per_class=synthetic_per_class, seed=seed,
                             force_synthetic=dataset == "synthetic")
        if name == "ckplus":
            ds = D.fold_dataset(D.limit_per_class(ds, ckplus_max_per_class, seed), 0, k=ckplus_k, seed=seed,
                                val_fraction=val_fraction)
        else:
            ds = prepare(ds, max_per_class=ferplus_max_per_class, val_fraction=val_fraction, seed=seed)
        out[name] = ds
    return out


def best_config_path(tuned_from: str, run_dir, reports_dir="", required: bool = True):
    """The ``best_config.json`` that ``tuned_from`` names: ``"05"`` (notebook 05 of this profile), a folder or a file.

    Returns None for ``""``, or when the file is missing and not ``required`` (a message says so).

    Raises:
        FileNotFoundError: the file is missing and ``required`` (the message says where it was looked for).
    """
    if not tuned_from:
        return None
    path = Path(tuned_from)
    if str(tuned_from).strip() == "05":
        root = Path(reports_dir) if reports_dir else Path(run_dir).parent
        matches = sorted(root.glob(f"05_*/{BEST_CONFIG_FILE}"))
        missing = f"tuned_from='05': no {BEST_CONFIG_FILE} under {root}/05_*/; run notebook 05 of this profile first"
        path = matches[0] if matches else None
    else:
        path = path / BEST_CONFIG_FILE if path.is_dir() else path
        missing = f"tuned_from={tuned_from!r}: {path} does not exist"
    if path is None or not path.is_file():
        if required:
            raise FileNotFoundError(missing + ", or give the file's path")
        print(missing + "; the comparisons that need it are left out")
        return None
    return path


def apply_tuned(tuned_from: str, models, train_configs: dict, model_kwargs: dict, run_dir, reports_dir="") -> tuple:
    """Notebooks 03/04: take notebook 05's best configurations (``"05"`` or a path to ``best_config.json``).

    Returns ``(train_configs, model_kwargs)`` with every tuned model's full training config and builder
    arguments; models the file does not hold keep theirs (printed).

    Raises:
        FileNotFoundError: the file does not exist (the message says where it was looked for).
    """
    if not tuned_from:
        return dict(train_configs or {}), dict(model_kwargs or {})
    path = best_config_path(tuned_from, run_dir, reports_dir)
    best = json.loads(path.read_text())
    configs, kwargs = dict(train_configs or {}), dict(model_kwargs or {})
    for m in models:
        if m in best:
            configs[m] = dict(best[m]["train_config"])
            kwargs[m] = {**(kwargs.get(m) or {}), **best[m].get("model_kwargs", {})}
    untuned = [m for m in models if m not in best]
    print(f"tuned configurations from {path} for {[m for m in models if m in best]}"
          + (f"; not tuned there, kept as given: {untuned}" if untuned else ""))
    return configs, kwargs


def work(params: dict) -> None:
    """A distributed worker: the searches of notebook 05 with ``params``, in the notebook's order."""
    from fer_utils.experiments.balancing import with_balanced
    from fer_utils.experiments.running import prepare

    run = Path(params["run_dir"])
    ds = D.load_dataset(params["dataset"], params["data_dir"], synthetic_per_class=params["synthetic_per_class"],
                        seed=params["seed"])
    ds = prepare(ds, max_per_class=params["max_per_class"], val_fraction=params["val_fraction"], seed=params["seed"])
    ds = with_balanced(ds, params["balanced_train"], run, params["reports_dir"])
    search_models(ds, run, **model_search_args(params))
    if params["study_c_datasets"]:
        datasets = study_c_datasets(params["study_c_datasets"], **study_c_data_args(params))
        study_c_lr_searches(datasets, run, **study_c_search_args(params))


def model_search_args(p: dict) -> dict:
    """:func:`search_models`' arguments from notebook 05's parameters (the notebook and workers share them)."""
    keys = ("models", "tuners", "space", "tuner_settings", "train_config", "train_configs", "model_kwargs",
            "input_size", "input_sizes", "normalization", "augment", "seed", "overwrite")
    return {k: p[k] for k in keys}


def study_c_data_args(p: dict) -> dict:
    """:func:`study_c_datasets`' arguments from notebook 05's parameters."""
    keys = ("data_dir", "dataset", "synthetic_per_class", "seed", "val_fraction", "ferplus_max_per_class",
            "ckplus_max_per_class", "ckplus_k")
    return {k: p[k] for k in keys}


def study_c_search_args(p: dict) -> dict:
    """:func:`study_c_lr_searches`' arguments from notebook 05's parameters."""
    order = search_order(p["models"], p["tuners"], p["study_c_datasets"])
    return {"model": p["study_c_model"], "model_kwargs": p["study_c_model_kwargs"], "space": p["study_c_space"],
            "seed": p["seed"], "overwrite": p["overwrite"],
            "positions": {d: order.index((d, "study_c", "grid")) for d in p["study_c_datasets"]},
            "augment": p["study_c_augment"], "ferplus_train_config": p["ferplus_train_config"],
            "ckplus_train_config": p["ckplus_train_config"]}


def headline(outcomes: dict, evaluated: pd.DataFrame, report_split: str, study_c: dict | None = None) -> dict:
    """Index-page numbers: per search its trials and best validation accuracy; default vs best on the test split."""
    out = {}
    for model, by_kind in outcomes.items():
        for kind, o in by_kind.items():
            t = o["trials"]
            out[f"{model} {kind} trials"] = int(len(t))
            out[f"{model} {kind} best val acc"] = round(float(t[t.status == "COMPLETED"].val_accuracy.max()), 4)
    col = f"{report_split}_accuracy"
    for (model, which), r in evaluated.iterrows():
        out[f"{model} {which} {report_split} acc"] = round(float(r[col]), 4)
    for name, o in (study_c or {}).items():
        t = o["trials"]
        out[f"Study C lr {name} trials"] = int(len(t))
        out[f"Study C lr {name} best val acc"] = round(float(t[t.status == "COMPLETED"].val_accuracy.max()), 4)
    return out
