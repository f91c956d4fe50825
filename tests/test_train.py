"""Tests for fer_utils.train: config checks, losses, schedules, fitting, resume."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import csv  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from fer_utils import runs, train  # noqa: E402
from fer_utils.train import TrainConfig  # noqa: E402


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def tiny_cnn(input_shape=(16, 16, 1), num_classes=2):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs)


def bright_dark_data(n=128, seed=0):
    """Two separable classes: dark (0) vs bright (1) noisy 16x16 images."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0.0, 0.1, size=(n, 16, 16, 1)) + np.where(y, 0.8, 0.2)[:, None, None, None]
    return x.astype("float32"), keras.utils.to_categorical(y, 2).astype("float32")


def datasets(batch_size=32):
    x, y = bright_dark_data()
    train_ds = tf.data.Dataset.from_tensor_slices((x[:96], y[:96])).batch(batch_size)
    val_ds = tf.data.Dataset.from_tensor_slices((x[96:], y[96:])).batch(batch_size)
    return train_ds, val_ds


def read_history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def compiled(model, cfg, batches=3):
    """Compile a test model the way training does (the schedule needs the batches per epoch)."""
    return train.compile_model(model, cfg, steps_per_epoch=batches)


def quick_cfg(**kw):
    base = dict(optimizer="adam", learning_rate=0.05, epochs=3, verbose=0, precision="float32")
    base.update(kw)
    return TrainConfig(**base)


class Interrupt(keras.callbacks.Callback):
    """Simulates a crash right after epoch index ``after_epoch`` finished."""

    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise RuntimeError("simulated interrupt")


# --------------------------------------------------------------------------- #
# Losses, regularisers, schedules
# --------------------------------------------------------------------------- #


def test_cosine_loss_is_negative_cosine():
    y_true = np.array([[0.0, 1.0, 0.0]], dtype="float32")
    y_pred = np.array([[0.2, 0.7, 0.1]], dtype="float32")
    # cos = 0.7 / (1 * sqrt(0.04 + 0.49 + 0.01)) = 0.7 / sqrt(0.54)
    expected = -0.7 / np.sqrt(0.54)
    loss = train.make_loss(TrainConfig(loss="cosine"))
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)


def test_crossentropy_loss_uses_label_smoothing():
    loss = train.make_loss(TrainConfig(loss="crossentropy", label_smoothing=0.1))
    y_true = np.array([[0.0, 1.0]], dtype="float32")
    y_pred = np.array([[0.3, 0.7]], dtype="float32")
    # Smoothed target: [0.05, 0.95].
    expected = -(0.05 * np.log(0.3) + 0.95 * np.log(0.7))
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)


def test_step_schedule_absolute_boundaries():
    table = train.effective_step_table(TrainConfig(schedule="step", epochs=200))
    expected = {
        0: 1e-3, 80: 1e-3, 81: 1e-4, 120: 1e-4, 121: 1e-5,
        160: 1e-5, 161: 1e-6, 180: 1e-6, 181: 5e-7, 199: 5e-7,
    }
    for epoch, lr in expected.items():
        assert train.step_schedule(epoch, table) == lr, epoch


def test_step_schedule_relative_scaling_at_20_epochs():
    cfg = TrainConfig(schedule="step", epochs=20, step_table_scale="relative")
    table = train.effective_step_table(cfg)
    assert [s for s, _ in table] == [0, 8, 12, 16, 18]
    lrs = [train.step_schedule(e, table) for e in range(20)]
    assert lrs == [1e-3] * 8 + [1e-4] * 4 + [1e-5] * 4 + [1e-6] * 2 + [5e-7] * 2


def test_short_relative_step_table_keeps_the_initial_rate_for_epoch_zero():
    table = train.effective_step_table(TrainConfig(schedule="step", epochs=1, step_table_scale="relative"))
    assert train.step_schedule(0, table) == 1e-3
    assert table == [[0, 1e-3], [1, 5e-7]]


def test_regularizer_adds_losses():
    assert train.make_regularizer(0.0, 0.0) is None
    assert isinstance(train.make_regularizer(0.0, 1e-3), keras.regularizers.L2)
    assert isinstance(train.make_regularizer(1e-3, 1e-3), keras.regularizers.L1L2)
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(2, kernel_regularizer=train.make_regularizer(0.0, 1e-2))
    model = keras.Model(inputs, dense(inputs))
    assert len(model.losses) > 0
    kernel = np.asarray(dense.kernel)
    assert float(sum(model.losses)) == pytest.approx(1e-2 * np.sum(kernel**2), rel=1e-5)


def test_optimizers_and_cosine_schedule():
    sgd = train.make_optimizer(TrainConfig(optimizer="sgd", momentum=0.8, nesterov=True))
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov
    assert float(sgd.momentum) == pytest.approx(0.8)
    assert isinstance(train.make_optimizer(TrainConfig(optimizer="rmsprop")), keras.optimizers.RMSprop)
    cfg = TrainConfig(schedule="cosine", epochs=10, warmup_epochs=2, learning_rate=0.1)
    opt = train.make_optimizer(cfg, steps_per_epoch=5)
    sched = opt._learning_rate
    assert isinstance(sched, keras.optimizers.schedules.CosineDecay)
    assert float(sched(0)) == pytest.approx(0.0)
    assert float(sched(10)) == pytest.approx(0.1)  # end of warm-up = peak
    assert float(sched(50)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        train.make_optimizer(cfg)


# --------------------------------------------------------------------------- #
# Config validation
# --------------------------------------------------------------------------- #


def test_unknown_choices_raise_listing_choices():
    with pytest.raises(ValueError, match=r"optimizer='nadam'.*'sgd', 'adam', 'rmsprop'"):
        TrainConfig.from_dict({"optimizer": "nadam"})
    with pytest.raises(ValueError, match=r"loss='mse'.*'crossentropy', 'cosine'"):
        TrainConfig.from_dict({"loss": "mse"})
    with pytest.raises(ValueError, match=r"schedule='poly'.*'constant', 'step', 'plateau', 'cosine'"):
        TrainConfig.from_dict({"schedule": "poly"})
    with pytest.raises(ValueError, match=r"Unknown TrainConfig key 'lr'.*learning_rate"):
        TrainConfig.from_dict({"lr": 0.1})



def test_config_is_frozen_and_replace_validates():
    """Validated once when made: a config cannot be changed into an invalid one afterwards."""
    import dataclasses

    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optimizer = "nadam"
    with pytest.raises(ValueError, match="'sgd', 'adam', 'rmsprop'"):
        cfg.replace(optimizer="nadam")
    with pytest.raises(ValueError, match=r"Unknown TrainConfig key\(s\) \['lr'\]"):
        cfg.replace(lr=0.1)
    assert cfg.replace(epochs=3).epochs == 3 and cfg.epochs == 30
    # The step table is stored as tuples, so it cannot be edited in place either.
    assert isinstance(cfg.step_table, tuple) and isinstance(cfg.step_table[0], tuple)


def test_config_value_checks_and_round_trip():
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": -1})
    with pytest.raises(ValueError, match="step_table"):
        TrainConfig.from_dict({"step_table": [[5, 1e-3], [2, 1e-4]]})
    with pytest.raises(ValueError, match="class_weight"):
        TrainConfig.from_dict({"class_weight": "inverse"})
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig.from_dict({"loss": "cosine", "label_smoothing": 0.1})
    cfg = TrainConfig.from_dict({"optimizer": "sgd", "schedule": "step", "epochs": 20})
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_balanced_class_weights():
    w = train.balanced_class_weights([10, 30, 0])
    assert w[0] == pytest.approx(40 / (3 * 10))
    assert w[1] == pytest.approx(40 / (3 * 30))
    assert w[2] == 1.0


# --------------------------------------------------------------------------- #
# Precision
# --------------------------------------------------------------------------- #


def test_set_precision_sets_global_policy():
    try:
        assert train.set_precision("float32") == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
        assert train.set_precision("mixed_bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(3, name="logits")(x)
        outputs = keras.layers.Activation("softmax", dtype="float32", name="probs")(x)
        model = keras.Model(inputs, outputs)
        assert model.get_layer("conv").compute_dtype == "bfloat16"
        out = model(np.zeros((2, 8, 8, 1), "float32"))
        assert out.dtype == "float32"
        with pytest.raises(ValueError, match="'auto', 'float32'"):
            train.set_precision("fp8")
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("gpus, bf16, expected", [
    (["GPU:0"], True, "mixed_float16"),
    ([], True, "mixed_bfloat16"),
    ([], False, "float32"),
])
def test_auto_precision_follows_the_hardware(monkeypatch, gpus, bf16, expected):
    from fer_utils.train import compile as compile_module

    monkeypatch.setattr(compile_module.tf.config, "list_physical_devices", lambda kind=None: list(gpus))
    monkeypatch.setattr(compile_module, "_cpu_supports_bf16", lambda: bf16)
    before = keras.mixed_precision.global_policy().name
    try:
        assert train.resolve_precision("auto") == expected  # the choice alone: the global policy is untouched
        assert keras.mixed_precision.global_policy().name == before
        assert train.set_precision("auto") == expected
        assert keras.mixed_precision.global_policy().name == expected
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_models_precision_is_read_from_its_layers(tmp_path):
    """What a saved model trained in is read back from it (a mixed model keeps its softmax in float32), whatever the
    global policy when it is loaded (loaded input layers take that one)."""
    from fer_utils import models, predictor

    build = lambda: models.build_model("cnn", (16, 16, 1), 3, filters=[4, 4, 4, 4], dense_units=4)  # noqa: E731
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.layers[-1].dtype_policy.name == "float32"  # the suite's builders keep their output in float32
    plain = build()
    assert models.model_precision(mixed) == "mixed_bfloat16" and models.model_precision(plain) == "float32"
    mixed.save(tmp_path / "mixed.keras")
    plain.save(tmp_path / "plain.keras")
    assert models.model_precision(keras.saving.load_model(tmp_path / "mixed.keras")) == "mixed_bfloat16"
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        loaded = keras.saving.load_model(tmp_path / "plain.keras")
        assert models.model_precision(loaded) == "float32"
        # what LiteRT conversion relies on: a float32 model is used as it is, a mixed one gets a float32 copy
        assert predictor._float32(loaded) is loaded and models.model_precision(predictor._float32(mixed)) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_onednn_limited_below_bf16_rules_bf16_out(monkeypatch, tmp_path):
    """ONEDNN_MAX_CPU_ISA=AVX2 (how an AVX2-only CPU is measured on a newer one) leaves oneDNN no bf16 convolution,
    so 'auto' must not pick mixed_bfloat16 even where /proc/cpuinfo has avx512_bf16."""
    from fer_utils.train import compile as compile_module

    monkeypatch.setattr("builtins.open", lambda *a, **k: __import__("io").StringIO("flags : avx2 avx512_bf16\n"))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert compile_module._cpu_supports_bf16() is True
    for isa, native in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("ALL", True)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        assert compile_module._cpu_supports_bf16() is native, isa


# --------------------------------------------------------------------------- #
# Fitting, resume, refusing to mix runs
# --------------------------------------------------------------------------- #


def test_fit_lowers_loss_and_writes_run_folder(tmp_path):
    train_ds, val_ds = datasets()
    cfg = quick_cfg(epochs=4, schedule="step", step_table=[[0, 0.05], [2, 0.01]])
    history = train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0)
    losses = history.history["loss"]
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    for name in ("model.keras", "history.csv", "train_config.json"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "backup").exists()  # deleted on completion
    assert TrainConfig.from_dict(json.loads((tmp_path / "train_config.json").read_text())) == cfg
    rows = read_history(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    # The lr actually used per epoch follows the step table.
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.05, 0.01, 0.01])
    from fer_utils import runs

    best = runs.load_model(tmp_path)
    assert best.predict(np.zeros((1, 16, 16, 1), "float32"), verbose=0).shape == (1, 2)


def test_keep_last_keeps_the_last_epochs_model_beside_the_best(tmp_path):
    """last.keras holds the weights training ended with (the model object's); the best checkpoint equals them only
    when the last epoch improved validation accuracy; a run without keep_last has no last.keras."""
    from fer_utils import runs

    train_ds, val_ds = datasets()
    cfg = quick_cfg(epochs=4, learning_rate=0.05, keep_last=True)
    model = compiled(tiny_cnn(), cfg)
    train.fit_model(model, train_ds, val_ds, cfg, tmp_path / "kept", seed=0)
    last = keras.saving.load_model(str(tmp_path / "kept" / runs.LAST_MODEL_FILE), compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(last.get_weights(), model.get_weights()))
    val = [float(r["val_accuracy"]) for r in read_history(tmp_path / "kept")]
    best = runs.load_model(tmp_path / "kept")
    same = all(np.array_equal(a, b) for a, b in zip(best.get_weights(), model.get_weights()))
    assert same == (val[-1] > max(val[:-1]))  # the best checkpoint is the last epoch only if that one improved
    plain = quick_cfg(epochs=1)
    train.fit_model(compiled(tiny_cnn(), plain), train_ds, val_ds, plain, tmp_path / "plain", seed=0)
    assert (tmp_path / "plain" / runs.MODEL_FILE).is_file() and not (tmp_path / "plain" / runs.LAST_MODEL_FILE).exists()
    with pytest.raises(ValueError, match="keep_last"):
        TrainConfig(keep_last="yes")


def test_fit_passes_balanced_class_weights_and_plateau_lowers_lr(tmp_path):
    train_ds, val_ds = datasets()
    cfg = quick_cfg(epochs=3, class_weight="balanced", schedule="plateau", plateau_patience=0,
                    plateau_factor=0.5, learning_rate=0.05)
    model = compiled(tiny_cnn(), cfg)
    seen = {}
    original_fit = model.fit

    def spy(*args, **kwargs):
        seen["class_weight"] = kwargs.get("class_weight")
        return original_fit(*args, **kwargs)

    model.fit = spy
    history = train.fit_model(model, train_ds, val_ds, cfg, tmp_path, class_counts=[10, 30])
    assert seen["class_weight"] == pytest.approx({0: 40 / 20, 1: 40 / 60})
    # Without a balanced config no weights are passed.
    plain = quick_cfg(epochs=1)
    model2 = compiled(tiny_cnn(), plain)
    seen.clear()
    original_fit2 = model2.fit
    model2.fit = lambda *a, **k: (seen.update(class_weight=k.get("class_weight")), original_fit2(*a, **k))[1]
    train.fit_model(model2, train_ds, val_ds, plain, tmp_path / "plain")
    assert seen["class_weight"] is None
    # Plateau with patience 0 halves the rate after an epoch whose val_loss did not improve,
    # and history records the rate per epoch.
    lrs = history.history["lr"]
    assert lrs[0] == pytest.approx(0.05)
    assert all(b in (pytest.approx(a), pytest.approx(a / 2)) for a, b in zip(lrs, lrs[1:]))


def test_fit_refuses_an_uncompiled_model_or_a_dict_config(tmp_path):
    train_ds, val_ds = datasets()
    cfg = quick_cfg(epochs=1)
    with pytest.raises(ValueError, match="not compiled.*build_compiled_model"):
        train.fit_model(tiny_cnn(), train_ds, val_ds, cfg, tmp_path)
    with pytest.raises(TypeError, match="TrainConfig"):
        train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, {"epochs": 1}, tmp_path)


def test_build_compiled_model_applies_the_whole_config():
    cfg = TrainConfig(optimizer="sgd", nesterov=True, momentum=0.8, l2=1e-3, precision="float32",
                      loss="cosine", schedule="cosine", epochs=4, learning_rate=0.1)
    model, policy = train.build_compiled_model("cnn", cfg, input_shape=(16, 16, 1), num_classes=3,
                                               steps_per_epoch=5, model_kwargs={"filters": [4, 4, 4, 4],
                                                                                "dense_units": 8})
    assert policy == "float32" and model.name == "cnn"
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.nesterov
    assert isinstance(model.loss, keras.losses.CosineSimilarity)
    assert isinstance(model.get_layer("block1_conv1").kernel_regularizer, keras.regularizers.L2)
    sched = model.optimizer._learning_rate
    assert float(sched(0)) == pytest.approx(0.1) and float(sched(20)) == pytest.approx(0.0, abs=1e-7)


def test_backup_and_restore_resumes(tmp_path):
    train_ds, val_ds = datasets()
    cfg = quick_cfg(epochs=4)
    with pytest.raises(RuntimeError, match="simulated interrupt"):
        train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0,
                        callbacks=[Interrupt(after_epoch=1)])
    assert (tmp_path / "backup").is_dir()
    assert [int(r["epoch"]) for r in read_history(tmp_path)] == [0, 1]

    # A fresh process would rebuild the model; the backup restores its state.
    history = train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0)
    assert history.epoch == [2, 3]
    rows = read_history(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert not (tmp_path / "backup").exists()


def test_refuses_to_mix_runs_unless_overwrite(tmp_path):
    train_ds, val_ds = datasets()
    cfg = quick_cfg(epochs=2)
    train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0)
    old_history = (tmp_path / "history.csv").read_text()

    with pytest.raises(FileExistsError, match="history.csv"):
        train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=1)
    assert (tmp_path / "history.csv").read_text() == old_history

    # The earlier run's evaluation files belong to it too.
    (tmp_path / "metrics.json").write_text('{"headline": {"old": 1}}')
    (tmp_path / "predictions.npz").write_bytes(b"old predictions")
    (tmp_path / "preprocessing.json").write_text("{}")
    one = quick_cfg(epochs=1)
    train.fit_model(compiled(tiny_cnn(), one), train_ds, val_ds, one, tmp_path, seed=1, overwrite=True)
    assert [int(r["epoch"]) for r in read_history(tmp_path)] == [0]
    # Every file of the old run was moved aside together, not deleted.
    moved = list(tmp_path.glob("replaced-*"))
    assert len(moved) == 1 and (moved[0] / "history.csv").read_text() == old_history
    assert (moved[0] / "metrics.json").read_text() == '{"headline": {"old": 1}}'
    assert (moved[0] / "predictions.npz").read_bytes() == b"old predictions"
    assert (moved[0] / "preprocessing.json").is_file() and (moved[0] / "model.keras").is_file()
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "predictions.npz").exists()


class BatchCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


@pytest.mark.parametrize("cap, expected", [(0, 3 * 2), (2, 2 * 2), (5, 3 * 2)])
def test_steps_per_epoch_caps_batches_per_epoch(tmp_path, cap, expected):
    """A cap below the split's 3 batches shortens each epoch; a larger cap uses the whole split."""
    train_ds, val_ds = datasets()  # 96 training images in batches of 32: 3 batches
    cfg = quick_cfg(epochs=2, steps_per_epoch=cap)
    counter = BatchCounter()
    train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, callbacks=[counter])
    assert counter.batches == expected


# --------------------------------------------------------------------------- #
# Kills while the backup is written
# --------------------------------------------------------------------------- #


def _interrupted_run(tmp_path, epochs=4, after_epoch=2):
    train_ds, val_ds = datasets()
    cfg = quick_cfg(epochs=epochs)
    with pytest.raises(RuntimeError, match="simulated interrupt"):
        train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0,
                        callbacks=[Interrupt(after_epoch=after_epoch)])
    return train_ds, val_ds, cfg


def test_backup_keeps_the_previous_state_and_a_truncated_latest_falls_back(tmp_path, monkeypatch):
    console = tmp_path / "console.txt"
    monkeypatch.setenv("FER_PROGRESS_FILE", str(console))  # the runner's console (fer_utils.progress)
    train_ds, val_ds, cfg = _interrupted_run(tmp_path, epochs=5, after_epoch=2)
    backup = tmp_path / "backup"
    # Epochs 0-2 finished and were backed up; the state before epoch 2 is kept as the previous one.
    assert train.backup_epoch(tmp_path) == 3
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-00002", "epoch-00003"]
    assert json.loads((backup / "epoch-00002" / "state.json").read_text())["epoch"] == 2
    assert [int(r["epoch"]) for r in read_history(tmp_path)] == [0, 1, 2]
    # A kill in the middle of writing the latest weights: the file is cut short.
    latest = backup / "epoch-00003" / "state.weights.h5"
    latest.write_bytes(latest.read_bytes()[:200])
    with pytest.warns(UserWarning, match=f"{backup}: the latest backup cannot be restored"):
        history = train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0)
    assert history.epoch == [2, 3, 4]  # resumed from the previous good state (after epoch 1)
    assert f"warning: {backup}: the latest backup cannot be restored" in console.read_text()  # said on the console
    rows = read_history(tmp_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]  # continuous: re-run epochs replaced their rows
    timings = pd.read_csv(tmp_path / "timings.csv")
    assert timings["epoch"].tolist() == [0, 1, 2, 3, 4] and (timings["seconds"] > 0).all()
    assert not backup.exists()


def test_epoch_timings_count_other_processes_and_steal_from_the_machines_times(tmp_path, monkeypatch):
    """A known case, faked: over 10 s of wall time the machine was busy 15 core-seconds (idle and iowait not counted),
    this process used 5 of them, the hypervisor took 2: others_cores 1.00, steal_cores 0.20. A file of the earlier
    two-column layout gains the columns and keeps its rows; one with only its header too."""
    import collections
    import time

    from fer_utils import artifacts
    from fer_utils.train.callbacks import TIMING_COLUMNS, EpochTimer

    hz = os.sysconf("SC_CLK_TCK")
    Times = collections.namedtuple("Times", "user system children_user children_system elapsed")
    now = {"wall": 100.0, "own": 1.0, "proc": [1000, 0, 0, 5000, 0, 0, 0, 0]}
    monkeypatch.setattr(artifacts, "cpu_times", lambda: list(now["proc"]))
    monkeypatch.setattr(time, "perf_counter", lambda: now["wall"])
    monkeypatch.setattr(os, "times", lambda: Times(now["own"], 0.0, 0.0, 0.0, 0.0))
    for earlier in ("epoch,seconds\n0,12.5\n", "epoch,seconds\n"):
        (tmp_path / "timings.csv").write_text(earlier)
        timer = EpochTimer(tmp_path)
        timer.on_train_begin()
        timer.on_epoch_begin(1)
        now["wall"] += 10.0
        now["own"] += 5.0
        user, nice, system, idle, iowait, irq, softirq, steal = now["proc"]
        now["proc"] = [user + 12 * hz, nice, system + 3 * hz, idle + 3 * hz, iowait + 7 * hz, irq, softirq,
                       steal + 2 * hz]
        timer.on_epoch_end(1)
        rows = pd.read_csv(tmp_path / "timings.csv", dtype=str, keep_default_na=False)
        assert list(rows.columns) == list(TIMING_COLUMNS)
        assert rows["epoch"].tolist() == (["0", "1"] if "0,12.5" in earlier else ["1"])
        new = rows.iloc[-1]
        assert (new["seconds"], new["others_cores"], new["steal_cores"]) == ("10.000", "1.00", "0.20")
        assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("flags, usable, total, limit, says", [
    ({"avx2"}, {0, 1}, 2, None, "2 cores, AVX2"),
    ({"avx2", "avx512f", "avx512_bf16"}, {0, 1}, 8, None, "2 of 8 cores, AVX-512 + bf16"),
    ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, {0, 1}, 2, "AVX2", "2 cores, AMX, oneDNN limited to AVX2"),
    ({"avx2", "avx512f"}, {0, 1, 2, 3}, 4, None, "4 cores, AVX-512"),
])
def test_cpu_kind_names_the_cores_this_process_may_use_and_the_best_isa(monkeypatch, flags, usable, total, limit, says):
    """Speeds depend on the cores a run may use (taskset or a container's cpuset may allow fewer than the machine
    has) and on the best instruction set; both are in the label every timings row carries."""
    from fer_utils import artifacts

    monkeypatch.setattr(artifacts, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(artifacts.os, "cpu_count", lambda: total)
    monkeypatch.setattr(artifacts.os, "sched_getaffinity", lambda pid: set(usable), raising=False)
    if limit:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert artifacts.cpu_kind() == says


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads the machine's CPU times from /proc/stat")
def test_epoch_timings_see_a_process_spinning_beside_the_run(tmp_path):
    """The real reading: a second process spinning through the whole epoch shows as at least half a core, and the
    row names this machine's CPU kind and boot."""
    import subprocess
    import sys
    import time

    from fer_utils.artifacts import cpu_kind
    from fer_utils.train.callbacks import EpochTimer

    timer = EpochTimer(tmp_path)
    timer.on_train_begin()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # the spinner is up
        timer.on_epoch_begin(0)
        time.sleep(1.5)
        timer.on_epoch_end(0)
    finally:
        spinner.kill()
        spinner.wait()
    new = pd.read_csv(tmp_path / "timings.csv", dtype=str, keep_default_na=False).iloc[0]
    assert 1.4 < float(new["seconds"]) < 5 and new["cpu"] == cpu_kind()
    assert len(new["boot"]) == 8 and new["ended"].endswith("Z")
    assert 0.5 <= float(new["others_cores"]) <= os.cpu_count() + 0.1 and float(new["steal_cores"]) >= 0


def test_unrestorable_backup_is_an_error_and_history_is_not_cut(tmp_path):
    train_ds, val_ds, cfg = _interrupted_run(tmp_path, epochs=4, after_epoch=2)
    for weights in (tmp_path / "backup").glob("epoch-*/state.weights.h5"):
        weights.write_bytes(b"garbage")
    before = (tmp_path / "history.csv").read_text()
    with pytest.raises(train.BackupError, match="no backup can be restored.*Move the folder away"):
        train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0)
    assert (tmp_path / "history.csv").read_text() == before


def test_a_run_is_not_resumed_in_another_precision(tmp_path):
    """``precision: auto`` resolves per machine: a run started in float32 (an AVX2-only CPU) and resumed where the
    model is built in mixed bfloat16 (a bf16 CPU), or the other way, is refused before anything trains, naming both
    (same-precision resumes are the other resume tests'). States written before the precision was recorded still
    restore."""
    train_ds, val_ds, cfg = _interrupted_run(tmp_path, epochs=4, after_epoch=1)
    state = tmp_path / "backup" / "epoch-00002" / "state.json"
    assert json.loads(state.read_text())["precision"] == "float32"
    before = (tmp_path / "history.csv").read_text()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        other = compiled(tiny_cnn(), cfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert other.dtype_policy.name == "mixed_bfloat16"
    with pytest.raises(train.BackupError, match="trained in float32 until this backup; this sitting builds the model "
                                                "in mixed_bfloat16.*ONEDNN_MAX_CPU_ISA=AVX2"):
        train.fit_model(other, train_ds, val_ds, cfg, tmp_path, seed=0)
    assert (tmp_path / "history.csv").read_text() == before and train.backup_epoch(tmp_path) == 2
    # the other way: a state from a bf16 CPU resumed where the model is float32
    for folder in (tmp_path / "backup").glob("epoch-*"):
        meta = json.loads((folder / "state.json").read_text())
        (folder / "state.json").write_text(json.dumps({**meta, "precision": "mixed_bfloat16"}))
    with pytest.raises(train.BackupError, match="trained in mixed_bfloat16 until this backup; this sitting builds "
                                                "the model in float32"):
        train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0)
    assert (tmp_path / "history.csv").read_text() == before
    for folder in (tmp_path / "backup").glob("epoch-*"):  # an older state without the record
        meta = json.loads((folder / "state.json").read_text())
        (folder / "state.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "precision"}))
    assert train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0).epoch == [2, 3]


def test_weights_and_their_epoch_appear_together_or_not_at_all(tmp_path):
    """Issue 25: two file renames could leave epoch-N weights with epoch N-1's metadata. A state is one folder
    renamed into place: a kill leaves at most a half-written incoming/ (or a half-deleted old state), which a
    restore skips; the earlier layout (latest.weights.h5 + training_metadata.json) still restores."""
    train_ds, val_ds, cfg = _interrupted_run(tmp_path, epochs=5, after_epoch=1)
    backup = tmp_path / "backup"
    assert train.backup_epoch(tmp_path) == 2
    # killed while writing the next state, and while deleting an old one
    (backup / "incoming").mkdir()
    (backup / "incoming" / "state.weights.h5").write_bytes(b"half")
    (backup / "epoch-00003").mkdir()
    (backup / "epoch-00003" / "state.weights.h5").write_bytes(b"weights without their epoch")
    assert train.backup_epoch(tmp_path) == 2
    history = train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, tmp_path, seed=0)
    assert history.epoch == [2, 3, 4] and not backup.exists()

    legacy = tmp_path / "legacy"
    (legacy / "backup").mkdir(parents=True)
    model = compiled(tiny_cnn(), cfg)
    model.optimizer.build(model.trainable_variables)
    model.save_weights(str(legacy / "backup" / "latest.weights.h5"))
    (legacy / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 3, "batch": -1}))
    assert train.backup_epoch(legacy) == 3
    assert train.fit_model(compiled(tiny_cnn(), cfg), train_ds, val_ds, cfg, legacy, seed=0).epoch == [3, 4]


@pytest.mark.parametrize("cap, ema, augment", [
    (0, 0.0, {"flip": True, "shift": 0.1, "zoom": 0.1}),
    (2, 0.0, {"flip": True, "shift": 0.1, "zoom": 0.1}),
    (0, 0.9, {"flip": True, "erasing": 0.5, "mixup": 0.4}),
])
def test_a_killed_and_resumed_run_is_the_uninterrupted_run(tmp_path, cap, ema, augment):
    """Issue 25: killed after epoch 1 of 4 and run again, a run's history.csv and final weights equal an
    uninterrupted run's: the training stream (shuffle and augmentation) restarts at the resumed epoch's batches,
    whole epochs (cap 0) or capped ones (cap 2 of 4 batches: the endless stream's consecutive batches); also with
    weight averaging (the backup holds the raw weights, the averages in the optimizer), random erasing and mixup."""
    from fer_utils import pipeline

    x, y = bright_dark_data(n=120)
    images = (np.clip(x[..., 0], 0, 1) * 255).astype(np.uint8)
    val_ds = tf.data.Dataset.from_tensor_slices((x[96:], y[96:])).batch(16)
    cfg = quick_cfg(epochs=4, batch_size=24, steps_per_epoch=cap, learning_rate=0.01, ema_momentum=ema)

    def stream():
        return pipeline.TrainingStream(images[:96], y[:96], input_size=16, channels=1, batch_size=24,
                                       normalization="unit", augment=augment, seed=3)

    def model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((16, 16, 1))
        h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
        h = keras.layers.Dropout(0.3, name="drop")(keras.layers.GlobalAveragePooling2D(name="gap")(h))
        return compiled(keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probs")(h)), cfg,
                        batches=cap or 4)

    whole = model()
    train.fit_model(whole, stream(), val_ds, cfg, tmp_path / "whole", seed=0)
    with pytest.raises(RuntimeError, match="simulated interrupt"):
        train.fit_model(model(), stream(), val_ds, cfg, tmp_path / "killed", seed=0, callbacks=[Interrupt(1)])
    resumed = model()
    assert train.fit_model(resumed, stream(), val_ds, cfg, tmp_path / "killed", seed=0).epoch == [2, 3]

    def losses(run):
        return [(r["epoch"], r["loss"], r["val_loss"], r["accuracy"]) for r in read_history(tmp_path / run)]

    assert losses("killed") == losses("whole")
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # and the stream itself: started at batch g it yields the uninterrupted stream's batches from g on
    full = [b[0].numpy() for b in stream().dataset().take(7)]
    tail = [b[0].numpy() for b in stream().dataset(start_batch=5).take(2)]
    np.testing.assert_array_equal(full[5], tail[0])
    np.testing.assert_array_equal(full[6], tail[1])
    assert not np.array_equal(full[0], full[4])  # epoch 1 is another order and other augmentations


def test_cut_history_drops_rerun_epochs_and_a_torn_line(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n3,0.")
    assert train.cut_history(tmp_path, 2) == 2
    assert (tmp_path / "history.csv").read_text() == "epoch,loss\n0,1.0\n1,0.9\n"


def test_weight_averaging_validates_and_keeps_the_averaged_weights(tmp_path):
    """ema_momentum 0.9999 over 8 steps: Keras starts the average at the weights after the first step (at most
    about one Adam step, the learning rate, from the initial ones) and it barely moves after, so the best checkpoint
    and the final model stay within one step of the initial weights, while training without averaging moves them
    several steps."""
    train_ds, val_ds = datasets(batch_size=24)
    cfg = quick_cfg(epochs=2, learning_rate=0.05, ema_momentum=0.9999)
    keras.utils.set_random_seed(0)
    model = compiled(tiny_cnn(), cfg, batches=4)
    initial = [w.copy() for w in model.get_weights()]
    train.fit_model(model, train_ds, val_ds, cfg, tmp_path / "ema", seed=0)
    drift = max(float(np.abs(a - b).max()) for a, b in zip(model.get_weights(), initial))
    best = runs.load_model(tmp_path / "ema")
    best_drift = max(float(np.abs(a - b).max()) for a, b in zip(best.get_weights(), initial))
    keras.utils.set_random_seed(0)
    plain_cfg = quick_cfg(epochs=2, learning_rate=0.05)
    plain = compiled(tiny_cnn(), plain_cfg, batches=4)
    train.fit_model(plain, train_ds, val_ds, plain_cfg, tmp_path / "plain", seed=0)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), initial))
    assert drift <= 1.1 * 0.05 and best_drift <= 1.1 * 0.05 and moved > 4 * drift
    with pytest.raises(ValueError, match="ema_momentum"):
        TrainConfig(ema_momentum=1.0)


def test_mixing_and_erasing_in_the_training_stream():
    """mixup and cutmix mix labels (rows sum to 1, some not one-hot), so only the training stream applies them;
    erasing changes images; bad values name the key."""
    from fer_utils import pipeline

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 16, 16), dtype=np.uint8)
    y = np.eye(4, dtype=np.float32)[np.arange(64) % 4]
    common = dict(input_size=16, channels=1, batch_size=32, normalization="unit", seed=1)
    for key, value in (("mixup", 0.4), ("cutmix", 1.0)):
        xb, yb = next(iter(pipeline.TrainingStream(images, y, augment={key: value}, **common).dataset()))
        yb = yb.numpy()
        assert np.allclose(yb.sum(1), 1.0, atol=1e-5) and (yb.max(1) < 0.999).any(), key
        assert 0.0 <= float(xb.numpy().min()) and float(xb.numpy().max()) <= 1.0
    plain = next(iter(pipeline.TrainingStream(images, y, augment={}, **common).dataset()))[0].numpy()
    erased = next(iter(pipeline.TrainingStream(images, y, augment={"erasing": 1.0}, **common).dataset()))[0].numpy()
    changed = (np.abs(plain - erased) > 1e-6).reshape(32, -1).mean(1)
    assert (changed > 0.01).all() and (changed < 0.5).all()  # one patch of 2-33% per image
    with pytest.raises(ValueError, match="only the training stream"):
        pipeline.make_dataset(images, y.argmax(1), 4, augment={"mixup": 0.2})
    with pytest.raises(ValueError, match=r"augment\['erasing'\]=1.5: expected a number in \[0, 1\]"):
        pipeline.check_augment({"erasing": 1.5})
    with pytest.raises(ValueError, match="use one of them"):
        pipeline.check_augment({"mixup": 0.2, "cutmix": 1.0})


@pytest.mark.parametrize("key,value", [("mixup", 0.2), ("cutmix", 1.0)])
def test_mixing_under_mixed_bfloat16_with_the_recipes_augmentation(key, value):
    """``precision: auto`` picks mixed_bfloat16 on AMX CPUs, and the data layers are built under that global policy:
    Keras' MixUp/CutMix then drew bf16 weights and failed on the float32 batch (a recipe run with mixup stopped at its
    first batch). With the recipe's augmentation in front, the stream must give float32 batches with mixed labels."""
    from fer_utils import pipeline

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 16, 16), dtype=np.uint8)
    y = np.eye(4, dtype=np.float32)[np.arange(64) % 4]
    augment = {"flip": True, "shift": 0.1, "rotation_deg": 10, "zoom": 0.1, key: value}
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        stream = pipeline.TrainingStream(images, y, input_size=16, channels=1, batch_size=32, normalization="unit",
                                         augment=augment, seed=1)
        xb, yb = next(iter(stream.dataset()))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert xb.dtype.name == "float32" and yb.dtype.name == "float32"
    yb = yb.numpy()
    assert np.allclose(yb.sum(1), 1.0, atol=1e-5) and (yb.max(1) < 0.999).any()


def test_move_aside_keeps_every_archive_of_one_second_with_files_and_folders(tmp_path, frozen_clock):
    """``runs.move_aside`` (the one owner of "replaced-<stamp>/" for runs, the GAN and exports): files and folders
    move together, a second replacement within the same second gets its own archive, nothing present moves nothing."""
    assert runs.move_aside(tmp_path, []) is None and runs.move_aside(tmp_path, ["absent.txt"]) is None
    assert list(tmp_path.iterdir()) == []
    archives = []
    for version in ("first", "second"):
        (tmp_path / "card.json").write_text(version)
        (tmp_path / "checkpoint").mkdir()
        (tmp_path / "checkpoint" / "state.npz").write_text(version)
        archives.append(runs.move_aside(tmp_path, ["card.json", "checkpoint", "absent.txt"]))
    assert archives[0] != archives[1] and archives[1].name.startswith(archives[0].name)
    for archive, version in zip(archives, ("first", "second")):
        assert (archive / "card.json").read_text() == version
        assert (archive / "checkpoint" / "state.npz").read_text() == version
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(a.name for a in archives)
    (tmp_path / "history.csv").write_text("epoch\n0\n")  # names=None: the files of an earlier training run
    assert (runs.move_aside(tmp_path) / "history.csv").read_text() == "epoch\n0\n"


def test_weight_decay_shrinks_kernels_by_decay_times_rate_and_leaves_biases_and_batch_norm():
    """Decoupled weight decay with zero gradients: Adam's own step is then 0, so one step multiplies every kernel
    by exactly ``1 - weight_decay * lr`` (also in a layer whose name contains "beta") and leaves biases and
    batch-norm scales and offsets as they were; without ``weight_decay`` nothing moves. A typo'd value is refused
    with the key's name."""
    x = keras.Input((4, 4, 1))
    y = keras.layers.Conv2D(2, 3, name="conv")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.Dense(3, name="head")(keras.layers.Flatten(name="flat")(y))
    y = keras.layers.Dense(2, name="beta_head")(y)
    model = keras.Model(x, y)
    for w in model.trainable_variables:
        w.assign(np.full(w.shape, 0.5, "float32"))
    moved = {}
    for wd in (0.25, 0.0):
        opt = train.make_optimizer(TrainConfig(optimizer="adam", learning_rate=0.1, weight_decay=wd))
        before = [w.numpy().copy() for w in model.trainable_variables]
        opt.apply_gradients([(tf.zeros_like(w), w) for w in model.trainable_variables])
        moved[wd] = {w.path: float(w.numpy().mean() / b.mean()) for w, b in zip(model.trainable_variables, before)}
    assert moved[0.25] == pytest.approx({"conv/kernel": 0.975, "conv/bias": 1.0, "bn/gamma": 1.0, "bn/beta": 1.0,
                                         "head/kernel": 0.975, "head/bias": 1.0, "beta_head/kernel": 0.975,
                                         "beta_head/bias": 1.0})
    assert set(moved[0.0].values()) == {1.0}
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig(weight_decay=-0.01)
