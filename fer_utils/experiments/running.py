"""Running models: one registry model trained and evaluated end to end, a table of them, CK+ folds.

The recipe the training notebooks repeat for every model: carve validation from training, build
the input pipelines, build and compile the model from the registry and the training config, fit,
then evaluate every test split through the run's own predictor (:func:`fer_utils.predictor.load_predictor`), so
the numbers in ``metrics.json`` come from exactly the preprocessing a user's faces get. The run folder's files
belong to :mod:`fer_utils.runs`; the input pipelines to :func:`fer_utils.pipeline.input_pipelines`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import artifacts, progress, runs
from fer_utils import data as D
from fer_utils.experiments.results import empty_results
from fer_utils.experiments.seeds import dedup_scores
from fer_utils.pipeline import input_pipelines

TARGETS = ("majority", "distribution")
#: TrainConfig fields that change what a run keeps, not what it trains: left out of the recipe a rerun is compared by
#: (a finished run is reused whatever they say).
NOT_RECIPE = ("keep_last",)
#: Recipe keys that change how a trained model is evaluated, not how it trains: a finished run that differs only
#: in them is evaluated again, not retrained (:func:`_check_earlier_run`).
EVALUATION_KEYS = ("tta", "eval_splits", "crop_fraction")
#: The side of the TTA crops as a fraction of the input's when a run does not say (every run before issue 24's choice).
DEFAULT_CROP = 0.875


def _recipe_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in NOT_RECIPE}


def recipe_train_config(config: dict) -> dict:
    """A training configuration as a run's recipe records it: every TrainConfig field (defaults filled in, JSON
    types), without :data:`NOT_RECIPE`; two configurations train alike when these are equal.

    Raises:
        ValueError, TypeError: not a valid TrainConfig.
    """
    from fer_utils.train import TrainConfig

    return _recipe_config(json.loads(json.dumps(TrainConfig.from_dict(config).to_dict())))


def prepare(ds: D.FERDataset, *, max_per_class: int = 0, val_fraction: float = 0.1, seed: int = 0,
            group: bool = True) -> D.FERDataset:
    """Subsample and add a Validation split carved from Training (``group``: whole near-duplicate families, the
    default; ``False``: row by row, as runs trained before families existed).

    ``max_per_class`` caps each class in each split of a real dataset (0 keeps all; the smoke
    profile's small subsample). The built-in synthetic default is used whole: its size is already
    chosen by ``synthetic_per_class``, and a model needs all of it to learn the synthetic classes.
    """
    if not ds.is_synthetic:
        ds = D.limit_per_class(ds, max_per_class, seed)
    if "Validation" in ds.split_names:
        return ds
    return D.train_val_split(ds, val_fraction, seed, group=group)


def evaluation_splits(ds: D.FERDataset, eval_splits=(), report_split: str = "") -> tuple:
    """The test splits to evaluate and the one to report.

    ``eval_splits`` empty means every test split the dataset has (FER-2013: PublicTest and PrivateTest;
    a Kaggle copy without file-name prefixes: Test); ``report_split`` empty means the last of them.

    Raises:
        DataError: a named split the dataset does not have, before any training.
    """
    tests = [s for s in ds.split_names if s not in ("Training", "Validation")]
    chosen = list(eval_splits) or tests
    missing = [s for s in chosen if s not in tests]
    if missing or not chosen:
        raise D.DataError(f"{ds.name}: eval_splits {missing or chosen} not among its test splits {tests}; "
                          "leave eval_splits empty to evaluate every test split the dataset has")
    report = report_split or chosen[-1]
    if report not in chosen:
        raise D.DataError(f"report_split={report!r} is not evaluated; eval_splits are {chosen}")
    return chosen, report


def _whole_run(run_dir: Path) -> dict:
    """Epochs, best validation accuracy and training time of the whole run, from ``history.csv``.

    Whole-run figures even after interruptions: a resumed run's history holds every epoch with its time.
    """
    rows = runs.history_rows(run_dir)

    def column(key):
        vals = []
        for r in rows:
            try:
                vals.append(float(r[key]))
            except (KeyError, TypeError, ValueError):
                pass
        return [v for v in vals if math.isfinite(v)]

    val = column("val_accuracy")
    return {"epochs_run": len(rows), "best_val_accuracy": max(val) if val else float("nan"),
            "train_seconds": round(sum(float(r["seconds"]) for r in runs.history_rows(run_dir, runs.TIMINGS_FILE)), 1)}


def run_model(model_name: str, ds: D.FERDataset, run_dir, *, train_config: dict, input_size: int = 48,
              normalization: str = "auto", augment: dict | None = None, eval_splits=("PublicTest", "PrivateTest"),
              tta: str | None = "flip", seed: int = 0, model_kwargs: dict | None = None,
              crop_fraction: float = DEFAULT_CROP, target: str = "majority", overwrite: bool = False,
              params: dict | None = None, label: str | None = None, copies: tuple | None = None,
              distillation: dict | None = None) -> dict:
    """Train one registry model on ``ds`` and evaluate it on ``eval_splits``.

    Args:
        model_name: a name from :func:`fer_utils.models.available_models`.
        ds: dataset with ``Training`` and ``Validation`` splits (see :func:`prepare`) and the test splits.
        run_dir: this model's run folder (created).
        train_config: :class:`fer_utils.train.TrainConfig` fields (optimizer, lr, epochs, ...).
        input_size: side of the square model input (48 keeps FER's native size).
        normalization: ``"auto"`` (the registry's default for the model and its weights) or one of
            :data:`fer_utils.pipeline.NORMALIZATIONS`; ``standardize`` uses training statistics.
        augment: augmentation dict for the training pipeline (None: no augmentation).
        eval_splits: splits to evaluate; none of them is ever used for training or checkpoint selection.
        tta: test-time augmentation for evaluation: None (or ``"none"``), ``"flip"``, ``"center_flip"`` or
            ``"ten_crop"`` (:func:`fer_utils.evaluate.tta.resolve_tta`; recorded as None for no TTA).
        crop_fraction: side of the ``ten_crop`` and ``center_flip`` crops as a fraction of the input's, in (0, 1]
            (``benchmarks/tta_crop.py`` chooses it on validation); recorded in the recipe only when not the default
            and ``tta`` takes crops, so a run evaluated with another crop is evaluated again, not trained again.
        seed: drives subsampling, shuffling, augmentation and weight initialisation.
        model_kwargs: extra builder arguments (e.g. ``{"filters": [32, 64, 128, 256]}``).
        target: ``"majority"`` (one-hot) or ``"distribution"`` (``ds.soft_labels``, FER+ votes).
        overwrite: start afresh: an earlier run in ``run_dir`` is moved aside (never deleted). Without it, an
            earlier run with the same recipe is resumed (interrupted), evaluated (trained, not evaluated) or
            reused (finished); one with another recipe is refused.
        params: the notebook parameters, recorded in ``metrics.json``.
        label: the name progress lines give this run (default: the model name).
        copies: ``experiments.seeds.leaks`` of the dataset the test copies are judged against, when already
            known (default: computed from ``ds``; a training set of generated faces only passes the real one's).
        distillation: the teacher record of soft labels made by :func:`fer_utils.experiments.distill.distilled`
            (``target="distribution"``): part of the recipe, so a run with another teacher or alpha is not reused.

    Returns:
        A flat dict of results (model, accuracy and macro-F1 per evaluated split as published and without the test
        images that copy a training image (``<split>_dedup_accuracy``, ``<split>_copies``), epochs, seconds, ...) with
        ``status``: ``trained``, ``resumed``, ``evaluated`` or ``reused``.
    """
    import keras
    import tensorflow as tf

    from fer_utils import models, train
    from fer_utils.evaluate.tta import resolve_tta
    from fer_utils.predictor import load_predictor

    tf.get_logger().setLevel("ERROR")  # tf.function retracing notices would drown the report
    if target not in TARGETS:
        raise ValueError(f"target={target!r}: expected one of {list(TARGETS)}")
    tta = resolve_tta(tta, allow_default=False)
    if not isinstance(crop_fraction, (int, float)) or isinstance(crop_fraction, bool) or not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction={crop_fraction!r}: expected a number in (0, 1], e.g. {DEFAULT_CROP}")
    missing = [s for s in ("Training", "Validation", *eval_splits) if s not in ds.split_names]
    if missing:
        raise D.DataError(f"{ds.name}: split(s) {missing} not present (splits: {ds.split_names}); eval_splits must "
                          "name test splits the dataset has, and Validation comes from prepare()")
    cfg = train.TrainConfig.from_dict(train_config)
    size, channels, normalization, _ = models.resolve_input(model_name, input_size, normalization,
                                                           (model_kwargs or {}).get("weights"))
    run_dir = Path(run_dir)
    label = label or model_name
    recipe = {"model": model_name, "data_checksum": ds.checksum, "train_config": _recipe_config(cfg.to_dict()),
              "input_size": size,
              "normalization": normalization, "augment": augment or {}, "eval_splits": list(eval_splits), "tta": tta,
              "seed": int(seed), "model_kwargs": model_kwargs or {}, "target": target}
    if crop_fraction != DEFAULT_CROP and tta in ("ten_crop", "center_flip"):  # earlier runs: the default
        recipe["crop_fraction"] = float(crop_fraction)  # (the other TTAs take no crop: nothing to evaluate again)
    if distillation:  # what made the soft labels (they are not in the data checksum)
        recipe["distillation"] = dict(distillation)
    state = _check_earlier_run(run_dir, recipe, overwrite)
    if state == "finished":
        progress.report(f"{label}: finished earlier with the same recipe, results reused")
        stored = runs.read_metrics(run_dir)
        # Runs finished before the deduplicated scores existed get them from their saved predictions.
        return {"model": model_name, **dedup_scores(run_dir, ds, copies), **stored["headline"], "status": "reused"}
    progress.check_stop(f"the runs before {label}")  # the runner's --stop-after: no new training starts
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_recipe(run_dir, recipe)
    timer = artifacts.Timer()
    artifacts.set_seed(seed)
    tr = ds.split("Training")
    train_ds, val_ds, (mean, std) = input_pipelines(ds, batch_size=cfg.batch_size, size=size, channels=channels,
                                                    normalization=normalization, augment=augment, seed=seed,
                                                    target=target)
    if state == "trained":
        # Training finished earlier and evaluation did not: evaluate the saved best model; nothing is built.
        progress.report(f"{label}: trained earlier, evaluating without retraining")
        train.set_precision(cfg.precision)
        status, policy = "evaluated", None  # recorded from the saved model: it may have trained on another machine
    else:
        model, policy = train.build_compiled_model(model_name, cfg, input_shape=(size, size, channels),
                                                   num_classes=ds.num_classes, model_kwargs=model_kwargs,
                                                   steps_per_epoch=min(train.steps_per_epoch(len(tr), cfg.batch_size),
                                                                       cfg.steps_per_epoch or math.inf))
        status = "resumed" if state == "interrupted" else "trained"
        if state == "interrupted":
            progress.report(f"{label}: resuming from {run_dir / runs.BACKUP_DIR}")
        train.fit_model(model, train_ds, val_ds, cfg, run_dir, seed=seed, label=label,
                        class_counts=np.bincount(tr.labels, minlength=ds.num_classes))
    runs.write_preprocessing(run_dir, class_names=ds.class_names, input_size=size, channels=channels,
                             normalization=normalization, norm_mean=mean, norm_std=std, tta=tta,
                             crop_fraction=crop_fraction, model=model_name, dataset=ds.name)
    predictor = load_predictor(run_dir)
    policy = policy or models.model_precision(predictor.model)
    results = {"model": model_name, "params": int(predictor.model.count_params()), "input": f"{size}x{size}x{channels}",
               "precision": policy, **_whole_run(run_dir), "data_checksum": ds.checksum, "status": status}
    per_split = evaluate_splits(predictor, ds, eval_splits, run_dir)
    for split, m in per_split.items():
        results[f"{split}_accuracy"] = m["accuracy"]
        results[f"{split}_macro_f1"] = m["macro_f1"]
    results.update(dedup_scores(run_dir, ds, copies))
    results["seconds"] = round(timer.seconds, 1)
    metadata = artifacts.run_metadata(seed, ds, params or {}, precision=policy, tta=tta, target=target,
                                      train_config=cfg.to_dict(), input_size=size, normalization=normalization,
                                      norm_mean=mean, norm_std=std, augment=augment or {},
                                      model_kwargs=model_kwargs or {})
    runs.write_metrics(run_dir, {k: v for k, v in results.items() if k != "model"}, metadata,
                       model=model_name, splits=per_split, class_names=list(ds.class_names))
    keras.backend.clear_session()  # frees the graph before the next model of the table
    return results


def evaluate_splits(predictor, ds: D.FERDataset, eval_splits, out_dir, *, tta="default") -> dict:
    """Score ``predictor`` on each test split once; ``out_dir/predictions.npz`` gets every row. ``{split: metrics}``.

    ``tta``: the run's own test-time augmentation (``"default"``) or another one (``None``/``"none"``, ``"flip"``,
    ``"center_flip"``, ``"ten_crop"``).
    """
    from fer_utils import evaluate

    per_split, y_true, y_prob, ids, split_col = {}, [], [], [], []
    for split in eval_splits:
        te = ds.split(split)
        prob = predictor.predict(te.images, tta=tta)
        per_split[split] = evaluate.compute_metrics(te.labels, prob, ds.class_names)
        y_true.append(te.labels), y_prob.append(prob), ids.append(te.source_ids), split_col.append([split] * len(te))
    if y_true:
        runs.save_predictions(out_dir, np.concatenate(y_true), np.concatenate(y_prob),
                              source_ids=np.concatenate(ids).astype(str), split=np.concatenate(split_col),
                              class_names=list(ds.class_names))
    return per_split


def _check_earlier_run(run_dir: Path, recipe: dict, overwrite: bool) -> str:
    """The state to continue from: resume or reuse a run with the same recipe, refuse or move aside another.

    A run whose recipe differs only in :data:`EVALUATION_KEYS` (another TTA, crop or test splits) is not trained again:
    a finished one is evaluated again (``"trained"``) after its evaluation files move to ``replaced-<stamp>/``.

    Raises:
        FileExistsError: the folder holds a run with a different recipe and not ``overwrite``.
    """
    state = runs.run_state(run_dir)
    if state == "new":
        return state
    old = runs.read_recipe(run_dir)
    if isinstance(old, dict) and isinstance(old.get("train_config"), dict):
        # A TrainConfig field added since (e.g. ema_momentum) reads as its default: not another recipe.
        try:
            old = {**old, "train_config": recipe_train_config(old["train_config"])}
        except (TypeError, ValueError):
            pass  # an unreadable old config differs, as before
    changed = runs.recipe_differences(old, recipe)
    if overwrite:
        runs.move_aside(run_dir)
        return "new"
    if changed and set(changed) <= set(EVALUATION_KEYS):
        # Training is the same: the saved model is evaluated again; the earlier evaluation is kept, not replaced.
        if state in ("finished", "trained"):
            aside = runs.move_aside(run_dir, runs.EVALUATION_FILES)
            progress.report(f"{run_dir}: trained earlier with the same recipe but evaluated with other {changed}: "
                            f"evaluating the saved model again (the earlier evaluation is in {aside})")
            return "trained"
        return state
    if changed:
        raise FileExistsError(f"{run_dir} holds a {state} run of another recipe (differs in {changed}); pass "
                              "overwrite=True (runner: --fresh) to move it aside to replaced-<time>/ and start afresh")
    return state


def check_model_names(*groups):
    """Every name in ``groups`` is a registry model; raises before any training otherwise."""
    from fer_utils import models

    known = set(models.available_models())
    for group in groups:
        for name in group or ():
            if name not in known:
                raise ValueError(f"unknown model {name!r}; known models: {sorted(known)}")


def run_models(model_names, ds: D.FERDataset, run_dir, *, model_kwargs_by_model: dict | None = None,
               input_sizes: dict | None = None, train_configs: dict | None = None, train_config: dict,
               seeds=(), **kwargs) -> pd.DataFrame:
    """:func:`run_model` for each name (sub-folder per model); returns the results table.

    Args:
        model_names: registry names.
        ds: prepared dataset (see :func:`prepare`).
        run_dir: the notebook's run folder; each model gets ``run_dir/<name>``.
        model_kwargs_by_model: builder overrides per model name, e.g. ``{"cnn": {"dropout": 0.3}}``.
        input_sizes: input side per model name, overriding ``input_size``.
        train_configs: training-config keys per model name, merged over ``train_config``
            (e.g. ``{"cnn": {"epochs": 20}}``).
        train_config: the training configuration every model shares.
        seeds: training seeds (see :mod:`fer_utils.experiments.seeds`): each model is trained once per seed in
            ``run_dir/<name>/seed<k>`` and, with two or more, ensembled in ``run_dir/<name>/ensemble``. Empty:
            one run per model with ``kwargs["seed"]`` in ``run_dir/<name>``.
        **kwargs: passed to :func:`run_model`.

    Returns:
        One row per run folder (none for no names) (index: the folder relative to ``run_dir``), with the model's
        registry name
        (``arch``), the seed (seed runs), and accuracy and macro-F1 per test split as published and deduplicated
        (``<split>_dedup_accuracy``: copies of training images left out, see :func:`run_model`).
    """
    from fer_utils.experiments import seeds as S

    check_model_names(model_names, model_kwargs_by_model, input_sizes, train_configs)
    seeds = S.check_seeds(seeds)
    rows = []
    for i, name in enumerate(model_names, start=1):
        print(f"=== {name} ===", flush=True)
        progress.report(f"model {i}/{len(model_names)}: {name}")
        extra = dict(kwargs)
        if input_sizes and name in input_sizes:
            extra["input_size"] = input_sizes[name]
        cfg = {**train_config, **((train_configs or {}).get(name) or {})}
        common = dict(model_kwargs=(model_kwargs_by_model or {}).get(name), train_config=cfg)
        if not seeds:
            rows.append({**run_model(name, ds, Path(run_dir) / name, **common, **extra), "arch": name})
            continue
        extra.pop("seed", None)
        label = extra.pop("label", None) or name
        folders = []
        for k in seeds:
            rel = S.seed_dir(name, k)
            r = run_model(name, ds, Path(run_dir) / rel, seed=k, label=f"{label} seed {k}", **common, **extra)
            rows.append({**r, "model": rel, "arch": name, "seed": k})
            folders.append(Path(run_dir) / rel)
        if len(seeds) > 1:
            rel = f"{name}/{S.ENSEMBLE_DIR}"
            rows.append({**S.evaluate_ensemble(name, folders, ds, Path(run_dir) / rel), "model": rel, "arch": name,
                         "status": "ensembled"})
    return pd.DataFrame(rows).set_index("model") if rows else empty_results()


def run_cv(model_name: str, ds: D.FERDataset, run_dir, *, k: int = 10, folds=(0,), seed: int = 0,
           val_fraction: float = 0.1, **kwargs) -> dict:
    """Subject-independent k-fold runs (CK+): trains on the given folds, returns mean and std accuracy.

    Each fold's run folder is ``run_dir/fold<i>``; the fold's test subjects never appear in its
    training or validation data.
    """
    rows = []
    for f in folds:
        fold = D.fold_dataset(ds, int(f), k=k, seed=seed, val_fraction=val_fraction)
        r = run_model(model_name, fold, Path(run_dir) / f"fold{f}", eval_splits=(D.SINGLE_TEST_SPLIT,), seed=seed,
                      label=f"{model_name} fold {f}", **kwargs)
        rows.append(r)
    acc = np.array([r["Test_accuracy"] for r in rows])
    f1 = np.array([r["Test_macro_f1"] for r in rows])
    return {"model": model_name, "folds": len(rows), "k": k, "Test_accuracy": float(acc.mean()),
            "Test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, "Test_macro_f1": float(f1.mean()),
            "params": rows[0]["params"], "train_seconds": round(sum(r["train_seconds"] for r in rows), 1),
            "data_checksum": ds.checksum}
