"""Experiments end to end on the synthetic faces: training, the run-folder contract, the predictor, comparisons.

Nothing here needs a real dataset, so these tests always run.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_utils import data as D
from fer_utils import experiments, runs
from fer_utils.predictor import load_predictor

TINY_CNN = {"filters": [8, 16, 16, 32], "dense_units": 16, "dropout": 0.0}
CFG = {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 16, "epochs": 4, "precision": "float32",
       "schedule": "constant"}


@pytest.fixture(scope="module")
def trained_cnn(tiny_fer, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    res = experiments.run_model("cnn", tiny_fer, root / "cnn", train_config=CFG, model_kwargs=TINY_CNN,
                                seed=0, tta="flip", normalization="standardize")
    return root, res


@pytest.mark.slow
def test_run_model_trains_and_writes_every_artifact(tiny_fer, trained_cnn):
    root, res = trained_cnn
    run = root / "cnn"
    for name in runs.RUN_FILES:
        assert (run / name).is_file(), name
    assert not (run / runs.LAST_MODEL_FILE).exists()  # kept only with keep_last
    hist = experiments.load_histories(root, ["cnn"])["cnn"]
    assert len(hist) == 4 and hist["loss"].iloc[-1] < hist["loss"].iloc[0]
    assert res["epochs_run"] == 4 and res["best_val_accuracy"] == pytest.approx(hist["val_accuracy"].max())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "cnn" and metrics["metadata"]["seed"] == 0
    assert metrics["metadata"]["data"]["checksum"] == tiny_fer.checksum == res["data_checksum"]
    assert set(metrics["splits"]) == {"PublicTest", "PrivateTest"}
    pred = runs.load_predictions(run)
    public = tiny_fer.split("PublicTest")
    assert list(pred["source_ids"][pred["split"] == "PublicTest"]) == list(public.source_ids)
    for split in ("PublicTest", "PrivateTest"):
        rows = pred["split"] == split
        acc = float((pred["y_prob"][rows].argmax(1) == pred["y_true"][rows]).mean())
        assert acc == pytest.approx(res[f"{split}_accuracy"], abs=1e-12)
    table = experiments.collect_results(root)
    assert list(table.index) == ["cnn"] and table.loc["cnn", "PrivateTest_accuracy"] == res["PrivateTest_accuracy"]


def test_preprocessing_record_and_predictor_reproduce_the_saved_predictions(tiny_fer, trained_cnn):
    root, _ = trained_cnn
    prep = runs.read_preprocessing(root / "cnn")
    tr = tiny_fer.split("Training")
    assert prep["class_names"] == list(tiny_fer.class_names) and prep["input_size"] == [48, 48]
    assert prep["channels"] == 1 and prep["normalization"] == "standardize" and prep["tta"] == "flip"
    assert prep["norm_mean"] == pytest.approx(float(tr.images.mean()))
    predictor = load_predictor(root / "cnn")
    saved = runs.load_predictions(root / "cnn")
    by_id = dict(zip(tiny_fer.source_ids, tiny_fer.images))
    faces = np.stack([by_id[i] for i in saved["source_ids"]])
    # Same faces per split (evaluation's batches), same preprocessing: bit-identical probabilities.
    for split in ("PublicTest", "PrivateTest"):
        rows = saved["split"] == split
        np.testing.assert_array_equal(predictor.predict(faces[rows]), saved["y_prob"][rows])
    # In other batches the float arithmetic may round differently, never by more than float noise.
    np.testing.assert_allclose(predictor.predict(faces), saved["y_prob"], rtol=0, atol=1e-6)
    # Any face size: a 96x96 upscaled face is resized back to the model input.
    big = np.repeat(np.repeat(faces[:3], 2, axis=1), 2, axis=2)
    assert predictor.predict(big).shape == (3, tiny_fer.num_classes)
    with pytest.raises(ValueError, match=r"uint8 grey faces \[N, H, W\]"):
        predictor.predict(faces.astype(np.float32))


def test_predictor_needs_its_preprocessing_record(trained_cnn, tmp_path):
    root, _ = trained_cnn
    (tmp_path / "model.keras").write_bytes((root / "cnn" / "model.keras").read_bytes())
    with pytest.raises(FileNotFoundError, match="preprocessing.json"):
        load_predictor(tmp_path)
    (tmp_path / "preprocessing.json").write_text('{"class_names": ["a"]}')
    with pytest.raises(ValueError, match=r"missing key\(s\).*input_size"):
        load_predictor(tmp_path)


def test_validation_never_comes_from_test(tiny_fer):
    raw = D.load_synthetic(6, seed=0)
    assert set(tiny_fer.split_names) == {"Training", "Validation", "PublicTest", "PrivateTest"}
    for split in ("PublicTest", "PrivateTest"):
        assert list(tiny_fer.split(split).source_ids) == list(raw.split(split).source_ids)
    validation = set(tiny_fer.split("Validation").source_ids)
    assert validation and validation <= set(raw.split("Training").source_ids)


def test_unknown_model_fails_before_training(tiny_fer, tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet51'; known models: .*resnet50"):
        experiments.run_models(["cnn", "resnet51"], tiny_fer, tmp_path, train_config=CFG)
    with pytest.raises(ValueError, match="unknown model 'cnnn'"):
        experiments.run_models(["cnn"], tiny_fer, tmp_path, train_config=CFG, train_configs={"cnnn": {"epochs": 2}})
    assert not (tmp_path / "cnn").exists()


def test_missing_eval_split_fails_before_training(tiny_fer, tmp_path):
    with pytest.raises(D.DataError, match=r"split\(s\) \['Test'\] not present"):
        experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", train_config=CFG, eval_splits=("Test",))
    assert not (tmp_path / "cnn").exists()


@pytest.mark.slow
def test_ckplus_cross_validation_is_subject_independent(tmp_path):
    ck = D.synthetic_stand_in("ckplus", 4, seed=0)  # 20 pseudo-subjects
    fold = D.fold_dataset(ck, 0, k=2, seed=0, val_fraction=0.3)
    subjects = ck.meta["subject"].to_numpy()
    assert not set(subjects[fold.splits == "Test"]) & set(subjects[fold.splits != "Test"])
    res = experiments.run_cv("msca_resnet", ck, tmp_path, k=2, folds=[0], seed=0, val_fraction=0.3,
                             train_config={**CFG, "epochs": 1, "loss": "cosine"}, tta=None,
                             model_kwargs={"filters": [8, 8, 16], "stem_filters": 8})
    pred = runs.load_predictions(tmp_path / "fold0")
    assert set(pred["split"]) == {"Test"} and len(pred["y_true"]) == (fold.splits == "Test").sum()
    assert res["folds"] == 1
    assert res["Test_accuracy"] == pytest.approx(float((pred["y_pred"] == pred["y_true"]).mean()))
    # Study C's registry default normalization is per-image standardization.
    assert runs.read_preprocessing(tmp_path / "fold0")["normalization"] == "per_image"


def test_ferplus_runs_are_checked_before_training():
    from fer_utils.experiments.study_c import check_runs, published_accuracies

    base = {**CFG, "loss": "cosine"}
    assert check_runs({}, ["msca_resnet", "msca_resnet_plain"], base) == {
        "msca_resnet": ("msca_resnet", base, "majority"), "msca_resnet_plain": ("msca_resnet_plain", base, "majority")}
    planned = check_runs({"ce": {"model": "msca_resnet", "loss": "crossentropy"}, "msca_resnet_no_se": {}}, [], base,
                         {"loss": ["ce", "msca_resnet_no_se"]})
    assert planned["ce"] == ("msca_resnet", {**base, "loss": "crossentropy"}, "majority")
    assert planned["msca_resnet_no_se"] == ("msca_resnet_no_se", base, "majority")
    # The target is the run's, not a training-configuration key: it never reaches TrainConfig.
    voted = check_runs({"votes": {"model": "msca_resnet", "target": "distribution"}}, [], base)["votes"]
    assert (voted.model, voted.train_config, voted.target) == ("msca_resnet", base, "distribution")
    with pytest.raises(ValueError, match=r"ferplus_runs\['votes'\]: target 'votes' is not one of \['majority', "
                                         r"'distribution'\]"):
        check_runs({"votes": {"model": "msca_resnet", "target": "votes"}}, [], base)
    with pytest.raises(ValueError, match=r"ferplus_runs\['lr_high'\]: model 'lr_high' is not a registry model"):
        check_runs({"lr_high": {"learning_rate": 0.01}}, [], base)
    with pytest.raises(ValueError, match=r"ferplus_runs\['ce'\]: Unknown TrainConfig key 'los'"):
        check_runs({"ce": {"model": "msca_resnet", "los": "crossentropy"}}, [], base)
    with pytest.raises(ValueError, match=r"ferplus_runs\['ls'\]: .*label smoothing"):
        check_runs({"ls": {"model": "msca_resnet", "label_smoothing": 0.1}}, [], base)
    with pytest.raises(ValueError, match=r"ferplus_tables\['t2'\]: \['ce', 'cee'\] .* unknown: \['cee'\]"):
        check_runs({"ce": {"model": "msca_resnet"}}, [], base, {"t2": ["ce", "cee"]})
    # A run may name the Study C setting it reproduces; it is checked against published.json, not trained on.
    named = {"lr": {"model": "msca_resnet", "learning_rate": 0.01, "published": "learning rate 0.01"},
             "msca_resnet_no_se": {"published": "ablation: BN only"}, "ce": {"model": "msca_resnet"}}
    assert check_runs(named, [], base)["lr"] == ("msca_resnet", {**base, "learning_rate": 0.01}, "majority")
    assert published_accuracies(named) == {"lr": 0.8453, "msca_resnet_no_se": 0.8750}
    with pytest.raises(ValueError, match=r"ferplus_runs\['lr'\]: published: 'learning rate 0.1' is not a setting "
                                         r"Study C reports for msca_resnet on FER\+; it reports .*'learning rate 0.01"):
        check_runs({"lr": {"model": "msca_resnet", "published": "learning rate 0.1"}}, [], base)
    with pytest.raises(ValueError, match=r"'ablation: BN only' is not a setting Study C reports for msca_resnet_plain"):
        check_runs({"msca_resnet_plain": {"published": "ablation: BN only"}}, [], base)
    with pytest.raises(ValueError, match=r"ferplus_runs\['lr'\]: published: expected the name of a Study C setting"):
        check_runs({"lr": {"model": "msca_resnet", "published": ["learning rate 0.01"]}}, [], base)


def test_a_vote_distribution_run_is_refused_before_training_on_data_without_votes(tmp_path):
    """A FER+ run with ``target: distribution`` needs the annotators' votes: on a dataset without them (the
    synthetic stand-in) the notebook stops before the first run trains, naming the runs and the dataset."""
    fp = D.synthetic_stand_in("ferplus", 8, seed=0)
    assert fp.soft_labels is None
    named = {"msca_resnet": {}, "votes": {"model": "msca_resnet", "target": "distribution"}}
    with pytest.raises(D.DataError, match=r"the FER\+ runs \['votes'\] train on the vote distribution"):
        experiments.run_study_c_ferplus([], fp, tmp_path, seed=0, train_config={**CFG, "loss": "cosine"}, runs=named)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_vote_distribution_run_trains_on_the_votes_and_its_table_names_the_change(tmp_path):
    """``target: distribution`` trains on the rows' vote distributions (recorded in the run's recipe, so a majority
    run in the same folder is never reused for it), scores against the majority labels, and the settings table says
    that the target is what changed."""
    fp = D.synthetic_stand_in("ferplus", 8, seed=0)
    rng = np.random.default_rng(0)
    votes = np.eye(fp.num_classes)[fp.labels] * 6 + rng.integers(0, 2, (len(fp.labels), fp.num_classes))
    fp = fp.replace(soft_labels=(votes / votes.sum(1, keepdims=True)).astype(np.float32))
    named = {"majority": {"model": "msca_resnet"}, "votes": {"model": "msca_resnet", "target": "distribution"}}
    tables = {"target": ["majority", "votes"]}
    base = {**CFG, "epochs": 1, "loss": "crossentropy"}
    kw = dict(seed=0, val_fraction=0.2, train_config=base, runs=named, tables=tables, tta=None,
              model_kwargs={"filters": [8, 8, 16], "stem_filters": 8})
    res = experiments.run_study_c_ferplus([], fp, tmp_path, **kw)
    assert list(res["status"]) == ["trained", "trained"]
    recipes = [runs.read_recipe(tmp_path / n) for n in named]
    assert [r["target"] for r in recipes] == ["majority", "distribution"]
    assert recipes[0]["train_config"] == recipes[1]["train_config"]
    preds = runs.load_predictions(tmp_path / "votes")
    private = fp.split("PrivateTest")
    assert list(preds["y_true"][preds["split"] == "PrivateTest"]) == list(private.labels)  # scored on majority labels
    table = experiments.study_c_settings_tables(tables, fp, tmp_path, runs=named, train_config=base,
                                                val_fraction=0.2, seed=0)["target"]
    assert table.loc["votes", "change"] == "target majority -> distribution"


@pytest.mark.slow
def test_ferplus_settings_train_once_and_compare_with_the_first(tmp_path, capsys):
    """Named FER+ runs share one split; a table says what each run changes against its first and tests it with
    McNemar on the same images; running again reuses every run. A part of the runs (``only``, a subset of a long
    notebook) trains alone; its table waits until the other runs have finished in the same folder."""
    fp = D.synthetic_stand_in("ferplus", 8, seed=0)
    tiny = {"filters": [8, 8, 16], "stem_filters": 8}
    base = {**CFG, "epochs": 1, "loss": "cosine"}
    named = {"msca_resnet": {"published": "step schedule"},
             "ce": {"model": "msca_resnet", "loss": "crossentropy", "learning_rate": 0.01}}
    tables = {"loss": ["msca_resnet", "ce"]}
    kw = dict(seed=0, val_fraction=0.2, train_config=base, runs=named, tables=tables, tta=None, model_kwargs=tiny)
    part = experiments.run_study_c_ferplus([], fp, tmp_path, only=["ce"], **kw)
    assert list(part.index) == ["ce"] and not (tmp_path / "msca_resnet").exists()
    assert experiments.study_c_settings_tables(tables, fp, tmp_path, runs=named, train_config=base,
                                               val_fraction=0.2, seed=0) == {}
    assert "loss: waits for the FER+ runs ['msca_resnet']" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"ferplus_only: \['cee'\] are not FER\+ runs .* \['msca_resnet', 'ce'\]"):
        experiments.run_study_c_ferplus([], fp, tmp_path, only=["cee"], **kw)
    res = experiments.run_study_c_ferplus([], fp, tmp_path, **kw)
    assert list(res.index) == ["msca_resnet", "ce"] and set(res["arch"]) == {"msca_resnet"}
    assert list(res["status"]) == ["trained", "reused"]
    assert runs.read_recipe(tmp_path / "ce")["train_config"]["loss"] == "crossentropy"
    out = experiments.study_c_settings_tables(tables, fp, tmp_path, runs=named, train_config=base, val_fraction=0.2,
                                              seed=0)
    table = out["loss"]
    assert table.loc["msca_resnet", "change"] == "(reference)"
    assert table.loc["ce", "change"] == "learning_rate 0.003 -> 0.01; loss 'cosine' -> 'crossentropy'"
    a, b = (runs.load_predictions(tmp_path / n) for n in ("msca_resnet", "ce"))
    m = a["split"] == "PrivateTest"
    right_a, right_b = a["y_pred"][m] == a["y_true"][m], b["y_pred"][m] == b["y_true"][m]
    assert table.loc["ce", "discordant (msca_resnet right / run right)"] == (
        f"{int((right_a & ~right_b).sum())} / {int((~right_a & right_b).sum())}")
    assert table.loc["ce", "diff vs msca_resnet (PrivateTest)"] == pytest.approx(right_b.mean() - right_a.mean())
    assert table.loc["msca_resnet", "Study C (published, 200 epochs)"] == 0.8780  # published.json's step schedule
    assert np.isnan(table.loc["ce", "Study C (published, 200 epochs)"])
    again = experiments.run_study_c_ferplus([], fp, tmp_path, **kw)
    assert set(again["status"]) == {"reused"}


@pytest.mark.slow
def test_ckplus_folds_pooled_test_every_image_once(tmp_path):
    ck = D.synthetic_stand_in("ckplus", 4, seed=0)
    experiments.run_study_c_ckplus(["msca_resnet"], ck, tmp_path, seed=0, k=2, folds=[0, 1], val_fraction=0.3,
                                   train_config={**CFG, "epochs": 1, "loss": "cosine"}, tta=None,
                                   model_kwargs={"filters": [8, 8, 16], "stem_filters": 8})
    folds = experiments.ckplus_folds(tmp_path, ["msca_resnet"])
    assert list(folds["fold"]) == [0, 1] and folds["test images"].sum() == len(ck)
    cm = experiments.ckplus_pooled_confusion(tmp_path, "msca_resnet")
    assert cm.shape == (len(ck.class_names),) * 2 and cm.sum() == len(ck)
    np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(ck.labels, minlength=len(ck.class_names)))
    assert np.trace(cm) == sum(int((p["y_pred"] == p["y_true"]).sum()) for p in
                               (runs.load_predictions(tmp_path / "msca_resnet" / f"fold{f}") for f in (0, 1)))
    with pytest.raises(FileNotFoundError, match="no fold<i>/predictions.npz"):
        experiments.ckplus_pooled_confusion(tmp_path, "msca_resnet_plain")


def test_ablation_table_layout_comes_from_the_registry():
    fp = pd.DataFrame({"PrivateTest_accuracy": [0.5, 0.4]}, index=["msca_resnet", "msca_resnet_plain"])
    ck = pd.DataFrame({"Test_accuracy": [0.9, 0.8]}, index=["msca_resnet", "msca_resnet_plain"])
    table = experiments.ablation_table(fp, ck)
    assert list(table.index) == ["msca_resnet_plain", "msca_resnet"]
    assert table.loc["msca_resnet", "FER+ paper"] == pytest.approx(0.878)
    assert table.loc["msca_resnet_plain", "CK+ paper"] == pytest.approx(0.9728)
    assert not table.loc["msca_resnet_plain", "SE"] and table.loc["msca_resnet", "BN"]


def test_a_run_without_attention_models_or_study_c_datasets_gives_empty_tables(tiny_fer, tmp_path):
    """Notebook 04 in a subset that runs only Study C (models: []) or only one of its datasets."""
    res = experiments.run_models([], tiny_fer, tmp_path, train_config=CFG)
    assert res.empty and res.index.name == "model" and not list(tmp_path.iterdir())
    assert experiments.headline(res) == {} and experiments.results_records(res) == []
    ck = pd.DataFrame({"Test_accuracy": [0.9]}, index=["msca_resnet"])
    none = experiments.empty_results()
    assert experiments.ablation_table(none, none).empty
    only_ck = experiments.ablation_table(none, ck)
    assert list(only_ck.index) == ["msca_resnet"] and only_ck.loc["msca_resnet", "CK+ ours"] == 0.9
    assert np.isnan(only_ck.loc["msca_resnet", "FER+ ours"])
    assert experiments.study_c_headline(none, ck) == {"msca_resnet CK+ fold acc": 0.9}


def test_attention_comparison_pairs_models_by_registry_and_flags_different_data():
    res = pd.DataFrame({"PrivateTest_accuracy": [0.6, 0.65, 0.62, 0.5], "PrivateTest_macro_f1": [0.5, 0.55, 0.5, 0.4],
                        "data_checksum": ["a", "a", "b", "a"]},
                       index=["cnn", "cnn_se", "cnn_cbam", "msca_resnet"])
    cmp = experiments.attention_comparison(res)
    assert list(cmp.index) == ["cnn_se", "cnn_cbam"]  # msca_resnet has no plain baseline in the registry
    assert cmp.loc["cnn_se", "delta accuracy"] == pytest.approx(0.05)
    assert cmp.loc["cnn_cbam", "baseline"] == "cnn"
    assert cmp.loc["cnn_se", "same data"] and not cmp.loc["cnn_cbam", "same data"]


def test_combine_results_warns_when_earlier_runs_used_other_data(tmp_path, capsys):
    for name, checksum in (("cnn", "old"), ("vgg19", "new")):
        runs.write_metrics(tmp_path / name, {"PrivateTest_accuracy": 0.5, "data_checksum": checksum},
                           {"data": {"checksum": checksum}}, model=name)
    ours = pd.DataFrame({"PrivateTest_accuracy": [0.6], "data_checksum": ["new"]}, index=["cnn_se"])
    combined = experiments.combine_results(ours, tmp_path)
    assert combined["same data"].to_dict() == {"cnn": False, "vgg19": True, "cnn_se": True}
    assert "WARNING: ['cnn'] were trained on different data" in capsys.readouterr().out


def test_a_run_evaluated_on_another_machine_records_the_precision_it_trained_in(tiny_fer, tmp_path, monkeypatch):
    """A run trained (``precision: auto`` on an AVX2-only CPU: float32) and evaluated later where 'auto' means mixed
    bfloat16 records float32, what its model computes in, not what the evaluating machine would have trained in."""
    import keras

    from fer_utils.train import compile as compile_module

    monkeypatch.setattr(compile_module.tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(compile_module, "_cpu_supports_bf16", lambda: False)
    kwargs = dict(train_config={**CFG, "epochs": 1, "precision": "auto"}, model_kwargs=TINY_CNN, seed=0, tta=None)
    try:
        first = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **kwargs)
        assert first["status"] == "trained" and first["precision"] == "float32"
        (tmp_path / "cnn" / "metrics.json").unlink()  # a crash after training
        monkeypatch.setattr(compile_module, "_cpu_supports_bf16", lambda: True)
        later = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **kwargs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert later["status"] == "evaluated" and later["precision"] == "float32"
    assert runs.read_metrics(tmp_path / "cnn")["headline"]["precision"] == "float32"


@pytest.mark.slow
def test_rerun_reuses_evaluates_or_refuses_by_recipe(tiny_fer, tmp_path):
    kwargs = dict(train_config={**CFG, "epochs": 2}, model_kwargs=TINY_CNN, seed=0, tta=None)
    first = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **kwargs)
    assert first["status"] == "trained"
    history = (tmp_path / "cnn" / "history.csv").read_text()
    # Same recipe, finished: reused, nothing retrained.
    again = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **kwargs)
    assert again["status"] == "reused" and again["PrivateTest_accuracy"] == first["PrivateTest_accuracy"]
    assert (tmp_path / "cnn" / "history.csv").read_text() == history
    # A run recorded before a TrainConfig field existed (ema_momentum) is the same recipe, not another one.
    recipe_file = tmp_path / "cnn" / "recipe.json"
    recipe = json.loads(recipe_file.read_text())
    del recipe["train_config"]["ema_momentum"]
    recipe_file.write_text(json.dumps(recipe))
    assert experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **kwargs)["status"] == "reused"
    # keep_last changes what a run keeps, not what it trains: the same recipe (and nothing new is written).
    keep = dict(kwargs, train_config={**CFG, "epochs": 2, "keep_last": True})
    assert experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **keep)["status"] == "reused"
    assert not (tmp_path / "cnn" / runs.LAST_MODEL_FILE).exists()
    # Trained but not evaluated (a crash after training): evaluated without retraining, same numbers.
    (tmp_path / "cnn" / "metrics.json").unlink()
    (tmp_path / "cnn" / "predictions.npz").unlink()
    finished = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **kwargs)
    assert finished["status"] == "evaluated" and finished["PrivateTest_accuracy"] == first["PrivateTest_accuracy"]
    assert (tmp_path / "cnn" / "history.csv").read_text() == history
    # Another TTA only: the saved model is evaluated again, not retrained; the earlier evaluation is kept aside.
    model_bytes = (tmp_path / "cnn" / runs.MODEL_FILE).read_bytes()
    flip = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **dict(kwargs, tta="flip"))
    assert flip["status"] == "evaluated" and flip["epochs_run"] == 2
    assert (tmp_path / "cnn" / "history.csv").read_text() == history
    assert (tmp_path / "cnn" / runs.MODEL_FILE).read_bytes() == model_bytes
    assert runs.read_preprocessing(tmp_path / "cnn")["tta"] == "flip"
    (kept,) = (tmp_path / "cnn").glob("replaced-*")
    assert sorted(f.name for f in kept.iterdir()) == sorted(runs.EVALUATION_FILES)
    assert runs.read_preprocessing(kept)["tta"] is None and runs.read_recipe(kept)["tta"] is None
    assert runs.read_metrics(kept)["headline"]["PrivateTest_accuracy"] == first["PrivateTest_accuracy"]
    assert experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **dict(kwargs, tta="flip"))["status"] == "reused"
    # Another ten-crop side only: evaluated again with it, not retrained; the default is not written to the recipe,
    # so runs recorded before the key exist are the same recipe.
    assert "crop_fraction" not in runs.read_recipe(tmp_path / "cnn")
    ten = dict(kwargs, tta="ten_crop")
    assert experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **ten)["status"] == "evaluated"
    probs = runs.load_predictions(tmp_path / "cnn")["y_prob"]
    wide = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **dict(ten, crop_fraction=0.5))
    assert wide["status"] == "evaluated" and (tmp_path / "cnn" / runs.MODEL_FILE).read_bytes() == model_bytes
    assert runs.read_preprocessing(tmp_path / "cnn")["crop_fraction"] == 0.5
    assert runs.read_recipe(tmp_path / "cnn")["crop_fraction"] == 0.5
    assert not np.allclose(runs.load_predictions(tmp_path / "cnn")["y_prob"], probs)  # the crop reached the views
    assert experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **dict(ten, crop_fraction=0.5))["status"] == \
        "reused"
    before = {f.name: f.read_bytes() for f in (tmp_path / "cnn").iterdir() if f.is_file()}
    for bad in (0, 1.5, "0.9", True):  # refused before anything is read or trained
        with pytest.raises(ValueError, match=r"crop_fraction=.*expected a number in \(0, 1\]"):
            experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **dict(ten, crop_fraction=bad))
    assert {f.name: f.read_bytes() for f in (tmp_path / "cnn").iterdir() if f.is_file()} == before
    assert experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **dict(kwargs, tta="flip"))["status"] == \
        "evaluated"  # back to flip at the default side: the recipe has no crop_fraction again
    assert "crop_fraction" not in runs.read_recipe(tmp_path / "cnn")
    # Another TTA and another training: refused, naming both.
    with pytest.raises(FileExistsError, match=r"differs in \['train_config', 'tta'\]"):
        experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", train_config={**CFG, "epochs": 3},
                              model_kwargs=TINY_CNN, seed=0, tta=None)
    kwargs["tta"] = "flip"
    # Another recipe: refused, naming what differs; overwrite moves the old run aside.
    other = dict(kwargs, train_config={**CFG, "epochs": 3})
    with pytest.raises(FileExistsError, match=r"differs in \['train_config'\].*--fresh"):
        experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", **other)
    fresh = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", overwrite=True, **other)
    assert fresh["status"] == "trained" and fresh["epochs_run"] == 3
    assert len(list((tmp_path / "cnn").glob("replaced-*/history.csv"))) == 1


def test_headline_says_which_models_were_resumed_or_reused():
    res = pd.DataFrame({"PrivateTest_accuracy": [0.6, 0.7, 0.5], "status": ["trained", "resumed", "reused"]},
                       index=["cnn", "cnn_se", "cnn_cbam"])
    head = experiments.headline(res)
    assert head["best"] == "cnn_se" and head["resumed"] == "cnn_se" and head["reused"] == "cnn_cbam"
    assert "evaluated" not in head


def test_the_committed_ckplus_runs_test_the_same_images_and_docs_quote_their_pooled_accuracies():
    """docs/results.md's CK+ comparisons (issue 26) come from the committed fold files: the three runs tested the same
    images in every fold, each differs from the one it is compared with only in what the docs say (loss and schedule;
    then the TTA alone, the same saved models), and each pooled accuracy the docs quote is its predictions' own."""
    from fer_utils.stats import mcnemar_test

    root = Path(__file__).resolve().parents[1]
    results = root / "benchmarks" / "results" / "study_c_cpu"
    roots = {"study": results / "ckplus" / "msca_resnet", "recipe": results / "ckplus_ce_cosine",
             "recipe_ten_crop": results / "ckplus_ce_cosine_ten_crop"}
    folds_csv = {"study": results / "ckplus_folds.csv", "recipe": roots["recipe"] / "ckplus_folds.csv",
                 "recipe_ten_crop": roots["recipe_ten_crop"] / "ckplus_folds.csv"}
    pooled = {name: ([], []) for name in roots}
    for fold in range(10):
        preds = {name: runs.load_predictions(r / f"fold{fold}" / runs.PREDICTIONS_FILE) for name, r in roots.items()}
        ids = [list(p["source_ids"]) for p in preds.values()]
        assert ids[0] == ids[1] == ids[2], f"fold {fold}: the runs tested different images"
        for name, p in preds.items():
            table = pd.read_csv(folds_csv[name]).set_index("fold")
            assert table.loc[fold, "accuracy"] == pytest.approx(np.mean(p["y_pred"] == p["y_true"]), abs=1e-12)
            pooled[name][0].append(p["y_true"])
            pooled[name][1].append(p["y_pred"])
        recipes = {name: runs.read_recipe(r / f"fold{fold}") for name, r in roots.items()}
        study, recipe, ten = (recipes[n] for n in roots)
        changed = {k for k in study["train_config"] if study["train_config"][k] != recipe["train_config"][k]}
        assert changed == {"loss", "label_smoothing", "schedule", "warmup_epochs"}
        assert {k: v for k, v in study.items() if k != "train_config"} == \
            {k: v for k, v in recipe.items() if k != "train_config"}
        assert (recipe["tta"], ten["tta"]) == ("flip", "ten_crop")
        assert {k: v for k, v in recipe.items() if k != "tta"} == {k: v for k, v in ten.items() if k != "tta"}
    docs = (root / "docs" / "results.md").read_text()
    y = {name: np.concatenate(t) for name, (t, _) in pooled.items()}
    pred = {name: np.concatenate(p) for name, (_, p) in pooled.items()}
    assert len(y["study"]) == 981 and all(np.array_equal(y["study"], v) for v in y.values())
    for name in roots:
        assert f"{np.mean(pred[name] == y[name]):.4f}" in docs, name
    test = mcnemar_test(y["recipe"], pred["recipe"], pred["recipe_ten_crop"])
    assert f"p = {test['p']:.2f}" in docs
    # The profile's choice was made on validation: the docs' fold counts and means are the fold files'.
    val = {n: pd.read_csv(folds_csv[n]).set_index("fold")["best val acc"].round(3) for n in ("study", "recipe")}
    counts = [int((val["recipe"] > val["study"]).sum()), int((val["recipe"] == val["study"]).sum()),
              int((val["recipe"] < val["study"]).sum())]
    assert "(higher on {} folds, equal on {}, lower on {})".format(*counts) in docs
    assert f"{val['recipe'].mean():.3f}" in docs and f"{val['study'].mean():.3f}" in docs
    # The cpu profile's CK+ is the committed ten-crop run: the same training configuration and TTA.
    from fer_utils import params as P
    from fer_utils.experiments.running import recipe_train_config

    cpu = {**P.notebook_parameters(root / "notebooks" / "04_cbam.ipynb"),
           **P.resolve(P.load_profile("cpu", root / "params"), P.list_notebooks(root / "notebooks"),
                       subset="study_c_ckplus")["04_cbam"]}
    # (a run recorded before a TrainConfig field existed reads it as its default, as the runner does)
    assert recipe_train_config(cpu["ckplus_train_config"]) == recipe_train_config(ten["train_config"])
    assert cpu["study_c_tta"] == ten["tta"] and cpu["study_c_augment"] == ten["augment"]


_TABLE2_CHANGES = {"msca_resnet": [], "lr_0.001": ["train_config", "train_config.schedule"]}
_TABLE3_CHANGES = {"msca_resnet": [], "crossentropy_7ep": ["train_config", "train_config.loss"]}


@pytest.mark.parametrize("folder_name, csv_name, changes, default_change", [
    ("ferplus_table2", "ferplus_table2_learning_rate.csv", _TABLE2_CHANGES,
     ["train_config", "train_config.learning_rate", "train_config.schedule"]),
    ("ferplus_table3", "ferplus_table3_se_bn.csv", _TABLE3_CHANGES, ["model"]),
])
def test_the_committed_7_epoch_tables_differ_only_in_what_the_table_says_and_docs_quote_their_files(
        folder_name, csv_name, changes, default_change):
    """docs/results.md's Tables 2 and 3 at 7 epochs (issue 26) come from ``study_c_cpu/ferplus_table2|3``: each run
    is the reference's recipe but for its learning rate and schedule (Table 2) or its model or loss (Table 3), the
    CSV's accuracies and discordant counts are its predictions', its published column is published.json's row for
    the setting the cpu profile names, and the docs quote them."""
    from fer_utils import params as P
    from fer_utils.experiments.study_c import published_accuracies

    root = Path(__file__).resolve().parents[1]
    folder = root / "benchmarks" / "results" / "study_c_cpu" / folder_name
    table = pd.read_csv(folder / csv_name).set_index("run")
    ref_name = table.index[0]
    # Both tables' reference is one run (Table 2's part reused it): its files are Table 3's.
    run_dir = {r: folder / r if (folder / r).is_dir() else folder.parent / "ferplus_table3" / r for r in table.index}
    recipes = {r: runs.read_recipe(run_dir[r]) for r in table.index}
    preds = {r: runs.load_predictions(run_dir[r]) for r in table.index}
    ref, ref_pred = recipes[ref_name], preds[ref_name]
    private = ref_pred["split"] == "PrivateTest"
    ref_right = ref_pred["y_pred"][private] == ref_pred["y_true"][private]
    docs = (root / "docs" / "results.md").read_text()
    for run, recipe in recipes.items():
        changed = sorted(k for k in ref if ref[k] != recipe[k])
        changed += sorted(f"train_config.{k}" for k in ref["train_config"]
                          if ref["train_config"][k] != recipe["train_config"][k])
        assert changed == changes.get(run, default_change), run
        assert recipe["train_config"]["epochs"] == 7 and recipe["tta"] == "ten_crop"
        p = preds[run]
        assert list(p["source_ids"]) == list(ref_pred["source_ids"])
        right = p["y_pred"][private] == p["y_true"][private]
        assert table.loc[run, "PrivateTest_accuracy"] == pytest.approx(right.mean(), abs=1e-12)
        assert f"{right.mean():.4f}" in docs, run
        if run != ref_name:
            assert table.loc[run, "discordant (msca_resnet right / run right)"] == \
                f"{int((ref_right & ~right).sum())} / {int((~ref_right & right).sum())}"
    profile = P.resolve(P.load_profile("cpu", root / "params"), P.list_notebooks(root / "notebooks"))["04_cbam"]
    published = published_accuracies(profile["ferplus_runs"])
    for run in table.index:
        assert table.loc[run, "Study C (published, 200 epochs)"] == pytest.approx(published.get(run, np.nan),
                                                                                  nan_ok=True)


def _as_docs_write_p(p: float) -> str:
    """A p value as docs/results.md's tables write it: 0.10, 1.9e-3, 2.3e-11."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1e}".replace("e-0", "e-")


def test_compare_pair_counts_the_discordant_images_the_docs_quote_and_refuses_other_images():
    """``benchmarks/results/study_c_cpu/compare_pair.py`` (McNemar of two committed FER+ runs): ce_step against the
    headline's ten-crop rescore gives the counts docs/results.md quotes, as do the docs' contrasts of the loss x
    schedule runs; folders of other data or images are refused."""
    import importlib.util

    from fer_utils.stats import mcnemar_test

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "study_c_cpu"
    spec = importlib.util.spec_from_file_location("compare_pair", results / "compare_pair.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    head, step = results / "ferplus" / "ce_warmup_cosine_ten_crop", results / "ferplus" / "ce_step"
    out = module.compare(head, step)
    a, b = runs.load_predictions(head), runs.load_predictions(step)
    private = a["split"] == "PrivateTest"
    right_a = a["y_pred"][private] == a["y_true"][private]
    right_b = b["y_pred"][private] == b["y_true"][private]
    assert out["images"] == 3376 and out["acc_a"] == pytest.approx(right_a.mean())
    assert (out["a_right_b_wrong"], out["b_right_a_wrong"]) == (int((right_a & ~right_b).sum()),
                                                                int((~right_a & right_b).sum()))
    assert out["p"] == pytest.approx(mcnemar_test(a["y_true"][private], a["y_pred"][private],
                                                  b["y_pred"][private])["p"])
    docs = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    p = f"{out['p']:.1e}".replace("e-0", "e-")  # as the docs write it: 1.2e-9
    assert f"**{out['diff']:.2f} points, McNemar p {p}**" in docs
    assert f"ce_step right: {out['a_right_b_wrong']} / {out['b_right_a_wrong']}" in docs
    # The docs' table of FER+ contrasts (loss x schedule) is compare_pair's output on the committed folders.
    pairs = [("cosine_step", "ce_step"), ("ce_step", head.name), ("cosine_step", "cosine_warmup_cosine"),
             ("cosine_warmup_cosine", head.name), ("cosine_step", head.name)]  # the last: the README's two ends
    for a, b in pairs:
        out = module.compare(results / "ferplus" / a, results / "ferplus" / b)  # the folders the docs name
        p = _as_docs_write_p(out["p"])
        assert (f"| `{a}` -> `{b}` | {out['diff']:+.2f} | {out['a_right_b_wrong']} / {out['b_right_a_wrong']} | {p} |"
                in docs), (a, b)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()  # the front door quotes both ends
    assert f"{100 * out['acc_a']:.1f}%" in readme and f"{100 * out['acc_b']:.1f}%" in readme  # cosine_step, headline
    with pytest.raises(SystemExit, match="scored on different data"):
        module.compare(head, results / "ckplus_ce_cosine" / "fold0")
    with pytest.raises(SystemExit, match="not scored on the same Test images"):  # FER+ has no split 'Test'
        module.compare(head, step, split="Test")


@pytest.mark.parametrize("title", ["loss_x_schedule", "majority_vs_votes"])
def test_the_committed_26_epoch_ferplus_runs_are_the_cpu_profiles_and_the_table_and_docs_read_their_files(title):
    """docs/results.md's 26-epoch FER+ tables (issue 26) come from ``study_c_cpu/ferplus``: each run's recipe is what
    the cpu profile trains under that name (so its subset command trains it again), scored with the profile's
    ten-crop (the headline run was scored with flip when it trained: the table reads its ten-crop rescore,
    ``ce_warmup_cosine_ten_crop``, of the same model), and the CSV's accuracies and discordant counts are those
    predictions', quoted by the docs."""
    from fer_utils import params as P
    from fer_utils.experiments.running import recipe_train_config
    from fer_utils.experiments.study_c import check_runs

    root = Path(__file__).resolve().parents[1]
    folder = root / "benchmarks" / "results" / "study_c_cpu" / "ferplus"
    table = pd.read_csv(folder / f"ferplus_{title}.csv").set_index("run")
    cpu = {**P.notebook_parameters(root / "notebooks" / "04_cbam.ipynb"),
           **P.resolve(P.load_profile("cpu", root / "params"), P.list_notebooks(root / "notebooks"))["04_cbam"]}
    assert list(table.index) == cpu["ferplus_tables"][title]
    planned = check_runs(cpu["ferplus_runs"], cpu["study_c_models"], cpu["ferplus_train_config"])
    scored = {r: folder / f"{r}_ten_crop" if (folder / f"{r}_ten_crop").is_dir() else folder / r for r in table.index}
    preds = {r: runs.load_predictions(scored[r]) for r in table.index}
    ref_name = table.index[0]
    private = preds[ref_name]["split"] == "PrivateTest"
    right = {r: p["y_pred"][private] == p["y_true"][private] for r, p in preds.items()}
    docs = (root / "docs" / "results.md").read_text()
    for run in table.index:
        recipe = runs.read_recipe(folder / run)
        assert (recipe["model"], recipe["target"]) == (planned[run].model, planned[run].target), run
        assert recipe_train_config(recipe["train_config"]) == recipe_train_config(planned[run].train_config), run
        assert recipe["train_config"]["epochs"] == 26 and recipe["seed"] == cpu["seed"]
        assert recipe["augment"] == cpu["study_c_augment"]
        head = runs.read_metrics(scored[run])["headline"]
        tta = head["tta"] if scored[run].name != run else recipe["tta"]  # a rescore records the TTA it used
        assert tta == cpu["study_c_tta"] == "ten_crop", run
        assert list(preds[run]["source_ids"]) == list(preds[ref_name]["source_ids"])
        assert table.loc[run, "PrivateTest_accuracy"] == pytest.approx(right[run].mean(), abs=1e-12)
        assert table.loc[run, "PrivateTest_accuracy"] == pytest.approx(head["PrivateTest_accuracy"], abs=1e-12)
        assert f"{right[run].mean():.4f}" in docs, run
        if run != ref_name:
            assert table.loc[run, f"discordant ({ref_name} right / run right)"] == \
                f"{int((right[ref_name] & ~right[run]).sum())} / {int((~right[ref_name] & right[run]).sum())}"
    for run in table.index:  # the docs' table row of each run: its cells are the CSV's
        row = next(line for line in docs.splitlines() if line.startswith(f"| `{run}` | "))
        t = table.loc[run]
        cells = [f"{t['train minutes']:.1f}", f"{t['best val acc']:.4f}",
                 f"{t['PrivateTest_accuracy']:.4f} / {t['PrivateTest_macro_f1']:.3f}",
                 f"{t['PrivateTest_dedup_accuracy']:.4f} / {t['PrivateTest_dedup_macro_f1']:.3f}",
                 f"{t['PublicTest_accuracy']:.4f}"]
        if run != ref_name:
            cells.append(f"{100 * t[f'diff vs {ref_name} (PrivateTest)']:+.2f}, p {_as_docs_write_p(t['McNemar p'])} "
                         f"({t[f'discordant ({ref_name} right / run right)']})")
        assert all(f"| {c} |" in row for c in cells), (run, row, cells)
    if title == "loss_x_schedule":  # the README quotes the two cells between the study's setting and the recipe's
        middle = [100 * right[r].mean() for r in table.index[1:-1]]
        readme = (root / "README.md").read_text()
        assert f"{min(middle):.1f}-{max(middle):.1f}%" in readme
