"""Evaluation of trained FER models: metrics, test-time augmentation and explanations.

- ``metrics``  accuracy, macro/weighted F1, per-class precision/recall/F1, confusion matrices
- ``tta``      class probabilities, averaged over flip or ten-crop views
- ``explain``  Grad-CAM, CBAM spatial-attention maps, heatmap overlays

The ``predictions.npz`` file and the run's preprocessing belong to :mod:`fer_utils.runs`
(``runs.load_predictor(run_dir).predict(faces)`` is how a trained model is evaluated).
"""

from fer_utils.evaluate.explain import attention_maps, default_grad_cam_layer, grad_cam, overlay
from fer_utils.evaluate.metrics import compute_metrics, to_labels
from fer_utils.evaluate.tta import TTA_CHOICES, predict_proba, ten_crop_views

__all__ = ["TTA_CHOICES", "attention_maps", "compute_metrics", "default_grad_cam_layer", "grad_cam", "overlay",
           "predict_proba", "ten_crop_views", "to_labels"]
