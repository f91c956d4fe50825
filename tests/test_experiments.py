"""Experiments end to end on real fixtures: training lowers the loss and the run folder is complete."""

import json

import numpy as np
import pytest

from fer_utils import data as D
from fer_utils import evaluate, experiments

TINY_CNN = {"filters": [8, 16, 16, 32], "dense_units": 16, "dropout": 0.0}
CFG = {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 16, "epochs": 4, "precision": "float32",
       "schedule": "constant"}


@pytest.fixture(scope="module")
def tiny_fer(real_data):
    ds = D.load_fer2013_csv(real_data / "fixtures" / "fer2013_tiny.csv", cache_dir=False)
    return experiments.prepare(ds, val_fraction=0.34, seed=0)


def test_run_model_trains_and_writes_every_artifact(tiny_fer, tmp_path):
    res = experiments.run_model("cnn", tiny_fer, tmp_path / "cnn", train_config=CFG, model_kwargs=TINY_CNN,
                                seed=0, tta="flip")
    run = tmp_path / "cnn"
    for name in ("metrics.json", "history.csv", "predictions.npz", "model.keras", "train_config.json"):
        assert (run / name).is_file(), name
    hist = experiments.load_histories(tmp_path, ["cnn"])["cnn"]
    assert len(hist) == 4 and hist["loss"].iloc[-1] < hist["loss"].iloc[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "cnn" and metrics["metadata"]["seed"] == 0
    assert metrics["metadata"]["data"]["checksum"] == tiny_fer.checksum
    assert set(metrics["splits"]) == {"PublicTest", "PrivateTest"}
    pred = evaluate.load_predictions(run)
    public = tiny_fer.split("PublicTest")
    assert list(pred["source_ids"][pred["split"] == "PublicTest"]) == list(public.source_ids)
    acc = float((pred["y_prob"].argmax(1) == pred["y_true"]).mean())
    both = (res["PublicTest_accuracy"] * 21 + res["PrivateTest_accuracy"] * 21) / 42
    assert abs(acc - both) < 1e-9
    table = experiments.collect_results(tmp_path)
    assert list(table.index) == ["cnn"] and table.loc["cnn", "PrivateTest_accuracy"] == res["PrivateTest_accuracy"]


def test_validation_never_comes_from_test(tiny_fer):
    assert set(tiny_fer.split_names) == {"Training", "Validation", "PublicTest", "PrivateTest"}
    assert tiny_fer.class_counts().loc["total", "PublicTest"] == 21


def test_unknown_model_fails_before_training(tiny_fer, tmp_path):
    with pytest.raises(ValueError, match="unknown model 'resnet51'; known models: .*resnet50"):
        experiments.run_models(["cnn", "resnet51"], tiny_fer, tmp_path, train_config=CFG)
    assert not (tmp_path / "cnn").exists()


def test_ckplus_cross_validation_is_subject_independent(fixtures_dir, tmp_path):
    ck = D.load_ckplus(fixtures_dir / "ckplus48_tiny.npz")
    fold = D.fold_dataset(ck, 0, k=2, seed=0, val_fraction=0.3)
    subjects = ck.meta["subject"].to_numpy()
    assert not set(subjects[fold.splits == "Test"]) & set(subjects[fold.splits != "Test"])
    res = experiments.run_cv("msca_resnet", ck, tmp_path, k=2, folds=[0], seed=0, val_fraction=0.3,
                             train_config={**CFG, "epochs": 1, "loss": "cosine"}, tta=None,
                             model_kwargs={"filters": [8, 8, 16], "stem_filters": 8})
    assert res["folds"] == 1 and 0.0 <= res["Test_accuracy"] <= 1.0
    pred = evaluate.load_predictions(tmp_path / "fold0")
    assert set(pred["split"]) == {"Test"} and len(pred["y_true"]) == (fold.splits == "Test").sum()


def test_ablation_table_layout():
    import pandas as pd

    fp = pd.DataFrame({"PrivateTest_accuracy": [0.5, 0.4]}, index=["msca_resnet", "msca_resnet_plain"])
    ck = pd.DataFrame({"Test_accuracy": [0.9, 0.8]}, index=["msca_resnet", "msca_resnet_plain"])
    table = experiments.ablation_table(fp, ck)
    assert table.loc["msca_resnet", "FER+ paper"] == pytest.approx(0.878)
    assert table.loc["msca_resnet_plain", "CK+ paper"] == pytest.approx(0.9728)
    assert not table.loc["msca_resnet_plain", "SE"] and table.loc["msca_resnet", "BN"]


def test_attention_comparison_pairs_models():
    import pandas as pd

    res = pd.DataFrame({"PrivateTest_accuracy": [0.6, 0.65, 0.62], "PrivateTest_macro_f1": [0.5, 0.55, 0.5]},
                       index=["cnn", "cnn_se", "cnn_cbam"])
    cmp = experiments.attention_comparison(res)
    assert cmp.loc["cnn_se", "delta accuracy"] == pytest.approx(0.05)
    assert cmp.loc["cnn_cbam", "baseline"] == "cnn"
