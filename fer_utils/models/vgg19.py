"""VGG19 with optional SE/CBAM after each conv block (names as ``keras.applications.VGG19``)."""

from __future__ import annotations

import keras
from keras import layers

from fer_utils.models.attention import apply_attention
from fer_utils.models.common import check_backbone_args, classifier, gap_head
from fer_utils.models.weights import load_backbone_weights



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
    check_backbone_args("VGG19", input_shape, attention, weights, head, min_size=32)
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
        x = apply_attention(x, attention, f"block{block}", reduction, cbam_kernel, reg)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)

    if include_top:
        if head == "imagenet":
            x = layers.Flatten(name="flatten")(x)
            for fc in ("fc1", "fc2"):
                x = layers.Dense(4096, activation="relu", kernel_regularizer=reg, name=fc)(x)
                if dropout:
                    x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
            x = classifier(x, num_classes, reg)
        else:
            x = gap_head(x, num_classes, dropout, reg)

    model = keras.Model(inputs, x, name=name)
    load_backbone_weights(model, "vgg19", weights, input_shape)
    return model


