"""Metrics of a set of predictions: accuracy, macro/weighted F1, per-class P/R/F1, confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def to_labels(y, num_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise ValueError(
                f"Invalid {name} shape {arr.shape}; expected [N] labels or "
                f"[N, {num_classes}] scores for {num_classes} class_names."
            )
        return np.argmax(arr, axis=1).astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(
            f"Invalid {name} shape {arr.shape}; expected [N] labels or [N, K] scores."
        )
    labels = arr.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Invalid {name} labels: values must be in [0, {num_classes - 1}] "
            f"for {num_classes} class_names, got min {labels.min()}, max {labels.max()}."
        )
    return labels


def compute_metrics(y_true, y_prob_or_pred, class_names: Sequence[str]) -> dict[str, Any]:
    """Computes the standard FER metrics record (JSON-serialisable).

    Args:
        y_true: ``[N]`` integer labels or ``[N, K]`` one-hot/soft labels
            (argmax is taken).
        y_prob_or_pred: ``[N, K]`` probabilities or ``[N]`` predicted labels.
        class_names: The K class names, in label order.

    Returns:
        Dict with ``n``, ``accuracy``, ``macro_f1``, ``weighted_f1``,
        ``macro_precision``, ``macro_recall``, ``per_class``
        (``{name: {precision, recall, f1, support}}``), ``confusion_matrix``
        (counts, rows = true class), ``confusion_matrix_normalized`` (each row
        divided by its total; rows of absent classes stay all zero) and
        ``class_names``. Undefined precision/recall/F1 count as 0.

    Raises:
        ValueError: On shape/label mismatches with ``class_names``.
    """
    from sklearn import metrics as skm

    names = [str(c) for c in class_names]
    k = len(names)
    if k < 1:
        raise ValueError("class_names is empty; expected the K class names.")
    yt = to_labels(y_true, k, "y_true")
    yp = to_labels(y_prob_or_pred, k, "y_prob_or_pred")
    if len(yt) != len(yp):
        raise ValueError(
            f"y_true has {len(yt)} samples but y_prob_or_pred has {len(yp)}."
        )
    labels = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        yt, yp, labels=labels, zero_division=0
    )
    cm = skm.confusion_matrix(yt, yp, labels=labels)
    row_sums = cm.sum(axis=1, keepdims=True)
    cm_norm = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64), where=row_sums > 0)
    n = int(len(yt))
    return {
        "n": n,
        "accuracy": float(skm.accuracy_score(yt, yp)) if n else 0.0,
        "macro_f1": float(skm.f1_score(yt, yp, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(
            skm.f1_score(yt, yp, labels=labels, average="weighted", zero_division=0)
        ),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
        "confusion_matrix": [[int(v) for v in row] for row in cm],
        "confusion_matrix_normalized": [[float(v) for v in row] for row in cm_norm],
        "class_names": names,
    }


