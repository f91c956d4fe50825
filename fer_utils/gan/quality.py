"""How good, how class-true and how original generated faces are (NumPy/SciPy; no TensorFlow here).

Every measure is computed on features or predictions of a *judge*: a classifier trained on real faces only and
never used inside GAN training (the caller names it). Each one is validated in the tests on cases whose answer
is known (a perfect generator, exact copies, blurry averages) before a notebook prints its verdict.

- :func:`kid`: Kernel Inception Distance (Binkowski et al. 2018), the unbiased MMD^2 with the cubic polynomial
  kernel ``k(x, y) = (x.y / d + 1)^3`` on the whole (capped) pools. Its standard error is a bootstrap over the
  pools (rows resampled with replacement; pairs of one original row left out, so the estimate stays unbiased),
  so it reflects how much another draw of the data would move it. Subset averages (the usual KID) measure
  the overlap of subsets from the same pools instead: 7.8x too small at Disgust-sized pools.
- :func:`kid_table`: per class, the generated faces against the real training faces of the class, next to two
  references on the same pool: the *floor* (held-out real faces of the class: what another real sample scores)
  and *between classes* (held-out real faces of the other classes: what a wrong-class generator scores). The
  "all" row draws the generated faces with the real class mix, so a class-balanced generator is not penalised
  for its balance.
- :func:`gan_test`: GAN-test (Shmelkov et al. 2018): how often the judge assigns a generated class-c face to c,
  next to the same for held-out real faces of c.
- :func:`meehan_zu` and :func:`meehan_cells`: the data-copying test of Meehan et al. (2020): nearest-training
  distances of generated faces against those of held-out real faces (Mann-Whitney U, standardised with the
  paper's continuity correction); per cell of a k-means partition of the training set, combined as ``C_T``.
  Negative = generated faces closer to training faces than unseen real ones: copying, *or* blur (averages are
  close to many faces), which is why the near-copy rate of :mod:`fer_utils.data.near` is reported beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2(kaa, kbb, kab, wa, wb) -> np.ndarray:
    """Unbiased MMD^2 for row weights ``wa [B, m]``, ``wb [B, n]`` (counts of each original row in a resample).

    Pairs of one original row with itself are left out (``i != j`` of the unbiased estimator, extended to
    repeated rows); with all weights 1 this is the usual unbiased estimate.
    """
    def within(k, w):
        pairs = (w.sum(1) ** 2) - (w ** 2).sum(1)
        return (((w @ k) * w).sum(1) - ((w ** 2) * np.diag(k)).sum(1)) / pairs

    cross = ((wa @ kab) * wb).sum(1) / (wa.sum(1) * wb.sum(1))
    return within(kaa, wa) + within(kbb, wb) - 2.0 * cross


def _cap(x: np.ndarray, max_rows: int, rng) -> np.ndarray:
    return x if len(x) <= max_rows else x[np.sort(rng.choice(len(x), max_rows, replace=False))]


def kid(features_a: np.ndarray, features_b: np.ndarray, *, bootstrap: int = 200, max_rows: int = 2000,
        seed: int = 0) -> tuple:
    """``(KID, bootstrap standard error)`` between two feature sets ``[N, D]`` (unbiased; can be slightly negative).

    Pools above ``max_rows`` rows are subsampled once (seeded). ``bootstrap=0`` gives a NaN error.

    Raises:
        ValueError: sets with fewer than 2 rows or different feature sizes.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: expected two [N, D] feature arrays with the same D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError(f"kid: need at least 2 rows in each set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    a, b = _cap(a, max_rows, rng), _cap(b, max_rows, rng)
    kaa, kbb, kab = _poly_kernel(a, a), _poly_kernel(b, b), _poly_kernel(a, b)
    value = float(_mmd2(kaa, kbb, kab, np.ones((1, len(a))), np.ones((1, len(b))))[0])
    if bootstrap < 2:
        return value, float("nan")
    reps = []
    for start in range(0, bootstrap, 50):  # blocks bound the memory of the weight matrices
        n = min(50, bootstrap - start)
        wa = rng.multinomial(len(a), np.full(len(a), 1.0 / len(a)), size=n).astype(np.float64)
        wb = rng.multinomial(len(b), np.full(len(b), 1.0 / len(b)), size=n).astype(np.float64)
        ok = ((wa > 0).sum(1) > 1) & ((wb > 0).sum(1) > 1)
        reps.append(_mmd2(kaa, kbb, kab, wa[ok], wb[ok]))
    return value, float(np.concatenate(reps).std(ddof=1))


def mixed_rows(labels: np.ndarray, mix: np.ndarray, rng) -> np.ndarray:
    """Row indices of ``labels`` drawn without replacement so that class shares follow ``mix`` (as large as the
    rarest class of ``labels`` allows)."""
    labels = np.asarray(labels)
    mix = np.asarray(mix, np.float64) / np.sum(mix)
    have = np.bincount(labels, minlength=len(mix))
    present = mix > 0
    total = int(np.floor(np.min(have[present] / mix[present]))) if present.any() else 0
    out = []
    for c in np.flatnonzero(present):
        rows = np.flatnonzero(labels == c)
        out.append(rng.choice(rows, min(len(rows), int(round(total * mix[c]))), replace=False))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def kid_table(gen_features, gen_labels, train_features, train_labels, held_features, held_labels, class_names, *,
              bootstrap: int = 200, max_rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per class and for all classes: KID of generated vs real training faces, the floor and the between-class KID.

    Columns: ``class``, ``kid``, ``kid_se``, ``floor``, ``floor_se``, ``between_class``, ``between_class_se``,
    ``n_generated``, ``n_train``, ``n_held_out``, ``kid_below_between`` (the generated class is closer to its real
    class than the other real classes are). ``kid_se`` etc. are bootstrap standard errors over the pools.
    """
    gen_labels, train_labels, held_labels = (np.asarray(v) for v in (gen_labels, train_labels, held_labels))
    k = len(class_names)
    mix = np.bincount(train_labels, minlength=k)
    rng = np.random.default_rng(seed)
    rows = []

    def measure(a, b):
        if min(len(a), len(b)) < 2:
            return np.nan, np.nan
        return kid(a, b, bootstrap=bootstrap, max_rows=max_rows, seed=int(rng.integers(2 ** 31)))

    for c, name in [(None, "all")] + list(enumerate(class_names)):
        if c is None:
            g = gen_features[mixed_rows(gen_labels, mix, rng)]
            tr, held, other = train_features, held_features, np.zeros((0, train_features.shape[1]))
        else:
            g, tr = gen_features[gen_labels == c], train_features[train_labels == c]
            held = held_features[held_labels == c]
            other_mix = mix.astype(np.float64).copy()
            other_mix[c] = 0
            other = held_features[mixed_rows(held_labels, other_mix, rng)] if other_mix.sum() else held[:0]
        value, se = measure(g, tr)
        floor, floor_se = measure(held, tr)
        between, between_se = measure(other, tr) if c is not None else (np.nan, np.nan)
        rows.append({"class": name, "kid": value, "kid_se": se, "floor": floor, "floor_se": floor_se,
                     "between_class": between, "between_class_se": between_se, "n_generated": len(g),
                     "n_train": len(tr), "n_held_out": len(held),
                     "kid_below_between": bool(value < between) if np.isfinite(value) and np.isfinite(between)
                     else None})
    return pd.DataFrame(rows)


def gan_test(gen_probabilities, gen_labels, real_probabilities, real_labels, class_names) -> pd.DataFrame:
    """Per class: the judge's recall on generated faces (``gan_test``) and on held-out real faces (``real_test``).

    A final ``mean`` row averages over classes (chance is 1 / number of classes for both).
    """
    gen_pred, real_pred = np.asarray(gen_probabilities).argmax(1), np.asarray(real_probabilities).argmax(1)
    gen_labels, real_labels = np.asarray(gen_labels), np.asarray(real_labels)

    def recall(pred, labels, c):
        return float((pred[labels == c] == c).mean()) if (labels == c).any() else np.nan

    rows = [{"class": name, "gan_test": recall(gen_pred, gen_labels, c), "real_test": recall(real_pred, real_labels, c),
             "n_generated": int((gen_labels == c).sum()), "n_real": int((real_labels == c).sum())}
            for c, name in enumerate(class_names)]
    table = pd.DataFrame(rows)
    mean = {"class": "mean", "gan_test": float(table["gan_test"].mean()), "real_test": float(table["real_test"].mean()),
            "n_generated": int(table["n_generated"].sum()), "n_real": int(table["n_real"].sum())}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def nearest_distances(queries: np.ndarray, references: np.ndarray, batch: int = 1024) -> tuple:
    """``(distance, index)`` of each query's nearest reference row (Euclidean, on flattened rows)."""
    q = np.asarray(queries, np.float32).reshape(len(queries), -1)
    r = np.asarray(references, np.float32).reshape(len(references), -1)
    r_sq = (r ** 2).sum(1)
    dist, idx = np.empty(len(q), np.float32), np.empty(len(q), np.int64)
    for i in range(0, len(q), batch):
        block = q[i:i + batch]
        d2 = (block ** 2).sum(1)[:, None] + r_sq[None, :] - 2.0 * block @ r.T
        j = d2.argmin(1)
        idx[i:i + batch] = j
        dist[i:i + batch] = np.sqrt(np.maximum(d2[np.arange(len(block)), j], 0.0))
    return dist, idx


def meehan_zu(gen_distance, held_distance) -> dict:
    """Meehan et al.'s Z_U: ``(U - (m n / 2 - 0.5)) / sqrt(m n (m + n + 1) / 12)`` with U the Mann-Whitney count of
    (generated, held-out) pairs where the generated face is *farther* from training (ties 1/2).

    Returns ``{"z_u", "p"}``: ``p`` one-sided, small when generated faces are closer to training than held-out real
    faces (copying, or blur). 0.5 is the paper's continuity correction.
    """
    from scipy.stats import mannwhitneyu

    g, h = np.asarray(gen_distance, np.float64), np.asarray(held_distance, np.float64)
    m, n = len(g), len(h)
    if not m or not n:
        return {"z_u": np.nan, "p": np.nan}
    u = float(mannwhitneyu(g, h, alternative="less").statistic)
    z = (u - (m * n / 2.0 - 0.5)) / np.sqrt(m * n * (m + n + 1) / 12.0)
    return {"z_u": float(z), "p": float(norm.cdf(z))}


def meehan_cells(generated, training, held_out, *, cells: int = 10, min_per_cell: int = 20, seed: int = 0) -> dict:
    """Meehan's cell-wise test ``C_T``: Z_U per cell of a k-means partition of ``training``, averaged with the
    held-out share of each cell as weight, over cells with at least ``min_per_cell`` generated and held-out rows.

    Under no copying each cell's Z_U is about N(0, 1), so ``C_T`` has sd ``sqrt(sum w^2) / sum w``; ``p`` is the
    one-sided normal p-value of ``C_T`` (small: closer than unseen real faces in the cells, on weighted average).
    Returns ``{"c_t", "p", "cells_used", "cells", "share_of_generated_used"}``.
    """
    from sklearn.cluster import KMeans

    t = np.asarray(training, np.float32).reshape(len(training), -1)
    g = np.asarray(generated, np.float32).reshape(len(generated), -1)
    h = np.asarray(held_out, np.float32).reshape(len(held_out), -1)
    km = KMeans(n_clusters=int(cells), n_init=3, random_state=int(seed)).fit(t)
    tc, gc, hc = km.labels_, km.predict(g), km.predict(h)
    gd, _ = nearest_distances(g, t)
    hd, _ = nearest_distances(h, t)
    weights, zs, used = [], [], 0
    for c in range(int(cells)):
        if (gc == c).sum() < min_per_cell or (hc == c).sum() < min_per_cell or not (tc == c).any():
            continue
        zs.append(meehan_zu(gd[gc == c], hd[hc == c])["z_u"])
        weights.append((hc == c).mean())
        used += int((gc == c).sum())
    if not zs:
        return {"c_t": np.nan, "p": np.nan, "cells_used": 0, "cells": int(cells), "share_of_generated_used": 0.0}
    w = np.asarray(weights)
    c_t = float((w * np.asarray(zs)).sum() / w.sum())
    sd = float(np.sqrt((w ** 2).sum()) / w.sum())
    return {"c_t": c_t, "p": float(norm.cdf(c_t / sd)), "cells_used": len(zs), "cells": int(cells),
            "share_of_generated_used": used / max(len(g), 1)}


def exact_copy_mask(rows: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Bool per row: it equals a reference row byte for byte (distances by expansion are not exactly 0)."""
    refs = {np.ascontiguousarray(r).tobytes() for r in np.asarray(references)}
    return np.array([np.ascontiguousarray(r).tobytes() in refs for r in np.asarray(rows)], dtype=bool)


def exact_copies(rows: np.ndarray, references: np.ndarray) -> int:
    """How many rows equal a reference row byte for byte."""
    return int(exact_copy_mask(rows, references).sum())
