"""Study C's multi-scale convolutional residual network with SE attention, its SE x BN ablation switches, and a
cheaper fusion convolution (``fuse="separable"``) for CPUs without wide vector units."""

from __future__ import annotations

import keras
from keras import layers

from fer_utils.models.attention import se_block
from fer_utils.models.common import check_input_shape, classifier



def _msca_unit(x, filters, kernel_size, name, se, bn, reduction, reg, activation=True, separable=False):
    """Conv (depthwise-separable if ``separable``) -> BN (if bn) -> SE (if se) -> ReLU (if activation)."""
    # A conv followed by BN needs no bias; without BN (ablation) it does.
    if separable:
        x = layers.SeparableConv2D(filters, kernel_size, padding="same", use_bias=not bn, depthwise_regularizer=reg,
                                   pointwise_regularizer=reg, name=f"{name}_sepconv")(x)
    else:
        x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not bn, kernel_regularizer=reg,
                          name=f"{name}_conv")(x)
    if bn:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if se:
        x = se_block(x, reduction=reduction, name=f"{name}_se", kernel_regularizer=reg)
    if activation:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def _msca_residual_block(x, filters, name, se, bn, reduction, reg, fuse="conv"):
    """Multi-scale module + 3x3 fusion conv (``fuse``) + residual connection."""
    branch = max(1, filters // 4)
    unit = dict(se=se, bn=bn, reduction=reduction, reg=reg)
    b1 = _msca_unit(x, branch, 1, f"{name}_b1x1", **unit)
    b3 = _msca_unit(x, branch, 3, f"{name}_b3x3", **unit)
    b5 = _msca_unit(x, branch, 5, f"{name}_b5x5", **unit)
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_bpool_pool")(x)
    bp = _msca_unit(bp, branch, 1, f"{name}_bpool", **unit)
    y = layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])
    y = _msca_unit(y, filters, 3, f"{name}_fuse", activation=False, separable=fuse == "separable", **unit)

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
    fuse="conv",
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

    At the defaults (48x48x1, 8 classes) this has 1,257,600 parameters and 110M multiply-adds per image, 58% of
    them in the three 3x3 fusion convolutions. ``fuse="separable"`` makes those depthwise-separable
    (``SeparableConv2D``: a 3x3 depthwise then a 1x1 pointwise convolution, ``blockN_fuse_sepconv``), about half
    the multiply-adds in all: where the classifier's float32 arithmetic bounds prediction (AVX2-only CPUs,
    docs/predict.md) it is the cheaper network to train and compare. Not part of Study C.

    Args:
        input_shape: ``(H, W, C)``; H and W must be >= 2**len(filters).
        num_classes: Number of output classes.
        se: Use SE blocks.
        bn: Use batch normalisation.
        filters: Filters of each residual block.
        reduction: SE reduction ratio.
        stem_filters: Filters of the stem convolution.
        kernel_regularizer: Regularizer for every Conv2D and Dense kernel (both kernels of a separable one).
        fuse: ``"conv"`` (Study C's 3x3 fusion convolution) or ``"separable"`` (depthwise-separable).
        name: Model name.

    Returns:
        A ``keras.Model``.
    """
    if fuse not in ("conv", "separable"):
        raise ValueError(f"fuse={fuse!r}: expected 'conv' (Study C's 3x3 fusion convolution) or 'separable'")
    check_input_shape(input_shape, 2 ** len(filters), "The Study C network")
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
        x = _msca_residual_block(x, f, f"block{i}", se, bn, reduction, reg, fuse)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, reg)
    return keras.Model(inputs, outputs, name=name)


