"""Attention blocks: squeeze-and-excitation (SE) and CBAM, built from Keras' own layers only.

A model with CBAM therefore loads with plain ``keras.models.load_model`` in a process that never
imported ``fer_utils``. :class:`ChannelPool`, the custom layer earlier versions used for CBAM's
channel mean/max, stays registered so that model files saved by those versions still load.

The attention-layer suffix that marks CBAM spatial maps lives here, and only here.
"""

from __future__ import annotations

import keras
from keras import layers, ops

ATTENTION_CHOICES = (None, "se", "cbam")

# Suffix that marks the CBAM spatial-attention map (a sigmoid Conv2D);
# evaluate/plots find attention maps through it.
SPATIAL_ATTENTION_SUFFIX = "_spatial_attention"

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
    mean and max over channels (built-in reshape and 1-D pooling layers) ->
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

    pooled = _channel_mean_max(x, name)
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


def _channel_mean_max(x, name):
    """CBAM's spatial descriptor from built-in layers: the mean and the max over channels, ``(H, W, 2)``.

    The positions are laid out as ``(H*W, C)`` and pooled over the channel axis with the 1-D global
    pooling layers (``channels_first`` makes them pool over the last axis).
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    if h is None or w is None:
        raise ValueError(f"cbam_block needs a static spatial size (H, W); received a tensor of shape {tuple(x.shape)}. "
                         "Build the model with a fixed input_shape.")
    positions = layers.Reshape((h * w, c), name=f"{name}_positions")(x)
    mean = layers.GlobalAveragePooling1D(data_format="channels_first", name=f"{name}_channel_mean")(positions)
    peak = layers.GlobalMaxPooling1D(data_format="channels_first", name=f"{name}_channel_max")(positions)
    mean = layers.Reshape((h, w, 1), name=f"{name}_channel_mean_map")(mean)
    peak = layers.Reshape((h, w, 1), name=f"{name}_channel_max_map")(peak)
    return layers.Concatenate(axis=-1, name=f"{name}_channel_pool")([mean, peak])


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


def apply_attention(x, attention, name, reduction, cbam_kernel, kernel_regularizer):
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


def check_attention(attention):
    if attention not in ATTENTION_CHOICES:
        raise ValueError(
            f"attention must be one of {ATTENTION_CHOICES}; received {attention!r}."
        )


