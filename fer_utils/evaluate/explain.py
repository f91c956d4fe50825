"""Where a model looks: Grad-CAM heatmaps, CBAM spatial-attention maps and heatmap overlays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import keras
import numpy as np
import tensorflow as tf

from fer_utils.models.attention import SPATIAL_ATTENTION_SUFFIX


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
            f"{[lay.name for lay in model.layers]}."
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
        names = [lay.name for lay in model.layers if _is_attention_name(lay.name)]
        if not names:
            raise ValueError(
                "The model has no CBAM spatial attention: no layer name ends "
                f"with {SPATIAL_ATTENTION_SUFFIX!r}. Layers: "
                f"{[lay.name for lay in model.layers]}."
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
    sub = keras.Model(model.inputs, [lay.output for lay in layers])
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

