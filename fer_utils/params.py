"""Parameter profiles (``params/<profile>.yaml``) and their check against the notebooks.

This module owns reading a notebook's ``parameters`` cell, reading a profile, merging
command-line overrides and checking every key and type before anything runs: papermill
only warns on an unknown parameter, we make it an error that names the key and notebook.

A profile looks like::

    shared:            # given to every notebook; every notebook must declare these keys
      seed: 42
    notebooks:
      01_eda:          # given to one notebook; keys must exist in its parameters cell
        sample_per_class: 8
    subsets:           # optional: named, session-sized parts of the profile (``--subset NAME``)
      eda_quick:
        description: what the part runs and what it costs
        notebooks:     # values that replace the profile's for this part; only these notebooks run
          01_eda: {sample_per_class: 2}
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

PROFILES = ("smoke", "cpu", "kaggle", "paper")
# The runner sets these itself; every notebook declares them in its parameters cell.
RUNNER_KEYS = ("profile", "run_dir", "reports_dir")
_NOTEBOOK = re.compile(r"^(\d\d)_[\w-]+\.ipynb$")


class ParamsError(ValueError):
    """A profile or override does not match the notebooks' parameters."""


def notebook_parameters(path) -> dict:
    """The ``parameters`` cell of a notebook as ``{name: default value}``.

    The cell must be tagged ``parameters`` and hold only plain assignments of literals
    (``name = value``), so that defaults and types can be read without running it.

    Raises:
        ParamsError: no tagged cell, more than one, or a statement that is not a plain literal assignment.
    """
    path = Path(path)
    nb = json.loads(path.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParamsError(f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    params = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                params[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError as exc:
                raise ParamsError(f"{path}: parameter {node.targets[0].id!r} (line {node.lineno}) "
                                  "is not a literal") from exc
        else:
            raise ParamsError(f"{path}: line {node.lineno} of the parameters cell is not a plain assignment "
                              "'name = literal' (no annotations, no expressions)")
    return params


def list_notebooks(notebooks_dir="notebooks", only=None) -> list:
    """Numbered notebooks (``NN_name.ipynb``) in order, optionally only those whose number is in ``only``.

    Raises:
        ParamsError: a number in ``only`` matches no notebook.
    """
    found = sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if _NOTEBOOK.match(p.name))
    if only:
        wanted = [str(o).strip().zfill(2) for o in only]
        missing = [w for w in wanted if not any(p.name.startswith(w + "_") for p in found)]
        if missing:
            raise ParamsError(f"--only {','.join(missing)}: no such notebook; have {[p.stem for p in found]}")
        found = [p for p in found if p.name[:2] in wanted]
    return found


def load_profile(profile: str, params_dir="params") -> dict:
    """Read ``params/<profile>.yaml``.

    Raises:
        ParamsError: missing file, bad YAML, or top-level keys other than ``shared``/``notebooks``/``description``/
            ``subsets``.
    """
    path = Path(params_dir) / f"{profile}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in Path(params_dir).glob("*.yaml"))
        raise ParamsError(f"{path}: profile {profile!r} not found; profiles: {have}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from exc
    extra = set(data) - {"shared", "notebooks", "description", "subsets"}
    if extra:
        raise ParamsError(f"{path}: unknown top-level key(s) {sorted(extra)}; expected shared, notebooks, description, "
                          "subsets")
    data.setdefault("shared", {})
    data.setdefault("notebooks", {})
    data["subsets"] = data.get("subsets") or {}
    for section in ("shared", "notebooks", "subsets"):
        if not isinstance(data[section] or {}, dict):
            raise ParamsError(f"{path}: '{section}' must be a mapping")
    data["shared"] = data["shared"] or {}
    data["notebooks"] = data["notebooks"] or {}
    data["path"] = str(path)
    return data


#: Parameters that take more than one type (their default's type and these).
ALSO_ACCEPTED = {"plan": (dict,)}


def _type_ok(default, value, key: str = "") -> bool:
    if default is None or value is None:
        return True
    if isinstance(value, ALSO_ACCEPTED.get(key, ())):
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_value(notebook: str, key: str, declared: dict, value, source: str):
    """Check one key against a notebook's declared parameters (name and type).

    Raises:
        ParamsError: naming the key, the notebook and what was expected.
    """
    if key not in declared:
        raise ParamsError(f"{source}: unknown parameter {key!r} for notebook {notebook}; "
                          f"its parameters are {sorted(declared)}")
    default = declared[key]
    if not _type_ok(default, value, key):
        raise ParamsError(f"{source}: parameter {key!r} of notebook {notebook} must be "
                          f"{type(default).__name__} (default {default!r}), got {type(value).__name__} {value!r}")


def parse_override(text: str):
    """``key=value`` or ``NN.key=value`` from the command line; the value is parsed as YAML."""
    if "=" not in text:
        raise ParamsError(f"--param {text!r}: expected key=value (or NN.key=value for one notebook)")
    key, raw = text.split("=", 1)
    target = None
    if "." in key:
        target, key = key.split(".", 1)
        target = target[:2].zfill(2)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ParamsError(f"--param {text!r}: value is not valid YAML ({exc})") from exc
    return target, key.strip(), value


def subset_notebooks(profile: dict, name: str) -> dict:
    """The named part ``name`` of a profile (its ``subsets`` section) as ``{notebook stem: replaced values}``.

    Raises:
        ParamsError: no such subset (naming the ones the profile has), or one without a ``notebooks`` mapping.
    """
    source = profile.get("path", "profile")
    subsets = profile.get("subsets") or {}
    if name not in subsets:
        raise ParamsError(f"--subset {name!r}: {source} has no such subset; its subsets are {sorted(subsets)}")
    part = subsets[name]
    sections = part.get("notebooks") if isinstance(part, dict) else None
    if not isinstance(sections, dict) or not sections or not all(isinstance(v, dict) for v in sections.values()):
        raise ParamsError(f"{source}: subsets.{name} must have 'notebooks': {{<notebook>: {{key: value}}}} "
                          f"(and a 'description'), got {part!r}")
    return sections


def resolve(profile: dict, notebooks: list, overrides=(), subset: str = "") -> dict:
    """Merge profile sections and overrides into ``{notebook stem: params}``, checking every key.

    Shared keys go to every notebook and must be declared by every notebook; a notebook
    section's keys must be declared by that notebook; a ``subset``'s values (:func:`subset_notebooks`) replace the
    profile's; an override ``key=value`` goes to the run's notebooks that declare it (at least one must),
    ``NN.key=value`` to one.

    Raises:
        ParamsError: unknown key, wrong type, section for a notebook that does not exist.
    """
    source = profile.get("path", "profile")
    declared = {nb.stem: notebook_parameters(nb) for nb in notebooks}
    all_stems = {p.stem for p in list_notebooks(Path(notebooks[0]).parent)} if notebooks else set()
    for stem in profile["notebooks"]:
        if stem not in all_stems:
            raise ParamsError(f"{source}: section notebooks.{stem} names no notebook; "
                              f"notebooks are {sorted(all_stems)}")
    part = subset_notebooks(profile, subset) if subset else {}
    for stem in part:
        if stem not in all_stems:
            raise ParamsError(f"{source}: subsets.{subset}.notebooks.{stem} names no notebook; "
                              f"notebooks are {sorted(all_stems)}")
    out = {}
    for stem, decl in declared.items():
        for key in RUNNER_KEYS:
            if key not in decl:
                raise ParamsError(f"notebook {stem}: parameters cell must declare {key!r} (the runner sets it)")
        merged = {}
        for key, value in profile["shared"].items():
            check_value(stem, key, decl, value, f"{source} (shared)")
            merged[key] = value
        for key, value in (profile["notebooks"].get(stem) or {}).items():
            check_value(stem, key, decl, value, f"{source} (notebooks.{stem})")
            merged[key] = value
        for key, value in (part.get(stem) or {}).items():
            check_value(stem, key, decl, value, f"{source} (subsets.{subset}.notebooks.{stem})")
            merged[key] = value
        out[stem] = merged
    for text in overrides:
        target, key, value = parse_override(text)
        stems = [s for s in declared if target is None or s.startswith(target + "_")]
        if target is not None and not stems:
            raise ParamsError(f"--param {text!r}: notebook {target} is not part of this run ({sorted(declared)})")
        hits = [s for s in stems if key in declared[s]]
        if not hits:
            raise ParamsError(f"--param {text!r}: unknown parameter {key!r}; no notebook in this run declares it")
        for s in hits:
            check_value(s, key, declared[s], value, f"--param {text}")
            current = out[s].get(key)
            # A dict override (e.g. train_config={epochs: 2}) changes only the keys it names, at every depth
            # (train_configs={cnn: {epochs: 2}} keeps the profile's other cnn settings).
            out[s][key] = _merged(current, value)
    return out


def _merged(current, value):
    """``value`` over ``current``, dicts merged key by key at every depth (anything else replaces)."""
    if not (isinstance(current, dict) and isinstance(value, dict)):
        return value
    return {**current, **{k: _merged(current.get(k), v) for k, v in value.items()}}


def check_all(params_dir="params", notebooks_dir="notebooks") -> list:
    """Check every profile against every notebook; returns the profiles checked."""
    notebooks = list_notebooks(notebooks_dir)
    checked = []
    for path in sorted(Path(params_dir).glob("*.yaml")):
        profile = load_profile(path.stem, params_dir)
        resolve(profile, notebooks)
        for name in profile["subsets"]:
            resolve(profile, notebooks, subset=name)
        checked.append(path.stem)
    return checked
