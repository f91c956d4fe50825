"""Runner and notebooks: a papermill smoke run of every notebook, failures, archiving."""

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
    eda = json.loads((out / "01_eda" / "metrics.json").read_text())
    if os.environ.get("FER_DATA_DIR"):
        assert eda["headline"]["counts_match_published"] is True
        assert eda["headline"]["n_Training"] == 28709
    else:
        assert "SYNTHETIC" in (out / "01_eda.html").read_text()


def test_readme_default_run_without_any_dataset(tmp_path):
    """The README's first command on a machine with no dataset: every notebook on the synthetic default."""
    env_free = {k: v for k, v in os.environ.items() if k != "FER_DATA_DIR"}
    env_free.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", "fer_utils.run", "--profile", "smoke",
                             "--reports-dir", str(tmp_path), "--param", f"data_dir={tmp_path / 'nothing'}"],
                            cwd=ROOT, env=env_free, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "smoke"
    for nb in P.list_notebooks(ROOT / "notebooks"):
        assert "SYNTHETIC DATA" in (out / f"{nb.stem}.html").read_text(), nb.stem
        assert json.loads((out / nb.stem / "metrics.json").read_text())["metadata"]["synthetic_data"] is True
    assert "SYNTHETIC DATA" in (out / "index.html").read_text()


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
