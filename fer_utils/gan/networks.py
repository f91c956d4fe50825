"""The conditional GAN's two networks, as builder functions with every layer named.

Generator (1.5M parameters at the ``cpu`` profile's 192/96/48/24): noise ``[latent_dim]`` and a label
embedding, concatenated -> dense to ``base x base x channels[0]`` -> one 2x step per further entry of
``channels`` (nearest-neighbour upsampling, 3x3 conv) -> 3x3 conv with tanh, so images lie in [-1, 1].
Every normalisation is *class-conditional batch norm* (de Vries et al. 2017; BigGAN): batch norm without
its own scale and offset, then ``x * gamma[label] + beta[label]`` from two label embeddings (gamma starts at
1, beta at 0), so the label reaches every layer, not only the input. 48 = 6 * 2**3: four channel entries.

Discriminator: per entry of ``channels`` a 3x3 conv and a stride-2 3x3 conv with LeakyReLU 0.2, no batch
norm and no dropout (regularised by R1 in :mod:`fer_utils.gan.cgan`), global sum pooling, then

- ``logit``: an unconditional ``dense(1)`` plus the projection term of Miyato & Koyama (2018), the inner
  product of the pooled features with a learned embedding of the label;
- ``class_logits``: an auxiliary classifier over the classes (AC-GAN, Odena et al. 2017), trained on real
  faces only; the generator is rewarded when its class-c faces are classified as c, which makes the label
  bite early (the projection term alone left every class alike after 2,700 steps in a pilot).

All layers are Keras built-ins, so the saved generator loads anywhere Keras 3 does.
"""

from __future__ import annotations

import keras
from keras import layers


def _check(name: str, image_size: int, num_classes: int, channels, halvings: int,
           latent_dim: int | None = None) -> None:
    """Raise ValueError naming what was received when the sizes cannot work."""
    if num_classes < 2:
        raise ValueError(f"{name}: num_classes must be >= 2, received {num_classes}")
    if latent_dim is not None and latent_dim < 1:
        raise ValueError(f"{name}: latent_dim must be >= 1, received {latent_dim}")
    if not channels or any(int(c) < 1 for c in channels):
        raise ValueError(f"{name}: channels must be a non-empty list of positive ints, received {channels}")
    if halvings < 1 or image_size % (2 ** halvings) or image_size // (2 ** halvings) < 2:
        raise ValueError(f"{name}: image_size {image_size} must be divisible by 2**{halvings} (one 2x step per "
                         f"entry of channels={list(channels)}{' after the first' if latent_dim else ''}) and "
                         f"leave at least 2x2; received {image_size}")


def _conditional_bn(x, label, num_classes: int, prefix: str):
    """Batch norm whose scale and offset are looked up per label (``gamma`` starts at 1, ``beta`` at 0)."""
    c = int(x.shape[-1])
    x = layers.BatchNormalization(center=False, scale=False, name=f"{prefix}_bn")(x)
    gamma = layers.Embedding(num_classes, c, embeddings_initializer="ones", name=f"{prefix}_gamma")(label)
    beta = layers.Embedding(num_classes, c, embeddings_initializer="zeros", name=f"{prefix}_beta")(label)
    gamma = layers.Reshape((1, 1, c), name=f"{prefix}_gamma_grid")(gamma)
    beta = layers.Reshape((1, 1, c), name=f"{prefix}_beta_grid")(beta)
    x = layers.Multiply(name=f"{prefix}_scale")([x, gamma])
    return layers.Add(name=f"{prefix}_shift")([x, beta])


def build_generator(*, latent_dim: int = 128, num_classes: int = 7, image_size: int = 48,
                    channels=(192, 96, 48, 24), embed_dim: int = 32, name: str = "generator") -> keras.Model:
    """Conditional generator: ``[noise [B, latent_dim], label [B]] -> image [B, S, S, 1]`` in [-1, 1].

    Args:
        latent_dim: noise size.
        num_classes: number of labels.
        image_size: output side; must be ``base * 2**(len(channels) - 1)`` with base >= 2 (48 = 6 * 8).
        channels: filters of the dense start, then of each upsampling step.
        embed_dim: size of the label embedding concatenated to the noise.
    """
    _check(name, image_size, num_classes, channels, len(channels) - 1, latent_dim)
    base = image_size // 2 ** (len(channels) - 1)
    noise = keras.Input((latent_dim,), name="noise")
    label = keras.Input((), dtype="int32", name="label")
    emb = layers.Embedding(num_classes, embed_dim, name="label_embedding")(label)
    x = layers.Concatenate(name="noise_and_label")([noise, emb])
    x = layers.Dense(base * base * int(channels[0]), use_bias=False, name="project")(x)
    x = layers.Reshape((base, base, int(channels[0])), name="to_grid")(x)
    x = layers.ReLU(name="project_relu")(_conditional_bn(x, label, num_classes, "project"))
    for i, filters in enumerate(channels[1:], start=1):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}")(x)
        x = layers.Conv2D(int(filters), 3, padding="same", use_bias=False, name=f"up{i}_conv")(x)
        x = layers.ReLU(name=f"up{i}_relu")(_conditional_bn(x, label, num_classes, f"up{i}"))
    image = layers.Conv2D(1, 3, padding="same", activation="tanh", name="to_image")(x)
    return keras.Model([noise, label], image, name=name)


def build_discriminator(*, num_classes: int = 7, image_size: int = 48, channels=(32, 64, 128, 256),
                        name: str = "discriminator") -> keras.Model:
    """Projection discriminator with an auxiliary classifier.

    ``[image [B, S, S, 1], label [B]] -> [logit [B, 1], class_logits [B, num_classes]]``.

    Args:
        channels: filters of each stage (a 3x3 conv, then a stride-2 3x3 conv: one halving per entry).
    """
    _check(name, image_size, num_classes, channels, len(channels))
    image = keras.Input((image_size, image_size, 1), name="image")
    label = keras.Input((), dtype="int32", name="label")
    x = image
    for i, filters in enumerate(channels, start=1):
        x = layers.Conv2D(int(filters), 3, padding="same", name=f"stage{i}_conv")(x)
        x = layers.LeakyReLU(0.2, name=f"stage{i}_lrelu")(x)
        x = layers.Conv2D(int(filters), 3, strides=2, padding="same", name=f"stage{i}_down")(x)
        x = layers.LeakyReLU(0.2, name=f"stage{i}_down_lrelu")(x)
    side = image_size // 2 ** len(channels)
    # Sum pooling (SNGAN/BigGAN) as an average pool scaled by the number of positions.
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    features = layers.Rescaling(float(side * side), name="sum_pool")(features)
    score = layers.Dense(1, name="score")(features)
    emb = layers.Embedding(num_classes, int(channels[-1]), name="label_projection")(label)
    projection = layers.Dot(axes=1, name="projection")([features, emb])
    logit = layers.Add(name="logit")([score, projection])
    class_logits = layers.Dense(num_classes, name="class_logits")(features)
    return keras.Model([image, label], [logit, class_logits], name=name)
