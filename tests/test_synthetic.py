"""Tests for fer_utils.synthetic: determinism, shapes, counts, separability, validation."""

import numpy as np
import pytest

from fer_utils.data.synthetic import (
    FER2013_CLASSES,
    class_geometry,
    draw_face,
    make_synthetic_faces,
)


def _features(images: np.ndarray, block: int = 4) -> np.ndarray:
    """Block-average to (48/block)^2 pixels and standardise each image.

    Per-image standardisation removes global brightness/contrast, which a
    linear model would otherwise have to learn to ignore.
    """
    n, h, w = images.shape
    x = images.astype(np.float32).reshape(n, h // block, block, w // block, block).mean((2, 4))
    x = x.reshape(n, -1)
    return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)


@pytest.fixture(scope="module")
def train_test():
    """Shared train/test sets from different seeds (generated once: ~1.5 s)."""
    return make_synthetic_faces(120, seed=0), make_synthetic_faces(60, seed=1)


def test_classes_in_fer2013_order():
    assert FER2013_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_deterministic_and_seed_dependent():
    a_x, a_y = make_synthetic_faces(3, seed=7)
    b_x, b_y = make_synthetic_faces(3, seed=7)
    assert a_x.tobytes() == b_x.tobytes()
    assert np.array_equal(a_y, b_y)
    c_x, _ = make_synthetic_faces(3, seed=8)
    assert a_x.tobytes() != c_x.tobytes()


def test_faces_do_not_depend_on_other_class_counts():
    # Face i of class c comes from its own child RNG, so asking for more
    # faces of other classes must not change it.
    x1, y1 = make_synthetic_faces([2, 0, 0, 0, 0, 0, 0], seed=3)
    x2, y2 = make_synthetic_faces([2, 1, 1, 1, 1, 1, 1], seed=3)
    angry1 = {x.tobytes() for x in x1[y1 == 0]}
    angry2 = {x.tobytes() for x in x2[y2 == 0]}
    assert angry1 == angry2


def test_shapes_dtypes_and_label_range():
    x, y = make_synthetic_faces(4, size=32, seed=1)
    assert x.shape == (28, 32, 32) and x.dtype == np.uint8
    assert y.shape == (28,) and y.dtype == np.int64
    assert y.min() >= 0 and y.max() <= 6


def test_class_counts_int_and_sequence():
    _, y = make_synthetic_faces(5, seed=0)
    assert np.bincount(y, minlength=7).tolist() == [5] * 7
    counts = [3, 0, 2, 5, 1, 4, 6]
    _, y = make_synthetic_faces(counts, seed=0)
    assert np.bincount(y, minlength=7).tolist() == counts
    _, y = make_synthetic_faces(np.array(counts), seed=0)
    assert np.bincount(y, minlength=7).tolist() == counts


def test_rows_are_shuffled():
    _, y = make_synthetic_faces(10, seed=0)
    assert not np.array_equal(y, np.sort(y))


def test_empty_request():
    x, y = make_synthetic_faces(0)
    assert x.shape == (0, 48, 48) and y.shape == (0,)


def test_images_not_degenerate():
    x, _ = make_synthetic_faces(6, seed=2)
    per_image_std = x.reshape(len(x), -1).std(axis=1)
    assert per_image_std.min() > 10.0
    flat = x.reshape(len(x), -1).astype(np.int16)
    # No two faces are identical and they differ substantially on average.
    assert len({row.tobytes() for row in x}) == len(x)
    assert np.abs(flat[1:] - flat[:-1]).mean() > 10.0


def test_draw_face_defaults_and_noise():
    clean = draw_face(class_geometry(6))
    assert clean.shape == (48, 48) and clean.dtype == np.uint8
    # Without an rng the rendering is a pure function of the parameters.
    assert np.array_equal(clean, draw_face(class_geometry(6)))
    params = dict(class_geometry(6), noise_sigma=5.0)
    noisy = draw_face(params, rng=np.random.default_rng(0))
    assert not np.array_equal(clean, noisy)


def test_class_prototypes_differ():
    protos = [draw_face(class_geometry(c)).astype(np.int16) for c in range(7)]
    for i in range(7):
        for j in range(i + 1, 7):
            assert np.abs(protos[i] - protos[j]).sum() > 0, (i, j)


def test_class_geometry_semantics():
    g = [class_geometry(c) for c in range(7)]
    angry, disgust, fear, happy, sad, surprise, neutral = g
    assert happy["mouth_curve"] > neutral["mouth_curve"] > sad["mouth_curve"]
    assert angry["brow_angle"] < 0 and sad["brow_angle"] > 0 and fear["brow_angle"] > 0
    assert surprise["eye_open"] > neutral["eye_open"] > angry["eye_open"]
    assert surprise["mouth_open"] > fear["mouth_open"] > neutral["mouth_open"]
    assert disgust["mouth_asym"] > 0
    # A returned dict is a copy: mutating it must not leak into later calls.
    g[0]["mouth_curve"] = 99.0
    assert class_geometry(0)["mouth_curve"] != 99.0


def test_linear_separability_is_high_but_not_trivial(train_test):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (x_tr, y_tr), (x_te, y_te) = train_test
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=1000))
    clf.fit(_features(x_tr), y_tr)
    acc = clf.score(_features(x_te), y_te)
    # Chance is 1/7 ~ 0.14; measured ~0.78. The upper bound guards the
    # intended mild difficulty (classes overlap a little).
    assert 0.6 < acc < 0.97, acc


def test_zero_jitter_gives_class_prototypes():
    x, y = make_synthetic_faces(2, seed=0, jitter=0.0)
    for c in range(7):
        faces = x[y == c]
        assert np.array_equal(faces[0], faces[1])
        assert np.array_equal(faces[0], draw_face(class_geometry(c)))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_per_class": -1}, "n_per_class"),
        ({"n_per_class": [1, 2, 3]}, "n_per_class"),
        ({"n_per_class": [1, 1, 1, 1, 1, 1, -1]}, "n_per_class"),
        ({"n_per_class": 2.5}, "n_per_class"),
        ({"n_per_class": "7"}, "n_per_class"),
        ({"n_per_class": 1, "size": 16}, "size"),
        ({"n_per_class": 1, "size": 48.0}, "size"),
        ({"n_per_class": 1, "seed": -1}, "seed"),
        ({"n_per_class": 1, "jitter": -0.5}, "jitter"),
        ({"n_per_class": 1, "jitter": float("nan")}, "jitter"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_synthetic_faces(**kwargs)


def test_bad_label_and_draw_size_raise():
    with pytest.raises(ValueError, match="label"):
        class_geometry(7)
    with pytest.raises(ValueError, match="size"):
        draw_face(class_geometry(0), size=20)
