"""The cost estimate of ``--check`` (fer_utils.cost): work counted from the parameters, speed timed here."""

import math

import keras
import numpy as np
import pytest

from conftest import ROOT
from fer_utils import cost
from fer_utils import params as P


def _effective(profile, only=(), subset=""):
    nbs = P.list_notebooks(ROOT / "notebooks", list(only))
    resolved = P.resolve(P.load_profile(profile, ROOT / "params"), nbs, subset=subset)
    return {nb.stem: {**P.notebook_parameters(nb), **resolved[nb.stem]} for nb in nbs}


@pytest.mark.parametrize("max_epochs, factor, configs, expected", [
    (4, 4, 4, (5, 7)),      # the cpu run of notebook 05: four 1-epoch trials, one continued to 4; then no config left
    (4, 4, 100, (7, 15)),   # ... and with configurations to spare, bracket 0's two 4-epoch trials too
    (30, 3, 243, (90, 576)),  # Study A's Table IV space with max_epochs 30, factor 3 (docs/notebooks.md: about 576)
])
def test_hyperband_budget_is_kerastuners(max_epochs, factor, configs, expected):
    assert cost.hyperband_epochs(max_epochs, factor, configs) == expected


def test_hyperband_budget_matches_kerastuners_own_bracket_sizes():
    import keras_tuner as kt

    oracle = kt.oracles.HyperbandOracle(objective="val_loss", max_epochs=30, factor=3)
    trials = epochs = 0
    for b in range(oracle._get_num_brackets() - 1, -1, -1):
        previous = 0
        for r in range(oracle._get_num_rounds(b)):
            trials += oracle._get_size(b, r)
            epochs += oracle._get_size(b, r) * (oracle._get_epochs(b, r) - previous)
            previous = oracle._get_epochs(b, r)
    assert cost.hyperband_epochs(30, 3, 10_000) == (trials, epochs)


def test_macs_of_a_known_network():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)           # 8*8*4 outputs x 3*3*3 = 6,912
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)         # 8*8*4 x 9 = 2,304
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)                             # 256 x 5 = 1,280
    assert cost.macs_per_image(keras.Model(inputs, outputs)) == 6912 + 2304 + 1280


def test_work_of_the_smoke_profile_follows_its_parameters():
    eff = _effective("smoke")
    p03 = eff["03_baselines"]
    (t,), gan = cost.workload("03_baselines", p03, eff)
    epochs, steps, batch = t.epochs_steps()
    merged = {**p03["train_config"], **p03["train_configs"][t.model]}  # smoke: epochs 25, whole epochs
    assert gan is None and t.model == p03["models"][0] and epochs == merged["epochs"] == 25
    assert steps == math.ceil(t.n_train / batch) and batch == merged["batch_size"]
    assert t.train_images() == epochs * steps * batch * max(1, len(p03.get("seeds") or []))
    assert t.n_train + t.n_val == 7 * p03["max_per_class"]  # 4 per class of 7, a quarter of them validate
    p02 = eff["02_gan_balancing"]
    two, _ = cost.workload("02_gan_balancing", p02, eff)
    real_only, balanced = two[0], two[1]
    assert balanced.n_train > real_only.n_train  # a balanced run trains on the real rows plus the generated ones
    cas = two[-1]  # CAS trains on generated (or real) faces and validates on the real validation split each epoch
    assert cas.label.startswith("CAS") and cas.n_val == real_only.n_val > 0
    six, _ = cost.workload("06_statistics", eff["06_statistics"], eff)
    assert all(t.count == 10 for t in six)  # ten 5x2cv folds per configuration
    labels = [t.label for t in six]
    assert len(labels) == len(set(labels))  # each distinct configuration once (shared folds are not counted twice)


def test_a_subset_costs_only_the_part_it_runs():
    """--check --subset estimates the part a session runs: no attention CNNs, only the named FER+ runs or CK+."""
    whole, _ = cost.workload("04_cbam", _effective("smoke", ["04"])["04_cbam"])
    assert {t.label.split("/")[0] for t in whole} == {"cnn_se", "cnn_cbam", "ferplus", "ckplus"}
    ck, _ = cost.workload("04_cbam", _effective("smoke", ["04"], "study_c_ckplus")["04_cbam"])
    assert sorted(t.label for t in ck) == ["ckplus/msca_resnet", "ckplus/msca_resnet_plain"]
    fp, _ = cost.workload("04_cbam", _effective("smoke", ["04"], "study_c_ferplus_part")["04_cbam"])
    assert [t.label for t in fp] == ["ferplus/msca_resnet"]


def test_study_c_inference_counts_study_c_tta_views():
    """Study C's test images are counted once per view of ``study_c_tta`` (not the attention CNNs' ``tta``)."""
    p = _effective("smoke", ["04"], "study_c_ckplus")["04_cbam"]
    counts = {}
    for tta in ("ten_crop", "flip", "none"):
        trainings, _ = cost.workload("04_cbam", {**p, "study_c_tta": tta, "tta": "flip"})
        counts[tta] = [t.n_eval for t in trainings]
    assert counts["ten_crop"] == [10 * n for n in counts["none"]] and counts["flip"] == [2 * n for n in counts["none"]]
    assert all(n > 0 for n in counts["none"])


@pytest.mark.slow
def test_cpu_profile_work_matches_what_its_runs_did(real_data):
    """Notebook 05's cpu run trained 16 grid epochs, 7 Hyperband epochs in 5 trials, 8 Bayesian epochs (trials.csv,
    docs/results.md) and 06 trains 05's default and tuned configurations on ten folds each."""
    eff = _effective("cpu", ["05", "06"])
    five, _ = cost.workload("05_tuning", eff["05_tuning"], eff)
    by = {t.label: t for t in five}
    assert by["msca_resnet grid (4 trials, 16 epochs)"].config["epochs"] == 16
    assert by["msca_resnet hyperband (5 trials, 7 epochs)"].config["epochs"] == 7
    assert by["msca_resnet bayesian (2 trials, 8 epochs)"].config["epochs"] == 8
    assert abs(five[0].n_train - 25_838) <= 7 and abs(five[0].n_val - 2_871) <= 7  # per-class rounding
    six, _ = cost.workload("06_statistics", eff["06_statistics"], eff)
    assert sorted(t.label for t in six) == ["5x2cv msca_resnet default", "5x2cv msca_resnet tuned"]
    assert all(t.config["epochs"] == 4 for t in six)  # 05's budget


@pytest.mark.slow
def test_the_estimate_times_each_model_once_and_adds_up():
    eff = _effective("smoke", ["03", "05"])
    table = cost.estimate(eff)
    parts = table[~table.what.isin(["notebook total", "profile total"])]
    totals = table[table.what == "notebook total"].set_index("notebook")
    for stem in eff:
        part = parts[parts.notebook == stem]
        assert totals.loc[stem, "images trained"] == part["images trained"].sum()
        assert totals.loc[stem, "minutes here"] == pytest.approx(part["minutes here"].sum()
                                                                 + cost.NOTEBOOK_START_S / 60)
    assert (parts["minutes here"] > 0).all() and (parts["minutes T4"] > 0).all()
    assert np.isfinite(table.drop(columns=["what", "notebook", "model", "timed"]).to_numpy(float)[:, 1:]).all()
    lines = cost.summary(table)
    assert lines[-1].startswith("all: ") and len(lines) == len(eff) + 1


@pytest.mark.slow
def test_the_kaggle_profile_fits_one_gpu_session_by_the_estimate(real_data):
    eff = _effective("kaggle")
    table = cost.estimate(eff, here=False)
    total = table[table.what == "profile total"].iloc[0]
    # a Kaggle session ends after 12 hours; the profile is meant for at most about 9 on either class
    assert total["minutes T4"] / 60 <= 9 and total["minutes P100"] / 60 <= 9
    parts = table[~table.what.isin(["notebook total", "profile total"])]
    assert parts["minutes here"].isna().all() and np.isnan(total["minutes here"])  # nothing timed on this machine
    paper = cost.estimate(_effective("paper", ["05"]), here=False)
    assert paper[paper.what == "profile total"].iloc[0]["minutes T4"] / 60 > 1000  # why the paper profile is not it


def test_minutes_here_are_images_over_timed_speeds_plus_each_trainings_fixed_cost(monkeypatch):
    """Each training costs its images at the timed speeds plus its build seconds and FIT_OVERHEAD_S (what a real fit
    spends outside its steady steps); the GAN its steps at the timed seconds per step."""
    eff = _effective("smoke", ["02"])
    fixed = {"train_ips": 100.0, "infer_ips": 400.0, "setup_s": 10.0, "macs": 1e8, "timed_batch": 8, "policy": "x"}
    monkeypatch.setattr(cost, "speed", lambda t, here=True: dict(fixed))
    monkeypatch.setattr(cost, "_gan_step_seconds", lambda *a: 0.5)
    table = cost.estimate(eff).set_index("what")
    trainings, gan = cost.workload("02_gan_balancing", eff["02_gan_balancing"], eff)
    for t in trainings:
        want = (t.train_images() / 100 + t.infer_images() / 400 + (10 + cost.FIT_OVERHEAD_S) * t.count) / 60
        assert table.loc[t.label, "minutes here"] == pytest.approx(want)
    from fer_utils.gan import GANConfig

    steps = GANConfig.from_dict(gan["config"]).steps
    assert table.loc["GAN", "minutes here"] == pytest.approx(steps * 0.5 / 60)
