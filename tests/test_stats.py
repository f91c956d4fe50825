"""Statistics (notebook 06): the 5x2cv t and F tests against the published formulas worked by hand, McNemar,
Holm, bootstrap intervals, the 5x2cv splits, and a 5x2cv that resumes without retraining finished folds."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from fer_utils import stats

A = np.array([[0.70, 0.72], [0.69, 0.71], [0.73, 0.70], [0.68, 0.70], [0.71, 0.72]])
B = np.array([[0.66, 0.70], [0.68, 0.69], [0.70, 0.69], [0.67, 0.66], [0.70, 0.69]])


def test_5x2cv_t_and_f_equal_the_published_formulas_worked_by_hand():
    d = A - B  # [[.04,.02],[.01,.02],[.03,.01],[.01,.04],[.01,.03]]
    # s_i^2 = (d_i1 - mean_i)^2 + (d_i2 - mean_i)^2 = (d_i1 - d_i2)^2 / 2
    s2 = np.array([0.02 ** 2, 0.01 ** 2, 0.02 ** 2, 0.03 ** 2, 0.02 ** 2]) / 2
    t_hand = 0.04 / np.sqrt(s2.mean())
    t, p = stats.paired_ttest_5x2cv(A, B)
    assert t == pytest.approx(t_hand) and t == pytest.approx(0.04 / np.sqrt(0.00022))
    assert p == pytest.approx(2 * st.t.sf(t_hand, 5))
    f_hand = (d ** 2).sum() / (2 * s2.sum())
    f, pf = stats.combined_ftest_5x2cv(A, B)
    assert f == pytest.approx(f_hand) and pf == pytest.approx(st.f.sf(f_hand, 10, 5))
    # Antisymmetric in A and B; F is not.
    assert stats.paired_ttest_5x2cv(B, A)[0] == pytest.approx(-t)
    assert stats.combined_ftest_5x2cv(B, A)[0] == pytest.approx(f)


def test_a_table_built_for_t_equal_to_two():
    # Every replication's differences are (x, x - 2c) with c = 0.01: s_i^2 = 2c^2, sqrt(mean s^2) = c*sqrt(2);
    # d_11 = 2 * c * sqrt(2) gives t = 2 exactly.
    c = 0.01
    first = 2 * c * np.sqrt(2)
    d = np.array([[first, first - 2 * c]] + [[0.05, 0.05 - 2 * c]] * 4)
    t, p = stats.paired_ttest_5x2cv(0.5 + d, np.full((5, 2), 0.5))
    assert t == pytest.approx(2.0) and p == pytest.approx(2 * st.t.sf(2.0, 5))


def test_identical_models_and_bad_tables():
    assert stats.paired_ttest_5x2cv(A, A)[1] == 1.0 and np.isnan(stats.paired_ttest_5x2cv(A, A)[0])
    assert stats.combined_ftest_5x2cv(A, A)[1] == 1.0 and np.isnan(stats.combined_ftest_5x2cv(A, A)[0])
    half = np.full((5, 2), 0.5)
    assert stats.paired_ttest_5x2cv(half + 0.25, half) == (np.inf, 0.0)  # equal differences: no variance
    with pytest.raises(ValueError, match=r"scores_a: expected a \(5, 2\) table .* got shape \(2, 5\)"):
        stats.paired_ttest_5x2cv(A.T, B)
    bad = B.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"scores_b: scores must be finite numbers; non-finite at .*\[\(2, 1\)\]"):
        stats.combined_ftest_5x2cv(A, bad)


def test_replication_ttest_is_the_four_df_paired_t_and_reproduces_study_a():
    t, p = stats.replication_ttest(A, B)
    ref = st.ttest_rel(A.mean(axis=1), B.mean(axis=1))
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    # Study A, Table XII: t = -4.268 -> p = 0.0130 with 4 df (published 0.013), 0.0080 with 5.
    assert stats.t_pvalue(-4.268, 4) == pytest.approx(0.0130, abs=5e-5)
    assert stats.t_pvalue(-4.268, 5) == pytest.approx(0.0080, abs=5e-5)
    from fer_utils.experiments.statistics import study_a_pvalues

    fits = study_a_pvalues().fits
    assert (fits == "t, 4 df").sum() == 10 and (fits == "neither").sum() == 2


def test_mcnemar_matches_statsmodels_and_the_exact_binomial():
    from statsmodels.stats.contingency_tables import mcnemar

    y = np.zeros(100, dtype=int)
    # a right / b wrong on 15 samples, a wrong / b right on 5, both right on 70, both wrong on 10.
    a = np.r_[np.zeros(15), np.ones(5), np.zeros(70), np.ones(10)].astype(int)
    b = np.r_[np.ones(15), np.zeros(5), np.zeros(70), np.ones(10)].astype(int)
    r = stats.mcnemar_test(y, a, b)
    assert (r["a right b wrong"], r["a wrong b right"], r["method"]) == (15, 5, "exact binomial")
    assert r["p"] == pytest.approx(st.binomtest(5, 20, 0.5).pvalue)
    assert r["p"] == pytest.approx(mcnemar([[70, 15], [5, 10]], exact=True).pvalue)
    # 40 discordant samples: chi-square with continuity correction, (|30 - 10| - 1)^2 / 40.
    a2 = np.r_[np.zeros(30), np.ones(10), np.zeros(60)].astype(int)
    b2 = np.r_[np.ones(30), np.zeros(10), np.zeros(60)].astype(int)
    r2 = stats.mcnemar_test(np.zeros(100, dtype=int), a2, b2)
    assert r2["method"] == "chi-square, continuity corrected" and r2["statistic"] == pytest.approx(19 ** 2 / 40)
    assert r2["p"] == pytest.approx(st.chi2.sf(19 ** 2 / 40, 1))


def test_holm_on_known_pvalues():
    adjusted, reject = stats.holm([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.06 (monotone)
    assert np.allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02]) and np.isnan(adjusted[4])
    assert reject.tolist() == [True, False, False, True, False]


def test_bootstrap_interval_is_seeded_and_covers_the_value():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 7, 500))
    one = stats.bootstrap_ci(y, p, n=300, seed=1)
    assert one == stats.bootstrap_ci(y, p, n=300, seed=1) and one != stats.bootstrap_ci(y, p, n=300, seed=2)
    acc, lo, hi = one["accuracy"]
    assert acc == pytest.approx((y == p).mean()) and lo < acc < hi and hi - lo < 0.15


def test_5x2cv_splits_are_stratified_disjoint_cover_training_and_repeat_for_a_seed():
    from fer_utils import data as D

    ds = D.load_synthetic(40, seed=0)  # Training, PublicTest and PrivateTest rows; at least 2 of each class
    training = set(np.flatnonzero(ds.splits == "Training"))
    splits = stats.cv5x2_splits(ds, seed=3)
    assert len(splits) == 5
    for h0, h1 in splits:
        assert not set(h0) & set(h1) and set(h0) | set(h1) == training  # never a test row
        c0, c1 = np.bincount(ds.labels[h0], minlength=7), np.bincount(ds.labels[h1], minlength=7)
        assert np.abs(c0 - c1).max() <= 1  # stratified
    again = stats.cv5x2_splits(ds, seed=3)
    assert all((a == c).all() and (b == d).all() for (a, b), (c, d) in zip(splits, again))
    other = stats.cv5x2_splits(ds, seed=4)
    assert any(not np.array_equal(a, c) for (a, _), (c, _) in zip(splits, other))
    assert len({tuple(h0) for h0, _ in splits}) == 5  # five different replications


@pytest.mark.slow
def test_resumed_5x2cv_does_not_retrain_finished_folds(tmp_path):
    import shutil

    from fer_utils import data as D
    from fer_utils.experiments import statistics

    ds = D.limit_per_class(D.load_synthetic(20, seed=0), 12, 0)
    configs = {"tiny": {"model": "cnn", "train_config": {"precision": "float32", "epochs": 1, "batch_size": 16,
                                                          "run_eagerly": True, "verbose": 0},
                        "model_kwargs": {"filters": [4, 8, 8, 8], "dense_units": 8}}}
    kw = dict(seed=0, val_fraction=0.25, input_size=32, augment={}, tta=None)
    first = statistics.run_5x2cv(ds, tmp_path, configs, **kw)["tiny"]
    assert first["status"] == ["trained"] * 10 and np.isfinite(first["scores"]).all()
    # An interrupted 5x2cv: the last three folds never finished.
    for name in ("r3f1", "r4f0", "r4f1"):
        shutil.rmtree(tmp_path / "cv5x2" / "tiny" / name)
    second = statistics.run_5x2cv(ds, tmp_path, configs, **kw)["tiny"]
    assert second["status"] == ["reused"] * 7 + ["trained"] * 3
    assert np.array_equal(second["scores"][:3], first["scores"][:3])
    # The saved splits belong to this data and seed: another seed is refused, naming the file.
    with pytest.raises(D.DataError, match="cv5x2_splits.npz holds 5x2cv splits of other data or settings"):
        statistics.run_5x2cv(ds, tmp_path, configs, **{**kw, "seed": 1})


def test_configurations_build_table_xii_and_xiii_from_the_best_config(tmp_path):
    """Table XII pairs 05's default and tuned configurations; Table XIII pairs models, tuned where 05 tuned them
    (shared with Table XII, so trained once), else train_config; cv_train_config overrides every one."""
    import json

    from fer_utils.experiments import statistics

    best = tmp_path / "best_config.json"
    best.write_text(json.dumps({"cnn": {"train_config": {"learning_rate": 0.01, "epochs": 9},
                                        "model_kwargs": {"dense_units": 8},
                                        "default": {"train_config": {"learning_rate": 0.001, "epochs": 9}}}}))
    configs, comparisons = statistics.configurations(best, [], [["cnn", "cnn_se"]], train_config={"epochs": 5},
                                                     model_kwargs={"cnn_se": {"dense_units": 4}},
                                                     cv_train_config={"epochs": 1})
    assert comparisons == [("Table XII: default vs tuned", "cnn default", "cnn tuned"),
                           ("Table XIII: model vs model", "cnn tuned", "cnn_se")]
    assert set(configs) == {"cnn default", "cnn tuned", "cnn_se"}
    assert configs["cnn tuned"]["train_config"] == {"learning_rate": 0.01, "epochs": 1}
    assert configs["cnn default"]["train_config"]["learning_rate"] == 0.001
    assert configs["cnn_se"] == {"model": "cnn_se", "train_config": {"epochs": 1}, "model_kwargs": {"dense_units": 4}}
    untuned = statistics.configurations(best, [], [["cnn", "cnn_se"]], train_config={"epochs": 5},
                                        table_xiii_use_tuned=False)[1]
    assert untuned[-1] == ("Table XIII: model vs model", "cnn", "cnn_se")


# ----------------------------------------------------------------------------- issue 23: families, descriptive t, K

def test_mcnemar_pairs_form_one_holm_family_whatever_the_method():
    """p = (.02, .04, .015, .03) over four pairs: Holm over the four gives .06 each (none differ); split by method
    (exact vs chi-square) it gave (.04, .04, .03, .03), all "differ"."""
    from fer_utils.experiments import statistics as S

    rows = [{"family": "McNemar, every pair", "test": S.MCNEMAR, "method": m, "model A": f"a{i}", "model B": f"b{i}",
             "p": p} for i, (p, m) in enumerate(zip((0.02, 0.04, 0.015, 0.03),
                                                     ("exact binomial", "chi-square, continuity corrected") * 2))]
    table = S._adjust(pd.DataFrame(rows), 0.05)
    assert np.allclose(table["adjusted p"], 0.06) and not table["verdict"].str.startswith("differ").any()
    head = S.headline(table, {}, alpha=0.05)
    assert head["model pairs compared"] == 4 and head["model pairs that differ (Holm, alpha=0.05)"] == 0
    assert S.headline(table, {}, alpha=0.1)["model pairs that differ (Holm, alpha=0.1)"] == 4  # uses alpha
    assert len(S.holm_families()) == len(S.HOLM_FAMILIES)


def test_the_four_df_replication_t_is_descriptive_only():
    from fer_utils.experiments import statistics as S

    rng = np.random.default_rng(0)
    scores = {"a": {"scores": 0.6 + 0.01 * rng.standard_normal((5, 2))},
              "b": {"scores": 0.55 + 0.01 * rng.standard_normal((5, 2))}}
    table = S.compare_5x2cv(scores, [("Table XIII: model pairs", "a", "b")])
    desc = table[table["test"] == S.REPLICATION_T].iloc[0]
    assert np.isnan(desc["adjusted p"]) and desc["verdict"].startswith("descriptive only") and desc["p"] < 0.05
    assert table.loc[table["test"] == S.DIETTERICH_T, "verdict"].iloc[0].startswith("differ")
    head = S.headline(table, {"x": {"status": []}})
    assert head["model pairs compared"] == 1 and head["model pairs that differ (Holm, alpha=0.05)"] == 1


def test_bootstrap_macro_f1_averages_over_all_classes_like_compute_metrics():
    from fer_utils.evaluate.metrics import compute_metrics

    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 300)  # class 6 never occurs, neither as a label nor as a prediction
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 6, 300))
    whole = compute_metrics(y, p, [str(c) for c in range(7)])["macro_f1"]
    ci = stats.bootstrap_ci(y, p, n=200, seed=0, num_classes=7)["macro_f1"]
    assert ci[0] == pytest.approx(whole) and ci[1] < whole < ci[2]
    assert stats.bootstrap_ci(y, p, n=200, seed=0)["macro_f1"][0] > whole  # over the 6 classes seen: higher


def test_mcnemar_statistic_is_one_quantity_and_missing_labels_are_refused():
    y = np.zeros(100, dtype=int)
    a = np.r_[np.zeros(15), np.ones(5), np.zeros(80)].astype(int)
    b = np.r_[np.ones(15), np.zeros(5), np.zeros(80)].astype(int)
    r = stats.mcnemar_test(y, a, b)  # 20 discordant: exact p, the statistic still the corrected chi-square
    assert r["method"] == "exact binomial" and r["statistic"] == pytest.approx((15 - 5 - 1) ** 2 / 20)
    with pytest.raises(ValueError, match="2 of 4 true labels are missing"):
        stats.mcnemar_test(np.array([0, np.nan, 1, np.nan]), [0, 1, 1, 0], [0, 1, 0, 0])


def test_detectable_difference_has_the_stated_power_in_simulation():
    """At the difference it reports, Dietterich's t rejects in about 80% of simulated 5x2cv tables with that fold
    variance (the t distribution's answer checked by simulation); at half of it, far less often."""
    rng = np.random.default_rng(0)
    # fold differences (1, 0) in every replication: s_i^2 = 0.5, so the reported difference over sqrt(0.5) is the
    # noncentrality that reaches 80% power
    nc = stats.detectable_difference_5x2cv(np.array([[1.0, 0.0]] * 5), np.zeros((5, 2))) / np.sqrt(0.5)
    assert 2.5 < nc < 4.5
    sigma = 0.01

    def rejection_rate(true_delta):
        d = true_delta + sigma * rng.standard_normal((20000, 5, 2))
        s2 = ((d - d.mean(axis=2, keepdims=True)) ** 2).sum(axis=2).mean(axis=1)
        return np.mean(np.abs(d[:, 0, 0] / np.sqrt(s2)) > st.t.ppf(0.975, 5))

    assert rejection_rate(nc * sigma) == pytest.approx(0.8, abs=0.03)
    assert rejection_rate(nc * sigma / 2) < 0.4
    assert np.isnan(stats.detectable_difference_5x2cv(np.full((5, 2), 0.6), np.full((5, 2), 0.5)))


def test_mcnemar_detectable_difference_has_the_stated_power_in_simulation():
    """Paired test sets of 3,589 samples with 15% discordant (PrivateTest-sized): at the reported difference McNemar
    (the suite's own mcnemar_test) rejects in about 80% of draws; at no difference in about alpha; at half, far less."""
    rng = np.random.default_rng(1)
    n, discordant = 3589, 538
    delta = stats.detectable_difference_mcnemar(n, discordant)
    assert 0.015 < delta < 0.025

    def rejection_rate(true_delta, draws=400):
        p_d, rejected = discordant / n, 0
        for _ in range(draws):
            kind = rng.choice(3, size=n, p=[1 - p_d, (p_d - true_delta) / 2, (p_d + true_delta) / 2])
            y = np.zeros(n, dtype=int)
            a = np.where(kind == 2, 1, 0)  # kind 2: A wrong, B right; kind 1: A right, B wrong
            b = np.where(kind == 1, 1, 0)
            rejected += stats.mcnemar_test(y, a, b)["p"] < 0.05
        return rejected / draws

    assert rejection_rate(delta) == pytest.approx(0.8, abs=0.06)
    assert rejection_rate(delta / 2) < 0.45
    assert rejection_rate(0.0) < 0.09
    assert np.isnan(stats.detectable_difference_mcnemar(100, 0))


def test_a_table_xiii_model_trained_as_table_xii_default_reuses_its_folds(tmp_path):
    """Study C's SE pair trained with 05's default recipe: 'msca_resnet' is the same configuration as 'msca_resnet
    default' (05 writes the full TrainConfig, the profile a few keys), so its ten folds are not trained twice; the
    no-SE variant is its own configuration."""
    import json

    from fer_utils.experiments import statistics
    from fer_utils.train.config import TrainConfig

    base = {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 128, "epochs": 3}
    half = {"filters": [32, 64, 128], "stem_filters": 32}
    best = tmp_path / "best_config.json"
    best.write_text(json.dumps({"msca_resnet": {
        "train_config": TrainConfig.from_dict({**base, "learning_rate": 0.004}).to_dict(), "model_kwargs": half,
        "default": {"train_config": TrainConfig.from_dict(base).to_dict(), "model_kwargs": half}}}))
    configs, comparisons = statistics.configurations(
        best, [], [["msca_resnet", "msca_resnet_no_se"]], train_config=base,
        model_kwargs={"msca_resnet": half, "msca_resnet_no_se": half}, cv_train_config={"epochs": 4},
        table_xiii_use_tuned=False)
    assert set(configs) == {"msca_resnet default", "msca_resnet tuned", "msca_resnet_no_se"}
    assert comparisons[-1] == ("Table XIII: model vs model", "msca_resnet default", "msca_resnet_no_se")
    # another width is another configuration
    configs = statistics.configurations(best, [], [["msca_resnet", "msca_resnet_no_se"]], train_config=base,
                                        table_xiii_use_tuned=False)[0]
    assert "msca_resnet" in configs


def test_paired_difference_interval_covers_the_true_difference_at_its_stated_rate():
    """A known case (10 samples only B gets right of 100: d = 0.1, se = sqrt(10 - 1) / 100 = 0.03), the sign turns
    with the models, and in simulation (B right 5 points more often than A, correlated errors) the 95% interval
    covers the true difference about 95% of the time."""
    low, high = stats.paired_difference_interval(100, 0, 10)
    assert (low, high) == pytest.approx((0.1 - 1.96 * 0.03, 0.1 + 1.96 * 0.03))
    assert stats.paired_difference_interval(100, 10, 0) == pytest.approx((-high, -low))
    assert all(np.isnan(stats.paired_difference_interval(0, 1, 1)))
    rng = np.random.default_rng(1)
    n, covered = 2000, 0
    for _ in range(2000):  # per sample: both right 0.6, only A 0.1, only B 0.15, neither 0.15 -> true d = 0.05
        kind = rng.choice(4, size=n, p=[0.6, 0.1, 0.15, 0.15])
        low, high = stats.paired_difference_interval(n, int((kind == 1).sum()), int((kind == 2).sum()))
        covered += low <= 0.05 <= high
    assert 0.935 <= covered / 2000 <= 0.965  # 95% +- 3 binomial sd of 2,000 intervals
