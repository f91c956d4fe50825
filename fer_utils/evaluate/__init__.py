"""Evaluation of trained FER models: metrics, test-time augmentation and explanations.

- ``metrics``  accuracy, macro/weighted F1, per-class precision/recall/F1, confusion matrices
- ``tta``      class probabilities, averaged over flip or ten-crop views; the TTA vocabulary
               (:data:`~fer_utils.evaluate.tta.TTA_NAMES`, :func:`~fer_utils.evaluate.tta.resolve_tta`)
- ``explain``  Grad-CAM, CBAM spatial-attention maps, heatmap overlays

The ``predictions.npz`` file and the run's preprocessing belong to :mod:`fer_utils.runs`
(``predictor.load_predictor(run_dir).predict(faces)``, :mod:`fer_utils.predictor`, is how a trained model is
evaluated).

The names below load on first use: importing ``fer_utils.evaluate.tta`` or ``.metrics`` imports no TensorFlow
(``explain`` does).
"""

from __future__ import annotations

import importlib

_HOMES = {
    "attention_maps": "explain", "default_grad_cam_layer": "explain", "grad_cam": "explain", "overlay": "explain",
    "compute_metrics": "metrics", "to_labels": "metrics",
    "TTA_NAMES": "tta", "predict_proba": "tta", "resolve_tta": "tta", "ten_crop_views": "tta",
    "views_numpy": "tta", "predict_proba_numpy": "tta",
}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f"fer_utils.evaluate.{_HOMES[name]}"), name)
    if name in ("explain", "metrics", "tta"):
        return importlib.import_module(f"fer_utils.evaluate.{name}")
    raise AttributeError(f"module 'fer_utils.evaluate' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
