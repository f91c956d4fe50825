"""Trained models as predictors: uint8 faces in, class probabilities out, with exactly their evaluation preprocessing.

:func:`load_predictor` turns any model folder into a predictor:

- a model run folder (``model.keras`` + ``preprocessing.json``, see :mod:`fer_utils.runs`) -> :class:`Predictor`;
- an ensemble folder (``ensemble.json``) or a list of run folders -> :class:`EnsemblePredictor`;
- an exported model folder (``architecture.json`` + float16 ``weights.npz``, e.g. the model shipped in
  ``fer_utils/predict/default_model``) -> :class:`Predictor` (:func:`load_exported`).

Evaluation uses these predictors too, so prediction and evaluation cannot drift apart. The exported format::

    architecture.json   the Keras model's config (``model.to_json()``; custom layers are registered by fer_utils)
    weights.npz         every weight in ``model.get_weights()`` order, stored as float16 (loaded back as float32)
    preprocessing.json  the source run's preprocessing record, unchanged (classes, input, normalization, TTA)
    predictions.npz     the exported model's probabilities on the test splits (the run-folder format)
    model_card.json     where it came from and how good it is (see :mod:`fer_utils.experiments.export`, which
                        writes exported folders)

Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_utils import runs

ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "weights.npz"
CARD_FILE = "model_card.json"
#: The files of an exported model folder.
EXPORTED_FILES = (ARCHITECTURE_FILE, WEIGHTS_FILE, runs.PREPROCESSING_FILE, runs.PREDICTIONS_FILE, CARD_FILE)
#: ``load_exported``'s compute precisions.
PRECISIONS = ("auto", "recorded", "float32")
#: What computes a predictor's probabilities: Keras (TensorFlow) or LiteRT (:mod:`fer_utils.models.lite`).
#: ``litert_int8``: the same float32 model converted with dynamic-range quantization (int8 weights).
RUNTIMES = ("keras", "litert", "litert_int8")


def _policies(node, found: set | None = None, *, to_float32: bool = False) -> set:
    """The dtype policy names in a model's parsed JSON config (``DTypePolicy`` objects and plain ``"dtype":
    "mixed_..."`` strings); with ``to_float32``, every mixed one (bfloat16 or float16) is set to float32 in place."""
    found = set() if found is None else found
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
            found.add(node["config"].get("name"))
            if to_float32 and str(node["config"].get("name")).startswith("mixed_"):
                node["config"]["name"] = "float32"
        for key, value in node.items():
            if key == "dtype" and isinstance(value, str) and value.startswith("mixed_"):
                found.add(value)
                if to_float32:
                    node[key] = "float32"
            else:
                _policies(value, found, to_float32=to_float32)
    elif isinstance(node, list):
        for value in node:
            _policies(value, found, to_float32=to_float32)
    return found


def _float32_config(config_json: str) -> str:
    """A model's JSON config computing in float32 (mixed bfloat16 and mixed float16 layers switched)."""
    config = json.loads(config_json)
    _policies(config, to_float32=True)
    return json.dumps(config)


# ----------------------------------------------------------------------------- predictors

class Predictor:
    """A trained model with exactly its evaluation preprocessing: uint8 faces in, probabilities out.

    Attributes:
        model: the Keras model (best checkpoint).
        preprocessing: the run's ``preprocessing.json`` as a dict.
        class_names: class names in output order.
        run_dir: where it was loaded from (None when built in memory).
    """

    def __init__(self, model, preprocessing: dict, run_dir=None):
        self.model = model
        self.preprocessing = dict(preprocessing)
        self.class_names = tuple(self.preprocessing["class_names"])
        self.run_dir = None if run_dir is None else Path(run_dir)

    def __repr__(self):
        p = self.preprocessing
        return (f"Predictor({self.run_dir or 'in memory'}: {len(self.class_names)} classes, input "
                f"{p['input_size'][0]}x{p['input_size'][1]}x{p['channels']}, {p['normalization']}, tta={p['tta']})")

    def predict(self, images, *, batch_size: int = 256, tta: Any = "default") -> np.ndarray:
        """Class probabilities ``float32 [N, K]`` for uint8 grey faces ``[N, H, W]`` (any H, W).

        Faces are resized to the model's input with the aspect ratio kept, given the run's channels
        and normalization, and averaged over the run's test-time augmentation (``tta="default"``),
        or over ``tta`` (None or ``"none"``, ``"flip"``, ``"center_flip"``, ``"ten_crop"``) when given.

        Raises:
            ValueError: images that are not uint8 ``[N, H, W]`` (a single ``[H, W]`` face is accepted), or an
                unknown ``tta``.
        """
        from fer_utils.evaluate.tta import predict_proba, resolve_tta

        p = self.preprocessing
        tta = resolve_tta(tta, recorded=p["tta"])
        faces = np.asarray(images)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.dtype != np.uint8 or faces.ndim != 3:
            raise ValueError(f"images must be uint8 grey faces [N, H, W] (or one [H, W] face); got "
                             f"{faces.dtype} {faces.shape}")
        if getattr(self.model, "takes_numpy", False) and tuple(faces.shape[1:]) == tuple(p["input_size"]):
            # LiteRT: the same preprocessing and views in NumPy (a tf.data pipeline per call cost ~25% of predict)
            from fer_utils import pipeline
            from fer_utils.evaluate.tta import predict_proba_numpy

            x = pipeline.preprocess_numpy(faces, normalization=p["normalization"], mean=p["norm_mean"],
                                          std=p["norm_std"], channels=int(p["channels"]))
            return predict_proba_numpy(self.model, x, batch_size=batch_size, tta=tta,
                                       crop_fraction=float(p["crop_fraction"]))
        return predict_proba(self.model, self._faces_dataset(faces, batch_size), tta=tta,
                             crop_fraction=float(p["crop_fraction"]))

    def _faces_dataset(self, faces, batch_size: int):
        """uint8 faces through exactly the run's evaluation preprocessing (no augmentation), batched."""
        from fer_utils import pipeline

        p = self.preprocessing
        return pipeline.make_dataset(faces, input_size=tuple(p["input_size"]), channels=int(p["channels"]),
                                     normalization=p["normalization"], mean=p["norm_mean"], std=p["norm_std"],
                                     batch_size=batch_size, cache=False)

    def features(self, images, *, batch_size: int = 256) -> np.ndarray:
        """Penultimate-layer features ``float32 [N, D]`` (the input of the last dense layer), no TTA.

        The same preprocessing as :meth:`predict`; used as the embedding of GAN quality measures.
        """
        import keras

        if not isinstance(self.model, keras.Model):
            raise ValueError(f"{self}: features need the Keras runtime (load the predictor with runtime='keras')")
        faces = np.asarray(images)
        dense = [layer for layer in self.model.layers if isinstance(layer, keras.layers.Dense)]
        if not dense:
            raise ValueError(f"{self}: the model has no dense layer to take features from")
        extractor = keras.Model(self.model.inputs, dense[-1].input)
        out = extractor.predict(self._faces_dataset(faces, batch_size), verbose=0)
        return np.asarray(out, dtype=np.float32).reshape(len(faces), -1)


class EnsemblePredictor:
    """Several trained runs as one model: each member's :meth:`Predictor.predict` (its own preprocessing and
    TTA), probabilities averaged with equal weights.

    Attributes:
        members: the member :class:`Predictor` objects.
        class_names: the shared class names.
        run_dir: the ensemble's folder when loaded from one (None when built from member folders).
    """

    def __init__(self, members: Sequence[Predictor], run_dir=None):
        members = list(members)
        if not members:
            raise ValueError("An ensemble needs at least one member run")
        names = {tuple(m.class_names) for m in members}
        if len(names) > 1:
            raise ValueError("Ensemble members disagree on the classes: "
                             + "; ".join(f"{m.run_dir}: {list(m.class_names)}" for m in members))
        self.members = members
        self.class_names = tuple(members[0].class_names)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.preprocessing = {"members": [m.preprocessing for m in members]}

    def __repr__(self):
        return f"EnsemblePredictor({len(self.members)} members: {', '.join(str(m.run_dir) for m in self.members)})"

    def predict(self, images, *, batch_size: int = 256, tta: Any = "default") -> np.ndarray:
        """The members' class probabilities ``float32 [N, K]``, averaged (see :meth:`Predictor.predict`)."""
        from fer_utils.evaluate.tta import resolve_tta

        tta = resolve_tta(tta)  # checked once, before any member predicts
        total = None
        for m in self.members:
            p = m.predict(images, batch_size=batch_size, tta=tta).astype(np.float64)
            total = p if total is None else total + p
        return (total / len(self.members)).astype(np.float32)


def _check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r}: expected one of {list(RUNTIMES)}")
    return runtime


def _float32(model):
    """``model`` computing in float32 (the same weights; a copy when it was built in another precision)."""
    import keras

    from fer_utils.models.common import model_precision

    if model_precision(model) == "float32":
        return model
    copy = keras.models.model_from_json(_float32_config(model.to_json()))
    copy.set_weights([np.asarray(w, dtype=np.float32) for w in model.get_weights()])
    return copy


def _with_runtime(predictor: "Predictor", runtime: str) -> "Predictor":
    if runtime == "keras":
        return predictor
    from fer_utils.models.lite import lite_model

    return Predictor(lite_model(_float32(predictor.model), int8=runtime == "litert_int8"), predictor.preprocessing,
                     predictor.run_dir)


def load_predictor(run_dir, runtime: str = "keras"):
    """The predictor of a finished model run, of an ensemble folder, of several runs ensembled, or of an export.

    Args:
        run_dir: a model run folder (``model.keras`` + ``preprocessing.json``) -> :class:`Predictor`;
            an ensemble folder (``ensemble.json``) or a list of run folders -> :class:`EnsemblePredictor`;
            an exported model folder (``architecture.json`` + float16 ``weights.npz``, e.g. the model shipped
            in ``fer_utils/predict/default_model``) -> :class:`Predictor`.

        runtime: ``"keras"``, ``"litert"`` (the float32 model converted once and cached; the same
            probabilities to about 1e-6) or ``"litert_int8"`` (int8 weights, dynamic-range quantization: about
            twice as fast, a few faces in a thousand change class; see :mod:`fer_utils.models.lite`).

    Raises:
        FileNotFoundError: the run folder lacks its model or preprocessing record (names the file).
        ValueError: an unknown ``runtime``.
    """
    _check_runtime(runtime)
    if isinstance(run_dir, (list, tuple)):
        return EnsemblePredictor([load_predictor(d, runtime) for d in run_dir])
    if (Path(run_dir) / runs.ENSEMBLE_FILE).exists():
        return EnsemblePredictor([load_predictor(d, runtime) for d in runs.ensemble_members(run_dir)], run_dir)
    if is_exported(run_dir):
        return load_exported(run_dir, precision="auto" if runtime == "keras" else "float32", runtime=runtime)
    spec = runs.read_preprocessing(run_dir)
    return _with_runtime(Predictor(runs.load_model(run_dir, compile=False), spec, run_dir), runtime)


# ----------------------------------------------------------------------------- exported model folders

def is_exported(folder) -> bool:
    """Whether ``folder`` is an exported model folder (holds ``architecture.json``)."""
    return (Path(folder) / ARCHITECTURE_FILE).is_file()


def _keep_bf16() -> bool:
    """bfloat16 compute pays off only with native bf16 matmuls (or a GPU); elsewhere it is emulated, slowly."""
    from fer_utils.train.compile import _cpu_supports_bf16

    return _cpu_supports_bf16() or _gpu_visible()


def _gpu_visible() -> bool:
    """float16 compute pays off only on a GPU; CPUs emulate most of it."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def load_exported(folder, *, precision: str = "auto", runtime: str = "keras") -> Predictor:
    """The :class:`Predictor` of an exported folder (float16 weights loaded as float32).

    ``precision``: ``"recorded"`` computes as the model was trained and scored (the shipped model: mixed
    bfloat16); ``"float32"`` computes in float32; ``"auto"`` keeps bfloat16 only where it is native (CPUs with
    AVX512-BF16/AMX, GPUs) and mixed float16 (a GPU run's) only on a GPU, and uses float32 elsewhere, where
    emulated 16-bit compute would be slow. ``runtime="litert"`` runs the float32 model with LiteRT,
    ``"litert_int8"`` its int8-weight form (:mod:`fer_utils.models.lite`).

    Raises:
        FileNotFoundError: a file of the folder is missing (names it).
        ValueError: the weights do not fit the architecture (says which weight and the shapes).
    """
    import keras

    import fer_utils.models  # noqa: F401  (registers the custom layers before deserialising)

    folder = Path(folder)
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {list(PRECISIONS)}")
    for name in (ARCHITECTURE_FILE, WEIGHTS_FILE, runs.PREPROCESSING_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing; an exported model folder holds "
                                    f"{list(EXPORTED_FILES)}")
    config = (folder / ARCHITECTURE_FILE).read_text(encoding="utf-8")
    policies = _policies(json.loads(config))
    if precision == "float32" or (precision == "auto" and ("mixed_bfloat16" in policies and not _keep_bf16()
                                                           or "mixed_float16" in policies and not _gpu_visible())):
        config = _float32_config(config)
    model = keras.models.model_from_json(config)
    with np.load(folder / WEIGHTS_FILE) as data:
        weights = [data[f"w{i:04d}"].astype(np.float32) for i in range(len(data.files))]
    expected = [tuple(w.shape) for w in model.weights]
    if len(weights) != len(expected):
        raise ValueError(f"{folder / WEIGHTS_FILE}: {len(weights)} arrays, the architecture has "
                         f"{len(expected)} weights")
    for i, (w, shape) in enumerate(zip(weights, expected)):
        if tuple(w.shape) != shape:
            raise ValueError(f"{folder / WEIGHTS_FILE}: weight {i} ({model.weights[i].path}) has shape {w.shape}, "
                             f"the architecture expects {shape}")
    model.set_weights(weights)
    return _with_runtime(Predictor(model, runs.read_preprocessing(folder), folder), _check_runtime(runtime))


def read_card(folder) -> dict:
    """The model card of an exported folder."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; every exported model folder has a model card")
    return json.loads(path.read_text(encoding="utf-8"))
