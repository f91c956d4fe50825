"""Runner and notebooks: a papermill smoke run of every notebook, failures, archiving.

Like recommenders' notebook tests, the checks read the headline numbers back from the executed
notebooks (the output of the cell tagged ``headline``) and assert them.
"""

import ast
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from fer_utils import params as P

RUNNER_PARAMS = 'profile = "adhoc"\nrun_dir = ""\nreports_dir = ""\n'


def _run(args, **kw):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "fer_utils.run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800, **kw)


def _nb(path, cells):
    nb = {"cells": [], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    for i, (src, tags) in enumerate(cells):
        nb["cells"].append({"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags}, "source": src,
                            "outputs": [], "execution_count": None})
    path.write_text(json.dumps(nb))


def notebook_headline(path) -> dict:
    """The value the executed notebook's ``headline`` cell displayed, parsed back into a dict."""
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "headline" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path}: expected one cell tagged 'headline'"
    results = [o for o in cells[0]["outputs"] if o.get("output_type") == "execute_result"]
    assert results, f"{path}: the headline cell shows no result"
    return ast.literal_eval("".join(results[0]["data"]["text/plain"]))


def test_committed_notebooks_carry_no_outputs():
    for nb in P.list_notebooks(ROOT / "notebooks"):
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{nb.name} has outputs"


def test_smoke_profile_runs_every_notebook(tmp_path):
    """The whole suite in the smoke profile: every notebook executes and is linked from the index."""
    result = _run(["--profile", "smoke", "--reports-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "smoke"
    index = (out / "index.html").read_text()
    for nb in P.list_notebooks(ROOT / "notebooks"):
        assert (out / f"{nb.stem}.html").is_file()
        assert f"{nb.stem}.html" in index
        metrics = json.loads((out / nb.stem / "metrics.json").read_text())
        assert metrics["metadata"]["seed"] == 42
        assert len(metrics["metadata"]["data"]["checksum"]) == 64
        assert "tensorflow" in metrics["metadata"]["versions"]
    # Each model run's artifacts are linked from the index.
    for artifact in ("metrics.json", "history.csv", "predictions.npz", "model.keras"):
        assert f"03_baselines/cnn/{artifact}" in index
        assert (out / "03_baselines" / "cnn" / artifact).is_file()
    assert "04_cbam/ckplus/msca_resnet/fold0/predictions.npz" in index
    # Headline numbers read back from the executed notebooks, and the same numbers in metrics.json.
    heads = {nb.stem: notebook_headline(out / f"{nb.stem}.ipynb") for nb in P.list_notebooks(ROOT / "notebooks")}
    for stem, head in heads.items():
        assert head == json.loads((out / stem / "metrics.json").read_text())["headline"], stem
    cnn = json.loads((out / "03_baselines" / "cnn" / "metrics.json").read_text())
    assert heads["03_baselines"]["cnn PrivateTest acc"] == round(cnn["headline"]["PrivateTest_accuracy"], 4)
    assert set(heads["03_baselines"]) >= {f"{m} PrivateTest acc" for m in ("cnn", "vgg19", "resnet50", "inception_v3")}
    assert heads["04_cbam"]["best"] in {"cnn_se", "cnn_cbam", "vgg19_cbam", "resnet50_cbam", "inception_v3_cbam"}
    assert "msca_resnet CK+ fold acc" in heads["04_cbam"]
    # 02: the GAN ran its steps, the balanced training file carries the flags, kid.csv has every class.
    gan = heads["02_gan_balancing"]
    assert gan["gan_steps"] == 4 and len(gan["generator_sha256"]) == 64
    import numpy as np
    import pandas as pd

    with np.load(out / "02_gan_balancing" / "balanced_train.npz") as z:
        assert z["is_synthetic"].sum() == 9 and str(z["generator_sha256"]) == gan["generator_sha256"]
    kid = pd.read_csv(out / "02_gan_balancing" / "kid.csv")
    assert {"class", "KID", "standard error", "floor"} <= set(kid.columns) and len(kid) == 8
    assert {k for k in gan if k.startswith("PrivateTest (dedup) accuracy")} == {
        f"PrivateTest (dedup) accuracy {c}" for c in ("real only", "explicit", "study_a_table3")}
    # 05: the 2x2 grid ran whole, every trial is in trials.csv, the best configuration is the best trial's, and the
    # test numbers of default and best come from their run folders.
    tuned = heads["05_tuning"]
    trials = pd.read_csv(out / "05_tuning" / "trials.csv")
    assert tuned["cnn grid trials"] == 4 and tuned["cnn bayesian trials"] == 3
    assert len(trials) == sum(tuned[f"cnn {k} trials"] for k in ("grid", "hyperband", "bayesian"))
    grid = trials[trials.tuner == "grid"]
    assert set(zip(grid.learning_rate, grid.optimizer)) == {(a, b) for a in (0.003, 0.01) for b in ("adam", "sgd")}
    best = json.loads((out / "05_tuning" / "best_config.json").read_text())["cnn"]
    assert best["val_accuracy"] == pytest.approx(trials[trials.status == "COMPLETED"].val_accuracy.max())
    for which in ("default", "best"):
        folder = out / "05_tuning" / "cnn" / which
        if folder.is_dir():
            acc = json.loads((folder / "metrics.json").read_text())["headline"]["PrivateTest_accuracy"]
            assert tuned[f"cnn {which} PrivateTest acc"] == round(acc, 4)
    assert tuned["Study C lr ferplus trials"] == 2 and tuned["Study C lr ckplus trials"] == 2
    # 06: every comparison is a row of tests.csv with its Holm-adjusted p; Table XII compares 05's default and tuned
    # CNN, Table XIII the CNN with CNN+SE; McNemar pairs every two FER-2013 models of 03/04/05 on PrivateTest.
    tests = pd.read_csv(out / "06_statistics" / "tests.csv")
    assert heads["06_statistics"]["comparisons"] == len(tests) and heads["06_statistics"]["5x2cv trainings"] == 30
    assert set(tests.family) >= {"Table XII: default vs tuned", "Table XIII: model vs model", "McNemar, every pair"}
    xii = tests[tests.family == "Table XII: default vs tuned"]
    assert set(zip(xii["model A"], xii["model B"])) == {("cnn default", "cnn tuned")} and len(xii) == 3
    fer = {"03:" + m for m in ("cnn", "vgg19", "resnet50", "inception_v3")} | {"05:cnn/default", "05:cnn/best"} | {
        "04:" + m for m in ("cnn_se", "cnn_cbam", "vgg19_cbam", "resnet50_cbam", "inception_v3_cbam")}
    pairs = {frozenset(p) for p in zip(tests["model A"], tests["model B"]) if p[0] in fer}
    assert len(pairs) == len(fer) * (len(fer) - 1) // 2
    assert tests["adjusted p"].dropna().ge(tests.loc[tests["adjusted p"].notna(), "p"] - 1e-12).all()
    t_row = xii[xii.test.str.startswith("5x2cv paired t")].iloc[0]
    assert heads["06_statistics"]["cnn default vs cnn tuned p"] == round(float(t_row.p), 4)
    # Every parameter of a notebook is recorded, not just some.
    recorded = json.loads((out / "03_baselines" / "metrics.json").read_text())["metadata"]["params"]
    assert set(recorded) == set(P.notebook_parameters(ROOT / "notebooks" / "03_baselines.ipynb"))
    assert recorded["train_configs"]["cnn"]["epochs"] == 25
    if os.environ.get("FER_DATA_DIR"):
        assert heads["01_eda"]["counts_match_published"] is True
        assert heads["01_eda"]["n_Training"] == 28709 and heads["01_eda"]["n_PrivateTest"] == 3589
        assert heads["01_eda"]["fer_vs_ferplus_agreement"] == pytest.approx(0.653, abs=0.002)
        assert heads["01_eda"]["ckplus_subjects"] == 118
    else:
        assert "SYNTHETIC" in (out / "01_eda.html").read_text()


def test_readme_default_run_without_any_dataset(tmp_path):
    """The README's first command on a machine with no dataset: every notebook on the synthetic default."""
    env_free = {k: v for k, v in os.environ.items() if k != "FER_DATA_DIR"}
    env_free.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    assert not (ROOT / "data").exists() and not (ROOT / "notebooks" / "data").exists()  # nothing for "auto" to find
    result = subprocess.run([sys.executable, "-m", "fer_utils.run", "--profile", "smoke",
                             "--reports-dir", str(tmp_path)],
                            cwd=ROOT, env=env_free, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "smoke"
    for nb in P.list_notebooks(ROOT / "notebooks"):
        assert "SYNTHETIC DATA" in (out / f"{nb.stem}.html").read_text(), nb.stem
        assert json.loads((out / nb.stem / "metrics.json").read_text())["metadata"]["synthetic_data"] is True
    assert "SYNTHETIC DATA" in (out / "index.html").read_text()
    # The newcomer's first report shows models that learn: the CNNs are far above chance (1/7).
    assert notebook_headline(out / "03_baselines.ipynb")["cnn PrivateTest acc"] >= 0.8
    cnn = json.loads((out / "03_baselines" / "cnn" / "metrics.json").read_text())["headline"]
    assert cnn["PublicTest_accuracy"] >= 0.8
    attention = notebook_headline(out / "04_cbam.ipynb")
    assert attention["cnn_se PrivateTest acc"] >= 0.8 and attention["cnn_cbam PrivateTest acc"] >= 0.8


@pytest.fixture()
def toy_suite(tmp_path):
    nbs, prm = tmp_path / "notebooks", tmp_path / "params"
    nbs.mkdir()
    prm.mkdir()
    _nb(nbs / "01_ok.ipynb", [(RUNNER_PARAMS + "value = 1\n", ["parameters"]),
                              ("import json, pathlib\npathlib.Path(run_dir, 'metrics.json').write_text("
                               "json.dumps({'headline': {'value': value}, 'metadata': {'seed': 0}}))", [])])
    _nb(nbs / "02_fail.ipynb", [(RUNNER_PARAMS, ["parameters"]),
                                ("raise RuntimeError('deliberate failure in cell two')", [])])
    (prm / "t.yaml").write_text("notebooks:\n  01_ok:\n    value: 7\n")
    return tmp_path


def _toy_args(root, *extra):
    return ["--profile", "t", "--notebooks-dir", str(root / "notebooks"), "--params-dir", str(root / "params"),
            "--reports-dir", str(root / "reports"), *extra]


def test_failing_notebook_stops_with_partial_html_and_keeps_earlier_work(toy_suite):
    result = _run(_toy_args(toy_suite))
    assert result.returncode == 1
    assert "notebook 02_fail failed" in result.stderr
    out = toy_suite / "reports" / "t"
    assert "deliberate failure in cell two" in (out / "02_fail.html").read_text()
    assert json.loads((out / "01_ok" / "metrics.json").read_text())["headline"]["value"] == 7
    index = (out / "index.html").read_text()
    assert "01_ok.html" in index and "failed" in index
    # Re-running keeps the earlier outputs instead of overwriting them.
    again = _run(_toy_args(toy_suite, "--only", "01", "--param", "value=8"))
    assert again.returncode == 0, again.stderr
    previous = list((out / "_previous").glob("*/01_ok/metrics.json"))
    assert len(previous) == 1 and json.loads(previous[0].read_text())["headline"]["value"] == 7
    assert json.loads((out / "01_ok" / "metrics.json").read_text())["headline"]["value"] == 8


def test_unknown_parameter_is_an_error_before_running(toy_suite):
    result = _run(_toy_args(toy_suite, "--param", "01.valu=3"))
    assert result.returncode == 2
    assert "unknown parameter 'valu'" in result.stderr
    assert not (toy_suite / "reports").exists()
