"""Notebook 06's per-claim report (issue 23, part 4): which comparisons count as evidence for which claim, and how a
result with its power is read."""

import numpy as np
import pandas as pd
import pytest

from fer_utils.experiments import claims
from fer_utils.experiments.statistics import DIETTERICH_T, MCNEMAR


def test_only_controlled_pairs_are_evidence_and_the_claimed_side_is_found():
    assert claims.classify("cnn default", "cnn tuned") == ("tuning helps", "B")
    assert claims.classify("05:cnn/best", "05:cnn/default") == ("tuning helps", "A")
    assert claims.classify("04:cnn", "04:cnn_se") == ("SE helps", "B")
    assert claims.classify("msca_resnet default", "msca_resnet_no_se") == ("SE helps", "A")
    assert claims.classify("04:msca_resnet_plain", "04:msca_resnet_no_bn") == ("SE helps", "B")
    assert claims.classify("04:vgg19_cbam", "04:vgg19") == ("CBAM helps", "A")
    # two things changed, another notebook, or nothing the studies claim: no evidence
    assert claims.classify("cnn tuned", "cnn_se") is None
    assert claims.classify("03:cnn", "04:cnn_se") is None
    assert claims.classify("03:msca_resnet/seed0", "03:msca_resnet/seed1") is None
    assert claims.classify("04:cnn_se", "04:cnn_cbam") is None
    # a 5x2cv pair whose configurations are known: trained alike is controlled, whatever the labels say
    assert claims.classify("msca_resnet tuned", "msca_resnet_no_se") is None
    assert claims.classify("msca_resnet tuned", "msca_resnet_no_se", True) == ("SE helps", "A")
    assert claims.classify("msca_resnet", "msca_resnet_no_se", False) is None


def test_a_tuned_model_against_a_model_trained_with_the_same_configuration_is_se_evidence():
    """06's Table XIII pair msca_resnet (tuned by 05) vs msca_resnet_no_se (trained with 06's train_config): SE
    evidence when the two configurations are the same, none when they differ."""
    cfg = {"train_config": {"learning_rate": 0.004, "schedule": "cosine"}, "model_kwargs": {}}
    tests = pd.DataFrame([{"family": "Table XIII", "score": "accuracy", "p": 0.6, "test": DIETTERICH_T,
                           "model A": "msca_resnet tuned", "model B": "msca_resnet_no_se", "mean A": 0.5377,
                           "mean B": 0.5413, "adjusted p": 0.63, "detectable difference (80% power)": 0.09}])
    full = {"model_kwargs": {}, "train_config": {**cfg["train_config"], "optimizer": "adam", "momentum": 0.9,
                                                  "ema_momentum": 0.0, "keep_last": True}}  # 05's form: all fields
    same = {"msca_resnet tuned": {"model": "msca_resnet", **full}, "msca_resnet_no_se": {"model": "msca_resnet_no_se",
                                                                                          **cfg}}
    rows = claims.from_tests(tests, configs=same)
    assert [r["claim"] for r in rows] == ["SE helps"]
    assert rows[0]["difference (points, + = as claimed)"] == pytest.approx(-0.36)
    other = {**same, "msca_resnet_no_se": {**same["msca_resnet_no_se"], "train_config": {"learning_rate": 0.002}}}
    assert claims.from_tests(tests, configs=other) == [] and claims.from_tests(tests) == []


def test_a_reading_says_whether_no_difference_means_none_or_too_few_data():
    assert claims.reading(1.0, 0.01, 0.8, 1.79, 0.05) == "supports"
    assert claims.reading(-1.0, 0.01, 0.8, 1.79, 0.05).startswith("contradicts")
    assert claims.reading(0.2, 0.40, 1.5, 1.79, 0.05).startswith("no difference, powered")
    assert claims.reading(0.2, 0.40, 3.0, 1.79, 0.05).startswith("inconclusive (only 3.00 points")
    assert claims.reading(0.2, 0.40, 3.0, None, 0.05).startswith("inconclusive")
    assert claims.reading(0.0, 1.0, float("nan"), 1.79, 0.05).startswith("inconclusive (no variance")


def test_study_effects_come_from_the_published_numbers():
    effects = claims.study_effects()
    assert effects["SE helps"] == pytest.approx(71.65 - 69.86)
    # Study A: CBAM at default settings, mean of VGG19 (+0.64), ResNet50 (+0.91), InceptionV3 (+0.70)
    assert effects["CBAM helps"] == pytest.approx((0.64 + 0.91 + 0.70) / 3)
    assert 0.3 < effects["tuning helps"] < 1.3 and effects["GAN balancing helps"] is None


def _tests_table():
    row = dict(family="f", score="per-sample correctness on PrivateTest", p=0.01)
    return pd.DataFrame([
        # tuning: tuned 2 points better, significant
        {**row, "test": DIETTERICH_T, "model A": "cnn default", "model B": "cnn tuned", "mean A": 0.50,
         "mean B": 0.52, "adjusted p": 0.01, "detectable difference (80% power)": 0.01},
        # SE: without SE 0.5 points better, not significant, could only see 4 points
        {**row, "test": MCNEMAR, "model A": "04:cnn", "model B": "04:cnn_se", "mean A": 0.600, "mean B": 0.595,
         "adjusted p": 0.5, "detectable difference (80% power)": 0.04},
        # CBAM: not significant, but 1 point was detectable (the study's is about 0.75): no difference, powered
        {**row, "test": MCNEMAR, "model A": "04:cnn_cbam", "model B": "04:cnn", "mean A": 0.600, "mean B": 0.600,
         "adjusted p": 0.9, "detectable difference (80% power)": 0.005},
        # two things changed: ignored
        {**row, "test": MCNEMAR, "model A": "04:cnn_se", "model B": "04:cnn_cbam", "mean A": 0.5, "mean B": 0.6,
         "adjusted p": 0.001, "detectable difference (80% power)": 0.01},
        # the Alpaydin F of the same 5x2cv pair is not counted twice
        {**row, "test": "5x2cv combined F (Alpaydin, F(10, 5))", "model A": "cnn default", "model B": "cnn tuned",
         "mean A": 0.50, "mean B": 0.52, "adjusted p": 0.01, "detectable difference (80% power)": 0.01},
    ])


def test_summary_gives_one_verdict_per_claim_and_names_missing_evidence(tmp_path):
    rows = claims.evidence(_tests_table(), None, "PrivateTest")
    assert len(rows) == 3
    se = rows[rows.claim == "SE helps"].iloc[0]
    assert se["difference (points, + = as claimed)"] == pytest.approx(-0.5)
    assert se["evidence"] == "04:cnn_se vs 04:cnn (PrivateTest)" and se.reading.startswith("inconclusive")
    table = claims.summary(rows)
    assert list(table.index) == list(claims.CLAIMS)
    assert table.loc["tuning helps", "this profile's evidence"] == "supported by 1 of 1 comparisons"
    assert table.loc["CBAM helps", "this profile's evidence"].startswith("not supported: no difference")
    assert table.loc["SE helps", "this profile's evidence"].startswith("not shown")
    assert table.loc["GAN balancing helps", "this profile's evidence"].startswith("not tested") \
        and "02" in table.loc["GAN balancing helps", "this profile's evidence"]
    head = claims.write(tmp_path, rows, table)
    assert head["claim: tuning helps"] == "supported by 1 of 1 comparisons"
    assert len(pd.read_csv(tmp_path / claims.CLAIMS_FILE)) == 3


def test_gan_evidence_reads_notebook_02s_effect_table_with_its_power(tmp_path):
    from fer_utils import runs

    gan_run = tmp_path / "02_gan_balancing"
    folder = gan_run / "effect" / "real_only" / "seed0"
    folder.mkdir(parents=True)
    n = 1000
    runs.save_predictions(folder, np.zeros(n, int), np.ones((n, 7)) / 7,
                          split=np.array(["PrivateTest"] * n), source_ids=np.arange(n).astype(str),
                          class_names=[str(i) for i in range(7)])
    pd.DataFrame([
        {"split": s, "condition": "real_gan", "against": against, "seed": 0, "accuracy delta": -0.01,
         "reference right, condition wrong": 60, "reference wrong, condition right": 40, "p": 0.05,
         "method": "chi-square, continuity corrected", "p (Holm)": 0.1, "differs (Holm)": False}
        for s in ("PrivateTest", "PrivateTest (dedup)") for against in ("real_only", "real_oversampled")
    ] + [{"split": "PrivateTest", "condition": "real_oversampled", "against": "real_only", "seed": 0,
          "accuracy delta": 0.0, "reference right, condition wrong": 1, "reference wrong, condition right": 1,
          "p": 1.0, "method": "exact binomial", "p (Holm)": 1.0, "differs (Holm)": False}]).to_csv(
        gan_run / "effect_mcnemar.csv", index=False)
    rows = claims.from_gan_effect(gan_run, "PrivateTest", copies={str(i) for i in range(100)})
    assert len(rows) == 4 and {r["claim"] for r in rows} == {"GAN balancing helps"}
    plain = [r for r in rows if "(dedup)" not in r["evidence"]]
    dedup = [r for r in rows if "(dedup)" in r["evidence"]]
    # 100 discordant of 1,000 samples (900 after leaving out the copies): (1.96 + 0.84) * 10 / n
    assert plain[0]["detectable at 80% power (points)"] == pytest.approx(100 * 2.8016 * 10 / 1000, abs=0.01)
    assert dedup[0]["detectable at 80% power (points)"] == pytest.approx(100 * 2.8016 * 10 / 900, abs=0.01)
    assert plain[0]["difference (points, + = as claimed)"] == pytest.approx(-1.0)
    assert claims.from_gan_effect(tmp_path / "missing", "PrivateTest") == []
