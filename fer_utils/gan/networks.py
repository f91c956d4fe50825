"""The conditional GAN's two networks, as builder functions with every layer named.

Generator (Issue 8's starting point, 1.2M parameters at the defaults): noise ``[latent_dim]`` and a
label embedding, concatenated -> dense to ``base x base x channels[0]`` -> one 2x step per entry of
``channels`` (nearest-neighbour upsampling, 3x3 conv, batch norm, ReLU) -> 3x3 conv with tanh, so
images lie in [-1, 1]. Three steps from 6x6 give 48x48.

Discriminator (0.4M): one stride-2 3x3 conv per entry of ``channels`` with LeakyReLU 0.2 (batch norm
after every conv but the first, optional spectral norm instead), global average pooling, dropout, an
unconditional ``dense(1)`` score plus the projection term of Miyato & Koyama (2018): the inner product
of the pooled features with a learned embedding of the label. All layers are Keras built-ins, so the
saved generator loads anywhere Keras 3 does.
"""

from __future__ import annotations

import keras
from keras import layers


def _check(name: str, image_size: int, num_classes: int, channels, latent_dim: int | None = None) -> int:
    """The number of 2x steps; raises ValueError naming what was received."""
    if num_classes < 2:
        raise ValueError(f"{name}: num_classes must be >= 2, received {num_classes}")
    if latent_dim is not None and latent_dim < 1:
        raise ValueError(f"{name}: latent_dim must be >= 1, received {latent_dim}")
    if not channels or any(int(c) < 1 for c in channels):
        raise ValueError(f"{name}: channels must be a non-empty list of positive ints, received {channels}")
    steps = len(channels)
    if image_size % (2 ** steps) or image_size // (2 ** steps) < 2:
        raise ValueError(f"{name}: image_size {image_size} must be divisible by 2**{steps} (one halving per "
                         f"entry of channels={list(channels)}) and leave at least 2x2; received {image_size}")
    return steps


def build_generator(*, latent_dim: int = 128, num_classes: int = 7, image_size: int = 48,
                    channels=(128, 128, 128), embed_dim: int = 32, name: str = "generator") -> keras.Model:
    """Conditional generator: ``[noise [B, latent_dim], label [B]] -> image [B, S, S, 1]`` in [-1, 1].

    Args:
        latent_dim: noise size.
        num_classes: number of labels.
        image_size: output side; must be ``base * 2**len(channels)`` with base >= 2 (48 = 6 * 8).
        channels: filters of the dense start and of each upsampling step (one 2x step per entry).
        embed_dim: size of the label embedding concatenated to the noise.
    """
    steps = _check(name, image_size, num_classes, channels, latent_dim)
    base = image_size // 2 ** steps
    noise = keras.Input((latent_dim,), name="noise")
    label = keras.Input((), dtype="int32", name="label")
    emb = layers.Embedding(num_classes, embed_dim, name="label_embedding")(label)
    x = layers.Concatenate(name="noise_and_label")([noise, emb])
    x = layers.Dense(base * base * int(channels[0]), use_bias=False, name="project")(x)
    x = layers.Reshape((base, base, int(channels[0])), name="to_grid")(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    for i, filters in enumerate(channels, start=1):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}")(x)
        x = layers.Conv2D(int(filters), 3, padding="same", use_bias=False, name=f"up{i}_conv")(x)
        x = layers.BatchNormalization(name=f"up{i}_bn")(x)
        x = layers.ReLU(name=f"up{i}_relu")(x)
    image = layers.Conv2D(1, 3, padding="same", activation="tanh", name="to_image")(x)
    return keras.Model([noise, label], image, name=name)


def build_discriminator(*, num_classes: int = 7, image_size: int = 48, channels=(64, 128, 128, 128),
                        batchnorm: bool = True, spectral_norm: bool = False, dropout: float = 0.3,
                        name: str = "discriminator") -> keras.Model:
    """Projection discriminator: ``[image [B, S, S, 1], label [B]] -> score [B, 1]`` (a logit).

    Args:
        channels: filters of the stride-2 convs (one halving per entry).
        batchnorm: batch norm after every conv but the first (the configuration that gave faces here).
        spectral_norm: wrap convs and dense layers in ``keras.layers.SpectralNormalization`` (use with
            ``batchnorm=False``; with hinge loss it did not give faces within 3,000 steps here).
        dropout: dropout rate before the score.
    """
    _check(name, image_size, num_classes, channels)
    if not 0 <= dropout < 1:
        raise ValueError(f"{name}: dropout must be in [0, 1), received {dropout}")

    def sn(layer):
        return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if spectral_norm else layer

    image = keras.Input((image_size, image_size, 1), name="image")
    label = keras.Input((), dtype="int32", name="label")
    x = image
    for i, filters in enumerate(channels, start=1):
        x = sn(layers.Conv2D(int(filters), 3, strides=2, padding="same", name=f"down{i}_conv"))(x)
        if batchnorm and i > 1:
            x = layers.BatchNormalization(name=f"down{i}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"down{i}_lrelu")(x)
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    features = layers.Dropout(dropout, name="dropout")(features)
    score = sn(layers.Dense(1, name="score"))(features)
    emb = layers.Embedding(num_classes, int(channels[-1]), name="label_projection")(label)
    projection = layers.Dot(axes=1, name="projection")([features, emb])
    out = layers.Add(name="logit")([score, projection])
    return keras.Model([image, label], out, name=name)
