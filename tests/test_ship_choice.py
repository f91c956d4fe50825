"""The rule the shipped model is chosen by (``fer_utils.experiments.ship_choice``), checked on cases whose answer is
known before it is applied to the recipe's runs, and its command's refusals."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fer_utils.experiments import ship_choice as SC

ROOT = Path(__file__).resolve().parent.parent


def _flip(y, pred, rows, *, right: bool):
    """``pred`` with ``rows`` made right (or wrong) answers."""
    out = pred.copy()
    out[rows] = y[rows] if right else (y[rows] + 1) % 7
    return out


@pytest.fixture
def shipped_and_y():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 2872)
    shipped = np.where(rng.random(2872) < 0.66, y, (y + 1 + rng.integers(0, 6, 2872)) % 7)
    return y, shipped


def test_the_rule_keeps_the_shipped_run_against_copies_and_small_leads_and_replaces_it_on_a_large_one(shipped_and_y):
    y, shipped = shipped_and_y
    wrong = np.flatnonzero(shipped != y)
    right = np.flatnonzero(shipped == y)
    # an exact copy sorts first by name but ties: the shipped run stays, its p is 1
    same = SC.decide(y, {"a_copy": shipped.copy(), "ship": shipped}, "ship")
    assert (same["leader"], same["choice"], same["replace"]) == ("ship", "ship", False)
    assert {r["run"]: r["McNemar p"] for r in same["rows"]}["a_copy"] == 1.0
    assert SC.verdict(same) == "keep ship: it has the most right answers itself"
    # six faces more of 2,872 (30 right only / 24 right only): a lead, not a replacement
    small = _flip(y, _flip(y, shipped, wrong[:30], right=True), right[:24], right=False)
    d = SC.decide(y, {"ship": shipped, "small": small}, "ship")
    assert (d["leader"], d["replace"], d["choice"]) == ("small", False, "ship") and d["p"] > 0.4
    assert SC.verdict(d).startswith("keep ship over small: +6 right answers of 2872, McNemar p ")
    # 150 faces more: replaced, whatever the Holm family of two
    big = _flip(y, shipped, wrong[:150], right=True)
    d = SC.decide(y, {"ship": shipped, "big": big, "copy": shipped.copy()}, "ship")
    assert (d["leader"], d["replace"], d["choice"]) == ("big", True, "big") and d["p_holm"] < 1e-10
    row = {r["run"]: r for r in d["rows"]}["big"]
    assert (row["only this right"], row["only shipped right"]) == (150, 0)
    assert row["right"] == int((shipped == y).sum()) + 150
    assert SC.verdict(d).startswith("replace ship with big: +150 right answers")


def test_holms_correction_keeps_a_leader_that_is_only_the_best_of_many(shipped_and_y):
    y, shipped = shipped_and_y
    wrong, right = np.flatnonzero(shipped != y), np.flatnonzero(shipped == y)
    lead = _flip(y, _flip(y, shipped, wrong[:60], right=True), right[:35], right=False)  # +25 of 95 discordant
    alone = SC.decide(y, {"ship": shipped, "lead": lead}, "ship")
    assert 0.01 < alone["p"] < 0.05 and alone["replace"]  # alone it would replace the shipped run
    others = {f"o{k}": _flip(y, _flip(y, shipped, wrong[100 + 5 * k:105 + 5 * k], right=True),
                             right[100 + 5 * k:105 + 5 * k], right=False) for k in range(9)}  # each 5 / 5, p = 1
    many = SC.decide(y, {"ship": shipped, "lead": lead, **others}, "ship")
    assert many["leader"] == "lead" and many["p"] == alone["p"]
    assert many["p_holm"] == pytest.approx(min(1.0, 10 * alone["p"])) and not many["replace"]


def test_the_rule_names_a_missing_shipped_run_and_predictions_of_another_length(shipped_and_y):
    y, shipped = shipped_and_y
    with pytest.raises(ValueError, match=r"shipped run 'ship' is not among the candidates \['a'\]"):
        SC.decide(y, {"a": shipped}, "ship")
    with pytest.raises(ValueError, match=r"predictions of shape \{'b': \(10,\)\}: expected one class per image, "
                                         r"\(2872,\)"):
        SC.decide(y, {"ship": shipped, "b": shipped[:10]}, "ship")
    with pytest.raises(ValueError, match=r"\{'b': \(2872, 7\)\}"):  # scores, not classes
        SC.decide(y, {"ship": shipped, "b": np.eye(7)[shipped]}, "ship")


def test_the_ship_choice_command_names_a_missing_shipped_run_a_bad_side_and_outputs_it_would_overwrite(tmp_path,
                                                                                                      capsys):
    spec = importlib.util.spec_from_file_location("ship_choice_cli", ROOT / "benchmarks" / "ship_choice.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = tmp_path / "e26-s0" / "longer_batch_64"
    run.mkdir(parents=True)
    for file in ("model.keras", "preprocessing.json", "metrics.json"):
        (run / file).write_text("{}")
    (tmp_path / "taken_validation.npz").write_bytes(b"earlier predictions")
    other = tmp_path / "e26-s1" / "full"
    for argv, says in (([str(other)], "no model.keras in"),
                       ([str(run), "--shipped", "e26-s9/full"], "--shipped 'e26-s9/full' is not among the runs"),
                       ([str(run), "--fraction", "1.5"], "--fraction 1.5: expected a number in (0, 1)"),
                       ([str(run), "--out", str(tmp_path / "taken")], "taken_validation.npz'] exist; give a new name")):
        with pytest.raises(SystemExit):
            module.parse_args([*argv, *([] if "--out" in argv else ["--out", str(tmp_path / "new")])])
        assert says in capsys.readouterr().err, argv
    assert (tmp_path / "taken_validation.npz").read_bytes() == b"earlier predictions"
    args = module.parse_args([str(run), "--out", str(tmp_path / "new")])  # the card's source run and side
    assert (args.shipped, args.fraction) == ("e26-s0/longer_batch_64", 0.98)


def test_the_committed_ship_choice_is_the_rules_verdict_on_its_predictions_and_the_docs_and_card_quote_it():
    """``benchmarks/results/ship_choice_e26*`` (``benchmarks/ship_choice.py`` on every run of 26 or 36 epochs on the
    family-aware split whose model is at hand): the rule applied again to the committed predictions gives the
    committed table and verdict; the shipped run and side are the model card's; docs/results.md quotes them."""
    import json

    import pandas as pd
    from scipy.stats import spearmanr

    from fer_utils import stats

    results = ROOT / "benchmarks" / "results"
    z = np.load(results / "ship_choice_e26_validation.npz")
    preds = {str(k): p.astype(np.int64) for k, p in zip(z["runs"], z["predictions"])}
    decision = SC.decide(z["y"], preds, str(z["shipped"]))
    committed = pd.read_csv(results / "ship_choice_e26.csv")
    again = pd.DataFrame(decision["rows"]).set_index("run").loc[committed["run"]].reset_index()
    for column in ("right", "only this right", "only shipped right", "McNemar p", "Holm p", "detectable"):
        np.testing.assert_allclose(again[column].astype(float), committed[column].astype(float), rtol=1e-9)
    assert list(committed["right"]) == sorted(committed["right"], reverse=True)
    md = (results / "ship_choice_e26.md").read_text()
    assert md == SC.markdown(committed, decision, fraction=float(z["fraction"]))
    card = json.loads((ROOT / "fer_utils" / "predict" / "default_model" / "model_card.json").read_text())
    assert str(z["shipped"]) == "/".join(Path(card["source_run"]).parts[-2:])
    assert float(z["fraction"]) == card["crop_fraction"] and len(z["y"]) == 2872
    assert str(z["data_checksum"]) == card["data_checksum"]

    docs = (ROOT / "docs" / "results.md").read_text()
    section = docs[docs.index("**One rule for the shipped model"):docs.index("**What the remaining errors are")]
    text = " ".join(section.split())
    assert f"**Verdict**: {SC.verdict(decision)}." in md and SC.verdict(decision) in text
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert [line for line in section.splitlines() if line.startswith("|")] == table_lines  # the file's table, as is
    by = committed.set_index("run")
    # the predictions are the earlier crop-side measurements' wherever those scored a run at the same side
    earlier = pd.concat([pd.read_csv(f) for f in sorted(results.glob("tta_crop_e26_*_validation.csv"))])
    earlier = earlier[np.isclose(earlier["crop fraction"], float(z["fraction"])) & earlier["run"].isin(by.index)
                      ].drop_duplicates("run")  # runs finished after the rule ran are not in its table
    assert len(earlier) >= 10
    for _, row in earlier.iterrows():
        assert by.loc[row["run"], "accuracy"] == pytest.approx(row["accuracy"], abs=1e-12), row["run"]
    others = by[~by["shipped"]]
    lead = by["right"].iloc[0] - by["right"].iloc[1]
    assert f"{len(by)} runs" in text
    assert f"lead over the next run is {lead} faces ({100 * lead / 2872:.2f} points)" in text
    predict = " ".join((ROOT / "docs" / "predict.md").read_text().split())
    assert f"over all {len(by)} runs at hand it keeps this model, which leads by {lead} faces" in predict
    assert f"({100 * lead / 2872:.2f} points), far below the {100 * others['detectable'].min():.1f} points" in predict
    power = {"0.05": others["detectable"]}
    power["0.05 / 15"] = pd.Series([stats.detectable_difference_mcnemar(2872, a + b, alpha=0.05 / len(others))
                                    for a, b in zip(others["only this right"], others["only shipped right"])])
    assert len(others) == 15
    for name, d in power.items():
        assert (f"{100 * d.min():.1f} to {100 * d.max():.1f} points ({round(2872 * d.min())}-"
                f"{round(2872 * d.max())} faces) at") in text, name
    for column, rho in (("accuracy", "ten-crop"), ("best val no TTA (earlier rule)", "no-TTA")):
        r = spearmanr(by[column], by["PrivateTest published (not used)"]).statistic
        assert f"{rho} {r:.2f}" in text, (rho, r)


def test_the_runs_data_is_refused_for_runs_trained_on_other_data_or_on_synthetic_faces(tiny_fer, tmp_path,
                                                                                       monkeypatch):
    from fer_utils import runs
    from fer_utils.experiments import recipe as R

    real = tiny_fer.replace(synthetic=np.zeros(len(tiny_fer), dtype=bool))  # as if read from a file
    folders = {}
    for name, checksum in (("e26-s0/a", real.checksum), ("e26-s1/b", "0123456789abcdef")):
        folders[name] = tmp_path / name
        runs.write_metrics(folders[name], {"data_checksum": checksum}, {})
    monkeypatch.setattr(R, "load_recipe_data", lambda recipe: real)
    assert R.data_of_runs({"e26-s0/a": folders["e26-s0/a"]}, "smoke") is real
    with pytest.raises(ValueError, match=r"runs \['e26-s1/b'\] were not trained on the smoke profile's notebook 03 "
                                         r"split \(checksum .{8}; theirs \{'e26-s1/b': '01234567'\}\)"):
        R.data_of_runs(folders, "smoke")
    monkeypatch.setattr(R, "load_recipe_data", lambda recipe: tiny_fer)  # no dataset found: the synthetic faces
    runs.write_metrics(folders["e26-s0/a"], {"data_checksum": tiny_fer.checksum}, {})
    with pytest.raises(ValueError, match=r"runs \['e26-s0/a', 'e26-s1/b'\] were not trained"):
        R.data_of_runs(folders, "smoke")
    with pytest.raises(ValueError, match="nope"):  # an unknown profile, before any data is read
        R.data_of_runs(folders, "nope")
