"""Notebook 06's recipes: 5x2cv comparisons trained through the run-folder contract, McNemar and bootstrap
intervals on the saved test predictions of notebooks 03/04/05, Holm over each family, Study A's Tables XII/XIII.

Every number says which split and score it is:
- 5x2cv: accuracy on the held-out half of five seeded 50/50 splits of the **Training split only** (each
  training half carves its own validation split for checkpoint selection); ten trainings per configuration,
  each an ordinary run folder (``cv5x2/<label>/r<i>f<j>/``), so an interrupted 5x2cv resumes at the next
  unfinished fold and finished folds are reused, never retrained.
- McNemar and bootstrap: the saved ``predictions.npz`` of the earlier notebooks' runs on one test split;
  nothing is retrained.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils import runs, stats

SPLITS_FILE = "cv5x2_splits.npz"
TESTS_FILE = "tests.csv"
CV_TEST = "CVTest"
SCORE_5X2 = "accuracy on the held-out half (5x2cv of Training)"
#: Below this many discordant samples a McNemar comparison is flagged as under-powered.
FEW_DISCORDANT = 25
DIETTERICH_T = "5x2cv paired t (Dietterich, 5 df)"
ALPAYDIN_F = "5x2cv combined F (Alpaydin, F(10, 5))"
REPLICATION_T = "paired t on 5 replication means (4 df)"
MCNEMAR = "McNemar"
#: Tests shown for comparison with published numbers only: no adjusted p, no verdict, in no count.
DESCRIPTIVE_TESTS = (REPLICATION_T,)
#: The test that decides whether a model pair differs, per kind of family (the headline counts these).
PRIMARY_TESTS = (DIETTERICH_T, MCNEMAR)
#: The Holm families, defined here once and printed by notebook 06 (:func:`holm_families`).
HOLM_FAMILIES = (
    ("one 5x2cv table (Table XII: each model default vs tuned; Table XIII: the model pairs), one test",
     "Dietterich's t and Alpaydin's F answer the same question twice, so each is corrected over the table's pairs "
     "on its own; the pairs of one table are the claims that table makes together"),
    ("McNemar over every pair of models on one test split (as published, or deduplicated)",
     "every pair is one claim about the same test samples, whichever method (exact binomial or chi-square) the "
     "number of discordant samples chose; the deduplicated split is its own family"),
    ("not corrected: the paired t on the 5 replication means (4 df)",
     "shown only because ten of Study A's twelve published (t, p) pairs fit it; it ignores the dependence between "
     "replications and is anti-conservative (Dietterich 1998; Nadeau and Bengio 2003): descriptive, no verdict"),
)


def cv_splits(ds: D.FERDataset, run_dir, *, seed: int, stratify: bool = True) -> list:
    """The five replications' halves (row indices of ``ds``'s Training split), saved with the run.

    Near-duplicate families (``data.families``) stay within one half, so no fold tests on a copy of its own
    training images (the procedural default dataset, which has no photographs, is split row by row).

    A saved file is reused when it was made from the same data, seed and stratification, else refused.

    Raises:
        DataError: the saved splits belong to other data or settings (the file is named).
    """
    path = Path(run_dir) / SPLITS_FILE
    family = D.families(ds) if min(ds.images.shape[1:]) >= 24 and not ds.is_synthetic else None
    splits = stats.cv5x2_splits(ds, seed, stratify=stratify, groups=family)
    key = {"data_checksum": ds.checksum, "seed": int(seed), "stratify": bool(stratify),
           "families": family is not None}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            saved = json.loads(str(z["key"]))
            same = saved == key and all(np.array_equal(z[f"r{i}h{h}"], splits[i][h]) for i in range(5) for h in (0, 1))
        if not same:
            raise D.DataError(f"{path} holds 5x2cv splits of other data or settings ({saved}, now {key}); move it "
                              "away or use another run folder")
        return splits
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    arrays = {f"r{i}h{h}": splits[i][h] for i in range(5) for h in (0, 1)}
    np.savez(path, key=json.dumps(key), **arrays)
    return splits


def fold_dataset(ds: D.FERDataset, train_rows, test_rows, *, val_fraction: float, seed: int) -> D.FERDataset:
    """One 5x2cv fold: ``train_rows`` as Training (validation carved from them, whole families), ``test_rows`` as
    ``CVTest``."""
    rows = np.concatenate([train_rows, test_rows])
    fold = ds.subset(rows)
    names = np.array(["Training"] * len(train_rows) + [CV_TEST] * len(test_rows), dtype=object)
    family = D.families(ds)[rows] if min(ds.images.shape[1:]) >= 24 and not ds.is_synthetic else None
    return D.train_val_split(fold.replace(splits=names), val_fraction, seed, family=family)


def fold_leaks(fold: D.FERDataset, pairs: pd.DataFrame, cv_rows: np.ndarray, rows: np.ndarray) -> tuple:
    """``experiments.seeds.leaks`` of one fold (its CVTest rows copying a Training or Validation row) from
    ``pairs``, the near-duplicate pairs of ``ds.subset(cv_rows)`` (:func:`fer_utils.data.dataset_pairs`).

    Every fold holds the same images (the whole Training split, ``rows`` = the fold's order of ``cv_rows``); the
    search's candidate ties depend on row order, so searching each fold again cost 70-90 s per fold on FER-2013 and
    judged folds by slightly different pairs. One search serves all folds alike.
    """
    from fer_utils.experiments.seeds import leaks

    rows, cv_rows = np.asarray(rows), np.asarray(cv_rows)
    if len(rows) != len(cv_rows) or not np.array_equal(np.sort(rows), np.sort(cv_rows)):
        raise ValueError(f"fold_leaks: the fold's {len(rows)} rows are not the {len(cv_rows)} rows the pairs cover")
    at = np.full(int(cv_rows.max()) + 1, -1, np.int64)
    at[rows] = np.arange(len(rows))
    mapped = pd.DataFrame({"i": at[cv_rows[pairs["i"].to_numpy(int)]], "j": at[cv_rows[pairs["j"].to_numpy(int)]]})
    return leaks(fold, family=D.families(fold, mapped))


def run_5x2cv(ds: D.FERDataset, run_dir, configs: dict, *, seed: int, stratify: bool = True,
              val_fraction: float = 0.1, input_size: int = 48, input_sizes: dict | None = None,
              **run_kwargs) -> dict:
    """Trains every configuration on the ten folds; ``{label: {"scores": (5, 2) array, "status": [...]}}``.

    Args:
        configs: ``{label: {"model": name, "train_config": {...}, "model_kwargs": {...}}}``.
        run_kwargs: passed to :func:`fer_utils.experiments.running.run_model` (input size, augmentation, ...).
    """
    from fer_utils.experiments.running import run_model

    splits = cv_splits(ds, run_dir, seed=seed, stratify=stratify)
    cv_rows = np.sort(np.concatenate(splits[0]))
    pairs = D.dataset_pairs(ds.subset(cv_rows))  # one near-duplicate search for every fold (fold_leaks)
    fold_copies: dict = {}  # (i, j) -> fold_leaks, shared by the configurations
    out = {}
    for label, c in configs.items():
        scores, status, seconds = np.full((5, 2), np.nan), [], 0.0
        for i, (h0, h1) in enumerate(splits):
            for j, (tr, te) in enumerate(((h0, h1), (h1, h0))):
                fold = fold_dataset(ds, tr, te, val_fraction=val_fraction, seed=seed)
                if (i, j) not in fold_copies:
                    fold_copies[i, j] = fold_leaks(fold, pairs, cv_rows, np.concatenate([tr, te]))
                r = run_model(c["model"], fold, Path(run_dir) / "cv5x2" / _folder(label) / f"r{i}f{j}",
                              copies=fold_copies[i, j],
                              train_config=c["train_config"], model_kwargs=c.get("model_kwargs") or {},
                              eval_splits=(CV_TEST,), seed=seed, label=f"{label} r{i}f{j}",
                              input_size=int((input_sizes or {}).get(c["model"], input_size)), **run_kwargs)
                scores[i, j] = r[f"{CV_TEST}_accuracy"]
                status.append(r["status"])
                seconds += float(r.get("train_seconds", 0.0))
        out[label] = {"scores": scores, "status": status, "train_seconds": round(seconds, 1)}
    return out


def _folder(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def configurations(best_config_path, table_xii_models, table_xiii_pairs, *, train_config: dict,
                   model_kwargs: dict | None = None, cv_train_config: dict | None = None,
                   table_xiii_use_tuned: bool = True) -> tuple:
    """The 5x2cv configurations and comparisons.

    Table XII: each model of ``best_config.json`` (or those named) default vs tuned (notebook 05's default and best
    configurations). Table XIII: each pair of models, tuned where 05 tuned them (``table_xiii_use_tuned``), else
    ``train_config`` (with ``model_kwargs``).
    ``cv_train_config`` overrides every configuration (the profile's 5x2cv budget, e.g. fewer epochs).

    Returns:
        ``(configs, comparisons)``: ``{label: config}`` and ``[(family, label_a, label_b)]``.
    """
    best = json.loads(Path(best_config_path).read_text()) if best_config_path else {}
    over = dict(cv_train_config or {})
    configs, comparisons = {}, []

    def tuned(model, use_tuned=True):
        if use_tuned and model in best:
            return f"{model} tuned", {"model": model, "train_config": {**best[model]["train_config"], **over},
                                      "model_kwargs": best[model].get("model_kwargs") or {}}
        return f"{model}", {"model": model, "train_config": {**train_config, **over},
                            "model_kwargs": (model_kwargs or {}).get(model) or {}}

    for model in (table_xii_models or list(best)):
        if model not in best:
            print(f"Table XII: {model} has no tuned configuration in {best_config_path}; left out")
            continue
        default = best[model].get("default")
        if not default:
            print(f"Table XII: {best_config_path} has no default configuration for {model}; left out")
            continue
        configs[f"{model} default"] = {"model": model, "train_config": {**default["train_config"], **over},
                                       "model_kwargs": default.get("model_kwargs") or {}}
        label, cfg = tuned(model)
        configs[label] = cfg
        comparisons.append(("Table XII: default vs tuned", f"{model} default", label))
    for a, b in table_xiii_pairs or []:
        (la, ca), (lb, cb) = tuned(a, table_xiii_use_tuned), tuned(b, table_xiii_use_tuned)
        la, lb = _same_as(configs, la, ca), _same_as(configs, lb, cb)
        configs[la], configs[lb] = ca, cb
        comparisons.append(("Table XIII: model vs model", la, lb))
    return configs, comparisons


def _same_as(configs: dict, label: str, config: dict) -> str:
    """The label of an identical configuration already listed (same model, training config and builder arguments),
    else ``label``: a Table XIII model trained exactly as Table XII's default or tuned one reuses its ten folds
    instead of training them again (same seed, so the folds would be the same runs)."""
    from fer_utils.train.config import TrainConfig

    def key(c):
        return (c["model"], TrainConfig.from_dict(c["train_config"]).to_dict(), c.get("model_kwargs") or {})

    for other, c in configs.items():
        if key(c) == key(config):
            print(f"Table XIII: {label!r} is trained exactly as {other!r}; its 5x2cv scores are reused")
            return other
    return label


def compare_5x2cv(results: dict, comparisons, *, alpha: float = 0.05) -> pd.DataFrame:
    """Dietterich's t, Alpaydin's F and the 4-df replication t for each comparison, Holm-adjusted per family and
    test (:data:`HOLM_FAMILIES`), with the effect size and the verdict at ``alpha``; the 4-df t is descriptive.
    ``detectable difference (80% power)``: the smallest true accuracy difference Dietterich's t would detect at
    ``alpha`` with 80% power given the observed fold variance (``stats.detectable_difference_5x2cv``, noncentral t),
    so "no significant difference" can be read as "smaller than this" rather than "none"."""
    rows = []
    for family, a, b in comparisons:
        sa, sb = results[a]["scores"], results[b]["scores"]
        effect = stats.effect_size_5x2cv(sa, sb)
        detectable = stats.detectable_difference_5x2cv(sa, sb, alpha=alpha)
        for test, fn in ((DIETTERICH_T, stats.paired_ttest_5x2cv), (ALPAYDIN_F, stats.combined_ftest_5x2cv),
                         (REPLICATION_T, stats.replication_ttest)):
            statistic, p = fn(sa, sb)
            rows.append({"family": family, "test": test, "model A": a, "model B": b, "score": SCORE_5X2,
                         "mean A": float(sa.mean()), "mean B": float(sb.mean()), "statistic": statistic, "p": p,
                         "effect": f"mean difference {effect['mean difference']:+.4f}, d_z {effect['cohen d_z']:.2f}",
                         "detectable difference (80% power)": detectable})
    return _adjust(pd.DataFrame(rows), alpha)


def _adjust(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Holm within each (family, test) (:data:`HOLM_FAMILIES`); descriptive tests get no adjusted p and no verdict."""
    if table.empty:
        return table
    table = table.copy()
    table["adjusted p"] = np.nan
    corrected = ~table["test"].isin(DESCRIPTIVE_TESTS)
    for _, idx in table[corrected].groupby(["family", "test"]).groups.items():
        adjusted, _ = stats.holm(table.loc[idx, "p"].to_numpy(), alpha)
        table.loc[idx, "adjusted p"] = adjusted
    table["verdict"] = np.where(table["adjusted p"] < alpha, f"differ (Holm, alpha={alpha})",
                                f"no significant difference (Holm, alpha={alpha})")
    table.loc[~corrected, "verdict"] = "descriptive only (4-df t ignores the dependence between replications)"
    return table


def holm_families() -> pd.DataFrame:
    """Which comparisons form a Holm family, and why (:data:`HOLM_FAMILIES`), for the report."""
    return pd.DataFrame(HOLM_FAMILIES, columns=["family", "why"])


def model_runs(run_dir, reports_dir, notebooks) -> dict:
    """Every model run (a folder with ``predictions.npz``) of the given notebooks: ``{"03:cnn": folder}``."""
    from fer_utils.experiments.results import sibling_run

    found = {}
    for nb in notebooks:
        root = sibling_run(run_dir, reports_dir, nb)
        for pred in sorted(root.glob(f"**/{runs.PREDICTIONS_FILE}")) if root.is_dir() else []:
            rel = pred.parent.relative_to(root)
            if rel.parts and rel.parts[0] in ("cv5x2", "effect") or runs.REPLACED_PREFIX in str(rel):
                continue
            found[f"{nb[:2]}:{'/'.join(rel.parts)}"] = pred.parent
        if not root.is_dir():
            print(f"{root} not found: notebook {nb}'s models are left out (run it first: python -m fer_utils.run "
                  f"--profile <profile> --only {nb[:2]})")
    if not found:
        print("no trained models found: McNemar and the bootstrap intervals have nothing to compare; they need "
              f"notebooks {', '.join(n[:2] for n in notebooks)} of the same profile")
    return found


def test_copies(ds: D.FERDataset) -> set:
    """Source ids of the test images that copy a training image: byte copies, near-duplicates and mirrors
    (``data.leaked_rows``; load before subsampling: all of Training counts).

    Notebook 06 compares models of several notebooks, so it leaves out copies of *any* training image; a run's own
    ``<split>_dedup_accuracy`` (``experiments.seeds.dedup_scores``) leaves out copies of the training rows of the data
    it was trained on. The two agree when the run used all of Training (the cpu and paper profiles' notebook 03).
    """
    return set(ds.source_ids[D.leaked_rows(ds)].astype(str).tolist())


def _predictions(folder, split: str, exclude=None):
    p = runs.load_predictions(folder)
    if p["split"] is None or split not in set(p["split"]):
        return None
    mask = p["split"] == split
    if exclude is not None:
        mask &= ~np.isin(np.asarray(p["source_ids"]).astype(str), list(exclude))
    metrics = runs.read_metrics(folder)
    checksum = metrics["headline"].get("data_checksum", "")
    dataset = (metrics.get("metadata", {}).get("data") or {}).get("name", "")
    classes = tuple(p["class_names"] or ())
    return p["y_true"][mask], p["y_pred"][mask], np.asarray(p["source_ids"])[mask], (dataset, checksum), classes


def same_data_groups(preds: dict) -> dict:
    """Runs that may be paired: scored on the same dataset (its name and data checksum), label set (class names)
    and samples (the same source ids and labels in the same order). ``preds``: ``{name: _predictions(...)}``.

    Equal samples are not enough: without a dataset the FER+ and CK+ stand-ins are the synthetic FER-2013 faces
    under another name (same pixels, labels and checksum), and a model trained as "FER+" is no FER-2013 model. A run
    without a recorded checksum pairs with nothing.
    """
    groups = {}
    for name, (y, _, ids, (dataset, checksum), classes) in preds.items():
        if not checksum:
            print(f"{name}: no data checksum recorded; left out of the pairwise tests")
            continue
        groups.setdefault((dataset, checksum, classes, hash((tuple(map(str, ids)), y.tobytes()))), []).append(name)
    return groups


def mcnemar_table(found: dict, split: str, *, alpha: float = 0.05, exclude=None) -> pd.DataFrame:
    """McNemar for every pair of runs on ``split`` (the same samples in the same order), Holm-adjusted.

    ``exclude``: source ids left out (:func:`test_copies`); the rows then form their own family, ``(dedup)``.
    """
    preds = {k: v for k, v in ((k, _predictions(f, split, exclude)) for k, f in found.items()) if v is not None}
    tag = f"{split} (dedup)" if exclude is not None else split
    # Only runs scored on the same data, label set and samples are paired (same_data_groups): FER-2013 models with
    # each other, FER+ models with each other, never across.
    groups = same_data_groups(preds)
    if len(groups) > 1:
        print(f"{split}: {len(groups)} different datasets or sample sets; pairs are formed within each: "
              + "; ".join(", ".join(g) for g in groups.values()))
    rows = []
    for a, b in (pair for g in groups.values() for pair in itertools.combinations(g, 2)):
        (ya, pa, *_), (yb, pb, *_) = preds[a], preds[b]
        r = stats.mcnemar_test(ya, pa, pb)
        discordant = r["a right b wrong"] + r["a wrong b right"]
        notes = []
        if discordant < FEW_DISCORDANT:
            notes.append(f"under-powered: {discordant} discordant samples")
        rows.append({"family": "McNemar, every pair" + (" (dedup)" if exclude is not None else ""),
                     "test": MCNEMAR, "method": r["method"], "model A": a, "model B": b,
                     "score": f"per-sample correctness on {tag}", "mean A": float((pa == ya).mean()),
                     "mean B": float((pb == yb).mean()), "statistic": r["statistic"], "p": r["p"],
                     "effect": f"accuracy difference {(pa == ya).mean() - (pb == yb).mean():+.4f}, "
                               f"odds ratio {r['odds ratio']:.2f} ({r['a right b wrong']}/{r['a wrong b right']})",
                     "n": r["n"], "discordant": discordant,
                     "detectable difference (80% power)": stats.detectable_difference_mcnemar(
                         r["n"], discordant, alpha=alpha),
                     "warning": "; ".join(notes)})
    table = _adjust(pd.DataFrame(rows), alpha)
    for _, r in table.iterrows():
        if r.get("warning"):
            print(f"warning: {r['model A']} vs {r['model B']}: {r['warning']}")
    return table


def bootstrap_table(found: dict, split: str, *, n: int = 1000, seed: int = 0, alpha: float = 0.05,
                    exclude=None) -> pd.DataFrame:
    """Accuracy and macro-F1 of every run on ``split`` with percentile bootstrap intervals.

    ``exclude``: source ids left out (:func:`test_copies`); the split is then named ``<split> (dedup)``.
    """
    rows = []
    for name, folder in found.items():
        p = _predictions(folder, split, exclude)
        if p is None:
            continue
        ci = stats.bootstrap_ci(p[0], p[1], n=n, seed=seed, alpha=alpha, num_classes=len(p[4]) or None)
        rows.append({"model": name, "split": f"{split} (dedup)" if exclude is not None else split, "n": len(p[0]),
                     **{f"{m} {k}": v for m in ("accuracy", "macro_f1") for k, v in zip(("", "low", "high"), ci[m])}})
    df = pd.DataFrame(rows)
    return df.rename(columns=lambda c: c.strip()).set_index("model") if len(df) else df


def report_split_of(found: dict, report_split: str = "") -> str:
    """The test split to compare on: ``report_split``, else PrivateTest when the runs have it, else the last."""
    names = []
    for folder in found.values():
        p = runs.load_predictions(folder)
        names += [s for s in dict.fromkeys(p["split"].tolist()) if s not in names] if p["split"] is not None else []
    if report_split:
        return report_split
    return "PrivateTest" if "PrivateTest" in names else (names[-1] if names else "")


def score_tables(cv: dict) -> pd.DataFrame:
    """Every configuration's ten fold scores (replication x fold), mean and sd, and how each fold run ended."""
    rows = []
    for label, r in cv.items():
        row = {"configuration": label, **{f"r{i}f{j}": r["scores"][i, j] for i in range(5) for j in range(2)}}
        row.update({"mean": float(r["scores"].mean()), "sd": float(r["scores"].std(ddof=1)),
                    "runs": ", ".join(f"{n} {s}" for s, n in pd.Series(r["status"]).value_counts().items()),
                    "train seconds": r["train_seconds"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("configuration") if rows else pd.DataFrame()


def study_a_pvalues() -> pd.DataFrame:
    """Study A's published (t, p) pairs with the p of a two-sided t at 4 and at 5 degrees of freedom."""
    from fer_utils.experiments.published import published

    rows = []
    for r in published()["study_a_5x2cv"]:
        p4, p5 = stats.t_pvalue(r["t"], 4), stats.t_pvalue(r["t"], 5)
        # A p "fits" when it is within 10% of the published value (published to three decimals).
        fits = [name for name, p in (("t, 4 df", p4), ("t, 5 df (Dietterich)", p5))
                if abs(p - r["p"]) <= 0.1 * r["p"]]
        rows.append({"table": r["table"], "comparison": r["comparison"], "t": r["t"], "published p": r["p"],
                     "p, 4 df": round(p4, 4), "p, 5 df": round(p5, 4), "fits": ", ".join(fits) or "neither"})
    return pd.DataFrame(rows)


def write_tests(run_dir, *tables: pd.DataFrame) -> pd.DataFrame:
    """``tests.csv``: one row per comparison (test, model A, model B, score, statistic, p, adjusted p, verdict...)."""
    frames = [t for t in tables if t is not None and len(t)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["family", "test", "model A", "model B", "score", "statistic", "p", "adjusted p", "verdict"])
    df.to_csv(Path(run_dir) / TESTS_FILE, index=False)
    return df


def headline(tests: pd.DataFrame, cv: dict, alpha: float = 0.05) -> dict:
    """Index-page numbers: rows of ``tests.csv``, model pairs compared and how many differ after Holm at ``alpha``
    by their primary test (:data:`PRIMARY_TESTS`; a pair differs when it does in any family), each 5x2cv t and p."""
    primary = tests[tests["test"].isin(PRIMARY_TESTS)] if len(tests) else tests
    pairs = {}
    for _, r in primary.iterrows() if len(primary) else []:
        key = frozenset((r["model A"], r["model B"]))
        pairs[key] = pairs.get(key, False) or bool(r["adjusted p"] < alpha)
    out = {"comparisons": int(len(tests)), "model pairs compared": len(pairs),
           f"model pairs that differ (Holm, alpha={alpha})": int(sum(pairs.values()))}
    def number(x, digits):  # None where a statistic is undefined (identical models): JSON has no NaN
        return round(float(x), digits) if np.isfinite(float(x)) else None

    for _, r in tests[tests.test == DIETTERICH_T].iterrows() if len(tests) else []:
        out[f"{r['model A']} vs {r['model B']} t"] = number(r.statistic, 3)
        out[f"{r['model A']} vs {r['model B']} p"] = number(r.p, 4)
    out["5x2cv trainings"] = int(sum(len(v["status"]) for v in cv.values()))
    return out
