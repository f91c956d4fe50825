"""The notebooks: one papermill smoke run of all six, shared by one test per notebook.

The run is made once per session (``smoke_run``, with ``--keep-going``) in whatever configuration the tests run
in: real data when ``FER_DATA_DIR`` is set, the built-in synthetic faces when it is not (CI runs both). A notebook
that fails fails its own test, with its error; the others are still checked. Like recommenders' notebook tests,
the checks read the headline numbers back from the executed notebooks (the output of the cell tagged
``headline``) and assert them.
"""

import ast
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from fer_utils import params as P

# One worker runs every test of the shared smoke run (pytest-xdist --dist loadgroup), so the run is made once.
pytestmark = [pytest.mark.slow, pytest.mark.notebooks, pytest.mark.xdist_group("smoke_run")]

NOTEBOOKS = [nb.stem for nb in P.list_notebooks(ROOT / "notebooks")]
REAL = bool(os.environ.get("FER_DATA_DIR"))


def notebook_headline(path) -> dict:
    """The value the executed notebook's ``headline`` cell displayed, parsed back into a dict."""
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "headline" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path}: expected one cell tagged 'headline'"
    results = [o for o in cells[0]["outputs"] if o.get("output_type") == "execute_result"]
    assert results, f"{path}: the headline cell shows no result"
    return ast.literal_eval("".join(results[0]["data"]["text/plain"]))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The README's first command (``--profile smoke``), once, into a temporary reports folder."""
    reports = tmp_path_factory.mktemp("smoke_reports")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    if not REAL:
        # Nothing for data_dir "auto" to find: the run must fall back to the synthetic faces.
        assert not (ROOT / "data").exists() and not (ROOT / "notebooks" / "data").exists()
    result = subprocess.run([sys.executable, "-m", "fer_utils.run", "--profile", "smoke", "--keep-going",
                             "--reports-dir", str(reports)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=1800)
    out = reports / "smoke"
    status = json.loads((out / "run.json").read_text())["notebooks"] if (out / "run.json").exists() else {}
    return types.SimpleNamespace(result=result, out=out, status=status, console=result.stdout + result.stderr)


def _ran(smoke_run, stem) -> dict:
    """Assert ``stem`` executed without error; its headline (checked against its metrics.json)."""
    rec = smoke_run.status.get(stem)
    assert rec is not None, f"{stem} never started:\n{smoke_run.console[-3000:]}"
    assert rec["status"] == "ok", f"{stem} failed: {rec.get('error', '')[-3000:]}"
    out = smoke_run.out
    assert (out / f"{stem}.html").is_file() and f"{stem}.html" in (out / "index.html").read_text()
    metrics = json.loads((out / stem / "metrics.json").read_text())
    meta = metrics["metadata"]
    assert meta["seed"] == 42 and len(meta["data"]["checksum"]) == 64 and "tensorflow" in meta["versions"]
    # Every parameter of the notebook is recorded, not just some.
    assert set(meta["params"]) == set(P.notebook_parameters(ROOT / "notebooks" / f"{stem}.ipynb"))
    head = notebook_headline(out / f"{stem}.ipynb")
    assert head == metrics["headline"], stem
    html = (out / f"{stem}.html").read_text()
    if not REAL:
        assert "SYNTHETIC DATA" in html and meta["synthetic_data"] is True, stem
    return head


def test_runner_finished_every_notebook(smoke_run):
    assert smoke_run.result.returncode == 0, smoke_run.console[-4000:]
    assert [s for s in NOTEBOOKS if smoke_run.status.get(s, {}).get("status") == "ok"] == NOTEBOOKS
    index = (smoke_run.out / "index.html").read_text()
    for href in [part.split("'")[0] for part in index.split("href='")[1:]]:
        assert (smoke_run.out / href).exists(), href
    if not REAL:
        assert "SYNTHETIC DATA" in index


def test_01_eda(smoke_run):
    head = _ran(smoke_run, "01_eda")
    near = pd.read_csv(smoke_run.out / "01_eda" / "near_duplicates.csv")
    assert {"i", "j", "kind", "score", "distance", "split_i", "split_j", "label_i", "label_j", "source_i",
            "source_j", "family"} <= set(near.columns)
    assert (near["i"] < near["j"]).all() and set(near["kind"]) <= {"exact", "near", "mirror"}
    assert head["test_copies_of_training_any_kind"] >= head["test_copies_of_training_bytes"]
    if REAL:
        assert head["counts_match_published"] is True
        assert head["n_Training"] == 28709 and head["n_PrivateTest"] == 3589
        assert head["fer_vs_ferplus_agreement"] == pytest.approx(0.653, abs=0.002)
        assert head["ckplus_subjects"] == 118
        # 568 byte copies of Training in the test splits, and about three times as many near-duplicates or mirrors
        assert head["test_copies_of_training_bytes"] == 568
        assert 1500 < head["test_copies_of_training_any_kind"] < 2000
        assert {"near", "mirror"} <= set(near["kind"]) and near.query("kind != 'exact'")["score"].min() >= 0.75
    else:  # the drawn default faces are not photographs: byte copies only
        assert set(near["kind"]) <= {"exact"}


def test_02_gan_balancing(smoke_run):
    """The GAN ran its steps, the balanced file carries the flags, every quality table is written, the copying
    controls read as known (copies found, blurry averages and a perfect generator not), the effect has its control."""
    gan = _ran(smoke_run, "02_gan_balancing")
    out = smoke_run.out / "02_gan_balancing"
    assert gan["gan_steps"] == 4 and len(gan["generator_sha256"]) == 64
    with np.load(out / "balanced_train.npz") as z:
        assert z["is_synthetic"].sum() == 9 and str(z["generator_sha256"]) == gan["generator_sha256"]
    kid = pd.read_csv(out / "kid.csv")
    assert {"class", "kid", "kid_se", "floor", "between_class"} <= set(kid.columns) and len(kid) == 8
    quality = pd.read_csv(out / "quality.csv").set_index("class")
    assert {"gan_test", "real_test", "near_copy_rate"} <= set(quality.columns) and len(quality) == 8
    assert gan["gan_test_mean"] == pytest.approx(quality.loc["mean", "gan_test"])
    copying = pd.read_csv(out / "copying.csv").set_index("set")
    assert list(copying.index) == ["generated", "perfect generator", "blurry averages", "copies"]
    if REAL:  # photographs, judged by the shipped model: every control reads as known
        assert copying.loc["copies", "near_copy_rate"] == 1.0 and copying.loc["copies", "z_u_features"] < 0
        assert copying.loc["perfect generator", "near_copy_rate"] == 0.0
        assert copying.loc["blurry averages", "near_copy_rate"] == 0.0
    else:  # the drawn faces are alike by design: byte copies only, and the shifted copies are not byte copies
        assert (copying["near_copy_rate"] == 0.0).all()
    cas = pd.read_csv(out / "cas.csv")
    assert set(cas["trained on"]) == {"generated", "real"} and cas["balanced_accuracy"].between(0, 1).all()
    summary = pd.read_csv(out / "effect_summary.csv")
    assert {"real_only", "real_oversampled", "real_gan"} <= set(summary["condition"])
    assert {k for k in gan if k.startswith("PrivateTest (dedup) accuracy")} == {
        f"PrivateTest (dedup) accuracy {c}" for c in ("real_only", "real_oversampled", "real_gan",
                                                      "real_oversampled:study_a_table3", "real_gan:study_a_table3")}


def test_03_baselines(smoke_run):
    """The learning demo: the CNN's run folder is complete and linked, and on the synthetic faces it learns."""
    head = _ran(smoke_run, "03_baselines")
    out = smoke_run.out
    index = (out / "index.html").read_text()
    for artifact in ("metrics.json", "history.csv", "predictions.npz", "model.keras"):
        assert f"03_baselines/cnn/{artifact}" in index
        assert (out / "03_baselines" / "cnn" / artifact).is_file()
    cnn = json.loads((out / "03_baselines" / "cnn" / "metrics.json").read_text())["headline"]
    assert head["cnn PrivateTest acc"] == round(cnn["PrivateTest_accuracy"], 4)
    recorded = json.loads((out / "03_baselines" / "metrics.json").read_text())["metadata"]["params"]
    assert recorded["train_configs"]["cnn"]["epochs"] == 25
    if not REAL:  # far above chance (1/7) on both test splits
        assert head["cnn PrivateTest acc"] >= 0.8 and cnn["PublicTest_accuracy"] >= 0.8


def test_04_cbam(smoke_run):
    head = _ran(smoke_run, "04_cbam")
    assert head["best"] in {"cnn_se", "cnn_cbam"}
    assert "msca_resnet CK+ fold acc" in head
    assert "04_cbam/ckplus/msca_resnet/fold0/predictions.npz" in (smoke_run.out / "index.html").read_text()
    # The FER+ table of the smoke profile: the plain network against the full one, McNemar on the same images.
    table = pd.read_csv(smoke_run.out / "04_cbam" / "ferplus_se_bn.csv", index_col=0)
    assert list(table.index) == ["msca_resnet", "msca_resnet_plain"]
    assert table.loc["msca_resnet_plain", "change"] == "model msca_resnet_plain"
    assert 0 <= table.loc["msca_resnet_plain", "McNemar p"] <= 1
    plain = json.loads((smoke_run.out / "04_cbam" / "ferplus" / "msca_resnet_plain" / "metrics.json").read_text())
    assert table.loc["msca_resnet_plain", "PrivateTest_accuracy"] == pytest.approx(
        plain["headline"]["PrivateTest_accuracy"])
    folds = pd.read_csv(smoke_run.out / "04_cbam" / "ckplus_folds.csv")
    assert head["msca_resnet CK+ fold acc"] == pytest.approx(folds["accuracy"].mean(), abs=1e-4)
    assert (smoke_run.out / "04_cbam" / "ckplus_confusion.png").is_file()


def test_05_tuning(smoke_run):
    """The 2x2 grid ran whole, every trial is in trials.csv, the best configuration is the best trial's, and the test
    numbers of default and best come from their run folders."""
    tuned = _ran(smoke_run, "05_tuning")
    out = smoke_run.out / "05_tuning"
    trials = pd.read_csv(out / "trials.csv")
    assert tuned["cnn grid trials"] == 4 and tuned["cnn bayesian trials"] == 2
    assert len(trials) == sum(tuned[f"cnn {k} trials"] for k in ("grid", "hyperband", "bayesian"))
    grid = trials[trials.tuner == "grid"]
    assert set(zip(grid.learning_rate, grid.optimizer)) == {(a, b) for a in (0.003, 0.01) for b in ("adam", "sgd")}
    best = json.loads((out / "best_config.json").read_text())["cnn"]
    assert best["val_accuracy"] == pytest.approx(trials[trials.status == "COMPLETED"].val_accuracy.max())
    for which in ("default", "best"):
        folder = out / "cnn" / which
        if folder.is_dir():
            acc = json.loads((folder / "metrics.json").read_text())["headline"]["PrivateTest_accuracy"]
            assert tuned[f"cnn {which} PrivateTest acc"] == round(acc, 4)
    assert tuned["Study C lr ferplus trials"] == 2 and "Study C lr ckplus trials" not in tuned


def test_06_statistics(smoke_run):
    """Every comparison is a row of tests.csv with its Holm-adjusted p; Table XII compares 05's default and tuned CNN
    by 5x2cv; McNemar pairs every two FER-2013 models of 03/04/05 and never a FER-2013 model with a FER+ or CK+ one
    (without data the FER+ stand-in is the synthetic FER-2013 faces under another name)."""
    head = _ran(smoke_run, "06_statistics")
    tests = pd.read_csv(smoke_run.out / "06_statistics" / "tests.csv")
    assert head["comparisons"] == len(tests) and head["5x2cv trainings"] == 20
    assert set(tests.family) >= {"Table XII: default vs tuned", "McNemar, every pair"}
    xii = tests[tests.family == "Table XII: default vs tuned"]
    assert set(zip(xii["model A"], xii["model B"])) == {("cnn default", "cnn tuned")} and len(xii) == 3
    # 05 trains the best configuration in its own folder unless it is the default (then one folder)
    tuned = (smoke_run.out / "05_tuning" / "cnn" / "best").is_dir()
    fer = {"03:cnn", "05:cnn/default", "04:cnn_se", "04:cnn_cbam"} | ({"05:cnn/best"} if tuned else set())
    mcnemar = tests[tests.family == "McNemar, every pair"]
    pairs = {frozenset(p) for p in zip(mcnemar["model A"], mcnemar["model B"])}
    assert {p for p in pairs if p <= fer} == {frozenset((a, b)) for a in fer for b in fer if a < b}
    other = {m for p in pairs for m in p} - fer
    assert all(p <= fer or not (p & fer) for p in pairs), f"FER-2013 paired with another dataset: {other}"
    assert tests["adjusted p"].dropna().ge(tests.loc[tests["adjusted p"].notna(), "p"] - 1e-12).all()
    t_row = xii[xii.test.str.startswith("5x2cv paired t")].iloc[0]
    assert head["cnn default vs cnn tuned p"] == round(float(t_row.p), 4)
    # The per-claim report: tuning by Table XII's 5x2cv and by McNemar on 05's default vs best (plain and dedup),
    # GAN balancing by 02's effect runs; SE and CBAM have no controlled pair here (03's CNN has another recipe than
    # 04's attention CNNs), so they are named as not tested, with the notebook that would test them.
    evidence = pd.read_csv(smoke_run.out / "06_statistics" / "claims.csv")
    tuning = evidence[evidence.claim == "tuning helps"]
    assert "cnn tuned vs cnn default (5x2cv of Training)" in set(tuning.evidence)
    mcnemar_rows = {e for e in tuning.evidence if e.startswith("05:cnn/best vs 05:cnn/default")}
    assert len(mcnemar_rows) == (2 if tuned else 0) and len(tuning) == 1 + len(mcnemar_rows)  # as published, dedup
    t_claim = tuning[tuning.test.str.startswith("5x2cv paired t")].iloc[0]
    assert t_claim["adjusted p"] == pytest.approx(t_row["adjusted p"])
    assert t_claim["difference (points, + = as claimed)"] == pytest.approx(100 * (t_row["mean B"] - t_row["mean A"]),
                                                                          abs=0.01)
    assert (evidence.claim == "GAN balancing helps").any()
    for claim in ("SE helps", "CBAM helps"):
        assert head[f"claim: {claim}"].startswith("not tested by this profile's runs: needs notebook 04")
    assert not head["claim: tuning helps"].startswith("not tested")


def test_console_shows_progress_and_no_start_up_noise(smoke_run):
    console = smoke_run.console
    assert "[smoke] 3/6 03_baselines" in console
    assert re.search(r"cell \d+/\d+: results = experiments\.run_models\(", console)
    assert "model 1/1: cnn" in console and "cnn epoch 2/25 loss" in console
    for noise in ("oneDNN", "without encryption", "cpu_feature_guard", "absl::InitializeLog"):
        assert noise not in console, noise
    html = (smoke_run.out / "03_baselines.html").read_text()
    assert "without encryption" not in html and "cpu_feature_guard" not in html


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_report_shows_results_and_parameters_not_code(smoke_run, stem):
    """A report is for readers of results: no code inputs, the parameters once, as a table."""
    html = (smoke_run.out / f"{stem}.html").read_text()
    assert "artifacts.start(" not in html and "from fer_utils import" not in html  # no code cell's input
    assert 'run_dir = "' not in html  # neither the parameters cell nor papermill's injected one
    assert html.count("<b>Parameters</b>") == 1 and "set by the run" in html
    assert "<code>seed</code></td><td><code>42</code>" in html


@pytest.mark.slow
def test_06_alone_on_a_fresh_reports_folder_says_what_it_could_not_compare(tmp_path):
    """Notebook 06 without any earlier notebook's outputs: it renders, compares nothing, and names the notebooks
    that would give it something to compare (it crashed in the forest plot before)."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", "fer_utils.run", "--profile", "smoke", "--only", "06",
                             "--reports-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = tmp_path / "smoke" / "06_statistics"
    head = json.loads((out / "metrics.json").read_text())["headline"]
    assert head["comparisons"] == 0 and head["model pairs compared"] == 0
    executed = json.loads(next((tmp_path / "smoke").glob("06_statistics*.ipynb")).read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    for nb in ("03", "04", "05"):
        assert f"--only {nb}" in printed
    assert "no trained models found" in printed and (out / "forest.png").exists()


def test_04_in_session_sized_subsets_accumulates_into_one_run(tmp_path):
    """Notebook 04 run in parts (``--subset``, as a 3-hour session runs the cpu profile's 04): a Study C-only part
    trains no attention CNN and no FER+ run, the next part adds one FER+ run (its table waits for the other), and
    the whole notebook afterwards reuses both parts and trains only what is left; nothing is archived or lost."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")

    def run(*extra):
        result = subprocess.run([sys.executable, "-m", "fer_utils.run", "--profile", "smoke", "--reports-dir",
                                 str(tmp_path), "--log-output", *extra], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    out = tmp_path / "smoke"
    run("--subset", "study_c_ckplus")
    head = notebook_headline(out / "04_cbam.ipynb")
    assert set(head) == {"msca_resnet CK+ fold acc"} and 0 <= head["msca_resnet CK+ fold acc"] <= 1
    assert sorted(p.name for p in (out / "04_cbam").iterdir() if p.is_dir()) == ["ckplus"]
    fold = (out / "04_cbam" / "ckplus" / "msca_resnet" / "fold0" / "predictions.npz").read_bytes()
    console = run("--subset", "study_c_ferplus_part")
    assert "continuing the earlier run with changed parameters" in console
    assert "FER+ msca_resnet epoch 1/1" in console and "msca_resnet_plain" not in console
    assert "se_bn: waits for the FER+ runs ['msca_resnet_plain']" in (out / "04_cbam.html").read_text()
    assert not (out / "04_cbam" / "ferplus_se_bn.csv").exists()
    console = run("--only", "04")
    assert "FER+ msca_resnet: finished earlier with the same recipe, results reused" in console
    assert "msca_resnet fold 0: finished earlier with the same recipe, results reused" in console
    assert "FER+ msca_resnet_plain epoch 1/1" in console and "cnn_cbam epoch 1/1" in console
    assert (out / "04_cbam" / "ckplus" / "msca_resnet" / "fold0" / "predictions.npz").read_bytes() == fold
    table = pd.read_csv(out / "04_cbam" / "ferplus_se_bn.csv", index_col=0)
    assert list(table.index) == ["msca_resnet", "msca_resnet_plain"]
    head = notebook_headline(out / "04_cbam.ipynb")
    assert "msca_resnet CK+ fold acc" in head and any(k.startswith("cnn_se ") for k in head)
    runs_json = json.loads((out / "run.json").read_text())["notebooks"]["04_cbam"]
    assert runs_json["mode"] == "continued the earlier run with changed parameters (after a subset)"
    assert len(list((out / "_previous").glob("*/04_cbam.ipynb"))) == 2  # each earlier part's notebook kept
