"""The package's shape: module sizes, the layer order of imports, no TensorFlow in light modules, one home per constant.

The layer order (docs/architecture.md) holds for every import of a module, at module level and inside functions:
a function-local import is lazy, not exempt.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "fer_utils"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _top_level_imports(path: Path) -> set:
    """fer_utils modules imported at module level (every import, local ones too, obeys the layer order below)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fer_utils"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists()
                          or (PACKAGE.parent / candidate.replace(".", "/")).is_dir() else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fer_utils")}
    return found


#: The layers, low to high: a module imports only from its own layer or lower. A module belongs to the longest
#: entry that is its name or a package above it; ``fer_utils`` itself (the package docstring) only by exact name.
LAYERS = (
    ("fer_utils", "fer_utils.data", "fer_utils.params", "fer_utils.progress", "fer_utils.stats",
     "fer_utils.artifacts"),
    ("fer_utils.pipeline", "fer_utils.models", "fer_utils.evaluate", "fer_utils.plots", "fer_utils.eda"),
    ("fer_utils.runs",),
    ("fer_utils.train", "fer_utils.gan"),
    ("fer_utils.predictor",),
    ("fer_utils.tune", "fer_utils.predict"),
    ("fer_utils.experiments",),
    # The runner and the other command modules (the tuning launcher starts the runner and uses its stderr filter).
    ("fer_utils.run", "fer_utils.check", "fer_utils.notebook_exec", "fer_utils.index",
     "fer_utils.experiments.tune_workers", "fer_utils.cost"),
)
#: Packages and modules that must never import fer_utils.experiments, not even inside a function.
BELOW_EXPERIMENTS = ("fer_utils.tune", "fer_utils.train", "fer_utils.predict", "fer_utils.runs")


def _layer(module: str):
    """``(index, entry)`` of the layer ``module`` belongs to, or None when no entry covers it."""
    best = None
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            covers = module == entry or (entry != "fer_utils" and module.startswith(entry + "."))
            if covers and (best is None or len(entry) > len(best[1])):
                best = (index, entry)
    return best


def _resolve(module: str, is_package: bool, node) -> list:
    """The modules an import statement in ``module`` imports (relative imports resolved; ``from pkg import name``
    counts as ``pkg.name`` when that is a module, else as ``pkg``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    out = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        is_module = ((ROOT / (candidate.replace(".", "/") + ".py")).exists()
                     or (ROOT / candidate.replace(".", "/")).is_dir())
        out.append(candidate if is_module else base)
    return out


def _all_imports(module: str, source: str, is_package: bool = False) -> set:
    """``(fer_utils module, line)`` of every import anywhere in ``source``: module level, in functions and
    classes, under ``if``/``try``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= {(target, node.lineno) for target in _resolve(module, is_package, node)
                      if target == "fer_utils" or target.startswith("fer_utils.")}
    return found


def _upward(module: str, source: str, is_package: bool = False, where: str = "") -> list:
    """The imports of ``module`` from a higher layer, as messages naming both modules, their layers and the line."""
    mine = _layer(module)
    problems = []
    for target, line in sorted(_all_imports(module, source, is_package)):
        theirs = _layer(target)
        if mine and theirs and theirs[0] > mine[0]:
            problems.append(f"{where or module}:{line}: {module} (layer {mine[0] + 1}, {mine[1]}) imports {target} "
                            f"(layer {theirs[0] + 1}, {theirs[1]}), a higher layer")
    return problems


def _source_of(path: Path) -> tuple:
    return _module_name(path), path.read_text(), path.name == "__init__.py", str(path.relative_to(ROOT))


def test_every_module_has_a_layer():
    unplaced = [_module_name(p) for p in MODULES if _layer(_module_name(p)) is None]
    assert unplaced == [], f"place these modules in LAYERS (and docs/architecture.md): {unplaced}"


def test_no_import_points_to_a_higher_layer_at_module_level_or_inside_functions():
    problems = [msg for p in MODULES for msg in _upward(*_source_of(p))]
    assert problems == [], "imports against the layer order (docs/architecture.md):\n" + "\n".join(problems)


def test_nothing_below_experiments_imports_experiments():
    """tune/, train/, predict/ and runs never import fer_utils.experiments, at module level or inside functions."""
    below = [p for p in MODULES if any(_module_name(p) == m or _module_name(p).startswith(m + ".")
                                       for m in BELOW_EXPERIMENTS)]
    offending = sorted(f"{p.relative_to(ROOT)}:{line}: imports {target}" for p in below
                       for target, line in _all_imports(*_source_of(p)[:3])
                       if target == "fer_utils.experiments" or target.startswith("fer_utils.experiments."))
    assert len(below) > 10 and offending == []


@pytest.mark.parametrize("code", [
    "def f():\n    from fer_utils.experiments import running\n",
    "def f():\n    from ..experiments.running import run_model\n",
    "class C:\n    def m(self):\n        if True:\n            import fer_utils.experiments.tuning\n",
])
def test_the_layer_check_sees_function_local_imports(code):
    """An upward import hidden in a function is caught, relative or absolute (guards the checker itself)."""
    found = _upward("fer_utils.tune.probe", code)
    assert len(found) == 1 and "fer_utils.tune.probe (layer 6, fer_utils.tune) imports" in found[0], found
    assert _upward("fer_utils.experiments.probe", code) == []


def test_no_module_is_over_500_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in MODULES}
    assert {k: v for k, v in sizes.items() if v > 500} == {}


def test_module_level_import_graph_has_no_cycles():
    graph = {_module_name(p): _top_level_imports(p) for p in MODULES}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph.get(node, ()):
            if dep == node or dep not in graph:
                continue
            if state.get(dep) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(stack + [node, dep])}")
            if dep not in state:
                visit(dep, stack + [node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])
    assert "fer_utils.data" in graph and "fer_utils.runs" in graph  # the graph was really built


def _fresh_python(code: str) -> str:
    """stdout of ``code`` run in a new interpreter that imports this checkout's fer_utils."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_light_modules_do_not_import_tensorflow():
    """data/, runs, predictor, params, progress and the runner stay importable without TensorFlow (fast runner
    start; a predictor module that loads models only when asked)."""
    stdout = _fresh_python("import sys, fer_utils, fer_utils.data, fer_utils.runs, fer_utils.predictor, "
                           "fer_utils.params, fer_utils.progress, fer_utils.run, fer_utils.index, "
                           "fer_utils.experiments, fer_utils.eda; "
                           "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    assert stdout.strip() == "[]"


def test_importing_the_package_has_no_side_effects():
    stdout = _fresh_python("import numpy as np; np.random.seed(5); before = np.random.get_state()[1].copy(); "
                           "import fer_utils.models, fer_utils.train, fer_utils.evaluate, fer_utils.experiments; "
                           "import keras; print(keras.mixed_precision.global_policy().name, "
                           "bool((np.random.get_state()[1] == before).all()))")
    assert stdout.split()[-2:] == ["float32", "True"]


def _string_constants(path: Path):
    """String literals of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            for part in node.values:
                if isinstance(part, ast.Constant):
                    yield part.value


@pytest.mark.parametrize("literal, home", [
    ("metrics.json", "fer_utils/runs.py"),
    ("history.csv", "fer_utils/runs.py"),
    ("predictions.npz", "fer_utils/runs.py"),
    ("model.keras", "fer_utils/runs.py"),
    ("train_config.json", "fer_utils/runs.py"),
    ("preprocessing.json", "fer_utils/runs.py"),
    ("_spatial_attention", "fer_utils/models/attention.py"),
    ("happiness", "fer_utils/data/classes.py"),
    ("contempt", "fer_utils/data/classes.py"),
    ("SYNTHETIC DATA: ", "fer_utils/artifacts.py"),
])
def test_one_home_per_constant(literal, home):
    """File names, the attention suffix, class names and the synthetic banner are each defined once."""
    # File names count where a string is exactly the name (prose mentioning a file is fine); the banner and
    # class names count wherever they appear.
    exact = literal.endswith((".json", ".csv", ".npz", ".keras"))
    holders = sorted({str(p.relative_to(ROOT)) for p in MODULES
                      if any(s == literal or (not exact and literal in s) for s in _string_constants(p))})
    assert holders == [home]
