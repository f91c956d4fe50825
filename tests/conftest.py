"""Shared test fixtures: where the real data is, and small files built from the real fixtures."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """Every test that uses the real-data fixtures is marked ``realdata`` (``-m "not realdata"`` leaves them out)."""
    for item in items:
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


def data_dir() -> Path | None:
    """``$FER_DATA_DIR`` if set (``.ci/run`` sets it to ../shared/data)."""
    value = os.environ.get("FER_DATA_DIR")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real-data folder; tests using it skip cleanly only when FER_DATA_DIR is unset."""
    d = data_dir()
    if d is None:
        pytest.skip("FER_DATA_DIR is not set: real-data tests need the datasets (README: Data)")
    assert d.is_dir(), f"FER_DATA_DIR={d} does not exist"
    return d


@pytest.fixture(scope="session")
def fixtures_dir(real_data) -> Path:
    return real_data / "fixtures"


@pytest.fixture(scope="session")
def tiny_csv(fixtures_dir) -> Path:
    return fixtures_dir / "fer2013_tiny.csv"


@pytest.fixture()
def cache_dir(tmp_path):
    """A private parse cache so tests never depend on (or pollute) ~/.cache."""
    return tmp_path / "cache"


@pytest.fixture()
def frozen_clock(monkeypatch):
    """Every ``time.strftime`` without an explicit time stamps the same second (the epoch): for two replacements of
    a run "within one second", deterministically."""
    import time

    real = time.strftime
    monkeypatch.setattr(time, "strftime", lambda fmt, t=None: real(fmt, time.localtime(0)))


def docs_row(text: str, first_cell: str) -> list:
    """The cells of the Markdown table row in ``text`` whose first cell is ``first_cell`` (docs read-back tests)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starts with {first_cell!r}")


def write_png(path: Path, image: np.ndarray):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


@pytest.fixture(scope="session")
def tiny_fer():
    """Synthetic faces (6 per class and split) with a Validation split: the small training runs' dataset."""
    from fer_utils import data as D
    from fer_utils import experiments

    return experiments.prepare(D.load_synthetic(6, seed=0), val_fraction=0.34, seed=0)
