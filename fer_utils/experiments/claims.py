"""Notebook 06's last word: what this profile's evidence says about each claim of the studies, and with what power.

Four claims, each with the size the studies report (from ``fer_utils/published.json``, :func:`study_effects`):

- **tuning helps** (Study A, Tables V-X and XII): a model's tuned configuration against its default;
- **SE helps** (Study B; Study C's Table 3): the same network with and without squeeze-and-excitation;
- **CBAM helps** (Study A, Tables V-X): the same backbone with and without CBAM;
- **GAN balancing helps** (Study A, Table III): the training set balanced with generated faces against real only
  (and, as a control the study lacks, against the same counts of resampled real faces).

Evidence is read from tables the notebooks already made; nothing is trained here: notebook 06's 5x2cv tests
(Dietterich's t) and McNemar tests on saved test predictions, and notebook 02's ``effect_mcnemar.csv``. Only
*controlled* pairs count: the same notebook, the same training recipe, and exactly one thing changed (a pair that
changes two things, such as a tuned CNN against an untuned CNN+SE, is no evidence for either).

Every row states the difference in the claim's direction (points; positive = as claimed), the Holm-adjusted p of
its family, the smallest difference the test could detect with 80% power (before Holm's correction, which can only
raise it) and a reading: **supports**, **contradicts** (significant the other way), **no difference, powered**
(the study's effect would have been detected with 80% power) or **inconclusive** (the test could not have seen the
study's effect).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import runs, stats

CLAIMS_FILE = "claims.csv"
#: claim -> (what it says, which notebook makes its evidence)
CLAIMS = {
    "tuning helps": ("Study A: each model's tuned configuration beats its default (Tables V-X; Table XII 5x2cv)",
                     "05 (default and best on the test split) and 06 (Table XII by 5x2cv)"),
    "SE helps": ("Study B: CNN+SE 71.65% vs CNN 69.86%; Study C Table 3: SE+BN 87.80% vs BN only 87.50% (FER+)",
                 "04 (cnn vs cnn_se) or 06 (a Table XIII pair such as msca_resnet vs msca_resnet_no_se)"),
    "CBAM helps": ("Study A: each backbone with CBAM beats it without (Tables V-X, default settings)",
                   "04 (cnn vs cnn_cbam, or a backbone vs its _cbam) or 06 (a Table XIII pair)"),
    "GAN balancing helps": ("Study A: balancing the training set with a conditional GAN (Table III's counts)",
                            "02 (the effect runs)"),
}
TUNED, DEFAULT = ("tuned", "best"), ("default", "")
SE_PAIRS = (("msca_resnet", "msca_resnet_no_se"), ("msca_resnet_no_bn", "msca_resnet_plain"))


def study_effects() -> dict:
    """``{claim: the studies' mean reported accuracy gain in points}`` (None where no number is reported)."""
    from fer_utils.experiments.published import published_table

    pub = published_table(study=["A", "B"], dataset="fer2013")
    acc = {(r.model, r.setting): r.accuracy for r in pub.itertuples()}
    backbones = ("vgg19", "resnet50", "inception_v3")
    tuned = [acc[(m, "best")] - acc[(m, "default")] for m in pub.model.unique() if (m, "best") in acc]
    cbam = [acc[(f"{m}_cbam", "default")] - acc[(m, "default")] for m in backbones]
    return {"tuning helps": 100 * float(np.mean(tuned)), "CBAM helps": 100 * float(np.mean(cbam)),
            "SE helps": 100 * (acc[("cnn_se", "reported")] - acc[("cnn", "reported")]), "GAN balancing helps": None}


def _parse(label: str) -> tuple:
    """``"05:cnn/best"`` -> ``("05", "cnn", "best")``; a 5x2cv label ``"cnn tuned"`` -> ``("5x2cv", "cnn",
    "tuned")``."""
    if ":" in label:
        nb, rest = label.split(":", 1)
        model, _, setting = rest.partition("/")
        return nb, model, setting
    model, _, setting = label.partition(" ")
    return "5x2cv", model, setting


def classify(a: str, b: str, same_recipe: bool | None = None):
    """``(claim, favoured)`` for a controlled pair (``favoured``: "A" or "B", the side the claim says is better),
    else None: another notebook, another recipe, or more than one thing changed.

    ``same_recipe``: whether the two sides of two models were trained with the same configuration, when known (a
    5x2cv pair: from its configurations); unknown, the labels' settings must match ("tuned" against a model 05 did
    not tune is then not controlled, though 06 may have trained it with the tuned configuration)."""
    (na, ma, sa), (nb, mb, sb) = _parse(a), _parse(b)
    if na != nb:
        return None
    if ma == mb:
        if sa in DEFAULT and sb in TUNED:
            return "tuning helps", "B"
        if sb in DEFAULT and sa in TUNED:
            return "tuning helps", "A"
        return None
    controlled = (sa == sb or {sa, sb} <= set(DEFAULT)) if same_recipe is None else same_recipe
    if not controlled:
        return None
    for with_, without in ((ma, mb), (mb, ma)):
        side = "A" if with_ == ma else "B"
        if with_ == without + "_se" or (with_, without) in SE_PAIRS:
            return "SE helps", side
        if with_ == without + "_cbam":
            return "CBAM helps", side
    return None


def reading(difference: float, adjusted_p: float, detectable: float, study: float | None, alpha: float) -> str:
    """One comparison's reading; ``difference``, ``detectable`` and ``study`` in points."""
    if np.isfinite(adjusted_p) and adjusted_p < alpha:
        return "supports" if difference > 0 else "contradicts (significant the other way)"
    if not np.isfinite(detectable):
        return "inconclusive (no variance to judge power by)"
    if study is not None and detectable <= study:
        return f"no difference, powered (the study's +{study:.2f} would be detected; detectable {detectable:.2f})"
    target = f"the study's +{study:.2f}" if study is not None else "a difference"
    return f"inconclusive (only {detectable:.2f} points or more detectable; {target} could be missed)"


def _row(claim, evidence, test, difference, adjusted_p, detectable, effects, alpha):
    diff, det = 100 * float(difference), 100 * float(detectable)
    return {"claim": claim, "evidence": evidence, "test": test, "difference (points, + = as claimed)": round(diff, 2),
            "adjusted p": float(adjusted_p), "detectable at 80% power (points)": round(det, 2),
            "study's effect (points)": None if effects[claim] is None else round(effects[claim], 2),
            "reading": reading(diff, float(adjusted_p), det, effects[claim], alpha)}


def _same_recipe(configs: dict | None, a: str, b: str) -> bool | None:
    """Whether two 5x2cv configurations (``statistics.configurations``) train alike, compared as a run's recipe
    records them (every field filled in: 05's full configuration equals 06's short one with the same values); None
    when not both are known."""
    from fer_utils.experiments.running import recipe_train_config

    if not configs or a not in configs or b not in configs:
        return None
    ca, cb = configs[a], configs[b]
    return (recipe_train_config(ca.get("train_config") or {}) == recipe_train_config(cb.get("train_config") or {})
            and (ca.get("model_kwargs") or {}) == (cb.get("model_kwargs") or {}))


def from_tests(tests: pd.DataFrame, *, alpha: float = 0.05, configs: dict | None = None) -> list:
    """Evidence rows from notebook 06's tests (5x2cv Dietterich t and McNemar rows of ``tests.csv``); ``configs``:
    the 5x2cv configurations, which say whether a pair of two models was trained alike."""
    from fer_utils.experiments.statistics import DIETTERICH_T, MCNEMAR

    effects, rows = study_effects(), []
    for _, r in tests[tests.test.isin((DIETTERICH_T, MCNEMAR))].iterrows() if len(tests) else []:
        same = _same_recipe(configs, r["model A"], r["model B"]) if r.test == DIETTERICH_T else None
        found = classify(r["model A"], r["model B"], same)
        if found is None:
            continue
        claim, favoured = found
        diff = (r["mean B"] - r["mean A"]) * (1 if favoured == "B" else -1)
        better, worse = (r["model B"], r["model A"]) if favoured == "B" else (r["model A"], r["model B"])
        where = "5x2cv of Training" if r.test == DIETTERICH_T else str(r["score"]).replace("per-sample correctness on ",
                                                                                          "")
        rows.append(_row(claim, f"{better} vs {worse} ({where})", r.test, diff, r["adjusted p"],
                         r["detectable difference (80% power)"], effects, alpha))
    return rows


def from_gan_effect(gan_run, split: str, *, copies=(), alpha: float = 0.05) -> list:
    """Evidence rows from notebook 02's ``effect_mcnemar.csv`` on ``split`` and its deduplicated version: each
    seed's real+GAN run against real only (the study's comparison) and against resampled real faces (the control).
    The number of test samples comes from the runs' saved predictions (less ``copies`` for the dedup split)."""
    path = Path(gan_run) / "effect_mcnemar.csv"
    if not path.exists():
        return []
    table, effects, rows = pd.read_csv(path), study_effects(), []
    if split not in set(table.split):  # the effect runs' own report split when 06 compared none (or another)
        plain = [s for s in table.split.unique() if not s.endswith("(dedup)")]
        split = "PrivateTest" if "PrivateTest" in plain else (plain[-1] if plain else split)
    sizes = {}
    for pred in sorted((Path(gan_run) / "effect").glob(f"*/seed*/{runs.PREDICTIONS_FILE}"))[:1]:
        p = runs.load_predictions(pred.parent)
        mask = np.asarray(p["split"]) == split
        sizes[split] = int(mask.sum())
        sizes[f"{split} (dedup)"] = int((mask & ~np.isin(np.asarray(p["source_ids"]).astype(str),
                                                         list(copies))).sum())
    for _, r in table[(table.condition == "real_gan") & table.split.isin(list(sizes))].iterrows():
        discordant = int(r["reference right, condition wrong"] + r["reference wrong, condition right"])
        detectable = stats.detectable_difference_mcnemar(sizes[r.split], discordant, alpha=alpha)
        rows.append(_row("GAN balancing helps", f"02 real_gan vs {r.against}, seed {r.seed} ({r.split})",
                         "McNemar", r["accuracy delta"], r["p (Holm)"], detectable, effects, alpha))
    return rows


def evidence(tests: pd.DataFrame, gan_run, split: str, *, copies=(), alpha: float = 0.05,
             configs: dict | None = None) -> pd.DataFrame:
    """Every evidence row (:func:`from_tests`, :func:`from_gan_effect`); ``configs``: the 5x2cv configurations."""
    rows = from_tests(tests, alpha=alpha, configs=configs) + (
        from_gan_effect(gan_run, split, copies=copies, alpha=alpha) if gan_run else [])
    return pd.DataFrame(rows, columns=["claim", "evidence", "test", "difference (points, + = as claimed)",
                                       "adjusted p", "detectable at 80% power (points)", "study's effect (points)",
                                       "reading"])


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: how many comparisons support, contradict or cannot tell, the smallest detectable
    difference, and the verdict of this profile's evidence (or which notebook would give some)."""
    effects, out = study_effects(), []
    for claim, (says, source) in CLAIMS.items():
        mine = rows[rows.claim == claim] if len(rows) else rows
        kinds = mine["reading"].str.split(" ").str[0].value_counts().to_dict() if len(mine) else {}
        support, contra = kinds.get("supports", 0), kinds.get("contradicts", 0)
        powered, unsure = kinds.get("no", 0), kinds.get("inconclusive", 0)
        if not len(mine):
            verdict = f"not tested by this profile's runs: needs notebook {source}"
        elif support and contra:
            verdict = f"mixed: {support} comparisons support it, {contra} contradict it"
        elif support:
            verdict = f"supported by {support} of {len(mine)} comparisons"
        elif contra:
            verdict = f"contradicted by {contra} of {len(mine)} comparisons (significant the other way)"
        elif powered and not unsure:
            verdict = "not supported: no difference, and the study's effect would have been detected (80% power)"
        else:
            verdict = (f"not shown: no significant difference; {unsure} of {len(mine)} comparisons could not have "
                       "detected the study's effect")
        detectable = mine["detectable at 80% power (points)"].min() if len(mine) else np.nan
        out.append({"claim": claim, "the studies say": says, "study's effect (points)": effects[claim],
                    "comparisons": len(mine), "supports": support, "contradicts": contra,
                    "no difference, powered": powered, "inconclusive": unsure,
                    "smallest detectable (points)": detectable, "this profile's evidence": verdict})
    return pd.DataFrame(out).set_index("claim")


def write(run_dir, rows: pd.DataFrame, table: pd.DataFrame) -> dict:
    """``claims.csv`` (every evidence row) and the headline entries: one verdict per claim."""
    rows.to_csv(Path(run_dir) / CLAIMS_FILE, index=False)
    return {f"claim: {claim}": r["this profile's evidence"] for claim, r in table.iterrows()}
