"""Statistical tests between models, written once (distributions from SciPy, McNemar and Holm from statsmodels).

- :func:`paired_ttest_5x2cv` (Dietterich 1998) and :func:`combined_ftest_5x2cv` (Alpaydin 1999) on two
  ``(5, 2)`` score tables: replication i, fold j, each model trained on one half and scored on the other;
  :func:`replication_ttest` is the ordinary paired t-test on the five replication means (4 degrees of
  freedom), which is what ten of Study A's twelve published (t, p) pairs fit.
- :func:`cv5x2_splits`: the five replications of a seeded 50/50 split of the training split only
  (stratified by default; ``stratify=False`` draws them as mlxtend does).
- :func:`mcnemar_test`: two classifiers on the same test samples (paired, per-sample correctness).
- :func:`bootstrap_ci`: percentile bootstrap intervals of accuracy and macro-F1 (seeded).
- :func:`holm`: Holm's step-down correction over a family of p-values.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _st

#: Below this many discordant samples McNemar uses the exact binomial test, else chi-square with continuity
#: correction (Edwards 1948); both are stated in the result.
EXACT_BELOW = 25


def mcnemar_test(y_true, pred_a, pred_b, *, exact_below: int = EXACT_BELOW) -> dict:
    """McNemar's test of equal error rates of two classifiers on the same samples.

    Args:
        y_true: ``[N]`` true labels.
        pred_a, pred_b: ``[N]`` predicted labels (or ``[N, K]`` scores; argmax is taken).
        exact_below: discordant count below which the exact binomial test is used.

    Returns:
        ``n``, ``a right b wrong``, ``a wrong b right``, ``statistic`` (the continuity-corrected chi-square
        ``(|b01 - b10| - 1)^2 / (b01 + b10)``, whichever method gave ``p``; 0 without discordant samples), ``p``,
        ``method`` (``exact binomial`` or ``chi-square, continuity corrected``) and ``odds ratio`` (b01 / b10).

    Raises:
        ValueError: arrays of different lengths, or missing (NaN) labels, which would count as errors of both.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    y = np.asarray(y_true)
    a, b = (np.asarray(p) for p in (pred_a, pred_b))
    a, b = (p.argmax(1) if p.ndim == 2 else p for p in (a, b))
    if not len(y) == len(a) == len(b):
        raise ValueError(f"mcnemar_test: y_true, pred_a and pred_b must have the same length, got "
                         f"{len(y)}, {len(a)}, {len(b)}")
    missing = int(np.sum(~np.isfinite(y.astype(np.float64)))) if y.dtype.kind in "fc" else 0
    if missing:
        raise ValueError(f"mcnemar_test: {missing} of {len(y)} true labels are missing (NaN); drop those samples "
                         "first (they would count as errors of both classifiers)")
    ra, rb = a == y, b == y
    b01, b10 = int((ra & ~rb).sum()), int((~ra & rb).sum())
    table = [[int((ra & rb).sum()), b01], [b10, int((~ra & ~rb).sum())]]
    exact = b01 + b10 < exact_below
    result = mcnemar(table, exact=exact, correction=True)
    chi2 = (abs(b01 - b10) - 1) ** 2 / (b01 + b10) if b01 + b10 else 0.0
    return {"n": int(len(y)), "a right b wrong": b01, "a wrong b right": b10, "statistic": float(chi2),
            "p": float(result.pvalue) if b01 + b10 else 1.0,
            "method": "exact binomial" if exact else "chi-square, continuity corrected",
            "odds ratio": b01 / b10 if b10 else float("inf") if b01 else float("nan")}


def _score_table(scores, name: str) -> np.ndarray:
    a = np.asarray(scores, dtype=np.float64)
    if a.shape != (5, 2):
        raise ValueError(f"{name}: expected a (5, 2) table of scores (replication x fold), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: scores must be finite numbers; non-finite at (replication, fold) "
                         f"{[tuple(map(int, ij)) for ij in np.argwhere(~np.isfinite(a))]}")
    return a


def _differences(scores_a, scores_b):
    d = _score_table(scores_a, "scores_a") - _score_table(scores_b, "scores_b")
    variances = ((d - d.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)  # s_i^2 = sum_j (d_ij - mean_i)^2
    return d, variances


def paired_ttest_5x2cv(scores_a, scores_b) -> tuple:
    """Dietterich's 5x2cv paired t-test: ``t = d_11 / sqrt(mean_i s_i^2)``, two-sided p from t with 5 df.

    ``d_ij`` is model A's score minus model B's on replication i, fold j; ``s_i^2`` the variance estimate
    of replication i. Identical models (every difference 0) give ``(nan, 1.0)``; differences that are equal
    within every replication but not all zero give ``(+-inf, 0.0)``.

    Raises:
        ValueError: a table that is not (5, 2) or holds NaN/inf.
    """
    d, variances = _differences(scores_a, scores_b)
    denominator = np.sqrt(variances.mean())
    if denominator == 0:
        return (float("nan"), 1.0) if d[0, 0] == 0 else (float(np.sign(d[0, 0]) * np.inf), 0.0)
    t = d[0, 0] / denominator
    return float(t), float(2 * _st.t.sf(abs(t), 5))


def combined_ftest_5x2cv(scores_a, scores_b) -> tuple:
    """Alpaydin's combined 5x2cv F-test: ``f = sum_ij d_ij^2 / (2 sum_i s_i^2)``, p from F(10, 5).

    Identical models give ``(nan, 1.0)``; zero variances with nonzero differences ``(inf, 0.0)``.
    """
    d, variances = _differences(scores_a, scores_b)
    if variances.sum() == 0:
        return (float("nan"), 1.0) if not d.any() else (float("inf"), 0.0)
    f = (d ** 2).sum() / (2 * variances.sum())
    return float(f), float(_st.f.sf(f, 10, 5))


def replication_ttest(scores_a, scores_b) -> tuple:
    """An ordinary paired t-test on the five replication means (4 df), two-sided: Study A's numbers fit it."""
    d, _ = _differences(scores_a, scores_b)
    means = d.mean(axis=1)
    sd = means.std(ddof=1)
    if sd == 0:
        return (float("nan"), 1.0) if not means.any() else (float(np.sign(means.mean()) * np.inf), 0.0)
    t = means.mean() / (sd / np.sqrt(len(means)))
    return float(t), float(2 * _st.t.sf(abs(t), len(means) - 1))


def detectable_difference_5x2cv(scores_a, scores_b, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean score difference Dietterich's 5x2cv t detects with ``power`` (two-sided ``alpha``),
    given the observed fold variance.

    From the t distribution, not simulation: with fold differences ~ N(delta, sigma^2) (Dietterich's model),
    ``t = d_11 / sqrt(mean s_i^2)`` is noncentral t with 5 df and noncentrality ``delta / sigma``; the noncentrality
    reaching ``power`` is solved for and multiplied by the observed ``sqrt(mean s_i^2)``. NaN when every difference
    is equal within replications (no variance to judge by).
    """
    from scipy.optimize import brentq

    _, variances = _differences(scores_a, scores_b)
    sigma = float(np.sqrt(variances.mean()))
    if sigma == 0:
        return float("nan")
    crit = _st.t.ppf(1 - alpha / 2, 5)
    nc = brentq(lambda x: _st.nct.sf(crit, 5, x) + np.nan_to_num(_st.nct.cdf(-crit, 5, x)) - power, 0.0, 10.0)
    return float(nc * sigma)


def detectable_difference_mcnemar(n: int, discordant: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true accuracy difference McNemar's test detects with ``power`` (two-sided ``alpha``) on ``n``
    paired test samples of which ``discordant`` are right for one model only.

    Normal approximation, conditional on the observed number of discordant samples: the difference in accuracy is
    ``(c - b) / n`` and ``z = (c - b) / sqrt(b + c)``, so ``delta = (z_{1-alpha/2} + z_power) * sqrt(b + c) / n``.
    Checked by simulation in the tests (the exact and chi-square tests reach about ``power`` there). NaN without
    samples or discordant pairs.
    """
    n, discordant = int(n), int(discordant)
    if n <= 0 or discordant <= 0:
        return float("nan")
    return float((_st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(power)) * np.sqrt(discordant) / n)


def paired_difference_interval(n: int, only_a: int, only_b: int, *, z: float = 1.96) -> tuple:
    """Wald interval of the accuracy difference B - A of two models on the same ``n`` test samples, from the samples
    only A gets right (``only_a``) and only B gets right (``only_b``): ``d = (only_b - only_a) / n``,
    ``se = sqrt(only_a + only_b - (only_b - only_a)^2 / n) / n`` (the paired-proportions variance); ``z`` 1.96 for
    95%. NaN without samples."""
    n, a, b = int(n), float(only_a), float(only_b)
    if n <= 0:
        return float("nan"), float("nan")
    d, se = (b - a) / n, np.sqrt(max(a + b - (b - a) ** 2 / n, 0.0)) / n
    return float(d - z * se), float(d + z * se)


def t_pvalue(t: float, df: int) -> float:
    """Two-sided p of a t statistic with ``df`` degrees of freedom."""
    return float(2 * _st.t.sf(abs(float(t)), int(df)))


def effect_size_5x2cv(scores_a, scores_b) -> dict:
    """Mean score difference (A - B) over the ten folds and Cohen's d_z (mean / sd of the ten differences)."""
    d, _ = _differences(scores_a, scores_b)
    sd = d.std(ddof=1)
    return {"mean difference": float(d.mean()),
            "cohen d_z": float(d.mean() / sd) if sd > 0 else (0.0 if not d.any() else float("inf"))}


def cv5x2_splits(ds, seed: int, *, stratify: bool = True, groups=None) -> list:
    """Five replications of a seeded 50/50 split of the training split: ``[(half_0, half_1), ...]``.

    Args:
        ds: a ``FERDataset`` (its ``Training`` rows are split; the arrays hold row indices of ``ds``, so no other
            split can enter) or an array of labels (the arrays hold positions in it).
        seed: each replication's split seed is drawn from ``RandomState(seed)``, as mlxtend draws them.
        stratify: stratify the halves by class (our default); ``False`` splits as mlxtend does.
        groups: a group id per row (of ``ds``, or per label): each group stays within one half (near-duplicate
            families: no half tests on a copy of the other's images); the halves stay stratified by class, to
            within the groups that do not fit.
    """
    from sklearn.model_selection import train_test_split

    if hasattr(ds, "splits"):
        rows = np.flatnonzero(ds.splits == "Training")
        g = None if groups is None else np.asarray(groups)[rows]
        return [(rows[a], rows[b]) for a, b in cv5x2_splits(ds.labels[rows], seed, stratify=stratify, groups=g)]
    y = np.asarray(ds)
    if groups is not None:
        from fer_utils.data.splits import grouped_sample

        rng = np.random.RandomState(int(seed))
        out = []
        for _ in range(5):
            state = rng.randint(low=0, high=32767)
            half_0 = grouped_sample(np.arange(len(y)), y, np.asarray(groups), 0.5, state)
            out.append((half_0, np.setdiff1d(np.arange(len(y)), half_0)))
        return out
    counts = np.bincount(y) if len(y) else np.array([0])
    if stratify and counts[counts > 0].min() < 2:
        print(f"5x2cv: a class has a single training row ({counts.tolist()}): halves drawn without stratification")
        stratify = False
    rng = np.random.RandomState(int(seed))
    out = []
    for _ in range(5):
        state = rng.randint(low=0, high=32767)
        half_0, half_1 = train_test_split(np.arange(len(y)), test_size=0.5, random_state=state,
                                          stratify=y if stratify else None)
        out.append((np.sort(half_0), np.sort(half_1)))
    return out


def bootstrap_ci(y_true, y_pred, *, n: int = 1000, seed: int = 0, alpha: float = 0.05,
                 num_classes: int | None = None) -> dict:
    """Percentile bootstrap intervals (resampling test samples with replacement) of accuracy and macro-F1.

    Macro-F1 averages over all ``num_classes`` classes in every resample (a class absent from a resample counts
    0, as in ``evaluate.compute_metrics``), so the interval is about the same number as the point estimate;
    without ``num_classes``, over the classes seen in ``y_true`` or ``y_pred``.

    Returns ``{"accuracy": (value, low, high), "macro_f1": (value, low, high)}`` at ``1 - alpha`` coverage.
    """
    from sklearn.metrics import f1_score

    y, p = np.asarray(y_true), np.asarray(y_pred)
    if y.shape != p.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"bootstrap_ci: y_true and y_pred must be equal-length 1-D arrays, got {y.shape}, {p.shape}")
    labels = np.arange(int(num_classes)) if num_classes else np.unique(np.concatenate([y, p]))
    rng = np.random.default_rng(int(seed))
    idx = rng.integers(0, len(y), size=(int(n), len(y)))
    acc = (y[idx] == p[idx]).mean(axis=1)
    f1 = np.array([f1_score(y[i], p[i], average="macro", labels=labels, zero_division=0) for i in idx])
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    return {"accuracy": (float((y == p).mean()), *map(float, np.percentile(acc, q))),
            "macro_f1": (float(f1_score(y, p, average="macro", labels=labels, zero_division=0)),
                         *map(float, np.percentile(f1, q)))}


def holm(pvalues, alpha: float = 0.05) -> tuple:
    """Holm's step-down adjusted p-values and rejections (statsmodels ``multipletests(method="holm")``).

    NaN p-values (tests that could not be computed) stay NaN and are left out of the family.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    adjusted, reject = np.full(p.shape, np.nan), np.zeros(p.shape, dtype=bool)
    ok = np.isfinite(p)
    if ok.any():
        r, a, _, _ = multipletests(p[ok], alpha=alpha, method="holm")
        adjusted[ok], reject[ok] = a, r
    return adjusted, reject
