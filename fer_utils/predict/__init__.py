"""Emotions in a user's own photos and videos: ``python -m fer_utils.predict`` and :class:`EmotionRecognizer`.

- ``detect``      face detectors (OpenCV Haar, MTCNN, none), crops framed like FER-2013's faces, eye alignment
- ``sources``     paths to files, images decoded (EXIF rotation), videos sampled, unreadable files as failures
- ``recognizer``  :class:`EmotionRecognizer` (arrays or paths in, a DataFrame with one row per face out; batched)
- ``shipped``     the default model in ``default_model/`` (an exported folder: float16 weights + model card),
                  loaded by :func:`fer_utils.predictor.load_predictor` like any run folder; exports are written
                  by ``python -m fer_utils.experiments.export``
- ``cli``         the command line: CSV/JSON output, annotated copies, a progress bar, the failures listed

Importing this package imports neither OpenCV nor TensorFlow; the names below load on first use.
"""

from __future__ import annotations

__all__ = ["EmotionRecognizer", "predict", "DEFAULT_MODEL"]


def __getattr__(name):
    if name in ("EmotionRecognizer", "predict"):
        from fer_utils.predict import recognizer

        return getattr(recognizer, name)
    if name == "DEFAULT_MODEL":
        from fer_utils.predict.shipped import DEFAULT_DIR

        return DEFAULT_DIR
    raise AttributeError(f"module 'fer_utils.predict' has no attribute {name!r}")
