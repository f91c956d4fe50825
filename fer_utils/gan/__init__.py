"""The conditional GAN that balances the training split (notebook 02).

- ``networks``  generator and projection discriminator builders (every layer named, built-in layers only)
- ``cgan``      :class:`ConditionalGAN`: Keras 3 model with its own ``train_step``, EMA generator, translation
- ``training``  :class:`GANConfig`, class-balanced batches, checkpoints and resume, sample grids, the saved generator
- ``quality``   KID with its floor, the data-copying test, classifier agreement (NumPy/SciPy only)

Importing this package imports nothing heavy; ``networks`` and ``cgan`` import TensorFlow when imported.
"""

from fer_utils.gan.training import GANConfig, generate, load_generator, train_gan

__all__ = ["GANConfig", "generate", "load_generator", "train_gan"]
