"""Notebook 02's evidence on the generated faces: GAN-test, KID per class, data copying, CAS (owns their tables).

Everything is judged by a classifier trained on real faces only and never used inside GAN training (the GAN's
own auxiliary classifier is not a judge): the shipped model (``fer_utils/predict/default_model``, the `cpu`
recipe's network) for FER-2013, else the effect's real-only run of the first seed (:func:`choose_judge`).
Real references are the GAN's own training faces (one real Training row per near-duplicate family) and the
*held-out* faces: test rows with no copy among the training rows, one per family (:func:`held_out_rows`).

Files a notebook writes from here (:func:`write_tables`): ``kid.csv``, ``quality.csv``, ``copying.csv``,
``cas.csv``. The copying table holds controls whose answer is known, measured with the same code: a perfect
generator (half of the held-out real faces), blurry averages (means of 16 training faces of a class) and
copies (training faces shifted 2 px with noise), so each test's reading of the generated faces can be
checked against what it says about those.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils import progress
from fer_utils.experiments.balancing import DEDUP_SUFFIX, REAL_ONLY, gan_training_rows

CAS_DIR = "cas"
CONTROLS = {
    "generated": "the GAN's faces",
    "perfect generator": "held-out real faces (half): what a generator equal to the data scores",
    "blurry averages": "means of 16 training faces of one class: close to many faces, copies of none",
    "copies": "training faces shifted 2 px plus noise: what copying looks like",
}


def choose_judge(ds: D.FERDataset, effect_runs: pd.DataFrame | None = None, choice: str = "auto") -> tuple:
    """``(predictor, name)`` of the classifier that judges the faces.

    ``choice``: ``"auto"`` (the shipped model when ``ds`` is FER-2013 with its classes, else the real-only effect
    run of the first seed), ``"shipped"``, ``"effect"`` or a model folder.
    """
    from fer_utils.predict.shipped import DEFAULT_DIR
    from fer_utils.predictor import load_predictor

    if choice in ("auto", "shipped"):
        shipped = load_predictor(DEFAULT_DIR)
        fits = tuple(shipped.class_names) == tuple(ds.class_names) and not ds.is_synthetic and \
            ds.name.lower().startswith("fer2013")
        if choice == "shipped" or fits:
            return shipped, "the shipped model (fer_utils/predict/default_model: msca_resnet, real FER-2013 only)"
        choice = "effect"
    if choice == "effect":
        if effect_runs is None or not len(effect_runs):
            raise ValueError("judge 'effect' needs the effect runs (run the effect section first)")
        run = effect_runs.loc[effect_runs["condition"] == REAL_ONLY, "run"].iloc[0]
        return load_predictor(run), f"the real-only effect run {Path(run).parent.name}/{Path(run).name}"
    return load_predictor(choice), f"the model in {choice}"


def held_out_rows(ds: D.FERDataset) -> np.ndarray:
    """Test rows (outside Training and Validation) with no copy among the training rows, one per family."""
    tests = [s for s in ds.split_names if s not in ("Training", "Validation")]
    rows = np.flatnonzero(np.isin(ds.splits, tests) & ~ds.generated & ~D.leaked_rows(ds))
    _, first = np.unique(D.families(ds)[rows], return_index=True)
    return rows[np.sort(first)]


def _controls(ds: D.FERDataset, train_idx: np.ndarray, held: np.ndarray, per_class: int, seed: int) -> dict:
    """The known-answer sets: ``{name: (images, labels, held-out rows to compare with)}``."""
    rng = np.random.default_rng([int(seed), 2022])
    half = rng.permutation(held)
    perfect, rest = np.sort(half[: len(half) // 2]), np.sort(half[len(half) // 2:])
    blur, blur_labels, copy, copy_labels = [], [], [], []
    for c in range(ds.num_classes):
        pool = train_idx[ds.labels[train_idx] == c]
        if not len(pool):
            continue
        for _ in range(per_class):
            group = ds.images[rng.choice(pool, min(16, len(pool)), replace=False)].astype(np.float32)
            blur.append(np.round(group.mean(0)).astype(np.uint8))
            blur_labels.append(c)
        for i in rng.choice(pool, per_class, replace=len(pool) < per_class):
            moved = np.roll(ds.images[i].astype(np.float32), (2, 2), axis=(0, 1)) + rng.normal(0, 3, ds.images[i].shape)
            copy.append(np.clip(np.round(moved), 0, 255).astype(np.uint8))
            copy_labels.append(c)
    return {"perfect generator": (ds.images[perfect], ds.labels[perfect], rest),
            "blurry averages": (np.asarray(blur), np.asarray(blur_labels), held),
            "copies": (np.asarray(copy), np.asarray(copy_labels), held)}


def _near_copies(images: np.ndarray, training: np.ndarray, exact_only: bool = False) -> np.ndarray:
    """Bool per image: the near-duplicate finder matches it to a training image (exact, near or mirror); byte copies
    only with ``exact_only`` (the drawn default faces, alike by design, as ``data.dataset_pairs`` treats them)."""
    hit = np.zeros(len(images), bool)
    if not len(images):
        return hit
    if exact_only or min(images.shape[1:]) < 24:  # the finder needs 24 px of detail: byte copies only
        from fer_utils.gan.quality import exact_copy_mask

        return exact_copy_mask(images, training)
    found = D.near_duplicates(images, training)
    hit[found["i"].to_numpy(int)] = True
    return hit


def measure(ds: D.FERDataset, judge, judge_name: str, gan_folder, *, per_class: int, seed: int,
            bootstrap: int = 200, max_rows: int = 2000, cells: int = 10, focus_class: str = "Disgust") -> dict:
    """Generate ``per_class`` faces per class and measure them (see the module docstring).

    Returns ``{"kid", "quality", "copying", "closest", "generated", "labels", "judge"}``: three tables, the closest
    generated/training pairs, and the generated images and labels.
    """
    from fer_utils.gan import quality as Q
    from fer_utils.gan import training

    labels = np.repeat(np.arange(ds.num_classes), per_class).astype(np.int64)
    generated = training.generate(training.load_generator(gan_folder), labels, seed=seed + 1)
    train_idx = gan_training_rows(ds)
    held = held_out_rows(ds)
    progress.report(f"quality: {len(generated)} generated, {len(train_idx)} training and {len(held)} held-out faces, "
                    f"judged by {judge_name}")
    feats = {"train": judge.features(ds.images[train_idx]), "held": judge.features(ds.images[held]),
             "generated": judge.features(generated)}
    kid = Q.kid_table(feats["generated"], labels, feats["train"], ds.labels[train_idx], feats["held"],
                      ds.labels[held], ds.class_names, bootstrap=bootstrap, max_rows=max_rows, seed=seed)
    quality = Q.gan_test(judge.predict(generated, tta=None), labels, judge.predict(ds.images[held], tta=None),
                         ds.labels[held], ds.class_names)
    held_pos = {r: k for k, r in enumerate(held)}
    sets = {"generated": (generated, labels, held), **_controls(ds, train_idx, held, min(per_class, 200), seed)}
    rows, hits, held_pixels = [], {}, {}
    for name, (images, set_labels, reference) in sets.items():
        ref_feats = feats["held"][[held_pos[r] for r in reference]]
        set_feats = feats["generated"] if name == "generated" else judge.features(images)
        hit = _near_copies(images, ds.images[train_idx], exact_only=ds.is_synthetic)
        hits[name] = hit
        focus = set_labels == _class_index(ds, focus_class)
        gd_pix, _ = Q.nearest_distances(images, ds.images[train_idx])
        key = reference.tobytes()  # the held-out reference is shared by three sets: its distances computed once
        if key not in held_pixels:
            held_pixels[key] = Q.nearest_distances(ds.images[reference], ds.images[train_idx])[0]
        hd_pix = held_pixels[key]
        gd_feat, _ = Q.nearest_distances(set_feats, feats["train"])
        hd_feat, _ = Q.nearest_distances(ref_feats, feats["train"])
        pixels, features = Q.meehan_zu(gd_pix, hd_pix), Q.meehan_zu(gd_feat, hd_feat)
        cell = Q.meehan_cells(set_feats, feats["train"], ref_feats, cells=cells, seed=seed)
        rows.append({"set": name, "what it is": CONTROLS[name], "n": len(images),
                     "near_copy_rate": float(hit.mean()) if len(hit) else np.nan,
                     f"near_copy_rate {focus_class}": float(hit[focus].mean()) if focus.any() else np.nan,
                     "exact_copies": Q.exact_copies(images, ds.images[train_idx]),
                     "z_u_pixels": pixels["z_u"], "p_pixels": pixels["p"],
                     "z_u_features": features["z_u"], "p_features": features["p"],
                     "c_t_features": cell["c_t"], "p_c_t_features": cell["p"], "cells_used": cell["cells_used"],
                     "median_distance_features": float(np.median(gd_feat)),
                     "median_distance_features_held_out": float(np.median(hd_feat))})
    copying = pd.DataFrame(rows)
    per_class_rate = [float(hits["generated"][labels == c].mean()) for c in range(ds.num_classes)]
    quality["near_copy_rate"] = per_class_rate + [float(hits["generated"].mean())]
    dist, nearest = Q.nearest_distances(generated, ds.images[train_idx])
    order = np.argsort(dist)[:8]
    closest = {"generated": generated[order], "nearest training": ds.images[train_idx][nearest[order]],
               "distance": dist[order]}
    return {"kid": kid, "quality": quality, "copying": copying, "closest": closest, "generated": generated,
            "labels": labels, "judge": judge_name}


def _class_index(ds: D.FERDataset, name: str) -> int:
    """Index of a class name, case-insensitive (-1 when the dataset has no such class)."""
    lower = [c.lower() for c in ds.class_names]
    return lower.index(name.lower()) if name.lower() in lower else -1


def readings(result: dict, cas_table: pd.DataFrame | None = None, focus_class: str = "Disgust") -> list:
    """Plain sentences, one per test, each saying what that test found (no single verdict hides which said what)."""
    kid, quality, copying = result["kid"], result["quality"], result["copying"]
    q = quality.set_index("class")
    classes = [c for c in q.index if c != "mean"]
    per = kid[kid["class"] != "all"]
    below = int(per["kid_below_between"].fillna(False).astype(bool).sum())
    out = [f"GAN-test ({result['judge']}): mean {q.loc['mean', 'gan_test']:.2f} over classes (real held-out faces "
           f"{q.loc['mean', 'real_test']:.2f}; chance {1 / len(classes):.2f}); lowest "
           f"{q['gan_test'].drop('mean').idxmin()} {q['gan_test'].drop('mean').min():.2f}.",
           f"KID: {below} of {len(per)} classes are closer to their own real class than the other real classes are "
           f"(kid < between_class); class-mixed 'all' KID {kid.iloc[0]['kid']:.4f} +- {kid.iloc[0]['kid_se']:.4f} "
           f"against a real-vs-real floor of {kid.iloc[0]['floor']:.4f}."]
    c = copying.set_index("set")
    g = c.loc["generated"]
    out.append(f"Near copies (finder): {g['near_copy_rate']:.1%} of generated faces, "
               f"{g[f'near_copy_rate {focus_class}']:.1%} of {focus_class} (controls: copies "
               f"{c.loc['copies', 'near_copy_rate']:.1%}, blurry averages "
               f"{c.loc['blurry averages', 'near_copy_rate']:.1%}, perfect generator "
               f"{c.loc['perfect generator', 'near_copy_rate']:.1%}).")
    out.append(f"Meehan Z_U (features): {g['z_u_features']:+.2f} (p = {g['p_features']:.2g}), C_T over cells "
               f"{g['c_t_features']:+.2f} (p = {g['p_c_t_features']:.2g}); perfect generator "
               f"{c.loc['perfect generator', 'z_u_features']:+.2f}, blurry averages "
               f"{c.loc['blurry averages', 'z_u_features']:+.2f}, copies {c.loc['copies', 'z_u_features']:+.2f}. "
               "Negative means closer to training faces than unseen real faces: copying or blur, told apart by the "
               "near-copy rate.")
    if cas_table is not None and len(cas_table):
        ratio = cas_table.attrs.get("ratio")
        if ratio is not None and np.isfinite(ratio):
            out.append(f"CAS: a classifier trained on generated faces only reaches {ratio:.2f}x the balanced accuracy "
                       "of the same classifier trained on as many class-balanced real faces.")
    return out


# ----------------------------------------------------------------------------- CAS

def cas(ds: D.FERDataset, result: dict, run_dir, *, model: str, train_config: dict, seed: int, copies: tuple,
        eval_splits, **kwargs) -> pd.DataFrame:
    """Classification Accuracy Score (Ravuri & Vinyals 2019): ``model`` trained on the generated faces only (equal
    per class), tested on the real test splits, next to the same model trained on as many class-balanced real
    Training faces (classes with fewer distinct faces resampled with replacement). Validation (best epoch) is the
    real validation split in both. Runs live in ``run_dir/cas/{generated,real}``.

    Returns one row per training set and split (as published and deduplicated): accuracy, balanced accuracy
    (mean recall), macro-F1; ``attrs["ratio"]``: generated / real balanced accuracy on the last split, deduplicated.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from fer_utils import runs
    from fer_utils.experiments.running import run_model

    rest = ds.subset(ds.splits != "Training")
    labels, generated = result["labels"], result["generated"]
    per_class = np.bincount(labels, minlength=ds.num_classes)
    train_idx = gan_training_rows(ds)
    rng = np.random.default_rng([int(seed), 5151])
    real_rows = np.concatenate([rng.choice(pool, n, replace=len(pool) < n) if len(pool) else np.zeros(0, int)
                                for pool, n in ((train_idx[ds.labels[train_idx] == c], per_class[c])
                                                for c in range(ds.num_classes))])
    gen_ds = D.FERDataset(images=generated, labels=labels, class_names=ds.class_names,
                          splits=np.full(len(labels), "Training", dtype=object),
                          source_ids=np.array([f"gan:quality:{i}" for i in range(len(labels))], dtype=object),
                          name=ds.name, synthetic=np.ones(len(labels), bool), generated=np.ones(len(labels), bool))
    sets = {"generated": D.concatenate([gen_ds, rest], name=ds.name),
            "real": D.concatenate([ds.subset(real_rows), rest], name=ds.name)}
    leaked = set(copies[1])
    rows = []
    for name, train_set in sets.items():
        folder = Path(run_dir) / CAS_DIR / name
        run_model(model, train_set, folder, train_config=train_config, seed=seed, label=f"CAS {name}",
                  eval_splits=eval_splits, copies=copies, **kwargs)
        p = runs.load_predictions(folder)
        is_leak = np.isin(np.asarray(p["source_ids"]).astype(str), list(leaked))
        for split in eval_splits:
            here = p["split"] == split
            for variant, keep in ((split, here), (split + DEDUP_SUFFIX, here & ~is_leak)):
                y, pred = p["y_true"][keep], p["y_prob"][keep].argmax(1)
                rows.append({"trained on": name, "n per class": int(per_class.max()), "split": variant,
                             "n": int(len(y)),
                             "accuracy": float((y == pred).mean()),
                             "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
                             "macro_f1": float(f1_score(y, pred, labels=list(range(ds.num_classes)), average="macro",
                                                        zero_division=0))})
    table = pd.DataFrame(rows)
    table.attrs["ratio"] = cas_ratio(table, list(eval_splits)[-1])
    return table


def cas_ratio(table: pd.DataFrame, split: str) -> float:
    """Generated over real balanced accuracy on ``split`` deduplicated (NaN when the real CAS scored nothing)."""
    last = table[table["split"] == split + DEDUP_SUFFIX].set_index("trained on")["balanced_accuracy"]
    return float(last["generated"] / last["real"]) if last.get("real", 0) > 0 else float("nan")


def write_tables(run_dir, result: dict, cas_table: pd.DataFrame | None) -> None:
    """``kid.csv``, ``quality.csv``, ``copying.csv`` and ``cas.csv`` in the run folder."""
    run_dir = Path(run_dir)
    result["kid"].to_csv(run_dir / "kid.csv", index=False)
    result["quality"].to_csv(run_dir / "quality.csv", index=False)
    result["copying"].to_csv(run_dir / "copying.csv", index=False)
    if cas_table is not None:
        cas_table.to_csv(run_dir / "cas.csv", index=False)


def headline(result: dict, cas_table: pd.DataFrame | None, focus_class: str = "Disgust") -> dict:
    """The quality numbers of notebook 02's headline."""
    q, kid, c = result["quality"].set_index("class"), result["kid"], result["copying"].set_index("set")
    per = kid[kid["class"] != "all"]
    return {"judge": result["judge"], "gan_test_mean": float(q.loc["mean", "gan_test"]),
            "gan_test_min": float(q["gan_test"].drop("mean").min()),
            "real_test_mean": float(q.loc["mean", "real_test"]),
            "kid_all": float(kid.iloc[0]["kid"]), "kid_all_se": float(kid.iloc[0]["kid_se"]),
            "kid_floor_all": float(kid.iloc[0]["floor"]),
            "kid_classes_below_between": int(per["kid_below_between"].fillna(False).astype(bool).sum()),
            "near_copy_rate": float(c.loc["generated", "near_copy_rate"]),
            f"near_copy_rate_{focus_class}": float(c.loc["generated", f"near_copy_rate {focus_class}"]),
            "z_u_features": float(c.loc["generated", "z_u_features"]),
            "p_z_u_features": float(c.loc["generated", "p_features"]),
            "cas_ratio": float(cas_table.attrs.get("ratio", np.nan)) if cas_table is not None else float("nan")}


def real_and_generated(ds: D.FERDataset, result: dict, per_class: int = 8, seed: int = 0) -> list:
    """``[(name, images), ...]`` rows for :func:`fer_utils.plots.sample_grid`: per class, real then generated faces."""
    rng = np.random.default_rng(seed)
    train_idx = gan_training_rows(ds)
    rows = []
    for c, name in enumerate(ds.class_names):
        real = train_idx[ds.labels[train_idx] == c]
        gen = result["generated"][result["labels"] == c]
        rows.append((f"{name}: real", ds.images[rng.permutation(real)[:per_class]]))
        rows.append((f"{name}: generated", gen[:per_class]))
    return rows
