"""Argument checks, classifier heads, the multiply-add count and the compute precision shared by every model
family."""

from __future__ import annotations

import os

from keras import layers

from fer_utils.models.attention import check_attention

HEAD_CHOICES = ("imagenet", "gap")
def check_input_shape(input_shape, min_size, family):
    if len(input_shape) != 3:
        raise ValueError(
            f"{family} expects input_shape=(height, width, channels); "
            f"received {input_shape!r}."
        )
    for dim in input_shape[:2]:
        if dim is not None and dim < min_size:
            raise ValueError(
                f"{family} needs inputs of at least {min_size}x{min_size}; "
                f"received input_shape={tuple(input_shape)!r}. Resize the "
                f"images (the pipeline's image_size) to >= {min_size}."
            )


def check_backbone_args(family, input_shape, attention, weights, head, min_size):
    """Validates everything that can fail before any layer is built."""
    check_attention(attention)
    if head not in HEAD_CHOICES:
        raise ValueError(f"head must be one of {HEAD_CHOICES}; received {head!r}.")
    check_input_shape(input_shape, min_size, family)
    if weights == "imagenet":
        if input_shape[-1] != 3:
            raise ValueError(
                f"weights='imagenet' needs 3-channel input but input_shape="
                f"{tuple(input_shape)!r} has {input_shape[-1]}. Load grey "
                "images as RGB (the pipeline's channels=3 repeats the grey "
                "channel) or use weights=None."
            )
    elif weights is not None:
        path = os.fspath(weights)
        if not os.path.exists(path):
            raise FileNotFoundError(f"weights file not found: {path!r}")
        if not path.endswith((".keras", ".weights.h5", ".h5", ".hdf5")):
            raise ValueError(
                "weights must be None, 'imagenet', or a path ending in .keras, "
                f".weights.h5 or .h5 (a keras.applications file); received {path!r}."
            )


def classifier(x, num_classes, kernel_regularizer, name="predictions"):
    # float32 so mixed-precision training still gets float32 probabilities.
    return layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=kernel_regularizer,
        dtype="float32",
        name=name,
    )(x)


def gap_head(x, num_classes, dropout, kernel_regularizer):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return classifier(x, num_classes, kernel_regularizer)


def multiply_adds(model) -> int:
    """Multiply-adds of one image through ``model``'s convolutions (plain, depthwise-separable) and dense layers: what
    bounds a small network's speed where its float32 arithmetic is the bottleneck (docs/predict.md)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.SeparableConv2D):
            out, depthwise = layer.output.shape, layer.depthwise_kernel.shape  # (k, k, c_in, multiplier)
            k, c_in = depthwise[0] * depthwise[1], depthwise[2] * depthwise[3]
            total += out[1] * out[2] * (k * c_in + c_in * out[3])
        elif isinstance(layer, layers.Conv2D):
            out, kernel = layer.output.shape, layer.kernel.shape
            total += out[1] * out[2] * out[3] * kernel[0] * kernel[1] * kernel[2]
        elif isinstance(layer, layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)


def model_precision(model) -> str:
    """The dtype policy a built or loaded model computes in: its layers' mixed policy if any has one, else
    "float32" (a mixed-precision model keeps a few layers, such as its softmax, in float32). Input layers and the
    model itself are left out: a loaded model gives them the global policy of the moment, not the saved one."""
    mixed = sorted({layer.dtype_policy.name for layer in model._flatten_layers(include_self=False)
                    if not isinstance(layer, layers.InputLayer)} - {"float32"})
    return mixed[0] if mixed else "float32"
