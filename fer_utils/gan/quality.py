"""How good and how original the generated faces are, per class (NumPy/SciPy; no TensorFlow here).

- :func:`kid`: Kernel Inception Distance (Binkowski et al. 2018), the unbiased MMD^2 with the cubic
  polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets; its standard error is
  the subsets' standard deviation over sqrt(number of subsets). The features are the penultimate
  layer of a FER classifier trained on real training images only: ImageNet Inception features are
  not used because 48x48 grey faces are far outside ImageNet, so their distances mostly measure that
  (Kynkaanniemi et al. 2023 show Inception features even respond to ImageNet class cues).
- :func:`copying_check`: the data-copying test of Meehan et al. (2020): distances from each generated image
  to its nearest training image against the same for held-out real images (one-sided Mann-Whitney U;
  a generator that memorizes gives generated images closer to training than real unseen faces are),
  with a count of near copies as a control against blurry averages.
- :func:`class_agreement`: how often the real-trained classifier calls a generated class-c face class c.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, n = len(x), len(y)
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, *, subsets: int = 20, subset_size: int = 500,
        seed: int = 0) -> tuple:
    """``(KID, standard error)`` between two feature sets ``[N, D]`` (unbiased; can be slightly negative).

    Each subset draws ``min(subset_size, N_a, N_b)`` rows of each set without replacement.

    Raises:
        ValueError: sets with fewer than 2 rows or different feature sizes.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: expected two [N, D] feature arrays with the same D, got {a.shape} and {b.shape}")
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"kid: need at least 2 rows in each set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    values = np.array([_mmd2_unbiased(a[rng.choice(len(a), size, replace=False)],
                                      b[rng.choice(len(b), size, replace=False)]) for _ in range(subsets)])
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(subsets)) if subsets > 1 else float("nan")


def kid_table(gen_features, gen_labels, train_features, train_labels, test_features, test_labels, class_names, *,
              subsets: int = 20, subset_size: int = 500, seed: int = 0) -> pd.DataFrame:
    """Per class (and all classes): KID of generated vs real training faces, and the floor.

    The floor is real training vs real test faces of the class: the KID two real samples of the
    same class already have, so a generator is judged against it, not against zero.

    Returns:
        Columns ``class``, ``KID``, ``standard error``, ``floor``, ``floor standard error``, ``KID / floor``,
        ``n generated``, ``n real``.
    """
    rows = []
    for c, name in [(None, "all")] + list(enumerate(class_names)):
        sel = (lambda lab: np.ones(len(lab), bool)) if c is None else (lambda lab, c=c: np.asarray(lab) == c)
        g, tr, te = gen_features[sel(gen_labels)], train_features[sel(train_labels)], test_features[sel(test_labels)]
        if min(len(g), len(tr), len(te)) < 2:
            rows.append({"class": name, "KID": np.nan, "standard error": np.nan, "floor": np.nan,
                         "floor standard error": np.nan, "KID / floor": np.nan, "n generated": len(g),
                         "n real": len(tr)})
            continue
        value, se = kid(g, tr, subsets=subsets, subset_size=subset_size, seed=seed)
        floor, floor_se = kid(te, tr, subsets=subsets, subset_size=subset_size, seed=seed)
        rows.append({"class": name, "KID": value, "standard error": se, "floor": floor,
                     "floor standard error": floor_se,
                     "KID / floor": value / floor if floor > 0 else np.nan, "n generated": len(g), "n real": len(tr)})
    return pd.DataFrame(rows)


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


def copying_check(generated: np.ndarray, training: np.ndarray, held_out: np.ndarray, *, alpha: float = 0.05) -> dict:
    """Meehan et al.'s data-copying test on one space (pixels or features), with a near-copy count.

    Meehan: nearest-training distances of generated rows against those of held-out real rows (never seen
    by the generator); one-sided Mann-Whitney U, alternative: generated rows are *closer* to training.
    ``z`` is U standardized (Meehan's Z_U without cells): strongly negative = closer than real unseen faces.
    Blurry, average-looking faces are close to many faces and can also give a negative z, so a second
    test counts *near copies*: generated rows closer to training than the closest 1% of held-out rows
    are. Unseen real faces fall there 1% of the time by construction; a one-sided binomial test asks
    whether generated rows do more often. ``copying`` needs both tests at ``alpha``.

    Returns:
        ``n generated``, ``n held out``, median distances, ``exact copies`` (byte-identical to a training row),
        ``U``, ``z``, ``p``, ``near copies`` (share), ``near copy p``, ``copying``, plus ``gen_distance`` and
        ``gen_nearest`` arrays for showing the closest pairs.
    """
    from scipy.stats import binomtest, mannwhitneyu

    gen_d, gen_i = nearest_distances(generated, training)
    held_d, _ = nearest_distances(held_out, training)
    u, p = mannwhitneyu(gen_d, held_d, alternative="less")
    m, n = len(gen_d), len(held_d)
    z = (u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0)
    near = int((gen_d < np.quantile(held_d, 0.01)).sum())
    near_p = float(binomtest(near, m, 0.01, alternative="greater").pvalue)
    return {"n generated": m, "n held out": n, "median distance generated": float(np.median(gen_d)),
            "median distance held out": float(np.median(held_d)), "exact copies": _exact_copies(generated, training),
            "U": float(u), "z": float(z), "p": float(p), "near copies": near / m, "near copy p": near_p,
            "copying": bool(p < alpha and near_p < alpha), "gen_distance": gen_d, "gen_nearest": gen_i}


def _exact_copies(rows: np.ndarray, references: np.ndarray) -> int:
    """How many rows equal a reference row byte for byte (distances by expansion are not exactly 0)."""
    refs = {np.ascontiguousarray(r).tobytes() for r in np.asarray(references)}
    return int(sum(np.ascontiguousarray(r).tobytes() in refs for r in np.asarray(rows)))


def class_agreement(probabilities: np.ndarray, labels: np.ndarray, class_names) -> pd.DataFrame:
    """Per class: share of generated class-c faces the real-trained classifier assigns to class c."""
    pred = np.asarray(probabilities).argmax(1)
    labels = np.asarray(labels)
    rows = [{"class": name, "n": int((labels == c).sum()),
             "classified as its class": float((pred[labels == c] == c).mean()) if (labels == c).any() else np.nan,
             "mean probability of its class": float(np.asarray(probabilities)[labels == c, c].mean())
             if (labels == c).any() else np.nan}
            for c, name in enumerate(class_names)]
    own = np.asarray(probabilities)[np.arange(len(labels)), labels]
    rows.append({"class": "all", "n": len(labels), "classified as its class": float((pred == labels).mean()),
                 "mean probability of its class": float(own.mean())})
    return pd.DataFrame(rows)
