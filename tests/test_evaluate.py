"""Tests for fer_utils.evaluate (metrics, TTA, maps) and the predictions file of fer_utils.runs."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from fer_utils import evaluate, runs  # noqa: E402


# --------------------------------------------------------------------------- #
# Metrics and prediction files
# --------------------------------------------------------------------------- #


def test_compute_metrics_hand_made_example():
    names = ["angry", "happy", "sad"]
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 2, 2]
    m = evaluate.compute_metrics(y_true, y_pred, names)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    for row in m["confusion_matrix_normalized"]:
        assert sum(row) == pytest.approx(1.0)
    assert m["confusion_matrix_normalized"][1] == pytest.approx([0, 2 / 3, 1 / 3])
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert m["per_class"]["happy"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    json.dumps(m)  # plain Python types only

    # Probabilities and one-hot labels give the same record.
    probs = np.eye(3)[y_pred] * 0.8 + 0.1
    m2 = evaluate.compute_metrics(np.eye(3)[y_true], probs, names)
    assert m2 == m
    with pytest.raises(ValueError, match="class_names"):
        evaluate.compute_metrics(y_true, np.ones((6, 4)), names)


def test_predictions_round_trip_and_missing_file(tmp_path):
    y_true = np.array([0, 2, 1])
    y_prob = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]], "float32")
    path = runs.save_predictions(
        tmp_path, y_true, y_prob, source_ids=["a.png", "b.png", "c.png"],
        split="test", class_names=["x", "y", "z"],
    )
    assert path == tmp_path / "predictions.npz"
    d = runs.load_predictions(tmp_path)
    np.testing.assert_array_equal(d["y_true"], y_true)
    np.testing.assert_array_equal(d["y_prob"], y_prob)
    np.testing.assert_array_equal(d["y_pred"], [0, 2, 0])
    assert list(d["source_ids"]) == ["a.png", "b.png", "c.png"]
    assert (d["split"] == "test").all() and len(d["split"]) == len(d["y_true"])
    assert d["class_names"] == ["x", "y", "z"]

    minimal = runs.load_predictions(runs.save_predictions(tmp_path / "m.npz", y_true, y_prob))
    assert minimal["source_ids"] is None and minimal["split"] is None

    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=str(missing / "predictions.npz")):
        runs.load_predictions(missing)


# --------------------------------------------------------------------------- #
# Test-time augmentation
# --------------------------------------------------------------------------- #


def asymmetric_model():
    """Flatten -> Dense: the output depends on where pixels are (not mirror-invariant)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def symmetric_model():
    """Global average pooling first: exactly invariant to horizontal mirroring."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_flip_tta_averages_image_and_mirror():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(5, 8, 8, 1)).astype("float32")
    model = asymmetric_model()
    p = model.predict(x, verbose=0)
    p_mirror = model.predict(x[:, :, ::-1, :], verbose=0)
    assert not np.allclose(p, p_mirror, atol=1e-4)  # the check below is meaningful
    tta = evaluate.predict_proba(model, x, tta="flip", batch_size=2)
    assert tta.dtype == np.float32 and tta.shape == (5, 3)
    np.testing.assert_allclose(tta, (p + p_mirror) / 2, atol=1e-6)

    sym = symmetric_model()
    np.testing.assert_allclose(
        evaluate.predict_proba(sym, x, tta="flip"), evaluate.predict_proba(sym, x), atol=1e-6
    )


def test_plain_prediction_from_dataset_matches_array():
    x = np.random.default_rng(1).uniform(size=(6, 8, 8, 1)).astype("float32")
    model = asymmetric_model()
    from_array = evaluate.predict_proba(model, x)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros((6, 3), "float32"))).batch(4)
    np.testing.assert_allclose(evaluate.predict_proba(model, ds), from_array, atol=1e-6)
    with pytest.raises(ValueError, match="'flip', 'center_flip', 'ten_crop'"):
        evaluate.predict_proba(model, x, tta="rotate")
    np.testing.assert_allclose(evaluate.predict_proba(model, x, tta="none"), from_array, atol=1e-6)


def test_one_tta_vocabulary():
    from fer_utils.evaluate.tta import TTA_NAMES, resolve_tta

    assert TTA_NAMES == ("none", "flip", "center_flip", "ten_crop")
    assert resolve_tta(None) is None and resolve_tta("none") is None  # recorded files store null for no TTA
    assert [resolve_tta(t) for t in TTA_NAMES[1:]] == list(TTA_NAMES[1:])
    assert resolve_tta("default") == "default"  # left for the predictor, which knows its model's own
    assert resolve_tta("default", recorded=None) is None and resolve_tta("default", recorded="flip") == "flip"
    with pytest.raises(ValueError, match=r"tta: 'rotate'; expected one of \['none', 'flip', 'center_flip', "
                                         r"'ten_crop'\] or 'default'"):
        resolve_tta("rotate")
    with pytest.raises(ValueError, match=r"tta: 'default'; expected one of \[.*'ten_crop'\]$"):
        resolve_tta("default", allow_default=False)
    with pytest.raises(ValueError, match="tta: 'Flip'"):
        resolve_tta("Flip")


def test_ten_crop_shape_and_rows_sum_to_one():
    x = np.random.default_rng(2).uniform(size=(3, 8, 8, 1)).astype("float32")
    views = evaluate.ten_crop_views(tf.constant(x), 0.75, (8, 8))
    assert len(views) == 10 and all(v.shape == (3, 8, 8, 1) for v in views)
    # The first corner crop is the top-left 6x6, mirrored in the next view.
    np.testing.assert_allclose(
        views[0], tf.image.resize(x[:, :6, :6, :], (8, 8)), atol=1e-6
    )
    np.testing.assert_allclose(views[1], views[0][:, :, ::-1, :], atol=1e-6)
    probs = evaluate.predict_proba(asymmetric_model(), x, tta="ten_crop", crop_fraction=0.75)
    assert probs.shape == (3, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("tta", ["none", "flip", "center_flip", "ten_crop"])
@pytest.mark.parametrize("fraction", [0.875, 0.75])
def test_numpy_views_are_the_tensorflow_views(tta, fraction):
    """LiteRT runtimes get their TTA views from NumPy (no TensorFlow op per batch): the same crops, mirrors and
    bilinear enlargement as the TensorFlow views evaluation uses, on a non-square batch with two channels."""
    from fer_utils.evaluate.tta import views_numpy

    x = np.random.default_rng(5).normal(size=(4, 48, 40, 2)).astype("float32")
    if tta == "none":
        expected = [x]
    elif tta == "flip":
        expected = [x, x[:, :, ::-1]]
    else:
        views = evaluate.tta.center_flip_views if tta == "center_flip" else evaluate.ten_crop_views
        expected = [v.numpy() for v in views(tf.constant(x), fraction, (48, 40))]
    got = views_numpy(x, tta, fraction, (48, 40))
    assert len(got) == len(expected) and all(g.dtype == np.float32 and g.flags.c_contiguous for g in got)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-5)
    with pytest.raises(ValueError, match="crop_fraction=1.5"):
        views_numpy(x, "center_flip", 1.5, (48, 40))
    with pytest.raises(ValueError, match="tta: 'mirror'"):
        views_numpy(x, "mirror", fraction, (48, 40))


def test_numpy_predictions_match_predict_proba_for_a_model_that_takes_arrays():
    from fer_utils.evaluate.tta import predict_proba_numpy

    x = np.random.default_rng(6).uniform(size=(7, 8, 8, 1)).astype("float32")
    model = asymmetric_model()
    for tta in ("none", "flip", "ten_crop"):
        np.testing.assert_allclose(predict_proba_numpy(model, x, batch_size=3, tta=tta, crop_fraction=0.75),
                                   evaluate.predict_proba(model, x, batch_size=3, tta=tta, crop_fraction=0.75),
                                   atol=1e-5, err_msg=tta)
    with pytest.raises(ValueError, match=r"Invalid images shape \(0, 8, 8, 1\)"):
        predict_proba_numpy(model, x[:0])


# --------------------------------------------------------------------------- #
# Grad-CAM and attention maps
# --------------------------------------------------------------------------- #


def tiny_conv_model(with_attention=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(x)
    if with_attention:
        att = keras.layers.Conv2D(
            1, 7, padding="same", activation="sigmoid", name="blk_spatial_attention"
        )(x)
        x = keras.layers.Multiply(name="blk_apply")([x, att])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs)


def structured_images(n=4):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.05, size=(n, 16, 16, 1)).astype("float32")
    x[:, 2:7, 3:9] += 1.0  # a bright patch so the maps have structure
    return x


def test_grad_cam_shape_range_and_structure():
    model = tiny_conv_model()
    x = structured_images()
    assert evaluate.default_grad_cam_layer(model) == "conv2"
    cams = evaluate.grad_cam(model, x)
    assert cams.shape == (4, 16, 16) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    assert np.ptp(cams.reshape(4, -1), axis=1).max() > 0.1  # not all-constant
    fixed = evaluate.grad_cam(model, x, class_index=2, layer_name="conv1")
    assert fixed.shape == (4, 16, 16)
    with pytest.raises(ValueError, match="nope"):
        evaluate.grad_cam(model, x, layer_name="nope")


def test_attention_maps():
    x = structured_images(3)
    with pytest.raises(ValueError, match="no CBAM spatial attention"):
        evaluate.attention_maps(tiny_conv_model(), x)

    model = tiny_conv_model(with_attention=True)
    maps = evaluate.attention_maps(model, x)
    assert list(maps) == ["blk_spatial_attention"]
    m = maps["blk_spatial_attention"]
    assert m.shape == (3, 16, 16)  # 8x8 map upsampled to the input size
    assert m.min() >= 0.0 and m.max() <= 1.0
    # Grad-CAM's default layer skips the attention map itself.
    assert evaluate.default_grad_cam_layer(model) == "blk_apply"
    assert evaluate.grad_cam(model, x).shape == (3, 16, 16)


def test_overlay():
    img = np.full((16, 16), 128, np.uint8)
    heat = np.zeros((8, 8), "float32")
    heat[:4, :4] = 1.0
    out = evaluate.overlay(img, heat, alpha=0.5)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0], out[-1, -1])  # hot vs cold corner
    np.testing.assert_array_equal(evaluate.overlay(img, heat, alpha=0.0)[..., 0], img)


def test_grad_cam_under_mixed_bfloat16():
    """Grad-CAM must differentiate through bf16 features (a cast tensor would give no gradient)."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((16, 16, 1), name="in")
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        outputs = keras.layers.Dense(3, activation="softmax", dtype="float32", name="out")(x)
        model = keras.Model(inputs, outputs)
        rng = np.random.default_rng(0)
        cam = evaluate.grad_cam(model, rng.random((2, 16, 16, 1)).astype("float32"), class_index=1)
        assert cam.shape == (2, 16, 16) and np.isfinite(cam).all()
        assert 0.0 <= cam.min() and cam.max() <= 1.0
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_center_flip_is_the_centre_crop_and_its_mirror():
    x = np.random.default_rng(4).uniform(size=(5, 8, 8, 1)).astype("float32")
    model = asymmetric_model()
    views = evaluate.ten_crop_views(tf.constant(x), 0.75, (8, 8))
    expected = (model.predict_on_batch(views[8]) + model.predict_on_batch(views[9])) / 2
    got = evaluate.predict_proba(model, x, tta="center_flip", crop_fraction=0.75)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, evaluate.predict_proba(model, x, tta="flip"), atol=1e-4)
