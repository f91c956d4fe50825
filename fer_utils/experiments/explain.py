"""Explaining a trained model on faces of every class: Grad-CAM and CBAM spatial-attention maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_utils import data as D
from fer_utils.predictor import load_predictor


def explain_model(run_dir, name: str, ds: D.FERDataset, *, split: str = "PrivateTest", per_class: int = 1,
                  seed: int = 0, max_attention_maps: int = 3):
    """Grad-CAM and CBAM spatial-attention maps for sample faces of every class of ``split``.

    The faces go through the run's own preprocessing (``preprocessing.json``).

    Returns:
        ``(faces uint8 [N,48,48], {row label: maps [N,48,48]}, column titles)`` for
        :func:`fer_utils.plots.explanation_grid`. CBAM rows (first, middle and last attention
        block by default) appear only for models that have CBAM blocks.
    """
    import tensorflow as tf

    from fer_utils import evaluate, models, pipeline

    predictor = load_predictor(Path(run_dir) / name)
    model, prep = predictor.model, predictor.preprocessing
    te = ds.split(split)
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(te.labels == c))[:per_class] for c in range(ds.num_classes)])
    faces = te.images[pick]
    x = pipeline.as_arrays(pipeline.make_dataset(faces, input_size=tuple(prep["input_size"]),
                                                 channels=int(prep["channels"]), normalization=prep["normalization"],
                                                 mean=prep["norm_mean"], std=prep["norm_std"], batch_size=64,
                                                 cache=False))
    pred = predictor.predict(faces).argmax(1)

    def to_face(maps):
        return tf.image.resize(np.asarray(maps, np.float32)[..., None], faces.shape[1:3]).numpy()[..., 0]

    rows = {"Grad-CAM": to_face(evaluate.grad_cam(model, x))}
    layers = models.attention_map_layers(model)
    if layers:
        chosen = sorted({layers[0], layers[len(layers) // 2], layers[-1]}, key=layers.index)[:max_attention_maps]
        for layer, maps in evaluate.attention_maps(model, x, chosen).items():
            # Sigmoid maps sit near 0.5 everywhere early in training: stretch each face's map to [0, 1]
            # so the overlay shows where attention is relatively higher (the row label says so).
            lo = maps.min(axis=(1, 2), keepdims=True)
            span = np.maximum(maps.max(axis=(1, 2), keepdims=True) - lo, 1e-8)
            block = layer[: -len(models.SPATIAL_ATTENTION_SUFFIX)]
            rows[f"CBAM {block}\n(min-max per face)"] = to_face((maps - lo) / span)
    titles = [f"{ds.class_names[te.labels[i]]}\npred: {ds.class_names[p]}" for i, p in zip(pick, pred)]
    return faces, rows, titles
