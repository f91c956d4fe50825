"""The package's shape: module sizes, an acyclic import graph, no TensorFlow under data/, one home per constant."""

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
    """fer_utils modules imported at module level (function-level imports are lazy by design)."""
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
    """data/, runs, params, progress and the runner stay importable without TensorFlow (fast runner start)."""
    stdout = _fresh_python("import sys, fer_utils, fer_utils.data, fer_utils.runs, fer_utils.params, "
                           "fer_utils.progress, fer_utils.run, fer_utils.index, fer_utils.experiments, fer_utils.eda; "
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
