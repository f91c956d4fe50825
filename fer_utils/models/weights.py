"""Loading weights into our backbones: ImageNet (keras.applications), our own ``.keras`` files, legacy ``.h5``.

ImageNet weights need the internet (Keras downloads them); offline the error says how to pass a local file.
"""

from __future__ import annotations

import os
import re
import warnings

import keras
import numpy as np
from keras import layers

# keras.applications constructor names and where their no-top ImageNet
# files live, for the offline error message. Constructors are looked up on
# ``keras.applications`` at call time (not bound at import) so tests can
# monkeypatch them.
_KERAS_APPS = {
    "vgg19": ("VGG19", "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet50": (
        "ResNet50",
        "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "inception_v3": (
        "InceptionV3",
        "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
}
_KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

def _copy_weights(model, source, description):
    """Copies ``source[name]`` weight lists into same-named layers of ``model``.

    Layers whose weight shapes differ (e.g. a classifier with another number
    of classes) are skipped with a warning. Raises if nothing matched, since
    that always means the wrong file or family.
    """
    copied, mismatched = 0, []
    for layer in model.layers:
        if not layer.weights or layer.name not in source:
            continue
        values = source[layer.name]
        if [tuple(w.shape) for w in layer.weights] != [tuple(np.shape(v)) for v in values]:
            mismatched.append(layer.name)
            continue
        layer.set_weights(values)
        copied += 1
    if copied == 0:
        raise ValueError(
            f"No layer of model {model.name!r} matched a layer name (with the "
            f"same weight shapes) in {description}."
        )
    if mismatched:
        warnings.warn(
            f"{len(mismatched)} layer(s) kept their initial weights because the "
            f"shapes differ from {description}: {mismatched}",
            stacklevel=3,
        )
    return copied


def _reference_weights(family, ref, inception_order):
    """``{our layer name: weights}`` from a keras.applications model.

    VGG19 and ResNet50 reuse the applications' layer names. InceptionV3 in
    keras.applications has auto-generated names (``conv2d_17``...) whose
    numbers depend on what was built earlier in the session, so its Conv2D
    and BatchNormalization layers are paired with ours by creation order
    (the auto-name counter) instead.
    """
    if family != "inception_v3":
        return {layer.name: layer.get_weights() for layer in ref.layers if layer.weights}

    def creation_index(layer):
        match = re.search(r"_(\d+)$", layer.name)
        return int(match.group(1)) if match else 0

    source = {}
    for cls, suffix in ((layers.Conv2D, "_conv"), (layers.BatchNormalization, "_bn")):
        ref_layers = sorted(
            (layer for layer in ref.layers if type(layer) is cls), key=creation_index
        )
        if len(ref_layers) != len(inception_order):
            raise RuntimeError(
                f"InceptionV3 reference has {len(ref_layers)} {cls.__name__} "
                f"layers, expected {len(inception_order)}."
            )
        for stem, layer in zip(inception_order, ref_layers):
            source[stem + suffix] = layer.get_weights()
    for layer in ref.layers:  # the named top layers, if any
        if layer.name == "predictions":
            source[layer.name] = layer.get_weights()
    return source


def _legacy_h5_has_top(path):
    import h5py  # Keras' own dependency for .h5 files; only needed here

    with h5py.File(path, "r") as f:
        names = f.attrs.get("layer_names", [])
        return any(
            (n.decode() if isinstance(n, bytes) else n) == "predictions" for n in names
        )


def load_backbone_weights(model, family, weights, input_shape, inception_order=None):
    """Loads ``weights`` (``"imagenet"`` or a path) into a built backbone."""
    if weights is None:
        return
    app_name, rel_path = _KERAS_APPS[family]
    if weights == "imagenet":
        app = getattr(keras.applications, app_name)
        try:
            ref = app(weights="imagenet", include_top=False, input_shape=tuple(input_shape))
        except Exception as err:  # download failures surface as many types
            file_name = rel_path.split("/")[-1]
            raise RuntimeError(
                f"Could not get ImageNet weights for {family}: {err}. ImageNet "
                "weights need internet access (Keras downloads them once into "
                "~/.keras/models/). Offline, download "
                f"{_KERAS_APPS_URL}{rel_path} on a machine with internet and "
                f"either copy it to ~/.keras/models/{file_name} or pass a local "
                f"path: weights='/path/to/{file_name}'."
            ) from err
        source = _reference_weights(family, ref, inception_order)
        description = f"keras.applications.{app_name} ImageNet weights"
        del ref
    else:
        path = os.fspath(weights)
        if path.endswith(".keras"):
            # A model saved by this suite: layer names are ours.
            src = keras.models.load_model(path, compile=False)
            source = {layer.name: layer.get_weights() for layer in src.layers if layer.weights}
            del src
            description = path
        elif path.endswith(".weights.h5"):
            # Keras 3 weight files address layers by class and position, not
            # by name, so they only load into the same architecture.
            try:
                model.load_weights(path)
            except Exception as err:
                raise ValueError(
                    f"{path!r} is a Keras 3 .weights.h5 file, which stores "
                    "weights by layer position rather than name; it only loads "
                    "into the identical architecture. Save the source model "
                    f"with model.save('...keras') to match by name. ({err})"
                ) from err
            return
        else:
            # Legacy .h5 (e.g. keras.applications' ImageNet files): let the
            # applications model read it, then copy as for "imagenet".
            has_top = _legacy_h5_has_top(path)
            app = getattr(keras.applications, app_name)
            ref = app(
                weights=path,
                include_top=has_top,
                input_shape=None if has_top else tuple(input_shape),
            )
            source = _reference_weights(family, ref, inception_order)
            description = path
            del ref
    _copy_weights(model, source, description)


