"""Input pipelines: ``tf.data`` from in-memory arrays for training and evaluation.

This module owns everything between a :class:`fer_utils.data.FERDataset` and a model's
input tensor: resizing to the model's input size with the aspect ratio preserved,
grey-to-RGB for backbones that want three channels, normalisation, augmentation with
Keras preprocessing layers (no ``ImageDataGenerator``), caching and prefetching.
TensorFlow is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import numpy as np

NORMALIZATIONS = ("unit", "symmetric", "standardize", "per_image", "imagenet_caffe")
#: The per-channel (B, G, R) means ``imagenet_caffe`` subtracts: those of Keras' VGG/ResNet ImageNet weights.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
AUGMENT_KEYS = {"flip": bool, "shift": float, "rotation_deg": float, "zoom": float, "contrast": float,
                "erasing": float, "mixup": float, "cutmix": float}
#: Keys that mix images *and labels* of a batch: only the training stream applies them.
MIXING_KEYS = ("mixup", "cutmix")
#: Keys whose value is a probability or a Keras factor in [0, 1].
UNIT_KEYS = ("erasing", "mixup", "cutmix")


def check_augment(augment) -> dict:
    """Validate an augmentation dict (``flip``, ``shift``, ``rotation_deg``, ``zoom``, ``contrast``).

    Raises:
        ValueError: an unknown key or a negative amount, naming the key.
    """
    if not augment:
        return {}
    if not isinstance(augment, dict):
        raise ValueError(f"augment must be a dict with keys {sorted(AUGMENT_KEYS)} or None, got {augment!r}")
    for key, value in augment.items():
        if key not in AUGMENT_KEYS:
            raise ValueError(f"augment key {key!r} is unknown; expected some of {sorted(AUGMENT_KEYS)}")
        if key != "flip" and (not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"augment[{key!r}]={value!r}: expected a number >= 0")
        if key in UNIT_KEYS and value > 1:
            raise ValueError(f"augment[{key!r}]={value!r}: expected a number in [0, 1]")
    if all(augment.get(k) for k in MIXING_KEYS):
        raise ValueError(f"augment: mixup={augment['mixup']} and cutmix={augment['cutmix']}; use one of them")
    return dict(augment)


def augmentation_layers(augment: dict, seed: int = 0):
    """A ``keras.Sequential`` of preprocessing layers for ``augment`` (or None when empty).

    ``shift`` and ``zoom`` are fractions of the image size; ``rotation_deg`` is in degrees; ``erasing`` is the
    probability that an image gets one random-erasing patch (Zhong et al. 2020: 2-33% of the image, noise-filled).
    ``mixup``/``cutmix`` are not here (:func:`mixing_layer`: they mix labels too).
    """
    import keras

    augment = check_augment(augment)
    layers = []
    if augment.get("flip"):
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed, name="aug_flip"))
    if augment.get("rotation_deg"):
        layers.append(keras.layers.RandomRotation(augment["rotation_deg"] / 360.0, fill_mode="reflect",
                                                  seed=seed + 1, name="aug_rotation"))
    if augment.get("shift"):
        layers.append(keras.layers.RandomTranslation(augment["shift"], augment["shift"], fill_mode="reflect",
                                                     seed=seed + 2, name="aug_shift"))
    if augment.get("zoom"):
        layers.append(keras.layers.RandomZoom(augment["zoom"], fill_mode="reflect", seed=seed + 3, name="aug_zoom"))
    if augment.get("contrast"):
        layers.append(keras.layers.RandomContrast(augment["contrast"], seed=seed + 4, name="aug_contrast"))
    if augment.get("erasing"):
        p = float(augment["erasing"])
        layers.append(keras.layers.RandomErasing(factor=(p, p), scale=(0.02, 0.33), value_range=(0, 255),
                                                 seed=seed + 5, name="aug_erasing"))
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")


def mixing_layer(augment: dict, seed: int = 0):
    """MixUp (``mixup``: alpha of its Beta distribution) or CutMix (``cutmix``: Keras' factor), or None. Called on
    ``{"images": x, "labels": y}`` (one-hot or soft labels), it mixes pairs of the batch and their labels. Built in
    float32 whatever the global policy: under ``mixed_bfloat16`` Keras' layers draw their mixing weights in bfloat16
    and fail on the float32 batch ("Input 'y' of 'Mul' Op has type bfloat16")."""
    import keras

    augment = check_augment(augment)
    if augment.get("mixup"):
        return keras.layers.MixUp(alpha=float(augment["mixup"]), seed=seed + 6, name="aug_mixup", dtype="float32")
    if augment.get("cutmix"):
        return keras.layers.CutMix(factor=float(augment["cutmix"]), seed=seed + 7, name="aug_cutmix",
                                     dtype="float32")
    return None


def normalization_stats(images: np.ndarray) -> tuple:
    """Mean and std of pixel values (0-255 scale) of a training set, for ``standardize``."""
    x = np.asarray(images, dtype=np.float64)
    return float(x.mean()), float(x.std() or 1.0)


def make_dataset(images, labels=None, num_classes: int | None = None, *, input_size=(48, 48), channels: int = 1,
                 batch_size: int = 64, normalization: str = "unit", mean: float | None = None,
                 std: float | None = None, augment=None, shuffle: bool = False, seed: int = 0, cache: bool = True,
                 soft_labels=None, drop_remainder: bool = False):
    """Build a ``tf.data.Dataset`` of ``(x, y)`` batches (or ``x`` only when ``labels`` is None).

    Args:
        images: uint8 ``[N, H, W]`` grey images.
        labels: int ``[N]`` class indices, or None for prediction-only pipelines.
        num_classes: number of classes (one-hot width).
        input_size: ``(H, W)`` (or an int) of the model input; images are resized with the
            aspect ratio preserved (padding when the ratios differ).
        channels: 1, or 3 to repeat the grey channel for RGB backbones.
        batch_size: batch size.
        normalization: ``unit`` ([0, 1]), ``symmetric`` ([-1, 1]), ``standardize`` (training
            mean/std, pass ``mean``/``std``), ``per_image`` (each image to zero mean, unit
            variance) or ``imagenet_caffe`` (BGR mean subtraction of Keras' VGG/ResNet weights).
        mean: training-set pixel mean (0-255) for ``standardize``.
        std: training-set pixel std (0-255) for ``standardize``.
        augment: dict for :func:`augmentation_layers` or None; applied after batching,
            before normalisation, on training data only.
        shuffle: shuffle every epoch (seeded).
        seed: seed for shuffling and augmentation.
        cache: cache the decoded, resized images in memory (before augmentation).
        soft_labels: float ``[N, K]`` targets used instead of one-hot labels (FER+ votes).
        drop_remainder: drop the last incomplete batch.

    Returns:
        A prefetching ``tf.data.Dataset`` yielding float32 ``[B, H, W, C]`` and one-hot
        (or soft) float32 ``[B, K]``.
    """
    import tensorflow as tf

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 [N,H,W], got {images.dtype} {images.shape}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r}: expected one of {NORMALIZATIONS}")
    if normalization == "standardize" and (mean is None or std is None):
        raise ValueError("normalization='standardize' needs mean= and std= from the training split "
                         "(see normalization_stats)")
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}: expected 1 or 3")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    mixing = [k for k in MIXING_KEYS if (augment or {}).get(k)]
    if mixing:
        raise ValueError(f"augment {mixing[0]!r} mixes labels: only the training stream (pipeline.TrainingStream, "
                         "what runs and trials train on) applies it")
    aug = augmentation_layers(augment, seed) if augment else None

    x = tf.data.Dataset.from_tensor_slices(images[..., None])
    if labels is not None:
        if num_classes is None:
            raise ValueError("num_classes is required with labels")
        if soft_labels is not None:
            y = np.asarray(soft_labels, dtype=np.float32)
        else:
            y = np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
        ds = tf.data.Dataset.zip((x, tf.data.Dataset.from_tensor_slices(y)))
    else:
        ds = x.map(lambda im: (im,))

    def resize(im, *rest):
        return (_resize(tf, im, images.shape[1:3], size), *rest)

    ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(min(len(images), 20000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def finish(im, *rest):
        if aug is not None:
            im = aug(im, training=True)
        im = _finish(tf, im, normalization, mean, std, channels)
        return (im, *rest) if rest else im

    # Augmentation draws from the layers' seeded generators: parallel calls would race for the generator
    # state and make runs irreproducible, so augmented batches are prepared in order (in the background,
    # overlapped with training by prefetch; about 3% of the small CNN's speed, see README).
    ds = ds.map(finish, num_parallel_calls=None if aug is not None else tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class TrainingStream:
    """An endless training stream in which batch ``g`` depends on ``(seed, g)`` only, so training can resume exactly.

    Data epoch ``e`` visits every image once in the order of a stateless permutation seeded by ``(seed, e)``
    (``tf.random.experimental.index_shuffle``), in ``batches_per_epoch`` batches numbered ``e * batches_per_epoch + b``;
    each augmentation layer's generator is set from ``(its seed, g)`` before it draws for batch ``g``. So
    :meth:`dataset` started at batch ``g`` yields exactly the batches an uninterrupted stream yields from ``g`` on: a
    run resumed at epoch ``k`` (:func:`fer_utils.train.fit_model`) or a Hyperband trial continued from epoch ``k``
    sees the batches an uninterrupted run sees (issue 25: a restarted stream made the first resumed epoch's loss
    1.66 instead of 2.22). Images are gathered from the uint8 arrays and resized per batch (nothing is cached).
    """

    def __init__(self, images, targets, *, input_size, channels: int, batch_size: int, normalization: str,
                 mean=None, std=None, augment=None, seed: int = 0, drop_remainder: bool = False):
        self.images, self.targets = np.asarray(images), np.asarray(targets, dtype=np.float32)
        if self.images.dtype != np.uint8 or self.images.ndim != 3 or not len(self.images):
            raise ValueError(f"images must be a non-empty uint8 [N,H,W] array, got {self.images.dtype} "
                             f"{self.images.shape}")
        if len(self.targets) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.targets)} targets")
        self.size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.channels, self.batch_size, self.seed = int(channels), int(batch_size), int(seed)
        self.normalization, self.mean, self.std = normalization, mean, std
        self.augment, self.drop_remainder = check_augment(augment), bool(drop_remainder)
        n = len(self.images)
        self.batches_per_epoch = n // self.batch_size if drop_remainder else -(-n // self.batch_size)
        if self.batches_per_epoch < 1:
            raise ValueError(f"{n} images make no batch of {self.batch_size} with drop_remainder")

    def class_counts(self) -> np.ndarray:
        """Images per class (argmax of the targets)."""
        return np.bincount(self.targets.argmax(1), minlength=self.targets.shape[1])

    def dataset(self, start_batch: int = 0):
        """The endless ``tf.data.Dataset`` of ``(x, y)`` batches from global batch ``start_batch`` on."""
        import tensorflow as tf

        n, bpe, seed = len(self.images), self.batches_per_epoch, self.seed
        x, y = tf.constant(self.images[..., None]), tf.constant(self.targets)
        aug = augmentation_layers(self.augment, seed) if self.augment else None
        mix = mixing_layer(self.augment, seed) if self.augment else None

        def epoch(e):
            order = tf.random.experimental.index_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e]),
                max_index=tf.constant(n - 1, tf.int64))
            batches = tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size,
                                                                      drop_remainder=self.drop_remainder)
            return tf.data.Dataset.zip((batches, tf.data.Dataset.range(bpe).map(lambda b: e * bpe + b)))

        def load(rows, g):
            return _resize(tf, tf.gather(x, rows), self.images.shape[1:3], self.size), tf.gather(y, rows), g

        def reseed(layer, g):  # the layer draws from (its seed, g): the same whatever came before
            state = layer.generator.state
            state.assign(tf.cast(tf.stack([tf.constant(layer.seed, tf.int64), g * 64]), state.dtype))

        def finish(im, target, g):
            if aug is not None:
                for layer in aug.layers:
                    reseed(layer, g)
                im = aug(im, training=True)
            if mix is not None:
                reseed(mix, g)
                mixed = mix({"images": im, "labels": target}, training=True)
                im, target = mixed["images"], tf.cast(mixed["labels"], tf.float32)
            return _finish(tf, im, self.normalization, self.mean, self.std, self.channels), target

        first = int(start_batch) // bpe
        ds = tf.data.Dataset.range(first, 2 ** 62).flat_map(epoch).skip(int(start_batch) - first * bpe)
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        stateful = aug is not None or mix is not None
        ds = ds.map(finish, num_parallel_calls=None if stateful else tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)


def input_pipelines(ds, *, batch_size: int, size: int, channels: int, normalization: str,
                    augment: dict | None, seed: int, target: str = "majority") -> tuple:
    """The training and validation pipelines of a run: ``(train_ds, val_ds, (mean, std))``; ``train_ds`` is a
    :class:`TrainingStream` (``fit_arguments`` turns it into the dataset ``model.fit`` takes).

    One owner for how a run feeds its model, shared by :func:`fer_utils.experiments.running.run_model` and
    KerasTuner's trials (:mod:`fer_utils.tune.search`), so a trial sees exactly the batches a run with its
    configuration sees. ``ds`` is a :class:`fer_utils.data.FERDataset` with ``Training`` and ``Validation``
    splits; ``target="distribution"`` trains on its soft labels. ``mean``/``std`` are the training statistics for
    ``standardize`` (else None).
    """
    tr, va = ds.split("Training"), ds.split("Validation")
    mean, std = normalization_stats(tr.images) if normalization == "standardize" else (None, None)
    common = dict(input_size=(size, size), channels=channels, normalization=normalization, mean=mean, std=std)
    soft = (lambda d: d.soft_labels) if target == "distribution" else (lambda d: None)
    targets = tr.soft_labels if target == "distribution" else np.eye(ds.num_classes, dtype=np.float32)[tr.labels]
    train_ds = TrainingStream(tr.images, targets, batch_size=batch_size, augment=augment, seed=seed, **common)
    val_ds = make_dataset(va.images, va.labels, ds.num_classes, batch_size=batch_size, soft_labels=soft(va), **common)
    return train_ds, val_ds, (mean, std)


def _resize(tf, im, source_size, size):
    """uint8 image(s) as float32 at the model's ``size``, aspect ratio kept (padding where the ratios differ)."""
    im = tf.cast(im, tf.float32)
    if tuple(source_size) != tuple(size):
        im = tf.image.resize_with_pad(im, size[0], size[1], method="bilinear", antialias=True)
    return im


def _finish(tf, im, normalization, mean, std, channels):
    """Normalisation, then the grey channel repeated for RGB backbones (ImageNet means after the repeat)."""
    im = _normalize(tf, im, normalization, mean, std)
    if channels == 3:
        im = tf.repeat(im, 3, axis=-1)
        if normalization == "imagenet_caffe":
            im = im - tf.constant(IMAGENET_BGR_MEAN, dtype=im.dtype)
    return im


def _normalize(tf, im, normalization, mean, std):
    if normalization == "unit":
        return im / 255.0
    if normalization == "symmetric":
        return im / 127.5 - 1.0
    if normalization == "standardize":
        return (im - mean) / std
    if normalization == "per_image":
        return tf.image.per_image_standardization(im)
    return im  # imagenet_caffe: mean subtraction per channel after the channel repeat


def preprocess_numpy(images, *, normalization: str, mean=None, std=None, channels: int = 1) -> np.ndarray:
    """:func:`make_dataset`'s evaluation preprocessing in NumPy for uint8 faces ``[N, H, W]`` already at the model's
    input size (no resize): the same normalisation and channel repeat, float32 ``[N, H, W, C]``. For runtimes that
    take NumPy arrays (LiteRT), where a ``tf.data`` pipeline per batch would cost more than the model."""
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise ValueError(f"images must be uint8 [N,H,W], got {x.dtype} {x.shape}")
    x = x[..., None].astype(np.float32)
    if normalization == "unit":
        x = x / np.float32(255.0)
    elif normalization == "symmetric":
        x = x / np.float32(127.5) - np.float32(1.0)
    elif normalization == "standardize":
        x = (x - np.float32(mean)) / np.float32(std)
    elif normalization == "per_image":
        # tf.image.per_image_standardization: (x - mean) / max(std, 1 / sqrt(pixels)), per image.
        pixels = np.float32(x[0].size)
        m = x.mean(axis=(1, 2, 3), keepdims=True)
        sd = np.sqrt(np.mean(np.square(x - m), axis=(1, 2, 3), keepdims=True))
        x = (x - m) / np.maximum(sd, 1 / np.sqrt(pixels))
    elif normalization != "imagenet_caffe":
        raise ValueError(f"normalization={normalization!r}: expected one of {NORMALIZATIONS}")
    if channels == 3:
        x = np.repeat(x, 3, axis=-1)
        if normalization == "imagenet_caffe":
            x = x - np.array(IMAGENET_BGR_MEAN, np.float32)
    return x.astype(np.float32)


def as_arrays(dataset, limit: int | None = None):
    """Collect a (small) dataset's batches into numpy arrays, for tests and plots."""
    xs, ys = [], []
    for batch in dataset:
        if isinstance(batch, tuple):
            xs.append(batch[0].numpy())
            if len(batch) > 1:
                ys.append(batch[1].numpy())
        else:
            xs.append(batch.numpy())
        if limit and sum(len(b) for b in xs) >= limit:
            break
    x = np.concatenate(xs)
    return (x, np.concatenate(ys)) if ys else x
