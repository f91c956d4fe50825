"""The conditional GAN as a Keras 3 model with its own ``train_step`` (TensorFlow backend).

One step = one discriminator update (real and fake batches passed through it separately) and one generator
update, then the exponential moving average (EMA) of the generator's trainable weights. The design follows
what makes GANs learn on small data and budgets:

- non-saturating loss on the projection logit, plus an auxiliary classification loss (AC-GAN): the
  discriminator's classifier learns the classes on real faces, the generator is rewarded when its class-c
  faces are classified as c (``aux_weight``);
- lazy R1 on reals (Mescheder et al. 2018; StyleGAN2): every ``r1_every`` steps the squared gradient of the
  real logit with respect to the (augmented) real images, weighted ``r1_gamma / 2 * r1_every``;
- DiffAugment (Zhao et al. 2020) on real and fake images alike, differentiable so it does not leak into
  the generator: brightness, contrast, translation and cutout; real images are also flipped;
- EMA of trainable weights only; the average's batch-norm statistics belong to no weights, so
  :meth:`ConditionalGAN.refresh_ema_statistics` recomputes them over one class-balanced batch before a
  sample grid or the saved generator is drawn.

Every random draw (noise, flips, augmentations) comes from one ``tf.random.Generator`` whose state is a
variable saved with the checkpoint, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from fer_utils.gan.training import AUGMENTS, LOSSES


def translate(images: tf.Tensor, shifts: tf.Tensor, fill: float = -1.0) -> tf.Tensor:
    """Shift each image by its own integer ``(dy, dx)``; uncovered pixels get ``fill``.

    Differentiable in ``images`` (gathers only), so it can sit between generator and discriminator.

    Args:
        images: ``[B, H, W, C]``.
        shifts: int32 ``[B, 2]`` of ``(dy, dx)``.
    """
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=fill)
    rows = tf.clip_by_value(tf.range(h)[None, :] - shifts[:, :1] + 1, 0, h + 1)
    cols = tf.clip_by_value(tf.range(w)[None, :] - shifts[:, 1:] + 1, 0, w + 1)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def cutout(images: tf.Tensor, centres: tf.Tensor, size: int) -> tf.Tensor:
    """Set a ``size x size`` square around each image's ``(y, x)`` centre to 0 (mid-grey in [-1, 1])."""
    h, w = tf.shape(images)[1], tf.shape(images)[2]
    half = size // 2
    ys = tf.range(h)[None, :, None] - centres[:, :1, None]
    xs = tf.range(w)[None, None, :] - centres[:, 1:, None]
    inside = (ys >= -half) & (ys < size - half) & (xs >= -half) & (xs < size - half)
    return images * tf.cast(~inside, images.dtype)[..., None]


class ConditionalGAN(keras.Model):
    """Generator + discriminator (projection logit and auxiliary classifier) + EMA generator.

    Args:
        generator, discriminator: from :mod:`fer_utils.gan.networks`.
        ema_generator: a copy of ``generator`` (same architecture) holding the moving average.
        latent_dim: the generator's noise size.
        loss: ``"nonsaturating"`` (default) or ``"hinge"``.
        aux_weight: weight of the auxiliary classification loss (0 disables it).
        r1_gamma, r1_every: R1 weight and period (``r1_gamma=0`` disables it).
        augment: DiffAugment policies applied to real and fake images, a subset of ``AUGMENTS``.
        translation: largest shift as a fraction of the image side.
        cutout_size: side of the cutout square as a fraction of the image side.
        real_flip: flip half of the real images left-right.
        ema_decay: weight of the old average per step (0: the average copies the generator).
        ema_warmup: use ``min(ema_decay, (1 + t) / (10 + t))`` at step t.
        seed: seeds the noise and augmentation generator.
    """

    def __init__(self, generator, discriminator, ema_generator, *, latent_dim: int, loss: str = "nonsaturating",
                 aux_weight: float = 1.0, r1_gamma: float = 0.0, r1_every: int = 16,
                 augment=("color", "translation", "cutout"), translation: float = 0.125, cutout_size: float = 0.5,
                 real_flip: bool = True, ema_decay: float = 0.999, ema_warmup: bool = True, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: expected one of {list(LOSSES)}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), received {ema_decay}")
        if not 0 <= translation < 0.5 or not 0 <= cutout_size < 1:
            raise ValueError(f"translation must be in [0, 0.5) and cutout_size in [0, 1), received "
                             f"{translation} and {cutout_size}")
        unknown = sorted(set(augment) - set(AUGMENTS))
        if unknown:
            raise ValueError(f"augment {unknown}: expected a subset of {list(AUGMENTS)}")
        self.generator, self.discriminator, self.ema_generator = generator, discriminator, ema_generator
        self.latent_dim, self.loss_name = int(latent_dim), loss
        self.aux_weight, self.r1_gamma, self.r1_every = float(aux_weight), float(r1_gamma), int(r1_every)
        self.augment, self.translation, self.cutout_size = tuple(augment), float(translation), float(cutout_size)
        self.real_flip = bool(real_flip)
        self.ema_decay, self.ema_warmup = float(ema_decay), bool(ema_warmup)
        self.rng = tf.random.Generator.from_seed(int(seed))
        self.ema_generator.set_weights(self.generator.get_weights())

    def compile(self, g_optimizer, d_optimizer):
        """The two optimizers (no Keras loss: the losses live in :meth:`train_step`)."""
        super().compile()
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, inputs, training=False):
        """``[noise, label] -> image`` through the EMA generator."""
        return self.ema_generator(inputs, training=training)

    # ------------------------------------------------------------------ augmentation

    def _augment(self, images):
        batch, side = tf.shape(images)[0], images.shape[1]
        if "color" in self.augment:
            # DiffAugment's brightness (+-0.5 on the [-1, 1] scale) and contrast (x0.5 to x1.5 around each
            # image's mean).
            images = images + self.rng.uniform([batch, 1, 1, 1], -0.5, 0.5)
            mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
            images = (images - mean) * self.rng.uniform([batch, 1, 1, 1], 0.5, 1.5) + mean
        if "translation" in self.augment and self.translation:
            limit = max(1, int(round(side * self.translation)))
            shifts = self.rng.uniform([batch, 2], minval=-limit, maxval=limit + 1, dtype=tf.int32)
            images = translate(images, shifts)
        if "cutout" in self.augment and self.cutout_size:
            size = max(1, int(round(side * self.cutout_size)))
            centres = self.rng.uniform([batch, 2], minval=0, maxval=side, dtype=tf.int32)
            images = cutout(images, centres, size)
        return images

    def _flip(self, images):
        if not self.real_flip:
            return images
        flip = self.rng.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
        return tf.where(flip, tf.reverse(images, axis=[2]), images)

    # ------------------------------------------------------------------ losses

    def _d_loss(self, real_logits, fake_logits):
        if self.loss_name == "hinge":
            return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
        return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))

    def _g_loss(self, fake_logits):
        if self.loss_name == "hinge":
            return -tf.reduce_mean(fake_logits)
        return tf.reduce_mean(tf.nn.softplus(-fake_logits))

    @staticmethod
    def _class_loss(labels, class_logits):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, class_logits))

    # ------------------------------------------------------------------ one step

    def train_step(self, data, r1: bool = False):
        """One discriminator and one generator update; ``r1`` adds the (lazy) R1 penalty this step."""
        real, labels = data
        labels = tf.cast(labels, tf.int32)
        batch = tf.shape(real)[0]
        real = self._augment(self._flip(real))
        noise = self.rng.normal([batch, self.latent_dim])
        with tf.GradientTape() as tape:
            fake = self.generator([noise, labels], training=True)
            fake_logits, _ = self.discriminator([self._augment(fake), labels], training=True)
            if r1:
                with tf.GradientTape() as inner:
                    inner.watch(real)
                    real_logits, real_classes = self.discriminator([real, labels], training=True)
                    summed = tf.reduce_sum(real_logits)
                slopes = inner.gradient(summed, real)
                penalty = tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))
            else:
                real_logits, real_classes = self.discriminator([real, labels], training=True)
                penalty = tf.constant(0.0)
            class_loss = self._class_loss(labels, real_classes)
            d_loss = self._d_loss(real_logits, fake_logits)
            total = d_loss + self.aux_weight * class_loss + 0.5 * self.r1_gamma * self.r1_every * penalty
        grads = tape.gradient(total, self.discriminator.trainable_variables)
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)

        noise = self.rng.normal([batch, self.latent_dim])
        with tf.GradientTape() as tape:
            fake = self.generator([noise, labels], training=True)
            g_logits, g_classes = self.discriminator([self._augment(fake), labels], training=True)
            g_loss = self._g_loss(g_logits)
            g_class_loss = self._class_loss(labels, g_classes)
            g_total = g_loss + self.aux_weight * g_class_loss
        grads = tape.gradient(g_total, self.generator.trainable_variables)
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        self._update_ema()
        real_right = tf.cast(tf.argmax(real_classes, axis=1, output_type=tf.int32) == labels, tf.float32)
        fake_right = tf.cast(tf.argmax(g_classes, axis=1, output_type=tf.int32) == labels, tf.float32)
        return {"d_loss": d_loss, "g_loss": g_loss,
                "d_acc_real": tf.reduce_mean(tf.cast(real_logits > 0, tf.float32)),
                "d_acc_fake": tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)),
                "class_acc_real": tf.reduce_mean(real_right), "class_acc_fake": tf.reduce_mean(fake_right),
                "r1": penalty}

    def _update_ema(self):
        decay = tf.constant(self.ema_decay, tf.float32)
        if self.ema_warmup:
            # TensorFlow's ExponentialMovingAverage warm-up: min(decay, (1 + t) / (10 + t)), so the average
            # follows the generator early on instead of lagging ~1/(1 - decay) steps behind it.
            t = tf.cast(self.g_optimizer.iterations, tf.float32)
            decay = tf.minimum(decay, (1.0 + t) / (10.0 + t))
        for ema_var, var in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            ema_var.assign(decay * ema_var + (1.0 - decay) * var)

    def refresh_ema_statistics(self, noise, labels) -> None:
        """Set the EMA generator's batch-norm statistics to those of one batch (class-balanced ``labels``).

        The moving average covers trainable weights only; statistics gathered while it changed, or copied
        from the raw generator, belong to other weights. One forward pass in training mode with momentum 0
        makes every batch norm's moving mean and variance those of this batch, deterministically.
        """
        norms = [layer for layer in self.ema_generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
        momenta = [layer.momentum for layer in norms]
        try:
            for layer in norms:
                layer.momentum = 0.0
            self.ema_generator([noise, labels], training=True)
        finally:
            for layer, momentum in zip(norms, momenta):
                layer.momentum = momentum

    def state_variables(self) -> list:
        """Every variable a checkpoint must hold to resume exactly: networks, EMA, optimizers, random state."""
        return [*self.generator.variables, *self.discriminator.variables, *self.ema_generator.variables,
                *self.g_optimizer.variables, *self.d_optimizer.variables, self.rng.state]
