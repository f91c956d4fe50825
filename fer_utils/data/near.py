"""The near-duplicate finder: the same photograph shifted, re-cropped, re-scaled, re-exposed or mirrored.

Method (measured recall and false matches: ``docs/data.md``, ``benchmarks/near_duplicates.py``): exact copies by
SHA-1; candidates by a 64-bit DCT perceptual hash (``imagehash.phash``, nearest Hamming distances) and by 12x12
low-resolution views (nearest by correlation) of the image as found, shifted by 2 px on a 3x3 grid and zoomed by
1.1 and 1/1.1, and of its mirror; each candidate verified by the normalised cross-correlation of the image's centre
searched in the other image over shifts of up to 6 px at three scales: first of the plain pixels (a gate), then of
the fine detail (the image minus its blur), which two different faces with the same layout and lighting do not share.

:func:`near_duplicates` ``(a, b)`` gives each image of ``a`` its best match in ``b``; :func:`near_duplicate_pairs`
every verified pair among one collection, cached by its checksum (families are built from these:
``fer_utils.data.duplicates``). No TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd


def image_hashes(images: np.ndarray) -> np.ndarray:
    """SHA-1 of each image's bytes (hex strings), for exact-duplicate detection."""
    return np.array([hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images], dtype=object)


#: Normalised cross-correlation of the fine detail a near-duplicate reaches (measured: docs/data.md).
NEAR_THRESHOLD = 0.75
#: ... and of the plain images (a candidate below it is not compared in detail).
GATE = 0.85
#: Candidates per image and search: nearest by hash, nearest by low-resolution correlation (each for the mirror too).
CANDIDATES = 3
#: Candidates kept for the pixel check: low-resolution correlation at least this, or hash distance at most this.
LOWRES_MIN = 0.8
HASH_MAX = 10
#: Pixels left around the centre crop that is searched for in the other image (the largest shift found).
SHIFT = 6
#: Scales of the other image searched (re-crops zoom by about 10%).
SCALES = (1.0, 1.1, 1 / 1.1)
_METHOD = repr(("nd4", GATE, CANDIDATES, LOWRES_MIN, HASH_MAX, SHIFT, SCALES))
KINDS = ("exact", "near", "mirror")
_MEMO: dict = {}


def _check_images(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ValueError(f"near_duplicates: {name} must be a uint8 array [N, H, W] of grey images; received dtype "
                         f"{x.dtype}, shape {x.shape}")
    if min(x.shape[1:]) < 4 * SHIFT:
        raise ValueError(f"near_duplicates: {name} images are {x.shape[1]}x{x.shape[2]}; expected at least "
                         f"{4 * SHIFT}x{4 * SHIFT} pixels")
    return np.ascontiguousarray(x)


def _phash(images: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hashes (``imagehash.phash``) as uint64."""
    import imagehash
    from PIL import Image

    bits = np.stack([imagehash.phash(Image.fromarray(im)).hash.ravel() for im in images]) if len(images) else \
        np.zeros((0, 64), bool)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def _lowres(images: np.ndarray, side: int = 12) -> np.ndarray:
    """Each image's centre (a twelfth trimmed on every side) at ``side`` x ``side``, zero-mean and unit-norm."""
    import cv2

    m = max(1, images.shape[1] // 12)
    r = np.stack([cv2.resize(np.ascontiguousarray(im[m:-m, m:-m]), (side, side), interpolation=cv2.INTER_AREA)
                  for im in images]).astype(np.float32).reshape(len(images), -1) if len(images) else \
        np.zeros((0, side * side), np.float32)
    r -= r.mean(axis=1, keepdims=True)
    r /= np.linalg.norm(r, axis=1, keepdims=True) + 1e-6
    return r


def _versions(images: np.ndarray, zoom: bool = True) -> list:
    """The images as found (first), shifted by 2 px on a 3x3 grid and zoomed by 1.1 and 1/1.1: their low-resolution
    views find candidates a re-crop has moved too far for the plain view (``zoom``: with the two zooms)."""
    import cv2

    out = [images]
    h, w = images.shape[1:]
    for dx, dy in ((-2, -2), (0, -2), (2, -2), (-2, 0), (2, 0), (-2, 2), (0, 2), (2, 2)):
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        out.append(np.stack([cv2.warpAffine(im, m, (w, h), borderMode=cv2.BORDER_REPLICATE) for im in images]))
    out += [np.stack([_rescale(cv2, im, s, (h, w)) for im in images]) for s in SCALES[1:]] if zoom else []
    return out


def _candidates(views: list, ha, eb, hb, same: bool, chunk: int = 512) -> np.ndarray:
    """``[P, 2]`` candidate (row in a, row in b) pairs: for the images as found the ``CANDIDATES`` nearest by
    correlation of the low-resolution views and by hash distance (``ha`` None: no hash search), for each shifted or
    zoomed view the nearest; kept when the low-resolution correlation reaches ``LOWRES_MIN`` or the hash distance
    is at most ``HASH_MAX`` (the rest are different faces: skipping them saves most of the pixel checks)."""
    out = []
    k = min(CANDIDATES, len(eb) - int(same))
    for s in range(0, len(views[0]), chunk):
        rows = np.arange(min(chunk, len(views[0]) - s))
        if ha is not None:
            dist = np.bitwise_count(ha[s:s + chunk, None] ^ hb[None, :]).astype(np.int16)
            if same:
                dist[rows, s + rows] = 999
            for _ in range(k):
                d = dist.argmin(axis=1)
                near = dist[rows, d] <= HASH_MAX
                dist[rows, d] = 999
                out.append(np.stack([s + rows, d], 1)[near])
        for v, view in enumerate(views):
            sim = view[s:s + chunk] @ eb.T
            if same:
                sim[rows, s + rows] = -np.inf
            for _ in range(k if v == 0 else 1):
                j = sim.argmax(axis=1)
                close = sim[rows, j] >= LOWRES_MIN
                sim[rows, j] = -np.inf
                out.append(np.stack([s + rows, j], 1)[close])
    return np.unique(np.concatenate(out), axis=0) if out else np.zeros((0, 2), np.int64)


def _bandpass(images: np.ndarray) -> np.ndarray:
    """Fine detail only (the image minus its Gaussian blur, sigma 2 px): two different faces share their layout and
    lighting, not their fine detail, so this correlation tells them apart where the plain one cannot."""
    import cv2

    x = images.astype(np.float32)
    return np.stack([im - cv2.GaussianBlur(im, (0, 0), 2.0) for im in x]) if len(x) else x


def _scores(a: np.ndarray, scaled: list, pairs: np.ndarray, detail_a=None, detail_b=None):
    """``(plain, detail)`` best normalised cross-correlations of each pair: a's centre searched in b at every shift and
    scale, on the images and on their fine detail (:func:`_bandpass`; only where the plain one reaches
    ``GATE``, else 0)."""
    import cv2

    plain = np.zeros(len(pairs), np.float32)
    detail = np.zeros(len(pairs), np.float32)
    flat = a.reshape(len(a), -1)
    varied = flat.max(axis=1) - flat.min(axis=1) > 8  # a nearly uniform image matches everything: never "near"
    c = slice(SHIFT, -SHIFT)
    for n, (i, j) in enumerate(pairs):
        if not varied[i]:
            continue
        plain[n] = max(float(cv2.matchTemplate(b[j], a[i, c, c], cv2.TM_CCOEFF_NORMED).max()) for b in scaled)
        if detail_a is not None and plain[n] >= GATE:
            detail[n] = max(float(cv2.matchTemplate(b[j], detail_a[i, c, c], cv2.TM_CCOEFF_NORMED).max())
                            for b in detail_b)
    return np.nan_to_num(plain, nan=0.0), np.nan_to_num(detail, nan=0.0)


def _unique(images: np.ndarray):
    """``(first row of each distinct image, distinct id of every row)``."""
    _, first, inverse = np.unique(image_hashes(images), return_index=True, return_inverse=True)
    order = np.argsort(first)  # ids in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def _near_pairs(a: np.ndarray, b: np.ndarray, same: bool, threshold: float, *, every: bool = False) -> pd.DataFrame:
    """Verified pairs between distinct images of a and b: ``i``, ``j`` (rows), ``kind`` near/mirror, ``score`` (the
    fine-detail correlation), ``plain`` (the plain one), ``distance`` (hash distance); every candidate that passes,
    not only the best (``every``: every candidate, passing or not, for measuring the method)."""
    import cv2

    mirror = np.ascontiguousarray(a[:, :, ::-1])
    ha = _phash(a)
    hb, eb = (ha, _lowres(a)) if same else (_phash(b), _lowres(b))
    side = b.shape[1:]
    scaled = [b] + [np.stack([_rescale(cv2, im, s, side) for im in b]) for s in SCALES[1:]] if len(b) else [b]
    detail_b = [_bandpass(x) for x in scaled]
    frames = []
    # Mirrors are rare (about 1 in 50 duplicates on FER-2013): their search skips the hash, the diagonal shifts and
    # the zooms, which nearly halves the cost (their recall: docs/data.md).
    mirror_views = [v for n, v in enumerate(_versions(mirror, zoom=False)) if n in (0, 2, 4, 5, 7)]  # 2 px up/left..
    for kind, src, views, h in (("near", a, _versions(a), ha), ("mirror", mirror, mirror_views, None)):
        pairs = _candidates([_lowres(v) for v in views], h, eb, hb, same)
        if not len(pairs):
            continue
        plain, detail = _scores(src, scaled, pairs, _bandpass(src), detail_b)
        keep = np.ones(len(pairs), bool) if every else (plain >= GATE) & (detail >= threshold)
        i, j = pairs[keep, 0], pairs[keep, 1]
        hashes = _phash(src[i]) if h is None else h[i]
        frames.append(pd.DataFrame({"i": i, "j": j, "kind": kind, "score": detail[keep], "plain": plain[keep],
                                    "distance": np.bitwise_count(hashes ^ hb[j])}))
    cols = ["i", "j", "kind", "score", "plain", "distance"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _rescale(cv2, im: np.ndarray, scale: float, side: tuple) -> np.ndarray:
    """``im`` zoomed by ``scale`` about its centre, cropped or padded (edge pixels) back to ``side``."""
    h, w = side
    big = cv2.resize(im, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA if scale < 1
                     else cv2.INTER_LINEAR)
    if scale >= 1:
        y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        return big[y:y + h, x:x + w]
    py, px = h - big.shape[0], w - big.shape[1]
    return cv2.copyMakeBorder(big, py // 2, py - py // 2, px // 2, px - px // 2, cv2.BORDER_REPLICATE)


def near_duplicates(a, b, *, threshold: float = NEAR_THRESHOLD) -> pd.DataFrame:
    """Each image of ``a`` that has a duplicate in ``b``, with its best match.

    Args:
        a, b: uint8 arrays ``[N, H, W]`` and ``[M, H, W]`` of grey images (the same size). ``b`` may be ``a`` itself:
            then each image's best match other than itself.
        threshold: the normalised cross-correlation of the fine detail a ``near`` or ``mirror`` match reaches
            (``NEAR_THRESHOLD``, 0.75; the plain images' must also reach ``GATE``, 0.85).

    Returns:
        One row per image of ``a`` with a match, sorted by ``i``: ``i`` (row in a), ``j`` (best row in b),
        ``kind`` (``exact``: the same bytes; ``near``: the same photograph shifted, re-cropped, re-scaled or
        re-exposed; ``mirror``: a near-duplicate of the mirrored image), ``score`` (1.0 for exact copies, else the
        fine-detail cross-correlation) and ``distance`` (Hamming distance of the two perceptual hashes, of the
        mirror for ``mirror``). An exact copy wins over a near one, a near one over a mirror.

    Raises:
        ValueError: not uint8 ``[N, H, W]`` arrays, different image sizes, or images under 24x24 pixels.
    """
    same = b is a
    a = _check_images(a, "a")
    b = a if same else _check_images(b, "b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"near_duplicates: a holds {a.shape[1]}x{a.shape[2]} images, b {b.shape[1]}x{b.shape[2]}; "
                         "expected the same size")
    firsts_a, ids_a = _unique(a)
    firsts_b = firsts_a if same else _unique(b)[0]
    exact = {}
    if same:
        for row, uid in enumerate(ids_a):  # each row's exact match: the first other row with the same bytes
            exact.setdefault(uid, []).append(row)
    else:
        lookup = dict(zip(image_hashes(b[firsts_b]).tolist(), firsts_b.tolist()))
    pairs = _near_pairs(a[firsts_a], b[firsts_b], same, threshold)
    rank = {"near": 0, "mirror": 1}
    best = {}
    for r in pairs.sort_values("score", ascending=False, kind="stable").itertuples(index=False):
        old = best.get(r.i)
        if old is None or rank[r.kind] < rank[old.kind]:
            best[r.i] = r
    hashes = image_hashes(a)
    rows = []
    for row in range(len(a)):
        uid = ids_a[row]
        if same and len(exact[uid]) > 1:
            other = next(x for x in exact[uid] if x != row)
            rows.append((row, other, "exact", 1.0, 0))
        elif not same and hashes[row] in lookup:
            rows.append((row, lookup[hashes[row]], "exact", 1.0, 0))
        elif uid in best:
            r = best[uid]
            rows.append((row, int(firsts_b[r.j]), r.kind, float(r.score), int(r.distance)))
    return pd.DataFrame(rows, columns=["i", "j", "kind", "score", "distance"]).astype(
        {"i": np.int64, "j": np.int64, "score": np.float64, "distance": np.int64})


def near_duplicate_pairs(images, *, threshold: float = NEAR_THRESHOLD, cache_dir=None) -> pd.DataFrame:
    """Every verified duplicate pair among ``images`` (uint8 ``[N, H, W]``), not only each image's best.

    Returns ``i < j`` (rows), ``kind``, ``score``, ``distance``: each exact copy paired with the first row of its
    bytes; near and mirror pairs between the first rows of two distinct images. Cached (in memory, and as
    ``near-*.npz`` under ``cache_dir``/``$FER_CACHE_DIR``/``~/.cache/fer_utils``; ``cache_dir=False``: no file)
    by the images' SHA-256 and the method's settings.
    """
    from fer_utils.data.fer2013_csv import cache_root

    images = _check_images(images, "images")
    key = hashlib.sha256(repr((images.shape, _METHOD, threshold)).encode() + images.tobytes()).hexdigest()[:24]
    if key in _MEMO:
        return _MEMO[key].copy()
    root = cache_root(cache_dir)
    path = None if root is None else Path(root) / f"near-{key}.npz"
    if path is not None and path.is_file() and (cached := _load(path)) is not None:
        _MEMO[key] = cached
        return cached.copy()
    lock = _claim(path)  # two processes (test workers, notebooks) compute one collection once
    try:
        out = _load(path) if path is not None and path.is_file() else None  # the other process's result
        if out is None:
            out = _compute_pairs(images, threshold)
            if path is not None:
                _save(path, out)
    finally:
        if lock is not None:
            lock.unlink(missing_ok=True)
    _MEMO[key] = out
    return out.copy()


def _load(path: Path):
    """The cached pairs, or None when the file is damaged (it is then recomputed and rewritten)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return pd.DataFrame({"i": z["i"], "j": z["j"], "kind": np.array(KINDS)[z["kind"]], "score": z["score"],
                                 "distance": z["distance"]})
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _save(path: Path, out: pd.DataFrame):
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, i=out["i"].to_numpy(), j=out["j"].to_numpy(), score=out["score"].to_numpy(),
                 distance=out["distance"].to_numpy(), kind=out["kind"].map(KINDS.index).to_numpy(np.int8))
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder: the pairs are recomputed next time
        tmp.unlink(missing_ok=True)


def _claim(path):
    """A lock file next to ``path`` once this process holds it (None without a cache folder). Waits while another
    process holds it; a lock older than 30 minutes is a crashed run's and is taken over."""
    import time

    if path is None:
        return None
    lock = path.with_name(path.name + ".lock")
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return lock
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > 1800:
                    lock.unlink(missing_ok=True)
                    continue
            except OSError:
                continue
            time.sleep(2)
        except OSError:  # the folder cannot take a lock: compute without one
            return None


def _compute_pairs(images: np.ndarray, threshold: float) -> pd.DataFrame:
    firsts, ids = _unique(images)
    exact = [(int(firsts[u]), row) for row, u in enumerate(ids) if firsts[u] != row]
    near = _near_pairs(images[firsts], images[firsts], True, threshold)
    i, j = firsts[near["i"].to_numpy(int)], firsts[near["j"].to_numpy(int)]
    frame = pd.concat([pd.DataFrame(exact, columns=["i", "j"]).assign(kind="exact", score=1.0, distance=0),
                       pd.DataFrame({"i": np.minimum(i, j), "j": np.maximum(i, j), "kind": near["kind"].to_numpy(),
                                     "score": near["score"].to_numpy(float),
                                     "distance": near["distance"].to_numpy(int)})], ignore_index=True)
    # a pair found from both sides is kept once, with its better kind and score
    frame["rank"] = frame["kind"].map({k: n for n, k in enumerate(KINDS)})
    return (frame.sort_values(["rank", "score"], ascending=[True, False], kind="stable")
            .drop_duplicates(["i", "j"]).sort_values(["i", "j"], kind="stable").drop(columns="rank")
            .reset_index(drop=True).astype({"i": np.int64, "j": np.int64, "score": np.float64, "distance": np.int64}))
