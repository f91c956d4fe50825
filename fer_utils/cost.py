"""What a profile costs before it runs (the estimate ``python -m fer_utils.run --profile P --check`` prints).

- **Work**, counted from each notebook's effective parameters and the sizes of the data it will find (dataset,
  subsample, validation share): per training, epochs x training images (capped by ``steps_per_epoch``), a validation
  pass per epoch, each test split x the TTA's views. 02: GAN steps x batch, effect runs, CAS; 03: models x seeds; 04:
  models, Study C's FER+ runs and CK+ folds; 05: each search (grid points, Hyperband brackets, Bayesian/random trials,
  at most the space's size), default and best, Study C's table; 06: the distinct 5x2cv configurations x 10 folds.
- **Speed here**, measured: per (model, input, builder arguments, optimizer, batch, precision) timed training steps
  and inference batches of random inputs after a warm-up step (a smaller batch for models too costly to time at full
  batch), GAN steps from training the profile's GAN 12 steps; each training adds its build-and-trace seconds and
  :data:`FIT_OVERHEAD_S`, each notebook :data:`NOTEBOOK_START_S`.
- **Speed on GPU classes**: multiply-accumulates per image counted from each model's convolution and dense layers,
  x 2 FLOPs, x 3 for training, over a stated sustained throughput (:data:`GPU_CLASSES`, below the cards' peaks),
  never faster than the input pipeline (:data:`GPU_PIPELINE_IPS`); :data:`GPU_TRAINING_START_S` per training.

Not counted: notebook 01, statistics, figures, GAN quality measures, the rows 02's GAN adds to 03/04's training."""

from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fer_utils.check import STUDY_C_DATASETS
from fer_utils.experiments.study_c import check_runs, selected_runs

#: Seconds per notebook for the kernel's start, imports and loading the data (measured: 7-20 s).
NOTEBOOK_START_S = 15.0
#: Sustained training/inference throughput assumed per GPU class, in FLOP/s (conservative: about a third of
#: the mixed-precision or float32 peak for convolutional networks of this size).
GPU_CLASSES = {"T4": 8e12, "P100": 4e12}
#: Images per second the input pipeline (decode, augment, batch) feeds a GPU at most (a 2-4 core notebook VM).
GPU_PIPELINE_IPS = 3000.0
#: Seconds per training on a GPU for building, tracing and the first epoch's warm-up.
GPU_TRAINING_START_S = 30.0
TTA_VIEWS = {None: 1, "none": 1, "flip": 2, "center_flip": 2, "ten_crop": 10}
#: Seconds per GAN step (generator and discriminator updates, batch 32-64, 48x48) on a GPU class: launch-bound.
GPU_GAN_STEP_S = 0.05
#: At most this many FLOPs in one timed training step here (a larger batch is scaled down for timing).
TIMING_STEP_FLOPS = 4e11
#: Seconds per training beyond its timed build and steps (tracing, pipeline, saving, evaluation; 02's runs: 54-125 s).
FIT_OVERHEAD_S = 50.0


@dataclass
class Training:
    """One training run of a notebook (``count`` identical ones, e.g. seeds or folds)."""

    notebook: str
    label: str
    model: str
    size: int
    classes: int
    config: dict
    n_train: int
    n_val: int
    n_eval: int  # test images x TTA views
    kwargs: dict = field(default_factory=dict)
    count: int = 1

    def epochs_steps(self) -> tuple:
        from fer_utils.train import TrainConfig

        cfg = TrainConfig.from_dict(self.config)
        steps = max(1, math.ceil(self.n_train / cfg.batch_size))
        steps = min(steps, int(cfg.steps_per_epoch)) if cfg.steps_per_epoch else steps
        return int(cfg.epochs), steps, int(cfg.batch_size)

    def train_images(self) -> int:
        epochs, steps, batch = self.epochs_steps()
        return epochs * steps * batch * self.count

    def infer_images(self) -> int:
        epochs, _, _ = self.epochs_steps()
        return (epochs * self.n_val + self.n_eval) * self.count


@functools.lru_cache(maxsize=8)
def _counts(kind: str, data_dir: str, synthetic_per_class: int, seed: int, optional: bool = False) -> tuple:
    """``(class_names, {split: per-class counts})`` of the data a notebook finds (``optional``: FER+ or CK+)."""
    from fer_utils import data as D

    ds = (D.load_optional(kind, data_dir, stand_in=True, synthetic_per_class=synthetic_per_class, seed=seed)
          if optional else D.load_dataset(kind, data_dir, synthetic_per_class=synthetic_per_class, seed=seed))
    if ds is None:
        return (), {}
    k = ds.num_classes
    return tuple(ds.class_names), {s: np.bincount(ds.labels[ds.splits == s], minlength=k) for s in ds.split_names}


def _limit(counts: np.ndarray, max_per_class: int) -> np.ndarray:
    return np.minimum(counts, max_per_class) if max_per_class else counts


def _train_val(counts: dict, max_per_class: int, val_fraction: float) -> tuple:
    """Training and validation sizes after the per-class subsample and the stratified carve-out."""
    train = _limit(counts.get("Training", np.zeros(1, int)), max_per_class)
    val = np.round(train * float(val_fraction)).astype(int)
    return int((train - val).sum()), int(val.sum())


def _test_images(counts: dict, max_per_class: int, eval_splits, tta) -> int:
    splits = [s for s in (eval_splits or counts) if s not in ("Training", "Validation")]
    return sum(int(_limit(counts[s], max_per_class).sum()) for s in splits if s in counts) * TTA_VIEWS.get(tta, 1)


def _data(p: dict, kind: str = "") -> tuple:
    return _counts(kind or str(p.get("dataset", "auto")), str(p.get("data_dir", "auto")),
                   int(p.get("synthetic_per_class", 60)), int(p.get("seed", 0)), bool(kind))


def _sizes(p: dict) -> tuple:
    """``(class names, per-split counts, training rows, validation rows, test images x TTA views)``."""
    names, counts = _data(p)
    mx = int(p.get("max_per_class", 0))
    return (names, counts, *_train_val(counts, mx, float(p.get("val_fraction", 0.1))),
            _test_images(counts, mx, p.get("eval_splits"), p.get("tta")))


def _model_trainings(stem: str, p: dict, models, *, seeds: int = 1) -> list:
    names, counts, n_train, n_val, n_eval = _sizes(p)
    out = []
    for m in models:
        cfg = {**(p.get("train_config") or {}), **((p.get("train_configs") or {}).get(m) or {})}
        out.append(Training(stem, m, m, int((p.get("input_sizes") or {}).get(m, p.get("input_size", 48))),
                            len(names), cfg, n_train, n_val, n_eval, (p.get("model_kwargs") or {}).get(m) or {},
                            count=seeds))
    return out


def _study_c(stem: str, p: dict, models, ck_folds: int, model_kwargs=None) -> list:
    out = []
    for kind, cfg_key, max_key in (("ferplus", "ferplus_train_config", "ferplus_max_per_class"),
                                   ("ckplus", "ckplus_train_config", "ckplus_max_per_class")):
        names, counts = _data(p, kind) if kind in p.get("study_c_datasets", STUDY_C_DATASETS) else ((), {})
        if not counts:
            continue
        mx, tta = int(p.get(max_key, 0)), p.get("study_c_tta", p.get("tta"))
        if kind == "ckplus":  # one subject-independent fold: (k-1)/k of the subjects train, a tenth of them validate
            total, k = _limit(sum(counts.values()), mx), int(p.get("ckplus_k", 10))
            n_fold_train = int(total.sum() * (k - 1) / k)
            n_val = int(round(n_fold_train * float(p.get("val_fraction", 0.1))))
            n_train, n_eval, count = n_fold_train - n_val, int(total.sum() / k) * TTA_VIEWS.get(tta, 1), ck_folds
        else:
            n_train, n_val = _train_val(counts, mx, float(p.get("val_fraction", 0.1)))
            n_eval, count = _test_images(counts, mx, (), tta), 1
        named, only = (p.get("ferplus_runs"), p.get("ferplus_only")) if kind == "ferplus" else (None, None)
        for name, run in selected_runs(check_runs(named or {}, models, dict(p.get(cfg_key) or {})), only).items():
            out.append(Training(stem, f"{kind}/{name}", run.model, 48, len(names), run.train_config, n_train, n_val,
                                n_eval, dict((model_kwargs or {}).get(run.model) or {}), count=count))
    return out


def _grid_points(space: dict, base: dict, kwargs: dict) -> list:
    """``(TrainConfig dict, builder kwargs)`` of every point of a search space."""
    from fer_utils.tune import space as S

    space = S.check_space(space)
    keys = list(space)
    out = []
    for combo in itertools.product(*[S.choices(space, k) for k in keys]):
        cfg, kw = S.apply(space, dict(zip(keys, combo)), base, kwargs)
        out.append((cfg.to_dict(), kw))
    return out


def _default_point(p: dict, base: dict, points: list) -> dict:
    """05's default configuration as a training config (the space's first point when there is none)."""
    if not p.get("default_config"):
        return points[0][0]
    return _grid_points({k: [v] for k, v in p["default_config"].items()}, base, {})[0][0]


def hyperband_epochs(max_epochs: int, factor: int, n_configs: int, min_epochs: int = 1) -> tuple:
    """``(trials, epochs)`` of one iteration of KerasTuner 1.4.8's Hyperband (its bracket sizes and epochs, from the
    most exploratory bracket down), with at most ``n_configs`` new configurations in all: a small space runs out,
    and KerasTuner's oracle then ends the search (as the cpu profile's 4-point space did after 7 epochs)."""
    brackets, e = 0, float(max_epochs)
    while e >= min_epochs:
        e, brackets = e / factor, brackets + 1
    end0 = math.ceil(1 + math.log(max_epochs, factor))
    left, trials, epochs = int(n_configs), 0, 0
    for b in range(brackets - 1, -1, -1):
        size = min(left, math.ceil(end0 / (b + 1) * factor ** b))
        if size <= 0:
            break
        left -= size
        previous = 0
        for r in range(b + 1):
            if r:
                size = min(size, math.ceil(end0 / (b + 1) * factor ** (b - r)))
            e_r = math.ceil(max_epochs / factor ** (b - r))
            trials += size
            epochs += size * (e_r - previous)  # a promoted trial continues from the previous round's epochs
            previous = e_r
    return trials, epochs


def _tuning_trainings(stem: str, p: dict) -> list:
    from fer_utils.tune.search import check_tuner

    names, counts, n_train, n_val, n_eval = _sizes(p)
    out = []
    for m in p.get("models") or []:
        base = {**(p.get("train_config") or {}), **((p.get("train_configs") or {}).get(m) or {})}
        kwargs = (p.get("model_kwargs") or {}).get(m) or {}
        points = _grid_points(p["space"], base, kwargs)
        mean_epochs = float(np.mean([c["epochs"] for c, _ in points]))
        common = dict(model=m, size=int((p.get("input_sizes") or {}).get(m, p.get("input_size", 48))),
                      classes=len(names), n_train=n_train, n_val=n_val, kwargs=kwargs)
        for kind in p.get("tuners") or []:
            settings = check_tuner(kind, (p.get("tuner_settings") or {}).get(kind), p["space"])
            if kind == "hyperband":
                trials, epochs = hyperband_epochs(int(settings["max_epochs"]), int(settings["factor"]), len(points))
            else:
                trials = min(int(settings.get("max_trials") or len(points)), len(points))
                epochs = trials * mean_epochs
            cfg = {**points[0][0], "epochs": max(1, int(round(epochs)))}  # one training of all the trials' epochs
            out.append(Training(stem, f"{m} {kind} ({trials} trials, {epochs:.0f} epochs)", config=cfg, n_eval=0,
                                **common))
        out.append(Training(stem, f"{m} default and best", config=_default_point(p, base, points), n_eval=n_eval,
                            count=2, **common))
    if p.get("study_c_datasets"):
        sc_points = len(_grid_points(p["study_c_space"], {}, {}))
        for t in _study_c(stem, {**p, "ckplus_folds": [0]}, [p["study_c_model"]], 1,
                          {p["study_c_model"]: p.get("study_c_model_kwargs") or {}}):  # its study_c_datasets only
            t.label, t.count, t.n_eval = f"Study C table {t.label}", sc_points, 0
            out.append(t)
    return out


def _statistics_trainings(stem: str, p: dict, tuning: dict | None = None) -> list:
    """06's 5x2cv: Table XII (05's default and tuned configuration per model; the tuned one costed as the mean
    epochs of 05's space) and the Table XIII pairs, each distinct configuration once, 10 folds on half of Training."""
    names, counts = _data(p)
    mx = int(p.get("cv_max_per_class", 0))
    half = int(_limit(counts.get("Training", np.zeros(1, int)), mx).sum()) // 2
    n_val = int(round(half * float(p.get("val_fraction", 0.1))))
    over = dict(p.get("cv_train_config") or {})
    base = dict(p.get("train_config") or {})
    configs = {}
    if tuning and p.get("tuned_from") == "05":
        for m in p.get("table_xii_models") or tuning.get("models") or []:
            t_base = {**(tuning.get("train_config") or {}), **((tuning.get("train_configs") or {}).get(m) or {})}
            points = _grid_points(tuning["space"], t_base, {})
            default = _default_point(tuning, t_base, points)
            tuned = {**default, "epochs": int(round(np.mean([c["epochs"] for c, _ in points])))}
            configs[(m, "default")], configs[(m, "tuned")] = {**default, **over}, {**tuned, **over}
    for a, b in p.get("table_xiii_pairs") or []:
        for m in (a, b):
            tuned = p.get("table_xiii_use_tuned", True) and (m, "tuned") in configs
            configs.setdefault((m, "tuned") if tuned else (m, ""), {**base, **over})
    return [Training(stem, f"5x2cv {m} {which}".strip(), m,
                     int((p.get("input_sizes") or {}).get(m, p.get("input_size", 48))), len(names), cfg,
                     half - n_val, n_val, half * TTA_VIEWS.get(p.get("tta"), 1),
                     (p.get("model_kwargs") or {}).get(m) or {}, count=10)
            for (m, which), cfg in configs.items()]


def _gan_trainings(stem: str, p: dict) -> tuple:
    from fer_utils import data as D

    names, counts, n_train, n_val, n_eval = _sizes(p)
    real = {n: int(c) for n, c in zip(names, _limit(counts["Training"], int(p.get("max_per_class", 0))) * 0.9)}
    model, kwargs = p.get("effect_model", "cnn"), dict(p.get("effect_model_kwargs") or {})
    size, seeds = int(p.get("input_size", 48)), max(1, len(p.get("effect_seeds") or [0]))
    out = [Training(stem, "effect real only", model, size, len(names), dict(p.get("effect_train_config") or {}),
                    n_train, n_val, n_eval, kwargs, count=seeds)]
    for plan in [p.get("plan", "to_max"), *[q for q in p.get("compare_plans") or [] if q != p.get("plan")]]:
        rows = n_train + int(sum(D.plan_counts(plan, names, real).values()))  # real rows + the generated (or resampled)
        out.append(Training(stem, f"effect {D.plan_label(plan)} (oversampled, GAN)", model, size, len(names),
                            dict(p.get("effect_train_config") or {}), rows, n_val, n_eval, kwargs, count=2 * seeds))
    per_class = int(p.get("quality_per_class", 500)) * len(names)
    out.append(Training(stem, "CAS (generated, real)", model, size, len(names), dict(p.get("cas_train_config") or {}),
                        per_class, n_val, n_eval, kwargs, count=2))  # CAS validates on the real split too
    return out, {"config": dict(p.get("gan") or {}), "image_size": size, "classes": len(names)}


def workload(stem: str, p: dict, profile: dict | None = None) -> tuple:
    """``(trainings, the GAN's {config, image_size, classes} or None)`` of notebook ``stem`` with effective
    parameters ``p`` (``profile``: every notebook's, for 06, whose Table XII trains 05's configurations)."""
    if stem.startswith("02"):
        return _gan_trainings(stem, p)
    if stem.startswith("03"):
        return _model_trainings(stem, p, p.get("models") or [], seeds=max(1, len(p.get("seeds") or []))), None
    if stem.startswith("04"):
        ck = len(p.get("ckplus_folds") or [0])
        return (_model_trainings(stem, p, p.get("models") or [])
                + _study_c(stem, p, p.get("study_c_models") or [], ck, p.get("model_kwargs"))), None
    if stem.startswith("05"):
        return _tuning_trainings(stem, p), None
    if stem.startswith("06"):
        tuning = next((v for k, v in (profile or {}).items() if k.startswith("05")), None)
        return _statistics_trainings(stem, p, tuning), None
    return [], None


def macs_per_image(model) -> float:
    """Multiply-accumulates of one image through ``model``'s convolution and dense layers (the bulk of the work)."""
    import keras

    total = 0.0
    for layer in model._flatten_layers(include_self=False):
        try:
            out = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            k = np.prod(layer.kernel_size)
            total += float(np.prod(out[1:])) * k
        elif isinstance(layer, keras.layers.SeparableConv2D):
            c_in = layer.input.shape[-1]
            total += float(np.prod(out[1:3])) * (np.prod(layer.kernel_size) * c_in + c_in * out[-1])
        elif isinstance(layer, keras.layers.Conv2D):  # Conv2DTranspose too: its output carries the work
            c_in = layer.input.shape[-1]
            total += float(np.prod(out[1:])) * np.prod(layer.kernel_size) * c_in / max(1, layer.groups)
        elif isinstance(layer, keras.layers.Dense):
            total += float(np.prod([d for d in layer.input.shape[1:] if d])) * layer.units
    return total


@functools.lru_cache(maxsize=64)
def _speed(model: str, size: int, classes: int, kwargs_key: str, config_key: str) -> dict:
    """Measured here: training and inference images/s, build-and-trace seconds and MACs per image."""
    import json

    import keras

    from fer_utils import models, train
    from fer_utils.train import TrainConfig

    cfg = TrainConfig.from_dict(json.loads(config_key)).replace(run_eagerly=False, tensorboard=False)
    side, channels, _, _ = models.resolve_input(model, size)
    t0 = time.perf_counter()
    net, policy = train.build_compiled_model(model, cfg, input_shape=(side, side, channels), num_classes=classes,
                                             steps_per_epoch=100, model_kwargs=json.loads(kwargs_key) or None)
    macs = macs_per_image(net)
    batch = int(max(2, min(cfg.batch_size, TIMING_STEP_FLOPS // max(1.0, 6 * macs))))
    rng = np.random.default_rng(0)
    x = rng.random((batch, side, side, channels), dtype=np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)]
    net.train_on_batch(x, y)
    setup = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t = time.perf_counter()
        net.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    xi = rng.random((min(256, 4 * batch), side, side, channels), dtype=np.float32)
    net.predict_on_batch(xi)
    t = time.perf_counter()
    net.predict_on_batch(xi)
    infer = len(xi) / (time.perf_counter() - t)
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    return {"train_ips": batch / float(np.median(times)), "infer_ips": infer, "setup_s": setup, "macs": macs,
            "timed_batch": batch, "policy": str(policy)}


@functools.lru_cache(maxsize=64)
def _macs(model: str, size: int, classes: int, kwargs_key: str) -> float:
    """Multiply-accumulates per image of a registry model at its input (built, not trained)."""
    import json

    import keras

    from fer_utils import models

    side, channels, _, _ = models.resolve_input(model, size)
    net = models.build_model(model, input_shape=(side, side, channels), num_classes=classes,
                             **(json.loads(kwargs_key) or {}))
    macs = macs_per_image(net)
    keras.backend.clear_session()
    return macs


def speed(t: Training, here: bool = True) -> dict:
    """:func:`_speed` keyed by what sets the speed (model, input, builder arguments, optimizer, batch, precision)."""
    import json

    from fer_utils.train import TrainConfig

    if not here:
        return {"macs": _macs(t.model, int(t.size), int(t.classes), json.dumps(t.kwargs or {}, sort_keys=True)),
                "train_ips": np.nan, "infer_ips": np.nan, "setup_s": np.nan, "timed_batch": 0, "policy": "not timed"}
    cfg = TrainConfig.from_dict(t.config)
    key = {"optimizer": cfg.optimizer, "batch_size": cfg.batch_size, "precision": cfg.precision,
           "loss": cfg.loss, "ema_momentum": cfg.ema_momentum}
    return _speed(t.model, int(t.size), int(t.classes), json.dumps(t.kwargs or {}, sort_keys=True),
                  json.dumps(key, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _gan_step_seconds(config_key: str, image_size: int, classes: int) -> float:
    """Seconds per GAN step here: the profile's GAN trained 12 steps on random faces (median of the last ten)."""
    import json
    import tempfile

    import keras

    from fer_utils.gan import GANConfig
    from fer_utils.gan.training import LOSSES_FILE, train_gan

    cfg = {**json.loads(config_key), "steps": 12, "checkpoint_every": 12}  # ten timed steps after two traced ones
    cfg = GANConfig.from_dict(cfg).to_dict()
    rng = np.random.default_rng(0)
    n = max(64, classes * 8)
    images = rng.integers(0, 255, (n, image_size, image_size), dtype=np.uint8)
    labels = np.arange(n) % classes
    with tempfile.TemporaryDirectory() as tmp:
        train_gan(images, labels, [str(i) for i in range(classes)], tmp, config=cfg, seed=0)
        seconds = pd.read_csv(f"{tmp}/{LOSSES_FILE}").iloc[:, -1].to_numpy()[2:]
    keras.backend.clear_session()
    return float(np.median(seconds))


def estimate(profile: dict, *, gpus=tuple(GPU_CLASSES), here: bool = True) -> pd.DataFrame:
    """One row per training group and notebook total: trainings, images trained and inferred, minutes here and on
    each GPU class. ``profile``: ``{notebook stem: effective parameters}``; ``here=False``: GPU classes only (no
    timing on this machine, NaN minutes here)."""
    import json

    from fer_utils.gan import GANConfig

    rows = []
    for stem, p in profile.items():
        trainings, gan = workload(stem, p, profile)
        for t in trainings:
            sp = speed(t, here)
            train_n, infer_n = t.train_images(), t.infer_images()
            secs = train_n / sp["train_ips"] + infer_n / sp["infer_ips"] + (sp["setup_s"] + FIT_OVERHEAD_S) * t.count
            row = {"notebook": stem, "what": t.label, "model": t.model, "input": t.size, "trainings": t.count,
                   "images trained": train_n, "images inferred": infer_n, "minutes here": secs / 60,
                   "timed": f"{sp['train_ips']:.0f} train / {sp['infer_ips']:.0f} infer img/s ({sp['policy']}, "
                            f"batch {sp['timed_batch']})"}
            flops = 2.0 * sp["macs"]
            for g in gpus:
                ips_train = min(GPU_CLASSES[g] / (3 * flops), GPU_PIPELINE_IPS)
                ips_infer = min(GPU_CLASSES[g] / flops, 4 * GPU_PIPELINE_IPS)
                row[f"minutes {g}"] = (train_n / ips_train + infer_n / ips_infer
                                       + GPU_TRAINING_START_S * t.count) / 60
            rows.append(row)
        gan_cfg = GANConfig.from_dict(gan["config"]) if gan is not None else None
        if gan_cfg is not None and gan_cfg.steps:
            steps, batch = gan_cfg.steps, gan_cfg.batch_size
            sec = (_gan_step_seconds(json.dumps(gan["config"], sort_keys=True), gan["image_size"], gan["classes"])
                   if here else np.nan)
            row = {"notebook": stem, "what": "GAN", "model": "cgan", "input": gan["image_size"], "trainings": 1,
                   "images trained": steps * batch, "images inferred": 0,
                   "minutes here": steps * sec / 60, "timed": f"{sec:.3f} s/step"}
            for g in gpus:  # a GAN step is small: bounded by kernel launches rather than FLOPs on a GPU
                row[f"minutes {g}"] = steps * GPU_GAN_STEP_S / 60
            rows.append(row)
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    totals = []
    for stem in profile:
        part = table[table.notebook == stem]
        tot = {"notebook": stem, "what": "notebook total", "trainings": int(part.trainings.sum()),
               "images trained": int(part["images trained"].sum()),
               "images inferred": int(part["images inferred"].sum()),
               "minutes here": float(part["minutes here"].sum(min_count=1) if len(part) else 0.0)
               + NOTEBOOK_START_S / 60}  # NaN when nothing was timed here
        for g in gpus:
            tot[f"minutes {g}"] = float(part[f"minutes {g}"].sum()) + NOTEBOOK_START_S / 60
        totals.append(tot)
    grand = {"notebook": "all", "what": "profile total", **{k: float(np.sum([t[k] for t in totals])) for k in totals[0]
                                                          if k not in ("notebook", "what")}}
    return pd.concat([table, pd.DataFrame(totals + [grand])], ignore_index=True)


def summary(table: pd.DataFrame, gpus=tuple(GPU_CLASSES)) -> list:
    """Console lines: per notebook its trainings, images and minutes here and per GPU class, then the total."""
    return [f"{r['notebook']}: {int(r['trainings'])} training(s), {int(r['images trained']):,} images trained, "
            f"{int(r['images inferred']):,} inferred; here {_hours(r['minutes here'])}; "
            + ", ".join(f"{g} {_hours(r[f'minutes {g}'])}" for g in gpus)
            for r in table[table.what.isin(["notebook total", "profile total"])].to_dict("records")]


def _hours(minutes: float) -> str:
    return f"{minutes:.0f} min" if not minutes >= 90 else f"{minutes / 60:.1f} h"  # NaN: nothing timed here
