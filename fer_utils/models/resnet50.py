"""ResNet50 v1 with optional SE/CBAM after every bottleneck unit (names as ``keras.applications.ResNet50``)."""

from __future__ import annotations

import keras
from keras import layers

from fer_utils.models.attention import apply_attention
from fer_utils.models.common import check_backbone_args, gap_head
from fer_utils.models.weights import load_backbone_weights



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
    check_backbone_args("ResNet50", input_shape, attention, weights, head, min_size=32)
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
            x = apply_attention(x, attention, block, reduction, cbam_kernel, reg)

    if include_top:
        x = gap_head(x, num_classes, dropout, reg)

    model = keras.Model(inputs, x, name=name)
    load_backbone_weights(model, "resnet50", weights, input_shape)
    return model


