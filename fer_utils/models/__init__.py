"""Model builders and attention blocks of the FER suite.

One module per family, builder functions in the style of ``keras.applications`` (every layer
named, errors that say what was received):

- ``attention``    SE and CBAM blocks, :class:`ChannelPool` (the one custom layer), attention-map lookup
- ``common``       argument checks, classifier heads, the multiply-add count and the precision a model computes in
- ``weights``      ImageNet / ``.keras`` / legacy ``.h5`` weight loading
- ``vgg19``, ``resnet50``, ``inception_v3``   Study A's backbones with optional attention
- ``cnn``          Study B's VGG-style CNN (optional SE/CBAM)
- ``msca_resnet``  Study C's multi-scale residual network with SE, and its SE x BN ablation
- ``registry``     every trainable name, its defaults, input (size, channels, normalization) and comparison pairs
- ``lite``         a trained model's LiteRT form (converted once, cached) behind the Keras calls prediction uses;
                   not imported here

Nothing here compiles or trains; importing it defines things only.
"""

from fer_utils.models.attention import (
    ATTENTION_CHOICES,
    SPATIAL_ATTENTION_SUFFIX,
    ChannelPool,
    attention_map_layers,
    cbam_block,
    cbam_param_count,
    se_block,
    se_param_count,
)
from fer_utils.models.cnn import build_cnn
from fer_utils.models.common import HEAD_CHOICES, model_precision, multiply_adds
from fer_utils.models.inception_v3 import build_inception_v3
from fer_utils.models.msca_resnet import build_msca_resnet
from fer_utils.models.registry import (
    IMAGENET_NORMALIZATION,
    MODEL_REGISTRY,
    ModelInput,
    ModelSpec,
    attention_pairs,
    available_models,
    build_model,
    default_normalization,
    model_info,
    resolve_input,
    resolve_normalization,
)
from fer_utils.models.resnet50 import build_resnet50
from fer_utils.models.vgg19 import build_vgg19

__all__ = [
    "ATTENTION_CHOICES", "HEAD_CHOICES", "IMAGENET_NORMALIZATION", "MODEL_REGISTRY", "SPATIAL_ATTENTION_SUFFIX",
    "ChannelPool", "ModelInput", "ModelSpec", "attention_map_layers", "attention_pairs", "available_models",
    "build_cnn", "build_inception_v3", "build_model", "build_msca_resnet", "build_resnet50", "build_vgg19",
    "cbam_block", "cbam_param_count", "default_normalization", "model_info", "model_precision", "multiply_adds",
    "resolve_input", "resolve_normalization", "se_block", "se_param_count",
]
