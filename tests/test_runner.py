"""The runner as users break it: killed mid-training and re-run, typos, failures, quiet progress, --check."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, docs_row, write_png
from fer_utils import notebook_exec
from fer_utils import params as P


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    env.update(extra)
    return env


def _runner(args, **kw):
    return subprocess.run([sys.executable, "-m", "fer_utils.run", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=1800, **kw)


@pytest.fixture()
def tiny_profile(tmp_path):
    """A profile that trains one small CNN for many short epochs on the synthetic faces."""
    prm = tmp_path / "params"
    prm.mkdir()
    (prm / "t.yaml").write_text(
        "shared: {seed: 1, dataset: synthetic, synthetic_per_class: 20}\n"
        "notebooks:\n"
        "  03_baselines:\n"
        "    models: [cnn]\n"
        "    model_kwargs: {cnn: {filters: [4, 8, 8, 8], dense_units: 8}}\n"
        "    input_size: 32\n"
        "    augment: {}\n"
        "    tta: null\n"
        "    train_config: {optimizer: adam, batch_size: 16, epochs: 40, schedule: constant, precision: float32}\n")
    return tmp_path


def _args(root, *extra):
    return ["--profile", "t", "--only", "03", "--params-dir", str(root / "params"), "--reports-dir",
            str(root / "reports"), *extra]


@pytest.mark.slow
def test_killed_run_resumes_through_the_runner(tiny_profile):
    root = tiny_profile
    run = root / "reports" / "t" / "03_baselines" / "cnn"
    proc = subprocess.Popen([sys.executable, "-m", "fer_utils.run", *_args(root)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 600
    try:
        # SIGKILL (no clean-up at all) once a few epochs are done and the run is still training.
        while time.time() < deadline:
            rows = (run / "history.csv").read_text().splitlines() if (run / "history.csv").exists() else []
            if len(rows) >= 4 and (run / "backup").is_dir():
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    time.sleep(3)  # the orphaned kernel notices its parent is gone and exits
    killed_at = len((run / "history.csv").read_text().splitlines()) - 1
    assert 3 <= killed_at < 40 and not (run / "metrics.json").exists()

    again = _runner(_args(root))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "continuing the earlier run" in again.stdout
    assert "cnn: resuming from" in again.stdout
    epochs = [int(line.split(",")[0]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == list(range(40))  # continuous: no gap, no repeated epoch
    # The resumed run went on from the backup, not from epoch 0.
    first_resumed = int(again.stdout.split("cnn epoch ")[1].split("/")[0])
    assert 2 <= first_resumed <= killed_at + 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["headline"]["epochs_run"] == 40 and metrics["headline"]["status"] == "resumed"
    timings = (run / "timings.csv").read_text().splitlines()[1:]
    assert [int(t.split(",")[0]) for t in timings] == list(range(40))
    assert metrics["headline"]["train_seconds"] == pytest.approx(sum(float(t.split(",")[1]) for t in timings), abs=0.1)
    notebook = json.loads((root / "reports" / "t" / "03_baselines" / "metrics.json").read_text())
    assert notebook["headline"]["resumed"] == "cnn"
    assert "continued the earlier run" in (root / "reports" / "t" / "index.html").read_text()
    # The run folder was continued, not archived; only the interrupted run's executed notebook was kept aside.
    assert not list((root / "reports" / "t" / "_previous").glob("*/03_baselines"))

    # The same command once more: everything is reused, nothing retrained; --fresh archives and retrains.
    third = _runner(_args(root))
    assert third.returncode == 0 and "finished earlier with the same recipe, results reused" in third.stdout
    fresh = _runner(_args(root, "--fresh"))
    assert fresh.returncode == 0 and "cnn epoch 1/40" in fresh.stdout
    assert len(list((root / "reports" / "t" / "_previous").glob("*/03_baselines/cnn/metrics.json"))) == 1


@pytest.mark.slow
def test_different_parameters_archive_the_earlier_run(tiny_profile):
    root = tiny_profile
    first = _runner(_args(root, "--param", "03.train_config={epochs: 2}"))
    assert first.returncode == 0, first.stderr[-2000:]
    second = _runner(_args(root, "--param", "03.train_config={epochs: 3}"))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "continuing" not in second.stdout
    previous = list((root / "reports" / "t" / "_previous").glob("*/03_baselines/cnn/history.csv"))
    assert len(previous) == 1 and len(previous[0].read_text().splitlines()) == 3


@pytest.mark.parametrize("override, message", [
    ("03.tta=flpi", "notebook 03_baselines: tta: 'flpi'; expected one of"),
    ("03.models=[cnn, resnet51]", "notebook 03_baselines: models: unknown model(s) ['resnet51']"),
    ("03.eval_splits=[Test]", "eval_splits: ['Test'] not in the test splits ['PublicTest', 'PrivateTest']"),
    ("03.train_config={optimizer: nadam}", "Invalid optimizer='nadam'"),
    ("03.train_configs={cnn: {epochs: 0}}", "train_configs.cnn: Invalid epochs=0"),
    ("03.normalization=zscore", "normalization: 'zscore'; expected 'auto' or one of"),
    ("04.ckplus_folds=[12]", "ckplus_folds: [12] outside 0..9"),
    ("04.ferplus_runs={lr_high: {learning_rate: 0.01}}",
     "notebook 04_cbam: ferplus_runs['lr_high']: model 'lr_high' is not a registry model"),
    ("04.ferplus_runs={v: {model: msca_resnet, target: votes}}",
     "notebook 04_cbam: ferplus_runs['v']: target 'votes' is not one of ['majority', 'distribution']"),
    ("04.study_c_datasets=[ferplus, ckpls]", "study_c_datasets: ['ckpls']; expected a subset of ['ferplus', 'ckplus']"),
    ("04.study_c_tta=tencrop", "notebook 04_cbam: study_c_tta: 'tencrop'; expected one of"),
    ("04.ferplus_only=[msca_resnet_plian]", "ferplus_only: ['msca_resnet_plian'] are not FER+ runs of this notebook"),
    ("03.seeds=[0, 0]", "notebook 03_baselines: seeds: seeds=[0, 0]: expected a list of distinct integers"),
    ("05.tuners=[grid, hyperbnd]", "unknown tuner 'hyperbnd'; expected one of"),
    ("05.space={learning_rate: [0.01], batch_size: [30], l2: [0.001], optimizer: [sgd, nadam], epochs: [50]}",
     "optimizer='nadam' gives an invalid training config"),
    ("05.space={optimizer: [sgd, adam]}", "must set exactly the space's hyperparameters ['optimizer']"),
    ("05.tuner_settings={bayesian: {max_trails: 3}}", "tuner 'bayesian': unknown setting(s) ['max_trails']"),
])
@pytest.mark.slow
def test_typos_fail_before_any_notebook_starts(tiny_profile, override, message):
    root = tiny_profile
    only = override[:2]
    result = _runner(["--profile", "t", "--only", only, "--params-dir", str(root / "params"), "--reports-dir",
                      str(root / "reports"), "--param", override])
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "nothing was started" in result.stderr
    assert not (root / "reports").exists()


@pytest.mark.slow
def test_missing_data_dir_fails_before_any_notebook(tmp_path):
    result = _runner(["--profile", "smoke", "--only", "03", "--reports-dir", str(tmp_path / "r"),
                      "--param", f"data_dir={tmp_path / 'typo'}"])
    assert result.returncode == 2
    assert f"data_dir='{tmp_path / 'typo'}' does not exist" in result.stderr


@pytest.mark.slow
def test_kaggle_copy_without_prefixes_defaults_to_its_test_split(tmp_path):
    """The most used Kaggle copy has train/ and test/ without PublicTest_/PrivateTest_ names: one Test split."""
    from fer_utils import data as D

    rng = np.random.default_rng(0)
    for sub in ("train", "test"):
        for c in D.FER2013_CLASSES:
            write_png(tmp_path / "kaggle" / sub / c / "im0.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    assert D.expected_splits("auto", tmp_path / "kaggle")[1] == ("Training", "Test")
    base = ["--profile", "smoke", "--only", "03", "--param", f"data_dir={tmp_path / 'kaggle'}", "--reports-dir",
            str(tmp_path / "r")]
    assert "eval_splits: ['PublicTest']" in _runner(base + ["--param", "03.eval_splits=[PublicTest]"]).stderr
    ok = _runner(base + ["--check", "--no-estimate"])
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "splits ['Training', 'Test']" in ok.stdout


@pytest.mark.slow
@pytest.mark.parametrize("profile", P.PROFILES)
def test_every_profile_passes_the_dry_run_check(profile, tmp_path):
    """--check builds every model at its input size and trains one step; a paper run checked on a laptop."""
    # the cost estimate (timed steps of every model) is tested on smoke; the other profiles only build and step
    extra = [] if profile == "smoke" else ["--no-estimate"]
    result = _runner(["--profile", profile, "--check", "--reports-dir", str(tmp_path), *extra])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "one step ok" in result.stdout and "FAILED" not in result.stdout
    assert f"profile {profile}: every notebook's parameters, data and models are fine" in result.stdout
    if profile == "smoke":
        from fer_utils.artifacts import cpu_kind

        assert f"[cost] profile smoke on this machine ({cpu_kind()}" in result.stdout
        assert "[cost]   all: " in result.stdout and "training(s)" in result.stdout and "T4 " in result.stdout
    else:
        assert "[cost]" not in result.stdout
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


@pytest.mark.slow
def test_failed_notebook_never_blocks_the_next_run(tmp_path):
    nbs, prm = tmp_path / "notebooks", tmp_path / "params"
    nbs.mkdir()
    prm.mkdir()
    cell = lambda src, tags: {"cell_type": "code", "id": f"c{abs(hash(src)) % 10**8}",  # noqa: E731
                              "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": None}
    nb = {"cells": [cell('profile = "adhoc"\nrun_dir = ""\nreports_dir = ""\nfail = True\n', ["parameters"]),
                    cell("if fail:\n    raise RuntimeError('fails before writing anything')\n"
                         "import json, pathlib\npathlib.Path(run_dir, 'metrics.json').write_text("
                         "json.dumps({'headline': {'ok': 1}, 'metadata': {}}))", [])],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (nbs / "01_x.ipynb").write_text(json.dumps(nb))
    (prm / "t.yaml").write_text("notebooks: {}\n")
    base = ["--profile", "t", "--notebooks-dir", str(nbs), "--params-dir", str(prm), "--reports-dir",
            str(tmp_path / "reports")]
    assert _runner(base).returncode == 1
    assert _runner(base).returncode == 1  # the same failure again, not a FileExistsError
    fixed = _runner(base + ["--param", "fail=false"])
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    out = tmp_path / "reports" / "t"
    index = (out / "index.html").read_text()
    assert "01_x.html" in index and (out / "01_x.html").is_file()
    # Every link of the index points at a file that exists.
    for href in [part.split("'")[0] for part in index.split("href='")[1:]]:
        assert (out / href).exists(), href


def test_filtered_stderr_drops_start_up_notices_of_this_process_and_its_children():
    """TensorFlow prints its oneDNN notice from C++ straight to fd 2, ignoring TF_CPP_MIN_LOG_LEVEL."""
    code = ("import os, subprocess, sys\n"
            "from fer_utils.notebook_exec import filtered_stderr\n"
            "with filtered_stderr():\n"
            "    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\\n')\n"
            "    print('a real warning', file=sys.stderr, flush=True)\n"
            "    subprocess.run([sys.executable, '-c', \"import os; os.write(2, b'WARNING: All log messages before "
            "absl::InitializeLog() is called are written to STDERR\\\\nchild error\\\\n')\"])\n"
            "print('after', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["a real warning", "child error", "after"]


def test_stderr_filter_keeps_real_warnings():
    text = ("I0000 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use CPU instructions\n"
            "oneDNN custom operations are on. You may see slightly different numerical results\n"
            "UserWarning: No FER-2013 found: using the built-in SYNTHETIC dataset\n")
    assert notebook_exec.filter_stderr(text) == "UserWarning: No FER-2013 found: using the built-in SYNTHETIC dataset\n"
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr",
                                                        "text": "oneDNN custom operations are on\n"}]}]}
    assert notebook_exec.clean_outputs(nb) == 1 and nb["cells"][0]["outputs"] == []


# Toy notebooks: the runner's failure and parameter handling, without the real notebooks.

RUNNER_PARAMS = 'profile = "adhoc"\nrun_dir = ""\nreports_dir = ""\n'


def _nb(path, cells):
    nb = {"cells": [], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    for i, (src, tags) in enumerate(cells):
        nb["cells"].append({"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags}, "source": src,
                            "outputs": [], "execution_count": None})
    path.write_text(json.dumps(nb))


def test_committed_notebooks_carry_no_outputs_and_start_alike():
    """No outputs; every notebook starts with the one start call and imports the installed package (no sys.path)."""
    for nb in P.list_notebooks(ROOT / "notebooks"):
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, f"{nb.name} has outputs"
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        assert not any("sys.path" in c for c in code), f"{nb.name} edits sys.path"
        starts = [c for c in code if f'artifacts.start(globals(), "{nb.stem}"' in c]
        assert len(starts) == 1 and code.index(starts[0]) == 1, f"{nb.name}: the start call must follow the parameters"


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


@pytest.mark.slow
def test_failing_notebook_stops_with_partial_html_and_keeps_earlier_work(toy_suite):
    result = _runner(_toy_args(toy_suite))
    assert result.returncode == 1
    assert "notebook 02_fail failed" in result.stderr
    out = toy_suite / "reports" / "t"
    assert "deliberate failure in cell two" in (out / "02_fail.html").read_text()
    assert json.loads((out / "01_ok" / "metrics.json").read_text())["headline"]["value"] == 7
    index = (out / "index.html").read_text()
    assert "01_ok.html" in index and "failed" in index
    # Re-running keeps the earlier outputs instead of overwriting them.
    again = _runner(_toy_args(toy_suite, "--only", "01", "--param", "value=8"))
    assert again.returncode == 0, again.stderr
    previous = list((out / "_previous").glob("*/01_ok/metrics.json"))
    assert len(previous) == 1 and json.loads(previous[0].read_text())["headline"]["value"] == 7
    assert json.loads((out / "01_ok" / "metrics.json").read_text())["headline"]["value"] == 8


@pytest.mark.slow
def test_a_data_error_is_not_answered_with_run_it_again(toy_suite):
    """Re-running cannot fix bad data: the advice after a DataError is to fix the input it names."""
    _nb(toy_suite / "notebooks" / "02_fail.ipynb", [
        (RUNNER_PARAMS, ["parameters"]),
        ("from fer_utils.data import DataError\nraise DataError('fer2013.csv: row 7 has pixels of 2303 values')", [])])
    result = _runner(_toy_args(toy_suite))
    assert result.returncode == 1 and "row 7 has pixels of 2303 values" in result.stderr
    assert "Fix the input the error names" in result.stderr and "Run the same command again" not in result.stderr


def test_unknown_parameter_is_an_error_before_running(toy_suite):
    result = _runner(_toy_args(toy_suite, "--param", "01.valu=3"))
    assert result.returncode == 2
    assert "unknown parameter 'valu'" in result.stderr
    assert not (toy_suite / "reports").exists()


@pytest.mark.slow
def test_keep_going_runs_the_notebooks_after_a_failure_and_names_it(toy_suite):
    _nb(toy_suite / "notebooks" / "03_after.ipynb", [(RUNNER_PARAMS, ["parameters"]), ("x = 1", [])])
    stopped = _runner(_toy_args(toy_suite))
    assert stopped.returncode == 1 and "03_after" not in json.loads(
        (toy_suite / "reports" / "t" / "run.json").read_text())["notebooks"]
    going = _runner(_toy_args(toy_suite, "--keep-going", "--fresh"))
    assert going.returncode == 1 and "1 notebook(s) failed: 02_fail" in going.stderr
    status = json.loads((toy_suite / "reports" / "t" / "run.json").read_text())["notebooks"]
    assert {k: v["status"] for k, v in status.items()} == {"01_ok": "ok", "02_fail": "failed", "03_after": "ok"}
    if sys.platform.startswith("linux"):  # each notebook records the share of CPU time the host took meanwhile
        assert all(0 <= v["host_steal_pct"] <= 100 for v in status.values())


def _files(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_stopped_session_continues_from_a_read_only_copy_like_the_uninterrupted_run(tiny_profile):
    """Kaggle, simulated: session 1 is stopped at a checkpoint, its output becomes a read-only input, session 2
    continues it in an empty folder with --resume-from and ends with the files of a run that was never stopped."""
    root = tiny_profile
    plain = _runner(_args(root, "--reports-dir", str(root / "plain")))
    assert plain.returncode == 0, plain.stderr[-3000:]

    out = root / "reports" / "t"
    run = out / "03_baselines" / "cnn"
    proc = subprocess.Popen([sys.executable, "-m", "fer_utils.run", *_args(root)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while len((run / "history.csv").read_text().splitlines() if (run / "history.csv").exists() else []) < 4:
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be stopped"
        time.sleep(0.05)
    (out / "STOP").write_text("")  # stop cleanly at the next checkpoint
    stdout, _ = proc.communicate(timeout=600)
    assert proc.returncode == 3, stdout[-3000:]
    assert "stopped as asked (--stop-after or the STOP file) after cnn epoch" in stdout
    stopped_at = len((run / "history.csv").read_text().splitlines()) - 1
    assert 3 <= stopped_at < 40 and (run / "backup").is_dir() and not (run / "metrics.json").exists()
    assert json.loads((out / "run.json").read_text())["notebooks"]["03_baselines"]["status"] == "stopped"

    for p in [out, *out.rglob("*")]:  # the next session sees it read-only
        p.chmod(p.stat().st_mode & ~0o222)
    before = _files(out)
    try:
        second = _runner(_args(root, "--reports-dir", str(root / "next"), "--resume-from", str(out)))
        after = _files(out)
    finally:
        for p in [out, *out.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "copied the earlier session" in second.stdout and "continuing the earlier run" in second.stdout
    assert f"cnn: resuming from {root / 'next' / 't' / '03_baselines' / 'cnn' / 'backup'}" in second.stdout
    assert after == before  # nothing written into the earlier session's folder
    new, ref = root / "next" / "t" / "03_baselines" / "cnn", root / "plain" / "t" / "03_baselines" / "cnn"
    assert set(_files(new)) == set(_files(ref))
    assert (new / "history.csv").read_bytes() == (ref / "history.csv").read_bytes()
    a, b = np.load(new / "predictions.npz"), np.load(ref / "predictions.npz")
    assert set(a.files) == set(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)

    # The same command once more finds it finished; another --resume-from into a folder with a run is refused.
    again = _runner(_args(root, "--reports-dir", str(root / "next"), "--resume-from", str(out)))
    assert again.returncode == 2 and "already holds a run; continue it without --resume-from" in again.stderr


def test_stop_after_ends_before_work_and_resume_from_refuses_what_is_not_an_earlier_session(tiny_profile):
    root = tiny_profile
    early = _runner(_args(root, "--stop-after", "0.0000001"))
    assert early.returncode == 3 and "stopped as asked (--stop-after or the STOP file) before 03_baselines" in \
        early.stdout
    assert not (root / "reports" / "t" / "03_baselines").exists()
    bad = _runner(_args(root, "--stop-after", "-1"))
    assert bad.returncode == 2 and "--stop-after -1.0: expected a number of hours > 0" in bad.stderr
    nothing = _runner(_args(root, "--reports-dir", str(root / "b"), "--resume-from", str(root / "params")))
    assert nothing.returncode == 2 and "no run.json with notebooks; expected an earlier session's" in nothing.stderr
    (root / "other").mkdir()
    (root / "other" / "run.json").write_text(json.dumps({"notebooks": {"03_baselines": {"params": {"profile": "x"}}}}))
    other = _runner(_args(root, "--reports-dir", str(root / "c"), "--resume-from", str(root / "other")))
    assert other.returncode == 2 and "a run of profile(s) ['x'], not 't'" in other.stderr


@pytest.mark.slow
def test_reuse_continues_a_run_whose_parameters_changed_model_by_model(tiny_profile):
    """Adding a model to a finished run with --reuse trains only the new one; another TTA evaluates the saved
    models again; a changed training recipe is refused."""
    root = tiny_profile
    short = ["--param", "03.train_config={epochs: 3}"]
    first = _runner(_args(root, *short))
    assert first.returncode == 0, first.stderr[-3000:]
    run = root / "reports" / "t" / "03_baselines"
    kept = (run / "cnn" / "metrics.json").read_bytes()
    add = ["--param", "03.models=[cnn, cnn_se]",
           "--param", "03.model_kwargs={cnn_se: {filters: [4, 8, 8, 8], dense_units: 8}}"]
    without = _runner(_args(root, *short, *add, "--reports-dir", str(root / "copy")))  # a fresh folder: both train
    assert without.returncode == 0 and "cnn epoch 1/3" in without.stdout
    again = _runner(_args(root, *short, *add, "--reuse"))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "continuing the earlier run with changed parameters" in again.stdout
    assert "cnn: finished earlier with the same recipe, results reused" in again.stdout
    assert "cnn_se epoch 1/3" in again.stdout and "cnn epoch 1/3" not in again.stdout
    assert (run / "cnn" / "metrics.json").read_bytes() == kept and (run / "cnn_se" / "metrics.json").is_file()
    assert not list((root / "reports" / "t" / "_previous").glob("*/03_baselines"))  # not archived
    model = (run / "cnn" / "model.keras").read_bytes()
    tta = _runner(_args(root, *short, *add, "--reuse", "--param", "03.tta=flip"))  # evaluation only: not retrained
    assert tta.returncode == 0, tta.stdout[-3000:] + tta.stderr[-3000:]
    assert "evaluating the saved model again" in tta.stdout and "cnn epoch 1/3" not in tta.stdout
    assert (run / "cnn" / "model.keras").read_bytes() == model and list(run.glob("cnn/replaced-*/metrics.json"))
    kept = (run / "cnn" / "metrics.json").read_bytes()
    changed = _runner(_args(root, "--param", "03.train_config={epochs: 3, learning_rate: 0.05}", *add, "--reuse",
                            "--param", "03.tta=flip"))
    assert changed.returncode == 1 and "train_config" in changed.stderr
    assert (run / "cnn" / "metrics.json").read_bytes() == kept
    both = _runner(_args(root, "--reuse", "--fresh"))
    assert both.returncode == 2 and "--reuse and --fresh contradict each other" in both.stderr


def test_the_estimate_warns_when_other_work_shares_the_cores():
    """A busy machine times slow steps (77 minutes estimated for a 47-minute run here): --check says so."""
    from fer_utils import run

    assert run.busy_warning(load=0.3, cores=2) == "" and run.busy_warning(load=2.1, cores=8) == ""
    warning = run.busy_warning(load=2.1, cores=2)
    assert warning.startswith("warning: load average 2.1 on 2 cores") and "too high" in warning


def test_the_estimate_warns_when_the_host_steals_cpu_time_while_timing():
    """A virtual machine whose host takes CPU time (steal) while the steps are timed gets a warning, not silence."""
    from fer_utils import artifacts, run

    before = [1000, 0, 100, 5000, 0, 0, 0, 200]  # user nice system idle iowait irq softirq steal
    calm = [1900, 0, 120, 5070, 0, 0, 0, 210]  # 10 of 1,000 ticks stolen: 1%
    stolen = [1700, 0, 120, 5070, 0, 0, 0, 310]  # 110 of 900: 12%
    assert run.steal_warning(before, calm) == ""
    warning = run.steal_warning(before, stolen)
    assert warning.startswith("warning: the host took 12% of this machine's CPU time (steal)") and "too high" in warning
    assert run.steal_warning([], stolen) == "" and run.steal_warning(before, before) == ""
    assert run.steal_share(before, stolen) == pytest.approx(110 / 900) and np.isnan(run.steal_share(before, []))
    now = artifacts.cpu_times()
    if sys.platform.startswith("linux"):
        assert len(now) == 8 and all(isinstance(v, int) and v >= 0 for v in now)


@pytest.mark.slow
def test_a_second_run_in_the_same_reports_folder_is_refused_until_the_first_ends(toy_suite):
    """Two runs in one reports folder would train the same run folders and archive each other's outputs: while one
    holds the folder another is refused before anything starts, naming the holder; once the holder is gone (killed,
    no clean-up), the next run goes ahead."""
    out = toy_suite / "reports" / "t"
    out.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom fer_utils.run import hold_lock\n"
                               "h = hold_lock(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(300)", str(out)],
                              cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = _runner(_toy_args(toy_suite, "--only", "01"))
        assert refused.returncode == 2
        assert f"{out} is in use by another run (pid {holder.pid} since" in refused.stderr
        assert "another --reports-dir" in refused.stderr
        assert not (out / "01_ok").exists() and not (out / "run.json").exists()
    finally:
        holder.kill()
        holder.wait()
    after = _runner(_toy_args(toy_suite, "--only", "01"))
    assert after.returncode == 0, after.stderr
    assert json.loads((out / "01_ok" / "metrics.json").read_text())["headline"]["value"] == 7


def test_a_lock_that_cannot_be_opened_is_named(tmp_path):
    from fer_utils import run as runner

    (tmp_path / runner.LOCK_FILE).mkdir()  # something in the way of the lock file
    with pytest.raises(RuntimeError, match=rf"{tmp_path / runner.LOCK_FILE}: cannot open the run's lock"):
        runner.hold_lock(tmp_path)
    (tmp_path / "other").mkdir()
    held = runner.hold_lock(tmp_path / "other")
    assert (tmp_path / "other" / runner.LOCK_FILE).read_text().startswith(f"pid {os.getpid()} since ")
    held.close()


def test_the_estimate_names_run_folders_that_a_continuing_run_would_reuse(tmp_path):
    """``--check``'s estimate counts every training; the runner says which run folders have finished already (the
    cost of a subset that only reuses them is far below it), leaving out archives, backups and other notebooks."""
    from fer_utils import run as runner

    for rel in ("03_baselines/cnn", "03_baselines", "03_baselines/cnn/backup", "03_baselines/_previous/t/cnn",
                "04_cbam/ckplus/m/fold0", "04_cbam/ckplus/m/fold0/replaced-20261203-075113", "05_tuning/cnn/best"):
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
        (tmp_path / rel / "metrics.json").write_text("{}")
    assert runner.finished_run_folders(tmp_path, ["03_baselines", "04_cbam"]) == [
        "03_baselines/cnn", "04_cbam/ckplus/m/fold0"]
    assert runner.finished_run_folders(tmp_path, ["01_eda"]) == []
    # The report index lists the same run folders (an archived evaluation is not a model run).
    from fer_utils import index

    links = index._artifact_links(tmp_path, "04_cbam")
    assert "1 model runs" in links and "ckplus/m/fold0" in links and "replaced-" not in links


def test_docs_avx2_smoke_wall_time_is_the_committed_run():
    """docs/results.md's and the README's AVX2 smoke figures are ``smoke_fresh_avx2/``'s: every notebook's seconds
    from the runner's ``run.json`` (smoke profile, all ok), the install, smoke and total seconds from the
    timing log."""
    base = ROOT / "benchmarks" / "results" / "smoke_fresh_avx2"
    record = json.loads((base / "run.json").read_text())["notebooks"]
    assert [nb["status"] for nb in record.values()] == ["ok"] * 6
    assert {nb["params"]["profile"] for nb in record.values()} == {"smoke"}
    log = dict(part.split("=") for line in (base / "timing.log").read_text().splitlines()
               for part in line.split() if "_s=" in part)
    text = (ROOT / "docs" / "results.md").read_text()
    row = docs_row(text, "README command 1 on a fresh clone, no pip cache, no dataset, **on a real AVX2-only CPU** "
                         "(AMD EPYC Zen 3, 2 cores, no AVX-512; 2026-12-04 03:11-03:19, idle, commit `3e6857d`)")
    done = [line for line in (base / "timing.log").read_text().splitlines() if line.startswith("done in ")]
    smoke = float(done[0].split()[2])  # the runner's own total: the notebooks plus the index
    assert smoke >= sum(nb["seconds"] for nb in record.values())
    each = ", ".join(f"{name[:2]} {nb['seconds']} s" for name, nb in record.items())
    assert row[1].startswith(f"**{log['total_s']} s** (install {log['install_s']} s; smoke {smoke:.0f} s: {each})")
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"2-core AVX2-only CPU ({log['total_s']} s on a fresh clone)" in readme
