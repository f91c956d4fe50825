"""tf.data input pipeline: sizes, channels, normalisation, augmentation, labels."""

import numpy as np
import pytest

from fer_utils import pipeline


def _images(n=10, h=48, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


def test_resize_channels_and_one_hot():
    x = _images(10)
    ds = pipeline.make_dataset(x, np.arange(10) % 7, 7, input_size=(64, 64), channels=3, batch_size=4)
    xb, yb = pipeline.as_arrays(ds)
    assert xb.shape == (10, 64, 64, 3) and xb.dtype == np.float32
    assert np.array_equal(xb[..., 0], xb[..., 2])
    assert yb.shape == (10, 7) and np.array_equal(yb.argmax(1), np.arange(10) % 7)
    assert 0.0 <= xb.min() and xb.max() <= 1.0


def test_aspect_ratio_is_preserved_by_padding():
    x = np.full((2, 24, 48), 200, np.uint8)  # wide images
    xb = pipeline.as_arrays(pipeline.make_dataset(x, input_size=48, batch_size=2))
    assert xb.shape == (2, 48, 48, 1)
    assert np.allclose(xb[:, :10], 0) and np.allclose(xb[:, 20:28], 200 / 255, atol=1e-3)


@pytest.mark.parametrize("norm, check", [
    ("unit", lambda x: 0 <= x.min() and x.max() <= 1),
    ("symmetric", lambda x: -1 <= x.min() and x.max() <= 1 and x.min() < 0),
    ("per_image", lambda x: np.allclose(x.reshape(len(x), -1).mean(1), 0, atol=1e-3)),
])
def test_normalizations(norm, check):
    xb = pipeline.as_arrays(pipeline.make_dataset(_images(6), normalization=norm, batch_size=3))
    assert check(xb)


def test_standardize_needs_training_stats():
    x = _images(8)
    with pytest.raises(ValueError, match="needs mean= and std="):
        pipeline.make_dataset(x, normalization="standardize")
    mean, std = pipeline.normalization_stats(x)
    xb = pipeline.as_arrays(pipeline.make_dataset(x, normalization="standardize", mean=mean, std=std, batch_size=8))
    assert abs(xb.mean()) < 1e-3 and abs(xb.std() - 1) < 1e-2


def test_augmentation_changes_images_and_is_validated():
    x = _images(8)
    plain = pipeline.as_arrays(pipeline.make_dataset(x, batch_size=8))
    aug = pipeline.as_arrays(pipeline.make_dataset(x, batch_size=8, augment={"flip": True, "shift": 0.1,
                                                                           "rotation_deg": 10, "zoom": 0.1}, seed=1))
    assert aug.shape == plain.shape and not np.allclose(aug, plain)
    with pytest.raises(ValueError, match="augment key 'rotate' is unknown"):
        pipeline.make_dataset(x, augment={"rotate": 10})
    with pytest.raises(ValueError, match=r"augment\['zoom'\]=-1"):
        pipeline.make_dataset(x, augment={"zoom": -1})


def test_soft_labels_and_bad_images():
    soft = np.full((4, 3), 1 / 3, np.float32)
    _, yb = pipeline.as_arrays(pipeline.make_dataset(_images(4), np.zeros(4, int), 3, soft_labels=soft))
    assert np.allclose(yb, 1 / 3)
    with pytest.raises(ValueError, match="uint8"):
        pipeline.make_dataset(np.zeros((2, 4, 4), np.float32))


@pytest.mark.parametrize("normalization", ["unit", "symmetric", "standardize", "per_image", "imagenet_caffe"])
@pytest.mark.parametrize("channels", [1, 3])
def test_numpy_preprocessing_is_the_evaluation_pipeline(normalization, channels):
    """What LiteRT runtimes are fed (``preprocess_numpy``) is what ``make_dataset`` gives evaluation, for faces at
    the model's input size; a flat image (std 0) is divided by TensorFlow's floor 1/sqrt(pixels), not by zero."""
    from fer_utils import pipeline

    faces = np.random.default_rng(3).integers(0, 256, size=(5, 12, 12), dtype=np.uint8)
    faces[2] = 77
    kw = dict(normalization=normalization, mean=120.0, std=60.0, channels=channels)
    expected = pipeline.as_arrays(pipeline.make_dataset(faces, input_size=(12, 12), batch_size=4, cache=False, **kw))
    got = pipeline.preprocess_numpy(faces, **kw)
    assert got.dtype == np.float32 and got.shape == (5, 12, 12, channels)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.isfinite(got).all()
    with pytest.raises(ValueError, match=r"images must be uint8 \[N,H,W\], got float32"):
        pipeline.preprocess_numpy(faces.astype(np.float32), **kw)
