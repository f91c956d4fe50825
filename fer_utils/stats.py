"""Statistical tests between models, written once (distributions from SciPy, McNemar from statsmodels).

- :func:`mcnemar_test`: two classifiers on the same test samples (paired, per-sample correctness).
"""

from __future__ import annotations

import numpy as np

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
        ``n``, ``a right b wrong``, ``a wrong b right``, ``statistic``, ``p``, ``method`` (``exact binomial`` or
        ``chi-square, continuity corrected``) and ``odds ratio`` (b01 / b10, the effect size).

    Raises:
        ValueError: arrays of different lengths.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    y = np.asarray(y_true)
    a, b = (np.asarray(p) for p in (pred_a, pred_b))
    a, b = (p.argmax(1) if p.ndim == 2 else p for p in (a, b))
    if not len(y) == len(a) == len(b):
        raise ValueError(f"mcnemar_test: y_true, pred_a and pred_b must have the same length, got "
                         f"{len(y)}, {len(a)}, {len(b)}")
    ra, rb = a == y, b == y
    b01, b10 = int((ra & ~rb).sum()), int((~ra & rb).sum())
    table = [[int((ra & rb).sum()), b01], [b10, int((~ra & ~rb).sum())]]
    exact = b01 + b10 < exact_below
    result = mcnemar(table, exact=exact, correction=True)
    return {"n": int(len(y)), "a right b wrong": b01, "a wrong b right": b10, "statistic": float(result.statistic),
            "p": float(result.pvalue) if b01 + b10 else 1.0,
            "method": "exact binomial" if exact else "chi-square, continuity corrected",
            "odds ratio": b01 / b10 if b10 else float("inf") if b01 else float("nan")}
