"""The model ``predict`` ships: ``fer_utils/predict/default_model/``, an exported folder (float16 weights + model card).

The exported format is loaded by :mod:`fer_utils.predictor` (``load_predictor`` reads any folder holding
``architecture.json``); the names below are re-exported from there with this package's default model as their
default folder. Exports are written by ``python -m fer_utils.experiments.export RUN_DIR``
(:func:`fer_utils.experiments.export.export_model`). Nothing downloads.
"""

from __future__ import annotations

from pathlib import Path

from fer_utils import predictor
from fer_utils.predictor import (
    ARCHITECTURE_FILE,
    CARD_FILE,
    EXPORTED_FILES,
    PRECISIONS,
    WEIGHTS_FILE,
    is_exported,
)

__all__ = ["ARCHITECTURE_FILE", "CARD_FILE", "DEFAULT_DIR", "EXPORTED_FILES", "PRECISIONS", "WEIGHTS_FILE",
           "is_exported", "load_exported", "read_card"]

#: The exported model shipped in the package (``predict``'s ``"default"`` model).
DEFAULT_DIR = Path(__file__).resolve().parent / "default_model"


def load_exported(folder=DEFAULT_DIR, *, precision: str = "auto"):
    """:func:`fer_utils.predictor.load_exported`, of the shipped model by default."""
    return predictor.load_exported(folder, precision=precision)


def read_card(folder=DEFAULT_DIR) -> dict:
    """:func:`fer_utils.predictor.read_card`, of the shipped model by default."""
    return predictor.read_card(folder)
