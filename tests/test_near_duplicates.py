"""Near-duplicates (issue 21): the finder on known transformations and on different photographs, exact before near,
mirrors, families, leakage, the family-aware validation carve-out and 5x2cv halves, the cache."""

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_utils import data as D
from fer_utils import stats
from fer_utils.data import duplicates as dup
from fer_utils.data import near


def _photos(n: int, seed: int) -> np.ndarray:
    """Stand-ins for different photographs: smoothed noise at two scales (fine detail and a layout), 48x48."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        fine = cv2.GaussianBlur(rng.normal(0, 1, (64, 64)).astype(np.float32), (0, 0), 1.2)
        coarse = cv2.GaussianBlur(rng.normal(0, 1, (64, 64)).astype(np.float32), (0, 0), 6)
        x = fine / fine.std() + 2 * coarse / coarse.std()
        x = (x - x.min()) / (x.max() - x.min()) * 255
        out.append(x[8:56, 8:56].astype(np.uint8))
    return np.stack(out)


def _shift(x, dx, dy):
    return cv2.warpAffine(x, np.float32([[1, 0, dx], [0, 1, dy]]), (48, 48), borderMode=cv2.BORDER_REPLICATE)


def _crop_rescale(x, side, ox, oy):
    return cv2.resize(x[oy:oy + side, ox:ox + side], (48, 48), interpolation=cv2.INTER_LINEAR)


def _jpeg(x, quality):
    return cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)


def _gamma(x, g):
    return np.clip(255 * (x / 255.0) ** g, 0, 255).astype(np.uint8)


TRANSFORMS = {
    "shift 1 px": lambda x: _shift(x, 1, 0),
    "shift 2 px": lambda x: _shift(x, 2, -2),
    "shift 3 px": lambda x: _shift(x, -3, 1),
    "crop 44 and rescale": lambda x: _crop_rescale(x, 44, 2, 1),
    "brightness +40": lambda x: np.clip(x.astype(int) + 40, 0, 255).astype(np.uint8),
    "contrast 0.6": lambda x: np.clip(x * 0.6 + 50, 0, 255).astype(np.uint8),
    "gamma 0.6": lambda x: _gamma(x, 0.6),
    "jpeg quality 30": lambda x: _jpeg(x, 30),
}


@pytest.fixture(scope="module")
def library():
    return _photos(40, seed=1)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transformed_copies_are_found_as_near_duplicates_of_their_original(library, name):
    originals = library[:8]
    found = dup.near_duplicates(np.stack([TRANSFORMS[name](x) for x in originals]), library)
    assert found["i"].tolist() == list(range(8)), found
    assert found["j"].tolist() == list(range(8)) and set(found["kind"]) == {"near"}
    assert found["score"].between(dup.NEAR_THRESHOLD, 1 + 1e-6).all()


def test_different_photographs_never_match(library):
    others = _photos(40, seed=2)
    assert dup.near_duplicates(others, library).empty
    # one collection against itself: every image's best match other than itself is no duplicate either
    assert dup.near_duplicates(library, library).empty


def test_different_faces_never_match(real_data):
    """CK+ subjects are different people in one lab: aligned, frontal, the same backgrounds (the hardest negatives)."""
    ck = D.load_ckplus(real_data / "fixtures" / "ckplus48_tiny.npz")
    subject = ck.meta["subject"].astype(str).to_numpy()
    found = dup.near_duplicates(ck.images, ck.images)
    crossed = found[subject[found["i"]] != subject[found["j"]]]
    assert len(crossed) <= 1, crossed  # measured on all 981 CK+48 images: 1.5% of images (docs/data.md)


def test_an_exact_copy_wins_over_a_near_one_and_a_near_one_over_a_mirror(library):
    x = library[5]
    b = np.stack([_shift(x, 1, 1), np.ascontiguousarray(x[:, ::-1]), x.copy(), library[6]])
    found = dup.near_duplicates(x[None], b)
    assert found.to_dict("records") == [{"i": 0, "j": 2, "kind": "exact", "score": 1.0, "distance": 0}]
    found = dup.near_duplicates(x[None], b[[0, 1, 3]])
    assert found[["j", "kind"]].values.tolist() == [[0, "near"]]


def test_mirrors_are_found_and_named(library):
    mirrored = np.stack([np.ascontiguousarray(_shift(x, 1, 0)[:, ::-1]) for x in library[:6]])
    found = dup.near_duplicates(mirrored, library)
    assert found["j"].tolist() == list(range(6)) and set(found["kind"]) == {"mirror"}


def test_b_is_a_matches_each_image_with_another_one(library):
    a = np.concatenate([library[:10], library[3:4], _shift(library[7], 2, 0)[None]])
    found = dup.near_duplicates(a, a).set_index("i")
    assert (found.index != found["j"]).all()
    assert found.loc[3, "j"] == 10 and found.loc[10, "j"] == 3 and found.loc[3, "kind"] == "exact"
    assert found.loc[7, "j"] == 11 and found.loc[11, "j"] == 7 and found.loc[7, "kind"] == "near"
    assert sorted(found.index) == [3, 7, 10, 11]


@pytest.mark.parametrize("a, message", [
    (np.zeros((3, 48, 48), np.float32), "uint8"),
    (np.zeros((48, 48), np.uint8), r"\[N, H, W\]"),
    (np.zeros((3, 16, 16), np.uint8), "at least 24x24"),
])
def test_bad_arrays_are_refused_naming_what_was_received(a, message):
    with pytest.raises(ValueError, match=message):
        dup.near_duplicates(a, np.zeros((2, 48, 48), np.uint8))


def test_images_of_two_sizes_are_refused():
    with pytest.raises(ValueError, match="same size"):
        dup.near_duplicates(np.zeros((1, 48, 48), np.uint8), np.zeros((1, 40, 40), np.uint8))


def _dataset(images, labels, splits, **kw) -> D.FERDataset:
    return D.FERDataset(images=images, labels=np.asarray(labels), class_names=("a", "b", "c"),
                        splits=np.asarray(splits, dtype=object),
                        source_ids=np.array([f"row{i}" for i in range(len(images))]), name="t", **kw)


@pytest.fixture(scope="module")
def chained(library):
    """Rows 0-2: one photograph (an exact copy and a re-crop) labelled a, a, b; row 3 mirrors row 4; 5-19 apart."""
    x = library[0]
    images = np.concatenate([np.stack([x, x.copy(), _crop_rescale(x, 44, 2, 2),
                                       np.ascontiguousarray(library[1][:, ::-1]), library[1]]), library[2:17]])
    labels = [0, 0, 1, 2, 2] + [k % 3 for k in range(15)]
    splits = ["Training", "PrivateTest", "PublicTest", "PrivateTest", "Validation"] + ["Training"] * 15
    return _dataset(images, labels, splits)


def test_families_join_copies_across_splits_and_count_conflicting_labels(chained):
    fam = D.families(chained, D.dataset_pairs(chained, cache_dir=False))
    assert fam[0] == fam[1] == fam[2] and fam[3] == fam[4] and fam[0] != fam[3]
    assert len(set(fam[5:])) == 15 and not set(fam[5:]) & {fam[0], fam[3]}
    table = D.family_table(chained, fam)
    assert table["n"].tolist() == [3, 2]
    assert table["conflicting"].tolist() == [True, False] and table["majority"].tolist() == ["a", "c"]
    assert table["labels"].iloc[0] == ["a", "b"]


def test_leaked_rows_are_test_rows_whose_family_holds_a_training_or_validation_image(chained):
    leaked = D.leaked_rows(chained)
    assert np.flatnonzero(leaked).tolist() == [1, 2, 3]  # a byte copy, a re-crop, a mirror of a Validation row
    assert np.flatnonzero(D.leaked_rows(chained, "Training")).tolist() == [1, 2]
    assert np.flatnonzero(D.copies_of_training(chained)).tolist() == [1]  # the byte copies stay countable


def test_pairs_of_two_subjects_are_dropped(library):
    x = library[0]
    ds = _dataset(np.stack([x, _shift(x, 1, 0), library[1]]), [0, 0, 1], ["all"] * 3,
                  meta=pd.DataFrame({"subject": ["S1", "S2", "S3"]}))
    assert D.dataset_pairs(ds, cache_dir=False).empty
    same = ds.replace(meta=pd.DataFrame({"subject": ["S1", "S1", "S3"]}))
    assert D.dataset_pairs(same, cache_dir=False)[["i", "j"]].values.tolist() == [[0, 1]]


def _families_dataset(library, seed=0):
    """60 Training rows in 3 classes; every fourth photograph also appears re-cropped and shifted (families of 3)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(30):
        x = library[k % len(library)] if k < len(library) else _photos(1, 100 + k)[0]
        members = [x, _crop_rescale(x, 44, 1, 2), _shift(x, 2, 1)] if k % 4 == 0 else [x]
        images += members
        labels += [k % 3] * len(members)
    order = rng.permutation(len(images))
    return _dataset(np.stack(images)[order], np.array(labels)[order], ["Training"] * len(images))


def test_validation_keeps_each_family_on_one_side_stratified_and_seeded(library):
    ds = _families_dataset(library)
    fam = D.families(ds, D.dataset_pairs(ds, cache_dir=False))
    assert np.bincount(np.bincount(fam)).tolist()[1:4] == [22, 0, 8]  # 22 single photographs, 8 families of 3
    carved = D.train_val_split(ds, 0.25, seed=3, family=fam)
    val = carved.splits == "Validation"
    assert not set(fam[val]) & set(fam[~val])
    target = np.round(0.25 * np.bincount(ds.labels))
    assert (np.abs(np.bincount(carved.labels[val], minlength=3) - target) <= 2).all()
    again = D.train_val_split(ds, 0.25, seed=3, family=fam)
    assert np.array_equal(again.splits, carved.splits)
    assert not np.array_equal(D.train_val_split(ds, 0.25, seed=4, family=fam).splits, carved.splits)
    rowwise = D.train_val_split(ds, 0.25, seed=3, group=False)
    assert (rowwise.splits == "Validation").sum() == round(0.25 * len(ds))


def test_5x2cv_halves_keep_families_together(library):
    ds = _families_dataset(library)
    fam = D.families(ds, D.dataset_pairs(ds, cache_dir=False))
    halves = stats.cv5x2_splits(ds, 7, groups=fam)
    assert len(halves) == 5
    for h0, h1 in halves:
        assert not set(fam[h0]) & set(fam[h1])
        assert sorted(np.concatenate([h0, h1])) == list(range(len(ds)))
    assert not all(np.array_equal(halves[0][0], h[0]) for h in halves[1:])


def test_distinct_rows_keep_one_image_per_family(chained):
    rows = D.distinct_rows(chained, "Training")
    assert rows.tolist() == [0] + list(range(5, 20))
    both = chained.replace(splits=np.array(["Training"] * 20, dtype=object))
    assert D.distinct_rows(both, "Training").tolist() == [0, 3] + list(range(5, 20))
    assert D.distinct_rows(both, "Training", by_family=False).tolist() == [0, 2, 3, 4] + list(range(5, 20))


def test_pairs_are_cached_by_content_and_a_damaged_cache_is_recomputed(library, tmp_path, monkeypatch):
    images = np.concatenate([library[:6], _shift(library[2], 1, 1)[None]])
    first = dup.near_duplicate_pairs(images, cache_dir=tmp_path)
    files = list(tmp_path.glob("near-*.npz"))
    assert len(files) == 1 and first[["i", "j", "kind"]].values.tolist() == [[2, 6, "near"]]
    near._MEMO.clear()
    monkeypatch.setattr(near, "_near_pairs", lambda *a, **k: pytest.fail("the cache was not used"))
    pd.testing.assert_frame_equal(dup.near_duplicate_pairs(images, cache_dir=tmp_path), first)
    monkeypatch.undo()
    near._MEMO.clear()
    files[0].write_bytes(b"not an npz")
    pd.testing.assert_frame_equal(dup.near_duplicate_pairs(images, cache_dir=tmp_path), first)
    assert np.load(files[0])["i"].tolist() == [2]


@pytest.mark.slow
def test_fer2013_near_duplicates_of_training_in_the_test_splits(real_data):
    """The full dataset (cached after the first run): byte copies stay 280/288; near-duplicates roughly double them;
    validation carved by families holds no copy of a training image."""
    ds = D.load_dataset("fer2013", real_data)
    leaked = D.leaked_rows(ds, "Training")
    exact = D.copies_of_training(ds, "Training")
    for split, copies in (("PublicTest", 280), ("PrivateTest", 288)):
        in_split = ds.splits == split
        assert (exact & in_split).sum() == copies
        assert 2 * copies < (leaked & in_split).sum() < 0.3 * in_split.sum()
    carved = experiments_prepare(ds)
    assert not D.leaked_rows(carved, "Training")[carved.splits == "Validation"].any()


def experiments_prepare(ds):
    from fer_utils import experiments

    return experiments.prepare(ds, seed=42)


def test_notebook_01_tables_count_split_pairs_classes_and_conflicts(chained, tmp_path):
    from fer_utils import eda, plots

    near = eda.near_duplicates(chained)
    pairs = near["by_split_pair"].set_index(["images of", "with a duplicate in"])
    assert pairs.loc[("PrivateTest", "Training"), ["exact", "near", "mirror", "any"]].tolist() == [1, 0, 0, 1]
    assert pairs.loc[("PrivateTest", "Validation"), ["mirror", "any"]].tolist() == [1, 1]
    assert pairs.loc[("PublicTest", "Training"), ["near", "of"]].tolist() == [1, 1]
    assert near["by_class"]["copies of training (any kind)"].sum() == 3
    assert near["conflicting"].to_dict("index") == {"a": {"families": 1, "rows": 3}}
    assert set(near["pairs"]["family"]) == {near["family"][0], near["family"][3]}
    top, bottom, titles = eda.example_pairs(chained, near["pairs"])
    assert len(top) == len(bottom) == len(titles) >= 1
    plots.image_pairs(top, bottom, titles, save_to=tmp_path / "pairs.png")
    assert (tmp_path / "pairs.png").stat().st_size > 0


def test_notebook_01_tables_on_drawn_faces_without_duplicates(tmp_path):
    from fer_utils import eda, plots

    ds = D.load_synthetic(6, seed=0)
    near = eda.near_duplicates(ds)
    assert near["pairs"].empty and near["by_split_pair"].empty and near["conflicting"].empty
    assert near["by_class"]["copies of training (any kind)"].sum() == 0
    plots.bar(near["pairs"]["distance"].value_counts(), "distances", save_to=tmp_path / "d.png")
    plots.image_pairs(*eda.example_pairs(ds, near["pairs"]), save_to=tmp_path / "p.png")
    assert (tmp_path / "d.png").exists() and (tmp_path / "p.png").exists()


def test_5x2cv_folds_are_judged_by_one_search_of_the_training_split(library, tmp_path, monkeypatch):
    """Each fold holds the Training split's images in its own order; its leaks come from the one search of them
    (statistics.fold_leaks), the same rows the fold's own search finds, with families straddling the halves. Test
    rows before and among the Training rows make the Training rows' positions differ from their row numbers."""
    from fer_utils.experiments import seeds, statistics

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))  # the folds' own searches are cached here, not in ~/.cache
    train = _families_dataset(library)
    extra = _photos(6, 500)
    images = np.concatenate([extra[:3], train.images[:20], extra[3:], train.images[20:]])
    splits = ["PublicTest"] * 3 + ["Training"] * 20 + ["PrivateTest"] * 3 + ["Training"] * (len(train) - 20)
    labels = np.concatenate([[0, 1, 2], train.labels[:20], [0, 1, 2], train.labels[20:]])
    ds = _dataset(images, labels, splits)
    halves = stats.cv5x2_splits(ds, 7)  # row by row: families are split across the halves, so there are leaks
    cv_rows = np.sort(np.concatenate(halves[0]))
    assert not np.array_equal(cv_rows, np.arange(len(cv_rows)))
    pairs = D.dataset_pairs(ds.subset(cv_rows), cache_dir=False)
    seen = set()
    for h0, h1 in halves[:2]:
        for tr, te in ((h0, h1), (h1, h0)):
            fold = statistics.fold_dataset(ds, tr, te, val_fraction=0.25, seed=0)
            shared = statistics.fold_leaks(fold, pairs, cv_rows, np.concatenate([tr, te]))
            assert shared == seeds.leaks(fold)  # the fold's own search
            seen.add(len(shared[1]))
    assert max(seen) > 0  # the check compared real leaks, not two empty sets
    with pytest.raises(ValueError, match=f"not the {len(cv_rows)} rows the pairs cover"):
        statistics.fold_leaks(fold, pairs, cv_rows, np.concatenate([tr, te])[:-1])
