"""Class probabilities from a model, optionally averaged over test-time augmentation (flip, ten-crop).

This module owns the TTA vocabulary: :data:`TTA_NAMES` and :func:`resolve_tta`, the one check every caller
(runner check, training, predictors, ``predict``, export) goes through. No TTA is spelt ``"none"`` by users and
recorded as ``null`` in ``preprocessing.json``/``recipe.json``; ``resolve_tta`` accepts both and returns None.
TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

#: The test-time augmentations, as users spell them (``"none"``: the image alone).
TTA_NAMES = ("none", "flip", "center_flip", "ten_crop")
#: The word for "the model's own TTA" (the one its ``preprocessing.json`` records).
DEFAULT_TTA = "default"
_UNSET = object()


def resolve_tta(tta: Any, *, recorded: Any = _UNSET, allow_default: bool = True) -> Optional[str]:
    """The canonical form of a TTA: None (no TTA; also spelt ``"none"``), ``"flip"``, ``"center_flip"`` or
    ``"ten_crop"``.

    Args:
        tta: what a caller was given.
        recorded: the model's own TTA (``preprocessing.json``'s ``tta``): ``"default"`` resolves to it.
        allow_default: without ``recorded``, ``"default"`` is returned as is (a predictor resolves it later);
            False refuses it (where there is no model to take it from, e.g. the TTA a run records).

    Raises:
        ValueError: any other value, naming it and the accepted names.
    """
    if tta is None or (isinstance(tta, str) and tta == "none"):
        return None
    if isinstance(tta, str) and tta in TTA_NAMES:
        return tta
    if isinstance(tta, str) and tta == DEFAULT_TTA:
        if recorded is not _UNSET:
            return resolve_tta(recorded, allow_default=False)
        if allow_default:
            return DEFAULT_TTA
    also = f" or {DEFAULT_TTA!r} (the model's own)" if allow_default or recorded is not _UNSET else ""
    raise ValueError(f"tta: {tta!r}; expected one of {list(TTA_NAMES)}{also}")


def _model_hw(model, fallback: tuple[int, int]) -> tuple[int, int]:
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return fallback
    if isinstance(shape, list):
        shape = shape[0]
    if shape is not None and len(shape) == 4 and shape[1] and shape[2]:
        return int(shape[1]), int(shape[2])
    return fallback


def crop_boxes(h: int, w: int, crop_fraction: float, *, ten: bool) -> tuple[int, int, list]:
    """``(crop_h, crop_w, [(top, left), ...])`` of the TTA crops of an ``h`` x ``w`` image: the centre crop alone, or
    (``ten``) the four corners then the centre, each ``round(crop_fraction * side)``. The one place both the
    TensorFlow and the NumPy views take their geometry from.

    Raises:
        ValueError: ``crop_fraction`` outside (0, 1].
    """
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"Invalid crop_fraction={crop_fraction!r}; expected a number in (0, 1].")
    ch, cw = max(1, int(round(crop_fraction * h))), max(1, int(round(crop_fraction * w)))
    centre = ((h - ch) // 2, (w - cw) // 2)
    return ch, cw, [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), centre] if ten else [centre]


def ten_crop_views(x: tf.Tensor, crop_fraction: float, out_hw: tuple[int, int]) -> list[tf.Tensor]:
    """Returns the 10 ten-crop views of a batch, each resized to ``out_hw``.

    The views are the 4 corner crops and the centre crop of size
    ``round(crop_fraction * H) x round(crop_fraction * W)``, each followed by
    its horizontal mirror.

    Args:
        x: Float batch ``[B, H, W, C]``.
        crop_fraction: Crop side as a fraction of the image side, in (0, 1].
        out_hw: Output ``(height, width)``, normally the model input size.

    Returns:
        List of 10 float32 tensors ``[B, out_h, out_w, C]``.
    """
    import tensorflow as tf

    ch, cw, offsets = crop_boxes(int(x.shape[1]), int(x.shape[2]), crop_fraction, ten=True)
    views = []
    for top, left in offsets:
        crop = tf.image.crop_to_bounding_box(x, top, left, ch, cw)
        crop = tf.cast(tf.image.resize(crop, out_hw), tf.float32)
        views.append(crop)
        views.append(tf.image.flip_left_right(crop))
    return views


def center_flip_views(x: tf.Tensor, crop_fraction: float, out_hw: tuple[int, int]) -> list[tf.Tensor]:
    """The centre view of :func:`ten_crop_views` and its mirror: two views, the cost of ``flip``."""
    import tensorflow as tf

    ch, cw, [(top, left)] = crop_boxes(int(x.shape[1]), int(x.shape[2]), crop_fraction, ten=False)
    crop = tf.image.crop_to_bounding_box(x, top, left, ch, cw)
    crop = tf.cast(tf.image.resize(crop, out_hw), tf.float32)
    return [crop, tf.image.flip_left_right(crop)]


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of ``tf.image.resize(..., "bilinear")`` along one axis (half-pixel centres, no
    antialiasing: what TensorFlow does when enlarging a crop, the only resize the TTA views make)."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    low = np.floor(src)
    frac = src - low
    lo, hi = np.clip(low, 0, n_in - 1).astype(int), np.clip(np.ceil(src), 0, n_in - 1).astype(int)
    m = np.zeros((n_out, n_in), np.float64)
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m.astype(np.float32)


def views_numpy(x: np.ndarray, tta: Optional[str], crop_fraction: float, out_hw: tuple[int, int]) -> list:
    """The views of :func:`ten_crop_views` / :func:`center_flip_views` (or ``flip``, or the batch alone for None) in
    NumPy, for runtimes that take NumPy arrays (LiteRT): the same crops, the same bilinear enlargement, no
    TensorFlow op per batch. ``x``: float32 ``[B, H, W, C]``; every view is a C-contiguous float32 array."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    tta = resolve_tta(tta, allow_default=False)
    if tta is None:
        return [x]
    if tta == "flip":
        return [x, np.ascontiguousarray(x[:, :, ::-1])]
    ch, cw, offsets = crop_boxes(int(x.shape[1]), int(x.shape[2]), crop_fraction, ten=tta == "ten_crop")
    rows, cols = _bilinear_matrix(ch, out_hw[0]), _bilinear_matrix(cw, out_hw[1])
    views = []
    for top, left in offsets:
        crop = np.einsum("oh,bhwc,pw->bopc", rows, x[:, top:top + ch, left:left + cw], cols, optimize=True)
        crop = np.ascontiguousarray(crop, dtype=np.float32)
        views += [crop, np.ascontiguousarray(crop[:, :, ::-1])]
    return views


def predict_proba_numpy(model, x: np.ndarray, *, batch_size: int = 256, tta: Optional[str] = None,
                        crop_fraction: float = 0.875) -> np.ndarray:
    """:func:`predict_proba` for a model that takes NumPy batches (``predict_on_batch``) and preprocessed float32
    images ``[N, H, W, C]`` in memory: the same batches and views, made by :func:`views_numpy`."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or not len(x):
        raise ValueError(f"Invalid images shape {x.shape}; expected a non-empty [N, H, W, C] array.")
    out_hw = _model_hw(model, (int(x.shape[1]), int(x.shape[2])))
    outputs = []
    for start in range(0, len(x), batch_size):
        views = views_numpy(x[start:start + batch_size], tta, crop_fraction, out_hw)
        outputs.append(np.mean([np.asarray(model.predict_on_batch(v), dtype=np.float32) for v in views], axis=0))
    return np.concatenate(outputs, axis=0).astype(np.float32)


def _iter_batches(images, batch_size: int):
    import tensorflow as tf

    if isinstance(images, tf.data.Dataset):
        for batch in images:
            # Accept (x, y[, w]) datasets too: predictions only need x.
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
        return
    arr = np.asarray(images)
    if arr.ndim == 3:
        # [N, H, W] grayscale: add the channel axis the models expect.
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ValueError(
            f"Invalid images shape {arr.shape}; expected [N, H, W, C] "
            "(or [N, H, W]) or a tf.data.Dataset of batches."
        )
    for start in range(0, len(arr), batch_size):
        yield tf.convert_to_tensor(arr[start:start + batch_size], dtype=tf.float32)


def predict_proba(
    model,
    images,
    *,
    batch_size: int = 256,
    tta: Optional[str] = None,
    crop_fraction: float = 0.875,
    preprocess: Optional[Callable[[tf.Tensor], tf.Tensor]] = None,
) -> np.ndarray:
    """Predicts class probabilities, optionally averaged over TTA views.

    Args:
        model: Model whose output is class probabilities ``[B, K]``.
        images: Preprocessed float array ``[N, H, W, C]`` or a
            ``tf.data.Dataset`` of x batches (``(x, y)`` batches also work).
        batch_size: Batch size for array input.
        tta: None or "none", "flip" (mean of the image and its horizontal mirror),
            "center_flip" (the centre crop of side ``crop_fraction * H`` and its
            mirror, resized back to the model input size) or "ten_crop"
            (4 corners + centre crop, each also mirrored, averaged).
        crop_fraction: Crop side fraction for "center_flip" and "ten_crop".
        preprocess: Optional callable applied to each x batch before the TTA
            views are taken.

    Returns:
        float32 array ``[N, K]``.

    Raises:
        ValueError: If ``tta`` is unknown or the images have the wrong rank.
    """
    import tensorflow as tf

    tta = resolve_tta(tta, allow_default=False)
    outputs = []
    for x in _iter_batches(images, batch_size):
        x = tf.convert_to_tensor(x)
        if preprocess is not None:
            x = preprocess(x)
        x = tf.cast(x, tf.float32)
        if tta is None:
            views = [x]
        elif tta == "flip":
            views = [x, tf.image.flip_left_right(x)]
        else:
            out_hw = _model_hw(model, (int(x.shape[1]), int(x.shape[2])))
            views = (center_flip_views if tta == "center_flip" else ten_crop_views)(x, crop_fraction, out_hw)
        # predict_on_batch reuses one traced predict function across batches.
        probs = [np.asarray(model.predict_on_batch(v), dtype=np.float32) for v in views]
        outputs.append(np.mean(probs, axis=0))
    if not outputs:
        raise ValueError("No images to predict: the input is empty.")
    return np.concatenate(outputs, axis=0).astype(np.float32)


