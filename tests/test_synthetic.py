"""Synthetic default dataset: determinism, shapes, class separability, argument checks."""

import numpy as np
import pytest

from fer_utils import synthetic


def test_deterministic_and_seed_dependent():
    a_img, a_lab = synthetic.make_synthetic_faces(4, seed=1)
    b_img, b_lab = synthetic.make_synthetic_faces(4, seed=1)
    c_img, _ = synthetic.make_synthetic_faces(4, seed=2)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def test_shapes_counts_and_labels():
    images, labels = synthetic.make_synthetic_faces([1, 2, 3, 4, 5, 6, 7], size=32, seed=0)
    assert images.shape == (28, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.bincount(labels, minlength=7).tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_images_are_not_degenerate():
    images, _ = synthetic.make_synthetic_faces(3, seed=0)
    flat = images.reshape(len(images), -1).astype(float)
    assert (flat.std(axis=1) > 10).all()
    assert len({im.tobytes() for im in images}) == len(images)


def test_classes_are_separable_but_not_trivial():
    """A linear model on pixels learns the classes far above chance (1/7) on unseen faces."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def features(images):
        # 24x24 average-pooled pixels: enough for mouth/brow/eye geometry, cheap to fit.
        x = images.astype(np.float32).reshape(len(images), 24, 2, 24, 2).mean(axis=(2, 4))
        return x.reshape(len(images), -1)

    x_tr, y_tr = synthetic.make_synthetic_faces(80, seed=10)
    x_te, y_te = synthetic.make_synthetic_faces(30, seed=11)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.05))
    clf.fit(features(x_tr), y_tr)
    acc = clf.score(features(x_te), y_te)
    assert acc > 0.5, acc
    assert acc < 0.999, "a linear model should not solve the synthetic set perfectly"


def test_class_geometry_differs_where_expressions_do():
    happy, sad = synthetic.class_geometry(3), synthetic.class_geometry(4)
    assert happy["mouth_curve"] > 0 > sad["mouth_curve"]
    assert synthetic.class_geometry(5)["eye_open"] > synthetic.class_geometry(6)["eye_open"]


@pytest.mark.parametrize("kwargs, message", [
    ({"n_per_class": -1}, "n_per_class"),
    ({"n_per_class": [1, 2, 3]}, "n_per_class"),
    ({"n_per_class": 2, "size": 16}, "size"),
    ({"n_per_class": 2, "seed": -3}, "seed"),
    ({"n_per_class": 2, "jitter": float("nan")}, "jitter"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic.make_synthetic_faces(**kwargs)
