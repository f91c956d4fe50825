"""Study B's VGG-style CNN, optionally with SE or CBAM after each block."""

from __future__ import annotations

import keras
from keras import layers

from fer_utils.models.attention import apply_attention, check_attention
from fer_utils.models.common import check_input_shape, classifier



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
    check_attention(attention)
    check_input_shape(input_shape, 2 ** len(filters), "The Study B CNN")
    reg = kernel_regularizer
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = inputs
    for b, f in enumerate(filters, start=1):
        for i in (1, 2):
            x = layers.Conv2D(f, 3, padding="same", kernel_regularizer=reg, name=f"block{b}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"block{b}_bn{i}")(x)
            x = layers.Activation("relu", name=f"block{b}_relu{i}")(x)
        x = apply_attention(x, attention, f"block{b}", reduction, cbam_kernel, reg)
        x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"block{b}_dropout")(x)
    # Not "flatten": that is also Keras' automatic name for a Flatten layer.
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(dense_units, kernel_regularizer=reg, name="fc1")(x)
    x = layers.BatchNormalization(name="fc1_bn")(x)
    x = layers.Activation("relu", name="fc1_relu")(x)
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    outputs = classifier(x, num_classes, reg)
    return keras.Model(inputs, outputs, name=name)


