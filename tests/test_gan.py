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
    logit, class_logits = d([out, np.array([0, 5])], training=False)
    assert np.asarray(logit).shape == (2, 1) and np.asarray(class_logits).shape == (2, 7)
    # class-conditional batch norm: every block has its own per-class scale (starting at 1) and offset (at 0)
    for block in ("project", "up1", "up2"):
        assert np.all(g.get_layer(f"{block}_gamma").embeddings.numpy() == 1)
        assert np.all(g.get_layer(f"{block}_beta").embeddings.numpy() == 0)
    assert not any("batch_normalization" in layer.name or "dropout" in layer.name for layer in d.layers)
    with pytest.raises(ValueError, match="image_size 50 must be divisible"):
        build_generator(image_size=50)


def test_cutout_blanks_a_square_of_the_given_side():
    import tensorflow as tf

    from fer_utils.gan.cgan import cutout

    x = tf.ones((2, 8, 8, 1))
    out = cutout(x, tf.constant([[4, 4], [0, 0]]), 4).numpy()[..., 0]
    assert (out[0] == 0).sum() == 16 and (out[0, 2:6, 2:6] == 0).all()
    assert (out[1] == 0).sum() == 4 and (out[1, :2, :2] == 0).all()  # clipped at the corner


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
    for _ in range(2):
        logs = gan.train_step((x, np.arange(8) % 7))
    assert float(logs["r1"]) == 0.0
    logs = gan.train_step((x, np.arange(8) % 7), r1=True)
    assert all(np.isfinite(float(v)) for v in logs.values()) and float(logs["r1"]) > 0
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, gan.generator.get_weights()))
    assert any(np.abs(a - b).max() > 0 for a, b in zip(ema_before, gan.ema_generator.get_weights()))


def test_ema_batch_norm_statistics_are_recomputed_for_the_average():
    from fer_utils.gan.training import GANConfig, build_gan

    gan = build_gan(GANConfig.from_dict(TINY), 7, 48, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 48, 48, 1)).astype("float32")
    gan.train_step((x, np.arange(8) % 7))
    bn = gan.ema_generator.get_layer("up1_bn")
    assert bn.momentum == 0.99  # untouched by the average: only trainable weights are averaged
    noise = np.random.default_rng(1).standard_normal((14, 16)).astype("float32")
    labels = np.arange(14) % 7
    gan.refresh_ema_statistics(noise, labels)
    assert bn.momentum == 0.99  # restored
    # With the statistics of this batch, inference on it equals the batch-statistics (training-mode) output.
    infer = np.asarray(gan.ema_generator([noise, labels], training=False))
    train = np.asarray(gan.ema_generator([noise, labels], training=True))
    np.testing.assert_allclose(infer, train, atol=2e-3)


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
    with pytest.raises(ValueError, match=r"gan.augment: unknown \['colour'\]"):
        GANConfig.from_dict({"augment": ["colour", "cutout"]})
    with pytest.raises(ValueError, match="gan.beta_2 must be in"):
        GANConfig.from_dict({"beta_2": 1.0})


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
def test_another_recipe_is_refused_and_overwrite_moves_the_old_run_aside(tmp_path, faces, request):
    from fer_utils.gan import training as T

    images, labels, names = faces
    T.train_gan(images, labels, names, tmp_path, config=TINY, seed=5, stop_after=2)
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        T.train_gan(images, labels, names, tmp_path, config={**TINY, "loss": "hinge"}, seed=5)
    out = T.train_gan(images, labels, names, tmp_path, config={**TINY, "steps": 2}, seed=5, overwrite=True)
    assert out["status"] == "trained"
    aside = list(tmp_path.glob("replaced-*"))
    assert len(aside) == 1 and (aside[0] / "checkpoint" / "state.npz").exists()
    request.getfixturevalue("frozen_clock")  # from here on, one stamp for every replacement
    for steps in (1, 2):  # replaced twice within the same second: every archive kept
        T.train_gan(images, labels, names, tmp_path, config={**TINY, "steps": steps}, seed=5, overwrite=True)
    assert len(list(tmp_path.glob("replaced-*"))) == 3 and (aside[0] / "checkpoint" / "state.npz").exists()


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
    same, se = Q.kid(a, b, bootstrap=50)
    assert abs(same) < 2 * se
    shifted = [Q.kid(a, b + s, bootstrap=50)[0] for s in (0.5, 1.0)]
    assert shifted[0] > same + 10 * se and shifted[1] > shifted[0]
    with pytest.raises(ValueError, match="same D"):
        Q.kid(a, b[:, :3])


def test_kid_standard_error_reflects_data_draws():
    """Disgust-sized pools (500 generated, 381 real): subset standard errors were 7.8x too small and a perfect
    generator showed |KID| > 2 SE in 82% of draws; the bootstrap over the pools must not."""
    rng = np.random.default_rng(3)
    same, shifted = [], []
    for i in range(12):
        same.append(Q.kid(rng.standard_normal((500, 16)), rng.standard_normal((381, 16)), bootstrap=60, seed=i))
        shifted.append(Q.kid(rng.standard_normal((500, 16)) + 0.3, rng.standard_normal((381, 16)), bootstrap=60,
                             seed=i))
    assert np.mean([abs(v) > 2 * se for v, se in same]) <= 0.1
    spread, reported = np.std([v for v, _ in shifted]), np.mean([se for _, se in shifted])
    assert 0.6 < reported / spread < 1.7  # right where the distributions differ


def _clusters(rng, labels, dim=8, scale=3.0):
    centres = np.random.default_rng(42).standard_normal((7, dim)) * scale
    return centres[labels] + rng.standard_normal((len(labels), dim))


def test_kid_table_is_fair_to_a_perfect_class_balanced_generator():
    """Real classes imbalanced (like FER-2013), generated balanced, each class drawn from its real distribution:
    the class-mixed 'all' row is at the floor and every class is closer to its own class than to the others."""
    rng = np.random.default_rng(1)
    mix = np.array([400, 40, 400, 800, 500, 300, 500])
    train_l, held_l = np.repeat(np.arange(7), mix), np.repeat(np.arange(7), mix // 2)
    gen_l = np.repeat(np.arange(7), 200)
    table = Q.kid_table(_clusters(rng, gen_l), gen_l, _clusters(rng, train_l), train_l, _clusters(rng, held_l),
                        held_l, D.FER2013_CLASSES, bootstrap=30, max_rows=800)
    assert table["class"].tolist() == ["all", *D.FER2013_CLASSES]
    row = table.iloc[0]
    assert abs(row["kid"] - row["floor"]) < 2 * (row["kid_se"] + row["floor_se"])
    assert table["kid_below_between"].iloc[1:].all()
    # the same generator drawn without the real mix would be far off: the 'all' row must not be that
    unfair, _ = Q.kid(_clusters(rng, gen_l), _clusters(rng, train_l), bootstrap=0)
    assert unfair > row["kid"] + 5 * row["kid_se"]
    bad = Q.kid_table(_clusters(rng, (gen_l + 1) % 7), gen_l, _clusters(rng, train_l), train_l,
                      _clusters(rng, held_l), held_l, D.FER2013_CLASSES, bootstrap=0, max_rows=800)
    # a generator that swaps classes fails the bar (6 of 7 classes below between_class) by far
    assert bad["kid_below_between"].iloc[1:].astype(bool).sum() <= 1


def test_gan_test_is_recall_per_class_for_generated_and_real_faces():
    prob = np.eye(3)[[0, 0, 1, 2, 2, 1]]
    table = Q.gan_test(prob, np.array([0, 0, 1, 1, 2, 2]), np.eye(3)[[0, 1, 2]], np.array([0, 1, 1]),
                       ["a", "b", "c"]).set_index("class")
    assert table.loc["a", "gan_test"] == 1.0 and table.loc["b", "gan_test"] == 0.5
    assert table.loc["b", "real_test"] == 0.5 and np.isnan(table.loc["c", "real_test"])
    assert table.loc["mean", "gan_test"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_meehan_zu_with_its_continuity_correction_and_cells():
    # every generated face closer than every held-out one: U = 0, z = (0 - (2 * 2 / 2 - 0.5)) / sqrt(2 * 2 * 5 / 12)
    r = Q.meehan_zu([1.0, 2.0], [3.0, 4.0])
    assert r["z_u"] == pytest.approx(-1.5 / np.sqrt(20 / 12)) and r["p"] < 0.5
    rng = np.random.default_rng(2)
    train, held = rng.standard_normal((600, 16)), rng.standard_normal((300, 16))
    fresh, copies = rng.standard_normal((300, 16)), train[:300] + 0.01 * rng.standard_normal((300, 16))
    gd, _ = Q.nearest_distances(fresh, train)
    cd, _ = Q.nearest_distances(copies, train)
    hd, _ = Q.nearest_distances(held, train)
    assert abs(Q.meehan_zu(gd, hd)["z_u"]) < 3 and Q.meehan_zu(cd, hd)["z_u"] < -10
    cells_fresh = Q.meehan_cells(fresh, train, held, cells=4, seed=0)
    cells_copies = Q.meehan_cells(copies, train, held, cells=4, seed=0)
    assert cells_fresh["cells_used"] >= 2 and abs(cells_fresh["c_t"]) < 3 and cells_copies["c_t"] < -5
    assert Q.exact_copies(train[:5], train) == 5 and Q.exact_copies(fresh[:5], train) == 0


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
    for cond, shift in ((balancing.REAL_ONLY, 0), (balancing.OVERSAMPLED, 0), (balancing.WITH_GAN, 1)):
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
    gan = balancing.WITH_GAN
    assert per.loc[(gan, "PublicTest"), "accuracy"] == 0.0 and per.loc[(gan, "PrivateTest"), "accuracy"] == 1
    m = table["mcnemar"].set_index(["split", "condition", "against"])
    # real + GAN is tested against real only and against the oversampled control; the control against real only
    assert set(m.loc["PublicTest"].index) == {(gan, balancing.REAL_ONLY), (gan, balancing.OVERSAMPLED),
                                              (balancing.OVERSAMPLED, balancing.REAL_ONLY)}
    row = m.loc[("PublicTest", gan, balancing.OVERSAMPLED)]
    assert row["reference right, condition wrong"] == n_public and row["p"] == pytest.approx(2 * 0.5 ** n_public)
    # Holm over the split's three rows: the smallest p times 3
    assert row["p (Holm)"] == pytest.approx(min(1.0, 3 * 2 * 0.5 ** n_public)) and bool(row["differs (Holm)"])
    assert m.loc[("PrivateTest", gan, balancing.REAL_ONLY), "p"] == 1.0
    assert json.dumps(table["per_run"].to_dict("records"))  # serializable for metrics.json


def test_oversampled_control_repeats_real_training_rows_to_the_plan_counts():
    ds = D.load_synthetic(6, seed=0)
    counts = {c: 0 for c in ds.class_names}
    counts.update({ds.class_names[1]: 9, ds.class_names[2]: 4})
    over = D.oversampled(ds, counts, seed=3)
    extra = over.subset(np.arange(len(ds), len(over)))
    assert len(extra) == 13 and (extra.splits == "Training").all() and not extra.generated.any()
    assert np.bincount(extra.labels, minlength=7).tolist() == [0, 9, 4, 0, 0, 0, 0]
    train = ds.subset((ds.splits == "Training") & (ds.labels == 1))
    for img, sid in zip(extra.images[extra.labels == 1], extra.source_ids[extra.labels == 1]):
        k = list(train.source_ids).index(sid)  # a copy of a real Training row of its class, with its source id
        assert np.array_equal(img, train.images[k])
    assert np.array_equal(over.images[:len(ds)], ds.images)  # the original rows untouched
    again = D.oversampled(ds, counts, seed=3)
    assert again.checksum == over.checksum and D.oversampled(ds, counts, seed=4).checksum != over.checksum
    # families count a source id once: the test rows leaked are the same as without the repeats
    assert np.array_equal(D.leaked_rows(over)[:len(ds)], D.leaked_rows(ds))
    fam = D.families(over)
    originals = [list(ds.source_ids).index(sid) for sid in extra.source_ids]
    assert np.array_equal(fam[len(ds):], fam[originals])  # a repeat is in its original's family
    assert len(D.distinct_rows(over)) == len(D.distinct_rows(ds))
    conds = balancing.effect_conditions(ds, counts, (), None, seed=3)
    assert list(conds) == [balancing.REAL_ONLY, balancing.OVERSAMPLED] and conds[balancing.OVERSAMPLED].checksum == \
        over.checksum
    with pytest.raises(D.DataError, match="class 'happy'|has no real Training row"):
        D.oversampled(ds.subset(ds.labels != 3), {ds.class_names[3]: 2}, seed=0)


def test_the_committed_cpu_run_of_notebook_02_states_what_its_files_hold():
    """``benchmarks/results/gan02_cpu`` (docs/results.md's GAN section) is notebook 02's ``cpu`` run without its models:
    its headline is what the package computes from the committed tables, and its GAN seconds are its losses' sum."""
    from pathlib import Path

    from fer_utils.experiments import gan_quality

    ref = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "gan02_cpu"
    headline = json.loads((ref / "metrics.json").read_text())["headline"]
    cas = pd.read_csv(ref / "cas.csv")
    cas.attrs["ratio"] = gan_quality.cas_ratio(cas, "PrivateTest")
    result = {"judge": headline["judge"], "quality": pd.read_csv(ref / "quality.csv"),
              "kid": pd.read_csv(ref / "kid.csv"), "copying": pd.read_csv(ref / "copying.csv")}
    for key, value in gan_quality.headline(result, cas).items():
        assert headline[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    losses = pd.read_csv(ref / "gan_losses.csv")
    assert len(losses) == headline["gan_steps"] == 6000
    assert losses["seconds"].sum() == pytest.approx(headline["gan_seconds"], abs=1.0)
    summary = pd.read_csv(ref / "effect_summary.csv").set_index(["split", "condition"])
    for condition in ("real_only", "real_oversampled", "real_gan"):
        key = f"PrivateTest accuracy {condition}"
        assert summary.loc[("PrivateTest", condition), "accuracy mean"] == pytest.approx(headline[key], abs=1e-12)
        epochs = [pd.read_csv(f) for f in sorted(ref.glob(f"effect/{condition}/seed*/history.csv"))]
        assert len(epochs) == 3 and all(len(h) == 3 for h in epochs)  # three seeds of three epochs each
