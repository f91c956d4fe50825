"""Procedurally drawn FER-like dataset used when no real dataset is available.

This module owns the synthetic default dataset of the suite (:func:`load_synthetic`, and
:func:`synthetic_stand_in` for FER+/CK+ when they are absent): grey 48x48 (by
default) cartoon faces whose expression class is encoded *only* by facial
geometry (mouth curve/openness/width/asymmetry, brow angle/height, eye
openness, nose wrinkle), overlaid with per-sample nuisance variation (pose,
lighting, tones, pixel noise) and per-sample jitter of the geometry itself so
that neighbouring classes overlap a little. Labels follow the FER-2013 order.

Everything is deterministic: each face is drawn from its own child generator
``np.random.default_rng([seed, tag, label, index])``, so the same arguments
always give byte-identical arrays and the k-th face of a class does not depend
on how many faces of the other classes are requested. Importing the module has
no side effects and the global NumPy RNG is never used.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from fer_utils.data.classes import FER2013_CLASSES
from fer_utils.data.dataset import DataError, FERDataset

__all__ = ["FER2013_CLASSES", "draw_face", "class_geometry", "make_synthetic_faces", "load_synthetic",
           "synthetic_stand_in"]

# Faces are drawn at this multiple of the output size and then downsampled
# with an antialiasing filter, which gives smooth edges without any
# hand-written antialiasing.
_SUPERSAMPLE = 4

# Distinct tags keep the per-sample streams and the shuffle stream apart even
# though they are all derived from the same user seed.
_SAMPLE_TAG = 1
_SHUFFLE_TAG = 2

# Neutral geometry; class means are expressed as overrides of it. Units:
# curve/open/asym/wrinkle are dimensionless in [-1, 1.5]; widths and heights
# are fractions of the image side; brow_angle > 0 lifts the inner brow ends
# (sad/fear), < 0 pulls them down (angry/disgust); eye_open is relative to a
# relaxed eye.
_NEUTRAL_GEOMETRY = {
    "mouth_curve": 0.0,
    "mouth_open": 0.0,
    "mouth_width": 0.30,
    "mouth_asym": 0.0,
    "lip_press": 0.0,
    "brow_angle": 0.0,
    "brow_height": 0.0,
    "eye_open": 1.0,
    "nose_wrinkle": 0.0,
}

_CLASS_OVERRIDES = {
    # angry: V-shaped lowered brows, narrowed eyes, flat pressed lips.
    0: {"mouth_curve": -0.15, "mouth_width": 0.27, "lip_press": 1.0,
        "brow_angle": -0.9, "brow_height": -0.03, "eye_open": 0.65},
    # disgust: raised one-sided upper lip, squint, lowered brows, nose wrinkle.
    1: {"mouth_curve": -0.3, "mouth_open": 0.08, "mouth_width": 0.28, "mouth_asym": 0.8,
        "brow_angle": -0.5, "brow_height": -0.035, "eye_open": 0.5, "nose_wrinkle": 1.0},
    # fear: raised brows with inner ends up, wide eyes, open stretched mouth.
    2: {"mouth_curve": -0.25, "mouth_open": 0.45, "mouth_width": 0.38,
        "brow_angle": 0.6, "brow_height": 0.04, "eye_open": 1.4},
    # happy: strong upward curve, mouth slightly open, eyes slightly narrowed.
    3: {"mouth_curve": 0.9, "mouth_open": 0.3, "mouth_width": 0.38,
        "brow_height": 0.01, "eye_open": 0.75},
    # sad: inner brow ends up, downturned mouth, slightly lowered lids.
    4: {"mouth_curve": -0.7, "mouth_width": 0.28, "brow_angle": 0.75,
        "eye_open": 0.8},
    # surprise: high brows, very wide eyes, tall round open mouth.
    5: {"mouth_open": 1.0, "mouth_width": 0.20, "brow_angle": 0.15,
        "brow_height": 0.07, "eye_open": 1.55},
    # neutral: everything relaxed.
    6: {},
}

# Standard deviation of the per-sample geometry jitter (at jitter=1). Sized so
# that neighbouring classes (angry/disgust, fear/surprise, sad/neutral)
# occasionally overlap while the classes stay learnable.
_GEOMETRY_JITTER_STD = {
    "mouth_curve": 0.16,
    "mouth_open": 0.09,
    "mouth_width": 0.025,
    "mouth_asym": 0.15,
    "lip_press": 0.2,
    "brow_angle": 0.18,
    "brow_height": 0.012,
    "eye_open": 0.13,
    "nose_wrinkle": 0.2,
}

# Nuisance parameters for an unperturbed face (draw_face defaults).
_DEFAULT_NUISANCE = {
    "skin_tone": 185.0,
    "hair_tone": 60.0,
    "background_tone": 120.0,
    "feature_tone": 40.0,
    "shift_x": 0.0,  # pixels of the output image
    "shift_y": 0.0,
    "rotation": 0.0,  # degrees, counter-clockwise
    "scale": 1.0,
    "squeeze": 1.0,  # horizontal compression, mimics a small yaw
    "brightness": 0.0,  # additive grey levels
    "contrast": 1.0,
    "gradient": 0.0,  # grey levels across the image side
    "gradient_angle": 0.0,  # radians
    "noise_sigma": 0.0,  # grey levels; needs an rng in draw_face
}


def class_geometry(label: int) -> dict:
    """The mean facial geometry of an expression class.

    Args:
        label: FER-2013 class index in ``0..6`` (see ``FER2013_CLASSES``).

    Returns:
        A new dict with keys ``mouth_curve`` (>0 smile, <0 frown),
        ``mouth_open``, ``mouth_width`` (fraction of the image side),
        ``mouth_asym`` (one-sided upper-lip raise), ``lip_press``,
        ``brow_angle`` (>0 inner ends up, <0 inner ends down), ``brow_height``
        (fraction of the side, >0 raised), ``eye_open`` (1 = relaxed) and
        ``nose_wrinkle``.

    Raises:
        ValueError: If ``label`` is not an integer in ``0..6``.
    """
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= label < 7:
        raise ValueError(f"label must be an integer in 0..6 (FER-2013 order), got {label!r}")
    geometry = dict(_NEUTRAL_GEOMETRY)
    geometry.update(_CLASS_OVERRIDES[int(label)])
    return geometry


def _ellipse(draw: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, fill: int) -> None:
    """Draw a filled ellipse given by centre and radii (PIL wants a box)."""
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)


def _render_canonical(p: dict, side: int) -> Image.Image:
    """Draw the upright, unlit face on a ``side`` x ``side`` supersampled canvas."""
    s = float(side)
    skin = int(round(p["skin_tone"]))
    hair = int(round(p["hair_tone"]))
    ink = int(round(p["feature_tone"]))
    img = Image.new("L", (side, side), int(round(p["background_tone"])))
    draw = ImageDraw.Draw(img)

    # Hair is a larger dark oval behind the top of the face, so the face
    # outline reads against any background tone.
    cx, cy = 0.5 * s, 0.53 * s
    _ellipse(draw, cx, cy - 0.06 * s, 0.35 * s, 0.40 * s, hair)
    _ellipse(draw, cx, cy, 0.31 * s, 0.39 * s, skin)
    # Ears give the oval a face-like silhouette.
    for sign in (-1, 1):
        _ellipse(draw, cx + sign * 0.31 * s, cy + 0.01 * s, 0.035 * s, 0.07 * s, skin)

    # Eyes: light sclera whose height follows eye_open, a dark iris clipped
    # to the lid opening, and an upper lid line.
    eye_y = cy - 0.06 * s
    eye_dx = 0.125 * s
    eye_rx = 0.07 * s
    eye_ry = max(0.004 * s, 0.04 * s * max(p["eye_open"], 0.05))
    sclera = min(255, skin + 45)
    lid_w = max(1, int(round(0.012 * s)))
    for sign in (-1, 1):
        ex = cx + sign * eye_dx
        _ellipse(draw, ex, eye_y, eye_rx, eye_ry, sclera)
        iris_r = 0.033 * s
        _ellipse(draw, ex, eye_y, iris_r, min(iris_r, eye_ry), ink)
        draw.arc((ex - eye_rx, eye_y - eye_ry, ex + eye_rx, eye_y + eye_ry), 180, 360,
                 fill=ink, width=lid_w)

    # Brows: thick slanted bars; the inner end moves by brow_angle, the whole
    # brow by brow_height. Closeness to the eye tracks the lowered-brow look.
    brow_base = eye_y - 0.085 * s - p["brow_height"] * s
    brow_w = max(1, int(round(0.034 * s)))
    tilt = 0.06 * s * p["brow_angle"]
    for sign in (-1, 1):
        inner = (cx + sign * 0.045 * s, brow_base - tilt)
        mid = (cx + sign * 0.125 * s, brow_base - 0.012 * s - 0.35 * tilt)
        outer = (cx + sign * 0.2 * s, brow_base + 0.01 * s + 0.1 * tilt)
        draw.line([inner, mid, outer], fill=ink, width=brow_w, joint="curve")

    # Nose: a short shadowed base; disgust adds wrinkle lines on the bridge.
    nose_y = cy + 0.08 * s
    nose_tone = max(0, skin - 55)
    nw = max(1, int(round(0.012 * s)))
    draw.line([(cx - 0.015 * s, cy - 0.02 * s), (cx - 0.03 * s, nose_y)], fill=nose_tone, width=nw)
    draw.arc((cx - 0.05 * s, nose_y - 0.025 * s, cx + 0.05 * s, nose_y + 0.02 * s), 20, 160,
             fill=nose_tone, width=nw)
    wrinkle = max(0.0, p["nose_wrinkle"])
    if wrinkle > 0.3:
        wt = int(round(skin - min(1.0, wrinkle) * 70))
        for k in range(2):
            yy = cy - 0.035 * s + k * 0.025 * s
            draw.line([(cx - 0.04 * s, yy + 0.01 * s), (cx, yy), (cx + 0.04 * s, yy + 0.01 * s)],
                      fill=wt, width=nw)

    # Mouth: upper and lower lip curves sampled along the width. The curve
    # term bends both lips (smile/frown), openness separates them, asymmetry
    # raises one side of the upper lip only.
    mouth_y = cy + 0.22 * s
    half_w = 0.5 * max(0.05, p["mouth_width"]) * s
    curve = 0.11 * s * p["mouth_curve"]
    opening = 0.18 * s * max(0.0, p["mouth_open"])
    asym = 0.06 * s * p["mouth_asym"]
    n_pts = 17
    upper, lower = [], []
    for i in range(n_pts):
        t = -1.0 + 2.0 * i / (n_pts - 1)
        x = cx + t * half_w
        bend = curve * (1.0 - t * t)  # centre drops (corners rise) for a smile
        y_mid = mouth_y + bend - curve * 0.4
        lift = asym * max(0.0, t) * (1.0 - abs(t) * 0.4)
        upper.append((x, y_mid - 0.35 * opening * (1 - t * t) - lift))
        lower.append((x, y_mid + 0.65 * opening * (1 - t * t) ** 0.7))
    lip_w = max(1, int(round(0.026 * s * (1.0 - 0.45 * min(1.0, max(0.0, p["lip_press"]))))))
    if opening > 0.01 * s or asym > 0.01 * s:
        draw.polygon(upper + lower[::-1], fill=max(0, ink - 20))
        teeth = min(255, skin + 25)
        if p["mouth_curve"] > 0.3 and opening > 0.02 * s:
            # A smile shows a band of teeth under the upper lip.
            draw.line(upper[3:-3], fill=teeth, width=max(1, int(opening * 0.3)))
    draw.line(upper, fill=ink, width=lip_w, joint="curve")
    draw.line(lower, fill=ink, width=lip_w, joint="curve")
    return img


def _pose(img: Image.Image, p: dict, size: int) -> Image.Image:
    """Apply in-plane rotation, scale, yaw squeeze and translation about the centre."""
    side = img.size[0]
    theta = math.radians(p["rotation"])
    sx = p["scale"] * p["squeeze"]
    sy = p["scale"]
    # Forward map: out = c + t + R @ diag(sx, sy) @ (in - c). PIL needs the
    # inverse (output pixel -> input pixel).
    forward = np.array([[math.cos(theta) * sx, math.sin(theta) * sy],
                        [-math.sin(theta) * sx, math.cos(theta) * sy]])
    inv = np.linalg.inv(forward)
    c = np.array([side / 2.0, side / 2.0])
    t = np.array([p["shift_x"], p["shift_y"]]) * (side / size)
    offset = c - inv @ (c + t)
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    return img.transform(img.size, Image.Transform.AFFINE, coeffs,
                         resample=Image.Resampling.BILINEAR,
                         fillcolor=int(round(p["background_tone"])))


def draw_face(params: dict, size: int = 48, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one face (uint8 size x size) from explicit geometry parameters.

    Args:
        params: Geometry keys as returned by ``class_geometry`` plus optional
            nuisance keys (``skin_tone``, ``hair_tone``, ``background_tone``,
            ``feature_tone``, ``shift_x``, ``shift_y`` in output pixels,
            ``rotation`` in degrees, ``scale``, ``squeeze``, ``brightness``,
            ``contrast``, ``gradient``, ``gradient_angle`` in radians,
            ``noise_sigma``). Missing keys take neutral/unperturbed defaults;
            unknown keys are ignored.
        size: Output side length in pixels (>= 24).
        rng: Generator for the Gaussian pixel noise. Without it no noise is
            added, so the rendering is a pure function of ``params``.

    Returns:
        A ``(size, size)`` uint8 array.

    Raises:
        ValueError: If ``size`` is not an integer >= 24.
    """
    _check_size(size)
    p = dict(_NEUTRAL_GEOMETRY)
    p.update(_DEFAULT_NUISANCE)
    p.update({k: float(v) for k, v in params.items() if k in p})

    side = size * _SUPERSAMPLE
    img = _render_canonical(p, side)
    img = _pose(img, p, size)
    # LANCZOS on a 4x reduction is the antialiasing step.
    img = img.resize((size, size), Image.Resampling.LANCZOS)

    out = np.asarray(img, dtype=np.float32)
    # Lighting: global contrast about mid-grey, brightness, then a linear
    # illumination ramp in a chosen direction (unit-free, spans the image).
    out = (out - 128.0) * p["contrast"] + 128.0 + p["brightness"]
    if p["gradient"] != 0.0:
        coords = (np.arange(size, dtype=np.float32) - (size - 1) / 2.0) / size
        ramp = (math.cos(p["gradient_angle"]) * coords[None, :]
                + math.sin(p["gradient_angle"]) * coords[:, None])
        out += p["gradient"] * ramp
    if rng is not None and p["noise_sigma"] > 0.0:
        out += rng.normal(0.0, p["noise_sigma"], size=out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _sample_params(label: int, rng: np.random.Generator, jitter: float) -> dict:
    """Draw one sample's geometry (class mean + jitter) and nuisance parameters."""
    p = class_geometry(label)
    # Geometry jitter: the source of class overlap.
    for key, std in _GEOMETRY_JITTER_STD.items():
        p[key] += rng.normal(0.0, std * jitter)
    # Tones are sampled independently of the class so they carry no label
    # information; hair is kept darker than skin so the face stays visible.
    # Every range is centred on _DEFAULT_NUISANCE so jitter=0 reproduces the
    # clean draw_face(class_geometry(label)) prototype exactly.
    skin = rng.uniform(185.0 - 35.0 * jitter, 185.0 + 25.0 * jitter)
    p["skin_tone"] = skin
    p["hair_tone"] = rng.uniform(60.0 - 40.0 * jitter, 60.0 + 45.0 * jitter)
    p["background_tone"] = rng.uniform(120.0 - 90.0 * jitter, 120.0 + 100.0 * jitter)
    p["feature_tone"] = rng.uniform(40.0 - 20.0 * jitter, 40.0 + 25.0 * jitter)
    p["shift_x"] = rng.uniform(-3.0, 3.0) * jitter
    p["shift_y"] = rng.uniform(-3.0, 3.0) * jitter
    p["rotation"] = rng.uniform(-10.0, 10.0) * jitter
    p["scale"] = 1.0 + rng.uniform(-0.1, 0.1) * jitter
    p["squeeze"] = 1.0 - rng.uniform(0.0, 0.1) * jitter
    p["brightness"] = rng.normal(0.0, 15.0 * jitter)
    p["contrast"] = float(np.exp(rng.normal(0.0, 0.15 * jitter)))
    p["gradient"] = rng.uniform(0.0, 60.0) * jitter
    p["gradient_angle"] = rng.uniform(0.0, 2.0 * math.pi)
    p["noise_sigma"] = 6.0 * jitter
    return p


def _check_size(size) -> None:
    """Reject sizes too small for the facial features to survive downsampling."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 24:
        raise ValueError(f"size must be an integer >= 24, got {size!r}")


def _counts(n_per_class) -> list[int]:
    """Normalise n_per_class to a list of 7 non-negative ints."""
    def ok(v) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0

    if isinstance(n_per_class, numbers.Integral) and not isinstance(n_per_class, bool):
        if n_per_class < 0:
            raise ValueError(f"n_per_class must be a non-negative integer, got {n_per_class!r}")
        return [int(n_per_class)] * len(FER2013_CLASSES)
    if isinstance(n_per_class, (Sequence, np.ndarray)) and not isinstance(n_per_class, (str, bytes)):
        values = list(n_per_class)
        if len(values) != len(FER2013_CLASSES) or not all(ok(v) for v in values):
            raise ValueError(
                "n_per_class must be a non-negative integer or a sequence of "
                f"{len(FER2013_CLASSES)} non-negative integers (one per FER-2013 class), "
                f"got {n_per_class!r}")
        return [int(v) for v in values]
    raise ValueError(
        "n_per_class must be a non-negative integer or a sequence of "
        f"{len(FER2013_CLASSES)} non-negative integers, got {n_per_class!r}")


def make_synthetic_faces(n_per_class, size: int = 48, seed: int = 0,
                         jitter: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Generate a deterministic synthetic FER-like dataset.

    Args:
        n_per_class: Faces per class, either one int for all seven classes or
            a sequence of seven ints in FER-2013 order.
        size: Image side in pixels (>= 24).
        seed: Non-negative integer seed. Face ``i`` of class ``c`` is drawn
            from ``default_rng([seed, 1, c, i])``, so it does not depend on
            the other counts; only the row order does.
        jitter: Scale of all nuisance and geometry jitter (0 gives clean class
            prototypes, 1 the default difficulty).

    Returns:
        ``(images, labels)``: uint8 array ``[N, size, size]`` and int64 array
        ``[N]`` with values in ``0..6``, rows shuffled deterministically by
        ``seed``.

    Raises:
        ValueError: On a negative or wrongly shaped ``n_per_class``, a
            ``size`` below 24, a negative or non-finite ``jitter`` or a
            negative/non-integer ``seed``.
    """
    counts = _counts(n_per_class)
    _check_size(size)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(jitter, numbers.Real) or not math.isfinite(jitter) or jitter < 0:
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter!r}")
    seed, jitter = int(seed), float(jitter)

    total = sum(counts)
    images = np.empty((total, size, size), dtype=np.uint8)
    labels = np.empty(total, dtype=np.int64)
    row = 0
    for label, count in enumerate(counts):
        for i in range(count):
            rng = np.random.default_rng([seed, _SAMPLE_TAG, label, i])
            params = _sample_params(label, rng, jitter)
            images[row] = draw_face(params, size=size, rng=rng)
            labels[row] = label
            row += 1
    order = np.random.default_rng([seed, _SHUFFLE_TAG]).permutation(total)
    return images[order], labels[order]



def load_synthetic(n_per_class: int = 60, *, seed: int = 0, size: int = 48,
                   split_fractions=(0.8, 0.1, 0.1)) -> FERDataset:
    """The built-in synthetic FER-like dataset (procedurally drawn faces).

    Class frequencies follow FER-2013's (Happy most, Disgust least) scaled so that the
    average class has ``n_per_class`` images; rows are split into ``Training``,
    ``PublicTest`` and ``PrivateTest`` by ``split_fractions``, stratified.
    """
    if n_per_class < 3:
        raise DataError(f"n_per_class={n_per_class}: expected at least 3 (one image per split)")
    fer_train = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], dtype=np.float64)
    per_class = np.maximum(3, np.round(fer_train / fer_train.mean() * n_per_class)).astype(int)
    images, labels = make_synthetic_faces(per_class.tolist(), size=size, seed=seed)
    splits = np.empty(len(labels), dtype=object)
    rng = np.random.default_rng(seed)
    for c in range(len(FER2013_CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = max(1, int(round(split_fractions[1] * len(idx))))
        n_priv = max(1, int(round(split_fractions[2] * len(idx))))
        splits[idx] = "Training"
        splits[idx[:n_test]] = "PublicTest"
        splits[idx[n_test:n_test + n_priv]] = "PrivateTest"
    return FERDataset(images=images, labels=labels, class_names=FER2013_CLASSES, splits=splits,
                      source_ids=np.array([f"synthetic:seed={seed}:i={i}" for i in range(len(labels))], dtype=object),
                      name="synthetic", path="", synthetic=np.ones(len(labels), dtype=bool))


def synthetic_stand_in(kind: str, n_per_class: int = 60, *, seed: int = 0) -> FERDataset:
    """The synthetic default standing in for a dataset that was not found (``ferplus`` or ``ckplus``).

    Its name says what it stands in for. The CK+ stand-in gets 20 pseudo-subjects (``meta``) so
    that subject-independent folds still run.
    """
    ds = load_synthetic(n_per_class, seed=seed)
    meta = None
    if kind == "ckplus":
        meta = pd.DataFrame({"subject": [f"S{i % 20:03d}" for i in range(len(ds))],
                             "sequence": [f"S{i % 20:03d}_{i}" for i in range(len(ds))]})
    return ds.replace(name=f"synthetic stand-in for {kind}", meta=meta)
