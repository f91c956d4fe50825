"""Test answers against FER+'s crowd votes (``fer_utils.experiments.label_agreement``): the measures on cases whose
answer is known, the refusals, and the committed table read back from the committed predictions."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_utils.data.dataset import DataError
from fer_utils.experiments import label_agreement as L
from fer_utils.experiments import seeds

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
COMMITTED = RESULTS / "label_agreement_private_test"
RUNS = [f"recipe_e26_s{s}/{v}" for v in ("full", "longer_batch_64") for s in (0, 1, 2)]


@pytest.fixture
def crowd():
    """7,000 faces: votes for one emotion each (7 of 10 votes), the FER-2013 label that emotion for 60% of them."""
    rng = np.random.default_rng(0)
    n = 7000
    top = rng.integers(0, 7, n)
    votes = np.zeros((n, 7))
    votes[np.arange(n), top] = 7
    votes[np.arange(n), (top + 1) % 7] += 3
    y = np.where(rng.random(n) < 0.6, top, (top + 1 + rng.integers(0, 6, n)) % 7)
    return y, votes, top


def test_known_answers_score_as_they_must(crowd):
    y, votes, top = crowd
    agrees = float((top == y).mean())
    perfect = L.agreement(y, y, votes)  # the FER-2013 labels themselves
    assert (perfect["accuracy"], perfect["accuracy_crowd_agrees"], perfect["accuracy_crowd_disagrees"]) == (1, 1, 1)
    assert perfect["crowd_pick_where_disagrees"] == 0.0
    assert perfect["accuracy_vs_crowd"] == pytest.approx(agrees) == perfect["crowd_agrees"]
    assert perfect["crowd_answers"] == len(y)
    the_crowd = L.agreement(y, top, votes)  # the crowd's own answers
    assert the_crowd["accuracy"] == pytest.approx(agrees)
    assert (the_crowd["accuracy_crowd_agrees"], the_crowd["accuracy_crowd_disagrees"]) == (1.0, 0.0)
    assert (the_crowd["crowd_pick_where_disagrees"], the_crowd["accuracy_vs_crowd"]) == (1.0, 1.0)
    guess = L.agreement(y, np.random.default_rng(1).integers(0, 7, len(y)), votes)  # a guess knows neither
    assert guess["accuracy_crowd_agrees"] == pytest.approx(1 / 7, abs=0.03)
    assert guess["accuracy_crowd_disagrees"] == pytest.approx(1 / 7, abs=0.03)


def test_ties_and_faces_without_emotion_votes_have_no_crowd_answer():
    votes = np.array([[5, 5, 0, 0, 0, 0, 0], [0] * 7, [1, 0, 0, 0, 0, 0, 9], [0, 2, 0, 0, 0, 0, 0]], float)
    assert L.crowd_majority(votes).tolist() == [-1, -1, 6, 1]
    out = L.agreement(np.array([0, 0, 6, 0]), np.array([0, 0, 6, 1]), votes)
    assert (out["crowd_answers"], out["crowd_agrees"], out["accuracy"]) == (2, 0.5, 0.75)
    assert (out["accuracy_crowd_agrees"], out["accuracy_crowd_disagrees"]) == (1.0, 0.0)
    # no face where the crowd disagrees: NaN, not a made-up number
    assert np.isnan(L.agreement(np.array([6]), np.array([6]), votes[2:3])["accuracy_crowd_disagrees"])
    # one annotator at random: 1 vote of 10 for label 0, 2 of 2 for label 1, the face without votes left out
    assert L.one_annotator(np.array([0, 0, 0, 1]), votes) == pytest.approx((0.5 + 0.1 + 1.0) / 3)


def test_bad_shapes_ids_and_misaligned_votes_are_refused_with_the_row(tmp_path):
    with pytest.raises(ValueError, match=r"\[N, 7\]"):
        L.agreement(np.zeros(3), np.zeros(3), np.zeros((3, 8)))
    with pytest.raises(ValueError, match="source id 1 is 'ckplus:S005'"):
        L.source_rows(["fer2013.csv.gz:row=4", "ckplus:S005"])
    assert L.source_rows(["fer2013.csv:row=7", "fer2013.csv.gz:row=28709"]).tolist() == [7, 28709]
    votes = tmp_path / "fer2013new.csv"
    votes.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                     "Training,fer0.png,1,0,0,0,9,0,0,0,0,0\nPrivateTest,fer1.png,0,2,0,0,0,0,0,0,0,8\n")
    assert L.crowd_votes(votes, [1, 0]).tolist() == [[0, 0, 0, 2, 0, 0, 0], [9, 0, 0, 0, 0, 0, 1]]
    with pytest.raises(DataError, match="has 2 rows, no row 5"):
        L.crowd_votes(votes, [0, 5])
    with pytest.raises(DataError, match="row 0 has Usage='Training', the predictions say 'PrivateTest'"):
        L.crowd_votes(votes, [1, 0], splits=["PrivateTest", "PrivateTest"])


def _preds(ids, y, pred, split="PrivateTest", k=7):
    prob = np.eye(k, dtype=np.float32)[pred]
    return {"source_ids": np.array(ids), "split": np.array([split] * len(ids)), "y_true": np.asarray(y),
            "y_pred": np.asarray(pred), "y_prob": prob}


def test_ensembles_average_probabilities_and_refuse_members_on_other_faces_or_classes():
    ids = [f"fer2013.csv.gz:row={i}" for i in range(3)]
    a, b, c = (_preds(ids, [0, 1, 2], pred) for pred in ([0, 2, 2], [0, 1, 2], [0, 1, 2]))
    b["y_prob"] = np.array([[0.6, 0.4] + [0] * 5, [0, 0.7, 0.3] + [0] * 4, [0, 0, 1] + [0] * 4], np.float32)
    three = seeds.averaged({"a": a, "b": b, "c": c})
    assert three["y_pred"].tolist() == [0, 1, 2]  # row 1: the first member says 2, the mean (0.567 for 1) says 1
    assert three["y_prob"][1].tolist() == pytest.approx([0, 1.7 / 3, 1.3 / 3, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="b was scored on other samples than a"):
        seeds.averaged({"a": a, "b": _preds(ids[::-1], [0, 1, 2], [0, 1, 2])})
    with pytest.raises(ValueError, match="two or more different members"):
        seeds.averaged({"a": a})
    with pytest.raises(ValueError, match="b: its PrivateTest faces or labels differ from a's"):
        L.table({"a": a, "b": _preds(ids, [0, 1, 1], [0, 1, 2])}, "unused.csv")
    with pytest.raises(ValueError, match="a: no PrivateTest faces"):
        L.table({"a": _preds(ids, [0, 1, 2], [0, 1, 2], split="PublicTest")}, "unused.csv")
    ferplus = {**a, "class_names": ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                    "contempt"]}  # a FER+ run: its rows are fer2013.csv's, its classes are not
    with pytest.raises(ValueError, match="a: classes .* expected FER-2013's"):
        L.table({"a": ferplus}, "unused.csv")


def test_the_vote_columns_are_fer2013s_classes_in_fer2013s_order():
    assert L.EMOTION_COLUMNS == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")


def _cli():
    spec = importlib.util.spec_from_file_location("label_agreement_cli", ROOT / "benchmarks" / "label_agreement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_command_refuses_unknown_ensemble_members_missing_votes_and_outputs_it_would_overwrite(tmp_path,
                                                                                                  monkeypatch, capsys):
    cli = _cli()
    runs = [str(RESULTS / r) for r in RUNS[:2]]
    votes = tmp_path / "fer2013new.csv"
    votes.write_text("x\n")
    with pytest.raises(SystemExit):
        cli.parse_args([*runs, "--ensemble", "two=recipe_e26_s0/full,recipe_e26_s2/full", "--ferplus", str(votes),
                        "--out", str(tmp_path / "t")])
    assert "not among them: ['recipe_e26_s2/full']" in capsys.readouterr().err
    monkeypatch.delenv("FER_DATA_DIR", raising=False)
    with pytest.raises(SystemExit):
        cli.parse_args([*runs, "--out", str(tmp_path / "t")])
    assert "FER_DATA_DIR not set" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_args([*runs, "--ensemble", "recipe_e26_s0/full=recipe_e26_s0/full,recipe_e26_s1/full",
                        "--ferplus", str(votes), "--out", str(tmp_path / "t")])
    assert "the name 'recipe_e26_s0/full' is taken" in capsys.readouterr().err
    (tmp_path / "t.md").write_text("earlier")
    with pytest.raises(SystemExit):
        cli.parse_args([*runs, "--ferplus", str(votes), "--out", str(tmp_path / "t")])
    assert "earlier results are not overwritten" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse_args([str(tmp_path), "--ferplus", str(votes), "--out", str(tmp_path / "u")])
    assert "no predictions.npz" in capsys.readouterr().err


def test_the_committed_table_is_what_the_committed_predictions_and_the_votes_give(real_data):
    """The whole table again from the runs' committed predictions, the real FER+ votes and the recipe data's
    near-duplicates; each run's row tied to its own recorded scores (the same rows left out); the docs quote it."""
    from fer_utils.experiments import recipe as R

    committed = pd.read_csv(f"{COMMITTED}.csv")
    preds = L.load_runs({r: RESULTS / r for r in RUNS})
    for v in ("full", "longer_batch_64"):
        preds[f"{v}, 3 seeds"] = seeds.averaged({r: preds[r] for r in RUNS if r.endswith(f"/{v}")})
    ds = R.data_of_runs({r: RESULTS / r for r in RUNS}, "cpu", ROOT / "params", ROOT / "notebooks")
    again = L.table(preds, real_data / "ferplus" / "fer2013new.csv", leaked=seeds.leaks(ds)[1])
    pd.testing.assert_frame_equal(committed, again, check_dtype=False, atol=1e-9)
    for r in RUNS:
        headline = json.loads((RESULTS / r / "metrics.json").read_text())["headline"]
        row = committed.set_index("answers").loc[r]
        assert row["accuracy"] == pytest.approx(headline["PrivateTest_accuracy"], abs=1e-9)
        assert row["accuracy_dedup"] == pytest.approx(headline["PrivateTest_dedup_accuracy"], abs=1e-9)
        assert row["images_dedup"] == 3589 - headline["PrivateTest_near_copies"]
    ens = committed.set_index("answers")
    assert ens.loc["longer_batch_64, 3 seeds", "accuracy"] == pytest.approx(0.7024, abs=5e-5)  # the seed table's
    assert ens.loc["FER+ crowd majority", "accuracy_crowd_agrees"] == 1.0
    assert ens.loc["FER+ crowd majority", "accuracy_crowd_disagrees"] == 0.0
    md = Path(f"{COMMITTED}.md").read_text()
    assert md == L.markdown(committed)
    docs = (ROOT / "docs" / "results.md").read_text()
    assert md.split("\n\n")[0] in docs  # the table, whole


def test_the_crowd_teacher_gives_training_faces_their_vote_shares_and_nothing_else(tiny_fer, tmp_path):
    """Training faces: 0.5 one-hot + 0.5 the crowd's shares (4 votes for the label, 6 for the next emotion); a face
    with only contempt votes keeps its label; validation and test faces are untouched; other faces are refused."""
    from fer_utils.data.classes import FER2013_CLASSES, FER_TO_FERPLUS, FERPLUS_VOTE_COLUMNS
    from fer_utils.experiments import distill

    ds = tiny_fer.replace(source_ids=np.array([f"fer2013.csv.gz:row={i}" for i in range(len(tiny_fer))]))
    train = np.flatnonzero(ds.splits == "Training")
    lines = ["Usage,Image name," + ",".join(FERPLUS_VOTE_COLUMNS)]
    for i, (split, label) in enumerate(zip(ds.splits, ds.labels)):
        votes = dict.fromkeys(FERPLUS_VOTE_COLUMNS, 0)
        if i == train[0]:
            votes["contempt"] = 10
        else:
            votes[FER_TO_FERPLUS[FER2013_CLASSES[label]]] += 4
            votes[FER_TO_FERPLUS[FER2013_CLASSES[(label + 1) % 7]]] += 6
        lines.append(f"{split},fer{i}.png," + ",".join(str(votes[c]) for c in FERPLUS_VOTE_COLUMNS))
    path = tmp_path / "fer2013new.csv"
    path.write_text("\n".join(lines) + "\n")
    teacher = L.crowd_teacher(ds, path)
    assert (teacher["tta"], teacher["members"], teacher["seconds"]) == (L.CROWD, [str(path)], 0.0)
    soft = distill.distilled(ds, teacher, 0.5).soft_labels
    one_hot = np.eye(7, dtype=np.float32)[ds.labels]
    nxt = np.eye(7, dtype=np.float32)[(ds.labels + 1) % 7]
    np.testing.assert_allclose(soft[train[1:]], (0.7 * one_hot + 0.3 * nxt)[train[1:]], rtol=1e-6)
    assert np.array_equal(soft[train[0]], one_hot[train[0]])
    others = np.setdiff1d(np.arange(len(ds)), train)
    assert len(others) and np.array_equal(soft[others], one_hot[others])
    with pytest.raises(ValueError, match="expected 'fer2013.csv.gz:row=N'"):
        L.crowd_teacher(tiny_fer, path)  # the synthetic faces are no rows of fer2013.csv
    with pytest.raises(ValueError, match="expected FER-2013's"):
        L.crowd_teacher(ds.replace(class_names=tuple(reversed(ds.class_names))), path)


def test_the_recipe_command_pairs_the_crowd_student_with_the_crowd_and_the_others_with_run_folders(capsys):
    spec = importlib.util.spec_from_file_location("recipe_cli", ROOT / "benchmarks" / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.parse_args(["--variants", "longer_batch_64,longer_batch_64_crowd", "--teacher", "crowd"])
    assert args.teacher == ["crowd"]
    for variants, teacher, says in (("longer_batch_64_crowd", ".", "['longer_batch_64_crowd'] learn from --teacher "
                                     "crowd"), ("longer_batch_64_distill,longer_batch_64_crowd", "crowd",
                                                "['longer_batch_64_distill'] learn from trained run folders")):
        with pytest.raises(SystemExit):
            module.parse_args(["--variants", variants, "--teacher", teacher])
        assert says in capsys.readouterr().err


def test_the_committed_crowd_student_is_what_its_files_say_and_the_docs_quote(real_data):
    """The crowd-taught seed: its ablation row (difference, discordant faces, McNemar) from the committed predictions,
    its teacher's summary from the real votes, its crowd split from the predictions, its validation count against the
    shipped run's, and the docs' tables and prose."""
    from fer_utils import stats
    from fer_utils.experiments import distill
    from fer_utils.experiments import recipe as R

    runs_ = {r: RESULTS / r for r in ("recipe_e26_s0/longer_batch_64", "recipe_e26_s0/longer_batch_64_crowd")}
    ref, crowd = L.load_runs(runs_).values()
    table = pd.read_csv(RESULTS / "recipe_ablation_cpu_e26_longer_batch_64_crowd.csv", index_col="variant")
    row = table.loc["longer_batch_64_crowd"]
    private = ref["split"] == "PrivateTest"
    right_ref, right_crowd = (p["y_pred"][private] == p["y_true"][private] for p in (ref, crowd))
    assert row["discordant (longer_batch_64 right / variant right)"] == \
        f"{int((right_ref & ~right_crowd).sum())} / {int((right_crowd & ~right_ref).sum())}" == "318 / 210"
    assert row["McNemar p"] == pytest.approx(stats.mcnemar_test(ref["y_true"][private], ref["y_pred"][private],
                                                                crowd["y_pred"][private])["p"], rel=1e-9)
    assert row["diff vs longer_batch_64 (PrivateTest)"] == pytest.approx(right_crowd.mean() - right_ref.mean())
    recipe = json.loads((RESULTS / "recipe_e26_s0/longer_batch_64_crowd/recipe.json").read_text())
    assert recipe["distillation"]["tta"] == L.CROWD and recipe["distillation"]["alpha"] == 0.5
    ds = R.data_of_runs(runs_, "cpu", ROOT / "params", ROOT / "notebooks")
    votes = real_data / "ferplus" / "fer2013new.csv"
    said = json.loads((RESULTS / "recipe_e26_teacher_crowd.json").read_text())
    teacher = L.crowd_teacher(ds, votes)
    assert said["model_sha256"] == teacher["model_sha256"] == recipe["distillation"]["model_sha256"]
    summary = distill.summary(ds, teacher)
    assert {k: said[k] for k in summary} == pytest.approx(summary, rel=1e-9)
    split = pd.read_csv(RESULTS / "label_agreement_private_test_crowd.csv")
    again = L.table(dict(zip(runs_, (ref, crowd))), votes, leaked=seeds.leaks(ds)[1])
    pd.testing.assert_frame_equal(split, again, check_dtype=False, atol=1e-9)
    grid = pd.read_csv(RESULTS / "tta_crop_e26_longer_batch_64_crowd_s0_validation.csv")
    at_ship = grid.loc[np.isclose(grid["crop fraction"], 0.98)].iloc[0]
    ship = pd.read_csv(RESULTS / "ship_choice_e26.csv").set_index("run")
    shipped = int(ship.loc["e26-s0/longer_batch_64", "right"])  # the shipped run's right answers at 0.98
    assert round(at_ship["accuracy"] * at_ship["images"]) == 1836 < shipped == 1908
    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index("**Taught by people"):docs.index("**Time to accuracy**")]
    md = (RESULTS / "label_agreement_private_test_crowd.md").read_text()
    runs_rows = [line for line in md.splitlines() if line.startswith("| recipe_e26_s0/")]
    assert len(runs_rows) == 2 and all(line in section.splitlines() for line in runs_rows)  # the runs' rows, as is
    text = " ".join(section.split())
    for quoted in ("-3.01 points", "p = 3.2e-6", "-1.96", "89.1% right against 85.0%", "56% of the faces",
                   "1,010 times", "0.6393 (1,836 right)", "108.3 s", "0.84 points lower (24 of 2,872 faces)"):
        assert quoted in text, quoted
    val = pd.read_csv(RESULTS / "recipe_e26_s0/longer_batch_64_crowd/history.csv")["val_accuracy"].max()
    val_ref = pd.read_csv(RESULTS / "recipe_e26_s0/longer_batch_64/history.csv")["val_accuracy"].max()
    assert round((val_ref - val) * 2872) == 24
    docs_line = next(line for line in section.splitlines() if line.startswith("| `longer_batch_64_crowd` |"))
    assert docs_line == (f"| `longer_batch_64_crowd` | 36 | {row['train minutes']:.1f} | {row['best val acc']:.4f} | "
                         f"{row['PrivateTest_accuracy']:.4f} / {row['PrivateTest_macro_f1']:.3f} | "
                         f"{row['PrivateTest_dedup_accuracy']:.4f} / {row['PrivateTest_dedup_macro_f1']:.3f} | "
                         "-0.0301 (-0.0196) | 3.2e-06 (318 / 210) |")
    assert f"{100 * row['diff vs longer_batch_64 (PrivateTest)']:.2f}" == "-3.01"
    assert f"{100 * row['diff vs longer_batch_64 (PrivateTest, dedup)']:.2f}" == "-1.96"
    assert np.bincount(crowd["y_pred"][private], minlength=7)[6] == 1010
    timings = pd.read_csv(RESULTS / "recipe_e26_s0/longer_batch_64_crowd/timings.csv")
    assert timings.loc[timings["others_cores"] <= 0.03, "seconds"].median() == pytest.approx(108.3, abs=0.05)
