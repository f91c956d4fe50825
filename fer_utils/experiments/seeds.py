"""Seeds, ensembles and honest test numbers for a table of trained runs.

Owns three things the training notebooks report for every model (seeds: notebook 03's ``seeds``; deduplicated
scores: every run of ``run_model``):

- **Seeds**: one recipe trained with several training seeds, each in ``<run>/<model>/seed<k>/`` (the data split
  stays the notebook's: only initialisation, shuffling and augmentation change), summarised as mean and
  sample standard deviation over seeds (:func:`seed_summary`); seed runs of one recipe kept in folders of their own
  (``benchmarks/recipe.py``'s ``e<epochs>-s<k>/<variant>/``) side by side with McNemar against the first seed, their
  mean, sd and ensemble (:func:`seed_table`, refusing runs whose recipes differ in more than the seed); a variant
  against the reference seed by seed, with a paired t-test over seeds and what it could have detected
  (:func:`variant_by_seed`).
- **Ensembles**: ``<run>/<model>/ensemble/`` averages the seed runs' probabilities (each member with its own
  preprocessing and TTA); it is an ordinary run folder for every reader (``metrics.json``, ``predictions.npz``)
  and a first-class model for users (``predictor.load_predictor`` on the folder or on a list of run folders).
- **Deduplicated scores**: FER-2013's test splits hold copies of training images: 280 PublicTest and 288
  PrivateTest byte copies, and as many again re-cropped, re-exposed or mirrored (``data.leaked_rows``), some with
  other labels. :func:`add_dedup_scores` adds accuracy and macro-F1 on each test split without any of them
  (``<split>_dedup_accuracy``; ``<split>_copies`` counts the byte copies, ``<split>_near_copies`` all rows left
  out), computed from the saved predictions, so reused runs get them too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import progress, runs
from fer_utils import data as D

ENSEMBLE_DIR = "ensemble"
DEDUP = "_dedup"


def seed_dir(model: str, seed: int) -> str:
    """The run folder of one seed, relative to the notebook's run folder (also the results table's index)."""
    return f"{model}/seed{int(seed)}"


def check_seeds(seeds) -> list:
    """The training seeds as distinct ints (empty: one run with the notebook's seed).

    Raises:
        ValueError: not a list of distinct non-negative integers (names what was received).
    """
    if seeds is None or (isinstance(seeds, (list, tuple)) and not seeds):
        return []
    ok = isinstance(seeds, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in seeds)
    if not ok or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r}: expected a list of distinct integers >= 0 (e.g. [42, 43, 44]), or [] "
                         "for one run with `seed`")
    return [int(s) for s in seeds]


def _scores(y, prob_or_pred, class_names) -> dict:
    from fer_utils import evaluate

    m = evaluate.compute_metrics(y, prob_or_pred, class_names)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def averaged(preds: dict) -> dict:
    """The mean probabilities of predictions scored on the same samples (``{name: runs.load_predictions(...)}``, in
    order), as one set of predictions: the first member's labels, splits and ids, ``y_pred`` the mean's arg-max.

    Raises:
        ValueError: fewer than two members, or a member scored on other samples (named, with the first).
    """
    if len(preds) < 2:
        raise ValueError(f"an ensemble needs two or more different members, got {list(preds)}")
    (first, p0), *rest = preds.items()
    for name, p in rest:
        if not all(p.get(k) is not None and p0.get(k) is not None and np.array_equal(p[k], p0[k])
                   for k in ("y_true", "split", "source_ids")):
            raise ValueError(f"{name} was scored on other samples than {first}; members must be evaluated on the same "
                             "test rows")
    prob = np.mean([np.asarray(p["y_prob"], dtype=np.float64) for p in preds.values()], axis=0).astype(np.float32)
    return {**p0, "y_prob": prob, "y_pred": prob.argmax(axis=1).astype(np.int64)}


def evaluate_ensemble(model: str, member_dirs, ds: D.FERDataset, out_dir) -> dict:
    """The ensemble of finished runs: their saved test probabilities averaged, written as a run folder.

    The members' ``predictions.npz`` hold each member's probabilities after its own preprocessing and TTA, so the
    mean is what ``predictor.load_predictor(out_dir).predict`` returns on the same images (to float32 rounding; tested).
    An earlier ensemble in ``out_dir`` with the same members and probabilities is reused; any other is moved to
    ``replaced-<time>/`` first (its ``ensemble.json`` names members relative to the ensemble folder, so a moved-aside
    copy is kept for its numbers, not for loading).

    Raises:
        ValueError: members scored on different samples or trained on different data (names the runs).
    """
    from fer_utils import evaluate

    member_dirs = [Path(d) for d in member_dirs]
    preds = [runs.load_predictions(d) for d in member_dirs]
    checksums = [runs.read_metrics(d)["headline"].get("data_checksum", "") for d in member_dirs]
    first = preds[0]
    try:
        prob = averaged(dict(zip(map(str, member_dirs), preds)))["y_prob"] if len(preds) > 1 else first["y_prob"]
    except ValueError as err:
        raise ValueError(f"Ensemble {out_dir}: {err}") from None
    if len(set(checksums)) > 1:
        raise ValueError(f"Ensemble {out_dir}: members trained on different data (checksums "
                         f"{dict(zip(map(str, member_dirs), checksums))})")
    out_dir = Path(out_dir)
    if runs.finished_files(out_dir):
        try:
            earlier = runs.load_predictions(out_dir)
            same = (earlier["y_prob"].shape == prob.shape and np.array_equal(earlier["y_prob"], prob)
                    and [Path(m) for m in runs.ensemble_members(out_dir)] == [d.resolve() for d in member_dirs]
                    and (out_dir / runs.METRICS_FILE).exists())
        except (OSError, ValueError):  # an unreadable or half-written earlier ensemble counts as changed
            same = False
        if same:
            stored = runs.read_metrics(out_dir)["headline"]
            progress.report(f"{model} ensemble: unchanged members, results reused")
            return {"model": model, **stored}
        moved = runs.move_aside(out_dir)
        progress.report(f"{model} ensemble: members changed; the earlier ensemble moved to {moved}")
    runs.write_ensemble(out_dir, member_dirs, checksums=checksums)
    runs.save_predictions(out_dir, first["y_true"], prob, source_ids=first["source_ids"], split=first["split"],
                          class_names=list(ds.class_names))
    row = {"model": model, "members": len(member_dirs), "data_checksum": checksums[0]}
    per_split = {}
    for split in dict.fromkeys(first["split"].tolist()):
        mask = first["split"] == split
        m = evaluate.compute_metrics(first["y_true"][mask], prob[mask], ds.class_names)
        per_split[split] = m
        row[f"{split}_accuracy"], row[f"{split}_macro_f1"] = m["accuracy"], m["macro_f1"]
    row["train_seconds"] = float(sum(runs.read_metrics(d)["headline"].get("train_seconds", 0.0) for d in member_dirs))
    row.update(dedup_scores(out_dir, ds))
    runs.write_metrics(out_dir, {k: v for k, v in row.items() if k != "model"},
                       {"members": [str(d) for d in member_dirs]}, model=model, splits=per_split,
                       class_names=list(ds.class_names))
    progress.report(f"{model} ensemble of {len(member_dirs)}: " + ", ".join(
        f"{s} {per_split[s]['accuracy']:.4f}" for s in per_split))
    return row


def leaks(ds: D.FERDataset, family: np.ndarray | None = None) -> tuple:
    """``(byte copies, all leaked)``: source ids of the test rows that copy a Training or Validation image byte for
    byte, and of those whose near-duplicate family holds one (byte copies, re-crops, re-exposures, mirrors).
    ``family``: ``data.families`` of ``ds``, when already computed."""
    exact = set(ds.source_ids[D.copies_of_training(ds)].astype(str).tolist())
    return exact, exact | set(ds.source_ids[D.leaked_rows(ds, family=family)].astype(str).tolist())


def dedup_scores(folder, ds: D.FERDataset, copies: tuple | None = None) -> dict:
    """Accuracy and macro-F1 of a run's saved predictions on each test split without its copies of training images.

    "Copies" are the test images whose near-duplicate family holds a Training or Validation image of ``ds``: byte
    copies, re-crops, re-scalings, re-exposures and mirrors (``data.leaked_rows``).

    Returns ``{<split>_dedup_accuracy, <split>_dedup_macro_f1, <split>_copies (byte copies),
    <split>_near_copies (every row left out)}`` ({} without ``predictions.npz`` or without source ids).
    ``copies``: :func:`leaks` of ``ds``, when already computed.
    """
    folder = Path(folder)
    if not (folder / runs.PREDICTIONS_FILE).exists():
        return {}
    p = runs.load_predictions(folder)
    if p["split"] is None or p["source_ids"] is None:
        return {}
    exact, leaked = leaks(ds) if copies is None else copies
    ids = np.asarray(p["source_ids"]).astype(str)
    is_copy, is_leak = np.isin(ids, list(exact)), np.isin(ids, list(leaked))
    out = {}
    for split in dict.fromkeys(p["split"].tolist()):
        keep = (p["split"] == split) & ~is_leak
        s = _scores(p["y_true"][keep], p["y_pred"][keep], ds.class_names)
        out[f"{split}{DEDUP}_accuracy"] = s["accuracy"]
        out[f"{split}{DEDUP}_macro_f1"] = s["macro_f1"]
        out[f"{split}_copies"] = int(((p["split"] == split) & is_copy).sum())
        out[f"{split}_near_copies"] = int(((p["split"] == split) & is_leak).sum())
    return out


def add_dedup_scores(results: pd.DataFrame, ds: D.FERDataset, run_dir=None, *, folders: dict | None = None
                     ) -> pd.DataFrame:
    """``results`` with :func:`dedup_scores` of each row's run folder: ``folders[row]`` when given (folders under
    any parents), else the row's name relative to ``run_dir``."""
    copies = leaks(ds)
    out = results.copy()
    for name in results.index:
        folder = folders[name] if folders is not None else Path(run_dir) / str(name)
        for key, value in dedup_scores(folder, ds, copies).items():
            out.loc[name, key] = value
    return out


def seed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample sd over seeds of every accuracy/macro-F1 column, per model, next to its ensemble.

    Rows: ``<model> (n seeds)`` with ``mean +- sd`` cells, and ``<model> ensemble`` with the ensemble's scores.
    Empty when no model has seed runs.
    """
    if "seed" not in results:
        return pd.DataFrame()
    metrics = [c for c in results.columns if c.endswith(("_accuracy", "_macro_f1")) and "Validation" not in c]
    rows = []
    seeded = results[results["seed"].notna()]
    for model, group in seeded.groupby("arch", sort=False):
        vals = group[metrics].astype(float)
        row = {"model": f"{model} ({len(group)} seeds)", "train minutes (mean)":
               round(float(group["train_seconds"].mean()) / 60, 1) if "train_seconds" in group else np.nan}
        for c in metrics:
            sd = vals[c].std(ddof=1) if len(vals) > 1 else 0.0
            row[c] = f"{vals[c].mean():.4f} +- {sd:.4f}"
        rows.append(row)
        ens = f"{model}/{ENSEMBLE_DIR}"
        if ens in results.index:
            rows.append({"model": f"{model} ensemble", **{c: f"{float(results.loc[ens, c]):.4f}" for c in metrics
                                                          if pd.notna(results.loc[ens, c])}})
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def check_seed_runs(folders: dict) -> tuple[dict, str]:
    """``({seed: folder}, model name)`` of finished runs of one recipe that differ only in their seed.

    Raises:
        ValueError: fewer than two seeds; a folder without finished results or without ``recipe.json`` (a
            rescored TTA or last-epoch variant has none: table the trained variant); a folder trained with another
            seed than listed; recipes that differ in more than the seed (names the folder and the keys).
    """
    if len(folders) < 2:
        raise ValueError(f"a seed table needs at least two seeds' run folders, got {sorted(folders)}")
    folders = {int(s): Path(f) for s, f in folders.items()}
    recipes = {}
    for s, f in folders.items():
        if runs.run_state(f) != "finished":
            raise ValueError(f"{f}: seed {s} has no finished results (state {runs.run_state(f)!r}); train it first")
        stored = runs.read_recipe(f)
        if stored is None:
            raise ValueError(f"{f}: no {runs.RECIPE_FILE}, so not a trained run (a TTA or last-epoch variant rescores "
                             "another run's model); table the variant that trained it, e.g. full")
        if stored.get("seed") != s:
            raise ValueError(f"{f}: trained with seed {stored.get('seed')!r} ({runs.RECIPE_FILE}), listed as seed {s}")
        recipes[s] = {k: v for k, v in stored.items() if k != "seed"}
    first = next(iter(folders))
    for s, r in recipes.items():
        diff = runs.recipe_differences(recipes[first], r)
        if diff:
            raise ValueError(f"{folders[s]}: its recipe differs from {folders[first]}'s in {diff}, not only the seed")
    return folders, str(recipes[first].get("model", "model"))


def seed_table(folders: dict, ds: D.FERDataset, *, split: str, ensemble_dir) -> pd.DataFrame:
    """One recipe over training seeds: a row per seed, their mean and sample sd, and their ensemble.

    ``folders``: ``{seed: finished run folder}`` of one variant, whose recipes may differ only in the seed (checked:
    another recipe in a folder is an error naming it). The ensemble averages the seeds' saved test probabilities
    (each with its own TTA: :func:`evaluate_ensemble`, which refuses members trained on other data or scored on other
    images) into the run folder ``ensemble_dir``. Columns are :func:`fer_utils.experiments.recipe.compare_runs`'s
    against the first seed (difference and McNemar's p on ``split``) plus each run's ``precision``; the rows
    ``mean of <n> seeds`` and ``sd of <n> seeds`` summarise the seed rows' scores, train minutes and best validation
    accuracy; train minutes only when every seed recorded the same precision (else they come from unlike or unknown
    machines, e.g. a bf16 CPU and an AVX2-only one, and are left empty; a run is never resumed in another precision
    than it started in, :mod:`fer_utils.train.backup`).

    Raises:
        ValueError: as :func:`check_seed_runs`.
    """
    from fer_utils.experiments.recipe import compare_runs

    folders, model = check_seed_runs(folders)
    first = next(iter(folders))
    evaluate_ensemble(model, list(folders.values()), ds, ensemble_dir)
    named = {f"seed {s}": f for s, f in folders.items()}
    named[f"ensemble of {len(folders)}"] = Path(ensemble_dir)
    table = compare_runs(named, ds, split=split, reference=f"seed {first}", index="run")
    table.insert(0, "precision", [runs.read_metrics(f)["metadata"].get("precision", "") if name.startswith("seed ")
                                  else "" for name, f in named.items()])
    seeds = table.loc[[f"seed {s}" for s in folders]].select_dtypes("number")
    precisions = table.loc[[f"seed {s}" for s in folders], "precision"].fillna("")
    mixed = precisions.eq("").any() or precisions.nunique() > 1  # minutes of unlike (or unknown) machines
    seeds = seeds[[c for c in seeds.columns if c.endswith(("_accuracy", "_macro_f1")) or c == "best val acc"
                   or (c == "train minutes" and not mixed)]]
    table.loc[f"mean of {len(folders)} seeds", seeds.columns] = seeds.mean()
    table.loc[f"sd of {len(folders)} seeds", seeds.columns] = seeds.std(ddof=1)
    return table


def seed_markdown(table: pd.DataFrame, *, split: str = "PrivateTest") -> str:
    """:func:`seed_table` as Markdown: per run its precision, train minutes, best validation accuracy, ``split``
    accuracy / macro-F1 as published and deduplicated, the difference to the first seed (dedup), McNemar's p with the
    discordant counts, and the other test split's accuracy (dedup); the mean and sd rows without the comparisons."""
    from fer_utils.experiments.recipe import _cell

    other = next((c[: -len("_accuracy")] for c in table.columns if c.endswith("_accuracy") and DEDUP not in c
                  and not c.startswith((split, "best"))), None)
    diff_col = next((c for c in table.columns if c.startswith("diff vs ") and c.endswith(f"({split})")), None)
    first = diff_col[len("diff vs "): -len(f" ({split})")] if diff_col else "seed"
    disc = next((c for c in table.columns if c.startswith("discordant")), "")
    head = ["run", "precision", "train min", "best val", f"{split} acc / F1", f"{split} dedup acc / F1",
            f"diff vs {first} (dedup)", f"McNemar p ({first} right / run right)"] + (
        [f"{other} acc (dedup)"] if other else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in table.iterrows():
        p = r.get("McNemar p")
        compared = isinstance(p, float) and not np.isnan(p)
        summary = str(name).startswith(("mean of", "sd of"))
        cells = [str(name), _cell(r.get("precision")), _cell(r.get("train minutes"), "{:.1f}"),
                 _cell(r.get("best val acc")),
                 *(f"{_cell(r.get(f'{split}{d}_accuracy'))} / {_cell(r.get(f'{split}{d}_macro_f1'), '{:.3f}')}"
                   for d in ("", DEDUP)),
                 "-" if summary or not diff_col or name == first else
                 f"{r.get(diff_col):+.4f} ({r.get(f'{diff_col[:-1]}, dedup)'):+.4f})",
                 f"{p:.2g} ({r.get(disc)})" if compared and not summary else "-"]
        if other:
            cells.append(f"{_cell(r.get(f'{other}_accuracy'))} ({_cell(r.get(f'{other}{DEDUP}_accuracy'))})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: :func:`variant_by_seed`'s rows of what its paired t-test could detect.
SIGNIFICANT = "smallest significant mean (95% half-width)"
POWER80 = "found with 80% power (t approximation)"


def variant_by_seed(reference: dict, variant: dict, ds: D.FERDataset, *, split: str,
                    ensembles: tuple | None = None, names: tuple = ("full", "variant")) -> pd.DataFrame:
    """A variant against the reference recipe seed by seed: one row per seed pair (both accuracies on ``split``,
    the difference as published and deduplicated, McNemar's p with its discordant counts), the pair of ensembles
    (``ensembles``: the two ensemble run folders of :func:`seed_table`, when given), then over the seed pairs the
    mean difference, its sample sd, a paired t-test's p (H0: the mean difference over seeds is 0; n - 1 degrees of
    freedom, so with three seeds it detects only differences large against their spread), the 95% interval of the
    mean difference, the smallest mean difference that test would call significant at 0.05 with this spread (the
    interval's half-width: a true difference of that size is found only about half the time) and the true difference
    it would find with about 80% power ((t_0.975 + t_0.80) x sd / sqrt(n), the usual t approximation). With sd 0 the
    p is 1 for a mean of 0 and undefined (NaN) otherwise.

    ``reference`` and ``variant``: ``{seed: finished run folder}`` with the same seeds, each side one recipe (checked
    as :func:`check_seed_runs`). Columns ``<names[0]>`` / ``<names[1]>`` hold the accuracies.

    Raises:
        ValueError: different seeds on the two sides; a side as :func:`check_seed_runs`; runs scored on other images.
    """
    from scipy import stats as st

    from fer_utils.experiments.recipe import compare_runs

    if sorted(map(int, reference)) != sorted(map(int, variant)):
        raise ValueError(f"variant_by_seed: the reference has seeds {sorted(reference)}, the variant "
                         f"{sorted(variant)}; compare the same seeds")
    reference, _ = check_seed_runs(reference)
    variant, _ = check_seed_runs(variant)
    a, b = names
    pairs = {f"seed {s}": (reference[s], variant[s]) for s in sorted(reference)}
    if ensembles is not None:
        pairs[f"ensemble of {len(reference)}"] = tuple(Path(e) for e in ensembles)
    acc, dacc = f"{split}_accuracy", f"{split}{DEDUP}_accuracy"
    rows = {}
    for name, (ref_dir, var_dir) in pairs.items():
        t = compare_runs({a: ref_dir, b: var_dir}, ds, split=split, reference=a)
        rows[name] = {a: t.loc[a, acc], b: t.loc[b, acc], "diff": t.loc[b, acc] - t.loc[a, acc],
                      f"{a} dedup": t.loc[a, dacc], f"{b} dedup": t.loc[b, dacc],
                      "diff dedup": t.loc[b, dacc] - t.loc[a, dacc], "McNemar p": t.loc[b, "McNemar p"],
                      f"discordant ({a} right / {b} right)": t.loc[b, f"discordant ({a} right / run right)"]}
    table = pd.DataFrame.from_dict(rows, orient="index")
    diffs = table.loc[[f"seed {s}" for s in sorted(reference)], ["diff", "diff dedup"]]
    n = len(diffs)
    crit = float(st.t.ppf(0.975, n - 1))
    mean, sd = diffs.mean(), diffs.std(ddof=1)
    half = crit * sd / np.sqrt(n)
    table.loc[f"mean over {n} seeds", ["diff", "diff dedup"]] = mean
    table.loc[f"sd over {n} seeds", ["diff", "diff dedup"]] = sd
    power80 = (crit + float(st.t.ppf(0.80, n - 1))) * sd / np.sqrt(n)
    for col in ("diff", "diff dedup"):
        p = float(st.ttest_1samp(diffs[col], 0.0).pvalue) if sd[col] > 0 else (1.0 if mean[col] == 0 else np.nan)
        table.loc["paired t-test over seeds: p", col] = p
        table.loc["95% interval of the mean: low", col] = mean[col] - half[col]
        table.loc["95% interval of the mean: high", col] = mean[col] + half[col]
        table.loc[SIGNIFICANT, col] = half[col]
        table.loc[POWER80, col] = power80[col]
    return table


def variant_by_seed_markdown(table: pd.DataFrame, *, names: tuple = ("full", "variant")) -> str:
    """:func:`variant_by_seed` as Markdown: the seed and ensemble rows with both accuracies (dedup), the difference
    (dedup) and McNemar's p (discordant counts); then the summary rows with the difference columns only."""
    a, b = names
    disc = f"discordant ({a} right / {b} right)"
    head = ["", f"`{a}` acc (dedup)", f"`{b}` acc (dedup)", "diff (dedup)", f"McNemar p ({a} right / {b} right)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in table.iterrows():
        if isinstance(r.get(disc), str):  # a seed or ensemble pair
            cells = [str(name), f"{r[a]:.4f} ({r[f'{a} dedup']:.4f})", f"{r[b]:.4f} ({r[f'{b} dedup']:.4f})",
                     f"{r['diff']:+.4f} ({r['diff dedup']:+.4f})", f"{r['McNemar p']:.2g} ({r[disc]})"]
        elif str(name).startswith("paired t-test"):
            cells = [str(name), "", "", f"{r['diff']:.2g} ({r['diff dedup']:.2g})", ""]
        else:
            signed = "{:.4f}" if str(name).startswith("sd over") or name in (SIGNIFICANT, POWER80) else "{:+.4f}"
            cells = [str(name), "", "", f"{signed.format(r['diff'])} ({signed.format(r['diff dedup'])})", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
