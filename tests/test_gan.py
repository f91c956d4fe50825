"""GAN balancing (issue 8): networks, train_step, resume, plans, the balanced file, quality measures, McNemar."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from fer_utils import data as D
from fer_utils.experiments import balancing
from fer_utils.gan import quality as Q
from fer_utils.stats import mcnemar_test

TINY = {"steps": 4, "batch_size": 8, "g_channels": [8, 8, 8], "d_channels": [8, 8, 8, 8], "embed_dim": 4,
        "latent_dim": 16, "checkpoint_every": 2, "samples_per_class": 2}


@pytest.fixture(scope="module")
def faces():
    ds = D.load_synthetic(6, seed=3)
    return ds.images, ds.labels, ds.class_names


# ----------------------------------------------------------------------------- networks and the step

def test_generator_shapes_and_label_conditioning():
    from fer_utils.gan.networks import build_discriminator, build_generator

    g = build_generator(latent_dim=16, num_classes=7, channels=(8, 8, 8), embed_dim=4)
    d = build_discriminator(num_classes=7, channels=(8, 8, 8, 8))
    noise = np.random.default_rng(0).standard_normal((2, 16)).astype("float32")
    same_noise = np.repeat(noise[:1], 2, axis=0)
    out = np.asarray(g([same_noise, np.array([0, 5])], training=False))
    assert out.shape == (2, 48, 48, 1) and out.min() >= -1 and out.max() <= 1
    assert np.abs(out[0] - out[1]).max() > 1e-4  # another label, another image from the same noise
    assert np.asarray(d([out, np.array([0, 5])], training=False)).shape == (2, 1)
    with pytest.raises(ValueError, match="image_size 50 must be divisible"):
        build_generator(image_size=50)


def test_translate_moves_pixels_and_keeps_gradients():
    import tensorflow as tf

    from fer_utils.gan.cgan import translate

    x = tf.reshape(tf.range(16, dtype=tf.float32), (1, 4, 4, 1))
    out = translate(tf.concat([x, x], 0), tf.constant([[1, 0], [0, -1]]), fill=-1.0).numpy()[..., 0]
    assert (out[0, 0] == -1).all() and (out[0, 1:] == x.numpy()[0, :3, :, 0]).all()  # down by one row
    assert (out[1, :, -1] == -1).all() and (out[1, :, :3] == x.numpy()[0, :, 1:, 0]).all()  # left by one column
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(translate(x, tf.constant([[1, 1]])))
    assert tape.gradient(y, x).numpy().sum() == 9  # the 3x3 pixels that stay in view


def test_a_few_steps_change_the_weights_and_keep_losses_finite():
    from fer_utils.gan.training import GANConfig, build_gan

    gan = build_gan(GANConfig.from_dict(TINY), 7, 48, seed=1)
    before = [w.copy() for w in gan.generator.get_weights()]
    ema_before = [w.copy() for w in gan.ema_generator.get_weights()]
    x = np.random.default_rng(0).uniform(-1, 1, (8, 48, 48, 1)).astype("float32")
    for _ in range(3):
        logs = gan.train_step((x, np.arange(8) % 7))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, gan.generator.get_weights()))
    assert any(np.abs(a - b).max() > 0 for a, b in zip(ema_before, gan.ema_generator.get_weights()))


def test_ema_warm_up_follows_the_generator_early():
    from fer_utils.gan.training import GANConfig, build_gan

    x = np.random.default_rng(0).uniform(-1, 1, (8, 48, 48, 1)).astype("float32")
    gaps = {}
    for warmup in (True, False):
        gan = build_gan(GANConfig.from_dict({**TINY, "ema_warmup": warmup}), 7, 48, seed=1)
        gan.train_step((x, np.arange(8) % 7))
        kernel = gan.generator.get_layer("project").kernel.numpy()
        gaps[warmup] = np.abs(gan.ema_generator.get_layer("project").kernel.numpy() - kernel).max()
    # Step 1: decay min(0.999, 2/11) with warm-up, 0.999 without: the average sits ~0.18 vs ~0.999 of the step away.
    assert gaps[True] < 0.3 * gaps[False]


def test_gan_config_refuses_typos_and_bad_values():
    from fer_utils.gan.training import GANConfig

    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepz'\]"):
        GANConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="gan.loss='wasserstein'"):
        GANConfig.from_dict({"loss": "wasserstein"})
    with pytest.raises(ValueError, match="gan.batch_size must be a positive integer"):
        GANConfig.from_dict({"batch_size": 0})


def test_balanced_batches_are_uniform_over_classes_and_reproducible():
    from fer_utils.gan.training import balanced_indices

    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    idx = balanced_indices(labels, 4, 3000, seed=1, chunk=0)
    counts = np.bincount(labels[idx], minlength=4)
    assert counts[3] == 0 and all(900 < c < 1100 for c in counts[:3])  # class 3 has no rows; the rest ~1/3 each
    assert np.array_equal(idx, balanced_indices(labels, 4, 3000, seed=1, chunk=0))
    assert not np.array_equal(idx, balanced_indices(labels, 4, 3000, seed=1, chunk=1))


# ----------------------------------------------------------------------------- runs: resume, reuse, refuse

@pytest.mark.slow
def test_interrupted_gan_resumes_at_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path, faces):
    from fer_utils.gan import training as T

    images, labels, names = faces
    whole = T.train_gan(images, labels, names, tmp_path / "whole", config=TINY, seed=5)
    assert whole["status"] == "trained" and whole["steps"] == 4
    part = T.train_gan(images, labels, names, tmp_path / "cut", config=TINY, seed=5, stop_after=2)
    assert part["status"] == "stopped" and T.gan_state(tmp_path / "cut") == "interrupted"
    rest = T.train_gan(images, labels, names, tmp_path / "cut", config=TINY, seed=5)
    assert rest["status"] == "resumed"
    losses = T.load_losses(tmp_path / "cut")
    assert losses["step"].tolist() == [1, 2, 3, 4]
    assert np.allclose(losses[["d_loss", "g_loss"]], T.load_losses(tmp_path / "whole")[["d_loss", "g_loss"]],
                       atol=1e-5)
    a, b = T.load_generator(tmp_path / "whole"), T.load_generator(tmp_path / "cut")
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-5)
    assert sorted(T.sample_history(tmp_path / "cut")) == [0, 2, 4]
    again = T.train_gan(images, labels, names, tmp_path / "cut", config=TINY, seed=5)
    assert again["status"] == "reused" and again["generator_sha256"] == rest["generator_sha256"]


@pytest.mark.slow
def test_another_recipe_is_refused_and_overwrite_moves_the_old_run_aside(tmp_path, faces):
    from fer_utils.gan import training as T

    images, labels, names = faces
    T.train_gan(images, labels, names, tmp_path, config=TINY, seed=5, stop_after=2)
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        T.train_gan(images, labels, names, tmp_path, config={**TINY, "loss": "hinge"}, seed=5)
    out = T.train_gan(images, labels, names, tmp_path, config={**TINY, "steps": 2}, seed=5, overwrite=True)
    assert out["status"] == "trained"
    aside = list(tmp_path.glob("replaced-*"))
    assert len(aside) == 1 and (aside[0] / "checkpoint" / "state.npz").exists()


@pytest.mark.slow
def test_a_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, faces):
    from fer_utils.gan import training as T

    images, labels, names = faces
    T.train_gan(images, labels, names, tmp_path, config={**TINY, "steps": 6}, seed=5, stop_after=4)
    (tmp_path / "checkpoint" / "state.npz").write_bytes(b"truncated")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = T.train_gan(images, labels, names, tmp_path, config={**TINY, "steps": 6}, seed=5)
    assert out["status"] == "resumed" and any("unreadable GAN checkpoint" in str(w.message) for w in caught)
    assert T.load_losses(tmp_path)["step"].tolist() == [1, 2, 3, 4, 5, 6]  # steps 3-4 re-run from step 2


# ----------------------------------------------------------------------------- plans and the balanced file

def test_plans_give_exact_counts():
    names = D.FER2013_CLASSES
    real = dict(zip(names, [3995, 436, 4097, 7215, 4830, 3171, 4965]))  # FER-2013 Training
    study = D.plan_counts("study_a_table3", names, real)
    assert study == {"angry": 1675, "disgust": 5234, "fear": 1573, "happy": 0, "sad": 840, "surprise": 2499,
                     "neutral": 705}
    assert sum(real.values()) + sum(study.values()) == 41235
    to_max = D.plan_counts("to_max", names, real)
    assert {c: real[c] + to_max[c] for c in names} == {c: 7215 for c in names}
    ratio = D.plan_counts("ratio:0.5", names, real)
    assert ratio["disgust"] == 218 and ratio["happy"] == 0 and ratio["surprise"] == 1585
    assert D.plan_counts({"ratio": 0.5}, names, real) == ratio
    assert D.plan_counts({"Disgust": 12}, names, real) == {**{c: 0 for c in names}, "disgust": 12}
    with pytest.raises(D.DataError, match="unknown class 'Contempt'"):
        D.plan_counts({"Contempt": 3}, names, real)
    with pytest.raises(D.DataError, match="unknown balancing plan 'balanced'"):
        D.plan_counts("balanced", names, real)
    with pytest.raises(D.DataError, match="must be an integer >= 0"):
        D.plan_counts({"disgust": -1}, names, real)


def _small_real():
    """A small 'real' dataset (the synthetic faces with the synthetic flag off) with a validation split."""
    ds = D.load_synthetic(8, seed=1)
    ds = ds.replace(synthetic=np.zeros(len(ds), bool), name="real-like")
    return D.train_val_split(ds, 0.25, seed=0)


def test_balanced_file_round_trip_keeps_validation_and_test_untouched(tmp_path):
    ds = _small_real()
    gen = np.full((5, 48, 48), 7, np.uint8)
    path = D.write_balanced(tmp_path / D.BALANCED_FILE, ds, gen, np.array([1, 1, 1, 2, 2]), generator_sha256="ab" * 32,
                            plan={"disgust": 3, "fear": 2})
    with np.load(path) as z:
        assert z["is_synthetic"].sum() == 5 and len(z["is_synthetic"]) == (ds.splits == "Training").sum() + 5
        assert str(z["generator_sha256"]) == "ab" * 32
    out = D.with_balanced_training(ds, path)
    assert out.generated.sum() == 5 and set(out.splits[out.generated]) == {"Training"}
    for split in ("Validation", "PublicTest", "PrivateTest"):
        assert np.array_equal(out.split(split).images, ds.split(split).images)
    assert D.train_val_split(out.subset(out.splits != "Validation"), 0.5, seed=0).generated.sum() == 5
    moved = D.train_val_split(out.subset(out.splits != "Validation"), 0.5, seed=0)
    assert not (moved.generated & (moved.splits == "Validation")).any()  # GAN rows never validate
    assert balancing.with_balanced(ds, "", tmp_path) is ds


def test_generated_rows_outside_training_are_an_error(tmp_path):
    ds = _small_real()
    out = D.with_balanced_training(ds, D.write_balanced(tmp_path / "b.npz", ds, np.zeros((2, 48, 48), np.uint8),
                                                        np.array([0, 1]), generator_sha256="x", plan="explicit"))
    splits = out.splits.copy()
    splits[np.flatnonzero(out.generated)[0]] = "PrivateTest"
    with pytest.raises(D.DataError, match=r"1 GAN-generated row\(s\) outside Training .*gan:x:0.* in PrivateTest"):
        out.replace(splits=splits)
    with pytest.raises(D.DataError, match="outside Training"):
        D.FERDataset(images=np.zeros((1, 4, 4), np.uint8), labels=[0], class_names=("a", "b"), splits=["Validation"],
                     source_ids=["gan:1"], generated=[True])


def test_a_balanced_file_for_other_data_or_a_broken_file_is_refused(tmp_path):
    ds = _small_real()
    path = D.write_balanced(tmp_path / "b.npz", ds, np.zeros((1, 48, 48), np.uint8), np.array([0]),
                            generator_sha256="x", plan="explicit")
    other = D.load_synthetic(8, seed=1)
    other = D.train_val_split(other.replace(synthetic=np.zeros(len(other), bool)), 0.25, seed=1)
    with pytest.raises(D.DataError, match="b.npz: its real rows are not this dataset's Training rows"):
        D.with_balanced_training(other, path)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(D.DataError, match="broken.npz: cannot read"):
        D.with_balanced_training(ds, tmp_path / "broken.npz")
    np.savez(tmp_path / "partial.npz", images=np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(D.DataError, match=r"partial.npz: not a balanced training file, missing \['labels'"):
        D.read_balanced(tmp_path / "partial.npz")
    with pytest.raises(D.DataError, match="no balanced training file"):
        balancing.with_balanced(ds, "02", tmp_path / "03_baselines", tmp_path)


# ----------------------------------------------------------------------------- quality measures

def test_kid_is_about_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
    same, se = Q.kid(a, b, subsets=10, subset_size=200)
    assert abs(same) < 3 * se + 1e-3
    shifted = [Q.kid(a, b + s, subsets=10, subset_size=200)[0] for s in (0.5, 1.0)]
    assert shifted[0] > same + 10 * se and shifted[1] > shifted[0]
    with pytest.raises(ValueError, match="same D"):
        Q.kid(a, b[:, :3])


def test_kid_table_has_a_row_per_class_and_the_floor():
    rng = np.random.default_rng(1)
    feats, labels = rng.standard_normal((140, 8)), np.arange(140) % 7
    table = Q.kid_table(feats + 2, labels, feats, labels, rng.standard_normal((140, 8)), labels, D.FER2013_CLASSES,
                        subsets=3, subset_size=10)
    assert table["class"].tolist() == ["all", *D.FER2013_CLASSES]
    assert (table["KID"] > table["floor"]).all()
    assert {"KID", "standard error", "floor"} <= set(table.columns)


def test_copying_check_flags_exact_copies_and_not_fresh_samples():
    rng = np.random.default_rng(2)
    train, held = rng.standard_normal((400, 32)), rng.standard_normal((200, 32))
    copies = Q.copying_check(train[:100], train, held)
    assert copies["copying"] and copies["exact copies"] == 100 and copies["z"] < -5
    fresh = Q.copying_check(rng.standard_normal((100, 32)), train, held)
    assert not fresh["copying"] and fresh["exact copies"] == 0
    assert copies["near copies"] == 1.0 and fresh["near copies"] < 0.05


def test_class_agreement_counts_own_class_predictions():
    prob = np.eye(3)[[0, 0, 1, 2, 2, 1]]
    table = Q.class_agreement(prob, np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"]).set_index("class")
    assert table.loc["a", "classified as its class"] == 1.0 and table.loc["b", "classified as its class"] == 0.5
    assert table.loc["all", "classified as its class"] == pytest.approx(4 / 6)


def test_mcnemar_exact_and_chi_square():
    y = np.zeros(100, int)
    a = np.r_[np.zeros(90), np.ones(10)].astype(int)       # 90 right
    b = np.r_[np.ones(8), np.zeros(82), np.zeros(10)].astype(int)  # right on a's 10 errors, wrong on 8 of a's rights
    r = mcnemar_test(y, a, b)
    assert (r["a right b wrong"], r["a wrong b right"]) == (8, 10) and r["method"] == "exact binomial"
    assert r["p"] == pytest.approx(0.8145, abs=1e-3)  # binomial(18, 0.5), two-sided
    big = mcnemar_test(np.zeros(200, int), np.r_[np.zeros(150), np.ones(50)], np.r_[np.ones(20), np.zeros(180)])
    assert big["method"].startswith("chi-square") and big["statistic"] == pytest.approx((abs(20 - 50) - 1) ** 2 / 70)
    with pytest.raises(ValueError, match="same length"):
        mcnemar_test([0, 1], [0], [1, 1])


def test_effect_table_reports_dedup_splits_and_mcnemar(tmp_path):
    from fer_utils import runs

    ds = D.load_synthetic(4, seed=0)
    ds = ds.replace(synthetic=np.zeros(len(ds), bool))
    test_rows = np.flatnonzero(ds.splits == "PrivateTest")
    images = ds.images.copy()
    images[test_rows[0]] = images[np.flatnonzero(ds.splits == "Training")[0]]  # a test copy of a training image
    ds = ds.replace(images=images)
    rows = []
    for cond, shift in ((balancing.REAL_ONLY, 0), ("to_max", 1)):
        folder = tmp_path / cond.replace(" ", "_")
        folder.mkdir()
        te = ds.subset(ds.splits != "Training")
        prob = np.eye(7)[(te.labels + shift * (te.splits == "PublicTest")) % 7]  # to_max: every PublicTest row wrong
        runs.save_predictions(folder, te.labels, prob, source_ids=te.source_ids.astype(str), split=te.splits,
                              class_names=list(ds.class_names))
        rows.append({"condition": cond, "seed": 0, "run": str(folder)})
    table = balancing.effect_table(pd.DataFrame(rows), ds)
    per = table["per_run"].set_index(["condition", "split"])
    n_private, n_public = (ds.splits == "PrivateTest").sum(), (ds.splits == "PublicTest").sum()
    assert per.loc[(balancing.REAL_ONLY, "PrivateTest"), "n"] == n_private
    assert per.loc[(balancing.REAL_ONLY, "PrivateTest (dedup)"), "n"] == n_private - 1  # the copy is dropped
    assert per.loc[(balancing.REAL_ONLY, "PrivateTest"), "accuracy"] == 1.0
    assert per.loc[("to_max", "PublicTest"), "accuracy"] == 0.0 and per.loc[("to_max", "PrivateTest"), "accuracy"] == 1
    m = table["mcnemar"].set_index("split")
    assert m.loc["PublicTest", "real only right, balanced wrong"] == n_public
    assert m.loc["PublicTest", "p"] == pytest.approx(2 * 0.5 ** n_public) and m.loc["PrivateTest", "p"] == 1.0
    assert json.dumps(table["per_run"].to_dict("records"))  # serializable for metrics.json
