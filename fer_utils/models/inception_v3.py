"""InceptionV3 with optional SE/CBAM after every Inception module (descriptive layer names)."""

from __future__ import annotations

import keras
from keras import layers

from fer_utils.models.attention import apply_attention
from fer_utils.models.common import check_backbone_args, gap_head
from fer_utils.models.weights import load_backbone_weights



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
    check_backbone_args("InceptionV3", input_shape, attention, weights, head, min_size=75)
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
        return apply_attention(x, attention, module_name, reduction, cbam_kernel, reg)

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
        x = gap_head(x, num_classes, dropout, reg)

    model = keras.Model(inputs, x, name=name)
    load_backbone_weights(model, "inception_v3", weights, input_shape, inception_order=order)
    return model


