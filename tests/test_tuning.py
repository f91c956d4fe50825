"""KerasTuner searches (notebook 05): the space, build(hp), resume, refusing another search's state, and the
distributed mode with a chief and two workers on 127.0.0.1."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

SPACE = {"learning_rate": [0.003, 0.01], "optimizer": ["adam", "sgd"]}

# One tiny search, the same in every process: synthetic faces, a small CNN, one epoch per trial.
SEARCH = textwrap.dedent("""
    import json, sys
    from fer_utils import data as D, experiments
    from fer_utils.experiments import tuning
    from fer_utils.tune.search import Recipe

    def tiny_search(folder, kind="grid", space=None, stop_after=None, overwrite=False, settings=None):
        ds = experiments.prepare(D.load_synthetic(12, seed=0), val_fraction=0.25, seed=0)
        recipe = Recipe(model="cnn", train_config={"precision": "float32", "epochs": 1, "batch_size": 16},
                        model_kwargs={"filters": [4, 8, 8, 8], "dense_units": 8, "dropout": 0.0}, input_size=32,
                        seed=3)
        return tuning.run_search(ds, folder, recipe=recipe, kind=kind, space=space or %r, settings=settings,
                                 stop_after=stop_after, overwrite=overwrite)
""" % SPACE)


def _python(code: str, env_extra=None, **kw):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT),
               **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-c", SEARCH + textwrap.dedent(code)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _scores(table: pd.DataFrame) -> dict:
    return {(r.learning_rate, r.optimizer): r.val_accuracy for r in table.itertuples()}


def _status(path) -> str:
    try:
        return json.loads(path.read_text()).get("status", "")
    except (OSError, ValueError):
        return ""  # not written yet, or being written


def _tiny_search():
    namespace = {}
    exec(SEARCH, namespace)
    return namespace["tiny_search"]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The tiny grid searched in one process, start to end: the reference trial set."""
    folder = tmp_path_factory.mktemp("single") / "grid"
    return _tiny_search()(folder)


def test_table_iv_space_has_exactly_243_points_and_a_fresh_hp_builds_a_compiled_model(tmp_path):
    import keras
    import keras_tuner as kt

    from fer_utils import data as D
    from fer_utils import experiments, tune
    from fer_utils.tune.search import FERHyperModel, Recipe

    assert tune.grid_size(tune.TABLE_IV_SPACE) == 243
    ds = experiments.prepare(D.load_synthetic(4, seed=0), val_fraction=0.25, seed=0)
    hm = FERHyperModel(Recipe(model="cnn", train_config={"precision": "float32"}, input_size=32,
                              model_kwargs={"filters": [4, 8, 8, 8], "dense_units": 8}), ds, tune.TABLE_IV_SPACE)
    model = hm.build(kt.HyperParameters())
    # A fresh HyperParameters takes each Choice's first value: Table IV's default column (SGD, lr 0.01, L2 0.001).
    assert model.compiled and isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    regs = {type(layer.kernel_regularizer).__name__: layer.kernel_regularizer.l2
            for layer in model.layers if getattr(layer, "kernel_regularizer", None) is not None}
    assert regs == {"L2": pytest.approx(0.001)}

    # KerasTuner's GridSearch enumerates exactly the 243 points, each once (scores stubbed: nothing trains).
    class Counting(kt.GridSearch):
        def run_trial(self, trial, *a, **k):
            return {"val_accuracy": 0.5}

    class Declare(kt.HyperModel):
        def build(self, hp):
            tune.space.declare(hp, tune.TABLE_IV_SPACE)

    tuner = Counting(Declare(), objective=kt.Objective("val_accuracy", "max"), directory=str(tmp_path),
                     project_name="table4")
    tuner.search(verbose=0)
    points = {tuple(sorted(t.hyperparameters.values.items())) for t in tuner.oracle.trials.values()}
    assert len(tuner.oracle.trials) == 243 and len(points) == 243


def test_space_errors_name_the_key():
    from fer_utils import tune
    from fer_utils.tune.search import check_tuner

    with pytest.raises(tune.SpaceError, match="'lerning_rate' is neither a TrainConfig field"):
        tune.check_space({"lerning_rate": [0.1]})
    with pytest.raises(tune.SpaceError, match="repeated values"):
        tune.check_space({"batch_size": [32, 32]})
    with pytest.raises(tune.SpaceError, match=r"default optimizer='nadam' is not among"):
        tune.check_default(tune.TABLE_IV_SPACE, {**tune.TABLE_IV_DEFAULT, "optimizer": "nadam"})
    with pytest.raises(ValueError, match="Invalid optimizer='adamw'"):
        tune.apply({"optimizer": ["adamw"]}, {"optimizer": "adamw"}, {})
    with pytest.raises(ValueError, match=r"tuner 'hyperband': unknown setting\(s\) \['max_trials'\]"):
        check_tuner("hyperband", {"max_trials": 3}, tune.TABLE_IV_SPACE)
    # Hyperband takes its epoch budget from the space's largest epochs, and never tunes epochs.
    from fer_utils.tune.search import tuned_space

    assert check_tuner("hyperband", None, tune.TABLE_IV_SPACE)["max_epochs"] == 200
    assert "epochs" not in tuned_space("hyperband", tune.TABLE_IV_SPACE)
    cfg, kwargs = tune.apply(tune.STUDY_C_LR_SPACE, {"lr_setting": "step"}, {"loss": "cosine"})
    assert (cfg.schedule, cfg.loss, kwargs) == ("step", "cosine", {})


@pytest.mark.slow
def test_interrupted_grid_resumes_only_the_remaining_trials(tmp_path, single_run, monkeypatch):
    from fer_utils.tune.search import FERHyperModel

    trained = []
    fit = FERHyperModel.fit

    def counting_fit(self, hp, model, *a, **k):
        trained.append((hp.values["learning_rate"], hp.values["optimizer"]))
        return fit(self, hp, model, *a, **k)

    monkeypatch.setattr(FERHyperModel, "fit", counting_fit)
    search = _tiny_search()
    first = search(tmp_path / "grid", stop_after=2)
    assert first["status"] == "stopped" and len(first["trials"]) == 2
    done = set(trained)
    kept = (tmp_path / "grid" / "trial_0000" / "trial.json").read_bytes()
    second = search(tmp_path / "grid")
    assert second["status"] == "resume"
    # Only the two remaining configurations trained; the finished trials' records are untouched.
    assert len(trained) == 4 and set(trained[2:]) == set(_scores(single_run["trials"])) - done
    assert (tmp_path / "grid" / "trial_0000" / "trial.json").read_bytes() == kept
    assert (second["trials"].status == "COMPLETED").all() and len(second["trials"]) == 4
    # Every trial starts from the same seed: the same configuration scores the same in either run.
    assert _scores(second["trials"]) == _scores(single_run["trials"])
    assert pd.read_csv(tmp_path / "grid" / "trials.csv").shape[0] == 4


@pytest.mark.slow
def test_killed_search_resumes_and_reruns_only_the_interrupted_trial(tmp_path, single_run):
    folder = tmp_path / "grid"
    proc = _python(f"tiny_search({str(folder)!r})", start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (folder / "trial_0001" / "trial.json").exists():
        time.sleep(0.2)
    while time.time() < deadline and _status(folder / "trial_0001" / "trial.json") != "COMPLETED":
        time.sleep(0.2)  # trial 1 finished; trial 2 is being trained
    while time.time() < deadline and not (folder / "trial_0002").exists():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name for p in folder.glob("trial_*/trial.json") if _status(p) == "COMPLETED"}
    assert {"trial_0000", "trial_0001"} <= finished and len(finished) < 4
    resumed = _tiny_search()(folder)
    table = resumed["trials"]
    assert resumed["status"] == "resume" and len(table) == 4 and (table.status == "COMPLETED").all()
    assert _scores(table) == _scores(single_run["trials"])


@pytest.mark.slow
def test_another_search_in_the_folder_is_refused_unless_asked_to_start_over(tmp_path):
    search = _tiny_search()
    search(tmp_path / "grid", stop_after=1)
    with pytest.raises(FileExistsError, match=r"grid holds the state of another search \(differs in \['space'\]\)"):
        search(tmp_path / "grid", space={"learning_rate": [0.003, 0.03], "optimizer": ["adam", "sgd"]}, stop_after=1)
    fresh = search(tmp_path / "grid", space={"learning_rate": [0.03], "optimizer": ["adam"]}, overwrite=True)
    assert len(fresh["trials"]) == 1 and fresh["trials"].learning_rate.tolist() == [0.03]
    moved = list(tmp_path.glob("grid.replaced-*"))
    assert len(moved) == 1 and (moved[0] / "trial_0000" / "trial.json").is_file()  # kept, not deleted


def test_a_search_is_not_resumed_in_another_precision(tmp_path, monkeypatch):
    """``precision: auto`` resolves per machine, and a search records what it resolved to: resumed where its trials
    would build in another precision (a bf16 CPU after an AVX2-only one), the search is refused before any tuner
    starts, with the way out; a record without a precision (older, or a distributed search's) still resumes and
    gains this machine's; distributed searches record none (workers train in their own)."""
    from fer_utils.train import compile as compile_module
    from fer_utils.tune import search as T

    monkeypatch.setattr(compile_module.tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(compile_module, "_cpu_supports_bf16", lambda: True)
    auto = T.Recipe(model="cnn", train_config={"precision": "auto"})
    on_bf16 = T.fingerprint("grid", {}, SPACE, auto, "x")
    tuned = T.fingerprint("grid", {}, {**SPACE, "precision": ["auto", "float32"]}, auto, "x")
    assert on_bf16["precision"] == "mixed_bfloat16" and tuned["precision"] == ["float32", "mixed_bfloat16"]
    setups = {"setup": {"plain": {"precision": "float32"}, "fast": {"learning_rate": 0.1}}}  # named settings
    assert T.fingerprint("grid", {}, setups, auto, "x")["precision"] == ["float32", "mixed_bfloat16"]
    setups["setup"]["fast"]["precision"] = "float32"  # every setting sets it: the recipe's is never used
    assert T.fingerprint("grid", {}, setups, auto, "x")["precision"] == ["float32"]
    assert T.fingerprint("grid", {}, SPACE, auto, "x", distributed=True)["precision"] is None
    folder = tmp_path / "grid"
    assert T.prepare_search_dir(folder, on_bf16) == "new"
    (folder / "trial_0000").mkdir()  # a trial on record
    monkeypatch.setattr(compile_module, "_cpu_supports_bf16", lambda: False)
    on_avx2 = T.fingerprint("grid", {}, SPACE, auto, "x")
    assert on_avx2["precision"] == "float32"
    with pytest.raises(FileExistsError, match=r"differs in \['precision'\]: its trials trained in mixed_bfloat16, "
                                              r"this machine builds them in float32.*ONEDNN_MAX_CPU_ISA=AVX2"):
        T.prepare_search_dir(folder, on_avx2)
    meta = folder / T.SEARCH_FILE
    assert json.loads(meta.read_text()) == json.loads(json.dumps(on_bf16))  # refused: nothing rewritten
    T.check_same_search(folder, T.fingerprint("grid", {}, SPACE, auto, "x", distributed=True))  # a worker
    meta.write_text(json.dumps({k: v for k, v in on_bf16.items() if k != "precision"}))  # an older record
    assert T.prepare_search_dir(folder, on_avx2) == "resume"
    assert json.loads(meta.read_text())["precision"] == "float32"  # checked from now on
    for broken in ("null", "[1, 2]"):  # not a record: another search, named, not a crash
        meta.write_text(broken)
        with pytest.raises(FileExistsError, match=r"differs in .*'unreadable'"):
            T.prepare_search_dir(folder, on_avx2)


@pytest.mark.slow
def test_hyperband_sets_the_epochs_itself(tmp_path):
    out = _tiny_search()(tmp_path / "hb", kind="hyperband", settings={"max_epochs": 2, "factor": 2})
    t = out["trials"]
    assert "epochs" not in out["space"] and (t.status == "COMPLETED").all()
    # Each trial trained from its initial epoch to Hyperband's epoch count, not a tuned epochs value.
    assert (t.epochs_run == t.epochs - t.initial_epoch).all() and set(t.epochs) == {1, 2}


def test_a_promoted_hyperband_trial_continues_as_the_configuration_trained_whole(tmp_path):
    import keras
    import keras_tuner as kt

    from fer_utils import artifacts, data as D, experiments
    from fer_utils.tune import space as S
    from fer_utils.tune.search import FERHyperModel, Recipe

    # Adam with a cosine schedule over Hyperband's 2 epochs: a restarted step count or zeroed moments would show.
    space = {"learning_rate": [0.01, 0.003], "optimizer": ["adam"], "schedule": ["cosine"]}
    out = _tiny_search()(tmp_path / "hb", kind="hyperband", space=space, settings={"max_epochs": 2, "factor": 2})
    t = out["trials"]
    promoted = t[(t.initial_epoch == 1) & (t.status == "COMPLETED")]
    assert len(promoted) >= 1
    ds = experiments.prepare(D.load_synthetic(12, seed=0), val_fraction=0.25, seed=0)
    recipe = Recipe(model="cnn", train_config={"precision": "float32", "epochs": 1, "batch_size": 16},
                    model_kwargs={"filters": [4, 8, 8, 8], "dense_units": 8, "dropout": 0.0}, input_size=32, seed=3)
    hm = FERHyperModel(recipe, ds, S.check_space(space), max_epochs=2)
    steps = -(-len(ds.split("Training")) // 16)
    for row in promoted.itertuples():
        hp = kt.HyperParameters()
        S.declare(hp, hm.space)
        hp.values["learning_rate"] = row.learning_rate
        artifacts.set_seed(3)  # as every trial starts
        whole = hm.build(hp)
        hm.fit(hp, whole, epochs=2)
        continued = hm.build(hp)
        continued.optimizer.build(continued.trainable_variables)
        continued.load_weights(tmp_path / "hb" / f"trial_{row.trial}" / "checkpoint.weights.h5")
        assert int(continued.optimizer.iterations.numpy()) == 2 * steps  # the step count went on (was `steps`)
        # the weights too, bit for bit: restarted moments or dropout masks (fc1_dropout) would have changed them
        for a, b in zip(whole.weights, continued.weights):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
        for a, b in zip(whole.optimizer.variables, continued.optimizer.variables):  # Adam's moments
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)


@pytest.mark.slow
def test_distributed_chief_and_two_workers_run_each_configuration_once(tmp_path, single_run):
    from fer_utils.tune import distributed as dist

    folder = tmp_path / "grid"
    base = dist.free_port_range(1)
    session = "test"
    t0 = time.perf_counter()
    chief = _python(f"""
        o = tiny_search({str(folder)!r})
        print("TABLE" + o["trials"].to_csv(index=False))
    """, dist.environment("chief", ip="127.0.0.1", port_base=base, session=session))
    workers = [_python(f"""
        o = tiny_search({str(folder)!r})
        print("TRAINED", o["trained_here"], o["status"])
    """, dist.environment("worker", ip="127.0.0.1", port_base=base, session=session, worker=i)) for i in range(2)]
    try:
        out, err = chief.communicate(timeout=600)
        assert chief.returncode == 0, err[-3000:]
        trained = []
        for w in workers:
            wout, werr = w.communicate(timeout=120)
            assert w.returncode == 0, werr[-3000:]
            count, status = wout.split("TRAINED", 1)[1].split()
            assert status == "worker"
            trained.append(int(count))
    finally:
        for p in [chief, *workers]:  # a failed chief leaves workers waiting for it: never leave them behind
            if p.poll() is None:
                p.kill()
                p.wait()
    seconds = time.perf_counter() - t0
    # Every configuration was trained exactly once, by the workers (the chief only serves the oracle).
    assert sum(trained) == 4, trained
    table = pd.read_csv(io.StringIO(out.split("TABLE", 1)[1].strip()))
    configs = list(zip(table.learning_rate, table.optimizer))
    assert len(configs) == 4 and len(set(configs)) == 4 and (table.status == "COMPLETED").all()
    # The same trial set, with the same scores, as the single-process search.
    assert _scores(table) == _scores(single_run["trials"])
    print(f"distributed tiny grid, chief + 2 workers: {seconds:.1f} s, trials per worker {trained}")
    assert np.isfinite(table.val_accuracy).all()


def test_the_worker_launcher_lives_above_tune_and_starts_workers_of_itself():
    import argparse

    from fer_utils.experiments import tune_workers as TW

    assert not (ROOT / "fer_utils" / "tune" / "__main__.py").exists()
    args = argparse.Namespace(profile="cpu", oracle_ip="127.0.0.1", reports_dir="r", notebooks_dir="n",
                              params_dir="p", param=["05.seed=1"])
    cmd = TW._worker_command(args, 1, 8000, "s")
    assert cmd[1:3] == ["-m", "fer_utils.experiments.tune_workers"] and cmd[-2:] == ["--param", "05.seed=1"]
    help_text = subprocess.run([sys.executable, "-m", "fer_utils.experiments.tune_workers", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert help_text.returncode == 0 and "python -m fer_utils.experiments.tune_workers" in help_text.stdout


@pytest.mark.slow
def test_best_config_feeds_notebooks_03_and_04(tmp_path, single_run):
    from fer_utils.experiments import tuning

    outcomes = {"cnn": {"grid": single_run}}
    best = tuning.write_best_config(tmp_path / "05_tuning", outcomes, train_config={"batch_size": 16, "epochs": 1},
                                    space=SPACE, data_checksum="abc")
    table = single_run["trials"]
    top = table.sort_values(["val_accuracy", "trial"], ascending=[False, True]).iloc[0]
    cfg = best["cnn"]["train_config"]
    assert (cfg["learning_rate"], cfg["optimizer"], cfg["batch_size"]) == (top.learning_rate, top.optimizer, 16)
    assert best["cnn"]["val_accuracy"] == top.val_accuracy and best["cnn"]["trial"] == top.trial
    configs, kwargs = tuning.apply_tuned("05", ["cnn", "cnn_se"], {"cnn_se": {"epochs": 3}}, {},
                                         tmp_path / "03_baselines", tmp_path)
    assert configs == {"cnn": cfg, "cnn_se": {"epochs": 3}} and kwargs == {"cnn": {}}
    with pytest.raises(FileNotFoundError, match="no best_config.json under"):
        tuning.apply_tuned("05", ["cnn"], {}, {}, tmp_path / "elsewhere" / "03_baselines", tmp_path / "elsewhere")


def test_multi_worker_tf_config_is_refused_with_the_reason(monkeypatch):
    from fer_utils import train

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(RuntimeError, match=r"MultiWorkerMirroredStrategy does not work with Keras 3's model.fit"):
        train.get_strategy()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        train.get_strategy()
