"""The conditional GAN as a Keras 3 model with its own ``train_step`` (TensorFlow backend).

One step = one discriminator update (real and fake batches passed through it separately, so batch
norm never mixes them) and one generator update, then the exponential moving average (EMA) of the
generator's weights. Real and fake images both get the same random translation (DiffAugment, Zhao et
al. 2020) before the discriminator sees them, so the augmentation does not leak into the generator.

Every random draw (noise, translations) comes from one ``tf.random.Generator`` whose state is a
variable saved with the checkpoint, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from fer_utils.gan.training import LOSSES


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


class ConditionalGAN(keras.Model):
    """Generator + projection discriminator + EMA generator, trained by :meth:`train_step`.

    Args:
        generator, discriminator: from :mod:`fer_utils.gan.networks`.
        ema_generator: a copy of ``generator`` (same architecture) holding the moving average.
        latent_dim: the generator's noise size.
        loss: ``"nonsaturating"`` (default) or ``"hinge"``.
        ema_decay: weight of the old average per step (0 disables the average: it copies the generator).
        ema_warmup: use ``min(ema_decay, (1 + t) / (10 + t))`` at step t (measured here: with 0.999 and no
            warm-up the average still showed no faces after 2,000 steps while the generator did).
        translation: largest shift as a fraction of the image side (0 disables augmentation).
        seed: seeds the noise and translation generator.
    """

    def __init__(self, generator, discriminator, ema_generator, *, latent_dim: int, loss: str = "nonsaturating",
                 ema_decay: float = 0.999, ema_warmup: bool = True, translation: float = 0.125, seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}: expected one of {list(LOSSES)}")
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), received {ema_decay}")
        if not 0 <= translation < 0.5:
            raise ValueError(f"translation must be in [0, 0.5), received {translation}")
        self.generator, self.discriminator, self.ema_generator = generator, discriminator, ema_generator
        self.latent_dim, self.loss_name = int(latent_dim), loss
        self.ema_decay, self.ema_warmup, self.translation = float(ema_decay), bool(ema_warmup), float(translation)
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

    def _augment(self, images):
        if not self.translation:
            return images
        side = images.shape[1]
        limit = max(1, int(round(side * self.translation)))
        shifts = self.rng.uniform([tf.shape(images)[0], 2], minval=-limit, maxval=limit + 1, dtype=tf.int32)
        return translate(images, shifts)

    def _d_loss(self, real_logits, fake_logits):
        if self.loss_name == "hinge":
            return tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
        return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))

    def _g_loss(self, fake_logits):
        if self.loss_name == "hinge":
            return -tf.reduce_mean(fake_logits)
        return tf.reduce_mean(tf.nn.softplus(-fake_logits))

    def train_step(self, data):
        real, labels = data
        labels = tf.cast(labels, tf.int32)
        batch = tf.shape(real)[0]
        noise = self.rng.normal([batch, self.latent_dim])
        with tf.GradientTape() as tape:
            fake = self.generator([noise, labels], training=True)
            real_logits = self.discriminator([self._augment(real), labels], training=True)
            fake_logits = self.discriminator([self._augment(fake), labels], training=True)
            d_loss = self._d_loss(real_logits, fake_logits)
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply(grads, self.discriminator.trainable_variables)

        noise = self.rng.normal([batch, self.latent_dim])
        with tf.GradientTape() as tape:
            fake = self.generator([noise, labels], training=True)
            g_logits = self.discriminator([self._augment(fake), labels], training=True)
            g_loss = self._g_loss(g_logits)
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply(grads, self.generator.trainable_variables)
        self._update_ema()
        return {"d_loss": d_loss, "g_loss": g_loss,
                "d_acc_real": tf.reduce_mean(tf.cast(real_logits > 0, tf.float32)),
                "d_acc_fake": tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32))}

    def _update_ema(self):
        decay = tf.constant(self.ema_decay, tf.float32)
        if self.ema_warmup:
            # TensorFlow's ExponentialMovingAverage warm-up: min(decay, (1 + t) / (10 + t)), so the average
            # follows the generator early on instead of lagging ~1/(1 - decay) steps behind it.
            t = tf.cast(self.g_optimizer.iterations, tf.float32)
            decay = tf.minimum(decay, (1.0 + t) / (10.0 + t))
        for ema_var, var in zip(self.ema_generator.weights, self.generator.weights):
            ema_var.assign(decay * ema_var + (1.0 - decay) * var)

    def state_variables(self) -> list:
        """Every variable a checkpoint must hold to resume exactly: networks, EMA, optimizers, random state."""
        # .variables, not .weights: dropout's seed state counts too.
        return [*self.generator.variables, *self.discriminator.variables, *self.ema_generator.variables,
                *self.g_optimizer.variables, *self.d_optimizer.variables, self.rng.state]
