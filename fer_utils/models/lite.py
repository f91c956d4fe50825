"""A LiteRT (TensorFlow Lite) runtime for trained models: the same probabilities as Keras, from a lighter runtime.

:class:`LiteModel` wraps a ``.tflite`` interpreter (XNNPACK on CPUs) behind the two things the suite's prediction
code uses of a Keras model, ``predict_on_batch`` and ``input_shape``, so a :class:`fer_utils.predictor.Predictor`
runs it with exactly the model's preprocessing and test-time augmentation. :func:`lite_model` converts a float32
Keras model once (Keras 3's ``model.export(..., format="litert")``, a few seconds) into the cache folder
(``$FER_CACHE_DIR`` or ``~/.cache/fer_utils``), keyed by what the model is, and loads it. Nothing is downloaded.

``lite_model(..., int8=True)`` converts with LiteRT's dynamic-range quantization instead (``Optimize.DEFAULT``
without a representative dataset): weights stored as int8, activations quantized at run time, each face's on its own
(its probabilities do not depend on the other faces in its batch; tested), so no calibration data is needed. On the
shipped model it is about twice as fast as float32 under XNNPACK; its probabilities differ from Keras' by up to a few
hundredths, so about one face in a hundred changes class: at the shipped 47-pixel crop side no measurable loss on
PrivateTest at any TTA (with ten-crop +0.03 points, p = 1.0; at 42 pixels it was -0.25, p = 0.035; ``docs/predict.md``:
measured with the commands there).

The interpreter comes from ``ai_edge_litert`` when installed (LiteRT's maintained package), else from
TensorFlow's ``tf.lite`` (deprecated there, still shipped with TensorFlow 2.21).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

LITE_DIR = "litert"
#: The cached file's suffix per conversion: float32, or int8 weights with dynamically quantized activations.
SUFFIXES = {False: ".tflite", True: ".int8.tflite"}


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

        return Interpreter
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter


class LiteModel:
    """A ``.tflite`` classifier with the Keras methods prediction uses.

    Args:
        path: the ``.tflite`` file (one float32 input ``[batch, H, W, C]``; ``predict_on_batch`` returns the first
            output, the probabilities of a classifier; ``run`` every output, e.g. a detector's boxes and scores).
        num_threads: interpreter threads (default: every core).
    """

    #: Takes NumPy batches: a predictor feeds it NumPy-made views (``tta.views_numpy``), no TensorFlow op per batch.
    takes_numpy = True

    def __init__(self, path, num_threads: int | None = None):
        self.path = Path(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            self._it = _interpreter_class()(model_path=str(self.path), num_threads=num_threads or os.cpu_count())
        self._in = self._it.get_input_details()[0]
        self._outs = self._it.get_output_details()
        self.input_shape = (None, *[int(d) for d in self._in["shape"][1:]])
        self._batch = None

    def __repr__(self):
        return f"LiteModel({self.path.name}, input {self.input_shape})"

    def predict_on_batch(self, x) -> np.ndarray:
        return self.run(x)[0]

    def run(self, x) -> list:
        """Every output of the model for the float32 batch ``x``, in the model's output order."""
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if tuple(x.shape[1:]) != self.input_shape[1:]:
            expected = ", ".join(map(str, self.input_shape[1:]))
            raise ValueError(f"{self}: got inputs {x.shape}, expected [batch, {expected}]")
        if x.shape[0] != self._batch:
            self._it.resize_tensor_input(self._in["index"], list(x.shape))
            self._it.allocate_tensors()
            self._batch = x.shape[0]
        self._it.set_tensor(self._in["index"], x)
        self._it.invoke()
        return [np.array(self._it.get_tensor(o["index"]), dtype=np.float32) for o in self._outs]


def model_key(model) -> str:
    """What a Keras model is, for the cache: its architecture and every weight, hashed."""
    h = hashlib.sha256(model.to_json().encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:24]


def cache_folder(cache_dir=None) -> Path:
    """``litert/`` under the suite's cache root (:func:`fer_utils.data.fer2013_csv.cache_root`); a temporary folder
    when there is none to write (the model is then converted in every process)."""
    import tempfile

    from fer_utils.data.fer2013_csv import cache_root

    root = cache_root(cache_dir)
    folder = (root or Path(tempfile.mkdtemp(prefix="fer_utils-"))) / LITE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def lite_model(model, *, int8: bool = False, cache_dir=None, num_threads: int | None = None) -> LiteModel:
    """The LiteRT form of a float32 Keras ``model``: converted once into the cache, then loaded from there.

    ``int8``: dynamic-range quantization (int8 weights, activations quantized at run time; no calibration data).

    Raises:
        ValueError: a model that computes in another precision (convert the float32 form: ``load_exported``'s
            ``precision="float32"``).
    """
    from fer_utils.models.common import model_precision

    if model_precision(model) != "float32":
        raise ValueError(f"lite_model: the model computes in {model_precision(model)}; LiteRT gets the float32 form")
    key, suffix = model_key(model), SUFFIXES[bool(int8)]
    path = cache_folder(cache_dir) / f"{key}{suffix}"
    if not path.is_file():
        partial = path.with_name(f"{key}.{os.getpid()}.partial{suffix}")
        options = {}
        if int8:
            import tensorflow as tf

            options["optimizations"] = [tf.lite.Optimize.DEFAULT]
        model.export(str(partial), format="litert", verbose=False, **options)
        partial.replace(path)  # whole or not at all: another process may be converting the same model
    return LiteModel(path, num_threads=num_threads)
