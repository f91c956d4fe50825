"""Notebook 02's recipe: train the GAN, balance the training split, measure quality and the effect.

1. :func:`train_generator` trains the conditional GAN on the *distinct real Training* images (after
   validation was carved out, so never on validation or test rows).
2. :func:`balance` turns a plan into per-class counts, generates them with the EMA generator and
   writes ``balanced_train.npz`` (real + flagged generated rows) into the run folder.
3. :func:`effect_conditions` lines up what the effect compares: ``real_only``; ``real_oversampled`` (the plan's
   per-class counts made of resampled real rows: the control that isolates the images, since it shares the class
   mix and the number of rows per epoch); ``real_gan`` (the plan's generated rows). :func:`effect_runs` trains the
   same model with the same seeds and the same number of *real* epochs in every condition (an epoch is one pass
   over the condition's own training rows, so every real row is seen once per epoch; the two balanced
   conditions take the same, larger number of steps). :func:`effect_table` reports every test split as
   published and deduplicated, per-class recall, mean +- sd over seeds, and McNemar per seed (each condition
   against real only, and real + GAN against real oversampled) with Holm over each split's table.

The quality of the generated faces is measured in :mod:`fer_utils.experiments.gan_quality`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils import progress, runs

GAN_DIR = "gan"
EFFECT_DIR = "effect"
REAL_ONLY = "real_only"
OVERSAMPLED = "real_oversampled"
WITH_GAN = "real_gan"
DEDUP_SUFFIX = " (dedup)"


def gan_training_rows(ds: D.FERDataset) -> np.ndarray:
    """Indices of the images the GAN may train on: one real Training row per near-duplicate family."""
    return D.distinct_rows(ds, "Training")


def train_generator(ds: D.FERDataset, run_dir, *, gan: dict, seed: int, gan_dir: str = "",
                    overwrite: bool = False) -> dict:
    """Train (resume, reuse) the GAN of this notebook; returns its summary with the run folder."""
    from fer_utils.gan import training

    folder = Path(gan_dir) if gan_dir else Path(run_dir) / GAN_DIR
    idx = gan_training_rows(ds)
    progress.report(f"GAN: {len(idx)} distinct real training images, {len(ds.class_names)} classes")
    out = training.train_gan(ds.images[idx], ds.labels[idx], ds.class_names, folder, config=gan, seed=seed,
                             overwrite=overwrite)
    return {**out, "folder": str(folder), "n_train_images": int(len(idx))}


def real_training_counts(ds: D.FERDataset) -> dict:
    """``{class: real Training rows}`` (the counts a plan balances)."""
    mask = (ds.splits == "Training") & ~ds.generated
    counts = np.bincount(ds.labels[mask], minlength=ds.num_classes)
    return {c: int(n) for c, n in zip(ds.class_names, counts)}


def balance(ds: D.FERDataset, gan_folder, plan, path, *, seed: int) -> tuple:
    """Generate ``plan``'s images and write the balanced training file at ``path``.

    Returns:
        ``(balanced dataset, counts table)``: the dataset with the generated rows in Training, and a
        table of real, generated and total Training rows per class.
    """
    from fer_utils.gan import training

    counts = D.plan_counts(plan, ds.class_names, real_training_counts(ds))
    labels = np.repeat(np.arange(ds.num_classes), [counts[c] for c in ds.class_names])
    generator = training.load_generator(gan_folder)
    images = training.generate(generator, labels, seed=seed)
    sha = (Path(gan_folder) / training.GENERATOR_SHA_FILE).read_text().strip()
    D.write_balanced(path, ds, images, labels, generator_sha256=sha, plan=plan)
    balanced = D.with_balanced_training(ds, path)
    real = real_training_counts(ds)
    table = pd.DataFrame({"real": real, "generated": counts}).rename_axis("class")
    table["total"] = table["real"] + table["generated"]
    table.loc["total"] = table.sum()
    return balanced, table


# ----------------------------------------------------------------------------- the effect

def effect_conditions(ds: D.FERDataset, plan, compare_plans=(), balanced: dict | None = None, *,
                      seed: int) -> dict:
    """``{condition: dataset}`` in table order: real only, then per plan real oversampled and real + GAN.

    ``balanced``: ``{plan label: balanced dataset}`` from :func:`balance`; without it (or without a plan's entry)
    only the controls are returned, so they can train while the GAN does. The main ``plan``'s conditions are
    named ``real_oversampled`` and ``real_gan``, a compared plan's ``real_oversampled:<label>``.
    """
    real = real_training_counts(ds)
    out = {REAL_ONLY: ds}
    for p in [plan, *[q for q in compare_plans if q != plan]]:
        label = D.plan_label(p)
        suffix = "" if p == plan else f":{label}"
        out[OVERSAMPLED + suffix] = D.oversampled(ds, D.plan_counts(p, ds.class_names, real), seed=seed)
        if balanced and label in balanced:
            out[WITH_GAN + suffix] = balanced[label]
    return out


def effect_runs(model: str, conditions: dict, run_dir, *, seeds, train_config: dict, **kwargs) -> pd.DataFrame:
    """Train ``model`` on every condition (``{label: prepared dataset}``) with every seed.

    Every condition trains ``train_config["epochs"]`` passes over its own training rows: the same real epochs
    everywhere (each real row once per epoch); the balanced conditions take more steps per epoch for their extra
    rows. Each run lives in ``run_dir/effect/<label>/seed<s>`` and resumes or is reused like any model run.
    Returns one row per (condition, seed) with the run folder and the steps it took.
    """
    from fer_utils.experiments.running import run_model
    from fer_utils.train import TrainConfig
    from fer_utils.train.compile import steps_per_epoch

    cfg = TrainConfig.from_dict(train_config)
    rows = []
    for label, cond_ds in conditions.items():
        n_train = int((cond_ds.splits == "Training").sum())
        n_real = int(((cond_ds.splits == "Training") & ~cond_ds.generated).sum())
        per_epoch = min(steps_per_epoch(n_train, cfg.batch_size), cfg.steps_per_epoch or n_train)
        for s in seeds:
            progress.report(f"effect: {label}, seed {s}")
            folder = Path(run_dir) / EFFECT_DIR / _folder_name(label) / f"seed{s}"
            r = run_model(model, cond_ds, folder, train_config=train_config, seed=int(s),
                          label=f"{label} seed {s}", **kwargs)
            rows.append({"condition": label, "seed": int(s), "run": str(folder), "status": r["status"],
                         "train rows": n_train,
                         "distinct real rows": int(len(D.distinct_rows(cond_ds, by_family=False))),
                         "real rows": n_real, "generated rows": int(cond_ds.generated.sum()),
                         "epochs": cfg.epochs, "steps": per_epoch * cfg.epochs,
                         "train seconds": r.get("train_seconds", np.nan)})
    return pd.DataFrame(rows)


def _folder_name(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in label)


def _scores(pred: dict, ids_to_drop: set, split: str, class_names) -> tuple:
    keep = pred["split"] == split
    if ids_to_drop is not None:
        keep &= ~np.isin(pred["source_ids"], list(ids_to_drop))
    y, p = pred["y_true"][keep], pred["y_prob"][keep].argmax(1)
    return y, p, pred["source_ids"][keep]


def effect_table(runs_table: pd.DataFrame, ds: D.FERDataset, *, focus_class: str = "Disgust",
                 alpha: float = 0.05) -> dict:
    """Scores of every effect run on each test split, as published and deduplicated.

    Returns:
        ``per_run`` (one row per condition, seed and split: accuracy, macro-F1, recall per class),
        ``summary`` (mean and sd over seeds per condition and split), ``mcnemar`` (each condition
        against real only with the same seed, real + GAN also against real oversampled, per split, with Holm
        over each split's rows).
    """
    from sklearn.metrics import f1_score, recall_score

    from fer_utils.stats import holm, mcnemar_test

    copies = set(ds.source_ids[D.leaked_rows(ds)].tolist())
    tests = [s for s in ds.split_names if s not in ("Training", "Validation")]
    rows, preds = [], {}
    k = range(ds.num_classes)
    for r in runs_table.itertuples():
        pred = runs.load_predictions(r.run)
        for split in tests:
            for variant, drop in ((split, None), (split + DEDUP_SUFFIX, copies)):
                y, p, ids = _scores(pred, drop, split, ds.class_names)
                preds[(r.condition, r.seed, variant)] = (y, p, ids)
                recall = recall_score(y, p, labels=list(k), average=None, zero_division=0)
                rows.append({"condition": r.condition, "seed": r.seed, "split": variant, "n": len(y),
                             "accuracy": float((y == p).mean()),
                             "macro_f1": float(f1_score(y, p, labels=list(k), average="macro", zero_division=0)),
                             **{f"recall {c}": float(v) for c, v in zip(ds.class_names, recall)}})
    per_run = pd.DataFrame(rows)
    metrics = ["accuracy", "macro_f1"] + [f"recall {c}" for c in ds.class_names]
    summary = per_run.groupby(["split", "condition"], sort=False)[metrics].agg(["mean", "std"])
    summary.columns = [f"{m} {stat}" for m, stat in summary.columns]
    tests_rows = []
    for (cond, seed, variant), (y, p, ids) in preds.items():
        for reference in _references(cond):
            if (reference, seed, variant) not in preds:
                continue
            y0, p0, ids0 = preds[(reference, seed, variant)]
            if not np.array_equal(ids0, ids):
                raise ValueError(f"effect: {cond} seed {seed} was evaluated on other {variant} rows than {reference}")
            t = mcnemar_test(y, p0, p)
            tests_rows.append({"split": variant, "condition": cond, "against": reference, "seed": seed,
                               "accuracy delta": float((p == y).mean() - (p0 == y0).mean()),
                               "reference right, condition wrong": t["a right b wrong"],
                               "reference wrong, condition right": t["a wrong b right"], "p": t["p"],
                               "method": t["method"],
                               f"delta {focus_class} recall": (_recall(y, p, ds, focus_class)
                                                               - _recall(y0, p0, ds, focus_class))})
    mcnemar = pd.DataFrame(tests_rows)
    if len(mcnemar):
        # One Holm family per split (as published / deduplicated): every comparison and seed of the table.
        mcnemar["p (Holm)"] = np.nan
        mcnemar["differs (Holm)"] = False
        for _, idx in mcnemar.groupby("split", sort=False).groups.items():
            adjusted, reject = holm(mcnemar.loc[idx, "p"].to_numpy(), alpha=alpha)
            mcnemar.loc[idx, "p (Holm)"], mcnemar.loc[idx, "differs (Holm)"] = adjusted, reject
    return {"per_run": per_run, "summary": summary.reset_index(), "mcnemar": mcnemar}


def _references(condition: str) -> list:
    """What a condition is tested against: real only, and for real + GAN also the oversampled control."""
    if condition == REAL_ONLY:
        return []
    if condition.startswith(WITH_GAN):
        return [REAL_ONLY, OVERSAMPLED + condition[len(WITH_GAN):]]
    return [REAL_ONLY]


def _recall(y, p, ds: D.FERDataset, name: str) -> float:
    lower = [c.lower() for c in ds.class_names]
    if name.lower() not in lower:
        return float("nan")
    c = lower.index(name.lower())
    return float((p[y == c] == c).mean()) if (y == c).any() else float("nan")


def headline(gan_summary: dict, quality: dict, effect: dict, report_split: str) -> dict:
    """The numbers notebook 02 ends with (read back by its test): the GAN run, ``quality`` (from
    ``gan_quality.headline``), and per condition the mean accuracy and macro-F1 on ``report_split``, as published
    and deduplicated."""
    summary = effect["summary"]
    row = {"gan_steps": int(gan_summary["steps"]), "gan_seconds": float(gan_summary["seconds"]),
           "gan_status": gan_summary["status"], "generator_sha256": gan_summary["generator_sha256"], **quality}
    for split in (report_split, report_split + DEDUP_SUFFIX):
        sub = summary[summary["split"] == split]
        for condition, accuracy, f1 in zip(sub["condition"], sub["accuracy mean"], sub["macro_f1 mean"]):
            row[f"{split} accuracy {condition}"] = float(accuracy)
            row[f"{split} macro_f1 {condition}"] = float(f1)
    return row


# ----------------------------------------------------------------------------- checks, inputs and labels

def check_inputs(ds: D.FERDataset, gan: dict, plan, compare_plans) -> dict:
    """Every plan's per-class counts and the GAN config, checked before any training.

    Returns:
        ``{plan label: {class: generated count}}`` for ``plan`` then each of ``compare_plans``.

    Raises:
        DataError / ValueError: a bad plan or GAN key, naming it and what was expected.
    """
    from fer_utils.gan.training import GANConfig

    GANConfig.from_dict(gan)
    real = real_training_counts(ds)
    out = {}
    for p in [plan, *[q for q in compare_plans if q != plan]]:
        out[D.plan_label(p)] = D.plan_counts(p, ds.class_names, real)
    return out


def with_balanced(ds: D.FERDataset, balanced_train: str, run_dir, reports_dir="") -> D.FERDataset:
    """``ds`` with a balanced training file when ``balanced_train`` is set (03/04/05's data-source parameter).

    ``"02"`` means notebook 02's file of the same profile (``<reports>/<profile>/02_gan_balancing/``); any
    other non-empty value is a path to a ``balanced_train.npz`` (or the folder holding one).
    """
    if not balanced_train:
        return ds
    from fer_utils.experiments.results import sibling_run

    path = (sibling_run(run_dir, reports_dir, "02_gan_balancing") / D.BALANCED_FILE if balanced_train == "02"
            else Path(balanced_train))
    out = D.with_balanced_training(ds, path)
    print(f"training split from {path}: {int(out.generated.sum())} generated rows added to "
          f"{int(((out.splits == 'Training') & ~out.generated).sum())} real ones")
    return out


def gan_losses(gan_summary: dict) -> pd.DataFrame:
    """The GAN's ``losses.csv``."""
    from fer_utils.gan import training

    return training.load_losses(gan_summary["folder"])


def gan_samples(gan_summary: dict) -> dict:
    """The GAN's fixed-noise sample grids by step."""
    from fer_utils.gan import training

    return training.sample_history(gan_summary["folder"])


def recall_matrix(summary: pd.DataFrame, split: str, class_names) -> pd.DataFrame:
    """Mean recall per class (columns) and condition (rows) on ``split``, for a heatmap."""
    sub = summary[summary["split"] == split].set_index("condition")
    return sub[[f"recall {c} mean" for c in class_names]].set_axis(list(class_names), axis=1)
