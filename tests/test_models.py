"""Tests for fer_utils.models: registry, builders, attention blocks, weights."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import re

import keras
import numpy as np
import pytest

from fer_utils import models as M

NUM_CLASSES = 3

# Keras' automatic layer names: a layer built without name= gets one of these.
AUTO_NAME = re.compile(
    r"^(conv2d|dense|batch_normalization|activation|multiply|add|max_pooling2d|"
    r"average_pooling2d|global_average_pooling2d|global_max_pooling2d|dropout|"
    r"flatten|concatenate|zero_padding2d|input_layer|channel_pool|reshape|global_average_pooling1d|"
    r"global_max_pooling1d)(_\d+)?$"
)


def small_shape(name):
    info = M.model_info(name)
    size = {"cnn": 48, "msca_resnet": 48, "vgg19": 32, "resnet50": 32, "inception_v3": 75}
    return (size[info["family"]],) * 2 + (info["channels"],)


def batch(shape, n=2, seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


_CACHE = {}


def registry_model(name):
    """Each registry model is built once per test session (building is slow)."""
    if name not in _CACHE:
        _CACHE[name] = M.build_model(name, small_shape(name), NUM_CLASSES)
    return _CACHE[name]


def count(model, cls):
    return sum(type(layer) is cls for layer in model.layers)


# --------------------------------------------------------------------------- registry


def test_registry_has_required_names():
    required = {
        f"{base}{suffix}"
        for base in ("cnn", "vgg19", "resnet50", "inception_v3")
        for suffix in ("", "_se", "_cbam")
    } | {"msca_resnet", "msca_resnet_no_se", "msca_resnet_no_bn", "msca_resnet_plain"}
    assert required <= set(M.available_models())
    assert set(M.available_models()) == set(M.MODEL_REGISTRY)


@pytest.mark.parametrize("name", M.available_models())
def test_registry_model_builds_and_outputs_probabilities(name):
    model = registry_model(name)
    shape = small_shape(name)
    assert model.name == name
    probs = keras.ops.convert_to_numpy(model(batch(shape), training=False))
    assert probs.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


@pytest.mark.parametrize("name", M.available_models())
def test_layer_names_explicit_and_unique(name):
    names = [layer.name for layer in registry_model(name).layers]
    assert len(names) == len(set(names))
    auto = [n for n in names if AUTO_NAME.match(n)]
    assert auto == [], f"auto-generated layer names: {auto}"


@pytest.mark.parametrize("name", M.available_models())
def test_model_info_fields(name):
    info = M.model_info(name)
    assert {"family", "attention", "min_input_size", "channels", "study"} <= set(info)
    assert info["channels"] == (1 if info["family"] in ("cnn", "msca_resnet") else 3)
    if info["family"] in ("vgg19", "resnet50", "inception_v3"):
        assert info["defaults"]["head"] == "gap"


def test_registry_pairs_and_ablation_flags_match_the_built_models():
    """Plain-vs-attention pairs and Study C's SE x BN flags come from the registry, and match the layers."""
    for name in M.available_models():
        info = M.model_info(name)
        if info["baseline"] is not None:
            base = M.model_info(info["baseline"])
            assert base["attention"] is None and base["family"] == info["family"] and info["attention"], name
        if info["ablation"] is not None:
            layers = registry_model(name).layers
            assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers) == info["ablation"]["bn"]
            assert any(layer.name.endswith("_se_scale") for layer in layers) == info["ablation"]["se"]
    assert M.attention_pairs(["cnn", "cnn_se", "vgg19_cbam", "msca_resnet"]) == [("cnn_se", "cnn")]
    assert {n for n in M.available_models() if M.model_info(n)["ablation"]} == {
        "msca_resnet", "msca_resnet_no_se", "msca_resnet_no_bn", "msca_resnet_plain"}


def test_registry_owns_default_normalization():
    assert M.default_normalization("cnn") == "unit"
    assert M.default_normalization("msca_resnet_no_bn") == "per_image"
    # ImageNet weights get the preprocessing Keras trained them with.
    assert M.default_normalization("vgg19_cbam", "imagenet") == "imagenet_caffe"
    assert M.default_normalization("resnet50", "imagenet") == "imagenet_caffe"
    assert M.default_normalization("inception_v3", "imagenet") == "symmetric"
    assert M.default_normalization("resnet50", None) == "unit"
    assert M.resolve_normalization("cnn", "standardize") == "standardize"
    with pytest.raises(ValueError, match="normalization='z': expected 'auto' or one of"):
        M.resolve_normalization("cnn", "z")


def test_resolve_input_is_the_one_rule_for_size_channels_and_normalization():
    assert M.resolve_input("cnn", 48) == (48, 1, "unit", "")
    assert M.resolve_input("cnn", 48, "standardize").normalization == "standardize"
    side, channels, norm, note = M.resolve_input("inception_v3", 48, weights="imagenet")
    assert (side, channels, norm) == (75, 3, "symmetric") and note == "size 48 raised to min_input_size 75"
    assert M.resolve_input("msca_resnet", 96).normalization == "per_image"
    with pytest.raises(ValueError, match="normalization='z'"):
        M.resolve_input("cnn", 48, "z")
    with pytest.raises(ValueError, match="Unknown model 'cnn2'"):
        M.resolve_input("cnn2", 48)


def test_registry_attention_metadata_matches_models():
    for name in M.available_models():
        info = M.model_info(name)
        names = [layer.name for layer in registry_model(name).layers]
        has_se = any(n.endswith("_se_scale") for n in names)
        has_cbam = any(n.endswith("_spatial_attention") for n in names)
        assert has_se == (info["attention"] == "se"), name
        assert has_cbam == (info["attention"] == "cbam"), name


def test_build_model_overrides_and_defaults():
    model = M.build_model("cnn_se", (48, 48, 1), 4, dropout=0.0, dense_units=32)
    assert not any(isinstance(layer, keras.layers.Dropout) and layer.name.startswith("block")
                   for layer in model.layers)
    assert model.get_layer("fc1").units == 32
    assert model.output_shape == (None, 4)
    default = M.build_model("msca_resnet")
    assert default.input_shape == (None, 48, 48, 1)
    assert default.output_shape == (None, 8)


# --------------------------------------------------------------------------- errors


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError) as err:
        M.build_model("not_a_model", (48, 48, 1), 7)
    for known in M.available_models():
        assert known in str(err.value)
    with pytest.raises(ValueError, match="msca_resnet_plain"):
        M.model_info("nope")


@pytest.mark.parametrize("builder", [M.build_vgg19, M.build_resnet50, M.build_cnn])
def test_bad_attention_rejected(builder):
    shape = (48, 48, 1) if builder is M.build_cnn else (32, 32, 3)
    with pytest.raises(ValueError, match="attention"):
        builder(input_shape=shape, attention="foo")


def test_bad_head_rejected():
    with pytest.raises(ValueError, match="head"):
        M.build_resnet50(input_shape=(32, 32, 3), head="mlp")


@pytest.mark.parametrize(
    "builder, shape, minimum",
    [
        (M.build_vgg19, (31, 31, 3), 32),
        (M.build_resnet50, (32, 20, 3), 32),
        (M.build_inception_v3, (74, 74, 3), 75),
        (M.build_cnn, (8, 8, 1), 16),
    ],
)
def test_too_small_input_rejected(builder, shape, minimum):
    with pytest.raises(ValueError, match=str(minimum)):
        builder(input_shape=shape)


def test_too_small_input_via_registry():
    with pytest.raises(ValueError, match="75"):
        M.build_model("inception_v3_se", (48, 48, 3), 7)


@pytest.mark.parametrize("builder", [M.build_vgg19, M.build_resnet50, M.build_inception_v3])
def test_imagenet_with_grey_input_rejected(builder):
    with pytest.raises(ValueError, match="3-channel"):
        builder(input_shape=(96, 96, 1), weights="imagenet")


def test_missing_weights_file():
    with pytest.raises(FileNotFoundError, match="/nonexistent.keras"):
        M.build_vgg19(input_shape=(32, 32, 3), weights="/nonexistent.keras")


@pytest.mark.parametrize(
    "builder, app, shape",
    [
        (M.build_vgg19, "VGG19", (32, 32, 3)),
        (M.build_resnet50, "ResNet50", (32, 32, 3)),
        (M.build_inception_v3, "InceptionV3", (75, 75, 3)),
    ],
)
def test_imagenet_offline_raises_runtime_error(monkeypatch, builder, app, shape):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/: None")

    monkeypatch.setattr(keras.applications, app, offline)
    with pytest.raises(RuntimeError) as err:
        builder(input_shape=shape, weights="imagenet")
    message = str(err.value)
    assert "internet" in message
    assert "weights='/path/to/" in message
    assert "URL fetch failure" in message


# --------------------------------------------------------------------------- keras.applications parity


@pytest.mark.parametrize(
    "builder, app, size",
    [
        (M.build_vgg19, "VGG19", 224),
        (M.build_resnet50, "ResNet50", 224),
        (M.build_inception_v3, "InceptionV3", 299),
    ],
)
def test_plain_backbones_match_keras_applications(builder, app, size):
    ours = builder(input_shape=(size, size, 3), num_classes=1000, head="imagenet")
    ref = getattr(keras.applications, app)(weights=None)
    assert ours.count_params() == ref.count_params()

    def shapes(model):
        return sorted(tuple(w.shape) for w in model.weights)

    assert shapes(ours) == shapes(ref)
    ref_names = {layer.name for layer in ref.layers if not isinstance(layer, keras.layers.InputLayer)}
    our_names = {layer.name for layer in ours.layers if not isinstance(layer, keras.layers.InputLayer)}
    if app == "InceptionV3":
        # keras.applications auto-names its conv units; its named layers match.
        named = {n for n in ref_names if not AUTO_NAME.match(n)}
        assert named == {f"mixed{i}" for i in range(11)} | {"mixed9_0", "mixed9_1", "avg_pool", "predictions"}
        assert named <= our_names
        assert len(our_names) == len(ref_names)
    else:
        assert our_names == ref_names
    del ours, ref


# --------------------------------------------------------------------------- attention blocks


@pytest.mark.parametrize("channels, reduction", [(32, 4), (48, 16), (3, 16)])
def test_se_param_count_closed_form(channels, reduction):
    inputs = keras.Input((6, 6, channels))
    model = keras.Model(inputs, M.se_block(inputs, reduction=reduction, name="t_se"))
    hidden = max(1, channels // reduction)
    expected = channels * hidden + hidden + hidden * channels + channels
    assert model.count_params() == expected
    assert M.se_param_count(channels, reduction) == expected


@pytest.mark.parametrize("channels, reduction, k", [(32, 4, 7), (64, 16, 3), (3, 16, 5)])
def test_cbam_param_count_closed_form(channels, reduction, k):
    inputs = keras.Input((6, 6, channels))
    model = keras.Model(
        inputs, M.cbam_block(inputs, reduction=reduction, kernel_size=k, name="t_cbam")
    )
    hidden = max(1, channels // reduction)
    expected = channels * hidden + hidden + hidden * channels + channels + 2 * k * k + 1
    assert model.count_params() == expected
    assert M.cbam_param_count(channels, reduction, k) == expected


def test_cbam_matches_numpy_reference():
    """Checks the math, including the (H,W,1) and (1,1,C) broadcasts."""
    rng = np.random.default_rng(1)
    inputs = keras.Input((5, 4, 6))
    model = keras.Model(inputs, M.cbam_block(inputs, reduction=2, kernel_size=3, name="c"))
    for layer in model.layers:
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    x = rng.normal(size=(2, 5, 4, 6)).astype("float32")
    got = keras.ops.convert_to_numpy(model(x))

    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    w1, b1 = model.get_layer("c_mlp_1").get_weights()
    w2, b2 = model.get_layer("c_mlp_2").get_weights()
    mlp = lambda d: np.maximum(d @ w1 + b1, 0) @ w2 + b2  # noqa: E731
    channel = sig(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
    y = x * channel[:, None, None, :]
    pooled = np.stack([y.mean(-1), y.max(-1)], axis=-1)
    kernel, bias = model.get_layer("c_spatial_attention").get_weights()
    padded = np.pad(pooled, ((0, 0), (1, 1), (1, 1), (0, 0)))
    spatial = np.zeros((2, 5, 4))
    for i in range(5):
        for j in range(4):
            spatial[:, i, j] = np.einsum("bhwc,hwc->b", padded[:, i:i + 3, j:j + 3], kernel[..., 0])
    expected = y * sig(spatial + bias[0])[..., None]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name, blocks", [("cnn_cbam", 4), ("vgg19_cbam", 5), ("resnet50_cbam", 16), ("inception_v3_cbam", 11)]
)
def test_attention_map_layers_one_per_cbam_block(name, blocks):
    model = registry_model(name)
    found = M.attention_map_layers(model)
    assert len(found) == blocks
    assert len(set(found)) == blocks
    for layer_name in found:
        layer = model.get_layer(layer_name)
        assert layer.output.shape[-1] == 1
        assert layer.activation is keras.activations.sigmoid
    assert M.attention_map_layers(registry_model(name.replace("_cbam", "_se"))) == []


def test_mixed_precision_keeps_float32_outputs():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = M.build_cnn(input_shape=(16, 16, 1), num_classes=3, attention="cbam", filters=(8, 16, 16, 16))
        out = model(batch((16, 16, 1)), training=False)
        spatial = model.get_layer(M.attention_map_layers(model)[0])
        pool = model.get_layer("block1_cbam_channel_pool")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert pool.compute_dtype == "bfloat16"
    assert spatial.compute_dtype == "bfloat16"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out).sum(axis=1), 1.0, atol=1e-3)


def test_kernel_regularizer_on_every_kernel():
    model = M.build_cnn(
        input_shape=(16, 16, 1),
        attention="cbam",
        filters=(8, 8, 8, 8),
        dense_units=8,
        kernel_regularizer=keras.regularizers.L2(1e-3),
    )
    kernels = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(kernels) == 8 + 4 * 3 + 2  # convs, 4 CBAMs x (2 Dense + 1 Conv), fc1 + predictions
    assert all(layer.kernel_regularizer is not None for layer in kernels)
    assert len(model.losses) == len(kernels)


# --------------------------------------------------------------------------- Study B / C


def test_cnn_default_parameter_count_and_structure():
    model = M.build_cnn()
    assert model.count_params() == 5_874_631
    assert model.output_shape == (None, 7)
    assert count(model, keras.layers.Conv2D) == 8
    assert count(model, keras.layers.BatchNormalization) == 9
    assert count(model, keras.layers.MaxPooling2D) == 4


def test_msca_default_parameter_count():
    assert M.build_msca_resnet().count_params() == 1_257_600


@pytest.mark.parametrize(
    "name, n_bn, n_se",
    [
        # stem + 3 blocks x (4 branches + fuse) + 2 projection shortcuts
        ("msca_resnet", 1 + 15 + 2, 1 + 15),
        ("msca_resnet_no_se", 18, 0),
        ("msca_resnet_no_bn", 0, 16),
        ("msca_resnet_plain", 0, 0),
    ],
)
def test_msca_ablation_switches(name, n_bn, n_se):
    model = registry_model(name)
    assert count(model, keras.layers.BatchNormalization) == n_bn
    se_layers = [layer.name for layer in model.layers if layer.name.endswith("_se_scale")]
    assert len(se_layers) == n_se
    assert count(model, keras.layers.Multiply) == n_se
    # The multi-scale structure stays: 3 x (1x1, 3x3, 5x5, pool-1x1, fuse) + stem + 2 shortcuts.
    assert count(model, keras.layers.Conv2D) == 1 + 15 + 2
    assert model.get_layer("block1_b5x5_conv").kernel_size == (5, 5)


def test_msca_separable_fuse_cuts_the_fusion_multiply_adds_and_round_trips(tmp_path):
    """``fuse="separable"`` (issue 24: a classifier about half as costly for AVX2-only CPUs) replaces exactly the
    three 3x3 fusion convolutions: 63.7M multiply-adds by hand (24*24*64*64*9 = 12*12*128*128*9 = 6*6*256*256*9 =
    21,233,664 each) become 7.66M (h*w*(9*c + c*c) per block); everything else, BN and SE included, stays."""
    default = M.build_model("msca_resnet", (48, 48, 1), 7)
    separable = M.build_model("msca_resnet", (48, 48, 1), 7, fuse="separable")
    by_hand = 3 * 21_233_664 - (576 * (9 * 64 + 64 * 64) + 144 * (9 * 128 + 128 * 128) + 36 * (9 * 256 + 256 * 256))
    assert M.multiply_adds(default) - M.multiply_adds(separable) == by_hand
    assert M.multiply_adds(separable) < 0.55 * M.multiply_adds(default)
    names = {layer.name for layer in separable.layers}
    assert {f"block{i}_fuse_sepconv" for i in (1, 2, 3)} <= names and not any(n.endswith("fuse_conv") for n in names)
    assert count(separable, keras.layers.SeparableConv2D) == 3 and count(separable, keras.layers.Conv2D) == 1 + 12 + 2
    for cls in (keras.layers.BatchNormalization, keras.layers.Multiply):
        assert count(separable, cls) == count(default, cls)
    x = np.random.default_rng(0).random((2, 48, 48, 1)).astype("float32")
    separable.save(tmp_path / "sep.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "sep.keras").predict(x, verbose=0),
                               separable.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="fuse='depthwise': expected 'conv'"):
        M.build_msca_resnet(fuse="depthwise")


def test_msca_fourth_block_adds_the_multiply_adds_counted_by_hand():
    """The recipe's ``deeper`` variant (issue 24: a deeper network that still trains in the hour) is
    ``filters=(64, 128, 256, 512)``: one more block at 3x3 from 256 channels. By hand, per position (9): the four
    branches of 128 (1x1, 3x3, 5x5, pool + 1x1: 256*128*(1+9+25+1)), the 3x3 fusion 512*512*9, the 1x1 projection
    256*512; the SE layers of the four branches (2*128*16 each) and of the fusion (2*512*64); the classifier reads
    512 features instead of 256. The variant's description quotes these counts."""
    default = M.build_model("msca_resnet", (48, 48, 1), 7)
    deeper = M.build_model("msca_resnet", (48, 48, 1), 7, filters=(64, 128, 256, 512))
    convs = 9 * (256 * 128 * (1 + 9 + 25 + 1) + 512 * 512 * 9 + 256 * 512)
    se = 4 * 2 * 128 * 16 + 2 * 512 * 64
    assert M.multiply_adds(deeper) - M.multiply_adds(default) == convs + se + (512 - 256) * 7
    assert (round(M.multiply_adds(default) / 1e6), round(M.multiply_adds(deeper) / 1e6)) == (110, 143)
    assert round(deeper.count_params() / 1e6, 2) == 5.02
    assert {"block4_fuse_conv", "pool3"} <= {layer.name for layer in deeper.layers}


# --------------------------------------------------------------------------- serialization


@pytest.mark.parametrize(
    "name",
    ["cnn", "cnn_cbam", "msca_resnet", "msca_resnet_plain", "vgg19_cbam", "resnet50_se", "inception_v3_cbam"],
)
def test_save_load_round_trip(tmp_path, name):
    model = registry_model(name)
    x = batch(small_shape(name), seed=3)
    before = keras.ops.convert_to_numpy(model(x, training=False))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_array_equal(before, after)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.slow
def test_cbam_model_loads_without_importing_fer_utils(tmp_path):
    """No custom layer: plain keras.models.load_model in a fresh process reproduces the outputs."""
    import os
    import subprocess
    import sys

    model = registry_model("cnn_cbam")
    assert not any(type(layer).__module__.startswith("fer_utils") for layer in model.layers)
    x = batch(small_shape("cnn_cbam"), seed=4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", keras.ops.convert_to_numpy(model(x, training=False)))
    model.save(tmp_path / "m.keras")
    code = ("import sys, numpy as np, keras; assert 'fer_utils' not in sys.modules; "
            f"m = keras.models.load_model(r'{tmp_path / 'm.keras'}'); "
            f"np.testing.assert_array_equal(np.asarray(m(np.load(r'{tmp_path / 'x.npy'}'), training=False)), "
            f"np.load(r'{tmp_path / 'y.npy'}')); print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_models_saved_with_the_old_channel_pool_layer_still_load(tmp_path):
    inputs = keras.Input((6, 6, 4))
    outputs = M.ChannelPool(name="old_channel_pool")(inputs)
    old = keras.Model(inputs, outputs)
    old.save(tmp_path / "old.keras")
    x = batch((6, 6, 4), seed=5)
    loaded = keras.models.load_model(tmp_path / "old.keras")
    expected = np.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), expected, rtol=1e-6)


# --------------------------------------------------------------------------- weight loading


def _fake_imagenet(monkeypatch, app):
    """Replaces keras.applications.<app> by a random-init build and keeps it."""
    original = getattr(keras.applications, app)
    built = {}

    def fake(**kwargs):
        assert kwargs["weights"] == "imagenet" and kwargs["include_top"] is False
        built["ref"] = original(**{**kwargs, "weights": None})
        return built["ref"]

    monkeypatch.setattr(keras.applications, app, fake)
    return built


@pytest.mark.parametrize(
    "builder, app, shape",
    [
        (M.build_vgg19, "VGG19", (32, 32, 3)),
        (M.build_resnet50, "ResNet50", (32, 32, 3)),
        (M.build_inception_v3, "InceptionV3", (75, 75, 3)),
    ],
)
def test_imagenet_weights_copied_into_feature_extractor(monkeypatch, builder, app, shape):
    built = _fake_imagenet(monkeypatch, app)
    ours = builder(input_shape=shape, weights="imagenet", include_top=False)
    x = batch(shape, seed=5)
    # Same weights in the same places <=> identical features.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x, training=False)),
        keras.ops.convert_to_numpy(built["ref"](x, training=False)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_imagenet_weights_skip_attention_layers(monkeypatch):
    built = _fake_imagenet(monkeypatch, "ResNet50")
    ours = M.build_resnet50(input_shape=(32, 32, 3), attention="cbam", weights="imagenet", head="gap")
    ref = built["ref"]
    for layer_name in ("conv1_conv", "conv3_block2_2_conv", "conv5_block3_3_bn"):
        for a, b in zip(ours.get_layer(layer_name).get_weights(), ref.get_layer(layer_name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert len(M.attention_map_layers(ours)) == 16


def test_weights_from_keras_file_by_name(tmp_path):
    src = M.build_model("vgg19", (32, 32, 3), NUM_CLASSES)
    path = tmp_path / "plain.keras"
    src.save(path)
    ours = M.build_model("vgg19_se", (32, 32, 3), NUM_CLASSES, weights=str(path))
    for layer_name in ("block1_conv1", "block5_conv4", "predictions"):
        for a, b in zip(ours.get_layer(layer_name).get_weights(), src.get_layer(layer_name).get_weights()):
            np.testing.assert_array_equal(a, b)
    # A different classifier size is skipped (kept random) with a warning.
    with pytest.warns(UserWarning, match="predictions"):
        other = M.build_model("vgg19", (32, 32, 3), NUM_CLASSES + 2, weights=str(path))
    np.testing.assert_array_equal(
        other.get_layer("block3_conv2").get_weights()[0], src.get_layer("block3_conv2").get_weights()[0]
    )

    weights_path = tmp_path / "plain.weights.h5"
    src.save_weights(weights_path)
    same = M.build_model("vgg19", (32, 32, 3), NUM_CLASSES, weights=str(weights_path))
    x = batch((32, 32, 3), seed=7)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(same(x, training=False)),
        keras.ops.convert_to_numpy(src(x, training=False)),
    )


def test_weights_from_legacy_applications_h5(tmp_path):
    """A keras.applications .h5 file (what users download offline) loads too."""
    import h5py

    ref = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))
    path = tmp_path / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    # The legacy (Keras 2) layout keras.applications' files use: a group per layer, in model order,
    # each listing its weight datasets in "weight_names"; written with h5py, no private Keras API.
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in ref.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for layer in ref.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/w{i}:0" for i in range(len(layer.weights))]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, value in zip(names, layer.get_weights()):
                group.create_dataset(n, data=value)
    ours = M.build_inception_v3(input_shape=(75, 75, 3), weights=str(path), include_top=False)
    x = batch((75, 75, 3), seed=9)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x, training=False)),
        keras.ops.convert_to_numpy(ref(x, training=False)),
        rtol=1e-4,
        atol=1e-4,
    )
