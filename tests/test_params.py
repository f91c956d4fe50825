"""Parameter profiles: every key and type is checked against the notebooks before running."""

import json

import pytest

from conftest import ROOT
from fer_utils import params as P


def _notebook(path, source, tags=("parameters",)):
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": [],
                     "execution_count": None}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


BASE = ('profile = "adhoc"\nrun_dir = ""\nreports_dir = ""\n'
        'seed = 1\nlr = 0.1\nname = "x"\nflag = True\nsizes = [1, 2]\n')


@pytest.fixture()
def tree(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_a.ipynb", BASE)
    _notebook(nbs / "02_b.ipynb", BASE + "epochs = 3\n")
    prm = tmp_path / "params"
    prm.mkdir()
    return nbs, prm


def _profile(prm, text, name="p"):
    (prm / f"{name}.yaml").write_text(text)
    return P.load_profile(name, prm)


def test_repository_profiles_match_notebooks():
    checked = P.check_all(ROOT / "params", ROOT / "notebooks")
    assert {"smoke", "cpu", "paper"} <= set(checked)


def test_parameters_cell_is_read(tree):
    nbs, _ = tree
    assert P.notebook_parameters(nbs / "02_b.ipynb")["epochs"] == 3


def test_annotated_parameter_is_rejected(tmp_path):
    nb = _notebook(tmp_path / "01_x.ipynb", "seed: int = 1\n")
    with pytest.raises(P.ParamsError, match="not a plain assignment"):
        P.notebook_parameters(nb)


def test_missing_parameters_tag(tmp_path):
    nb = _notebook(tmp_path / "01_x.ipynb", "seed = 1\n", tags=())
    with pytest.raises(P.ParamsError, match="exactly one cell tagged 'parameters'"):
        P.notebook_parameters(nb)


def test_unknown_key_names_key_and_notebook(tree):
    nbs, prm = tree
    prof = _profile(prm, "notebooks:\n  02_b:\n    epoch: 5\n")
    with pytest.raises(P.ParamsError, match=r"unknown parameter 'epoch' for notebook 02_b"):
        P.resolve(prof, P.list_notebooks(nbs))


def test_shared_key_must_exist_in_every_notebook(tree):
    nbs, prm = tree
    prof = _profile(prm, "shared:\n  epochs: 5\n")
    with pytest.raises(P.ParamsError, match=r"\(shared\): unknown parameter 'epochs' for notebook 01_a"):
        P.resolve(prof, P.list_notebooks(nbs))


@pytest.mark.parametrize("key, value, expected", [("seed", "'7'", "int"), ("lr", "fast", "float"),
                                                  ("flag", "1", "bool"), ("sizes", "3", "list")])
def test_wrong_type_is_an_error(tree, key, value, expected):
    nbs, prm = tree
    prof = _profile(prm, f"notebooks:\n  01_a:\n    {key}: {value}\n")
    with pytest.raises(P.ParamsError, match=rf"parameter '{key}' of notebook 01_a must be {expected}"):
        P.resolve(prof, P.list_notebooks(nbs))


def test_int_is_accepted_for_float_and_sections_merge(tree):
    nbs, prm = tree
    prof = _profile(prm, "shared:\n  seed: 5\nnotebooks:\n  02_b:\n    lr: 1\n")
    out = P.resolve(prof, P.list_notebooks(nbs), ["02.epochs=9", "name=y"])
    assert out["01_a"] == {"seed": 5, "name": "y"}
    assert out["02_b"] == {"seed": 5, "lr": 1, "epochs": 9, "name": "y"}


def test_dict_overrides_merge_key_by_key_at_every_depth(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "03_c.ipynb", BASE + 'train_configs = {}\n')
    prm = tmp_path / "params"
    prm.mkdir()
    prof = _profile(prm, "notebooks:\n  03_c:\n    train_configs: {cnn: {learning_rate: 0.003, epochs: 25}, vgg: "
                         "{epochs: 4}}\n")
    out = P.resolve(prof, P.list_notebooks(nbs), ["03.train_configs={cnn: {epochs: 2}}"])
    assert out["03_c"]["train_configs"] == {"cnn": {"learning_rate": 0.003, "epochs": 2}, "vgg": {"epochs": 4}}


def test_overrides_are_checked(tree):
    nbs, prm = tree
    prof = _profile(prm, "")
    with pytest.raises(P.ParamsError, match="unknown parameter 'nope'"):
        P.resolve(prof, P.list_notebooks(nbs), ["nope=1"])
    with pytest.raises(P.ParamsError, match="expected key=value"):
        P.resolve(prof, P.list_notebooks(nbs), ["seed"])
    with pytest.raises(P.ParamsError, match="parameter 'seed' of notebook 01_a must be int"):
        P.resolve(prof, P.list_notebooks(nbs), ["seed=abc"])
    with pytest.raises(P.ParamsError, match="notebook 01 is not part of this run"):
        P.resolve(prof, P.list_notebooks(nbs, ["02"]), ["01.seed=3"])


def test_section_for_missing_notebook_and_bad_profile(tree):
    nbs, prm = tree
    prof = _profile(prm, "notebooks:\n  07_ghost:\n    seed: 1\n")
    with pytest.raises(P.ParamsError, match="notebooks.07_ghost names no notebook"):
        P.resolve(prof, P.list_notebooks(nbs))
    with pytest.raises(P.ParamsError, match="unknown top-level key"):
        _profile(prm, "shraed:\n  seed: 1\n", name="q")
    with pytest.raises(P.ParamsError, match="profile 'nope' not found"):
        P.load_profile("nope", prm)
    with pytest.raises(P.ParamsError, match="--only 05: no such notebook"):
        P.list_notebooks(nbs, ["05"])


def test_a_subset_replaces_the_profiles_values_and_is_checked_like_the_profile(tree):
    nbs, prm = tree
    prof = _profile(prm, "notebooks:\n  02_b:\n    epochs: 4\n    sizes: [1, 2, 3]\n"
                         "subsets:\n  short:\n    description: two epochs\n    notebooks:\n"
                         "      02_b: {epochs: 2, sizes: [5]}\n")
    out = P.resolve(prof, P.list_notebooks(nbs), ["02.lr=0.5"], subset="short")
    assert out["02_b"] == {"epochs": 2, "sizes": [5], "lr": 0.5}  # replaced, then the command line on top
    assert P.resolve(prof, P.list_notebooks(nbs))["02_b"] == {"epochs": 4, "sizes": [1, 2, 3]}  # the profile's own
    assert list(P.subset_notebooks(prof, "short")) == ["02_b"]
    with pytest.raises(P.ParamsError, match=r"--subset 'shrot': .* has no such subset; its subsets are \['short'\]"):
        P.resolve(prof, P.list_notebooks(nbs), subset="shrot")
    typo = _profile(prm, "subsets:\n  s:\n    notebooks:\n      02_b: {epohcs: 2}\n", name="t")
    with pytest.raises(P.ParamsError, match=r"subsets.s.notebooks.02_b\): unknown parameter 'epohcs'"):
        P.resolve(typo, P.list_notebooks(nbs), subset="s")
    ghost = _profile(prm, "subsets:\n  s:\n    notebooks:\n      07_ghost: {seed: 2}\n", name="g")
    with pytest.raises(P.ParamsError, match="subsets.s.notebooks.07_ghost names no notebook"):
        P.resolve(ghost, P.list_notebooks(nbs), subset="s")
    flat = _profile(prm, "subsets:\n  s: {02_b: {epochs: 2}}\n", name="f")
    with pytest.raises(P.ParamsError, match="subsets.s must have 'notebooks'"):
        P.resolve(flat, P.list_notebooks(nbs), subset="s")


def test_every_subset_of_the_repository_profiles_is_checked():
    """check_all resolves each profile's subsets too: a typo in one fails here, not after hours of training."""
    cpu = P.load_profile("cpu", ROOT / "params")
    assert {"study_c_ckplus", "study_c_ferplus_headline", "study_c_table2", "study_c_table3"} <= set(cpu["subsets"])
    notebooks = P.list_notebooks(ROOT / "notebooks")
    ck = P.resolve(cpu, notebooks, subset="study_c_ckplus")["04_cbam"]
    assert ck["models"] == [] and ck["study_c_datasets"] == ["ckplus"] and ck["ckplus_folds"] == list(range(10))


def test_runner_keys_are_required(tmp_path):
    nbs = tmp_path / "nb"
    nbs.mkdir()
    _notebook(nbs / "01_a.ipynb", "seed = 1\n")
    with pytest.raises(P.ParamsError, match="must declare 'profile'"):
        P.resolve({"shared": {}, "notebooks": {}}, P.list_notebooks(nbs))


def test_adhoc_run_folders_never_collide(monkeypatch, tmp_path):
    """A notebook run by hand (run_dir="") gets a fresh folder under <reports>/adhoc each time."""
    import datetime as dt

    from fer_utils import artifacts

    given = artifacts.run_folder(str(tmp_path / "given"), "01_eda")
    assert given == tmp_path / "given" and given.is_dir()
    first = artifacts.run_folder("", "01_test_adhoc", tmp_path / "reports")
    assert first.parent == tmp_path / "reports" / "adhoc" / "01_test_adhoc" and first.is_dir()

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2099, 1, 1, 0, 0, 0)

    monkeypatch.setattr(artifacts._dt, "datetime", Later)
    second = artifacts.run_folder("", "01_test_adhoc", tmp_path / "reports")
    assert second != first and second.name == "20990101-000000"


def test_notebook_parameters_records_every_declared_parameter():
    from fer_utils import artifacts

    declared = P.notebook_parameters(ROOT / "notebooks" / "03_baselines.ipynb")
    namespace = {"seed": 7, "models": ["cnn"], "unrelated": 1}
    recorded = artifacts.notebook_parameters(namespace, "03_baselines")
    assert set(recorded) == set(declared)
    assert recorded["seed"] == 7 and recorded["models"] == ["cnn"] and "unrelated" not in recorded
    assert recorded["tta"] == declared["tta"]  # not in the namespace: the declared default
