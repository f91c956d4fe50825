"""Evaluation of trained FER models: predictions, metrics and explanations.

This module owns turning a trained model plus test images into numbers and
maps: class probabilities with optional test-time augmentation (horizontal
flip, ten-crop), the metrics record (accuracy, macro/weighted F1, per-class
precision/recall/F1, confusion matrices), the ``predictions.npz`` file format,
Grad-CAM heatmaps, CBAM spatial-attention maps and a heatmap overlay helper.

It does not plot (``fer_utils.plots``), train (``fer_utils.train``) or build
pipelines (``fer_utils.pipeline``), and has no side effects at import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import tensorflow as tf
import keras

TTA_CHOICES = (None, "flip", "ten_crop")
PREDICTIONS_FILE = "predictions.npz"
#: Name suffix that marks CBAM spatial-attention map layers.
SPATIAL_ATTENTION_SUFFIX = "_spatial_attention"


# --------------------------------------------------------------------------- #
# Predictions and test-time augmentation
# --------------------------------------------------------------------------- #


def _model_hw(model: keras.Model, fallback: tuple[int, int]) -> tuple[int, int]:
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return fallback
    if isinstance(shape, list):
        shape = shape[0]
    if shape is not None and len(shape) == 4 and shape[1] and shape[2]:
        return int(shape[1]), int(shape[2])
    return fallback


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
    if not 0 < crop_fraction <= 1:
        raise ValueError(
            f"Invalid crop_fraction={crop_fraction!r}; expected a number in (0, 1]."
        )
    h, w = int(x.shape[1]), int(x.shape[2])
    ch = max(1, int(round(crop_fraction * h)))
    cw = max(1, int(round(crop_fraction * w)))
    offsets = [
        (0, 0),
        (0, w - cw),
        (h - ch, 0),
        (h - ch, w - cw),
        ((h - ch) // 2, (w - cw) // 2),
    ]
    views = []
    for top, left in offsets:
        crop = tf.image.crop_to_bounding_box(x, top, left, ch, cw)
        crop = tf.cast(tf.image.resize(crop, out_hw), tf.float32)
        views.append(crop)
        views.append(tf.image.flip_left_right(crop))
    return views


def _iter_batches(images, batch_size: int):
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
    model: keras.Model,
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
        tta: None, "flip" (mean of the image and its horizontal mirror) or
            "ten_crop" (4 corners + centre of side ``crop_fraction * H``, each
            also mirrored, resized back to the model input size, averaged).
        crop_fraction: Crop side fraction for "ten_crop".
        preprocess: Optional callable applied to each x batch before the TTA
            views are taken.

    Returns:
        float32 array ``[N, K]``.

    Raises:
        ValueError: If ``tta`` is unknown or the images have the wrong rank.
    """
    if tta not in TTA_CHOICES:
        raise ValueError(f"Invalid tta={tta!r}; expected one of {list(TTA_CHOICES)}.")
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
            views = ten_crop_views(x, crop_fraction, out_hw)
        # predict_on_batch reuses one traced predict function across batches.
        probs = [np.asarray(model.predict_on_batch(v), dtype=np.float32) for v in views]
        outputs.append(np.mean(probs, axis=0))
    if not outputs:
        raise ValueError("No images to predict: the input is empty.")
    return np.concatenate(outputs, axis=0).astype(np.float32)


# --------------------------------------------------------------------------- #
# Metrics
# --------------------------------------------------------------------------- #


def _to_labels(y, num_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise ValueError(
                f"Invalid {name} shape {arr.shape}; expected [N] labels or "
                f"[N, {num_classes}] scores for {num_classes} class_names."
            )
        return np.argmax(arr, axis=1).astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(
            f"Invalid {name} shape {arr.shape}; expected [N] labels or [N, K] scores."
        )
    labels = arr.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Invalid {name} labels: values must be in [0, {num_classes - 1}] "
            f"for {num_classes} class_names, got min {labels.min()}, max {labels.max()}."
        )
    return labels


def compute_metrics(y_true, y_prob_or_pred, class_names: Sequence[str]) -> dict[str, Any]:
    """Computes the standard FER metrics record (JSON-serialisable).

    Args:
        y_true: ``[N]`` integer labels or ``[N, K]`` one-hot/soft labels
            (argmax is taken).
        y_prob_or_pred: ``[N, K]`` probabilities or ``[N]`` predicted labels.
        class_names: The K class names, in label order.

    Returns:
        Dict with ``n``, ``accuracy``, ``macro_f1``, ``weighted_f1``,
        ``macro_precision``, ``macro_recall``, ``per_class``
        (``{name: {precision, recall, f1, support}}``), ``confusion_matrix``
        (counts, rows = true class), ``confusion_matrix_normalized`` (each row
        divided by its total; rows of absent classes stay all zero) and
        ``class_names``. Undefined precision/recall/F1 count as 0.

    Raises:
        ValueError: On shape/label mismatches with ``class_names``.
    """
    from sklearn import metrics as skm

    names = [str(c) for c in class_names]
    k = len(names)
    if k < 1:
        raise ValueError("class_names is empty; expected the K class names.")
    yt = _to_labels(y_true, k, "y_true")
    yp = _to_labels(y_prob_or_pred, k, "y_prob_or_pred")
    if len(yt) != len(yp):
        raise ValueError(
            f"y_true has {len(yt)} samples but y_prob_or_pred has {len(yp)}."
        )
    labels = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        yt, yp, labels=labels, zero_division=0
    )
    cm = skm.confusion_matrix(yt, yp, labels=labels)
    row_sums = cm.sum(axis=1, keepdims=True)
    cm_norm = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64), where=row_sums > 0)
    n = int(len(yt))
    return {
        "n": n,
        "accuracy": float(skm.accuracy_score(yt, yp)) if n else 0.0,
        "macro_f1": float(skm.f1_score(yt, yp, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(
            skm.f1_score(yt, yp, labels=labels, average="weighted", zero_division=0)
        ),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": [[int(v) for v in row] for row in cm],
        "confusion_matrix_normalized": [[float(v) for v in row] for row in cm_norm],
        "class_names": names,
    }


# --------------------------------------------------------------------------- #
# predictions.npz
# --------------------------------------------------------------------------- #


def _predictions_path(path) -> Path:
    p = Path(path)
    # A run folder (existing directory or a path without .npz) gets the
    # standard file name; an explicit *.npz path is used as given.
    return p if p.suffix == ".npz" else p / PREDICTIONS_FILE


def save_predictions(
    path,
    y_true,
    y_prob,
    *,
    source_ids=None,
    split=None,
    class_names: Optional[Sequence[str]] = None,
) -> Path:
    """Writes predictions to ``predictions.npz`` (no pickled objects).

    Args:
        path: Run folder (writes ``<path>/predictions.npz``) or a ``.npz`` path.
        y_true: ``[N]`` labels or ``[N, K]`` one-hot/soft labels (stored as
            argmax labels).
        y_prob: ``[N, K]`` probabilities.
        source_ids: Optional ``[N]`` ids (ints or strings) linking rows to
            the source images.
        split: Optional split name for all rows (e.g. "PrivateTest") or a
            per-row ``[N]`` array of split names.
        class_names: Optional K class names.

    Returns:
        The path written.

    Raises:
        ValueError: If the arrays' lengths or class counts disagree.
    """
    prob = np.asarray(y_prob, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f"Invalid y_prob shape {prob.shape}; expected [N, K].")
    n, k = prob.shape
    yt = _to_labels(y_true, k, "y_true")
    if len(yt) != n:
        raise ValueError(f"y_true has {len(yt)} samples but y_prob has {n}.")
    arrays: dict[str, np.ndarray] = {
        "y_true": yt,
        "y_prob": prob,
        "y_pred": np.argmax(prob, axis=1).astype(np.int64),
    }
    if source_ids is not None:
        ids = np.asarray(source_ids)
        if ids.dtype == object:
            ids = ids.astype(str)
        if len(ids) != n:
            raise ValueError(f"source_ids has {len(ids)} entries but y_prob has {n} rows.")
        arrays["source_ids"] = ids
    if split is not None:
        # One split name for every row, or a per-row array when several splits share the file.
        sp = np.asarray(split)
        if sp.ndim == 0:
            sp = np.full(n, str(split))
        elif len(sp) != n:
            raise ValueError(f"split has {len(sp)} entries but y_prob has {n} rows.")
        arrays["split"] = sp.astype(str)
    if class_names is not None:
        names = [str(c) for c in class_names]
        if len(names) != k:
            raise ValueError(
                f"class_names has {len(names)} names but y_prob has {k} columns."
            )
        arrays["class_names"] = np.asarray(names)
    out = _predictions_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def load_predictions(path) -> dict[str, Any]:
    """Reads a file written by :func:`save_predictions`.

    Args:
        path: Run folder or ``.npz`` path.

    Returns:
        Dict with ``y_true`` (int64 [N]), ``y_prob`` (float32 [N, K]),
        ``y_pred`` (int64 [N]), ``source_ids`` (array or None), ``split``
        (str or None) and ``class_names`` (list of str or None).

    Raises:
        FileNotFoundError: If the file does not exist (names the path).
    """
    p = _predictions_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No predictions file at {p}.")
    with np.load(p, allow_pickle=False) as data:
        return {
            "y_true": data["y_true"].astype(np.int64),
            "y_prob": data["y_prob"].astype(np.float32),
            "y_pred": data["y_pred"].astype(np.int64),
            "source_ids": data["source_ids"] if "source_ids" in data else None,
            "split": data["split"].astype(str) if "split" in data else None,
            "class_names": [str(c) for c in data["class_names"]]
            if "class_names" in data
            else None,
        }


# --------------------------------------------------------------------------- #
# Explainability
# --------------------------------------------------------------------------- #


def _is_attention_name(name: str) -> bool:
    return name.endswith(SPATIAL_ATTENTION_SUFFIX)


def _layer_rank(layer) -> Optional[int]:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        # Unbuilt or shared (multi-node) layers have no single output.
        return None
    if isinstance(out, (list, tuple)):
        return None
    return len(out.shape)


def _get_layer(model: keras.Model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"Unknown layer_name={name!r}; the model's layers are: "
            f"{[l.name for l in model.layers]}."
        ) from None


def _as_image_batch(images) -> np.ndarray:
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ValueError(f"Invalid images shape {arr.shape}; expected [N, H, W, C].")
    return arr


def default_grad_cam_layer(model: keras.Model) -> str:
    """Name of the last layer with a 4-D output that is not an attention map.

    Raises:
        ValueError: If the model has no such layer.
    """
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer) or _is_attention_name(layer.name):
            continue
        if _layer_rank(layer) == 4:
            return layer.name
    raise ValueError(
        "The model has no layer with a 4-D [B, H, W, C] output to compute "
        "Grad-CAM on; pass layer_name= explicitly."
    )


def _resize_maps(maps: tf.Tensor, hw: tuple[int, int]) -> np.ndarray:
    # maps: [B, h, w] -> [B, H, W] (bilinear).
    maps = tf.image.resize(tf.cast(maps, tf.float32)[..., None], hw)
    return maps[..., 0].numpy()


def grad_cam(
    model: keras.Model,
    images,
    class_index: Union[None, int, Sequence[int], np.ndarray] = None,
    layer_name: Optional[str] = None,
    *,
    batch_size: int = 32,
) -> np.ndarray:
    """Computes Grad-CAM heatmaps.

    ``cam = relu(sum_c mean_hw(d score / d A_c) * A_c)`` on the feature map A
    of ``layer_name``, upsampled bilinearly to the input size and divided by
    its per-image maximum (all-zero maps stay zero).

    Args:
        model: Functional (or Sequential with an Input) Keras model.
        images: Preprocessed float array ``[N, H, W, C]``.
        class_index: None (each image's predicted class), one int for all
            images, or ``[N]`` ints.
        layer_name: Layer whose output is explained; default
            :func:`default_grad_cam_layer`.
        batch_size: Images per gradient computation.

    Returns:
        float32 array ``[N, H, W]`` in [0, 1].

    Raises:
        ValueError: On an unknown or non-4-D layer, or a bad ``class_index``.
    """
    x_all = _as_image_batch(images)
    n, h, w = x_all.shape[:3]
    name = layer_name or default_grad_cam_layer(model)
    layer = _get_layer(model, name)
    if _layer_rank(layer) != 4:
        raise ValueError(
            f"Invalid layer_name={name!r}: Grad-CAM needs a layer with a 4-D "
            "[B, H, W, C] output."
        )
    sub = keras.Model(model.inputs, [layer.output, model.output])

    if class_index is None:
        idx = None
    else:
        k = int(model.output.shape[-1])
        try:
            idx = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (n,))
        except ValueError:
            raise ValueError(
                f"Invalid class_index={class_index!r}; expected None, an int or "
                f"{n} ints (one per image)."
            ) from None
        if np.any(idx < 0) or np.any(idx >= k):
            raise ValueError(
                f"Invalid class_index={class_index!r}; expected values in [0, {k - 1}]."
            )

    cams = []
    for start in range(0, n, batch_size):
        x = tf.convert_to_tensor(x_all[start:start + batch_size])
        with tf.GradientTape() as tape:
            feats, preds = sub(x, training=False)
            # Differentiate w.r.t. the layer's own output: under mixed precision a cast
            # (bf16 -> f32) is a new tensor the score does not depend on (gradient None).
            preds = tf.cast(preds, tf.float32)
            if idx is None:
                cls = tf.argmax(preds, axis=-1, output_type=tf.int32)
            else:
                cls = tf.constant(idx[start:start + batch_size], dtype=tf.int32)
            # Sum over the batch: each image's score depends only on its own
            # features, so one gradient call yields per-image gradients.
            score = tf.reduce_sum(tf.gather(preds, cls, axis=1, batch_dims=1))
        grads = tf.cast(tape.gradient(score, feats), tf.float32)
        feats = tf.cast(feats, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1))
        cam = _resize_maps(cam, (h, w))
        peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
        cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
        cams.append(np.clip(cam, 0.0, 1.0))
    return np.concatenate(cams, axis=0).astype(np.float32)


def attention_maps(
    model: keras.Model,
    images,
    layer_names: Optional[Sequence[str]] = None,
    *,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Returns CBAM spatial-attention maps upsampled to the input size.

    Args:
        model: Model with spatial-attention layers (outputs ``[B, h, w, 1]``).
        images: Preprocessed float array ``[N, H, W, C]``.
        layer_names: Layers to read; default all layers whose name ends with
            ``"_spatial_attention"``.
        batch_size: Images per forward pass.

    Returns:
        ``{layer_name: float32 [N, H, W]}``, in model order. Multi-channel
        outputs are averaged over channels; values are not renormalised.

    Raises:
        ValueError: If the model has no spatial-attention layers, or a named
            layer is unknown / not 4-D.
    """
    x_all = _as_image_batch(images)
    h, w = x_all.shape[1:3]
    if layer_names is None:
        names = [l.name for l in model.layers if _is_attention_name(l.name)]
        if not names:
            raise ValueError(
                "The model has no CBAM spatial attention: no layer name ends "
                f"with {SPATIAL_ATTENTION_SUFFIX!r}. Layers: "
                f"{[l.name for l in model.layers]}."
            )
    else:
        names = list(layer_names)
    layers = [_get_layer(model, name) for name in names]
    for layer in layers:
        if _layer_rank(layer) != 4:
            raise ValueError(
                f"Invalid layer {layer.name!r}: attention maps need a 4-D "
                "[B, h, w, C] output."
            )
    sub = keras.Model(model.inputs, [l.output for l in layers])
    collected: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, len(x_all), batch_size):
        outs = sub(tf.convert_to_tensor(x_all[start:start + batch_size]), training=False)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for name, out in zip(names, outs):
            m = tf.reduce_mean(tf.cast(out, tf.float32), axis=-1)
            collected[name].append(_resize_maps(m, (h, w)))
    return {
        name: np.concatenate(parts, axis=0).astype(np.float32)
        for name, parts in collected.items()
    }


def overlay(image_uint8_HW, heatmap, alpha: float = 0.4) -> np.ndarray:
    """Blends a heatmap (matplotlib "jet") over a grayscale or RGB image.

    Args:
        image_uint8_HW: ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` uint8 image.
        heatmap: ``[h, w]`` values in [0, 1] (resized to H, W if needed).
        alpha: Heatmap weight in [0, 1].

    Returns:
        RGB uint8 array ``[H, W, 3]``.
    """
    import matplotlib

    if not 0 <= alpha <= 1:
        raise ValueError(f"Invalid alpha={alpha!r}; expected a number in [0, 1].")
    img = np.asarray(image_uint8_HW)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(
            f"Invalid image shape {np.asarray(image_uint8_HW).shape}; expected "
            "[H, W], [H, W, 1] or [H, W, 3]."
        )
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"Invalid heatmap shape {heat.shape}; expected [h, w].")
    if heat.shape != img.shape[:2]:
        heat = tf.image.resize(heat[..., None], img.shape[:2]).numpy()[..., 0]
    colored = matplotlib.colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    blended = (1.0 - alpha) * img.astype(np.float32) + alpha * colored
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


__all__ = [
    "predict_proba",
    "ten_crop_views",
    "compute_metrics",
    "save_predictions",
    "load_predictions",
    "default_grad_cam_layer",
    "grad_cam",
    "attention_maps",
    "overlay",
]
