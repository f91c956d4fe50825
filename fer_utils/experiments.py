"""Experiments: one model trained and evaluated end to end, and a table of such runs.

This module owns the recipe the training notebooks (03 baselines, 04 attention) repeat for
every model: carve validation from training, build the input pipelines, set the precision,
build the model from the registry, fit, reload the best-on-validation checkpoint, evaluate
every test split (optionally with test-time augmentation), and write the run folder:
``metrics.json``, ``history.csv``, ``predictions.npz``, ``model.keras``, ``train_config.json``.
Later notebooks read those files instead of retraining (:func:`collect_results`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import artifacts
from fer_utils import data as D


def _split_data(ds: D.FERDataset, val_fraction: float, seed: int) -> D.FERDataset:
    if "Validation" in ds.split_names:
        return ds
    return D.train_val_split(ds, val_fraction, seed)


def prepare(ds: D.FERDataset, *, max_per_class: int = 0, val_fraction: float = 0.1, seed: int = 0) -> D.FERDataset:
    """Subsample (``max_per_class`` per class and split; 0 keeps all) and add a Validation split from Training."""
    return _split_data(D.limit_per_class(ds, max_per_class, seed), val_fraction, seed)


def run_model(model_name: str, ds: D.FERDataset, run_dir, *, train_config: dict, input_size: int = 48,
              normalization: str = "unit", augment: dict | None = None, eval_splits=("PublicTest", "PrivateTest"),
              tta: str | None = "flip", seed: int = 0, model_kwargs: dict | None = None,
              target: str = "majority", overwrite: bool = False, params: dict | None = None) -> dict:
    """Train one registry model on ``ds`` and evaluate it on ``eval_splits``.

    Args:
        model_name: a name from :func:`fer_utils.models.available_models`.
        ds: dataset with ``Training`` and ``Validation`` splits (see :func:`prepare`) and the test splits.
        run_dir: this model's run folder (created).
        train_config: :class:`fer_utils.train.TrainConfig` fields (optimizer, lr, epochs, ...).
        input_size: side of the square model input (48 keeps FER's native size).
        normalization: see :func:`fer_utils.pipeline.make_dataset`; ``standardize`` uses training statistics.
        augment: augmentation dict for the training pipeline (None: no augmentation).
        eval_splits: splits to evaluate; none of them is ever used for training or checkpoint selection.
        tta: test-time augmentation for evaluation: None, ``"flip"`` or ``"ten_crop"``.
        seed: drives subsampling, shuffling, augmentation and weight initialisation.
        model_kwargs: extra builder arguments (e.g. ``{"filters": [32, 64, 128, 256]}``).
        target: ``"majority"`` (one-hot) or ``"distribution"`` (``ds.soft_labels``, FER+ votes).
        overwrite: allow a run folder that already holds a finished run (its files are moved aside).
        params: the notebook parameters, recorded in ``metrics.json``.

    Returns:
        A flat dict of results (model, accuracy and macro-F1 per evaluated split, epochs, seconds, ...).
    """
    import keras

    from fer_utils import evaluate, models, pipeline, train

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # tf.function retracing notices would drown the report
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    timer = artifacts.Timer()
    artifacts.set_seed(seed)
    cfg = train.TrainConfig.from_dict(train_config)
    policy = train.set_precision(cfg.precision)
    info = models.model_info(model_name)
    size = max(int(input_size), int(info["min_input_size"]))
    channels = int(info["channels"])
    tr, va = ds.split("Training"), ds.split("Validation")
    mean, std = pipeline.normalization_stats(tr.images) if normalization == "standardize" else (None, None)
    common = dict(input_size=(size, size), channels=channels, normalization=normalization, mean=mean, std=std)
    if target not in ("majority", "distribution"):
        raise ValueError(f"target={target!r}: expected 'majority' or 'distribution'")
    soft = (lambda d: d.soft_labels) if target == "distribution" else (lambda d: None)
    train_ds = pipeline.make_dataset(tr.images, tr.labels, ds.num_classes, batch_size=cfg.batch_size, augment=augment,
                                     shuffle=True, seed=seed, soft_labels=soft(tr), **common)
    val_ds = pipeline.make_dataset(va.images, va.labels, ds.num_classes, batch_size=cfg.batch_size,
                                   soft_labels=soft(va), **common)
    with train.get_strategy().scope():
        model = models.build_model(model_name, (size, size, channels), ds.num_classes,
                                   kernel_regularizer=train.make_regularizer(cfg.l1, cfg.l2), **(model_kwargs or {}))
    history = train.fit_model(model, train_ds, val_ds, cfg, run_dir, seed=seed, overwrite=overwrite,
                              class_counts=np.bincount(tr.labels, minlength=ds.num_classes))
    train_seconds = timer.seconds
    best = train.load_best_model(run_dir, compile=False)
    results = {"model": model_name, "params": int(model.count_params()), "input": f"{size}x{size}x{channels}",
               "precision": policy, "epochs_run": len(history.history.get("loss", [])),
               "best_val_accuracy": float(max(history.history.get("val_accuracy", [np.nan]))),
               "train_seconds": round(train_seconds, 1)}
    per_split, y_true, y_prob, ids, split_col = {}, [], [], [], []
    for split in eval_splits:
        te = ds.split(split)
        x = pipeline.make_dataset(te.images, batch_size=256, cache=False, **common)
        prob = evaluate.predict_proba(best, x, tta=tta)
        m = evaluate.compute_metrics(te.labels, prob, ds.class_names)
        per_split[split] = m
        results[f"{split}_accuracy"] = m["accuracy"]
        results[f"{split}_macro_f1"] = m["macro_f1"]
        y_true.append(te.labels), y_prob.append(prob), ids.append(te.source_ids), split_col.append([split] * len(te))
    if y_true:
        evaluate.save_predictions(run_dir / evaluate.PREDICTIONS_FILE, np.concatenate(y_true), np.concatenate(y_prob),
                                  source_ids=np.concatenate(ids).astype(str), split=np.concatenate(split_col),
                                  class_names=list(ds.class_names))
    results["seconds"] = round(timer.seconds, 1)
    metadata = artifacts.run_metadata(seed, ds, params or {}, precision=policy, tta=tta, target=target,
                                      train_config=cfg.to_dict(), input_size=size, normalization=normalization,
                                      norm_mean=mean, norm_std=std,
                                      augment=augment or {}, model_kwargs=model_kwargs or {})
    artifacts.write_metrics(run_dir, {k: v for k, v in results.items() if k != "model"}, metadata,
                            model=model_name, splits=per_split, class_names=list(ds.class_names))
    keras.backend.clear_session()  # frees the graph before the next model of the table
    return results


def run_models(model_names, ds: D.FERDataset, run_dir, *, model_kwargs_by_model: dict | None = None,
               input_sizes: dict | None = None, **kwargs) -> pd.DataFrame:
    """:func:`run_model` for each name (sub-folder per model); returns the results table.

    Args:
        model_names: registry names.
        ds: prepared dataset (see :func:`prepare`).
        run_dir: the notebook's run folder; each model gets ``run_dir/<name>``.
        model_kwargs_by_model: builder overrides per model name, e.g. ``{"cnn": {"dropout": 0.3}}``.
        input_sizes: input side per model name, overriding ``input_size``.
        **kwargs: passed to :func:`run_model`.
    """
    from fer_utils import models

    known = set(models.available_models())
    for name in list(model_names) + list(model_kwargs_by_model or {}) + list(input_sizes or {}):
        if name not in known:  # fail before hours of training, not after
            raise ValueError(f"unknown model {name!r}; known models: {sorted(known)}")
    rows = []
    for name in model_names:
        print(f"=== {name} ===", flush=True)
        extra = dict(kwargs)
        if input_sizes and name in input_sizes:
            extra["input_size"] = input_sizes[name]
        rows.append(run_model(name, ds, Path(run_dir) / name, model_kwargs=(model_kwargs_by_model or {}).get(name),
                              **extra))
    return pd.DataFrame(rows).set_index("model")


def run_cv(model_name: str, ds: D.FERDataset, run_dir, *, k: int = 10, folds=(0,), seed: int = 0,
           val_fraction: float = 0.1, **kwargs) -> dict:
    """Subject-independent k-fold runs (CK+): trains on the given folds, returns mean and std accuracy.

    Each fold's run folder is ``run_dir/fold<i>``; the fold's test subjects never appear in its
    training or validation data.
    """
    rows = []
    for f in folds:
        fold = D.fold_dataset(ds, int(f), k=k, seed=seed, val_fraction=val_fraction)
        r = run_model(model_name, fold, Path(run_dir) / f"fold{f}", eval_splits=("Test",), seed=seed, **kwargs)
        rows.append(r)
    acc = np.array([r["Test_accuracy"] for r in rows])
    f1 = np.array([r["Test_macro_f1"] for r in rows])
    return {"model": model_name, "folds": len(rows), "k": k, "Test_accuracy": float(acc.mean()),
            "Test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, "Test_macro_f1": float(f1.mean()),
            "params": rows[0]["params"], "train_seconds": round(sum(r["train_seconds"] for r in rows), 1)}


def collect_results(run_dir) -> pd.DataFrame:
    """Read every model run below ``run_dir`` (their ``metrics.json``) into a table, without retraining."""
    rows = []
    for path in sorted(Path(run_dir).glob("*/metrics.json")):
        m = json.loads(path.read_text())
        if "model" in m:
            rows.append({"model": m["model"], **m["headline"]})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def load_histories(run_dir, names) -> dict:
    """``{model: history DataFrame}`` from each model's ``history.csv``."""
    from fer_utils import train

    return {n: train.load_history(Path(run_dir) / n) for n in names}


def load_model_run(run_dir, name):
    """The best checkpoint and metrics of one model run (for plots and explainability)."""
    from fer_utils import train

    return train.load_best_model(Path(run_dir) / name, compile=False), artifacts.read_metrics(Path(run_dir) / name)


def published_table(study: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """The studies' reported accuracies (``fer_utils/published.json``, with sources)."""
    from fer_utils import eda

    df = pd.DataFrame(eda.published()["accuracy"])
    if study:
        df = df[df.study.isin([study] if isinstance(study, str) else study)]
    if dataset:
        df = df[df.dataset == dataset]
    return df.reset_index(drop=True)


def compare_with_published(results: pd.DataFrame, dataset: str = "fer2013", split: str = "PrivateTest") -> pd.DataFrame:
    """Our accuracy next to each study's reported numbers for the same model name.

    The studies do not all say which test split they report; we compare on ``split`` and say so.
    """
    pub = published_table(dataset=dataset)
    col = f"{split}_accuracy"
    rows = []
    for model, r in results.iterrows():
        ref = pub[pub.model == model]
        rows.append({"model": model, f"ours ({split})": r.get(col, np.nan),
                     "ours macro-F1": r.get(f"{split}_macro_f1", np.nan),
                     "published": "; ".join(f"{a:.4f} ({s}, {src})" for a, s, src in
                                            zip(ref.accuracy, ref.setting, ref.source)) or "-"})
    return pd.DataFrame(rows).set_index("model")


def attention_comparison(results: pd.DataFrame, split: str = "PrivateTest") -> pd.DataFrame:
    """Each attention model next to its plain counterpart: accuracy and macro-F1 differences."""
    rows = []
    col, f1 = f"{split}_accuracy", f"{split}_macro_f1"
    for model in results.index:
        for suffix in ("_se", "_cbam"):
            base = model[: -len(suffix)] if model.endswith(suffix) else None
            if base and base in results.index:
                rows.append({"model": model, "baseline": base, "accuracy": results.loc[model, col],
                             "baseline accuracy": results.loc[base, col],
                             "delta accuracy": results.loc[model, col] - results.loc[base, col],
                             "delta macro-F1": results.loc[model, f1] - results.loc[base, f1]})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def headline(results: pd.DataFrame, split: str = "PrivateTest") -> dict:
    """Index-page headline: each model's accuracy on ``split`` and the best model."""
    col = f"{split}_accuracy"
    if results.empty or col not in results:
        return {}
    out = {f"{m} {split} acc": round(float(a), 4) for m, a in results[col].items()}
    out["best"] = str(results[col].idxmax())
    return out


def explain_model(run_dir, name: str, ds: D.FERDataset, *, split: str = "PrivateTest", per_class: int = 1,
                  seed: int = 0, max_attention_maps: int = 3):
    """Grad-CAM and CBAM spatial-attention maps for sample faces of every class of ``split``.

    Returns:
        ``(faces uint8 [N,48,48], {row label: maps [N,48,48]}, column titles)`` for
        :func:`fer_utils.plots.explanation_grid`. CBAM rows (first, middle and last attention
        block by default) appear only for models that have CBAM blocks.
    """
    import tensorflow as tf

    from fer_utils import evaluate, models, pipeline

    model, metrics = load_model_run(run_dir, name)
    meta = metrics["metadata"]
    te = ds.split(split)
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(te.labels == c))[:per_class] for c in range(ds.num_classes)])
    faces = te.images[pick]
    size, channels = int(meta["input_size"]), int(model.inputs[0].shape[-1])
    x = pipeline.as_arrays(pipeline.make_dataset(faces, input_size=(size, size), channels=channels,
                                                 normalization=meta["normalization"], mean=meta.get("norm_mean"),
                                                 std=meta.get("norm_std"), batch_size=64, cache=False))
    pred = evaluate.predict_proba(model, x).argmax(1)

    def to_face(maps):
        return tf.image.resize(np.asarray(maps, np.float32)[..., None], faces.shape[1:3]).numpy()[..., 0]

    rows = {"Grad-CAM": to_face(evaluate.grad_cam(model, x))}
    layers = models.attention_map_layers(model)
    if layers:
        chosen = sorted({layers[0], layers[len(layers) // 2], layers[-1]}, key=layers.index)[:max_attention_maps]
        for layer, maps in evaluate.attention_maps(model, x, chosen).items():
            # Sigmoid maps sit near 0.5 everywhere early in training: stretch each face's map to [0, 1]
            # so the overlay shows where attention is relatively higher (the row label says so).
            lo = maps.min(axis=(1, 2), keepdims=True)
            span = np.maximum(maps.max(axis=(1, 2), keepdims=True) - lo, 1e-8)
            rows[f"CBAM {layer.replace('_spatial_attention', '')}\n(min-max per face)"] = to_face((maps - lo) / span)
    titles = [f"{ds.class_names[te.labels[i]]}\npred: {ds.class_names[p]}" for i, p in zip(pick, pred)]
    return faces, rows, titles


def published_reference(model_names, dataset: str = "fer2013") -> dict:
    """``{model: best published accuracy}`` for the models that a study reports."""
    pub = published_table(dataset=dataset)
    return {m: float(pub[pub.model == m].accuracy.max()) for m in model_names if (pub.model == m).any()}


def confusion_matrices(run_dir, names, split: str, normalized: bool = True) -> dict:
    """``{model: confusion matrix on split}`` read from each model's ``metrics.json``."""
    key = "confusion_matrix_normalized" if normalized else "confusion_matrix"
    out = {}
    for n in names:
        m = artifacts.read_metrics(Path(run_dir) / n)
        if split in m.get("splits", {}):
            out[n] = m["splits"][split][key]
    return out


def sibling_run(run_dir, reports_dir, notebook: str) -> Path:
    """Run folder of another notebook of the same profile (``reports/<profile>/<notebook>``)."""
    base = Path(reports_dir) if reports_dir else Path(run_dir).parent
    return base / notebook


def combine_results(results: pd.DataFrame, other_run) -> pd.DataFrame:
    """This notebook's results plus the model runs found in ``other_run`` (not retrained).

    Prints which run folder was read, or that none was found.
    """
    other = collect_results(other_run) if Path(other_run).is_dir() else pd.DataFrame()
    if other.empty:
        print(f"no earlier model runs found in {other_run}: comparing within this notebook only")
        return results
    print(f"plain models read from {other_run}: {list(other.index)}")
    return pd.concat([other[~other.index.isin(results.index)], results])


def optional_dataset(kind: str, data_dir, dataset: str, synthetic_per_class: int, seed: int) -> D.FERDataset:
    """FER+ or CK+ if found; otherwise (or when ``dataset="synthetic"``) the synthetic stand-in, said loudly.

    The stand-in for CK+ gets 20 pseudo-subjects so subject-independent folds still run.
    """
    if dataset != "synthetic":
        found = D.discover(kind, data_dir)
        if found is not None:
            return D.load_dataset(kind, data_dir)
    print(f"!!! {kind} not found: using the SYNTHETIC stand-in; its numbers say nothing about {kind} !!!")
    ds = D.load_synthetic(synthetic_per_class, seed=seed)
    if kind == "ckplus":
        ds.meta = pd.DataFrame({"subject": [f"S{i % 20:03d}" for i in range(len(ds))],
                                "sequence": [f"S{i % 20:03d}_{i}" for i in range(len(ds))]})
    ds.name = f"synthetic stand-in for {kind}"
    return ds


def run_study_c_ferplus(model_names, ds: D.FERDataset, run_dir, *, seed: int, max_per_class: int = 0,
                        val_fraction: float = 0.1, **kwargs) -> pd.DataFrame:
    """Study C's networks on FER+ (or its stand-in): train on Training, select on Validation, test on PrivateTest.

    FER+'s PublicTest (``FER2013Valid``) is reported too but never used for selection.
    """
    prepared = prepare(ds, max_per_class=max_per_class, val_fraction=val_fraction, seed=seed)
    return run_models(model_names, prepared, run_dir, seed=seed, eval_splits=("PublicTest", "PrivateTest"), **kwargs)


def run_study_c_ckplus(model_names, ds: D.FERDataset, run_dir, *, seed: int, k: int = 10, folds=(0,),
                       val_fraction: float = 0.1, **kwargs) -> pd.DataFrame:
    """Study C's networks on CK+ with subject-independent folds; mean (and std) accuracy over ``folds``."""
    rows = [run_cv(name, ds, Path(run_dir) / name, k=k, folds=folds, seed=seed, val_fraction=val_fraction, **kwargs)
            for name in model_names]
    return pd.DataFrame(rows).set_index("model")


_ABLATION = {"msca_resnet_plain": (False, False), "msca_resnet_no_bn": (True, False),
             "msca_resnet_no_se": (False, True), "msca_resnet": (True, True)}


def ablation_table(ferplus: pd.DataFrame, ckplus: pd.DataFrame) -> pd.DataFrame:
    """Study C's Table 3 layout: SE x BN, our FER+ (PrivateTest) and CK+ (fold mean) next to the paper's."""
    pub = published_table(study="C")
    rows = []
    for model, (se, bn) in _ABLATION.items():
        if model not in ferplus.index and model not in ckplus.index:
            continue
        ref = {d: pub[(pub.model == model) & (pub.dataset == d)].accuracy for d in ("ferplus", "ckplus")}
        rows.append({"model": model, "SE": se, "BN": bn,
                     "FER+ ours": ferplus["PrivateTest_accuracy"].get(model, np.nan),
                     "FER+ paper": float(ref["ferplus"].iloc[0]) if len(ref["ferplus"]) else np.nan,
                     "CK+ ours": ckplus["Test_accuracy"].get(model, np.nan),
                     "CK+ paper": float(ref["ckplus"].iloc[0]) if len(ref["ckplus"]) else np.nan})
    return pd.DataFrame(rows).set_index("model")


def study_c_headline(ferplus: pd.DataFrame, ckplus: pd.DataFrame) -> dict:
    """Index-page numbers for Study C: full model on FER+ PrivateTest and CK+ fold mean."""
    out = {}
    if "msca_resnet" in ferplus.index:
        out["msca_resnet FER+ PrivateTest acc"] = round(float(ferplus.loc["msca_resnet", "PrivateTest_accuracy"]), 4)
    if "msca_resnet" in ckplus.index:
        out["msca_resnet CK+ fold acc"] = round(float(ckplus.loc["msca_resnet", "Test_accuracy"]), 4)
    return out
