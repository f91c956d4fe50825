"""Model builders and attention blocks of the FER suite.

This module owns every network architecture the notebooks train:

- attention blocks: :func:`se_block` (squeeze-and-excitation) and
  :func:`cbam_block` (convolutional block attention module), plus
  :func:`attention_map_layers` to find CBAM spatial maps in a built model;
- ImageNet backbones re-implemented layer by layer so attention can be
  inserted inside them: :func:`build_vgg19`, :func:`build_resnet50`,
  :func:`build_inception_v3` (plain parts match ``keras.applications``);
- Study B's VGG-style CNN (:func:`build_cnn`) and Study C's multi-scale
  residual network with SE attention (:func:`build_msca_resnet`);
- the registry (:data:`MODEL_REGISTRY`, :func:`build_model`,
  :func:`available_models`, :func:`model_info`) that the training code uses.

It does not compile, train or evaluate models. Importing it only defines
things: no seeding, no dtype-policy changes, no downloads.

Every layer gets an explicit ``name=`` (as in ``keras.applications``) so
weights can be matched by name, attention maps can be found, and saved models
are reproducible. The only custom layer is :class:`ChannelPool`, because Keras
has no built-in layer that reduces over the channel axis.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from typing import Any, Callable

import keras
import numpy as np
from keras import layers, ops

__all__ = [
    "ChannelPool",
    "se_block",
    "cbam_block",
    "se_param_count",
    "cbam_param_count",
    "attention_map_layers",
    "build_vgg19",
    "build_resnet50",
    "build_inception_v3",
    "build_cnn",
    "build_msca_resnet",
    "ModelSpec",
    "MODEL_REGISTRY",
    "build_model",
    "available_models",
    "model_info",
]

ATTENTION_CHOICES = (None, "se", "cbam")
HEAD_CHOICES = ("imagenet", "gap")

# Suffix that marks the CBAM spatial-attention map (a sigmoid Conv2D);
# evaluate/plots find attention maps through it.
SPATIAL_ATTENTION_SUFFIX = "_spatial_attention"

# keras.applications constructor names and where their no-top ImageNet
# files live, for the offline error message. Constructors are looked up on
# ``keras.applications`` at call time (not bound at import) so tests can
# monkeypatch them.
_KERAS_APPS = {
    "vgg19": ("VGG19", "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet50": (
        "ResNet50",
        "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "inception_v3": (
        "InceptionV3",
        "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
}
_KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


# ---------------------------------------------------------------------------
# Custom layer
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="fer_utils")
class ChannelPool(layers.Layer):
    """Channel-wise mean and max maps, concatenated (CBAM spatial descriptor).

    Maps ``(batch, H, W, C)`` to ``(batch, H, W, 2)`` where channel 0 is the
    mean over ``axis`` and channel 1 the max. No weights. Computes in the
    layer's compute dtype (Keras autocasts the input), so it works under
    ``mixed_bfloat16``.

    Args:
        axis: Channel axis to reduce. Defaults to -1 (channels_last).
        **kwargs: Standard layer arguments (``name``, ``dtype``...).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        mean = ops.mean(inputs, axis=self.axis, keepdims=True)
        maximum = ops.max(inputs, axis=self.axis, keepdims=True)
        return ops.concatenate([mean, maximum], axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        shape[self.axis] = 2
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis})
        return config


# ---------------------------------------------------------------------------
# Attention blocks
# ---------------------------------------------------------------------------


def _hidden_units(channels, reduction):
    return max(1, channels // reduction)


def se_param_count(channels, reduction=16):
    """Trainable parameters added by :func:`se_block`.

    ``C*h + h + h*C + C`` with ``h = max(1, C // r)`` (two biased Dense
    layers).

    Args:
        channels: Channel count ``C`` of the input tensor.
        reduction: Reduction ratio ``r``.

    Returns:
        The parameter count.
    """
    h = _hidden_units(channels, reduction)
    return channels * h + h + h * channels + channels


def cbam_param_count(channels, reduction=16, kernel_size=7):
    """Trainable parameters added by :func:`cbam_block`.

    The shared channel MLP counted once, ``C*h + h + h*C + C`` with
    ``h = max(1, C // r)``, plus the spatial Conv2D over the 2-channel
    mean/max map, ``2*k*k + 1``.

    Args:
        channels: Channel count ``C`` of the input tensor.
        reduction: Reduction ratio ``r``.
        kernel_size: Spatial-attention kernel size ``k``.

    Returns:
        The parameter count.
    """
    return se_param_count(channels, reduction) + 2 * kernel_size * kernel_size + 1


def se_block(x, reduction=16, name="se", kernel_regularizer=None):
    """Squeeze-and-excitation block (Hu et al., 2018).

    ``GlobalAveragePooling2D(keepdims) -> Dense(h, relu) -> Dense(C, sigmoid)
    -> Multiply`` with the input, ``h = max(1, C // reduction)``.

    Parameters added: ``C*h + h + h*C + C`` (see :func:`se_param_count`).

    Layer names: ``{name}_squeeze``, ``{name}_reduce``, ``{name}_expand``,
    ``{name}_scale``.

    Args:
        x: 4-D channels-last tensor.
        reduction: Reduction ratio ``r``.
        name: Prefix for the block's layer names (must be unique in a model).
        kernel_regularizer: Optional regularizer for both Dense kernels.

    Returns:
        Tensor of the same shape as ``x``.
    """
    channels = x.shape[-1]
    hidden = _hidden_units(channels, reduction)
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = layers.Dense(
        hidden,
        activation="relu",
        kernel_regularizer=kernel_regularizer,
        name=f"{name}_reduce",
    )(s)
    s = layers.Dense(
        channels,
        activation="sigmoid",
        kernel_regularizer=kernel_regularizer,
        name=f"{name}_expand",
    )(s)
    # Keras 3 Multiply broadcasts (1, 1, C) against (H, W, C).
    return layers.Multiply(name=f"{name}_scale")([x, s])


def cbam_block(x, reduction=16, kernel_size=7, name="cbam", kernel_regularizer=None):
    """Convolutional block attention module (Woo et al., 2018).

    Channel attention: one two-layer MLP (``Dense(h, relu) -> Dense(C)``,
    the same layer objects) applied to the global-average and global-max
    descriptors, summed, sigmoid, multiplied into ``x``. Spatial attention:
    :class:`ChannelPool` (mean and max over channels) ->
    ``Conv2D(1, kernel_size, same, sigmoid)`` -> multiplied into the result.

    Parameters added: ``C*h + h + h*C + C + 2*k*k + 1`` with
    ``h = max(1, C // r)`` (see :func:`cbam_param_count`).

    Layer names: ``{name}_avg_pool``, ``{name}_max_pool``, ``{name}_mlp_1``,
    ``{name}_mlp_2``, ``{name}_channel_add``, ``{name}_channel_attention``,
    ``{name}_channel_scale``, ``{name}_channel_pool``,
    ``{name}_spatial_attention`` (the (H, W, 1) sigmoid map that
    :func:`attention_map_layers` returns), ``{name}_spatial_scale``.

    Args:
        x: 4-D channels-last tensor.
        reduction: Reduction ratio ``r`` of the channel MLP.
        kernel_size: Spatial-attention kernel size ``k``.
        name: Prefix for the block's layer names (must be unique in a model).
        kernel_regularizer: Optional regularizer for the MLP and conv kernels.

    Returns:
        Tensor of the same shape as ``x``.
    """
    channels = x.shape[-1]
    hidden = _hidden_units(channels, reduction)
    mlp_1 = layers.Dense(
        hidden,
        activation="relu",
        kernel_regularizer=kernel_regularizer,
        name=f"{name}_mlp_1",
    )
    mlp_2 = layers.Dense(
        channels, kernel_regularizer=kernel_regularizer, name=f"{name}_mlp_2"
    )
    avg = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_avg_pool")(x)
    mx = layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_max_pool")(x)
    # Calling the same two Dense objects on both descriptors shares the MLP,
    # as in the paper; its parameters are counted once.
    channel = layers.Add(name=f"{name}_channel_add")([mlp_2(mlp_1(avg)), mlp_2(mlp_1(mx))])
    channel = layers.Activation("sigmoid", name=f"{name}_channel_attention")(channel)
    x = layers.Multiply(name=f"{name}_channel_scale")([x, channel])

    pooled = ChannelPool(name=f"{name}_channel_pool")(x)
    spatial = layers.Conv2D(
        1,
        kernel_size,
        padding="same",
        activation="sigmoid",
        kernel_regularizer=kernel_regularizer,
        name=f"{name}{SPATIAL_ATTENTION_SUFFIX}",
    )(pooled)
    # Keras 3 Multiply broadcasts (H, W, 1) against (H, W, C).
    return layers.Multiply(name=f"{name}_spatial_scale")([x, spatial])


def attention_map_layers(model):
    """Names of the CBAM spatial-attention layers of ``model``, in model order.

    Each name is a sigmoid ``Conv2D`` whose output is the (H, W, 1) spatial
    attention map of one CBAM block; use ``model.get_layer(name).output`` to
    build a map-extraction model. Only top-level layers are searched.

    Args:
        model: A Keras model built by this module (or any model that uses
            :func:`cbam_block`).

    Returns:
        A list of layer names, empty if the model has no CBAM block.
    """
    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, layers.Conv2D)
        and layer.name.endswith(SPATIAL_ATTENTION_SUFFIX)
    ]


def _attention(x, attention, name, reduction, cbam_kernel, kernel_regularizer):
    """Applies the requested attention block (or nothing) after a stage."""
    if attention is None:
        return x
    if attention == "se":
        return se_block(
            x, reduction=reduction, name=f"{name}_se", kernel_regularizer=kernel_regularizer
        )
    return cbam_block(
        x,
        reduction=reduction,
        kernel_size=cbam_kernel,
        name=f"{name}_cbam",
        kernel_regularizer=kernel_regularizer,
    )


# ---------------------------------------------------------------------------
# Argument checks and weight loading shared by the backbones
# ---------------------------------------------------------------------------


def _check_attention(attention):
    if attention not in ATTENTION_CHOICES:
        raise ValueError(
            f"attention must be one of {ATTENTION_CHOICES}; received {attention!r}."
        )


def _check_input_shape(input_shape, min_size, family):
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


def _check_backbone_args(family, input_shape, attention, weights, head, min_size):
    """Validates everything that can fail before any layer is built."""
    _check_attention(attention)
    if head not in HEAD_CHOICES:
        raise ValueError(f"head must be one of {HEAD_CHOICES}; received {head!r}.")
    _check_input_shape(input_shape, min_size, family)
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


def _copy_weights(model, source, description):
    """Copies ``source[name]`` weight lists into same-named layers of ``model``.

    Layers whose weight shapes differ (e.g. a classifier with another number
    of classes) are skipped with a warning. Raises if nothing matched, since
    that always means the wrong file or family.
    """
    copied, mismatched = 0, []
    for layer in model.layers:
        if not layer.weights or layer.name not in source:
            continue
        values = source[layer.name]
        if [tuple(w.shape) for w in layer.weights] != [tuple(np.shape(v)) for v in values]:
            mismatched.append(layer.name)
            continue
        layer.set_weights(values)
        copied += 1
    if copied == 0:
        raise ValueError(
            f"No layer of model {model.name!r} matched a layer name (with the "
            f"same weight shapes) in {description}."
        )
    if mismatched:
        warnings.warn(
            f"{len(mismatched)} layer(s) kept their initial weights because the "
            f"shapes differ from {description}: {mismatched}",
            stacklevel=3,
        )
    return copied


def _reference_weights(family, ref, inception_order):
    """``{our layer name: weights}`` from a keras.applications model.

    VGG19 and ResNet50 reuse the applications' layer names. InceptionV3 in
    keras.applications has auto-generated names (``conv2d_17``...) whose
    numbers depend on what was built earlier in the session, so its Conv2D
    and BatchNormalization layers are paired with ours by creation order
    (the auto-name counter) instead.
    """
    if family != "inception_v3":
        return {layer.name: layer.get_weights() for layer in ref.layers if layer.weights}

    def creation_index(layer):
        match = re.search(r"_(\d+)$", layer.name)
        return int(match.group(1)) if match else 0

    source = {}
    for cls, suffix in ((layers.Conv2D, "_conv"), (layers.BatchNormalization, "_bn")):
        ref_layers = sorted(
            (layer for layer in ref.layers if type(layer) is cls), key=creation_index
        )
        if len(ref_layers) != len(inception_order):
            raise RuntimeError(
                f"InceptionV3 reference has {len(ref_layers)} {cls.__name__} "
                f"layers, expected {len(inception_order)}."
            )
        for stem, layer in zip(inception_order, ref_layers):
            source[stem + suffix] = layer.get_weights()
    for layer in ref.layers:  # the named top layers, if any
        if layer.name == "predictions":
            source[layer.name] = layer.get_weights()
    return source


def _legacy_h5_has_top(path):
    import h5py  # Keras' own dependency for .h5 files; only needed here

    with h5py.File(path, "r") as f:
        names = f.attrs.get("layer_names", [])
        return any(
            (n.decode() if isinstance(n, bytes) else n) == "predictions" for n in names
        )


def _load_backbone_weights(model, family, weights, input_shape, inception_order=None):
    """Loads ``weights`` (``"imagenet"`` or a path) into a built backbone."""
    if weights is None:
        return
    app_name, rel_path = _KERAS_APPS[family]
    if weights == "imagenet":
        app = getattr(keras.applications, app_name)
        try:
            ref = app(weights="imagenet", include_top=False, input_shape=tuple(input_shape))
        except Exception as err:  # download failures surface as many types
            file_name = rel_path.split("/")[-1]
            raise RuntimeError(
                f"Could not get ImageNet weights for {family}: {err}. ImageNet "
                "weights need internet access (Keras downloads them once into "
                "~/.keras/models/). Offline, download "
                f"{_KERAS_APPS_URL}{rel_path} on a machine with internet and "
                f"either copy it to ~/.keras/models/{file_name} or pass a local "
                f"path: weights='/path/to/{file_name}'."
            ) from err
        source = _reference_weights(family, ref, inception_order)
        description = f"keras.applications.{app_name} ImageNet weights"
        del ref
    else:
        path = os.fspath(weights)
        if path.endswith(".keras"):
            # A model saved by this suite: layer names are ours.
            src = keras.models.load_model(path, compile=False)
            source = {layer.name: layer.get_weights() for layer in src.layers if layer.weights}
            del src
            description = path
        elif path.endswith(".weights.h5"):
            # Keras 3 weight files address layers by class and position, not
            # by name, so they only load into the same architecture.
            try:
                model.load_weights(path)
            except Exception as err:
                raise ValueError(
                    f"{path!r} is a Keras 3 .weights.h5 file, which stores "
                    "weights by layer position rather than name; it only loads "
                    "into the identical architecture. Save the source model "
                    f"with model.save('...keras') to match by name. ({err})"
                ) from err
            return
        else:
            # Legacy .h5 (e.g. keras.applications' ImageNet files): let the
            # applications model read it, then copy as for "imagenet".
            has_top = _legacy_h5_has_top(path)
            app = getattr(keras.applications, app_name)
            ref = app(
                weights=path,
                include_top=has_top,
                input_shape=None if has_top else tuple(input_shape),
            )
            source = _reference_weights(family, ref, inception_order)
            description = path
            del ref
    _copy_weights(model, source, description)


def _classifier(x, num_classes, kernel_regularizer, name="predictions"):
    # float32 so mixed-precision training still gets float32 probabilities.
    return layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=kernel_regularizer,
        dtype="float32",
        name=name,
    )(x)


def _gap_head(x, num_classes, dropout, kernel_regularizer):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return _classifier(x, num_classes, kernel_regularizer)


# ---------------------------------------------------------------------------
# VGG19
# ---------------------------------------------------------------------------


def build_vgg19(
    input_shape=(224, 224, 3),
    num_classes=7,
    attention=None,
    weights=None,
    include_top=True,
    head="imagenet",
    dropout=0.0,
    reduction=16,
    cbam_kernel=7,
    kernel_regularizer=None,
    name="vgg19",
):
    """VGG19 (Simonyan & Zisserman, 2015) with optional attention.

    The convolutional part has ``keras.applications.VGG19``'s layers and
    names (``block{b}_conv{i}``, ``block{b}_pool``). With ``attention`` set,
    a block named ``block{b}_se`` / ``block{b}_cbam`` is inserted after each
    of the five conv blocks, before its pooling layer. With
    ``attention=None, head="imagenet", num_classes=1000`` and a 224x224x3
    input, ``count_params()`` equals ``keras.applications.VGG19``'s.

    Args:
        input_shape: ``(H, W, C)``; H and W must be >= 32.
        num_classes: Number of output classes.
        attention: None, ``"se"`` or ``"cbam"``.
        weights: None (random), ``"imagenet"`` (downloads
            keras.applications' no-top weights; needs C == 3), or a path:
            ``.keras`` (copied by layer name), ``.weights.h5`` (Keras
            positional load, same architecture only) or a legacy ``.h5``
            keras.applications file. Attention and head layers not in the
            source keep their random initialisation.
        include_top: If False, return the feature extractor (output of
            ``block5_pool``).
        head: ``"imagenet"`` (flatten -> fc1 4096 -> fc2 4096 ->
            predictions) or ``"gap"`` (global average pooling -> optional
            dropout -> predictions).
        dropout: Dropout rate; in the ``"imagenet"`` head it follows fc1 and
            fc2, in the ``"gap"`` head it precedes the classifier. 0 adds no
            layer.
        reduction: SE/CBAM reduction ratio.
        cbam_kernel: CBAM spatial kernel size.
        kernel_regularizer: Regularizer for every Conv2D and Dense kernel.
        name: Model name.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: Bad ``attention``/``head``, input smaller than 32x32, or
            ``weights="imagenet"`` without 3 channels.
        FileNotFoundError: ``weights`` is a path that does not exist.
        RuntimeError: ImageNet weights could not be downloaded.
    """
    _check_backbone_args("VGG19", input_shape, attention, weights, head, min_size=32)
    reg = kernel_regularizer
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = inputs
    for block, (filters, convs) in enumerate(
        ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)), start=1
    ):
        for i in range(1, convs + 1):
            x = layers.Conv2D(
                filters,
                (3, 3),
                activation="relu",
                padding="same",
                kernel_regularizer=reg,
                name=f"block{block}_conv{i}",
            )(x)
        x = _attention(x, attention, f"block{block}", reduction, cbam_kernel, reg)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)

    if include_top:
        if head == "imagenet":
            x = layers.Flatten(name="flatten")(x)
            for fc in ("fc1", "fc2"):
                x = layers.Dense(4096, activation="relu", kernel_regularizer=reg, name=fc)(x)
                if dropout:
                    x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
            x = _classifier(x, num_classes, reg)
        else:
            x = _gap_head(x, num_classes, dropout, reg)

    model = keras.Model(inputs, x, name=name)
    _load_backbone_weights(model, "vgg19", weights, input_shape)
    return model


# ---------------------------------------------------------------------------
# ResNet50
# ---------------------------------------------------------------------------


def _bottleneck(x, filters, stride, conv_shortcut, name, reg):
    """ResNet v1 bottleneck unit, layer for layer as keras.applications."""
    bn = dict(axis=3, epsilon=1.001e-5)
    if conv_shortcut:
        shortcut = layers.Conv2D(
            4 * filters, 1, strides=stride, kernel_regularizer=reg, name=f"{name}_0_conv"
        )(x)
        shortcut = layers.BatchNormalization(**bn, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, kernel_regularizer=reg, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(**bn, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", kernel_regularizer=reg, name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(**bn, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, kernel_regularizer=reg, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(**bn, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def build_resnet50(
    input_shape=(224, 224, 3),
    num_classes=7,
    attention=None,
    weights=None,
    include_top=True,
    head="imagenet",
    dropout=0.0,
    reduction=16,
    cbam_kernel=7,
    kernel_regularizer=None,
    name="resnet50",
):
    """ResNet50 v1 (He et al., 2016) with optional attention.

    Layers and names follow ``keras.applications.ResNet50`` (``conv1_*``,
    ``pool1_*``, ``conv{s}_block{b}_{i}_{conv,bn,relu}``, ``..._add``,
    ``..._out``). With ``attention`` set, a block named
    ``conv{s}_block{b}_se`` / ``..._cbam`` follows every bottleneck unit's
    add + ReLU (16 blocks). With ``attention=None, head="imagenet",
    num_classes=1000`` and 224x224x3, ``count_params()`` equals
    ``keras.applications.ResNet50``'s.

    Args:
        input_shape: ``(H, W, C)``; H and W must be >= 32.
        num_classes: Number of output classes.
        attention: None, ``"se"`` or ``"cbam"``.
        weights: As in :func:`build_vgg19`.
        include_top: If False, return the feature extractor (output of
            ``conv5_block3_out`` or its attention block).
        head: ``"imagenet"`` (``avg_pool`` -> ``predictions``) or ``"gap"``
            (``avg_pool`` -> optional dropout -> ``predictions``).
        dropout: Dropout rate before the classifier (either head).
        reduction: SE/CBAM reduction ratio.
        cbam_kernel: CBAM spatial kernel size.
        kernel_regularizer: Regularizer for every Conv2D and Dense kernel.
        name: Model name.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError, FileNotFoundError, RuntimeError: As in :func:`build_vgg19`.
    """
    _check_backbone_args("ResNet50", input_shape, attention, weights, head, min_size=32)
    reg = kernel_regularizer
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(inputs)
    x = layers.Conv2D(64, 7, strides=2, kernel_regularizer=reg, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=1.001e-5, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    for stage, filters, units, stride in ((2, 64, 3, 1), (3, 128, 4, 2), (4, 256, 6, 2), (5, 512, 3, 2)):
        for unit in range(1, units + 1):
            block = f"conv{stage}_block{unit}"
            first = unit == 1
            x = _bottleneck(
                x, filters, stride if first else 1, conv_shortcut=first, name=block, reg=reg
            )
            x = _attention(x, attention, block, reduction, cbam_kernel, reg)

    if include_top:
        x = _gap_head(x, num_classes, dropout, reg)

    model = keras.Model(inputs, x, name=name)
    _load_backbone_weights(model, "resnet50", weights, input_shape)
    return model


# ---------------------------------------------------------------------------
# InceptionV3
# ---------------------------------------------------------------------------


def build_inception_v3(
    input_shape=(299, 299, 3),
    num_classes=7,
    attention=None,
    weights=None,
    include_top=True,
    head="imagenet",
    dropout=0.0,
    reduction=16,
    cbam_kernel=7,
    kernel_regularizer=None,
    name="inception_v3",
):
    """InceptionV3 (Szegedy et al., 2016) with optional attention.

    Same layers, order and shapes as ``keras.applications.InceptionV3``,
    which leaves its conv/BN/ReLU layers auto-named (``conv2d_57``...). Here
    every conv2d+BN+ReLU unit is named ``{stem}_conv`` / ``{stem}_bn`` /
    ``{stem}`` with descriptive stems (``stem_1``..``stem_5``,
    ``mixed{i}_branch1x1``, ``mixed{i}_branch3x3dbl_2``...); the named
    applications layers (``mixed0``..``mixed10``, ``mixed9_0``,
    ``mixed9_1``, ``avg_pool``, ``predictions``) keep their names. ImageNet
    weights are therefore matched by creation order, not by name.

    With ``attention`` set, a block named ``mixed{i}_se`` / ``mixed{i}_cbam``
    follows each of the 11 Inception modules' concatenation. With
    ``attention=None, head="imagenet", num_classes=1000`` and 299x299x3,
    ``count_params()`` equals ``keras.applications.InceptionV3``'s.

    Args:
        input_shape: ``(H, W, C)``; H and W must be >= 75.
        num_classes: Number of output classes.
        attention: None, ``"se"`` or ``"cbam"``.
        weights: As in :func:`build_vgg19`.
        include_top: If False, return the feature extractor (output of
            ``mixed10`` or its attention block).
        head: ``"imagenet"`` or ``"gap"`` (both ``avg_pool`` ->
            ``predictions``; ``"gap"`` is kept for symmetry).
        dropout: Dropout rate before the classifier (either head).
        reduction: SE/CBAM reduction ratio.
        cbam_kernel: CBAM spatial kernel size.
        kernel_regularizer: Regularizer for every Conv2D and Dense kernel.
        name: Model name.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: As in :func:`build_vgg19`, with a 75x75 minimum input.
        FileNotFoundError, RuntimeError: As in :func:`build_vgg19`.
    """
    _check_backbone_args("InceptionV3", input_shape, attention, weights, head, min_size=75)
    reg = kernel_regularizer
    order = []  # conv-unit stems in creation order, for ImageNet weight pairing

    def cbn(x, filters, rows, cols, stem, padding="same", strides=(1, 1)):
        order.append(stem)
        x = layers.Conv2D(
            filters,
            (rows, cols),
            strides=strides,
            padding=padding,
            use_bias=False,
            kernel_regularizer=reg,
            name=f"{stem}_conv",
        )(x)
        x = layers.BatchNormalization(axis=3, scale=False, name=f"{stem}_bn")(x)
        return layers.Activation("relu", name=stem)(x)

    def avg_pool(x, prefix):
        return layers.AveragePooling2D(
            (3, 3), strides=(1, 1), padding="same", name=f"{prefix}_avg_pool"
        )(x)

    def concat(tensors, module_name):
        return layers.Concatenate(axis=3, name=module_name)(tensors)

    def after_module(x, module_name):
        return _attention(x, attention, module_name, reduction, cbam_kernel, reg)

    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = cbn(inputs, 32, 3, 3, "stem_1", padding="valid", strides=(2, 2))
    x = cbn(x, 32, 3, 3, "stem_2", padding="valid")
    x = cbn(x, 64, 3, 3, "stem_3")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), name="stem_pool_1")(x)
    x = cbn(x, 80, 1, 1, "stem_4", padding="valid")
    x = cbn(x, 192, 3, 3, "stem_5", padding="valid")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), name="stem_pool_2")(x)

    # mixed0-2: 35x35 modules (1x1, 5x5, double 3x3, pool branches).
    for i, pool_filters in enumerate((32, 64, 64)):
        m = f"mixed{i}"
        b1 = cbn(x, 64, 1, 1, f"{m}_branch1x1")
        b5 = cbn(x, 48, 1, 1, f"{m}_branch5x5_1")
        b5 = cbn(b5, 64, 5, 5, f"{m}_branch5x5_2")
        b3 = cbn(x, 64, 1, 1, f"{m}_branch3x3dbl_1")
        b3 = cbn(b3, 96, 3, 3, f"{m}_branch3x3dbl_2")
        b3 = cbn(b3, 96, 3, 3, f"{m}_branch3x3dbl_3")
        bp = cbn(avg_pool(x, m), pool_filters, 1, 1, f"{m}_branch_pool")
        x = after_module(concat([b1, b5, b3, bp], m), m)

    # mixed3: grid reduction to 17x17.
    b3 = cbn(x, 384, 3, 3, "mixed3_branch3x3", padding="valid", strides=(2, 2))
    bd = cbn(x, 64, 1, 1, "mixed3_branch3x3dbl_1")
    bd = cbn(bd, 96, 3, 3, "mixed3_branch3x3dbl_2")
    bd = cbn(bd, 96, 3, 3, "mixed3_branch3x3dbl_3", padding="valid", strides=(2, 2))
    bp = layers.MaxPooling2D((3, 3), strides=(2, 2), name="mixed3_max_pool")(x)
    x = after_module(concat([b3, bd, bp], "mixed3"), "mixed3")

    # mixed4-7: 17x17 modules with factorised 7x7 convolutions.
    for i, width in zip(range(4, 8), (128, 160, 160, 192)):
        m = f"mixed{i}"
        b1 = cbn(x, 192, 1, 1, f"{m}_branch1x1")
        b7 = cbn(x, width, 1, 1, f"{m}_branch7x7_1")
        b7 = cbn(b7, width, 1, 7, f"{m}_branch7x7_2")
        b7 = cbn(b7, 192, 7, 1, f"{m}_branch7x7_3")
        bd = cbn(x, width, 1, 1, f"{m}_branch7x7dbl_1")
        bd = cbn(bd, width, 7, 1, f"{m}_branch7x7dbl_2")
        bd = cbn(bd, width, 1, 7, f"{m}_branch7x7dbl_3")
        bd = cbn(bd, width, 7, 1, f"{m}_branch7x7dbl_4")
        bd = cbn(bd, 192, 1, 7, f"{m}_branch7x7dbl_5")
        bp = cbn(avg_pool(x, m), 192, 1, 1, f"{m}_branch_pool")
        x = after_module(concat([b1, b7, bd, bp], m), m)

    # mixed8: grid reduction to 8x8.
    b3 = cbn(x, 192, 1, 1, "mixed8_branch3x3_1")
    b3 = cbn(b3, 320, 3, 3, "mixed8_branch3x3_2", padding="valid", strides=(2, 2))
    b7 = cbn(x, 192, 1, 1, "mixed8_branch7x7x3_1")
    b7 = cbn(b7, 192, 1, 7, "mixed8_branch7x7x3_2")
    b7 = cbn(b7, 192, 7, 1, "mixed8_branch7x7x3_3")
    b7 = cbn(b7, 192, 3, 3, "mixed8_branch7x7x3_4", padding="valid", strides=(2, 2))
    bp = layers.MaxPooling2D((3, 3), strides=(2, 2), name="mixed8_max_pool")(x)
    x = after_module(concat([b3, b7, bp], "mixed8"), "mixed8")

    # mixed9-10: 8x8 modules with expanded filter banks.
    for i in range(2):
        m = f"mixed{9 + i}"
        b1 = cbn(x, 320, 1, 1, f"{m}_branch1x1")
        b3 = cbn(x, 384, 1, 1, f"{m}_branch3x3")
        b3 = concat(
            [
                cbn(b3, 384, 1, 3, f"{m}_branch3x3_1x3"),
                cbn(b3, 384, 3, 1, f"{m}_branch3x3_3x1"),
            ],
            f"mixed9_{i}",  # keras.applications' name for this concat
        )
        bd = cbn(x, 448, 1, 1, f"{m}_branch3x3dbl_1")
        bd = cbn(bd, 384, 3, 3, f"{m}_branch3x3dbl_2")
        bd = concat(
            [
                cbn(bd, 384, 1, 3, f"{m}_branch3x3dbl_1x3"),
                cbn(bd, 384, 3, 1, f"{m}_branch3x3dbl_3x1"),
            ],
            f"{m}_branch3x3dbl_concat",
        )
        bp = cbn(avg_pool(x, m), 192, 1, 1, f"{m}_branch_pool")
        x = after_module(concat([b1, b3, bd, bp], m), m)

    if include_top:
        x = _gap_head(x, num_classes, dropout, reg)

    model = keras.Model(inputs, x, name=name)
    _load_backbone_weights(model, "inception_v3", weights, input_shape, inception_order=order)
    return model


# ---------------------------------------------------------------------------
# Study B: VGG-style CNN
# ---------------------------------------------------------------------------


def build_cnn(
    input_shape=(48, 48, 1),
    num_classes=7,
    attention=None,
    filters=(64, 128, 256, 512),
    dropout=0.25,
    dense_units=256,
    reduction=16,
    kernel_regularizer=None,
    cbam_kernel=7,
    name="cnn",
):
    """Study B's VGG-style CNN, optionally with SE or CBAM attention.

    The study's figure is not available, so this is our stated architecture.
    For each block ``b`` = 1..len(filters) with ``f = filters[b-1]``:

    1. ``block{b}_conv1``: Conv2D(f, 3x3, same, with bias)
    2. ``block{b}_bn1``: BatchNormalization
    3. ``block{b}_relu1``: ReLU
    4. ``block{b}_conv2``, ``block{b}_bn2``, ``block{b}_relu2``: the same again
    5. ``block{b}_se`` / ``block{b}_cbam``: attention block (if requested)
    6. ``block{b}_pool``: MaxPooling2D(2x2)
    7. ``block{b}_dropout``: Dropout(dropout) (omitted if dropout == 0)

    Head: ``head_flatten`` -> ``fc1`` Dense(dense_units) -> ``fc1_bn`` ->
    ``fc1_relu`` -> ``fc1_dropout`` Dropout(0.5) -> ``predictions``
    Dense(num_classes, softmax, float32).

    At the defaults (48x48x1, 7 classes) this has 5,874,631 parameters.

    Args:
        input_shape: ``(H, W, C)``; H and W must be >= 2**len(filters).
        num_classes: Number of output classes.
        attention: None, ``"se"`` or ``"cbam"``.
        filters: Filters of each block (one block per entry).
        dropout: Dropout rate after each block's pooling.
        dense_units: Width of the hidden Dense layer.
        reduction: SE/CBAM reduction ratio.
        kernel_regularizer: Regularizer for every Conv2D and Dense kernel.
        cbam_kernel: CBAM spatial kernel size.
        name: Model name.

    Returns:
        A ``keras.Model``.
    """
    _check_attention(attention)
    _check_input_shape(input_shape, 2 ** len(filters), "The Study B CNN")
    reg = kernel_regularizer
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = inputs
    for b, f in enumerate(filters, start=1):
        for i in (1, 2):
            x = layers.Conv2D(f, 3, padding="same", kernel_regularizer=reg, name=f"block{b}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"block{b}_bn{i}")(x)
            x = layers.Activation("relu", name=f"block{b}_relu{i}")(x)
        x = _attention(x, attention, f"block{b}", reduction, cbam_kernel, reg)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"block{b}_dropout")(x)
    # Not "flatten": that is also Keras' automatic name for a Flatten layer.
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(dense_units, kernel_regularizer=reg, name="fc1")(x)
    x = layers.BatchNormalization(name="fc1_bn")(x)
    x = layers.Activation("relu", name="fc1_relu")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    outputs = _classifier(x, num_classes, reg)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------
# Study C: multi-scale residual network with SE attention
# ---------------------------------------------------------------------------


def _msca_unit(x, filters, kernel_size, name, se, bn, reduction, reg, activation=True):
    """Conv -> BN (if bn) -> SE (if se) -> ReLU (if activation)."""
    # A conv followed by BN needs no bias; without BN (ablation) it does.
    x = layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=not bn,
        kernel_regularizer=reg,
        name=f"{name}_conv",
    )(x)
    if bn:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if se:
        x = se_block(x, reduction=reduction, name=f"{name}_se", kernel_regularizer=reg)
    if activation:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def _msca_residual_block(x, filters, name, se, bn, reduction, reg):
    """Multi-scale module + 3x3 fusion conv + residual connection."""
    branch = max(1, filters // 4)
    unit = dict(se=se, bn=bn, reduction=reduction, reg=reg)
    b1 = _msca_unit(x, branch, 1, f"{name}_b1x1", **unit)
    b3 = _msca_unit(x, branch, 3, f"{name}_b3x3", **unit)
    b5 = _msca_unit(x, branch, 5, f"{name}_b5x5", **unit)
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_bpool_pool")(x)
    bp = _msca_unit(bp, branch, 1, f"{name}_bpool", **unit)
    y = layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])
    y = _msca_unit(y, filters, 3, f"{name}_fuse", activation=False, **unit)

    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, use_bias=not bn, kernel_regularizer=reg, name=f"{name}_shortcut_conv"
        )(x)
        if bn:
            shortcut = layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
    else:
        shortcut = x
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_msca_resnet(
    input_shape=(48, 48, 1),
    num_classes=8,
    se=True,
    bn=True,
    filters=(64, 128, 256),
    reduction=8,
    stem_filters=64,
    kernel_regularizer=None,
    name="msca_resnet",
):
    """Study C's multi-scale residual network with SE channel attention.

    Layer sequence:

    - stem: ``stem_conv`` Conv2D(stem_filters, 3x3) -> ``stem_bn`` ->
      ``stem_relu`` -> ``stem_pool`` MaxPool 2x2 -> ``stem_se`` SE block;
    - ``block1``..``block{n}`` residual blocks (one per ``filters`` entry),
      with ``pool1``.. MaxPool 2x2 between consecutive blocks;
    - ``avg_pool`` GlobalAveragePooling2D -> ``predictions`` Dense softmax.

    Residual block with ``f`` filters: a multi-scale module of four parallel
    branches of ``f // 4`` filters each -- Conv 1x1; Conv 3x3; Conv 5x5 (a
    single 5x5 kernel, not two stacked 3x3); MaxPool 3x3 (stride 1) -> Conv
    1x1 -- each followed by BN, SE and ReLU, concatenated (``f`` channels)
    -> Conv 3x3 (f) -> BN -> SE -> Add with the shortcut (identity, or a 1x1
    conv + BN projection when the channel count changes) -> ReLU.

    ``se`` and ``bn`` are the ablation switches of the study's Table 3 and
    apply to the whole network, stem and shortcut included: ``se=False``
    leaves no SE block and ``bn=False`` no BatchNormalization layer. Convs
    followed by BN have no bias; without BN they have one.

    At the defaults (48x48x1, 8 classes) this has 1,257,600 parameters.

    Args:
        input_shape: ``(H, W, C)``; H and W must be >= 2**len(filters).
        num_classes: Number of output classes.
        se: Use SE blocks.
        bn: Use batch normalisation.
        filters: Filters of each residual block.
        reduction: SE reduction ratio.
        stem_filters: Filters of the stem convolution.
        kernel_regularizer: Regularizer for every Conv2D and Dense kernel.
        name: Model name.

    Returns:
        A ``keras.Model``.
    """
    _check_input_shape(input_shape, 2 ** len(filters), "The Study C network")
    reg = kernel_regularizer
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = layers.Conv2D(
        stem_filters, 3, padding="same", use_bias=not bn, kernel_regularizer=reg, name="stem_conv"
    )(inputs)
    if bn:
        x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    if se:
        x = se_block(x, reduction=reduction, name="stem_se", kernel_regularizer=reg)
    for i, f in enumerate(filters, start=1):
        if i > 1:
            x = layers.MaxPooling2D(2, name=f"pool{i - 1}")(x)
        x = _msca_residual_block(x, f, f"block{i}", se, bn, reduction, reg)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = _classifier(x, num_classes, reg)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry: a builder, its default kwargs and metadata.

    Attributes:
        builder: The builder function.
        defaults: Keyword arguments passed to the builder unless overridden.
        family: ``"cnn"``, ``"msca_resnet"``, ``"vgg19"``, ``"resnet50"`` or
            ``"inception_v3"``.
        attention: ``None``, ``"se"`` or ``"cbam"``.
        min_input_size: Smallest allowed height/width.
        channels: Preferred input channels (1 = grey, 3 = RGB).
        study: ``"A"`` (ImageNet backbones), ``"B"`` (CNN) or ``"C"``
            (multi-scale SE ResNet).
    """

    builder: Callable[..., keras.Model]
    defaults: dict
    family: str
    attention: str | None
    min_input_size: int
    channels: int
    study: str


def _registry():
    reg = {}
    for att, suffix in ((None, ""), ("se", "_se"), ("cbam", "_cbam")):
        reg[f"cnn{suffix}"] = ModelSpec(build_cnn, {"attention": att}, "cnn", att, 16, 1, "B")
        for family, builder, min_size in (
            ("vgg19", build_vgg19, 32),
            ("resnet50", build_resnet50, 32),
            ("inception_v3", build_inception_v3, 75),
        ):
            # FER training: a GAP head suits small inputs; the ImageNet head
            # stays available through the builders.
            reg[f"{family}{suffix}"] = ModelSpec(
                builder, {"attention": att, "head": "gap"}, family, att, min_size, 3, "A"
            )
    for name, se, bn in (
        ("msca_resnet", True, True),
        ("msca_resnet_no_se", False, True),
        ("msca_resnet_no_bn", True, False),
        ("msca_resnet_plain", False, False),
    ):
        reg[name] = ModelSpec(
            build_msca_resnet, {"se": se, "bn": bn}, "msca_resnet", "se" if se else None, 8, 1, "C"
        )
    return dict(sorted(reg.items()))


MODEL_REGISTRY: dict[str, ModelSpec] = _registry()


def available_models():
    """Names accepted by :func:`build_model`, sorted.

    Returns:
        A list of registry names.
    """
    return list(MODEL_REGISTRY)


def _spec(name):
    try:
        return MODEL_REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown model {name!r}. Known models: {', '.join(available_models())}."
        ) from None


def model_info(name):
    """Metadata of a registry entry.

    Args:
        name: A registry name.

    Returns:
        A dict with ``family``, ``attention``, ``min_input_size``,
        ``channels`` (preferred input channels), ``study``, ``builder``
        (function name) and ``defaults`` (a copy of the default kwargs).

    Raises:
        ValueError: Unknown name (the message lists the known names).
    """
    spec = _spec(name)
    return {
        "name": name,
        "family": spec.family,
        "attention": spec.attention,
        "min_input_size": spec.min_input_size,
        "channels": spec.channels,
        "study": spec.study,
        "builder": spec.builder.__name__,
        "defaults": dict(spec.defaults),
    }


def build_model(name, input_shape=None, num_classes=None, **overrides: Any):
    """Builds a registry model; ``model.name`` is the registry name.

    Args:
        name: A registry name (see :func:`available_models`).
        input_shape: ``(H, W, C)``; None uses the builder's default.
        num_classes: Number of classes; None uses the builder's default.
        **overrides: Builder keyword arguments that replace the registry
            defaults (e.g. ``dropout=0.3``, ``weights="imagenet"``).

    Returns:
        A ``keras.Model`` (not compiled).

    Raises:
        ValueError: Unknown name (the message lists the known names), or
            any builder validation error.
    """
    spec = _spec(name)
    kwargs = dict(spec.defaults)
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    kwargs.update(overrides)
    kwargs["name"] = name
    return spec.builder(**kwargs)
