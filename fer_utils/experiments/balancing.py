"""Notebook 02's recipe: train the GAN, balance the training split, measure quality and the effect.

1. :func:`train_generator` trains the conditional GAN on the *distinct real Training* images (after
   validation was carved out, so never on validation or test rows).
2. :func:`balance` turns a plan into per-class counts, generates them with the EMA generator and
   writes ``balanced_train.npz`` (real + flagged generated rows) into the run folder.
3. :func:`quality` measures per-class KID against its real-vs-real floor, the data-copying test and
   the real-trained classifier's agreement, on that classifier's penultimate features.
4. :func:`effect_runs` trains the same model with the same seeds and budget on real-only and on each
   balanced training set; :func:`effect_table` reports every test split as published and
   deduplicated (byte copies, near-duplicates and mirrors of training images removed), per-class recall, mean +- sd
   over seeds, and McNemar per seed pair against real-only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils import progress, runs

GAN_DIR = "gan"
EFFECT_DIR = "effect"
REAL_ONLY = "real only"
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


def quality(ds: D.FERDataset, predictor, gan_folder, *, per_class: int, seed: int, subsets: int = 20,
            subset_size: int = 500) -> dict:
    """KID table, copying checks (pixels and features) and classifier agreement for ``per_class`` images.

    Real training images are the GAN's own (one real Training row per near-duplicate family); real test and
    held-out images are the test rows that do not copy a training image (no byte copy, near-duplicate or mirror).
    """
    from fer_utils.gan import quality as Q
    from fer_utils.gan import training

    labels = np.repeat(np.arange(ds.num_classes), per_class)
    generated = training.generate(training.load_generator(gan_folder), labels, seed=seed + 1)
    train_idx = gan_training_rows(ds)
    tests = [s for s in ds.split_names if s not in ("Training", "Validation")]
    held = np.flatnonzero(np.isin(ds.splits, tests) & ~D.leaked_rows(ds))
    feats = {k: predictor.features(v) for k, v in (("gen", generated), ("train", ds.images[train_idx]),
                                                    ("held", ds.images[held]))}
    kid = Q.kid_table(feats["gen"], labels, feats["train"], ds.labels[train_idx], feats["held"], ds.labels[held],
                      ds.class_names, subsets=subsets, subset_size=subset_size, seed=seed)
    pixels = Q.copying_check(generated, ds.images[train_idx], ds.images[held])
    features = Q.copying_check(feats["gen"], feats["train"], feats["held"])
    copying = pd.DataFrame([{"space": space, **{k: v for k, v in r.items() if not k.startswith("gen_")}}
                            for space, r in (("pixels", pixels), ("classifier features", features))])
    agreement = Q.class_agreement(predictor.predict(generated), labels, ds.class_names)
    order = np.argsort(pixels["gen_distance"])[:8]
    closest = {"generated": generated[order], "nearest training": ds.images[train_idx][pixels["gen_nearest"][order]],
               "distance": pixels["gen_distance"][order]}
    return {"kid": kid, "copying": copying, "agreement": agreement, "closest": closest, "generated": generated,
            "labels": labels, "held_out_split": tests}


# ----------------------------------------------------------------------------- the effect

def effect_runs(model: str, conditions: dict, run_dir, *, seeds, train_config: dict, **kwargs) -> pd.DataFrame:
    """Train ``model`` on every condition (``{label: prepared dataset}``) with every seed.

    Each run lives in ``run_dir/effect/<label>/seed<s>`` and resumes or is reused like any model run.
    Returns one row per (condition, seed) with the run folder.
    """
    from fer_utils.experiments.running import run_model
    from fer_utils.train import TrainConfig
    from fer_utils.train.compile import steps_per_epoch

    # The same budget for every condition: as many steps per epoch as the real-only training set gives,
    # so a larger balanced set does not also buy more updates.
    first = next(iter(conditions.values()))
    if not train_config.get("steps_per_epoch"):
        train_config = {**train_config, "steps_per_epoch": steps_per_epoch(
            int((first.splits == "Training").sum()), TrainConfig.from_dict(train_config).batch_size)}
    rows = []
    for label, cond_ds in conditions.items():
        for s in seeds:
            progress.report(f"effect: {label}, seed {s}")
            folder = Path(run_dir) / EFFECT_DIR / _folder_name(label) / f"seed{s}"
            r = run_model(model, cond_ds, folder, train_config=train_config, seed=int(s),
                          label=f"{label} seed {s}", **kwargs)
            rows.append({"condition": label, "seed": int(s), "run": str(folder), "status": r["status"],
                         "train rows": int((cond_ds.splits == "Training").sum()),
                         "generated rows": int(cond_ds.generated.sum())})
    return pd.DataFrame(rows)


def _folder_name(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in label)


def _scores(pred: dict, ids_to_drop: set, split: str, class_names) -> tuple:
    keep = pred["split"] == split
    if ids_to_drop is not None:
        keep &= ~np.isin(pred["source_ids"], list(ids_to_drop))
    y, p = pred["y_true"][keep], pred["y_prob"][keep].argmax(1)
    return y, p, pred["source_ids"][keep]


def effect_table(runs_table: pd.DataFrame, ds: D.FERDataset, *, focus_class: str = "Disgust") -> dict:
    """Scores of every effect run on each test split, as published and deduplicated.

    Returns:
        ``per_run`` (one row per condition, seed and split: accuracy, macro-F1, recall per class),
        ``summary`` (mean and sd over seeds per condition and split), ``mcnemar`` (each condition
        against real only with the same seed, per split).
    """
    from sklearn.metrics import f1_score, recall_score

    from fer_utils.stats import mcnemar_test

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
        if cond == REAL_ONLY or (REAL_ONLY, seed, variant) not in preds:
            continue
        y0, p0, ids0 = preds[(REAL_ONLY, seed, variant)]
        if not np.array_equal(ids0, ids):
            raise ValueError(f"effect: {cond} seed {seed} was evaluated on other {variant} rows than real only")
        t = mcnemar_test(y, p0, p)
        tests_rows.append({"split": variant, "condition": cond, "seed": seed,
                           "real only right, balanced wrong": t["a right b wrong"],
                           "real only wrong, balanced right": t["a wrong b right"], "p": t["p"], "method": t["method"],
                           f"delta {focus_class} recall": (_recall(y, p, ds, focus_class)
                                                           - _recall(y0, p0, ds, focus_class))})
    return {"per_run": per_run, "summary": summary.reset_index(), "mcnemar": pd.DataFrame(tests_rows)}


def _recall(y, p, ds: D.FERDataset, name: str) -> float:
    if name not in ds.class_names:
        return float("nan")
    c = ds.class_names.index(name)
    return float((p[y == c] == c).mean()) if (y == c).any() else float("nan")


def headline(gan_summary: dict, kid: pd.DataFrame, copying: pd.DataFrame, effect: dict, report_split: str) -> dict:
    """The numbers notebook 02 ends with (read back by its test)."""
    summary = effect["summary"]
    row = {"gan_steps": int(gan_summary["steps"]), "gan_seconds": float(gan_summary["seconds"]),
           "gan_status": gan_summary["status"], "generator_sha256": gan_summary["generator_sha256"],
           "kid_all": float(kid.loc[kid["class"] == "all", "KID"].iloc[0]),
           "kid_floor_all": float(kid.loc[kid["class"] == "all", "floor"].iloc[0]),
           "copying_pixels_p": float(copying.loc[copying["space"] == "pixels", "p"].iloc[0])}
    for split in (report_split, report_split + DEDUP_SUFFIX):
        sub = summary[summary["split"] == split]
        for condition, accuracy in zip(sub["condition"], sub["accuracy mean"]):
            row[f"{split} accuracy {condition}"] = float(accuracy)
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


def convergence(kid: pd.DataFrame, steps: int) -> str:
    """A plain-words verdict: is the generator's KID near the real-vs-real floor after ``steps`` steps?"""
    row = kid.loc[kid["class"] == "all"].iloc[0]
    if not np.isfinite(row["KID"]) or not np.isfinite(row["floor"]):
        return f"not measurable (too few images) after {steps} steps"
    if row["KID"] > 2 * max(row["floor"], 0) + 2 * row["standard error"]:
        return (f"NOT CONVERGED: after {steps} steps the generated faces' KID ({row['KID']:.4g} +- "
                f"{row['standard error']:.2g}) is more than twice the real-vs-real floor ({row['floor']:.4g}); "
                "a longer run (the paper profile's 30k steps) should bring it down")
    return f"close to the real-vs-real floor after {steps} steps (KID within 2x the floor)"


def recall_matrix(summary: pd.DataFrame, split: str, class_names) -> pd.DataFrame:
    """Mean recall per class (columns) and condition (rows) on ``split``, for a heatmap."""
    sub = summary[summary["split"] == split].set_index("condition")
    return sub[[f"recall {c} mean" for c in class_names]].set_axis(list(class_names), axis=1)


def real_and_generated(ds: D.FERDataset, quality_result: dict, per_class: int = 8, seed: int = 0) -> list:
    """``[(name, images), ...]`` rows for :func:`fer_utils.plots.sample_grid`: per class, real then generated faces."""
    rng = np.random.default_rng(seed)
    train_idx = gan_training_rows(ds)
    rows = []
    for c, name in enumerate(ds.class_names):
        real = train_idx[ds.labels[train_idx] == c]
        gen = quality_result["generated"][quality_result["labels"] == c]
        rows.append((f"{name}: real", ds.images[rng.permutation(real)[:per_class]]))
        rows.append((f"{name}: generated", gen[:per_class]))
    return rows
