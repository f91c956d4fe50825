"""Training the conditional GAN: configuration, class-balanced batches, checkpoints and resume, samples.

Owns the GAN run folder (``<notebook run>/gan/``):

- ``gan_recipe.json``  the configuration, seed and the checksum of the images it trains on; a folder with
  another recipe is refused (or moved aside with ``overwrite``), never silently reused
- ``checkpoint/``      every variable (networks, EMA, optimizers, random state) after each chunk of
  ``checkpoint_every`` steps, written atomically next to the previous good one; resume starts there
- ``losses.csv``       step, D and G loss, D accuracy on real and on fake, the auxiliary classifier's accuracy
                       on real and on fake faces, the R1 penalty (0 on steps without it), seconds
- ``samples/``         fixed-noise grids of the EMA generator (``step_<n>.npz`` + ``.png``), one row per class
- ``generator.keras``  the EMA generator when training finished, and ``generator.sha256`` (its weights' checksum)

Batches are class balanced (uniform class, then uniform image of that class) and drawn from a
generator seeded by ``(seed, chunk)``, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from fer_utils import progress, runs
from fer_utils.data.balanced import images_checksum

RECIPE_FILE = "gan_recipe.json"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.npz"
LOSSES_FILE = "losses.csv"
SAMPLES_DIR = "samples"
GENERATOR_FILE = "generator.keras"
GENERATOR_SHA_FILE = "generator.sha256"
LOSSES = ("nonsaturating", "hinge")
AUGMENTS = ("color", "translation", "cutout")
LOSS_COLUMNS = ("step", "d_loss", "g_loss", "d_acc_real", "d_acc_fake", "class_acc_real", "class_acc_fake", "r1",
                "seconds")
METRICS = LOSS_COLUMNS[1:-1]


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """Every choice of a GAN run (from params' ``gan`` dict); checked on creation."""

    steps: int = 3000
    batch_size: int = 32
    latent_dim: int = 128
    g_channels: tuple = (192, 96, 48, 24)
    d_channels: tuple = (32, 64, 128, 256)
    embed_dim: int = 32
    loss: str = "nonsaturating"
    aux_weight: float = 1.0
    r1_gamma: float = 0.0144
    r1_every: int = 16
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 4e-4
    beta_1: float = 0.0
    beta_2: float = 0.99
    ema_decay: float = 0.999
    ema_warmup: bool = True
    augment: tuple = ("color", "translation", "cutout")
    translation: float = 0.125
    cutout_size: float = 0.5
    real_flip: bool = True
    checkpoint_every: int = 250
    samples_per_class: int = 8

    def __post_init__(self):
        object.__setattr__(self, "g_channels", tuple(int(c) for c in self.g_channels))
        object.__setattr__(self, "d_channels", tuple(int(c) for c in self.d_channels))
        augment = [self.augment] if isinstance(self.augment, str) else list(self.augment)
        unknown = sorted(set(augment) - set(AUGMENTS))
        if unknown:
            raise ValueError(f"gan.augment: unknown {unknown}; expected a subset of {list(AUGMENTS)}")
        object.__setattr__(self, "augment", tuple(augment))
        for key in ("steps", "batch_size", "latent_dim", "embed_dim", "checkpoint_every", "samples_per_class",
                    "r1_every"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"gan.{key} must be a positive integer, received {getattr(self, key)!r}")
        for key in ("g_learning_rate", "d_learning_rate"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"gan.{key} must be > 0, received {getattr(self, key)!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"gan.loss={self.loss!r}: expected one of {list(LOSSES)}")
        for key in ("aux_weight", "r1_gamma"):
            if not float(getattr(self, key)) >= 0:
                raise ValueError(f"gan.{key} must be >= 0, received {getattr(self, key)!r}")
        for key in ("beta_1", "beta_2"):
            if not 0 <= float(getattr(self, key)) < 1:
                raise ValueError(f"gan.{key} must be in [0, 1), received {getattr(self, key)!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "GANConfig":
        """A config from params; an unknown key is an error naming the known ones."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"gan: unknown key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# ----------------------------------------------------------------------------- batches

def balanced_indices(labels: np.ndarray, num_classes: int, n: int, seed: int, chunk: int) -> np.ndarray:
    """``n`` row indices: a uniform class, then a uniform row of it; seeded by ``(seed, chunk)``.

    Classes without rows are skipped (a class the data lacks cannot be sampled).
    """
    rng = np.random.default_rng([int(seed), int(chunk)])
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    present = np.array([c for c in range(num_classes) if len(by_class[c])])
    classes = present[rng.integers(0, len(present), n)]
    return np.array([by_class[c][rng.integers(0, len(by_class[c]))] for c in classes], dtype=np.int64)


def to_tanh(images: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W]`` -> float32 ``[N, H, W, 1]`` in [-1, 1] (the generator's range)."""
    return (images.astype(np.float32)[..., None] / 127.5) - 1.0


def to_uint8(images) -> np.ndarray:
    """Generator output in [-1, 1] ``[N, H, W, 1]`` -> uint8 ``[N, H, W]``."""
    x = np.asarray(images, dtype=np.float32)[..., 0]
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the model and its state

def build_gan(config: GANConfig, num_classes: int, image_size: int, seed: int):
    """The compiled :class:`~fer_utils.gan.cgan.ConditionalGAN` for ``config`` (weights seeded)."""
    import keras

    from fer_utils.gan.cgan import ConditionalGAN
    from fer_utils.gan.networks import build_discriminator, build_generator

    keras.utils.set_random_seed(int(seed))
    gen_args = dict(latent_dim=config.latent_dim, num_classes=num_classes, image_size=image_size,
                    channels=config.g_channels, embed_dim=config.embed_dim)
    gan = ConditionalGAN(
        build_generator(**gen_args),
        build_discriminator(num_classes=num_classes, image_size=image_size, channels=config.d_channels),
        build_generator(**gen_args, name="ema_generator"), latent_dim=config.latent_dim, loss=config.loss,
        aux_weight=config.aux_weight, r1_gamma=config.r1_gamma, r1_every=config.r1_every, augment=config.augment,
        translation=config.translation, cutout_size=config.cutout_size, real_flip=config.real_flip,
        ema_decay=config.ema_decay, ema_warmup=config.ema_warmup, seed=seed)
    gan.compile(keras.optimizers.Adam(config.g_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2),
                keras.optimizers.Adam(config.d_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2))
    return gan


def save_state(gan, folder: Path, step: int) -> None:
    """Every variable of ``gan`` and the step, written atomically; the previous state is kept as ``.previous``."""
    folder.mkdir(parents=True, exist_ok=True)
    values = {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(gan.state_variables())}
    tmp = folder / (STATE_FILE + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, step=np.int64(step), **values)
        fh.flush()
        os.fsync(fh.fileno())
    current = folder / STATE_FILE
    if current.exists():
        os.replace(current, folder / (STATE_FILE + ".previous"))
    os.replace(tmp, current)


def load_state(gan, folder: Path) -> int:
    """Restore the newest readable state into ``gan``; returns its step (0 when there is none).

    A state that cannot be read (a kill while writing) falls back to the previous one, with a warning.
    """
    import warnings

    variables = gan.state_variables()
    for path in (folder / STATE_FILE, folder / (STATE_FILE + ".previous")):
        if not path.exists():
            continue
        try:
            with np.load(path) as z:
                arrays = [z[f"v{i:04d}"] for i in range(len(variables))]
                step = int(z["step"])
        except Exception as exc:  # noqa: BLE001 - any unreadable file falls back to the previous state
            warnings.warn(f"{path}: unreadable GAN checkpoint ({exc}); trying the previous one", stacklevel=2)
            continue
        for var, value in zip(variables, arrays):
            if tuple(var.shape) != value.shape:
                raise ValueError(f"{path}: variable {var.name} has shape {value.shape}, the model expects "
                                 f"{tuple(var.shape)}: the checkpoint belongs to another configuration")
            var.assign(value)
        return step
    return 0


def _cut_losses(path: Path, step: int) -> None:
    """Keep only ``losses.csv`` rows up to ``step`` (later ones are about to be re-run)."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOSS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


# ----------------------------------------------------------------------------- samples

def fixed_noise(config: GANConfig, num_classes: int, seed: int):
    """The noise and labels of the sample grids: ``samples_per_class`` per class, the same every time."""
    rng = np.random.default_rng([int(seed), 7919])
    labels = np.repeat(np.arange(num_classes), config.samples_per_class).astype(np.int32)
    return rng.standard_normal((len(labels), config.latent_dim)).astype(np.float32), labels


def generate(generator, labels, seed: int, batch_size: int = 256) -> np.ndarray:
    """uint8 images ``[N, H, W]`` of the given labels from ``generator``, noise seeded by ``seed``."""
    labels = np.asarray(labels, dtype=np.int32)
    latent = int(generator.inputs[0].shape[-1])
    noise = np.random.default_rng([int(seed), 104729]).standard_normal((len(labels), latent)).astype(np.float32)
    out = [to_uint8(generator([noise[i:i + batch_size], labels[i:i + batch_size]], training=False))
           for i in range(0, len(labels), batch_size)]
    side = int(generator.outputs[0].shape[1])
    return np.concatenate(out) if out else np.zeros((0, side, side), np.uint8)


def _save_samples(gan, run_dir: Path, step: int, noise, labels) -> None:
    folder = run_dir / SAMPLES_DIR
    folder.mkdir(exist_ok=True)
    images = to_uint8(gan.ema_generator([noise, labels], training=False))
    np.savez_compressed(folder / f"step_{step:06d}.npz", images=images, labels=labels)


def sample_history(run_dir) -> dict:
    """``{step: (images uint8 [N, H, W], labels)}`` of every saved grid, in step order."""
    folder = Path(run_dir) / SAMPLES_DIR
    out = {}
    for path in sorted(folder.glob("step_*.npz")):
        with np.load(path) as z:
            out[int(path.stem.split("_")[1])] = (z["images"], z["labels"])
    return out


# ----------------------------------------------------------------------------- the run

def gan_state(run_dir) -> str:
    """``new``, ``interrupted`` (a checkpoint, no generator) or ``finished`` (``generator.keras`` written)."""
    run_dir = Path(run_dir)
    if (run_dir / GENERATOR_FILE).exists():
        return "finished"
    return "interrupted" if (run_dir / CHECKPOINT_DIR).exists() else "new"


def _check_recipe(run_dir: Path, recipe: dict, overwrite: bool) -> str:
    state = gan_state(run_dir)
    if state == "new" and not (run_dir / RECIPE_FILE).exists():
        return "new"
    old = json.loads((run_dir / RECIPE_FILE).read_text()) if (run_dir / RECIPE_FILE).exists() else None
    differences = runs.recipe_differences(old, recipe)
    if not differences and not overwrite:
        return state
    if not overwrite:
        raise FileExistsError(f"{run_dir} holds a GAN trained with another recipe ({'; '.join(differences)}). "
                              "Use another run folder, or overwrite=True to move it aside and start again.")
    dest = runs.move_aside(run_dir, (RECIPE_FILE, CHECKPOINT_DIR, LOSSES_FILE, SAMPLES_DIR, GENERATOR_FILE,
                                     GENERATOR_SHA_FILE))
    progress.report(f"GAN: earlier run moved aside to {dest}")
    return "new"


def train_gan(images: np.ndarray, labels: np.ndarray, class_names, run_dir, *, config: GANConfig | dict | None = None,
              seed: int = 0, overwrite: bool = False, stop_after: int | None = None) -> dict:
    """Train (or resume, or reuse) the conditional GAN on ``images`` and save the EMA generator.

    Args:
        images: uint8 ``[N, H, W]`` real training images only (deduplicated by the caller).
        labels: class index per image.
        class_names: label order (recorded with the generator).
        run_dir: the GAN run folder (see the module docstring).
        config: :class:`GANConfig` or its dict.
        seed: seeds weights, noise, translations and batches.
        overwrite: move an earlier run with another recipe aside instead of refusing.
        stop_after: stop (with a checkpoint) once this many steps are done; for tests of resume.

    Returns:
        ``{"status", "steps", "seconds", "generator_sha256"}``; ``status`` is ``trained``, ``resumed``,
        ``reused`` or ``stopped``.
    """
    import tensorflow as tf

    from fer_utils.data.dataset import DataError

    config = config if isinstance(config, GANConfig) else GANConfig.from_dict(config)
    images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels) or not len(images):
        raise DataError(f"train_gan: expected uint8 images [N, H, W] with one label each, got {images.dtype} "
                        f"{images.shape} and {labels.shape} labels")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_sha = images_checksum(images, labels)
    recipe = {"config": config.to_dict(), "seed": int(seed), "classes": list(class_names),
              "image_size": int(images.shape[1]), "n_images": int(len(images)), "data_checksum": data_sha}
    state = _check_recipe(run_dir, recipe, overwrite)
    if state == "finished":
        progress.report("GAN: finished earlier with the same recipe, generator reused")
        return {"status": "reused", "steps": config.steps, "seconds": _seconds(run_dir),
                "generator_sha256": (run_dir / GENERATOR_SHA_FILE).read_text().strip()}
    runs.write_json(run_dir / RECIPE_FILE, recipe)
    gan = build_gan(config, len(class_names), int(images.shape[1]), seed)
    start = load_state(gan, run_dir / CHECKPOINT_DIR)
    _cut_losses(run_dir / LOSSES_FILE, start)
    if start:
        progress.report(f"GAN: resuming at step {start} of {config.steps}")
    noise, grid_labels = fixed_noise(config, len(class_names), seed)
    refresh_noise, refresh_labels = _refresh_batch(config, len(class_names), seed)
    if not start:
        gan.refresh_ema_statistics(refresh_noise, refresh_labels)
        _save_samples(gan, run_dir, 0, noise, grid_labels)
    # Two traced steps: the lazy R1 penalty runs every r1_every-th step (chosen by the step number, so a
    # resumed run applies it on the same steps).
    plain_step = tf.function(lambda batch: gan.train_step(batch, r1=False))
    r1_step = tf.function(lambda batch: gan.train_step(batch, r1=True))
    new_file = not (run_dir / LOSSES_FILE).exists()
    step, end = start, min(config.steps, stop_after or config.steps)
    with open(run_dir / LOSSES_FILE, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_file:
            writer.writerow(LOSS_COLUMNS)
        while step < end:
            chunk = step // config.checkpoint_every
            first = chunk * config.checkpoint_every
            n = min(first + config.checkpoint_every, end) - step
            # The chunk's batches depend on (seed, chunk) only, so a resumed chunk continues the same draws.
            idx = balanced_indices(labels, len(class_names), config.checkpoint_every * config.batch_size, seed, chunk)
            idx = idx[(step - first) * config.batch_size:(step - first + n) * config.batch_size]
            x = to_tanh(images[idx]).reshape(n, config.batch_size, *images.shape[1:], 1)
            y = labels[idx].reshape(n, config.batch_size)
            for i in range(n):
                t0 = time.perf_counter()
                fn = r1_step if config.r1_gamma and step % config.r1_every == 0 else plain_step
                logs = fn((tf.constant(x[i]), tf.constant(y[i])))
                step += 1
                row = [float(logs[k]) for k in METRICS]
                if not all(np.isfinite(row)):
                    raise FloatingPointError(f"GAN: non-finite loss at step {step}: "
                                             f"{dict(zip(METRICS, row))}")
                writer.writerow([step, *[round(v, 5) for v in row], round(time.perf_counter() - t0, 4)])
            fh.flush()
            gan.refresh_ema_statistics(refresh_noise, refresh_labels)
            save_state(gan, run_dir / CHECKPOINT_DIR, step)
            _save_samples(gan, run_dir, step, noise, grid_labels)
            progress.report(f"GAN: step {step}/{config.steps}, D loss {row[0]:.3f}, G loss {row[1]:.3f}")
            if step >= end:
                break
            progress.check_stop(f"GAN step {step}")  # the runner's --stop-after, at a checkpoint
    if step < config.steps:
        return {"status": "stopped", "steps": step, "seconds": _seconds(run_dir), "generator_sha256": ""}
    gan.ema_generator.save(run_dir / GENERATOR_FILE)
    sha = weights_sha256(gan.ema_generator)
    (run_dir / GENERATOR_SHA_FILE).write_text(sha + "\n")
    return {"status": "resumed" if start else "trained", "steps": step, "seconds": _seconds(run_dir),
            "generator_sha256": sha}


def _refresh_batch(config: GANConfig, num_classes: int, seed: int):
    """Noise and class-balanced labels of the batch that sets the EMA generator's batch-norm statistics."""
    rng = np.random.default_rng([int(seed), 31337])
    labels = np.tile(np.arange(num_classes), max(1, 512 // num_classes)).astype(np.int32)
    return rng.standard_normal((len(labels), config.latent_dim)).astype(np.float32), labels


def weights_sha256(model) -> str:
    """SHA-256 of a model's weights (shapes and bytes in order): equal for equal generators, unlike the
    ``.keras`` file, whose zip records the save date."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(str((w.shape, w.dtype.str)).encode())
        h.update(w.tobytes())
    return h.hexdigest()


def _seconds(run_dir: Path) -> float:
    path = run_dir / LOSSES_FILE
    if not path.exists():
        return 0.0
    with open(path, newline="") as fh:
        return round(sum(float(r["seconds"]) for r in csv.DictReader(fh)), 1)


def load_generator(run_dir):
    """The saved EMA generator of a finished GAN run."""
    import keras

    path = Path(run_dir) / GENERATOR_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no generator; the GAN run in {run_dir} has not finished")
    return keras.saving.load_model(str(path), compile=False)


def load_losses(run_dir):
    """``losses.csv`` as a DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / LOSSES_FILE)
