"""Seeds and ensembles, deduplicated test scores, the recipe's ablation and time-to-accuracy (issue 11).

Training runs use the synthetic faces and a tiny CNN; the FER-2013 copy counts need ``FER_DATA_DIR``.
"""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_utils import data as D
from fer_utils import experiments, runs
from fer_utils.experiments import export
from fer_utils.experiments import recipe as R
from fer_utils.experiments import seeds as S
from fer_utils.predictor import EnsemblePredictor, load_predictor

from conftest import docs_row

ROOT = Path(__file__).resolve().parent.parent
TINY = {"filters": [4, 8], "dense_units": 8, "dropout": 0.0}
CFG = {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 16, "epochs": 2, "precision": "float32"}


@pytest.fixture(scope="module")
def seeded(tiny_fer, tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    res = experiments.run_models(["cnn"], tiny_fer, root, train_config=CFG, model_kwargs_by_model={"cnn": TINY},
                                 input_size=32, seeds=[3, 4, 5], tta="flip", seed=42,
                                 eval_splits=("PublicTest", "PrivateTest"))
    return root, res


@pytest.mark.slow
def test_seed_runs_differ_and_the_ensemble_is_the_mean_of_their_probabilities(seeded, tiny_fer):
    root, res = seeded
    assert list(res.index) == ["cnn/seed3", "cnn/seed4", "cnn/seed5", "cnn/ensemble"]
    assert res.loc["cnn/seed4", "seed"] == 4 and res.loc["cnn/ensemble", "status"] == "ensembled"
    members = [runs.load_predictions(root / f"cnn/seed{k}") for k in (3, 4, 5)]
    assert not np.array_equal(members[0]["y_prob"], members[1]["y_prob"])  # the seed reaches the weights
    ens = runs.load_predictions(root / "cnn/ensemble")
    np.testing.assert_allclose(ens["y_prob"], np.mean([m["y_prob"] for m in members], axis=0), rtol=1e-6)
    assert res.loc["cnn/ensemble", "PrivateTest_accuracy"] == pytest.approx(
        float((ens["y_pred"] == ens["y_true"])[ens["split"] == "PrivateTest"].mean()))
    # The seed recorded in each run's recipe is the training seed, not the notebook's.
    assert runs.read_recipe(root / "cnn/seed5")["seed"] == 5


def test_load_predictor_on_the_ensemble_folder_or_a_list_reproduces_the_saved_probabilities(seeded, tiny_fer):
    root, _ = seeded
    te = tiny_fer.split("PrivateTest")
    stored = runs.load_predictions(root / "cnn/ensemble")
    want = stored["y_prob"][stored["split"] == "PrivateTest"]
    by_folder = load_predictor(root / "cnn/ensemble")
    by_list = load_predictor([root / f"cnn/seed{k}" for k in (3, 4, 5)])
    assert isinstance(by_folder, EnsemblePredictor) and len(by_folder.members) == 3
    np.testing.assert_allclose(by_folder.predict(te.images), want, atol=1e-5)
    np.testing.assert_allclose(by_list.predict(te.images), want, atol=1e-5)
    spec = json.loads((root / "cnn/ensemble" / runs.ENSEMBLE_FILE).read_text())
    assert spec["members"] == ["../seed3", "../seed4", "../seed5"]  # relative: the folder can move


def test_rerun_reuses_seed_runs_and_the_ensemble_byte_for_byte(seeded, tiny_fer):
    root, res = seeded
    before = (root / "cnn/ensemble" / runs.PREDICTIONS_FILE).read_bytes()
    stamp = (root / "cnn/ensemble" / runs.PREDICTIONS_FILE).stat().st_mtime_ns
    again = experiments.run_models(["cnn"], tiny_fer, root, train_config=CFG, model_kwargs_by_model={"cnn": TINY},
                                   input_size=32, seeds=[3, 4, 5], tta="flip", seed=42,
                                   eval_splits=("PublicTest", "PrivateTest"))
    assert list(again["status"][:3]) == ["reused"] * 3
    assert (root / "cnn/ensemble" / runs.PREDICTIONS_FILE).read_bytes() == before
    assert (root / "cnn/ensemble" / runs.PREDICTIONS_FILE).stat().st_mtime_ns == stamp  # not rewritten
    assert not list((root / "cnn/ensemble").glob("replaced-*"))
    pd.testing.assert_series_equal(again["PrivateTest_accuracy"], res["PrivateTest_accuracy"])


def test_an_ensemble_whose_members_changed_is_moved_aside_not_overwritten(seeded, tiny_fer, tmp_path):
    root, _ = seeded
    out = tmp_path / "ens"
    S.evaluate_ensemble("cnn", [root / "cnn/seed3", root / "cnn/seed4"], tiny_fer, out)
    first = (out / runs.PREDICTIONS_FILE).read_bytes()
    S.evaluate_ensemble("cnn", [root / "cnn/seed3", root / "cnn/seed5"], tiny_fer, out)
    moved = list(out.glob("replaced-*"))
    assert len(moved) == 1 and (moved[0] / runs.PREDICTIONS_FILE).read_bytes() == first
    assert (moved[0] / runs.ENSEMBLE_FILE).exists()


def test_ensemble_refuses_members_scored_on_other_samples(seeded, tiny_fer, tmp_path):
    root, _ = seeded
    other = tmp_path / "other"
    p = runs.load_predictions(root / "cnn/seed4")
    runs.save_predictions(other, p["y_true"][::-1], p["y_prob"][::-1], source_ids=p["source_ids"][::-1],
                          split=p["split"][::-1])
    (other / runs.METRICS_FILE).write_text((root / "cnn/seed4" / runs.METRICS_FILE).read_text())
    with pytest.raises(ValueError, match="other samples"):
        S.evaluate_ensemble("cnn", [root / "cnn/seed3", other], tiny_fer, tmp_path / "ens")


def test_seed_summary_gives_mean_and_sd_over_seeds_next_to_the_ensemble(seeded):
    _, res = seeded
    table = S.seed_summary(res)
    assert list(table.index) == ["cnn (3 seeds)", "cnn ensemble"]
    acc = res.loc[["cnn/seed3", "cnn/seed4", "cnn/seed5"], "PrivateTest_accuracy"]
    assert table.loc["cnn (3 seeds)", "PrivateTest_accuracy"] == f"{acc.mean():.4f} +- {acc.std(ddof=1):.4f}"
    assert "PrivateTest_dedup_accuracy" in table


@pytest.mark.parametrize("bad", [[1, 1], [1, -2], "0,1", [True], [0.5], {0, 1}, np.array([0, 1])])
def test_seeds_must_be_distinct_non_negative_integers(bad):
    with pytest.raises(ValueError, match="seeds="):
        S.check_seeds(bad)


def test_no_seeds_means_one_run_with_the_notebook_seed():
    assert S.check_seeds([]) == S.check_seeds(()) == S.check_seeds(None) == []


def test_tta_rescoring_follows_the_model_it_rescored(seeded, tiny_fer, tmp_path):
    import shutil

    root, _ = seeded
    model_dir = tmp_path / "full"
    shutil.copytree(root / "cnn/seed3", model_dir)
    out = tmp_path / "no_tta"
    R.rescore_tta(model_dir, tiny_fer, out, None, ["PrivateTest"])
    first = runs.load_predictions(out)["y_prob"]
    assert R.rescore_tta(model_dir, tiny_fer, out, None, ["PrivateTest"]) == out and not list(out.glob("replaced-*"))
    shutil.copy(root / "cnn/seed4" / runs.MODEL_FILE, model_dir / runs.MODEL_FILE)  # "full" retrained
    R.rescore_tta(model_dir, tiny_fer, out, None, ["PrivateTest"])
    assert len(list(out.glob("replaced-*"))) == 1
    assert not np.array_equal(runs.load_predictions(out)["y_prob"], first)


def test_validation_accuracy_is_split_by_copies_of_training_images(seeded, tiny_fer, tmp_path):
    import shutil

    root, _ = seeded
    shutil.copytree(root / "cnn/seed3", tmp_path / "full")
    R.rescore_tta(tmp_path / "full", tiny_fer, tmp_path / "no_tta", None, ["PrivateTest"])
    val, train = np.flatnonzero(tiny_fer.splits == "Validation"), np.flatnonzero(tiny_fer.splits == "Training")
    images = tiny_fer.images.copy()
    images[val[:5]] = images[train[:5]]  # five validation images copy training images
    ds = tiny_fer.replace(images=images)
    table = R.validation_copies({"full": tmp_path / "full", "no_tta": tmp_path / "no_tta"}, ds)
    right = load_predictor(tmp_path / "full").predict(images[val], tta=None).argmax(1) == ds.labels[val]
    assert table.loc["full", "val copies"] == 5
    assert table.loc["full", "val acc"] == pytest.approx(right.mean())
    assert table.loc["full", "val acc on copies"] == pytest.approx(right[:5].mean())
    assert table.loc["full", "val acc without copies"] == pytest.approx(right[5:].mean())
    assert table.loc["no_tta"].equals(table.loc["full"])  # a TTA variant is scored by the model it rescored
    shutil.copytree(tmp_path / "full", tmp_path / "kept", ignore=shutil.ignore_patterns("*.keras"))
    best = runs.read_metrics(tmp_path / "kept")["headline"]["best_val_accuracy"]
    kept = R.validation_copies({"kept": tmp_path / "kept"}, ds).loc["kept"]  # a run kept without its model
    assert kept["val acc"] == best and kept["val copies"] == 5 and np.isnan(kept["val acc without copies"])
    clean = R.validation_copies({"kept": tmp_path / "kept"}, tiny_fer).loc["kept"]
    assert clean["val copies"] == 0 and clean["val acc without copies"] == best
    with pytest.raises(ValueError, match="no 'Validation' rows"):
        R.validation_copies({"full": tmp_path / "full"}, ds.subset(ds.splits != "Validation"))


def test_tta_matrix_scores_each_trained_variant_under_each_tta(seeded, tiny_fer, tmp_path):
    import shutil

    root, _ = seeded
    for name, seed in (("full", 3), ("flip_only", 4)):
        shutil.copytree(root / f"cnn/seed{seed}", tmp_path / name)
    R.rescore_tta(tmp_path / "full", tiny_fer, tmp_path / "no_tta", None, ["PrivateTest"])
    folders = {n: tmp_path / n for n in ("full", "no_tta", "flip_only")}
    rows = np.flatnonzero(tiny_fer.splits == "PrivateTest")
    images = tiny_fer.images.copy()
    images[rows[0]] = images[np.flatnonzero(tiny_fer.splits == "Training")[0]]  # one test copy of training
    ds = tiny_fer.replace(images=images)
    table = R.tta_matrix(folders, ds, split="PrivateTest", ttas=(None, "flip"))
    assert list(table.index) == ["full", "flip_only"]  # the rescoring has no model of its own
    for name in table.index:
        right = load_predictor(tmp_path / name).predict(images[rows], tta="flip").argmax(1) == ds.labels[rows]
        assert table.loc[name, "TTA flip"] == pytest.approx(right.mean())
        assert table.loc[name, "TTA flip dedup"] == pytest.approx(right[1:].mean())
    assert table.loc["full", "TTA none"] == pytest.approx(runs.read_metrics(tmp_path / "no_tta")["headline"][
        "PrivateTest_accuracy"])
    md = R.markdown_tables(pd.DataFrame(), ttas=table).splitlines()
    assert md[-2].startswith("| `full` | ") and md[-3].startswith("|---|---|---|")


def _dataset_with_copies():
    """Training/Validation/PrivateTest rows; two test images copy a Validation and a Training image."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 6, 6), dtype=np.uint8)
    images[6] = images[1]   # PrivateTest copy of a Training image (with another label)
    images[7] = images[3]   # PrivateTest copy of a Validation image
    splits = ["Training"] * 3 + ["Validation"] + ["PrivateTest"] * 4
    return D.FERDataset(images=images, labels=np.array([0, 1, 0, 1, 0, 1, 0, 1]), class_names=("a", "b"),
                        splits=np.array(splits), source_ids=np.array([f"r{i}" for i in range(8)]), name="t")


def test_copies_of_training_include_the_validation_carved_from_it():
    ds = _dataset_with_copies()
    assert list(np.flatnonzero(D.copies_of_training(ds))) == [6, 7]
    assert list(np.flatnonzero(D.copies_of_training(ds, "Training"))) == [6]
    assert len(D.deduplicated(ds).split("PrivateTest")) == 2


def test_dedup_scores_leave_out_the_copies(tmp_path):
    ds = _dataset_with_copies()
    # Right on rows 4 and 5, wrong on the two copies: 50% as published, 100% deduplicated.
    y = ds.labels[4:]
    pred = np.array([0, 1, 1, 0])
    runs.save_predictions(tmp_path / "m", y, np.eye(2)[pred], source_ids=ds.source_ids[4:], split="PrivateTest")
    out = S.add_dedup_scores(pd.DataFrame({"PrivateTest_accuracy": [0.5]}, index=["m"]), ds, tmp_path)
    assert out.loc["m", "PrivateTest_dedup_accuracy"] == 1.0 and out.loc["m", "PrivateTest_copies"] == 2


@pytest.mark.skipif(not __import__("os").environ.get("FER_DATA_DIR"), reason="FER_DATA_DIR not set")
def test_fer2013_test_splits_hold_280_and_288_copies_of_training_images(real_data):
    ds = experiments.prepare(D.load_dataset("fer2013", real_data), seed=42)
    copies = D.copies_of_training(ds)
    assert int((copies & (ds.splits == "PublicTest")).sum()) == 280
    assert int((copies & (ds.splits == "PrivateTest")).sum()) == 288


def test_each_variant_changes_exactly_one_ingredient_of_the_cpu_recipe():
    recipe = R.recipe_from_profile("cpu", ROOT / "params", ROOT / "notebooks")
    full = R.variant_settings(recipe, R.FULL, 7)
    assert full["model_name"] == recipe["models"][0] == "msca_resnet"
    assert full["train_config"]["epochs"] == 7 and full["tta"] == recipe["tta"]
    # the profile's ten-crop side is notebook 03's, not the ablation's: every variant is scored at run_model's default
    assert recipe["crop_fraction"] == 0.98 and "crop_fraction" not in full
    half = R.variant_settings(recipe, "cnn_half", 7)
    assert half["model_name"] == "cnn" and half["normalization"] == "per_image"  # the recipe model's input
    for name in R.VARIANTS:
        if name in (R.FULL, "cnn_half", "old_cpu", "candidates", "longer", "longer_batch_64", *R.TEACHER_VARIANTS):
            continue
        v = R.variant_settings(recipe, name, 7)
        changed = [k for k in full if v[k] != full[k]]
        assert len(changed) == 1, (name, changed)
        if changed == ["train_config"]:
            keys = {k for k in full["train_config"] if v["train_config"][k] != full["train_config"][k]}
            assert keys <= set(R.VARIANTS[name][1]["train_config"]), (name, keys)
        if "augment_add" in R.VARIANTS[name][1]:  # the recipe's augmentation kept, one key added
            assert v["augment"] == {**full["augment"], **R.VARIANTS[name][1]["augment_add"]}
            assert len(v["augment"]) == len(full["augment"]) + 1
    # ``candidates`` is exactly its three variants' changes together, nothing else
    both = R.variant_settings(recipe, "candidates", 7)
    assert R.CANDIDATES == ("no_label_smoothing", "batch_64", "unit_normalization")
    assert both["normalization"] == "unit" and both["augment"] == full["augment"]
    assert {k: v for k, v in both["train_config"].items() if full["train_config"][k] != v} == {
        "label_smoothing": 0.0, "batch_size": 64, "learning_rate": 0.001}
    assert [k for k in full if both[k] != full[k]] == ["train_config", "normalization"]
    assert R.variant_settings(recipe, "distill", 7) == full  # the targets change (run_ablation), nothing else
    assert R.variant_settings(recipe, "separable_fuse", 7)["model_kwargs"] == {"fuse": "separable"}
    deeper = R.variant_settings(recipe, "deeper", 7)  # the network's depth and nothing else
    assert deeper["model_kwargs"] == {"filters": [64, 128, 256, 512]}
    assert [k for k in full if deeper[k] != full[k]] == ["model_kwargs"]
    # the longer schedule at batch 64 is ``longer``'s settings with the batch and its learning rate, nothing else
    longer, small = R.variant_settings(recipe, "longer", 7), R.variant_settings(recipe, "longer_batch_64", 7)
    assert {k: v for k, v in small["train_config"].items() if longer["train_config"][k] != v} == {
        "batch_size": 64, "learning_rate": 0.001}
    assert small["train_config"]["epochs"] == longer["train_config"]["epochs"] == 10
    assert [k for k in full if small[k] != longer[k]] == ["train_config"]
    decayed = R.variant_settings(recipe, "weight_decay", 7)["train_config"]  # AdamW's decay and nothing else
    assert {k: v for k, v in decayed.items() if full["train_config"].get(k) != v} == {"weight_decay": 0.05}
    # the distilled cheaper network is the cheaper network's settings, and the distillation's teacher weight
    assert R.variant_settings(recipe, "separable_distill", 7) == R.variant_settings(recipe, "separable_fuse", 7)
    assert R.VARIANTS["separable_distill"][1] == {"model_kwargs": {"fuse": "separable"}, "distill": 0.5}
    assert "separable_distill" in R.TEACHER_VARIANTS
    assert R.variant_settings(recipe, "old_cpu", 7)["train_config"]["epochs"] == 14
    longer = R.variant_settings(recipe, "longer", 26)  # the schedule's length and nothing else
    assert longer["train_config"] == {**R.variant_settings(recipe, R.FULL, 26)["train_config"], "epochs": 36}
    assert {k: v for k, v in longer.items() if k != "train_config"} == {
        k: v for k, v in R.variant_settings(recipe, R.FULL, 26).items() if k != "train_config"}
    # the longer schedule as a student: longer's settings, and the teacher's weight in its targets
    assert R.variant_settings(recipe, "longer_distill", 26) == longer
    assert R.VARIANTS["longer_distill"][1] == {"epochs_factor": 1.4, "distill": 0.5}
    assert "longer_distill" in R.TEACHER_VARIANTS
    # the batch-64 schedule as a student: its settings, and the teacher's weight in its targets
    small = R.variant_settings(recipe, "longer_batch_64", 26)
    assert R.variant_settings(recipe, "longer_batch_64_distill", 26) == small
    assert small["train_config"]["batch_size"] == 64 and small["train_config"]["epochs"] == 36
    assert R.VARIANTS["longer_batch_64_distill"][1] == {
        "epochs_factor": 1.4, "train_config": {"batch_size": 64, "learning_rate": 0.001}, "distill": 0.5}
    assert "longer_batch_64_distill" in R.TEACHER_VARIANTS
    assert R.variant_settings(recipe, "longer", 7)["train_config"]["epochs"] == 10
    assert R.variant_settings(recipe, R.FULL, 1)["train_config"]["warmup_epochs"] == 0  # must stay < epochs
    with pytest.raises(ValueError, match="Unknown ablation variant.*no_dropout"):
        R.check_variants(["full", "no_dropout"])


def _fake_run(folder, y, pred, seconds, val):
    runs.save_predictions(folder, y, np.eye(2)[pred], source_ids=[f"r{i}" for i in range(len(y))],
                          split="PrivateTest")
    runs.write_metrics(folder, {"epochs_run": len(val), "train_seconds": sum(seconds), "best_val_accuracy": max(val),
                                "PrivateTest_accuracy": float((y == pred).mean()), "data_checksum": "same data"}, {})
    (folder / runs.HISTORY_FILE).write_text("epoch,val_accuracy\n" + "".join(f"{i},{v}\n" for i, v in enumerate(val)))
    (folder / runs.TIMINGS_FILE).write_text("epoch,seconds\n" + "".join(f"{i},{s}\n" for i, s in enumerate(seconds)))


def test_ablation_table_compares_each_variant_with_the_full_recipe_by_mcnemar(tmp_path):
    y = np.zeros(40, int)
    full = np.zeros(40, int)             # 40/40 right
    worse = full.copy()
    worse[:30] = 1                       # 30 discordant, all in favour of the full recipe
    _fake_run(tmp_path / "full", y, full, [60, 60], [0.5, 0.6])
    _fake_run(tmp_path / "no_label_smoothing", y, worse, [60, 60], [0.5, 0.55])
    ds = D.FERDataset(images=np.zeros((40, 4, 4), np.uint8), labels=y, class_names=("a", "b"),
                      splits=np.array(["PrivateTest"] * 40), source_ids=np.array([f"r{i}" for i in range(40)]),
                      name="t")
    table = R.ablation_table({"full": tmp_path / "full", "no_label_smoothing": tmp_path / "no_label_smoothing"}, ds,
                             split="PrivateTest")
    assert table.loc["no_label_smoothing", "diff vs full (PrivateTest)"] == pytest.approx(-0.75)
    assert table.loc["no_label_smoothing", "discordant (full right / variant right)"] == "30 / 0"
    assert table.loc["no_label_smoothing", "McNemar p"] < 1e-6
    assert table.loc["full", "train minutes"] == 2.0
    md = R.markdown_tables(table, split="PrivateTest").splitlines()
    assert md[0].startswith("| variant | change |") and len(md) == 4  # header, rule, one line per variant
    assert md[2].startswith("| `full` | the whole recipe | 2 | 2.0 | 0.6000 | 1.0000 / - | 1.0000 / ")
    assert "| -0.7500 (" in md[3] and "(30 / 0) |" in md[3]
    # against another variant (a distilled student against its undistilled network): the signs turn, names follow
    other = R.ablation_table({"full": tmp_path / "full", "no_label_smoothing": tmp_path / "no_label_smoothing"}, ds,
                             split="PrivateTest", reference="no_label_smoothing")
    assert other.loc["full", "diff vs no_label_smoothing (PrivateTest)"] == pytest.approx(0.75)
    assert other.loc["full", "discordant (no_label_smoothing right / variant right)"] == "0 / 30"
    md = R.markdown_tables(other, split="PrivateTest", reference="no_label_smoothing").splitlines()
    assert "| diff vs no_label_smoothing (dedup) | McNemar p (no_label_smoothing right / variant right) |" in md[0]
    assert "| +0.7500 (" in md[2] and "(0 / 30) |" in md[2] and md[3].endswith("| - |")
    with pytest.raises(ValueError, match="reference 'separable_fuse' is not among the variants tabled"):
        R.ablation_table({"full": tmp_path / "full"}, ds, split="PrivateTest", reference="separable_fuse")


def _seed_run(folder, y, pred, seed, precision="float32", **recipe):
    _fake_run(folder, y, pred, [60, 60], [0.5, 0.6])
    runs.write_metrics(folder, {**runs.read_metrics(folder)["headline"], "PrivateTest_macro_f1": 0.5},
                       {"precision": precision})
    runs.write_recipe(folder, {"model": "cnn", "seed": seed, "train_config": {"epochs": 2}, **recipe})


def test_seed_table_gives_each_seed_their_mean_sd_and_ensemble_and_refuses_other_recipes(tmp_path):
    """Three seeds of known predictions: seed 0 gets all 40 images right, seed 1 misses images 0-29, seed 2 misses
    20-39. The ensemble (mean of the one-hot probabilities) is right where two seeds are: 30 of 40. McNemar is against
    seed 0 on the same images; folders of another recipe, a mislabelled seed or no results are refused."""
    y = np.zeros(40, int)
    preds = {0: np.zeros(40, int), 1: np.r_[np.ones(30, int), np.zeros(10, int)],
             2: np.r_[np.zeros(20, int), np.ones(20, int)]}
    folders = {s: tmp_path / f"e2-s{s}" / "full" for s in preds}
    for s, pred in preds.items():
        _seed_run(folders[s], y, pred, s, precision="mixed_bfloat16" if s == 0 else "float32")
    ds = D.FERDataset(images=np.zeros((40, 4, 4), np.uint8), labels=y, class_names=("a", "b"),
                      splits=np.array(["PrivateTest"] * 40), source_ids=np.array([f"r{i}" for i in range(40)]),
                      name="t")
    table = S.seed_table(folders, ds, split="PrivateTest", ensemble_dir=tmp_path / "ens" / "full")
    assert list(table.index) == ["seed 0", "seed 1", "seed 2", "ensemble of 3", "mean of 3 seeds", "sd of 3 seeds"]
    acc = table["PrivateTest_accuracy"]
    assert list(acc[:4]) == pytest.approx([1.0, 0.25, 0.5, 0.75])
    assert acc["mean of 3 seeds"] == pytest.approx(1.75 / 3) and acc["sd of 3 seeds"] == pytest.approx(
        np.std([1.0, 0.25, 0.5], ddof=1))
    assert table.loc["seed 1", "discordant (seed 0 right / run right)"] == "30 / 0"
    assert table.loc["ensemble of 3", "discordant (seed 0 right / run right)"] == "10 / 0"
    assert list(table["precision"][:3]) == ["mixed_bfloat16", "float32", "float32"]
    assert table.loc["ensemble of 3", "train minutes"] == 6.0  # the members' training summed
    # minutes of a bf16 CPU and of float32 ones are not averaged (the scores are)
    assert table.loc[["mean of 3 seeds", "sd of 3 seeds"], "train minutes"].isna().all()
    md = S.seed_markdown(table, split="PrivateTest").splitlines()
    assert md[0].startswith("| run | precision | train min |") and len(md) == 2 + 6
    assert md[3].startswith("| seed 1 | float32 | 2.0 | 0.6000 | 0.2500 / 0.500 |") and "| -0.75" in md[3]
    assert "(30 / 0) |" in md[3] and md[2].endswith("| - | - |") and md[6].endswith("| - | - |")
    assert md[6].startswith("| mean of 3 seeds | - | - | 0.6000 | 0.5833 / 0.500 |")
    _seed_run(folders[0], y, preds[0], 0)  # every seed in float32: their minutes are averaged
    alike = S.seed_table(folders, ds, split="PrivateTest", ensemble_dir=tmp_path / "ens" / "full")
    assert alike.loc["mean of 3 seeds", "train minutes"] == 2.0 and alike.loc["sd of 3 seeds", "train minutes"] == 0
    _seed_run(folders[0], y, preds[0], 0, precision="")  # not recorded: unknown, so not averaged either
    unknown = S.seed_table(folders, ds, split="PrivateTest", ensemble_dir=tmp_path / "ens" / "full")
    assert unknown.loc[["mean of 3 seeds", "sd of 3 seeds"], "train minutes"].isna().all()

    _seed_run(folders[2], y, preds[2], 2, augment={"flip": True})
    with pytest.raises(ValueError, match=r"e2-s2/full: its recipe differs .*\['augment'\], not only the seed"):
        S.seed_table(folders, ds, split="PrivateTest", ensemble_dir=tmp_path / "ens" / "full")
    _seed_run(folders[2], y, preds[2], 7)
    with pytest.raises(ValueError, match="trained with seed 7 .*listed as seed 2"):
        S.seed_table(folders, ds, split="PrivateTest", ensemble_dir=tmp_path / "ens" / "full")
    with pytest.raises(ValueError, match="e2-s3/full: seed 3 has no finished results"):
        S.seed_table({0: folders[0], 3: tmp_path / "e2-s3" / "full"}, ds, split="PrivateTest",
                     ensemble_dir=tmp_path / "ens" / "full")
    (folders[2] / runs.RECIPE_FILE).unlink()  # what a rescored TTA variant's folder looks like
    with pytest.raises(ValueError, match="e2-s2/full: no recipe.json, so not a trained run"):
        S.seed_table(folders, ds, split="PrivateTest", ensemble_dir=tmp_path / "ens" / "full")
    with pytest.raises(ValueError, match="at least two seeds"):
        S.seed_table({0: folders[0]}, ds, split="PrivateTest", ensemble_dir=tmp_path / "ens" / "full")


def test_a_variant_against_the_reference_seed_by_seed_on_known_answers(tmp_path):
    """The reference gets images 0-19 of 40 right at every seed. A variant identical to it differs by nothing (p = 1;
    the spread is 0, so any difference would have been significant); a variant that also gets 10 / 8 / 12 more right
    at seeds 0-2 gains 0.25 +- 0.05, which a paired t-test over three seeds finds (t = 8.66, two degrees of freedom:
    p = 0.013) and McNemar finds per seed. Image 20 copies a Training image, so the dedup columns leave it out: 39
    images, and the variant's gain there is one image smaller."""
    from scipy import stats as st

    y = np.zeros(40, int)
    ref_pred = np.r_[np.zeros(20, int), np.ones(20, int)]
    faces = np.random.default_rng(0).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    ds = D.FERDataset(images=np.concatenate([faces, faces[20:21]]), labels=np.r_[y, 0], class_names=("a", "b"),
                      splits=np.array(["PrivateTest"] * 40 + ["Training"]),
                      source_ids=np.array([f"r{i}" for i in range(41)]), name="t")
    ref = {s: tmp_path / f"e2-s{s}" / "full" for s in range(3)}
    same = {s: tmp_path / f"e2-s{s}" / "same" for s in range(3)}
    better = {s: tmp_path / f"e2-s{s}" / "better" for s in range(3)}
    for s in range(3):
        _seed_run(ref[s], y, ref_pred, s)
        _seed_run(same[s], y, ref_pred, s)
        pred = ref_pred.copy()
        pred[20: 20 + (10, 8, 12)[s]] = 0
        _seed_run(better[s], y, pred, s, epochs_factor=1.4)
    null = S.variant_by_seed(ref, same, ds, split="PrivateTest", names=("full", "same"))
    seeds = ["seed 0", "seed 1", "seed 2"]
    assert (null.loc[[*seeds, "mean over 3 seeds", "sd over 3 seeds"], "diff"] == 0).all()
    assert (null.loc[seeds, "McNemar p"] == 1).all()
    assert null.loc["paired t-test over seeds: p", "diff"] == 1.0
    assert null.loc[S.SIGNIFICANT, "diff"] == 0 and null.loc[S.POWER80, "diff"] == 0
    table = S.variant_by_seed(ref, better, ds, split="PrivateTest", names=("full", "better"),
                              ensembles=(ref[0], better[0]))
    assert list(table.index[:4]) == ["seed 0", "seed 1", "seed 2", "ensemble of 3"]
    assert list(table["diff"][:3]) == pytest.approx([0.25, 0.2, 0.3])
    assert list(table["diff dedup"][:3]) == pytest.approx([9 / 39, 7 / 39, 11 / 39])  # image 20 left out
    assert table.loc["seed 0", "full dedup"] == pytest.approx(20 / 39) and table.loc["seed 0", "full"] == 0.5
    assert table.loc["seed 1", "discordant (full right / better right)"] == "0 / 8"
    assert table.loc["seed 1", "McNemar p"] == pytest.approx(2 * 0.5 ** 8)  # exact binomial below 25 discordant
    assert table.loc["mean over 3 seeds", "diff"] == pytest.approx(0.25)
    assert table.loc["sd over 3 seeds", "diff"] == pytest.approx(0.05)
    p = table.loc["paired t-test over seeds: p", "diff"]
    assert p == pytest.approx(2 * st.t.sf(0.25 / (0.05 / np.sqrt(3)), 2)) and 0.01 < p < 0.02
    half = st.t.ppf(0.975, 2) * 0.05 / np.sqrt(3)
    assert table.loc[S.SIGNIFICANT, "diff"] == pytest.approx(half)
    assert table.loc[S.POWER80, "diff"] == pytest.approx((st.t.ppf(0.975, 2) + st.t.ppf(0.8, 2)) * 0.05 / np.sqrt(3))
    assert table.loc["95% interval of the mean: low", "diff"] == pytest.approx(0.25 - half)
    md = S.variant_by_seed_markdown(table, names=("full", "better")).splitlines()
    assert md[0] == ("|  | `full` acc (dedup) | `better` acc (dedup) | diff (dedup) | "
                     "McNemar p (full right / better right) |")
    assert md[3] == "| seed 1 | 0.5000 (0.5128) | 0.7000 (0.6923) | +0.2000 (+0.1795) | 0.0078 (0 / 8) |"
    assert "| mean over 3 seeds |  |  | +0.2500 (+0.2308) |  |" in md
    assert "| sd over 3 seeds |  |  | 0.0500 (0.0513) |  |" in md
    # every difference the same and not 0: no spread to test against, so no p
    for s in range(3):
        pred = ref_pred.copy()
        pred[20:30] = 0
        _seed_run(better[s], y, pred, s, epochs_factor=1.4)
    flat = S.variant_by_seed(ref, better, ds, split="PrivateTest")
    assert flat.loc["sd over 3 seeds", "diff"] == 0 and np.isnan(flat.loc["paired t-test over seeds: p", "diff"])
    with pytest.raises(ValueError, match=r"the reference has seeds \[0, 1, 2\], the variant \[0, 1\]"):
        S.variant_by_seed(ref, {0: better[0], 1: better[1]}, ds, split="PrivateTest")
    _seed_run(better[2], y, ref_pred, 2)  # another recipe on one side
    with pytest.raises(ValueError, match="e2-s2/better: its recipe differs"):
        S.variant_by_seed(ref, better, ds, split="PrivateTest")


def _recipe_cli():
    """``benchmarks/recipe.py`` loaded as a module (it is a script, not a package member)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("recipe_cli", ROOT / "benchmarks" / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_seed_table_command_writes_each_variant_against_the_reference_seed_by_seed(tmp_path, capsys):
    """``benchmarks/recipe.py --seed-table`` with ``full`` and another variant: besides the seed table, the variant
    against ``full`` seed by seed (``..._<variant>_vs_full.csv`` / ``.md``), its ensemble row the two ensembles'; with
    ``--reference longer``, a third variant against ``longer`` and against ``full``."""
    import argparse

    module = _recipe_cli()
    y = np.zeros(40, int)
    base = tmp_path / "reports" / R.ABLATION_DIR
    for s in (0, 1):
        _seed_run(base / f"e2-s{s}" / "full", y, np.r_[np.zeros(20, int), np.ones(20, int)], s)
        _seed_run(base / f"e2-s{s}" / "longer", y, np.r_[np.zeros(25 + s, int), np.ones(15 - s, int)], s,
                  epochs_factor=1.4)
    ds = D.FERDataset(images=np.zeros((40, 4, 4), np.uint8), labels=y, class_names=("a", "b"),
                      splits=np.array(["PrivateTest"] * 40), source_ids=np.array([f"r{i}" for i in range(40)]),
                      name="t")
    args = argparse.Namespace(variants=["full", "longer"], seed_table=[0, 1], epochs=2, profile="t",
                              out=str(tmp_path / "out"), seed=0, tta_matrix=False, teacher=None)
    assert module.seed_tables(args, ds, tmp_path / "reports", {}) == 0
    by_seed = pd.read_csv(tmp_path / "out" / "recipe_seeds_t_e2_longer_vs_full.csv", index_col=0)
    ens = {v: runs.read_metrics(base / "e2-ensemble-s0-1" / v)["headline"]["PrivateTest_accuracy"]
           for v in ("full", "longer")}
    assert list(by_seed["diff"][:3]) == pytest.approx([0.125, 0.15, ens["longer"] - ens["full"]])
    assert by_seed.index[2] == "ensemble of 2" and ens["full"] == 0.5
    assert by_seed.loc["mean over 2 seeds", "diff"] == pytest.approx(0.1375)
    md = (tmp_path / "out" / "recipe_seeds_t_e2_longer_vs_full.md").read_text()
    assert "| seed 1 | 0.5000 (0.5000) | 0.6500 (0.6500) | +0.1500 (+0.1500) |" in md
    assert "longer against full, seed by seed" in capsys.readouterr().out
    # another reference: the variant against it seed by seed, and against full too
    for s in (0, 1):
        _seed_run(base / f"e2-s{s}" / "longer_distill", y, np.r_[np.zeros(30, int), np.ones(10, int)], s,
                  epochs_factor=1.4)
    args.variants, args.reference = ["full", "longer", "longer_distill"], "longer"
    assert module.seed_tables(args, ds, tmp_path / "reports", {}) == 0
    for ref, diffs in {"longer": [0.125, 0.1], "full": [0.25, 0.25]}.items():
        vs = pd.read_csv(tmp_path / "out" / f"recipe_seeds_t_e2_longer_distill_vs_{ref}.csv", index_col=0)
        assert list(vs["diff"][:2]) == pytest.approx(diffs)
    assert "longer_distill against longer, seed by seed" in capsys.readouterr().out
    args.variants, args.reference = ["longer"], "full"  # nothing to compare with: the seed table only
    (tmp_path / "out" / "recipe_seeds_t_e2_longer_vs_full.csv").unlink()
    assert module.seed_tables(args, ds, tmp_path / "reports", {}) == 0
    assert not (tmp_path / "out" / "recipe_seeds_t_e2_longer_vs_full.csv").exists()


def test_time_to_accuracy_accumulates_epoch_minutes(tmp_path):
    _fake_run(tmp_path / "a", np.zeros(2, int), np.zeros(2, int), [30, 90, 60], [0.5, 0.62, 0.66])
    curves = R.time_to_accuracy({"recipe": tmp_path / "a"})
    assert list(curves["minutes"]) == [0.5, 2.0, 3.0] and list(curves["epoch"]) == [1, 2, 3]
    reach = R.minutes_to_reach(curves, thresholds=(0.6, 0.7))
    assert reach.loc["recipe", "val acc >= 0.60"] == 2.0 and np.isnan(reach.loc["recipe", "val acc >= 0.70"])
    md = R.markdown_tables(pd.DataFrame(), reach).splitlines()
    assert md[-1] == "| recipe | 2.0 | never | 0.6600 | 3.0 |"


@pytest.mark.slow
def test_recipe_benchmark_runs_resumes_and_refuses_a_typo(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/recipe.py"), "--profile", "smoke", "--epochs", "1",
           "--variants", "full,no_tta,last_epoch", "--reports-dir", str(tmp_path / "reports"),
           "--out", str(tmp_path / "out"),
           "--params-dir", str(ROOT / "params"), "--notebooks-dir", str(ROOT / "notebooks")]
    env = dict(__import__("os").environ)
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out/recipe_ablation_smoke.csv", index_col=0)
    assert list(table.index) == ["full", "no_tta", "last_epoch"] and table.loc["full", "epochs"] == 1
    # One epoch: the last epoch's model is the best one, so it scores exactly the same.
    assert table.loc["last_epoch", "PrivateTest_accuracy"] == table.loc["full", "PrivateTest_accuracy"]
    import hashlib

    variants = tmp_path / "reports/smoke/recipe_ablation/e1-s0"
    last_sha = hashlib.sha256((variants / "full" / runs.LAST_MODEL_FILE).read_bytes()).hexdigest()
    assert runs.read_metrics(variants / "last_epoch")["headline"]["model_sha256"] == last_sha  # last.keras scored
    md = (tmp_path / "out/recipe_ablation_smoke.md").read_text()
    assert "| `no_tta` | TTA " in md and "| ablation full |" in md
    assert not (tmp_path / "out/recipe_tta_matrix_smoke.csv").exists()
    model = tmp_path / "reports/smoke/recipe_ablation/e1-s0/full" / runs.MODEL_FILE
    stamp = model.stat().st_mtime_ns
    again = subprocess.run([*cmd, "--tta-matrix"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 0 and model.stat().st_mtime_ns == stamp  # reused, not retrained
    assert not list((variants / "last_epoch").glob("replaced-*"))  # its scores reused too
    ttas = pd.read_csv(tmp_path / "out/recipe_tta_matrix_smoke.csv", index_col=0)
    assert list(ttas.index) == ["full"] and ttas.loc["full", "TTA none"] == table.loc["no_tta", "PrivateTest_accuracy"]
    typo = [*cmd]
    typo[typo.index("--variants") + 1] = "full,no_lable_smoothing"
    typo = subprocess.run(typo, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert typo.returncode == 2 and "no_lable_smoothing" in typo.stderr
    # the seed table: refused until seed 1 is trained, then both seeds, their mean, sd and ensemble
    table_cmd = [*cmd[:cmd.index("--variants")], "--variants", "full", *cmd[cmd.index("--variants") + 2:],
                 "--seed-table", "0,1"]
    early = subprocess.run(table_cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert early.returncode == 2 and "e1-s1/full: seed 1 has no finished results" in early.stderr
    seed1 = subprocess.run([*table_cmd[:-2], "--seed", "1"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert seed1.returncode == 0, seed1.stderr[-2000:]
    done = subprocess.run(table_cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    seeds = pd.read_csv(tmp_path / "out/recipe_seeds_smoke_e1.csv", index_col=[0, 1]).loc["full"]
    assert list(seeds.index) == ["seed 0", "seed 1", "ensemble of 2", "mean of 2 seeds", "sd of 2 seeds"]
    assert seeds.loc["seed 0", "PrivateTest_accuracy"] == table.loc["full", "PrivateTest_accuracy"]
    assert seeds.loc["mean of 2 seeds", "PrivateTest_accuracy"] == pytest.approx(
        seeds.loc[["seed 0", "seed 1"], "PrivateTest_accuracy"].mean())
    assert (tmp_path / "reports/smoke/recipe_ablation/e1-ensemble-s0-1/full" / runs.ENSEMBLE_FILE).exists()


@pytest.mark.parametrize("value, variants, says", [("3", "full", "at least two distinct seeds"),
                                                    ("0,x", "full", "expected comma-separated integers"),
                                                    ("1,1", "full", "at least two distinct seeds"),
                                                    ("0,1", "full,no_tta", "variant(s) ['no_tta'] rescore")])
def test_a_seed_table_needs_two_distinct_integer_seeds_of_trained_variants(value, variants, says, capsys):
    module = _recipe_cli()
    with pytest.raises(SystemExit) as err:
        module.parse_args(["--variants", variants, "--seed-table", value])
    assert err.value.code == 2 and says in capsys.readouterr().err
    assert module.parse_args(["--variants", "full,distill", "--seed-table", "2,0"]).seed_table == [0, 2]
    with pytest.raises(SystemExit):  # the reference must be one of the variants tabled
        module.parse_args(["--variants", "full,separable_distill", "--teacher", ".", "--reference", "separable_fuse"])
    assert "--reference 'separable_fuse': expected one of the variants tabled" in capsys.readouterr().err
    assert module.parse_args(["--variants", "separable_fuse,separable_distill", "--teacher", ".",
                              "--reference", "separable_fuse"]).reference == "separable_fuse"
    assert module.parse_args(["--variants", "full,ema", "--seed-table", "0,1", "--reference", "ema"]).reference == "ema"


def test_a_seed_table_compares_each_variant_with_the_reference_and_with_full():
    module = _recipe_cli()
    assert module._seed_pairs(["full", "longer", "longer_distill"], "longer") == [
        ("longer", "longer_distill"), ("full", "longer"), ("full", "longer_distill")]
    assert module._seed_pairs(["full", "longer"], "full") == [("full", "longer")]
    assert module._seed_pairs(["full", "ema"], "ema") == [("full", "ema")]  # full is the baseline of its pairs
    assert module._seed_pairs(["longer", "longer_distill"], "full") == []  # nothing to compare with
    assert module._seed_pairs(["longer", "longer_distill"], "longer") == [("longer", "longer_distill")]


def test_statistics_leave_the_copies_out_as_a_family_of_their_own(tmp_path):
    from fer_utils.experiments import statistics

    y = np.zeros(40, int)
    a, b = np.zeros(40, int), np.zeros(40, int)
    b[:12] = 1                                   # b is wrong on 12 images, 10 of them copies of training images
    _fake_run(tmp_path / "a", y, a, [1], [0.5])
    _fake_run(tmp_path / "b", y, b, [1], [0.5])
    found = {"03:a": tmp_path / "a", "03:b": tmp_path / "b"}
    copies = {f"r{i}" for i in range(10)}
    both = statistics.mcnemar_table(found, "PrivateTest")
    dedup = statistics.mcnemar_table(found, "PrivateTest", exclude=copies)
    assert both["effect"].iloc[0].endswith("(12/0)") and dedup["effect"].iloc[0].endswith("(2/0)")
    assert dedup["family"].iloc[0] == "McNemar, every pair (dedup)" and both["family"].iloc[0] == "McNemar, every pair"
    boot = statistics.bootstrap_table(found, "PrivateTest", n=50, exclude=copies)
    assert boot.loc["03:b", "n"] == 30 and boot.loc["03:b", "accuracy"] == pytest.approx(28 / 30)
    assert set(boot["split"]) == {"PrivateTest (dedup)"}


def test_headline_and_attention_comparison_carry_the_deduplicated_numbers():
    res = pd.DataFrame({"PrivateTest_accuracy": [0.6, 0.62], "PrivateTest_macro_f1": [0.5, 0.52],
                        "PrivateTest_dedup_accuracy": [0.59, 0.605], "PrivateTest_dedup_macro_f1": [0.49, 0.5]},
                       index=["cnn", "cnn_se"])
    head = experiments.headline(res)
    assert head["cnn_se PrivateTest (dedup) acc"] == 0.605 and head["cnn PrivateTest acc"] == 0.6
    cmp = experiments.attention_comparison(res)
    assert cmp.loc["cnn_se", "delta accuracy (dedup)"] == pytest.approx(0.015)


def test_throughput_benchmark_measures_the_profile_recipe_as_trained():
    import importlib.util

    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks/throughput.py")
    tp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tp)
    recipe = R.variant_settings(R.recipe_from_profile("cpu", ROOT / "params", ROOT / "notebooks"), R.FULL, 1)
    args = tp.parse_args(["--recipe", "cpu"])
    assert args.models == [recipe["model_name"]] and args.batch == recipe["train_config"]["batch_size"]
    assert args.augment == recipe["augment"] and args.sizes == [recipe["input_size"]]
    with pytest.raises(SystemExit):
        tp.parse_args(["--recipe", "cpux"])


def test_mcnemar_pairs_only_runs_on_the_same_dataset_and_label_set(tmp_path):
    """Without a dataset the FER+ stand-in is the synthetic FER-2013 faces under another name (same pixels, labels,
    checksum): its runs must not be paired with FER-2013's (the smoke run once reported 46 such rows); nor runs on
    another checksum, another label set, or without a checksum."""
    from fer_utils.experiments import statistics

    y = np.arange(40) % 2
    fer = ["anger", "happiness"]

    def run(name, pred, checksum, classes, dataset="fer2013"):
        folder = tmp_path / name
        runs.save_predictions(folder, y, np.eye(2)[pred], source_ids=[f"r{i}" for i in range(40)],
                              split="PrivateTest", class_names=classes)
        runs.write_metrics(folder, {"PrivateTest_accuracy": float((y == pred).mean()), "data_checksum": checksum},
                           {"data": {"name": dataset, "checksum": checksum}})
        return folder

    found = {"03:cnn": run("a", y, "c1", fer), "03:cnn_se": run("b", 1 - y, "c1", fer),
             "04:ferplus/msca_resnet": run("c", y, "c1", fer, "synthetic stand-in for ferplus"),
             "04:ferplus/other": run("d", y, "c2", fer),
             "04:ferplus/other_classes": run("e", y, "c1", ["neutral", "happiness"]),
             "05:no_checksum": run("f", y, "", fer)}
    table = statistics.mcnemar_table(found, "PrivateTest")
    assert [(r["model A"], r["model B"]) for _, r in table.iterrows()] == [("03:cnn", "03:cnn_se")]
    # The same dataset, checksum and classes are paired: the test can fail.
    same = statistics.mcnemar_table({"03:cnn": found["03:cnn"], "x": run("g", y, "c1", fer)}, "PrivateTest")
    assert len(same) == 1


def test_distillation_targets_mix_one_hot_and_the_teacher_on_training_rows_only(tiny_fer):
    from fer_utils.experiments import distill

    rows = np.flatnonzero(tiny_fer.splits == "Training")
    k = tiny_fer.num_classes
    teacher = {"probs": np.full((len(rows), k), 1.0 / k, np.float32), "rows": rows}
    soft = distill.distilled(tiny_fer, teacher, 0.4).soft_labels
    one_hot = np.eye(k, dtype=np.float32)[tiny_fer.labels]
    np.testing.assert_allclose(soft[rows], 0.6 * one_hot[rows] + 0.4 / k, rtol=1e-6)
    others = np.setdiff1d(np.arange(len(tiny_fer)), rows)  # validation and test rows keep their labels
    assert len(others) and np.array_equal(soft[others], one_hot[others])
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"alpha=1.5: expected a number in \[0, 1\]"):
        distill.distilled(tiny_fer, teacher, 1.5)
    with pytest.raises(ValueError, match="do not fit this dataset's"):
        distill.distilled(tiny_fer, {"probs": teacher["probs"][1:], "rows": rows[1:]}, 0.5)


def test_the_distilled_separable_variant_trains_the_separable_network_on_the_teachers_soft_targets(
        tiny_fer, tmp_path, monkeypatch):
    """``separable_distill`` hands run_model the separable network, the distilled labels and their record; ``full``
    (always trained first) gets neither. run_model is replaced by a recorder: what is asserted is what it is given."""
    from fer_utils.experiments import label_agreement, running

    given = {}
    monkeypatch.setattr(running, "run_model", lambda model, ds, folder, **kw: given.setdefault(folder.name,
                                                                                               (model, ds, kw)))
    rows = np.flatnonzero(tiny_fer.splits == "Training")
    k = tiny_fer.num_classes
    teacher = {"probs": np.full((len(rows), k), 1.0 / k, np.float32), "rows": rows, "members": ["t0"],
               "model_sha256": ["abc"], "tta": "ten_crop"}
    recipe = R.recipe_from_profile("cpu", ROOT / "params", ROOT / "notebooks")
    folders = R.run_ablation(recipe, tiny_fer, tmp_path, variants=["separable_distill"], epochs=2, teacher=teacher)
    assert list(folders) == [R.FULL, "separable_distill"]
    model, ds, kw = given["separable_distill"]
    assert model == "msca_resnet" and kw["model_kwargs"] == {"fuse": "separable"}
    assert kw["target"] == "distribution" and kw["distillation"]["alpha"] == 0.5
    assert kw["distillation"]["model_sha256"] == ["abc"]
    np.testing.assert_allclose(ds.soft_labels[rows], 0.5 * np.eye(k)[tiny_fer.labels[rows]] + 0.5 / k, rtol=1e-6)
    _, full_ds, full_kw = given[R.FULL]
    assert "target" not in full_kw and full_ds is tiny_fer and full_kw["model_kwargs"] != {"fuse": "separable"}
    # every run records the data split's parameters (the profile's, not the training seed), which an export re-creates
    assert full_kw["params"] == kw["params"] == {"seed": recipe["seed"], "val_fraction": recipe["val_fraction"],
                                                 "max_per_class": recipe["max_per_class"]}
    assert export.split_params(full_kw["params"]) == full_kw["params"]
    with pytest.raises(ValueError, match=r"variant\(s\) \['separable_distill'\] need a teacher"):
        R.run_ablation(recipe, tiny_fer, tmp_path, variants=["separable_distill"], epochs=2)
    # a student gets the teacher of its kind: run folders' probabilities, or FER+'s votes for the crowd student
    crowd = {**teacher, "tta": label_agreement.CROWD}
    with pytest.raises(ValueError, match=r"\['longer_batch_64_crowd'\] need a teacher of their kind \(got ten_crop\)"):
        R.run_ablation(recipe, tiny_fer, tmp_path, variants=["longer_batch_64_crowd"], epochs=2, teacher=teacher)
    with pytest.raises(ValueError, match=r"\['separable_distill'\] need a teacher of their kind \(got FER\+ crowd"):
        R.run_ablation(recipe, tiny_fer, tmp_path, variants=["separable_distill"], epochs=2, teacher=crowd)


def test_teacher_probabilities_are_the_members_mean_computed_once_and_tied_to_their_teacher(seeded, tiny_fer,
                                                                                           tmp_path):
    from fer_utils.experiments import distill

    root, _ = seeded
    members = [root / "cnn" / "seed3", root / "cnn" / "seed4"]
    rows = np.flatnonzero(tiny_fer.splits == "Training")
    t = distill.teacher_probabilities(tiny_fer, members, tmp_path / "teacher.npz", tta="flip")
    expected = np.mean([load_predictor(m).predict(tiny_fer.images[rows], tta="flip") for m in members], axis=0)
    np.testing.assert_allclose(t["probs"], expected, atol=1e-6)
    assert not t["reused"] and t["seconds"] > 0 and np.array_equal(t["rows"], rows)
    again = distill.teacher_probabilities(tiny_fer, members, tmp_path / "teacher.npz", tta="flip")
    assert again["reused"] and np.array_equal(again["probs"], t["probs"]) and again["seconds"] == t["seconds"]
    with pytest.raises(ValueError, match="teacher.npz holds the probabilities of another teacher"):
        distill.teacher_probabilities(tiny_fer, members[:1], tmp_path / "teacher.npz", tta="flip")
    other = experiments.prepare(D.load_synthetic(6, seed=0), val_fraction=0.5, seed=0)  # another split
    with pytest.raises(ValueError, match="seed3 was trained on data .*, not on this dataset"):
        distill.teacher_probabilities(other, members, tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="no model.keras"):
        distill.check_members([tmp_path], tiny_fer)
    # what the soft targets carry, on known probabilities: one row one-hot and right, one 0.6 on a wrong class
    k = tiny_fer.num_classes
    wrong = (tiny_fer.labels[rows[1]] + 1) % k
    soft = np.full(k, 0.4 / (k - 1))
    soft[wrong] = 0.6
    two = {"probs": np.r_[np.eye(k)[[tiny_fer.labels[rows[0]]]], soft[None]], "rows": rows[:2]}
    said = distill.summary(tiny_fer, two)
    assert said["train_accuracy"] == 0.5
    assert said["mean_top_probability"] == pytest.approx(0.8) and said["share_top_above_90"] == 0.5
    assert said["mean_entropy"] == pytest.approx(-(soft * np.log(soft)).sum() / 2)
    with pytest.raises(ValueError, match="do not fit 1 rows"):
        distill.summary(tiny_fer, {"probs": two["probs"], "rows": rows[:1]})


def test_a_distilled_student_records_its_teacher_and_is_not_reused_for_another_alpha(seeded, tiny_fer, tmp_path):
    from fer_utils.experiments import distill

    root, _ = seeded
    t = distill.teacher_probabilities(tiny_fer, [root / "cnn" / "seed3"], tmp_path / "teacher.npz", tta="flip")
    cfg = {**CFG, "epochs": 1}
    kw = dict(train_config=cfg, model_kwargs=TINY, input_size=32, eval_splits=("PrivateTest",), seed=1,
              target="distribution")
    res = experiments.run_model("cnn", distill.distilled(tiny_fer, t, 0.5), tmp_path / "student",
                                distillation=distill.record(t, 0.5), **kw)
    assert res["status"] == "trained"
    recorded = runs.read_recipe(tmp_path / "student")
    assert recorded["target"] == "distribution" and recorded["distillation"]["alpha"] == 0.5
    assert recorded["distillation"]["model_sha256"] == list(t["model_sha256"])
    with pytest.raises(FileExistsError, match="distillation"):
        experiments.run_model("cnn", distill.distilled(tiny_fer, t, 0.2), tmp_path / "student",
                              distillation=distill.record(t, 0.2), **kw)


def test_the_committed_26_epoch_reference_is_the_cpu_recipes_full_variant():
    """``benchmarks/results/recipe_e26_s0/full`` is the full recipe's 26-epoch seed-0 run without its models
    (recipe, metrics, predictions). Copied to ``reports/cpu/recipe_ablation/e26-s0/full`` it is a finished run the
    ablation reuses, so an ingredient costs one training, not two. Fails when the cpu recipe changes: then the
    reference is stale and must be trained again."""
    from fer_utils.experiments.running import recipe_train_config

    ref = ROOT / "benchmarks" / "results" / "recipe_e26_s0" / R.FULL
    assert runs.run_state(ref) == "finished" and not list(ref.glob("*.keras"))
    stored = runs.read_recipe(ref)
    want = R.variant_settings(R.recipe_from_profile("cpu", ROOT / "params", ROOT / "notebooks"), R.FULL, 26)
    assert stored["model"] == want["model_name"] and stored["model_kwargs"] == want["model_kwargs"]
    assert recipe_train_config(stored["train_config"]) == recipe_train_config(want["train_config"])
    assert stored["augment"] == want["augment"] and stored["tta"] == want["tta"] and stored["seed"] == 0
    assert want["normalization"] in ("auto", stored["normalization"])
    # its predictions are the scores its metrics state (the table's McNemar reads them)
    pred = runs.load_predictions(ref)
    private = pred["split"] == "PrivateTest"
    headline = runs.read_metrics(ref)["headline"]
    assert private.sum() == 3589
    assert np.mean(pred["y_pred"][private] == pred["y_true"][private]) == pytest.approx(
        headline["PrivateTest_accuracy"], abs=1e-9)


def _private_accuracy(run_dir) -> float:
    """A committed run's PrivateTest accuracy, from its saved predictions."""
    pred = runs.load_predictions(run_dir)
    private = pred["split"] == "PrivateTest"
    return float(np.mean(pred["y_pred"][private] == pred["y_true"][private]))


def test_the_committed_erasing_run_is_the_reference_plus_erasing_and_its_table_reads_its_files():
    """docs/results.md's random-erasing row (issue 24) comes from ``recipe_e26_s0/erasing``: the reference's recipe
    with erasing added and nothing else, and the ablation table's numbers are that run's metrics and predictions."""
    import pandas as pd

    results = ROOT / "benchmarks" / "results"
    ref, run = (runs.read_recipe(results / "recipe_e26_s0" / v) for v in (R.FULL, "erasing"))
    assert run["augment"] == {**ref["augment"], "erasing": 0.5}
    assert {k: v for k, v in run.items() if k not in ("augment", "variant")} == \
        {k: v for k, v in ref.items() if k not in ("augment", "variant")}
    table = pd.read_csv(results / "recipe_ablation_cpu_e26_erasing.csv").set_index("variant")
    assert table.loc["erasing", "PrivateTest_accuracy"] == pytest.approx(
        _private_accuracy(results / "recipe_e26_s0" / "erasing"), abs=1e-9)
    assert table.loc["erasing", "PrivateTest_accuracy"] < table.loc[R.FULL, "PrivateTest_accuracy"]


#: An epoch counts as not shared when the other processes kept at most this many cores busy (timings.csv).
_QUIET_CORES = 0.03


def test_the_committed_longer_run_is_the_reference_with_36_epochs_and_the_docs_read_its_files():
    """docs/results.md's longer-schedule table (issue 24) comes from ``recipe_e26_s0/longer``: the reference's recipe
    with 36 epochs instead of 26 and nothing else; its accuracy is its predictions', its train minutes its timings',
    its best epoch its history's, and the quoted idle-epoch median and the epochs shared with tests are its
    ``timings.csv``'s."""
    results = ROOT / "benchmarks" / "results"
    ref, run = (runs.read_recipe(results / "recipe_e26_s0" / v) for v in (R.FULL, "longer"))
    assert run["train_config"]["epochs"] == 36 and ref["train_config"]["epochs"] == 26
    assert {**run, "train_config": {**run["train_config"], "epochs": 26}} == ref
    assert runs.read_metrics(results / "recipe_e26_s0" / "longer")["metadata"]["precision"] == "mixed_bfloat16"
    table = pd.read_csv(results / "recipe_ablation_cpu_e26_longer.csv").set_index("variant")
    longer = table.loc["longer"]
    assert longer["PrivateTest_accuracy"] == pytest.approx(
        _private_accuracy(results / "recipe_e26_s0" / "longer"), abs=1e-9)
    timings = pd.read_csv(results / "recipe_e26_s0" / "longer" / "timings.csv")
    history = pd.read_csv(results / "recipe_e26_s0" / "longer" / "history.csv")
    assert len(timings) == len(history) == 36
    seconds = runs.read_metrics(results / "recipe_e26_s0" / "longer")["headline"]["train_seconds"]
    assert seconds == pytest.approx(timings["seconds"].sum(), abs=1)  # the epochs' own times, summed
    assert longer["train minutes"] == round(seconds / 60, 1)
    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index("**A longer schedule at full length**"):]
    section = " ".join(section[: section.index("\n\n**", 10)].split())
    row = docs_row(docs[docs.index("**A longer schedule at full length**"):], "`longer`, 36 epochs")
    assert row[2] == f"{longer['train minutes']:.1f}"
    assert row[3] == f"{longer['best val acc']:.4f} ({int(history['val_accuracy'].idxmax()) + 1})"
    assert row[4].replace("*", "") == f"{longer['PrivateTest_accuracy']:.4f} / {longer['PrivateTest_macro_f1']:.3f}"
    assert row[7] == f"{longer['McNemar p']:.2g} ({longer['discordant (full right / variant right)']})"
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    busy = timings.drop(quiet.index)
    median = float(np.median(quiet["seconds"]))
    assert f"its other {len(quiet)} epochs" in section and list(busy["epoch"]) == [1, 2, 3]  # "the second to fourth"
    assert f"median {median:.1f} s; 36 x {median:.1f} s = {36 * median / 60:.1f} min" in section
    assert "{:.1f}, {:.1f} and {:.1f} s, `others_cores` {:.2f}, {:.2f} and {:.2f}".format(
        *busy["seconds"], *busy["others_cores"]) in section
    assert f"(training accuracy at the last epoch {history['accuracy'].iloc[-1]:.3f}" in section
    full = table.loc[R.FULL]
    assert f"+{100 * (longer['PrivateTest_macro_f1'] - full['PrivateTest_macro_f1']):.1f} points of macro-F1" in section
    assert f"validation {100 * (longer['best val acc'] - full['best val acc']):.2f}" in section
    public = [100 * (longer[f"PublicTest{k}_accuracy"] - full[f"PublicTest{k}_accuracy"]) for k in ("", "_dedup")]
    assert f"PublicTest {public[0]:+.1f} ({public[1]:+.1f} without near-duplicates)" in section
    dedup = 100 * (longer["PrivateTest_dedup_accuracy"] - full["PrivateTest_dedup_accuracy"])
    assert f"{dedup:+.1f} without near-duplicates, where macro-F1 is unchanged" in section
    assert abs(longer["PrivateTest_dedup_macro_f1"] - full["PrivateTest_dedup_macro_f1"]) < 0.002  # "unchanged"
    per_epoch = full["train minutes"] / 26  # the reference's minutes per epoch on the first bf16 CPU
    assert f"these 36 epochs would take about {36 * per_epoch:.0f} minutes" in section


#: The committed FER+ settings tables of notebook 04 whose runs were trained apart: CSV and each run's folder.
_COMMITTED_TABLES = {
    "table2_learning_rate": ("ferplus_table2/ferplus_table2_learning_rate.csv",
                             {"msca_resnet": "ferplus_table3/msca_resnet"}, "ferplus_table2"),
    "loss_x_schedule": ("ferplus/ferplus_loss_x_schedule.csv",
                        {"ce_warmup_cosine": "ferplus/ce_warmup_cosine_ten_crop"}, "ferplus"),
    "majority_vs_votes": ("ferplus/ferplus_majority_vs_votes.csv",
                          {"ce_warmup_cosine": "ferplus/ce_warmup_cosine_ten_crop"}, "ferplus"),
}


@pytest.mark.parametrize("title", sorted(_COMMITTED_TABLES))
def test_a_settings_table_rebuilt_from_the_committed_folders_is_the_committed_table(real_data, title):
    """``benchmarks/results/study_c_cpu/settings_table.py`` (a table of notebook 04 from run folders kept apart, as
    the loss x schedule table's runs are) gives back each committed table from its committed run folders, to the
    last digit; folders that are not the table's runs are refused before anything is compared. Table 2's CSV is the
    notebook's own, so its case ties the script to the notebook; the loss x schedule CSV was written by this script,
    so its case catches a later change of the table code or of the committed folders."""
    import importlib.util
    import re

    results = ROOT / "benchmarks" / "results" / "study_c_cpu"
    spec = importlib.util.spec_from_file_location("settings_table", results / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    csv, moved, default = _COMMITTED_TABLES[title]
    committed = pd.read_csv(results / csv).set_index("run")
    folders = {r: results / moved.get(r, f"{default}/{r}") for r in committed.index}
    second = committed.index[1]
    with pytest.raises(SystemExit, match=rf"table '{title}' compares .*; got folders for \['{re.escape(second)}'\]"):
        module.settings_table(title, {second: folders[second]})
    with pytest.raises(SystemExit, match="the cpu profile has no FER\\+ table 'table_2'"):
        module.settings_table("table_2", folders)
    rebuilt = module.settings_table(title, folders)
    rebuilt.index.name = "run"
    rebuilt = pd.read_csv(io.StringIO(rebuilt.to_csv())).set_index("run")  # as the notebook writes it
    pd.testing.assert_frame_equal(rebuilt, committed)


def test_docs_training_time_on_a_real_avx2_cpu_is_the_committed_throughput():
    """docs/results.md's AVX2-only rows of the training-time table (issue 24, part 4) are
    ``throughput_msca_resnet_b128_avx2.csv``'s train images/s, and their hours are one recipe seed's images (26
    epochs x 25,838) at that speed."""
    _training_time_rows("throughput_msca_resnet_b128_avx2.csv", {
        "**an AVX2-only 2-core CPU, measured** (AMD EPYC Zen 3, no AVX-512; 2026-12-03 21:53, idle, commit "
        "`49caafd`)": "float32", "the same": "mixed_bfloat16"}, lambda seconds: f"{seconds / 3600:.1f} h")


def _training_time_rows(csv_name: str, labels: dict, duration) -> dict:
    """The rows of docs/results.md's training-time table named by ``labels`` (first cell -> precision): their
    images/s are ``csv_name``'s train images/s and their time one recipe seed's images (26 epochs x 25,838) at that
    speed, written by ``duration(seconds)``. Returns the rows' cells by label."""
    table = pd.read_csv(ROOT / "benchmarks" / "results" / csv_name).set_index("precision")
    assert set(table["model"]) == {"msca_resnet"} and set(table["batch"]) == {128} and set(table["cpu_count"]) == {2}
    text = (ROOT / "docs" / "results.md").read_text()
    section = text[text.index("## Training time of one recipe seed, by CPU kind"):]
    rows = {label: docs_row(section, label) for label in labels}
    for label, precision in labels.items():
        speed = float(table.loc[precision, "train_img_s"])
        assert float(rows[label][2].strip("*")) == speed, precision
        assert rows[label][3] == duration(26 * 25_838 / speed), precision
    return rows


def test_docs_recipe_epochs_on_a_real_avx2_cpu_are_the_committed_runs():
    """docs/results.md's measured AVX2 epochs are ``recipe_e2_avx2/``'s files: each variant's ``timings.csv`` per
    epoch, the ablation table's train minutes and its last validation, 26 epochs at the second epoch's time; the
    seed-time cell of the training-time table is the full recipe's extrapolation."""
    base = ROOT / "benchmarks" / "results" / "recipe_e2_avx2"
    ablation = pd.read_csv(base / "recipe_ablation_cpu.csv").set_index("variant")
    text = (ROOT / "docs" / "results.md").read_text()
    section = text[text.index("**Recipe epochs measured on the AVX2-only CPU**"):]
    labels = {"full": "`full` (the recipe)",
              "separable_fuse": "`separable_fuse` (53.8M instead of 109.9M multiply-adds)"}
    hours = {}
    for variant, label in labels.items():
        seconds = pd.read_csv(base / variant / "timings.csv")["seconds"].tolist()
        history = pd.read_csv(base / variant / "history.csv")
        assert len(seconds) == len(history) == int(ablation.loc[variant, "epochs"]) == 2
        hours[variant] = f"{26 * seconds[1] / 3600:.1f} h"
        assert docs_row(section, label)[1:] == [
            " / ".join(f"{s:.1f}" for s in seconds), f"{ablation.loc[variant, 'train minutes']:.1f}", hours[variant],
            f"{history['val_accuracy'].iloc[-1]:.4f}"], variant
    seeds = text[text.index("## Training time of one recipe seed, by CPU kind"):]
    cell = docs_row(seeds, "**an AVX2-only 2-core CPU, measured** (AMD EPYC Zen 3, no AVX-512; 2026-12-03 "
                           "21:53, idle, commit `49caafd`)")[4]
    assert cell.startswith(f"**about {hours['full']}**")


def test_the_committed_separable_run_is_the_reference_with_separable_fusion_and_the_docs_read_its_files():
    """docs/results.md's ``separable_fuse`` row (issue 24, the cheaper classifier for AVX2-only CPUs) comes from
    ``recipe_e26_s0/separable_fuse``: the reference's recipe with ``fuse="separable"`` and nothing else (it computed in
    float32 on an AVX2-only CPU, the reference in mixed bfloat16), the ablation table's PrivateTest accuracy is that
    run's predictions, and the docs' row is the table's."""
    results = ROOT / "benchmarks" / "results"
    ref, run = (runs.read_recipe(results / "recipe_e26_s0" / v) for v in (R.FULL, "separable_fuse"))
    assert run["model_kwargs"] == {"fuse": "separable"} and ref["model_kwargs"] == {}
    assert {k: v for k, v in run.items() if k not in ("model_kwargs", "variant")} == \
        {k: v for k, v in ref.items() if k not in ("model_kwargs", "variant")}
    precision = {v: runs.read_metrics(results / "recipe_e26_s0" / v)["metadata"]["precision"]
                 for v in (R.FULL, "separable_fuse")}
    assert precision == {R.FULL: "mixed_bfloat16", "separable_fuse": "float32"}
    table = pd.read_csv(results / "recipe_ablation_cpu_e26_separable.csv").set_index("variant")
    row = table.loc["separable_fuse"]
    assert row["PrivateTest_accuracy"] == pytest.approx(
        _private_accuracy(results / "recipe_e26_s0" / "separable_fuse"), abs=1e-9)
    text = (ROOT / "docs" / "results.md").read_text()
    section = text[text.index("**The separable network at full length**"):]
    cells = docs_row(section, "`separable_fuse`")
    assert cells[3] == f"{row['PrivateTest_accuracy']:.4f} / {row['PrivateTest_macro_f1']:.3f}"
    assert cells[4] == f"{row['PrivateTest_dedup_accuracy']:.4f} / {row['PrivateTest_dedup_macro_f1']:.3f}"
    assert cells[6].endswith(f"({row['discordant (full right / variant right)']})")


def test_the_distilled_separable_network_is_the_committed_run_and_its_rows_the_tables():
    """docs/results.md's ``separable_distill`` table (issue 24, the AVX2 speed route) comes from
    ``recipe_e26_s0/separable_distill``: ``separable_fuse``'s recipe plus distillation from seed 1's full model (alpha
    0.5, ten-crop) and nothing else; its PrivateTest accuracy is its predictions', the McNemar counts are against
    ``separable_fuse`` (and ``full``) on the same images, and the docs' cells are the tables'."""
    results = ROOT / "benchmarks" / "results"
    variants = (R.FULL, "separable_fuse", "separable_distill")
    sep, run = (runs.read_recipe(results / "recipe_e26_s0" / v) for v in variants[1:])
    assert run["distillation"]["alpha"] == 0.5 and run["distillation"]["tta"] == "ten_crop"
    assert [m.split("recipe_ablation/")[-1] for m in run["distillation"]["members"]] == ["e26-s1/full"]
    assert run["target"] == "distribution" and sep["target"] == "majority"
    assert {k: v for k, v in run.items() if k not in ("distillation", "target")} == \
        {k: v for k, v in sep.items() if k not in ("distillation", "target")}
    assert runs.read_metrics(results / "recipe_e26_s0" / "separable_distill")["metadata"]["precision"] == "float32"
    table = pd.read_csv(results / "recipe_ablation_cpu_e26_separable_distill.csv").set_index("variant")
    vs_full = pd.read_csv(results / "recipe_ablation_cpu_e26_separable_distill_vs_full.csv").set_index("variant")
    preds = {v: runs.load_predictions(results / "recipe_e26_s0" / v) for v in variants}
    private = preds[R.FULL]["split"] == "PrivateTest"
    y = preds[R.FULL]["y_true"][private]
    full, plain, distilled = (preds[v]["y_pred"][private] == y for v in variants)
    row = table.loc["separable_distill"]
    assert row["PrivateTest_accuracy"] == pytest.approx(distilled.mean(), abs=1e-9)
    assert row["discordant (separable_fuse right / variant right)"] == \
        f"{int((plain & ~distilled).sum())} / {int((~plain & distilled).sum())}"
    assert vs_full.loc["separable_distill", "discordant (full right / variant right)"] == \
        f"{int((full & ~distilled).sum())} / {int((~full & distilled).sum())}"
    text = (ROOT / "docs" / "results.md").read_text()
    section = text[text.index("**The separable network, distilled**"):]
    for variant in variants:
        r, cells = table.loc[variant], docs_row(section, f"`{variant}`")
        history = pd.read_csv(results / "recipe_e26_s0" / variant / "history.csv")
        assert cells[1].startswith(f"{r['train minutes']:.1f} (")
        assert cells[2].replace("*", "") == f"{r['best val acc']:.4f} ({int(history['val_accuracy'].idxmax()) + 1})"
        if variant != "separable_fuse":
            assert cells[6] == f"{r['McNemar p']:.2g} ({r['discordant (separable_fuse right / variant right)']})"
        assert cells[3].replace("*", "") == f"{r['PrivateTest_accuracy']:.4f} / {r['PrivateTest_macro_f1']:.3f}"
        assert cells[4].replace("*", "") == \
            f"{r['PrivateTest_dedup_accuracy']:.4f} / {r['PrivateTest_dedup_macro_f1']:.3f}"
    p_full = vs_full.loc["separable_distill", "McNemar p"]
    assert f"p = {p_full:.3f}" in section[:section.index("**What averaging")]


def test_one_hour_of_the_recipe_on_a_real_avx2_cpu_is_the_committed_run():
    """docs/results.md's 9-epoch AVX2 row (issue 24: training time and accuracy per CPU kind) is
    ``recipe_e9_s0_avx2/full``: the reference's recipe with 9 epochs instead of 26 and nothing else, trained in float32
    within the hour, its PrivateTest accuracy that run's predictions, the docs' cells the table's."""
    results = ROOT / "benchmarks" / "results"
    ref, run = (runs.read_recipe(results / d / R.FULL) for d in ("recipe_e26_s0", "recipe_e9_s0_avx2"))
    assert (run["train_config"]["epochs"], ref["train_config"]["epochs"]) == (9, 26)
    assert {**run, "train_config": {**run["train_config"], "epochs": 26}} == ref
    metrics = runs.read_metrics(results / "recipe_e9_s0_avx2" / R.FULL)
    assert metrics["metadata"]["precision"] == "float32" and metrics["headline"]["epochs_run"] == 9
    assert metrics["headline"]["train_seconds"] <= 3600
    row = pd.read_csv(results / "recipe_ablation_cpu_e9_avx2.csv").set_index("variant").loc[R.FULL]
    assert row["PrivateTest_accuracy"] == pytest.approx(
        _private_accuracy(results / "recipe_e9_s0_avx2" / R.FULL), abs=1e-9)
    text = (ROOT / "docs" / "results.md").read_text()
    section = text[text.index("**One hour of the recipe on the AVX2-only CPU**"):]
    cells = docs_row(section, "`full`, 9 epochs (AVX2 CPU)")
    history = pd.read_csv(results / "recipe_e9_s0_avx2" / R.FULL / "history.csv")
    best_epoch = int(history["val_accuracy"].idxmax()) + 1
    assert cells[2:] == [f"{row['train minutes']:.1f}", f"{row['best val acc']:.4f} ({best_epoch})",
                         f"{row['PrivateTest_accuracy']:.4f} / {row['PrivateTest_macro_f1']:.3f}",
                         f"{row['PrivateTest_dedup_accuracy']:.4f} / {row['PrivateTest_dedup_macro_f1']:.3f}",
                         f"{row['PublicTest_accuracy']:.4f} ({row['PublicTest_dedup_accuracy']:.4f})"]


def test_the_committed_ensembles_of_the_seed0_runs_are_their_mean_probabilities_and_the_docs_quote_them():
    """docs/results.md's ensemble table (issue 24: what a teacher of the committed runs could reach) is
    ``recipe_e26_s0_ensembles.csv``, written by ``benchmarks/ensembles.py`` from the four committed 26-epoch runs: every
    combination of two or more, each row's PrivateTest accuracy the argmax of its members' mean probabilities, and the
    docs' rows the CSV's."""
    results = ROOT / "benchmarks" / "results"
    table = pd.read_csv(results / "recipe_e26_s0_ensembles.csv").set_index("run")
    names = ["full", "ema", "erasing", "separable_fuse"]
    import itertools

    assert set(table.index) == {" + ".join(c) for k in range(1, 5) for c in itertools.combinations(names, k)}
    preds = {n: runs.load_predictions(results / "recipe_e26_s0" / n) for n in names}
    private = preds["full"]["split"] == "PrivateTest"
    y = preds["full"]["y_true"][private]
    full_right = preds["full"]["y_pred"][private] == y
    for run, row in table.iterrows():
        members = run.split(" + ")
        assert row["members"] == len(members)
        prob = np.mean([preds[m]["y_prob"].astype(np.float64) for m in members], axis=0).astype(np.float32)
        right = prob[private].argmax(1) == y
        assert row["PrivateTest_accuracy"] == pytest.approx(right.mean(), abs=1e-9), run
        if run != "full":
            assert row["discordant (full right / run right)"] == f"{(full_right & ~right).sum()} / " \
                                                                   f"{(~full_right & right).sum()}", run
    assert table["PrivateTest_accuracy"].idxmax() == table["PublicTest_accuracy"].idxmax() == "full + separable_fuse"
    text = (ROOT / "docs" / "results.md").read_text()
    section = text[text.index("**What averaging the committed runs gives"):]
    for run in ("full", "full + separable_fuse", "full + erasing", "full + ema + separable_fuse",
                "full + ema + erasing + separable_fuse"):
        r = table.loc[run]
        diff = "-" if run == "full" else (f"{r['diff vs full (PrivateTest)']:+.4f} "
                                          f"({r['diff vs full (PrivateTest, dedup)']:+.4f})")
        mcnemar = "-" if run == "full" else f"{r['McNemar p']:.2g} ({r['discordant (full right / run right)']})"
        assert docs_row(section, run)[1:] == [
            str(int(r["members"])), f"{r['PrivateTest_accuracy']:.4f} / {r['PrivateTest_macro_f1']:.3f}",
            f"{r['PrivateTest_dedup_accuracy']:.4f} / {r['PrivateTest_dedup_macro_f1']:.3f}", diff, mcnemar,
            f"{r['PublicTest_accuracy']:.4f}"], run
    mean = table.loc[["full", "separable_fuse"], "PrivateTest_accuracy"].mean()
    assert f"points ({table.loc['full + separable_fuse', 'PrivateTest_accuracy']:.4f} against {mean:.4f})" in \
        " ".join(section.split())


def test_the_ensembles_benchmark_refuses_too_few_runs_missing_predictions_and_runs_of_other_data(
        real_data, tmp_path, capsys):
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("ensembles_cli", ROOT / "benchmarks" / "ensembles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ref = ROOT / "benchmarks" / "results" / "recipe_e26_s0" / R.FULL
    for argv, says in (([str(ref)], "two or more run folders"), ([str(ref), str(tmp_path)], "no metrics.json")):
        with pytest.raises(SystemExit):
            module.parse_args([*argv, "--out", str(tmp_path / "x.csv")])
        assert says in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(ref, other)
    metrics = json.loads((other / runs.METRICS_FILE).read_text())
    metrics["headline"]["data_checksum"] = "0" * 64
    (other / runs.METRICS_FILE).write_text(json.dumps(metrics))
    code = module.main([str(ref), str(other), "--out", str(tmp_path / "x.csv"), "--params-dir", str(ROOT / "params"),
                        "--notebooks-dir", str(ROOT / "notebooks")])
    assert code == 2 and "runs ['other'] were trained on other data" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    code = module.main([str(ref), str(ref.parent / "ema"), "--split", "Test", "--out", str(tmp_path / "x.csv"),
                        "--params-dir", str(ROOT / "params"), "--notebooks-dir", str(ROOT / "notebooks")])
    assert code == 2 and "--split 'Test': the runs were scored on ['PrivateTest', 'PublicTest']" in \
        capsys.readouterr().err
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "earlier").mkdir()
    with pytest.raises(SystemExit):
        module.parse_args([str(ref), str(ref.parent / "ema"), "--out", "x.csv", "--work", str(tmp_path / "work")])
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.parse_args([str(ref), str(ref), "--out", "x.csv"])
    assert "--seed-table" in capsys.readouterr().err


def test_the_committed_seeds_and_the_seed_table_are_the_runs_files():
    """docs/results.md's seed table (issue 24) is ``recipe_seeds_cpu_e26.md``, written by ``--seed-table 0,1,2`` from
    ``recipe_e26_s{0,1,2}/full``: seeds 1 and 2 are the reference's recipe with their seed and nothing else (seed 1
    computed in float32 on the AVX2 CPU, seed 2 in mixed bfloat16), each seed's PrivateTest accuracy is its
    predictions', the ensemble's is the mean of their probabilities', the mean row is the seeds' mean, the train
    minutes are the timings', and every row of the table and the numbers the reading quotes are in the docs."""
    results = ROOT / "benchmarks" / "results"
    folders = [results / f"recipe_e26_s{k}" / R.FULL for k in (0, 1, 2)]
    ref = runs.read_recipe(folders[0])
    for k in (1, 2):
        assert runs.read_recipe(folders[k]) == {**ref, "seed": k}
    precisions = [runs.read_metrics(f)["metadata"]["precision"] for f in folders]
    assert precisions == ["mixed_bfloat16", "float32", "mixed_bfloat16"]
    table = pd.read_csv(results / "recipe_seeds_cpu_e26.csv", index_col=[0, 1]).loc[R.FULL]
    assert list(table["precision"][:3]) == precisions
    assert table.loc[["mean of 3 seeds", "sd of 3 seeds"], "train minutes"].isna().all()  # unlike CPUs
    preds = [runs.load_predictions(f) for f in folders]
    private = preds[0]["split"] == "PrivateTest"
    y = preds[0]["y_true"][private]
    for k, p in enumerate(preds):
        assert np.array_equal(p["source_ids"][private], preds[0]["source_ids"][private])
        assert table.loc[f"seed {k}", "PrivateTest_accuracy"] == pytest.approx(
            np.mean(p["y_pred"][private] == y), abs=1e-9)
    ensemble = np.mean([p["y_prob"].astype(np.float64) for p in preds], axis=0).argmax(1)
    assert table.loc["ensemble of 3", "PrivateTest_accuracy"] == pytest.approx(
        np.mean(ensemble[private] == y), abs=1e-9)
    seeds = table.loc[["seed 0", "seed 1", "seed 2"]]
    assert table.loc["mean of 3 seeds", "PrivateTest_accuracy"] == pytest.approx(seeds["PrivateTest_accuracy"].mean())
    assert seeds["best val acc"].idxmax() == "seed 2"  # the validation choice among the three
    timings = {k: pd.read_csv(results / f"recipe_e26_s{k}" / R.FULL / "timings.csv") for k in (1, 2)}
    for k, t in timings.items():
        assert table.loc[f"seed {k}", "train minutes"] == pytest.approx(round(t["seconds"].sum() / 60, 1), abs=0.05)
    docs = (ROOT / "docs" / "results.md").read_text()
    full_md = (results / "recipe_seeds_cpu_e26.md").read_text().split("`longer`:")[0]  # the full variant's table
    rows = [line for line in full_md.splitlines() if line.startswith("|")]
    section = docs[docs.index("**Three seeds of the reference recipe**"):]
    assert len(rows) == 2 + 6 and "\n".join(rows) in section  # the table whole, in its own section
    section = " ".join(section[: section.index("\n\n**", 10)].split())
    median = float(np.median(timings[1]["seconds"].iloc[13:22]))
    assert f"(median {median:.1f} s)" in section and f"26 x {median:.1f} s = {26 * median / 60:.0f} min" in section
    quiet = timings[2][timings[2]["others_cores"] <= _QUIET_CORES]  # seed 2: the epochs no other process shared
    busy = timings[2].drop(quiet.index)
    assert len(quiet) == 23 and list(busy["epoch"]) == [0, 2, 4]
    idle = float(np.median(quiet["seconds"]))
    assert f"median {idle:.1f} s" in section and f"26 x {idle:.1f} s = {26 * idle / 60:.1f} min" in section
    assert f"({busy['seconds'].min():.0f}-{busy['seconds'].max():.0f} s, `others_cores` " \
           f"{busy['others_cores'].min():.2f}-{busy['others_cores'].max():.2f})" in section
    mean, sd = table.loc["mean of 3 seeds"], table.loc["sd of 3 seeds"]
    assert f"Mean of the three seeds {mean['PrivateTest_accuracy']:.4f} (sd {sd['PrivateTest_accuracy']:.4f}), " \
           f"{mean['PrivateTest_dedup_accuracy']:.4f} without near-duplicates" in section
    assert f"{100 * (0.695 - mean['PrivateTest_accuracy']):.1f} points short of the issue's 0.695" in section
    ens = table.loc["ensemble of 3"]
    assert f"ensemble scores **{ens['PrivateTest_accuracy']:.4f}**" in section
    assert f"+{100 * (ens['PrivateTest_accuracy'] - mean['PrivateTest_accuracy']):.2f} over the seeds' mean" in section


def test_the_longer_seeds_and_their_comparison_with_full_are_the_runs_files():
    """docs/results.md's "The longer schedule at three seeds" (issue 24): ``recipe_e26_s{0,1,2}/longer`` are one recipe
    (36 epochs) with their seed and nothing else, all mixed bfloat16; the seed table's `longer` rows and the comparison
    with `full` seed by seed are their predictions'; both tables and the quoted numbers are in the docs."""
    from scipy import stats as st

    results = ROOT / "benchmarks" / "results"
    longer = [results / f"recipe_e26_s{k}" / "longer" for k in (0, 1, 2)]
    full = [results / f"recipe_e26_s{k}" / R.FULL for k in (0, 1, 2)]
    first = runs.read_recipe(longer[0])
    assert first["train_config"]["epochs"] == 36
    for k in (1, 2):
        assert runs.read_recipe(longer[k]) == {**first, "seed": k}
    assert {runs.read_metrics(f)["metadata"]["precision"] for f in longer} == {"mixed_bfloat16"}
    table = pd.read_csv(results / "recipe_seeds_cpu_e26.csv", index_col=[0, 1]).loc["longer"]
    acc = [_private_accuracy(f) for f in longer]
    assert list(table["PrivateTest_accuracy"][:3]) == pytest.approx(acc, abs=1e-9)
    assert table.loc["mean of 3 seeds", "PrivateTest_accuracy"] == pytest.approx(np.mean(acc))
    by_seed = pd.read_csv(results / "recipe_seeds_cpu_e26_longer_vs_full.csv", index_col=0)
    diffs = np.array(acc) - [_private_accuracy(f) for f in full]
    assert list(by_seed["diff"][:3]) == pytest.approx(diffs, abs=1e-9)
    assert by_seed.loc["paired t-test over seeds: p", "diff"] == pytest.approx(st.ttest_1samp(diffs, 0).pvalue)
    docs = (ROOT / "docs" / "results.md").read_text()
    longer_md = (results / "recipe_seeds_cpu_e26.md").read_text().split("`longer`:")[1]
    vs_md = (results / "recipe_seeds_cpu_e26_longer_vs_full.md").read_text()
    section = docs[docs.index("**The longer schedule at three seeds**"):]
    for md, n in ((longer_md, 2 + 6), (vs_md, 2 + 11)):
        rows = [line for line in md.splitlines() if line.startswith("|")]
        assert len(rows) == n and "\n".join(rows) in section
    section = " ".join(section[: section.index("\n\n**Every ingredient", 10)].split())
    mean, sd = table.loc["mean of 3 seeds"], table.loc["sd of 3 seeds"]
    assert f"Mean of the three `longer` seeds {mean['PrivateTest_accuracy']:.4f} " \
           f"(sd {sd['PrivateTest_accuracy']:.4f}), {mean['PrivateTest_dedup_accuracy']:.4f} without near-duplicates" \
           in section
    assert f"{100 * (0.695 - mean['PrivateTest_accuracy']):.1f} points short of the issue's 0.695" in section
    gain = by_seed.loc["mean over 3 seeds"]
    assert f"mean gain is {100 * gain['diff']:+.2f} points ({100 * gain['diff dedup']:+.2f} without" in section
    assert "95% interval {:+.2f} to {:+.2f} points".format(
        *(100 * by_seed.loc[f"95% interval of the mean: {e}", "diff"] for e in ("low", "high"))) in section
    assert f"about {100 * by_seed.loc[S.POWER80, 'diff']:.1f} points with 80% power" in section
    # the validation choice among the new runs: seed 1, whose exported card's scores are quoted
    vals = [runs.read_metrics(f)["headline"]["best_val_accuracy"] for f in longer]
    assert int(np.argmax(vals)) == 1 and f"validation accuracy of any run on this split ({vals[1]:.4f})" in section
    card = json.loads((results / "validation_choice_longer_s1_model_card.json").read_text())
    assert card["split_params"]["group"] is True and card["source_run"].endswith("e26-s1/longer")
    by_tta = {k: v["PrivateTest_accuracy"] for k, v in card["scores_by_tta"].items()}
    assert "scores with its float16 weights {:.4f} PrivateTest with ten-crop ({:.4f} without".format(
        by_tta["ten_crop"], card["scores_by_tta"]["ten_crop"]["PrivateTest_dedup_accuracy"]) in section
    assert "{:.4f} with `center_flip`, {:.4f} with `flip`, {:.4f} with none".format(
        by_tta["center_flip"], by_tta["flip"], by_tta["none"]) in section
    # the model shipped then (replaced on 2026-12-05; its card kept beside the results)
    then = json.loads((results / "shipped_until_2026-12-05_model_card.json").read_text())
    shipped_ten_crop = then["scores_by_tta"]["ten_crop"]["PrivateTest_accuracy"]
    assert by_tta["ten_crop"] < 0.69 and by_tta["ten_crop"] < shipped_ten_crop  # "below ... the shipped model's"
    assert f"below the shipped model's {shipped_ten_crop:.4f} (the model shipped until 2026-12-05)" in section
    timings = {k: pd.read_csv(longer[k] / "timings.csv") for k in (1, 2)}
    quiet = timings[1][timings[1]["others_cores"] <= _QUIET_CORES]
    assert list(timings[1].drop(quiet.index)["epoch"]) == [1, 2, 3, 4, 5, 6]  # "epochs 2-7 shared the cores"
    assert f"median of {quiet['seconds'].median():.1f} s (36 x {quiet['seconds'].median():.1f} s" in section
    assert (timings[2]["others_cores"] <= _QUIET_CORES).all()
    assert f"(median {timings[2]['seconds'].median():.1f} s)" in section


def test_docs_training_time_on_the_faster_bf16_cpu_is_the_committed_throughput_and_seed():
    """docs/results.md's Zen 4 rows of the training-time table are ``throughput_msca_resnet_b128_zen4.csv``'s train
    images/s, their minutes one recipe seed's images at that speed, and the measured seed is seed 2's timings."""
    results = ROOT / "benchmarks" / "results"
    label = ("**a faster bf16 CPU** (AMD EPYC Zen 4, family 25 model 17, AVX-512 + AVX512-BF16, no AMX; 2026-12-04 "
             "23:32, commit `4ef6caa`)")
    first = _training_time_rows("throughput_msca_resnet_b128_zen4.csv",
                                {label: "mixed_bfloat16", "the same Zen 4 CPU": "float32"},
                                lambda seconds: f"{seconds / 60:.0f} min")[label]
    timings = pd.read_csv(results / "recipe_e26_s2" / R.FULL / "timings.csv")
    assert set(timings["cpu"]) == {"2 cores, AVX-512 + bf16"}
    minutes = round(timings["seconds"].sum() / 60, 1)
    assert first[4].startswith(f"**{minutes} min** (seed 2 of the seed table")
    # "16-17% faster": the two CSVs' train images/s, precision by precision
    zen4, first_cpu = (pd.read_csv(results / name).set_index("precision")["train_img_s"]
                       for name in ("throughput_msca_resnet_b128_zen4.csv", "throughput_msca_resnet_b128.csv"))
    gains = sorted(round(100 * (zen4[p] / first_cpu[p] - 1)) for p in ("float32", "mixed_bfloat16"))
    text = " ".join((ROOT / "docs" / "results.md").read_text().split())
    assert f"and {gains[0]}-{gains[1]}% faster (float32, bfloat16;" in text
    assert gains == [round(100 * (zen4[p] / first_cpu[p] - 1)) for p in ("float32", "mixed_bfloat16")]  # in order
    steps = [int(pd.read_csv(results / n)["steps"].iloc[0])
             for n in ("throughput_msca_resnet_b128_zen4.csv", "throughput_msca_resnet_b128.csv")]
    assert f"{steps[0]} timed steps after 2 warm-up steps where the first bf16 CPU's rows timed {steps[1]}" in text
    assert f"A measured seed of the recipe took {minutes} minutes there" in text


def _ingredients_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ingredients_cli", ROOT / "benchmarks" / "ingredients.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_INGREDIENT_TABLES = ["recipe_ablation_cpu_e26.csv", "recipe_ablation_cpu_e26_candidates.csv",
                      "recipe_ablation_cpu_e26_distill.csv", "recipe_ablation_cpu_e26_ema.csv",
                      "recipe_ablation_cpu_e26_erasing.csv", "recipe_ablation_cpu_e26_separable.csv",
                      "recipe_ablation_cpu_e26_longer.csv", "recipe_ablation_cpu_e26_longer_distill_vs_full.csv",
                      "recipe_ablation_cpu_e26_deeper.csv", "recipe_ablation_cpu_e26_mixup.csv",
                      "recipe_ablation_cpu_e26_cutmix.csv", "recipe_ablation_cpu_e26_weight_decay.csv"]


def test_the_ingredient_table_is_the_committed_ablation_tables_together_and_the_docs_quote_it(tmp_path):
    """docs/results.md's one ingredient table (issue 24's closing note) is ``recipe_ingredients_cpu_e26.csv``, which
    ``benchmarks/ingredients.py`` rebuilds from the twelve committed ablation CSVs to the last digit: every row's
    scores are its file's, the Holm-adjusted p of the smallest p is its family's size times it, and the detectable
    difference is ``stats.detectable_difference_mcnemar``'s for the row's discordant images."""
    from fer_utils import stats

    results = ROOT / "benchmarks" / "results"
    module = _ingredients_module()
    assert module.main([*(str(results / t) for t in _INGREDIENT_TABLES), "--images", "3589",
                        "--out", str(tmp_path / "ingredients.csv")]) == 0
    committed = pd.read_csv(results / "recipe_ingredients_cpu_e26.csv").set_index("variant")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ingredients.csv").set_index("variant"), committed)
    assert (tmp_path / "ingredients.md").read_text() == (results / "recipe_ingredients_cpu_e26.md").read_text()
    for name in _INGREDIENT_TABLES:
        source = pd.read_csv(results / name).set_index("variant")
        for variant in source.index.drop("full"):
            assert committed.loc[variant, "PrivateTest_accuracy"] == source.loc[variant, "PrivateTest_accuracy"]
            assert committed.loc[variant, "from"] == name
    rescored = committed.index[committed["family"] == module.RESCORED]
    trained = committed.index[committed["family"] == module.TRAINED]
    assert set(rescored) == {"last_epoch", "no_tta", "center_flip_tta", "flip_tta"}
    assert set(trained) == {"candidates", "distill", "ema", "erasing", "separable_fuse", "longer", "longer_distill",
                            "deeper", "mixup", "cutmix", "weight_decay"}
    for rows in (rescored, trained):  # Holm within each family: the smallest p times the family's size
        p = committed.loc[rows, "McNemar p"]
        assert committed.loc[p.idxmin(), "McNemar p (Holm)"] == pytest.approx(len(rows) * p.min())
    compared = ["full", "candidates", "ema", "longer", "longer_distill", "deeper", "mixup", "cutmix", "weight_decay"]
    assert committed.loc[compared, "reference train minutes"].tolist() == [61.3] + [59.6] * 8
    assert committed.loc[["longer", "longer_distill"], "epochs"].tolist() == [36, 36]
    assert set(committed.drop(index=["longer", "longer_distill"])["epochs"]) == {26}
    teachers = committed["teacher inference minutes"].dropna().round(1).to_dict()
    assert teachers == {"distill": 6.0, "longer_distill": 11.3}
    b, c = map(int, committed.loc["ema", "discordant (full right / variant right)"].split(" / "))
    assert committed.loc["ema", "detectable (80% power)"] == pytest.approx(
        stats.detectable_difference_mcnemar(3589, b + c))
    d, se = (c - b) / 3589, np.sqrt(b + c - (c - b) ** 2 / 3589) / 3589
    ema = committed.loc["ema"]
    assert ema["diff vs full (PrivateTest)"] == pytest.approx(d) and d < 0
    assert (ema["diff 95% low"], ema["diff 95% high"]) == pytest.approx((d - 1.96 * se, d + 1.96 * se))
    docs = (ROOT / "docs" / "results.md").read_text()
    rows = [line for line in (results / "recipe_ingredients_cpu_e26.md").read_text().splitlines()
            if line.startswith("|")]
    ingredients = docs[docs.index("**Every ingredient at full length, one table**"):]
    assert len(rows) == 2 + 16 and "\n".join(rows) in ingredients  # the table whole, in its own section
    section = " ".join(ingredients.split())
    no_tta = committed.loc["no_tta"]
    assert f"{100 * no_tta['diff vs full (PrivateTest)']:.2f} points (p = {no_tta['McNemar p']:.2g}, " \
           f"{no_tta['McNemar p (Holm)']:.1g} after Holm" in section
    holm = committed.loc[trained, "McNemar p (Holm)"]
    loss = committed.loc[holm.idxmin()]  # the smallest adjusted p is a loss: CutMix's
    assert holm.idxmin() == "cutmix" and loss["diff vs full (PrivateTest)"] < 0 and loss["McNemar p (Holm)"] > 0.05
    assert f"smallest adjusted p is {holm.min():.2g}, `cutmix`'s, for a loss " \
           f"({100 * loss['diff vs full (PrivateTest)']:.2f} points, p = {loss['McNemar p']:.2g} alone" in section
    holm = holm[committed.loc[trained, "diff vs full (PrivateTest)"] > 0]
    best = committed.loc[holm.idxmin()]
    longer_reading = " ".join(docs[docs.index("**A longer schedule at full length**"):].split())
    assert f"{best['McNemar p (Holm)']:.2f} over the eleven of the ingredient table below" in longer_reading
    assert holm.idxmin() == "longer" and best["McNemar p (Holm)"] > 0.05  # not significant after Holm
    assert f"among the gains it is {holm.min():.2f} (`longer`: +{100 * best['diff vs full (PrivateTest)']:.2f} " \
           f"points, p = {best['McNemar p']:.2g} alone, its 95% interval +{100 * best['diff 95% low']:.2f} to " \
           f"+{100 * best['diff 95% high']:.2f} points" in section
    deeper = committed.loc["deeper"]
    gap = 0.695 - committed.loc["full", "PrivateTest_accuracy"]  # what the issue's 69.5% asks of an ingredient
    assert f"`deeper`'s interval reaches +{100 * deeper['diff 95% high']:.2f} points, but its estimate, " \
           f"+{100 * deeper['diff vs full (PrivateTest)']:.2f} (p = {deeper['McNemar p']:.2g} alone), falls short" \
           in section and deeper["diff vs full (PrivateTest)"] < gap
    high = committed.loc[trained.drop(["longer", "longer_distill", "deeper"]), "diff 95% high"]  # cutmix's too
    student = committed.loc["longer_distill"]
    assert f"`longer_distill` ({100 * student['diff vs full (PrivateTest)']:+.2f}, p = {student['McNemar p']:.2g} " \
           "alone) is `longer` plus distillation" in section
    assert f"every other ingredient's interval ends at +{100 * high.max():.2f} points or below " \
           f"(`{high.idxmax()}`'s" in section
    assert f"brings the {100 * gap:.1f} points between" in section


def test_the_ingredient_table_refuses_tables_that_cannot_stand_together(tmp_path, capsys):
    results = ROOT / "benchmarks" / "results"
    module = _ingredients_module()
    first, ema = (results / t for t in ("recipe_ablation_cpu_e26.csv", "recipe_ablation_cpu_e26_ema.csv"))
    table = pd.read_csv(ema).set_index("variant")

    def write(name, frame):
        frame.to_csv(tmp_path / name)
        return str(tmp_path / name)

    other = table.copy()
    other.loc["full", "PrivateTest_accuracy"] += 0.001  # another reference run
    no_full = table.drop(index="full")
    longer = table.copy()
    longer.loc["ema", "epochs"] = 7
    stretched = table.rename(index={"ema": "longer"})
    stretched.loc["longer", "epochs"] = 26  # 'longer' trains 1.4x the reference's epochs: 36, not 26
    for tables, says in (([str(first), write("other.csv", other)],
                          "other.csv: its 'full' row has PrivateTest_accuracy"),
                         ([str(first), write("no_full.csv", no_full)], "no_full.csv: no 'full' row"),
                         ([str(first), write("longer.csv", longer)],
                          "other budgets than the reference's 26 epochs (a variant's own factor, e.g. 'longer', "
                          "allowed): {'ema': 7}"),
                         ([str(first), write("stretched.csv", stretched)], "allowed): {'longer': 26}"),
                         ([str(first), str(ema), str(ema)], "variant(s) ['ema'] appear in more than one table")):
        assert module.main([*tables, "--out", str(tmp_path / "x.csv")]) == 2, says
        assert says in capsys.readouterr().err
        assert not (tmp_path / "x.csv").exists()
    stretched.loc["longer", "epochs"] = 36
    assert module.main([str(first), write("stretched.csv", stretched), "--out", str(tmp_path / "ok.csv")]) == 0
    assert pd.read_csv(tmp_path / "ok.csv").set_index("variant").loc["longer", "epochs"] == 36
    against = table.rename(columns=lambda c: c.replace("full", "separable_fuse"))  # recipe.py --reference
    assert module.main([str(first), write("against.csv", against), "--out", str(tmp_path / "x.csv")]) == 2
    assert "against.csv: no column(s) ['diff vs full (PrivateTest)', 'discordant (full right / variant right)']" \
        in capsys.readouterr().err
    for existing in ("x.csv", "x.md"):  # neither the table nor its Markdown is overwritten
        (tmp_path / existing).write_text("mine")
        with pytest.raises(SystemExit):
            module.parse_args([str(first), "--out", str(tmp_path / "x.csv")])
        assert "exist; give a new name" in capsys.readouterr().err and (tmp_path / existing).read_text() == "mine"
        (tmp_path / existing).unlink()


def test_the_longer_schedule_distilled_is_longer_plus_the_ensembles_targets_and_the_docs_read_its_files():
    """docs/results.md's "The longer schedule distilled from its three-seed ensemble" (issue 24): the student's recipe
    is ``longer``'s (seed 0) plus distillation (alpha 0.5, ten-crop) from the three ``longer`` seeds and nothing else;
    the teacher record names those members and says what its targets carry; the table's accuracies and McNemar counts
    are the runs' predictions'; every quoted number is in the section."""
    from fer_utils import stats

    results = ROOT / "benchmarks" / "results"
    student_dir, longer_dir = (results / "recipe_e26_s0" / v for v in ("longer_distill", "longer"))
    student, longer = runs.read_recipe(student_dir), runs.read_recipe(longer_dir)
    taught = student.pop("distillation")
    assert student == {**longer, "target": "distribution"}
    teacher = json.loads((results / "recipe_e26_teacher_longer_s012.json").read_text())
    assert [m.split("recipe_ablation/")[1] for m in taught["members"]] == [f"e26-s{k}/longer" for k in (0, 1, 2)]
    assert (taught["alpha"], taught["tta"]) == (0.5, "ten_crop")
    assert (teacher["members"], teacher["model_sha256"]) == (taught["members"], taught["model_sha256"])
    metrics = runs.read_metrics(student_dir)
    assert metrics["metadata"]["precision"] == "mixed_bfloat16"
    assert teacher["data_checksum"] == student["data_checksum"] and teacher["reused"] is True  # seed 0's file, reused
    assert teacher["training_rows"] == metrics["metadata"]["data"]["splits"]["Training"]
    pred = {d.name: runs.load_predictions(d) for d in (longer_dir, student_dir, results / "recipe_e26_s0" / R.FULL)}
    for p in pred.values():  # the same test images in the same order
        assert np.array_equal(p["y_true"], pred["longer"]["y_true"])
        assert np.array_equal(p["source_ids"], pred["longer"]["source_ids"])
    private = pred["longer"]["split"] == "PrivateTest"
    right = {k: (p["y_pred"] == p["y_true"])[private] for k, p in pred.items()}
    table = pd.read_csv(results / "recipe_ablation_cpu_e26_longer_distill.csv", index_col=0)
    vs_full = pd.read_csv(results / "recipe_ablation_cpu_e26_longer_distill_vs_full.csv", index_col=0)
    row = table.loc["longer_distill"]
    assert row["PrivateTest_accuracy"] == pytest.approx(right["longer_distill"].mean(), abs=1e-9)
    b = int((right["longer"] & ~right["longer_distill"]).sum())
    c = int((~right["longer"] & right["longer_distill"]).sum())
    assert row["discordant (longer right / variant right)"] == f"{b} / {c}"
    docs = (ROOT / "docs" / "results.md").read_text()
    rows = [line for line in (results / "recipe_ablation_cpu_e26_longer_distill.md").read_text().splitlines()
            if line.startswith("| `longer")]
    section = docs[docs.index("**The longer schedule distilled from its three-seed ensemble**"):]
    assert len(rows) == 2 and "\n".join(rows) in section
    section = " ".join(section[: section.index("\n\n**Every ingredient", 10)].split())
    ref = table.loc["longer"]
    assert f"the student scores {row['PrivateTest_accuracy']:.4f}, {100 * row['diff vs longer (PrivateTest)']:+.2f} " \
           f"points against `longer` (McNemar p = {row['McNemar p']:.2g}, {b} / {c} discordant images;" in section
    assert f"Without near-duplicates it is {100 * row['diff vs longer (PrivateTest, dedup)']:+.2f} points " \
           f"({row['PrivateTest_dedup_accuracy']:.4f} against {ref['PrivateTest_dedup_accuracy']:.4f}), " \
           "on PublicTest " \
           f"{100 * (row['PublicTest_accuracy'] - ref['PublicTest_accuracy']):+.2f}, on validation " \
           f"{100 * (row['best val acc'] - ref['best val acc']):+.2f}" in section
    full = vs_full.loc["longer_distill"]
    n = int(private.sum())
    f_b = int((right[R.FULL] & ~right["longer_distill"]).sum())
    f_c = int((~right[R.FULL] & right["longer_distill"]).sum())
    assert full["discordant (full right / variant right)"] == f"{f_b} / {f_c}"
    assert full["diff vs full (PrivateTest)"] == pytest.approx((f_c - f_b) / n, abs=1e-9)
    d, se = (c - b) / n, np.sqrt(b + c - (c - b) ** 2 / n) / n  # the interval and power quoted against longer
    assert "95% interval {:+.2f} to {:+.2f} points; this test finds {:.1f} points with 80% power".format(
        100 * (d - 1.96 * se), 100 * (d + 1.96 * se), 100 * stats.detectable_difference_mcnemar(n, b + c)) in section
    seeds = pd.read_csv(results / "recipe_seeds_cpu_e26.csv", index_col=[0, 1]).loc["longer"]
    sd = seeds.loc["sd of 3 seeds"]
    assert "about one sd of the `longer` seeds on each measure ({:.2f}, {:.2f} and {:.2f} points)".format(
        100 * sd["PrivateTest_dedup_accuracy"], 100 * sd["PublicTest_accuracy"], 100 * sd["best val acc"]) in section
    assert " + ".join(f"{m:.1f}" for m in seeds["train minutes"][:3]) + " min" in section
    assert f"Against `full` it is {100 * full['diff vs full (PrivateTest)']:+.2f} points " \
           f"(p = {full['McNemar p']:.2g}, " \
           f"{full['discordant (full right / variant right)']})" in section
    ensemble = pd.read_csv(results / "recipe_seeds_cpu_e26.csv", index_col=[0, 1]).loc[("longer", "ensemble of 3")]
    assert f"the teacher is the three `longer` seeds' ensemble ({ensemble['PrivateTest_accuracy']:.4f} PrivateTest, " \
           f"{ensemble['PrivateTest_dedup_accuracy']:.4f} without near-duplicates)" in section
    assert f"{100 * (ensemble['PrivateTest_accuracy'] - row['PrivateTest_accuracy']):.1f} point below its teacher" \
           in section
    assert f"{teacher['inference_minutes']:.1f} min of ten-crop inference on the {teacher['training_rows']:,} " \
           "Training rows" in section
    assert f"the teacher is right on {100 * teacher['train_accuracy']:.1f}%, with a mean top probability of " \
           f"{teacher['mean_top_probability']:.3f} ({100 * teacher['share_top_above_90']:.1f}% of rows above 0.9) " \
           "and " \
           f"a mean entropy of {teacher['mean_entropy']:.3f} nats" in section
    timings = pd.read_csv(student_dir / "timings.csv")
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    assert list(timings.drop(quiet.index)["epoch"] + 1) == [6, 16] and "epochs 6 and 16 shared the cores" in section
    assert len(timings) == student["train_config"]["epochs"] == 36
    assert f"The student trained {timings['seconds'].sum() / 60:.1f} min" in section
    median = quiet["seconds"].median()
    assert f"the other {len(quiet)} a median of {median:.1f} s ({len(timings)} x {median:.1f} s = " \
           f"{len(timings) * median / 60:.1f} min)" in section


def test_the_second_distilled_seed_and_the_seed_by_seed_comparison_are_the_runs_files():
    """docs/results.md's seed 1 of ``longer_distill``: seed 0's recipe with seed 1 (the same teacher), the
    seed-by-seed table's differences are the runs' predictions, its rows and the quoted numbers are in the docs."""
    from scipy import stats as st

    results = ROOT / "benchmarks" / "results"
    students = [results / f"recipe_e26_s{k}" / "longer_distill" for k in (0, 1)]
    longer = [results / f"recipe_e26_s{k}" / "longer" for k in (0, 1)]
    assert runs.read_recipe(students[1]) == {**runs.read_recipe(students[0]), "seed": 1}
    folder = results / "recipe_seeds_s01_longer_distill"
    by_seed = pd.read_csv(folder / "recipe_seeds_cpu_e26_longer_distill_vs_longer.csv", index_col=0)
    diffs = np.array([_private_accuracy(s) for s in students]) - [_private_accuracy(x) for x in longer]
    assert list(by_seed["diff"][:2]) == pytest.approx(diffs, abs=1e-9)
    assert by_seed.loc["paired t-test over seeds: p", "diff"] == pytest.approx(st.ttest_1samp(diffs, 0).pvalue)
    docs = (ROOT / "docs" / "results.md").read_text()
    rows = [line for line in (folder / "recipe_seeds_cpu_e26_longer_distill_vs_longer.md").read_text().splitlines()
            if line.startswith("|")]
    section = docs[docs.index("**Seed 1** (`--seed 1`, the same command otherwise"):]
    assert len(rows) == 2 + 10 and "\n".join(rows) in section
    section = " ".join(section[: section.index("\n\n**Every ingredient", 10)].split())
    table = pd.read_csv(folder / "recipe_seeds_cpu_e26.csv", index_col=[0, 1])
    mean = table.loc[("longer_distill", "mean of 2 seeds")]
    assert f"Mean of the two students {mean['PrivateTest_accuracy']:.4f} ({mean['PrivateTest_dedup_accuracy']:.4f} " \
           "without near-duplicates)" in section
    assert f"against {table.loc[('longer', 'mean of 2 seeds'), 'PrivateTest_accuracy']:.4f} for the same two" in section
    third = 3 * 0.695 - table.loc["longer_distill"].loc[["seed 0", "seed 1"], "PrivateTest_accuracy"].sum()
    assert f"unless it scored above {third:.3f}" in section
    vals = [runs.read_metrics(s)["headline"]["best_val_accuracy"] for s in students]
    assert vals[1] > vals[0] and f"the students score {vals[0]:.4f} and {vals[1]:.4f}" in section
    assert f"scores {_private_accuracy(students[1]):.4f}: below 0.69" in section
    timings = pd.read_csv(students[1] / "timings.csv")
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    assert list(timings.drop(quiet.index)["epoch"] + 1) == list(range(1, 12)) and "epochs 1-11 shared" in section
    assert f"Seed 1 trained {timings['seconds'].sum() / 60:.1f} min" in section
    assert f"its other {len(quiet)} a median of {quiet['seconds'].median():.1f} s" in section


#: Committed one-change runs of issue 24 on the faster bf16 CPU: variant -> (docs section title, the recipe key that
#: differs from the reference's, its value; for ``train_config`` the training keys that differ and their values).
_ONE_CHANGE_RUNS = {
    "deeper": ("**A deeper network at full length**", "model_kwargs", {"filters": [64, 128, 256, 512]}),
    "mixup": ("**Mixup at full length**", "augment", {"flip": True, "shift": 0.1, "rotation_deg": 10, "zoom": 0.1,
                                                      "mixup": 0.2}),
    "cutmix": ("**CutMix at full length**", "augment", {"flip": True, "shift": 0.1, "rotation_deg": 10, "zoom": 0.1,
                                                        "cutmix": 1.0}),
    "weight_decay": ("**Decoupled weight decay at full length**", "train_config", {"weight_decay": 0.05}),
}


@pytest.mark.parametrize("variant", sorted(_ONE_CHANGE_RUNS))
def test_a_committed_one_change_run_is_the_reference_plus_that_change_and_the_docs_read_its_files(variant):
    """docs/results.md's section on each one-change run (issue 24) comes from ``recipe_e26_s0/<variant>``: the
    reference's recipe with one key changed, its row's cells are its ablation table's, its accuracy its predictions',
    its train minutes its timings', its best epoch its history's, and the quoted differences, quiet-epoch median and
    training accuracy are those files' too."""
    from fer_utils import stats

    title, key, value = _ONE_CHANGE_RUNS[variant]
    results = ROOT / "benchmarks" / "results"
    folder = results / "recipe_e26_s0" / variant
    ref, run = (runs.read_recipe(results / "recipe_e26_s0" / v) for v in (R.FULL, variant))
    if key == "train_config":  # the keys that differ, the reference read with the runner's defaults filled in
        from fer_utils.experiments.running import recipe_train_config

        ref = {**ref, key: recipe_train_config(ref[key])}
        assert {k: v for k, v in run[key].items() if ref[key][k] != v} == value
    else:
        assert run[key] == value and ref[key] != value
    assert {k: v for k, v in run.items() if k != key} == {k: v for k, v in ref.items() if k != key}
    assert runs.read_metrics(folder)["metadata"]["precision"] == "mixed_bfloat16"
    table = pd.read_csv(results / f"recipe_ablation_cpu_e26_{variant}.csv").set_index("variant")
    row, full = table.loc[variant], table.loc[R.FULL]
    assert row["PrivateTest_accuracy"] == pytest.approx(_private_accuracy(folder), abs=1e-9)
    timings, history = pd.read_csv(folder / "timings.csv"), pd.read_csv(folder / "history.csv")
    assert len(timings) == len(history) == 26
    assert row["train minutes"] == round(timings["seconds"].sum() / 60, 1)
    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index(title):]
    section = " ".join(section[: section.index("\n\n**", 10)].split())
    cells = [c.replace("*", "") for c in docs_row(docs[docs.index(title):], f"`{variant}`")]
    reference = [c.replace("*", "") for c in docs_row(docs[docs.index(title):], f"`{R.FULL}`")]
    best_epoch = int(pd.read_csv(results / "recipe_e26_s0" / R.FULL / "history.csv")["val_accuracy"].idxmax()) + 1
    assert reference[2:6] == [f"{full['train minutes']:.1f}", f"{full['best val acc']:.4f} ({best_epoch})",
                              f"{full['PrivateTest_accuracy']:.4f} / {full['PrivateTest_macro_f1']:.3f}",
                              f"{full['PrivateTest_dedup_accuracy']:.4f} / {full['PrivateTest_dedup_macro_f1']:.3f}"]
    assert cells[2] == f"{row['train minutes']:.1f}"
    assert cells[3] == f"{row['best val acc']:.4f} ({int(history['val_accuracy'].idxmax()) + 1})"
    assert cells[4] == f"{row['PrivateTest_accuracy']:.4f} / {row['PrivateTest_macro_f1']:.3f}"
    assert cells[5] == f"{row['PrivateTest_dedup_accuracy']:.4f} / {row['PrivateTest_dedup_macro_f1']:.3f}"
    assert cells[6] == f"{row['diff vs full (PrivateTest)']:+.4f} ({row['diff vs full (PrivateTest, dedup)']:+.4f})"
    assert cells[7] == f"{row['McNemar p']:.2g} ({row['discordant (full right / variant right)']})"
    assert cells[8] == f"{row['PublicTest_accuracy']:.4f} ({row['PublicTest_dedup_accuracy']:.4f})"
    points = {k: 100 * (row[k] - full[k]) for k in ("PrivateTest_accuracy", "PrivateTest_dedup_accuracy",
                                                    "PublicTest_accuracy", "PublicTest_dedup_accuracy",
                                                    "best val acc", "PrivateTest_dedup_macro_f1")}
    assert f"{points['PrivateTest_accuracy']:+.2f} points on PrivateTest (p = {row['McNemar p']:.2g};" in section
    discordant = [int(n) for n in row["discordant (full right / variant right)"].split(" / ")]
    low, high = stats.paired_difference_interval(3589, *discordant)
    assert f"95% interval {100 * low:+.2f} to {100 * high:+.2f} points" in section
    assert f"{points['PrivateTest_dedup_accuracy']:+.2f} without near-duplicates, PublicTest " \
           f"{points['PublicTest_accuracy']:+.1f} ({points['PublicTest_dedup_accuracy']:+.1f} without" in section
    assert f"validation {points['best val acc']:+.2f}" in section
    assert f"macro-F1 without near-duplicates {points['PrivateTest_dedup_macro_f1']:+.1f} points" in section
    assert f"training accuracy at the last epoch {history['accuracy'].iloc[-1]:.3f}" in section
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    median = float(np.median(quiet["seconds"]))
    assert f"median of {median:.1f} s" in section and f"({len(quiet)} of 26;" in section
    assert f"{26 * median / 60:.1f} minutes for 26 epochs" in section
    busy = timings.drop(quiet.index)["seconds"]  # the epochs that shared the cores, as the section words them
    assert (f"{busy.iloc[0]:.1f} s" if len(busy) == 1 else f"{busy.min():.0f}-{busy.max():.0f} s") in section
    same_cpu = pd.read_csv(results / "recipe_e26_s2" / R.FULL / "timings.csv")  # the reference on this CPU kind
    assert f"{np.median(same_cpu[same_cpu['others_cores'] <= _QUIET_CORES]['seconds']):.1f} s" in section
    detectable = stats.detectable_difference_mcnemar(3589, sum(discordant))
    assert f"this test finds {100 * detectable:.1f} points with 80% power" in section


def test_the_third_distilled_seed_and_the_three_seed_tables_are_the_runs_files():
    """docs/results.md's seed 2 of ``longer_distill``: seed 0's recipe with seed 2 (the same teacher); the three-seed
    tables' seed-by-seed differences and t-tests are the runs' predictions; their ``full`` and ``longer`` rows are the
    committed seed table's; the docs hold the tables whole and quote their numbers, the validation tie-break and the
    shared epochs."""
    from scipy import stats as st

    results = ROOT / "benchmarks" / "results"
    students = [results / f"recipe_e26_s{k}" / "longer_distill" for k in (0, 1, 2)]
    assert runs.read_recipe(students[2]) == {**runs.read_recipe(students[0]), "seed": 2}
    folder = results / "recipe_seeds_s012_longer_distill"
    table = pd.read_csv(folder / "recipe_seeds_cpu_e26.csv", index_col=[0, 1])
    committed = pd.read_csv(results / "recipe_seeds_cpu_e26.csv", index_col=[0, 1])
    pd.testing.assert_frame_equal(table.loc[["full", "longer"]], committed)
    mine = np.array([_private_accuracy(s) for s in students])
    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index("**Seed 2** (`--seed 2`, the same command otherwise"):]
    section = section[: section.index("\n\n**", 10)]
    seed_rows = (folder / "recipe_seeds_cpu_e26.md").read_text().split("`longer_distill`:")[1]
    assert "\n".join(line for line in seed_rows.splitlines() if line.startswith("|")) in section
    quoted = {}
    for other in ("longer", R.FULL):
        name = f"recipe_seeds_cpu_e26_longer_distill_vs_{other}"
        by_seed = pd.read_csv(folder / f"{name}.csv", index_col=0)
        diffs = mine - [_private_accuracy(results / f"recipe_e26_s{k}" / other) for k in (0, 1, 2)]
        assert list(by_seed["diff"][:3]) == pytest.approx(diffs, abs=1e-9)
        assert by_seed.loc["mean over 3 seeds", "diff"] == pytest.approx(diffs.mean(), abs=1e-12)
        assert by_seed.loc["paired t-test over seeds: p", "diff"] == pytest.approx(st.ttest_1samp(diffs, 0).pvalue)
        rows = [line for line in (folder / f"{name}.md").read_text().splitlines() if line.startswith("|")]
        assert len(rows) == 2 + 11 and "\n".join(rows) in section
        quoted[other] = by_seed
    section = " ".join(section.split())
    mean, sd = table.loc[("longer_distill", "mean of 3 seeds")], table.loc[("longer_distill", "sd of 3 seeds")]
    assert mean["PrivateTest_accuracy"] == pytest.approx(mine.mean(), abs=1e-12)
    assert f"**Mean of the three students {mean['PrivateTest_accuracy']:.4f} (sd {sd['PrivateTest_accuracy']:.4f}), " \
           f"{mean['PrivateTest_dedup_accuracy']:.4f} without near-duplicates, macro-F1 " \
           f"{mean['PrivateTest_macro_f1']:.3f}**" in section
    longer, full = quoted["longer"], quoted[R.FULL]
    assert f"seed 2's student scores {mine[2]:.4f}, {100 * longer['diff'].iloc[2]:+.2f} points against `longer` " \
           f"seed 2 (p = {longer['McNemar p'].iloc[2]:.2g}; {100 * longer['diff dedup'].iloc[2]:+.2f} without" \
           in section
    t = longer.loc[["mean over 3 seeds", "paired t-test over seeds: p", "95% interval of the mean: low",
                    "95% interval of the mean: high"]]
    assert f"{100 * t['diff'].iloc[0]:+.2f} points over the three `longer` seeds (paired t-test over seeds p = " \
           f"{t['diff'].iloc[1]:.2f}, 95% interval {100 * t['diff'].iloc[2]:+.2f} to {100 * t['diff'].iloc[3]:+.2f} " \
           f"points; {100 * t['diff dedup'].iloc[0]:+.2f} without near-duplicates, p = {t['diff dedup'].iloc[1]:.2f})" \
           in section
    assert f"{100 * full.loc['mean over 3 seeds', 'diff']:+.2f} over the three `full` seeds (p = " \
           f"{full.loc['paired t-test over seeds: p', 'diff']:.2f})" in section
    assert f"and {100 * (0.695 - mean['PrivateTest_accuracy']):.2f} points short of the issue's 0.695" in section
    ens = longer.loc["ensemble of 3"]
    assert f"ensemble scores {ens['longer_distill']:.4f}, {100 * (ens['longer'] - ens['longer_distill']):.2f} points " \
           f"below the `longer` ensemble that taught them (p = {ens['McNemar p']:.2f})" in section
    spreads = [100 * table.loc[(v, "sd of 3 seeds"), "PrivateTest_accuracy"] for v in ("longer_distill", "longer",
                                                                                        R.FULL)]
    assert "(sd {:.2f} points against `longer`'s {:.2f} and `full`'s {:.2f})".format(*spreads) in section
    # the validation choice: seed 2's student is one validation image below longer seed 1
    n_val = runs.read_metrics(students[2])["metadata"]["data"]["splits"]["Validation"]
    val = runs.read_metrics(students[2])["headline"]["best_val_accuracy"]
    best = runs.read_metrics(results / "recipe_e26_s1" / "longer")["headline"]["best_val_accuracy"]
    assert round((best - val) * n_val, 3) == 1
    assert f"one image of {n_val:,} below `longer` seed 1's {best:.4f}" in section
    history = pd.read_csv(students[2] / "history.csv")
    assert f"scores {val:.4f} (best at epoch {int(history['val_accuracy'].idxmax()) + 1})" in section
    others = [table.loc[(v, f"seed {k}"), "best val acc"] for v in ("full", "longer", "longer_distill")
              for k in (0, 1, 2)]
    chosen = _private_accuracy(results / "recipe_e26_s1" / "longer")
    assert max(others) == pytest.approx(best) and f"`longer` seed 1 ({chosen:.4f} PrivateTest" in section
    timings = pd.read_csv(students[2] / "timings.csv")
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    busy = timings.drop(quiet.index)
    assert list(busy["epoch"] + 1) == list(range(1, 8)) and "epochs 1-7 shared the cores" in section
    assert f"({busy['seconds'].min():.0f}-{busy['seconds'].max():.0f} s)" in section
    assert f"Seed 2 trained {timings['seconds'].sum() / 60:.1f} min" in section
    median = quiet["seconds"].median()
    assert f"its other {len(quiet)} a median of {median:.1f} s (36 x {median:.1f} s = {36 * median / 60:.1f} min)" \
           in section


def test_ten_crop_fractions_map_to_distinct_pixel_sides_and_bad_ones_are_named():
    from fer_utils.experiments import tta_crop as T

    assert T.crop_pixels([0.875, 0.9, 0.92, 0.94, 0.95, 0.98], 48) == {0.875: 42, 0.9: 43, 0.92: 44, 0.94: 45,
                                                                        0.95: 46, 0.98: 47}
    with pytest.raises(ValueError, match=r"0.95 and 0.96 both crop 46 of 48 pixels"):
        T.crop_pixels([0.95, 0.96], 48)
    for bad in (1.0, 0.0, 1.2):
        with pytest.raises(ValueError, match=rf"crop fraction {bad}: expected a number in \(0, 1\)"):
            T.crop_pixels([0.875, bad], 48)


def test_the_crop_fraction_chosen_is_the_best_mean_over_runs_scored_at_every_fraction():
    from fer_utils.experiments import tta_crop as T

    def grid(rows):
        return pd.DataFrame([{"run": r, "crop fraction": f, "accuracy": a} for r, f, a in rows])

    # run b alone would pick 0.95, run a 0.875; the mean picks 0.9; 0.98 is not scored on b and cannot win
    rows = [("a", 0.875, 0.70), ("a", 0.9, 0.69), ("a", 0.95, 0.60), ("a", 0.98, 0.99),
            ("b", 0.875, 0.60), ("b", 0.9, 0.65), ("b", 0.95, 0.66)]
    assert T.choose(grid(rows)) == 0.9
    assert T.choose(grid([("a", 0.875, 0.7), ("a", 0.95, 0.7)])) == 0.95  # a tie: the larger crop
    with pytest.raises(ValueError, match="no crop fraction was scored on all 2 runs"):
        T.choose(grid([("a", 0.875, 0.7), ("b", 0.95, 0.7)]))


def test_the_crop_grid_scores_each_fraction_resumes_from_its_cache_and_the_test_table_compares_on_one_split(
        seeded, tiny_fer, tmp_path, monkeypatch):
    import shutil

    from fer_utils.experiments import tta_crop as T
    from fer_utils.predictor import Predictor

    root, _ = seeded
    folders = {"s3": tmp_path / "s3", "s4": tmp_path / "s4"}
    for name, seed in (("s3", 3), ("s4", 4)):  # the runs as if trained with ten-crop (the table's own TTA)
        shutil.copytree(root / f"cnn/seed{seed}", folders[name])
        record = json.loads((folders[name] / runs.PREPROCESSING_FILE).read_text())
        (folders[name] / runs.PREPROCESSING_FILE).write_text(json.dumps({**record, "tta": "ten_crop"}))
    rows = np.flatnonzero(tiny_fer.splits == "Validation")
    cache = tmp_path / "grid.csv"
    grid = T.validation_grid(folders, tiny_fer, [0.5, 0.875], cache=cache)
    assert list(grid.columns) == T.GRID_COLUMNS and len(grid) == 4 and set(grid["crop px"]) == {16, 28}  # of 32
    own = load_predictor(folders["s4"])
    assert own.preprocessing["crop_fraction"] == 0.875  # the run's record, untouched by the grid
    for f in (0.5, 0.875):
        want = (T.with_crop(own, f).predict(tiny_fer.images[rows], tta="ten_crop").argmax(1)
                == tiny_fer.labels[rows]).mean()
        got = grid.set_index(["run", "crop fraction"]).loc[("s4", f), "accuracy"]
        assert got == pytest.approx(want)
    half = T.with_crop(own, 0.5).predict(tiny_fer.images[rows], tta="ten_crop")
    assert not np.allclose(half, own.predict(tiny_fer.images[rows], tta="ten_crop"))  # the fraction reaches the views
    assert own.preprocessing["crop_fraction"] == 0.875

    def refuse(*args, **kwargs):
        raise AssertionError("a cached fraction was scored again")

    with monkeypatch.context() as m:  # resumed: every row comes from the cache
        m.setattr(Predictor, "predict", refuse)
        pd.testing.assert_frame_equal(T.validation_grid(folders, tiny_fer, [0.5, 0.875], cache=cache), grid,
                                      check_dtype=False)
    shutil.copyfile(root / "cnn/seed5" / runs.MODEL_FILE, folders["s4"] / runs.MODEL_FILE)  # another model: rescored
    again = T.validation_grid(folders, tiny_fer, [0.5, 0.875], cache=cache).set_index(["run", "crop fraction"])
    assert again.loc[("s4", 0.5), "model_sha256"] != grid.set_index(["run", "crop fraction"]).loc[
        ("s4", 0.5), "model_sha256"]
    assert len(pd.read_csv(cache)) == 4  # the stale rows were replaced, not kept beside

    test_rows = np.flatnonzero(tiny_fer.splits == "PrivateTest")
    images = tiny_fer.images.copy()
    images[test_rows[0]] = images[np.flatnonzero(tiny_fer.splits == "Training")[0]]  # one test copy of training
    ds = tiny_fer.replace(images=images)
    table = T.test_table({"s3": folders["s3"]}, ds, 0.5).iloc[0]
    y = ds.labels[test_rows]
    p3 = load_predictor(folders["s3"])
    for name, f in (("own", 0.875), ("chosen", 0.5)):
        right = T.with_crop(p3, f).predict(images[test_rows], tta="ten_crop").argmax(1) == y
        assert table[f"{name} accuracy"] == pytest.approx(right.mean())
        assert table[f"{name} dedup accuracy"] == pytest.approx(right[1:].mean())
    assert table["images"] == len(test_rows) and table["images dedup"] == len(test_rows) - 1
    assert table["diff"] == pytest.approx(table["chosen accuracy"] - table["own accuracy"])
    own_right, chosen_right = (T.with_crop(p3, f).predict(images[test_rows], tta="ten_crop").argmax(1) == y
                               for f in (0.875, 0.5))
    assert (table["own right only"], table["chosen right only"]) == (
        int((own_right & ~chosen_right).sum()), int((~own_right & chosen_right).sum()))
    with pytest.raises(ValueError, match="its TTA is 'flip', not ten_crop"):  # its own score is not ten-crop's
        T.test_table({"flip": root / "cnn/seed5"}, ds, 0.5)
    same = T.test_table({"s3": folders["s3"]}, ds, 0.875).iloc[0]  # the own fraction against itself
    assert (same["diff"], same["McNemar p"], same["own right only"], same["chosen right only"]) == (0, 1.0, 0, 0)
    md = T.markdown(grid, T.test_table(folders, ds, 0.5), 0.5).splitlines()
    assert md[0] == "| run | 0.5 (16 px) chosen | 0.875 (28 px) |" and md[4].startswith("| mean | ")


def test_ship_choice_predictions_are_ten_crop_at_the_side_resume_from_their_cache_and_rescore_a_new_model(
        seeded, tiny_fer, tmp_path, monkeypatch):
    import shutil

    from fer_utils.experiments import ship_choice as SC
    from fer_utils.experiments import tta_crop as T
    from fer_utils.predictor import Predictor

    root, _ = seeded
    folders = {"e26-s3/x": tmp_path / "s3", "e26-s4/x": tmp_path / "s4"}  # labels as the command makes them
    for name, folder in folders.items():
        shutil.copytree(root / f"cnn/seed{name[5]}", folder)
    rows = np.flatnonzero(tiny_fer.splits == "Validation")
    cache = tmp_path / "cache.npz"
    preds = SC.validation_predictions(folders, tiny_fer, fraction=0.5, cache=cache)
    for name, folder in folders.items():
        want = T.with_crop(load_predictor(folder), 0.5).predict(tiny_fer.images[rows], tta="ten_crop").argmax(1)
        np.testing.assert_array_equal(preds[name], want)  # ten-crop at the side given, not the run's own flip

    def refuse(*args, **kwargs):
        raise AssertionError("a cached run was scored again")

    with monkeypatch.context() as m:  # resumed: every run comes from the cache
        m.setattr(Predictor, "predict", refuse)
        again = SC.validation_predictions(folders, tiny_fer, fraction=0.5, cache=cache)
        assert all(np.array_equal(again[k], preds[k]) for k in folders)
        with pytest.raises(AssertionError, match="scored again"):  # another side is not the cached one
            SC.validation_predictions(folders, tiny_fer, fraction=0.875, cache=cache)
        with pytest.raises(AssertionError, match="scored again"):  # nor another split of the same size
            SC.validation_predictions(folders, tiny_fer.replace(splits=np.where(
                tiny_fer.splits == "Validation", "Held", tiny_fer.splits)), fraction=0.5, split="Held", cache=cache)
        record = folders["e26-s3/x"] / runs.PREPROCESSING_FILE  # nor another preprocessing record
        record.write_text(record.read_text().replace('"channels": 1', '"channels":  1'))
        with pytest.raises(AssertionError, match="scored again"):
            SC.validation_predictions(folders, tiny_fer, fraction=0.5, cache=cache)
    shutil.copyfile(root / "cnn/seed5" / runs.MODEL_FILE, folders["e26-s4/x"] / runs.MODEL_FILE)  # another model
    new = SC.validation_predictions(folders, tiny_fer, fraction=0.5, cache=cache)
    want = T.with_crop(load_predictor(folders["e26-s4/x"]), 0.5).predict(tiny_fer.images[rows], tta="ten_crop")
    np.testing.assert_array_equal(new["e26-s4/x"], want.argmax(1))
    decision = SC.decide(tiny_fer.labels[rows], new, "e26-s3/x")
    table = SC.table(decision, folders, fraction=0.5)
    assert list(table["run"]) == sorted(folders, key=lambda k: (-(new[k] == tiny_fer.labels[rows]).sum(), k))
    assert table.loc[table["run"] == "e26-s4/x", "PrivateTest published (not used)"].item() == pytest.approx(
        runs.read_metrics(folders["e26-s4/x"])["headline"]["PrivateTest_accuracy"])
    md = SC.markdown(table, decision, fraction=0.5)
    assert md.startswith(f"Ten-crop at crop side 0.5 on {len(rows)} validation images; shipped: e26-s3/x.")
    assert md.endswith(f"**Verdict**: {SC.verdict(decision)}.\n")


def test_the_crop_command_names_bad_fractions_missing_models_and_outputs_it_would_overwrite(seeded, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tta_crop_cli", ROOT / "benchmarks" / "tta_crop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root, _ = seeded
    run = str(root / "cnn/seed3")
    (tmp_path / "taken.md").write_text("an earlier table")
    for argv, says in (([run, "--fractions", "0.875,0.95,0.96"], "0.95 and 0.96 both crop 46 of 48 pixels"),
                       ([run, "--fractions", "0.875,1"], "crop fraction 1.0: expected a number in (0, 1)"),
                       ([run, "--fractions", "0.875"], "expected two or more"),
                       ([run, "--fractions", "0.9,x"], "expected comma-separated numbers"),
                       ([str(tmp_path)], "no model.keras in"),
                       ([run, run], "the same last two path parts"),
                       ([run, "--out", str(tmp_path / "taken")], "taken.md'] exist; give a new name"),
                       ([run, "--split", "Validation"], "the split the fraction is chosen on cannot also judge it")):
        with pytest.raises(SystemExit):
            module.parse_args([*argv, *([] if "--out" in argv else ["--out", str(tmp_path / "new")])])
        assert says in capsys.readouterr().err, argv
    assert (tmp_path / "taken.md").read_text() == "an earlier table"


def test_the_committed_crop_choice_is_the_grids_and_the_docs_and_cpu_profile_quote_it():
    """``benchmarks/results/tta_crop_e26_longer*`` (``benchmarks/tta_crop.py`` on the six 36-epoch runs): the fraction
    chosen is the validation grid's best mean, the one the ``cpu`` profile sets; each run's own-crop score is its
    committed predictions' own; the Markdown is the CSVs' and docs/results.md quotes the means and the verdict."""
    from scipy.stats import ttest_rel

    from fer_utils import params as P
    from fer_utils.experiments import tta_crop as T

    results = ROOT / "benchmarks" / "results"
    grid = pd.read_csv(results / "tta_crop_e26_longer_validation.csv")
    table = pd.read_csv(results / "tta_crop_e26_longer.csv")
    names = [f"e26-s{k}/{v}" for v in ("longer", "longer_distill") for k in (0, 1, 2)]
    assert list(table["run"]) == names and sorted(set(grid["run"])) == sorted(names) and len(grid) == 36
    checksum = runs.read_metrics(results / "recipe_e26_s0/longer")["headline"]["data_checksum"]
    assert set(grid["data_checksum"]) == {checksum} and set(grid["images"]) == {2872}
    chosen = T.choose(grid)
    assert chosen == 0.98 and set(table["chosen fraction"]) == {chosen} and set(table["own fraction"]) == {0.875}
    assert P.load_profile("cpu", ROOT / "params")["notebooks"]["03_baselines"]["crop_fraction"] == chosen
    for _, r in table.iterrows():  # the rescoring at 0.875 reproduces each run's saved PrivateTest predictions
        seed, variant = r["run"].split("/")
        pred = runs.load_predictions(results / f"recipe_e26_{seed.split('-')[1]}" / variant)
        private = pred["split"] == "PrivateTest"
        assert r["own accuracy"] == pytest.approx(float((pred["y_pred"] == pred["y_true"])[private].mean()), abs=1e-12)
    assert (results / "tta_crop_e26_longer.md").read_text() == T.markdown(grid, table, chosen)
    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index("**Ten-crop's crop side, chosen on validation**"):docs.index("**Time to accuracy**")]
    means = grid.groupby("crop fraction")["accuracy"].mean()
    assert docs_row(section, "mean of the six runs")[1:] == [
        f"**{v:.4f}**" if f == chosen else f"{v:.4f}" for f, v in means.items()]
    by = dict(list(table.assign(variant=table["run"].str.split("/").str[1]).groupby("variant")))
    text = " ".join(section.split())
    for variant, g in by.items():
        p = ttest_rel(g["chosen accuracy"], g["own accuracy"]).pvalue
        assert f"`{variant}` {g['chosen accuracy'].mean():.4f} +- {g['chosen accuracy'].std():.4f}" in text
        assert f"{100 * g['diff'].mean():+.2f}" in text and f"p = {p:.2g}" in text
    dedup = {v: (g["chosen dedup accuracy"].mean(), 100 * g["diff dedup"].mean(),
                 ttest_rel(g["chosen dedup accuracy"], g["own dedup accuracy"]).pvalue) for v, g in by.items()}
    d, lo = dedup["longer_distill"], dedup["longer"]
    assert f"{d[0]:.4f} and {lo[0]:.4f} (were" in text
    assert f"{d[1]:+.2f} and {lo[1]:+.2f} points, p = {d[2]:.2f} and {lo[2]:.2f}" in text
    copies = table["images"] - table["images dedup"]
    on_copies = {n: ((table[f"{n} accuracy"] * table["images"] - table[f"{n} dedup accuracy"] * table["images dedup"])
                     / copies).mean() for n in ("own", "chosen")}
    assert set(copies) == {882} and f"{100 * on_copies['own']:.1f}% of them at 0.875 and " \
        f"{100 * on_copies['chosen']:.1f}% at 0.98" in text
    assert f"{100 * table['diff dedup'].mean():+.2f} points over the six runs" in section.replace("\n", " ")
    assert "**Without near-duplicates the gain is gone**" in section and table["diff dedup"].mean() < 0


def _ablation_section(variant: str, reference: str, title: str, end: str, first_cell: int, *, seed: int = 0,
                      row_name: str = "") -> tuple:
    """A 36-epoch ablation run's committed files (``recipe_e26_s<seed>/<variant>``, its ablation CSV, with ``_s<seed>``
    for seeds but 0) against each other and against its docs/results.md section (``title`` to ``end``; the table row
    whose first cell is ``row_name``, default the variant in backticks): PrivateTest accuracy its predictions',
    training minutes its timings', the row's cells from train minutes on (from ``first_cell``) and the 95% interval of
    the difference. Returns ``(row, reference row, timings, history, the section as one line)``."""
    from fer_utils import stats

    results = ROOT / "benchmarks" / "results"
    folder = results / f"recipe_e26_s{seed}" / variant
    table = pd.read_csv(results / f"recipe_ablation_cpu_e26_{variant}{f'_s{seed}' if seed else ''}.csv").set_index(
        "variant")
    row = table.loc[variant]
    assert row["PrivateTest_accuracy"] == pytest.approx(_private_accuracy(folder), abs=1e-9)
    timings, history = pd.read_csv(folder / "timings.csv"), pd.read_csv(folder / "history.csv")
    assert len(timings) == len(history) == 36 and row["train minutes"] == round(timings["seconds"].sum() / 60, 1)
    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index(title):docs.index(end)]
    cells = [c.replace("*", "") for c in docs_row(section, row_name or f"`{variant}`")]
    discordant = row[f"discordant ({reference} right / variant right)"]
    assert cells[first_cell:first_cell + 7] == [
        f"{row['train minutes']:.1f}", f"{row['best val acc']:.4f} ({int(history['val_accuracy'].idxmax()) + 1})",
        f"{row['PrivateTest_accuracy']:.4f} / {row['PrivateTest_macro_f1']:.3f}",
        f"{row['PrivateTest_dedup_accuracy']:.4f} / {row['PrivateTest_dedup_macro_f1']:.3f}",
        f"{row[f'diff vs {reference} (PrivateTest)']:+.4f} ({row[f'diff vs {reference} (PrivateTest, dedup)']:+.4f})",
        f"{row['McNemar p']:.2g} ({discordant})",
        f"{row['PublicTest_accuracy']:.4f} ({row['PublicTest_dedup_accuracy']:.4f})"]
    text = " ".join(section.split())
    low, high = stats.paired_difference_interval(3589, *[int(n) for n in discordant.split(" / ")])
    assert f"95% interval {100 * low:+.2f} to {100 * high:+.2f} points" in text
    return row, table.loc[reference], timings, history, text


def test_the_longer_schedule_at_batch_64_is_longer_with_the_batch_changed_and_the_docs_read_its_files():
    """docs/results.md's "The longer schedule at batch 64" comes from ``recipe_e26_s0/longer_batch_64``: ``longer``'s
    recipe with the batch and its learning rate changed, its table row the ablation CSV's, its accuracy its
    predictions', its quiet-epoch median its timings'."""
    from fer_utils.experiments.running import recipe_train_config

    results = ROOT / "benchmarks" / "results"
    ref, run = (runs.read_recipe(results / "recipe_e26_s0" / v) for v in ("longer", "longer_batch_64"))
    ref = {**ref, "train_config": recipe_train_config(ref["train_config"])}
    assert {k: v for k, v in run["train_config"].items() if ref["train_config"][k] != v} == {
        "batch_size": 64, "learning_rate": 0.001}
    rest = [{k: v for k, v in r.items() if k != "train_config"} for r in (run, ref)]
    assert rest[0] == rest[1]
    row, longer, timings, history, text = _ablation_section(
        "longer_batch_64", "longer", "**The longer schedule at batch 64**",
        "**Every ingredient at full length, one table**", first_cell=2)
    assert f"+{100 * (row['best val acc'] - longer['best val acc']):.2f} points over `longer`'s" in text
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    assert f"the {len(quiet)} quiet epochs" in text and f"median of {np.median(quiet['seconds']):.1f} s" in text
    assert f"accuracy at the last epoch {history['accuracy'].iloc[-1]:.3f}" in text


def test_the_batch_64_seeds_and_their_crop_side_are_the_runs_files():
    """docs/results.md's seeds 1 and 2 of ``longer_batch_64``: seed 0's recipe with another seed; the seed tables are
    the runs' predictions and hold the committed ``full`` and ``longer`` rows; the docs hold the tables whole and quote
    the mean, the comparison with ``longer`` and the validation-chosen crop side's test scores."""
    from scipy import stats as st

    results = ROOT / "benchmarks" / "results"
    seeds = [results / f"recipe_e26_s{k}" / "longer_batch_64" for k in (0, 1, 2)]
    for k in (1, 2):
        assert runs.read_recipe(seeds[k]) == {**runs.read_recipe(seeds[0]), "seed": k}
    folder = results / "recipe_seeds_s012_longer_batch_64"
    table = pd.read_csv(folder / "recipe_seeds_cpu_e26.csv", index_col=[0, 1])
    pd.testing.assert_frame_equal(table.loc[["full", "longer"]],
                                  pd.read_csv(results / "recipe_seeds_cpu_e26.csv", index_col=[0, 1]))
    mine = np.array([_private_accuracy(s) for s in seeds])
    by_seed = pd.read_csv(folder / "recipe_seeds_cpu_e26_longer_batch_64_vs_longer.csv", index_col=0)
    diffs = mine - [_private_accuracy(results / f"recipe_e26_s{k}" / "longer") for k in (0, 1, 2)]
    assert list(by_seed["diff"][:3]) == pytest.approx(diffs, abs=1e-9)
    assert by_seed.loc["paired t-test over seeds: p", "diff"] == pytest.approx(st.ttest_1samp(diffs, 0).pvalue)
    docs = (ROOT / "docs" / "results.md").read_text()
    start, end = docs.index("**Seeds 1 and 2** (`--seed 1` and `--seed 2`"), docs.index("**Shipped since 2026-12-05**")
    section = docs[start:end]
    seed_rows = (folder / "recipe_seeds_cpu_e26.md").read_text().split("`longer_batch_64`:")[1]
    crop = results / "tta_crop_e26_longer_batch_64"
    for md in (seed_rows, (folder / "recipe_seeds_cpu_e26_longer_batch_64_vs_longer.md").read_text(),
               *crop.with_suffix(".md").read_text().split("\n\n")):  # the crop file: the grid, then the test table
        assert "\n".join(line for line in md.splitlines() if line.startswith("|")) in section
    text = " ".join(section.split())
    mean = table.loc[("longer_batch_64", "mean of 3 seeds")]
    assert mean["PrivateTest_accuracy"] == pytest.approx(mine.mean(), abs=1e-12)
    assert f"mean of the three seeds {mean['PrivateTest_accuracy']:.4f} (sd " \
           f"{table.loc[('longer_batch_64', 'sd of 3 seeds'), 'PrivateTest_accuracy']:.4f}), " \
           f"{mean['PrivateTest_dedup_accuracy']:.4f} without near-duplicates" in text
    assert f"{100 * diffs.mean():+.2f} points over the three `longer` seeds (paired t-test over seeds p = " \
           f"{by_seed.loc['paired t-test over seeds: p', 'diff']:.2f}" in text
    assert f"{100 * (0.695 - mine.mean()):.2f} points short of the issue's 0.695" in text
    # the crop side: chosen on validation, the test scores at the choice
    grid = pd.read_csv(crop.parent / f"{crop.name}_validation.csv")
    means = grid.groupby("crop fraction")["accuracy"].mean()
    chosen = pd.read_csv(crop.with_suffix(".csv"))
    assert set(chosen["chosen fraction"]) == {means.idxmax()} == {0.98}
    assert list(chosen["own accuracy"]) == pytest.approx(mine, abs=1e-9)
    assert f"(mean {means[0.98]:.4f} against {means[0.875]:.4f}" in text
    assert f"**{chosen['chosen accuracy'].mean():.4f} on average at 0.98 (sd {chosen['chosen accuracy'].std():.4f})**" \
           in text
    assert f"without near-duplicates {chosen['chosen dedup accuracy'].mean():.4f}" in text
    assert f"{100 * (0.695 - chosen['chosen accuracy'].mean()):.2f} points short" in text


def test_the_batch_64_students_seed_1_is_seed_0s_recipe_and_the_docs_read_its_files():
    """docs/results.md's seed-1 paragraph of "The batch-64 schedule distilled" comes from
    ``recipe_e26_s1/longer_batch_64_distill`` and its ablation CSV; the run is seed 0's recipe but for the seed, with
    the same teacher; its crop-side numbers are ``tta_crop_e26_longer_batch_64_distill_s1``'s."""
    results = ROOT / "benchmarks" / "results"
    s0, s1 = (runs.read_recipe(results / f"recipe_e26_s{k}" / "longer_batch_64_distill") for k in (0, 1))
    assert [k for k in {**s0, **s1} if s0.get(k) != s1.get(k)] == ["seed"] and s1["seed"] == 1
    row, reference, timings, history, text = _ablation_section(
        "longer_batch_64_distill", "longer_batch_64", "**Seed 1** (`--seed 1`, the same command otherwise, `--out "
        "/work/runs80/out_s1`, from the same clone at `6aeb818`", "**Which run the shipped model should be",
        first_cell=1, seed=1, row_name="`longer_batch_64_distill` seed 1")
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    assert f"its {len(quiet)} quiet epochs took a median {np.median(quiet['seconds']):.1f} s" in text
    assert f"include {36 - len(quiet)} epochs that shared the cores" in text
    crop = pd.read_csv(results / "tta_crop_e26_longer_batch_64_distill_s1.csv").set_index("run")
    student, ref = crop.loc["e26-s1/longer_batch_64_distill"], crop.loc["e26-s1/longer_batch_64"]
    assert student["own accuracy"] == pytest.approx(row["PrivateTest_accuracy"])  # the same model, rescored
    assert (f"the student scores {student['chosen accuracy']:.4f} (dedup {student['chosen dedup accuracy']:.4f}) "
            f"against the reference's {ref['chosen accuracy']:.4f} ({ref['chosen dedup accuracy']:.4f})") in text
    s0_crop = pd.read_csv(results / "tta_crop_e26_longer_batch_64_distill_s0.csv").set_index("run")
    means = [(s0_crop.loc[f"e26-s0/{v}", "chosen accuracy"] + crop.loc[f"e26-s1/{v}", "chosen accuracy"]) / 2
             for v in ("longer_batch_64_distill", "longer_batch_64")]
    assert f"the student averages {means[0]:.4f} against the reference's {means[1]:.4f}" in text
    diff, dedup = row["diff vs longer_batch_64 (PrivateTest)"], row["diff vs longer_batch_64 (PrivateTest, dedup)"]
    val = row["best val acc"] - reference["best val acc"]
    assert f"Reading: {100 * diff:+.2f} points on PrivateTest" in text
    assert f"{100 * dedup:+.2f} without near-duplicates, {100 * val:+.2f} on validation" in text
    seed0 = pd.read_csv(results / "recipe_ablation_cpu_e26_longer_batch_64_distill.csv").set_index("variant")
    d0 = seed0.loc["longer_batch_64_distill"]
    v0 = d0["best val acc"] - seed0.loc["longer_batch_64", "best val acc"]
    assert f"as seed 0 ({100 * d0['diff vs longer_batch_64 (PrivateTest)']:+.2f})" in text
    assert f"on validation ({100 * v0:+.2f})" in text
    grid = pd.read_csv(results / "tta_crop_e26_longer_batch_64_distill_s1_validation.csv")
    mean = grid.groupby("crop fraction")["accuracy"].mean()
    assert f"validation chose 0.98 (mean {mean[0.98]:.4f} against {mean[0.875]:.4f})" in text
    assert f"{100 * (student['chosen accuracy'] - ref['chosen accuracy']):+.2f} points, not tested" in text
    assert f"the student {100 * student['diff']:+.2f}, p = {student['McNemar p']:.2g})" in text


def test_the_batch_64_students_three_seeds_are_the_seed_tables_and_the_docs_read_them():
    """docs/results.md's "Seed 2 and the three seeds" comes from ``recipe_e26_s2/longer_batch_64_distill``, its
    ablation CSV, the seed-table files of ``recipe_seeds_s012_longer_batch_64_distill/`` (quoted as they are) and the
    three crop-side files; the seed-2 student's ten-crop validation is below the shipped run's, as the text says."""
    from scipy import stats as st

    results = ROOT / "benchmarks" / "results"
    s0, s2 = (runs.read_recipe(results / f"recipe_e26_s{k}" / "longer_batch_64_distill") for k in (0, 2))
    assert [k for k in {**s0, **s2} if s0.get(k) != s2.get(k)] == ["seed"] and s2["seed"] == 2
    row, reference, timings, history, text = _ablation_section(
        "longer_batch_64_distill", "longer_batch_64", "**Seed 2 and the three seeds**",
        "**Which run the shipped model should be", first_cell=1, seed=2, row_name="`longer_batch_64_distill` seed 2")
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    assert f"its {len(quiet)} quiet epochs a median of {np.median(quiet['seconds']):.1f} s" in text
    assert f"{36 - len(quiet)} of its epochs shared the cores" in text
    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index("**Seed 2 and the three seeds**"):docs.index("**Which run the shipped model should be")]
    folder = results / "recipe_seeds_s012_longer_batch_64_distill"
    seeds = (folder / "recipe_seeds_cpu_e26.md").read_text()
    student = seeds[seeds.index("`longer_batch_64_distill`:"):]
    for table in (student.split("\n\n")[1], (folder / "recipe_seeds_cpu_e26_longer_batch_64_distill_vs_"
                                                         "longer_batch_64.md").read_text().strip()):
        assert table.strip() in section
    vs = pd.read_csv(folder / "recipe_seeds_cpu_e26_longer_batch_64_distill_vs_longer_batch_64.csv", index_col=0)
    diff = vs.loc["mean over 3 seeds", "diff"]
    assert f"over the three seeds the student is {-100 * diff:.2f} points below" in text
    assert f"paired t-test p = {vs.loc['paired t-test over seeds: p', 'diff']:.2g}" in text
    crops = [pd.read_csv(results / f"tta_crop_e26_longer_batch_64_distill_s{k}.csv").set_index("run") for k in range(3)]
    at98 = {v: [c.loc[f"e26-s{k}/{v}", "chosen accuracy"] for k, c in enumerate(crops)]
            for v in ("longer_batch_64_distill", "longer_batch_64")}
    assert (f"the three seeds average {np.mean(at98['longer_batch_64_distill']):.4f} (sd "
            f"{np.std(at98['longer_batch_64_distill'], ddof=1):.4f};") in text
    assert f"against the reference's {np.mean(at98['longer_batch_64']):.4f}: " in text
    assert all((c["chosen fraction"] == 0.98).all() for c in crops)  # the profile's side
    dedup98 = np.mean([c.loc[f"e26-s{k}/longer_batch_64_distill", "chosen dedup accuracy"]
                       for k, c in enumerate(crops)])
    assert f"{dedup98:.4f} without near-duplicates) against" in text
    assert f"{100 * (0.695 - np.mean(at98['longer_batch_64_distill'])):.2f} points short of the issue's 0.695" in text
    ref_epoch = int(pd.read_csv(results / "recipe_e26_s2/longer_batch_64/history.csv")["val_accuracy"].idxmax()) + 1
    assert docs_row(section, "`longer_batch_64` seed 2")[1:4] == [
        f"{reference['train minutes']:.1f}", f"{reference['best val acc']:.4f} ({ref_epoch})",
        f"{reference['PrivateTest_accuracy']:.4f} / {reference['PrivateTest_macro_f1']:.3f}"]
    assert f"Seed 2 scores {-100 * row['diff vs longer_batch_64 (PrivateTest)']:.2f} points below" in text
    # validation at the best epoch and with ten-crop at 0.98, paired over the three seeds
    best = {v: [pd.read_csv(results / f"recipe_e26_s{k}" / v / "history.csv")["val_accuracy"].max() for k in range(3)]
            for v in ("longer_batch_64_distill", "longer_batch_64")}
    grids = [pd.read_csv(results / f"tta_crop_e26_longer_batch_64_distill_s{k}_validation.csv").set_index(
        ["run", "crop fraction"]) for k in range(3)]
    ten = {v: [g.loc[(f"e26-s{k}/{v}", 0.98), "accuracy"] for k, g in enumerate(grids)] for v in best}
    for scores, words in ((best, "{d:.2f} points above on validation at its best epoch"),
                          (ten, "{d:+.2f} with ten-crop at 0.98, p = {p:.2g}")):
        d = 100 * (np.mean(scores["longer_batch_64_distill"]) - np.mean(scores["longer_batch_64"]))
        p = st.ttest_rel(scores["longer_batch_64_distill"], scores["longer_batch_64"]).pvalue
        assert words.format(d=d, p=p) in text, words
    assert f"paired t-test p = {st.ttest_rel(*best.values()).pvalue:.2g}; +" in text
    ship = pd.read_csv(results / "ship_choice_e26.csv").set_index("run")
    assert ship.loc["e26-s0/longer_batch_64", "shipped"]
    shipped = ship.loc["e26-s0/longer_batch_64", "right"]
    grid = pd.read_csv(results / "tta_crop_e26_longer_batch_64_distill_s2_validation.csv").set_index(
        ["run", "crop fraction"])
    right = round(grid.loc[("e26-s2/longer_batch_64_distill", 0.98), "accuracy"] * 2872)
    assert right < shipped and f"({right:,} right), is below the shipped run's {shipped:,}" in text


def test_the_batch_64_student_is_its_reference_with_soft_targets_and_the_docs_read_its_files():
    """docs/results.md's "The batch-64 schedule distilled" comes from ``recipe_e26_s0/longer_batch_64_distill``: the
    reference's recipe with the teacher recorded (the three ``longer_batch_64`` seeds), its table row the ablation
    CSV's, its accuracy its predictions', its quiet-epoch median its timings', and the two validation rules' numbers
    the committed files'."""
    results = ROOT / "benchmarks" / "results"
    ref, run = (runs.read_recipe(results / "recipe_e26_s0" / v) for v in ("longer_batch_64", "longer_batch_64_distill"))
    assert run["train_config"] == ref["train_config"] and run["train_config"]["batch_size"] == 64
    # the reference's recipe but for the soft targets and what made them
    assert [k for k in {**ref, **run} if ref.get(k) != run.get(k)] == ["target", "distillation"]
    assert run["target"] == "distribution" and run["distillation"]["alpha"] == 0.5
    teacher = json.loads((results / "recipe_e26_teacher_longer_batch_64_s012.json").read_text())
    assert run["distillation"]["members"] == teacher["members"] and len(teacher["members"]) == 3
    assert run["distillation"]["model_sha256"] == teacher["model_sha256"]
    assert all(m.endswith(f"e26-s{k}/longer_batch_64") for k, m in enumerate(teacher["members"]))
    row, reference, timings, history, text = _ablation_section(
        "longer_batch_64_distill", "longer_batch_64",
        "**The batch-64 schedule distilled from its three-seed ensemble**", "**Time to accuracy**", first_cell=1)
    quiet = timings[timings["others_cores"] <= _QUIET_CORES]
    assert f"its {len(quiet)} quiet epochs took a median {np.median(quiet['seconds']):.1f} s" in text
    faces = round((row["best val acc"] - reference["best val acc"]) * 2872)
    assert row["best val acc"] > reference["best val acc"] and f"lead is {faces} faces of 2,872" in text
    grid = pd.read_csv(results / "tta_crop_e26_longer_batch_64_distill_s0_validation.csv").pivot(
        index="run", columns="crop fraction", values="accuracy")
    student, shipped = grid.loc["e26-s0/longer_batch_64_distill"], grid.loc["e26-s0/longer_batch_64"]
    assert (shipped > student).all()  # with ten-crop the shipped run leads at both sides
    assert f"ten-crop {shipped[0.98]:.4f} against {student[0.98]:.4f} at 0.98 and {shipped[0.875]:.4f} against " \
           f"{student[0.875]:.4f} at 0.875" in text
