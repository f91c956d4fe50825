"""The model registry: every trainable name, its builder, defaults and what it is (family, attention, pairs).

The registry owns each model's default input normalization (ImageNet weights get the preprocessing Keras
trained them with) and the pairs the notebooks compare: plain vs attention, and Study C's SE x BN ablation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import keras

from fer_utils.models.cnn import build_cnn
from fer_utils.models.inception_v3 import build_inception_v3
from fer_utils.models.msca_resnet import build_msca_resnet
from fer_utils.models.resnet50 import build_resnet50
from fer_utils.models.vgg19 import build_vgg19
from fer_utils.pipeline import NORMALIZATIONS

#: How Keras preprocessed ImageNet images for each family's pretrained weights
#: (``keras.applications.<family>.preprocess_input``: "caffe" mode for VGG19/ResNet50, "tf" mode,
#: i.e. [-1, 1], for InceptionV3).
IMAGENET_NORMALIZATION = {"vgg19": "imagenet_caffe", "resnet50": "imagenet_caffe", "inception_v3": "symmetric"}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry: a builder, its default kwargs and metadata.

    Attributes:
        builder: The builder function.
        defaults: Keyword arguments passed to the builder unless overridden.
        family: ``"cnn"``, ``"msca_resnet"``, ``"vgg19"``, ``"resnet50"`` or
            ``"inception_v3"``.
        attention: ``None``, ``"se"`` or ``"cbam"``.
        min_input_size: Smallest allowed height/width.
        channels: Preferred input channels (1 = grey, 3 = RGB).
        study: ``"A"`` (ImageNet backbones), ``"B"`` (CNN) or ``"C"``
            (multi-scale SE ResNet).
        normalization: Default input normalization when training from scratch.
        baseline: The registry name of the same model without attention (None for plain models
            and for Study C's variants, whose comparison is the SE x BN ablation).
        ablation: Study C's ``{"se": bool, "bn": bool}`` switches (None for other models).
    """

    builder: Callable[..., keras.Model]
    defaults: dict
    family: str
    attention: str | None
    min_input_size: int
    channels: int
    study: str
    normalization: str = "unit"
    baseline: str | None = None
    ablation: dict | None = None


def _registry():
    reg = {}
    for att, suffix in ((None, ""), ("se", "_se"), ("cbam", "_cbam")):
        reg[f"cnn{suffix}"] = ModelSpec(build_cnn, {"attention": att}, "cnn", att, 16, 1, "B",
                                        baseline="cnn" if att else None)
        for family, builder, min_size in (
            ("vgg19", build_vgg19, 32),
            ("resnet50", build_resnet50, 32),
            ("inception_v3", build_inception_v3, 75),
        ):
            # FER training: a GAP head suits small inputs; the ImageNet head
            # stays available through the builders.
            reg[f"{family}{suffix}"] = ModelSpec(
                builder, {"attention": att, "head": "gap"}, family, att, min_size, 3, "A",
                baseline=family if att else None,
            )
    for name, se, bn in (
        ("msca_resnet", True, True),
        ("msca_resnet_no_se", False, True),
        ("msca_resnet_no_bn", True, False),
        ("msca_resnet_plain", False, False),
    ):
        reg[name] = ModelSpec(
            build_msca_resnet, {"se": se, "bn": bn}, "msca_resnet", "se" if se else None, 8, 1, "C",
            normalization="per_image", ablation={"se": se, "bn": bn},
        )
    return dict(sorted(reg.items()))


MODEL_REGISTRY: dict[str, ModelSpec] = _registry()


def available_models():
    """Names accepted by :func:`build_model`, sorted.

    Returns:
        A list of registry names.
    """
    return list(MODEL_REGISTRY)


def _spec(name):
    try:
        return MODEL_REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown model {name!r}. Known models: {', '.join(available_models())}."
        ) from None


def model_info(name):
    """Metadata of a registry entry.

    Args:
        name: A registry name.

    Returns:
        A dict with ``family``, ``attention``, ``min_input_size``,
        ``channels`` (preferred input channels), ``study``, ``builder``
        (function name) and ``defaults`` (a copy of the default kwargs).

    Raises:
        ValueError: Unknown name (the message lists the known names).
    """
    spec = _spec(name)
    return {
        "name": name,
        "family": spec.family,
        "attention": spec.attention,
        "min_input_size": spec.min_input_size,
        "channels": spec.channels,
        "study": spec.study,
        "builder": spec.builder.__name__,
        "defaults": dict(spec.defaults),
        "normalization": spec.normalization,
        "baseline": spec.baseline,
        "ablation": dict(spec.ablation) if spec.ablation else None,
    }


def default_normalization(name, weights=None):
    """The input normalization a registry model trains with by default.

    Args:
        name: A registry name.
        weights: The builder's ``weights`` argument. ``"imagenet"`` (or a keras.applications ``.h5``
            file) gets the preprocessing Keras trained those weights with.

    Returns:
        One of :data:`NORMALIZATIONS`.
    """
    spec = _spec(name)
    if weights is not None and not str(weights).endswith(".keras") and spec.family in IMAGENET_NORMALIZATION:
        return IMAGENET_NORMALIZATION[spec.family]
    return spec.normalization


def resolve_normalization(name, normalization="auto", weights=None):
    """``normalization`` itself, or the registry default for ``"auto"``; checks the choice.

    Raises:
        ValueError: An unknown normalization (the message lists the choices).
    """
    if normalization == "auto":
        return default_normalization(name, weights)
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r}: expected 'auto' or one of {list(NORMALIZATIONS)}.")
    return normalization


class ModelInput(NamedTuple):
    """What a registry model is fed: see :func:`resolve_input`."""

    side: int
    channels: int
    normalization: str
    note: str


def resolve_input(name, input_size=48, normalization="auto", weights=None) -> ModelInput:
    """The input a registry model trains and predicts on: ``(side, channels, normalization, note)``.

    The one place a requested size and normalization become the model's (training, tuning, the runner's dry
    run and the throughput benchmark all ask here).

    Args:
        name: a registry name.
        input_size: the requested side of the square input; raised to the model's ``min_input_size`` if smaller.
        normalization: ``"auto"`` (the registry default for the model and ``weights``) or one of
            :data:`NORMALIZATIONS`.
        weights: the builder's ``weights`` argument (see :func:`default_normalization`).

    Returns:
        A :class:`ModelInput`; ``note`` says when the size was raised (``""`` otherwise).

    Raises:
        ValueError: an unknown model or normalization (the message lists the choices).
    """
    spec = _spec(name)
    side = max(int(input_size), int(spec.min_input_size))
    note = f"size {input_size} raised to min_input_size {side}" if side != int(input_size) else ""
    return ModelInput(side, int(spec.channels), resolve_normalization(name, normalization, weights), note)


def attention_pairs(names):
    """``[(attention model, its plain baseline)]`` for the names whose baseline is also in ``names``."""
    names = list(names)
    return [(n, _spec(n).baseline) for n in names if _spec(n).baseline in names]


def build_model(name, input_shape=None, num_classes=None, **overrides: Any):
    """Builds a registry model; ``model.name`` is the registry name.

    Args:
        name: A registry name (see :func:`available_models`).
        input_shape: ``(H, W, C)``; None uses the builder's default.
        num_classes: Number of classes; None uses the builder's default.
        **overrides: Builder keyword arguments that replace the registry
            defaults (e.g. ``dropout=0.3``, ``weights="imagenet"``).

    Returns:
        A ``keras.Model`` (not compiled).

    Raises:
        ValueError: Unknown name (the message lists the known names), or
            any builder validation error.
    """
    spec = _spec(name)
    kwargs = dict(spec.defaults)
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    kwargs.update(overrides)
    kwargs["name"] = name
    return spec.builder(**kwargs)
