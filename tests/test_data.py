"""Data layer: loaders on real files, every bad input, splits, duplicates, discovery."""

import gzip
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import write_png
from fer_utils import data as D

PUBLISHED_TRAIN = [3995, 436, 4097, 7215, 4830, 3171, 4965]
PUBLISHED_PUBLIC = [467, 56, 496, 895, 653, 415, 607]
PUBLISHED_PRIVATE = [491, 55, 528, 879, 594, 416, 626]


# ----------------------------------------------------------------------------- real fixtures

def test_tiny_csv_loads_with_three_rows_per_usage_and_class(tiny_csv, cache_dir):
    ds = D.load_fer2013_csv(tiny_csv, cache_dir=cache_dir)
    assert ds.images.shape == (63, 48, 48) and ds.images.dtype == np.uint8
    counts = ds.class_counts()
    for split in D.FER2013_SPLITS:
        assert counts.loc[list(D.FER2013_CLASSES), split].tolist() == [3] * 7
    assert ds.source_ids[0] == "fer2013_tiny.csv:row=0"
    assert len(ds.checksum) == 64


def test_tiny_csv_gz_equals_plain(tiny_csv, tmp_path):
    gz = tmp_path / "fer2013_tiny.csv.gz"
    with open(tiny_csv, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    a = D.load_fer2013_csv(tiny_csv, cache_dir=False)
    b = D.load_fer2013_csv(gz, cache_dir=False)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert a.checksum == b.checksum


def test_parse_cache_gives_identical_dataset(tiny_csv, cache_dir):
    first = D.load_fer2013_csv(tiny_csv, cache_dir=cache_dir)
    assert list(cache_dir.glob("*.npz")), "first load should write a cache"
    second = D.load_fer2013_csv(tiny_csv, cache_dir=cache_dir)
    assert first.checksum == second.checksum
    assert list(first.source_ids) == list(second.source_ids)


@pytest.mark.slow
def test_full_fer2013_counts_match_published(real_data):
    ds = D.load_fer2013_csv(real_data / "fer2013" / "fer2013.csv.gz")
    counts = ds.class_counts()
    assert counts.loc["total", "Training"] == 28709
    assert counts.loc["total", "PublicTest"] == 3589
    assert counts.loc["total", "PrivateTest"] == 3589
    classes = list(D.FER2013_CLASSES)
    assert counts.loc[classes, "Training"].tolist() == PUBLISHED_TRAIN
    assert counts.loc[classes, "PublicTest"].tolist() == PUBLISHED_PUBLIC
    assert counts.loc[classes, "PrivateTest"].tolist() == PUBLISHED_PRIVATE


def test_tiny_fixture_rows_equal_full_file_rows(real_data, tiny_csv):
    rows = [int(x) for x in (real_data / "fixtures" / "fer2013_tiny_rows.txt").read_text().split()
            if x.strip().isdigit()]
    full = D.load_fer2013_csv(real_data / "fer2013" / "fer2013.csv.gz")
    tiny = D.load_fer2013_csv(tiny_csv, cache_dir=False)
    assert len(rows) == len(tiny)
    assert np.array_equal(full.images[rows], tiny.images)
    assert np.array_equal(full.labels[rows], tiny.labels)


def test_ferplus_rows_align_with_fer2013(real_data):
    fer_csv = real_data / "fer2013" / "fer2013.csv.gz"
    votes_csv = real_data / "ferplus" / "fer2013new.csv"
    fp = D.load_ferplus(fer_csv, votes_csv)
    votes = pd.read_csv(votes_csv)
    rows = fp.meta["row"].to_numpy()
    # Each kept row's label is the arg-max of that same row's votes, and its Usage matches.
    counts = votes.iloc[rows][list(D.FERPLUS_VOTE_COLUMNS)].to_numpy()
    assert np.array_equal(counts.argmax(axis=1), fp.labels)
    assert (votes.iloc[rows]["Usage"].to_numpy() == fp.splits).all()
    assert fp.num_classes == 8 and fp.soft_labels.shape == (len(fp), 8)
    assert np.allclose(fp.soft_labels.sum(axis=1), 1.0)
    # Aligned labels agree far above chance (the data README measures 63% vs 18% shuffled).
    assert D.agreement_rate(fp.meta["fer_label"].to_numpy(), fp.labels) > 0.55
    reasons = {r for _, r in fp.skipped}
    assert {"tie", "majority unknown", "no image name (NF)"} <= reasons


def test_ferplus_majority_rules():
    counts = np.array([
        [6, 4, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral
        [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],  # tie happiness/surprise
        [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],  # unknown
        [0, 0, 0, 0, 0, 0, 0, 0, 2, 8],  # NF
        [0] * 10,                        # no votes
    ])
    labels, reasons = D.ferplus_majority(counts, tie_rule="drop")
    assert labels.tolist() == [0, -1, -1, -1, -1]
    assert reasons.tolist() == ["", "tie", "majority unknown", "majority NF", "no votes"]
    labels, _ = D.ferplus_majority(counts, tie_rule="first")
    assert labels.tolist()[:2] == [0, 1]


def test_ckplus_folders_and_npz_agree_and_folds_are_subject_disjoint(real_data):
    folders = D.load_ckplus(real_data / "ckplus" / "CK+48")
    npz = D.load_ckplus(real_data / "ckplus" / "ckplus48.npz")
    assert len(folders) == 981 and folders.class_names == D.CKPLUS_CLASSES
    assert np.array_equal(folders.images, npz.images) and np.array_equal(folders.labels, npz.labels)
    assert folders.meta["subject"].nunique() == 118
    subjects = folders.meta["subject"].to_numpy()
    folds = D.subject_kfold(folders, k=10, seed=0)
    covered = np.concatenate([te for _, te in folds])
    assert sorted(covered.tolist()) == list(range(981))
    for tr, te in folds:
        assert not set(subjects[tr]) & set(subjects[te])
    fold = D.fold_dataset(folders, 3, k=10, seed=0, val_fraction=0.1)
    by = {s: set(subjects[fold.splits == s]) for s in ("Training", "Validation", "Test")}
    assert not (by["Training"] & by["Test"]) and not (by["Validation"] & by["Test"])
    assert not (by["Training"] & by["Validation"])


def test_ckplus_tiny_fixture(fixtures_dir):
    ds = D.load_ckplus(fixtures_dir / "ckplus48_tiny.npz")
    assert len(ds) == 14 and np.bincount(ds.labels).tolist() == [2] * 7


# ----------------------------------------------------------------------------- folder layouts

def _kaggle_tree(root, ds):
    """Write a dataset as the Kaggle msambare layout (lossless PNG)."""
    for i in range(len(ds)):
        sub = "train" if ds.splits[i] == "Training" else "test"
        write_png(root / sub / D.FER2013_CLASSES[ds.labels[i]] / f"{ds.splits[i]}_{i}.png", ds.images[i])


def test_kaggle_layout_restores_test_splits(tmp_path):
    csv = D.load_synthetic(5, seed=1)  # any FER-2013-shaped dataset: the layout is what is tested
    _kaggle_tree(tmp_path / "fer", csv)
    ds = D.load_fer2013_folders(tmp_path / "fer")
    expected = [int((csv.splits == s).sum()) for s in ("Training", "PublicTest", "PrivateTest")]
    assert ds.class_counts().loc["total", ["Training", "PublicTest", "PrivateTest"]].tolist() == expected
    # Same pixels and labels as the csv, matched through the row index kept in the file name.
    order = np.array([int(s.rsplit("_", 1)[1].split(".")[0]) for s in ds.source_ids])
    assert np.array_equal(ds.images, csv.images[order]) and np.array_equal(ds.labels, csv.labels[order])


def test_kaggle_layout_without_prefixes_uses_test_split(tmp_path):
    csv = D.load_synthetic(4, seed=2)
    for i in range(len(csv)):
        sub = "train" if csv.splits[i] == "Training" else "test"
        write_png(tmp_path / sub / D.FER2013_CLASSES[csv.labels[i]] / f"img{i}.png", csv.images[i])
    ds = D.load_fer2013_folders(tmp_path)
    assert set(ds.split_names) == {"Training", "Test"}


def test_generic_folder_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(3):
            write_png(tmp_path / c / f"{i}.png", rng.integers(0, 255, (30, 20), dtype=np.uint8))
    ds = D.load_image_folder(tmp_path)
    assert ds.class_names == ("a", "b") and ds.images.shape == (6, 30, 20)
    ds = D.load_image_folder(tmp_path, image_size=48)
    assert ds.images.shape == (6, 48, 48)


# ----------------------------------------------------------------------------- bad inputs

def _write_csv(path, rows, header="emotion,pixels,Usage"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _pixels(n=2304, value="7"):
    return " ".join([value] * n)


@pytest.mark.parametrize("row, message", [
    (f"0,{_pixels(2303)},Training", "has 2303 values, expected 2304"),
    (f"0,{_pixels(2303)} x,Training", "non-numeric value 'x'"),
    (f"9,{_pixels()},Training", "unknown label emotion='9'"),
    (f"happy,{_pixels()},Training", "unknown label emotion='happy'"),
    (f"0,{_pixels(value='300')},Training", "out of range"),
    (f"0,{_pixels()},Validation", "unknown Usage='Validation'"),
])
def test_bad_csv_rows_name_file_row_and_expectation(tmp_path, row, message):
    path = _write_csv(tmp_path / "bad.csv", [f"1,{_pixels()},Training", row])
    with pytest.raises(D.DataError) as err:
        D.load_fer2013_csv(path, cache_dir=False)
    text = str(err.value)
    assert str(path) in text and "row 1" in text and message in text


def test_non_strict_skips_and_reports_bad_rows(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", [f"1,{_pixels()},Training", f"0,{_pixels(5)},Training",
                                             f"2,{_pixels()},PublicTest", f"8,{_pixels()},Training"])
    with pytest.warns(UserWarning, match="skipped 2 bad row"):
        ds = D.load_fer2013_csv(path, strict=False, cache_dir=False)
    assert len(ds) == 2 and ds.labels.tolist() == [1, 2]
    # Each bad row is reported once: the label check runs first (row 3), then the pixels (row 1).
    assert [s for s, _ in ds.skipped] == ["bad.csv:row=3", "bad.csv:row=1"]


def test_missing_columns_empty_and_missing_file(tmp_path):
    with pytest.raises(D.DataError, match=r"missing column\(s\) \['Usage'\]"):
        D.load_fer2013_csv(_write_csv(tmp_path / "a.csv", [f"0,{_pixels()}"], header="emotion,pixels"), cache_dir=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("emotion,pixels,Usage\n")
    with pytest.raises(D.DataError, match="no data rows"):
        D.load_fer2013_csv(empty, cache_dir=False)
    with pytest.raises(D.DataError, match="nope.csv: file not found"):
        D.load_fer2013_csv(tmp_path / "nope.csv")


def test_empty_split_is_an_error_naming_split(tmp_path):
    ds = D.load_fer2013_csv(_write_csv(tmp_path / "t.csv", [f"1,{_pixels()},Training"]), cache_dir=False)
    with pytest.raises(D.DataError, match="split 'PrivateTest' is empty; splits present: \\['Training'\\]"):
        ds.split("PrivateTest")


def _class_tree(root, classes=("a", "b"), n=2):
    for c in classes:
        for i in range(n):
            write_png(root / c / f"{i}.png", np.full((8, 8), 10 * i, np.uint8))


def test_unreadable_image_is_named(tmp_path):
    _class_tree(tmp_path)
    bad = tmp_path / "a" / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(D.DataError, match=r"broken\.png: not a readable image"):
        D.load_image_folder(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 bad row"):
        ds = D.load_image_folder(tmp_path, strict=False)
    assert len(ds) == 4 and ds.skipped[0][0].endswith("broken.png")


def test_non_image_file_is_named(tmp_path):
    _class_tree(tmp_path)
    (tmp_path / "b" / "notes.txt").write_text("hello")
    with pytest.raises(D.DataError, match=r"notes\.txt: not an image file"):
        D.load_image_folder(tmp_path)


def test_missing_and_empty_class_folders(tmp_path):
    _class_tree(tmp_path, classes=D.FER2013_CLASSES[:6])
    with pytest.raises(D.DataError, match="missing class folder 'neutral'"):
        D.load_image_folder(tmp_path, class_names=D.FER2013_CLASSES)
    (tmp_path / "neutral").mkdir()
    with pytest.raises(D.DataError, match=r"neutral: class folder is empty"):
        D.load_image_folder(tmp_path, class_names=D.FER2013_CLASSES)


def test_kaggle_layout_missing_test_folder(tmp_path):
    _class_tree(tmp_path / "train", classes=D.FER2013_CLASSES)
    with pytest.raises(D.DataError, match=r"test: folder not found"):
        D.load_fer2013_folders(tmp_path)


def test_mismatched_image_sizes_named(tmp_path):
    _class_tree(tmp_path)
    write_png(tmp_path / "b" / "big.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(D.DataError, match=r"big\.png: image is 8x9, expected 8x8"):
        D.load_image_folder(tmp_path)


def test_ck_file_name_without_subject(tmp_path):
    with pytest.raises(D.DataError, match="does not start with a subject id"):
        D.parse_ck_subject("face_001.png")


# ----------------------------------------------------------------------------- splits, duplicates, discovery

def _toy(n=200, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    splits = np.array(["Training"] * (n - 40) + ["PublicTest"] * 20 + ["PrivateTest"] * 20, dtype=object)
    return D.FERDataset(images=rng.integers(0, 255, (n, 6, 6), dtype=np.uint8), labels=labels,
                        class_names=tuple("abcd"[:classes]), splits=splits,
                        source_ids=np.array([f"toy:{i}" for i in range(n)], dtype=object), name="toy")


def test_validation_split_is_stratified_seeded_and_from_training_only():
    synthetic = np.zeros(200, dtype=bool)
    synthetic[:40] = True  # pretend GAN rows: they must stay in training
    ds = _toy().replace(synthetic=synthetic)
    a = D.train_val_split(ds, 0.25, seed=1)
    b = D.train_val_split(ds, 0.25, seed=1)
    c = D.train_val_split(ds, 0.25, seed=2)
    assert np.array_equal(a.splits, b.splits) and not np.array_equal(a.splits, c.splits)
    val = a.splits == "Validation"
    assert val.sum() == 30  # 25% of the 120 real training rows
    assert (ds.splits[val] == "Training").all() and not a.synthetic[val].any()
    # 30 real training rows per class: stratified, each class gets 7 or 8 of the 30.
    assert sorted(np.bincount(a.labels[val], minlength=4).tolist()) == [7, 7, 8, 8]
    assert (a.splits[ds.splits != "Training"] == ds.splits[ds.splits != "Training"]).all()


def test_validation_split_of_the_all_synthetic_default():
    ds = D.load_synthetic(10, seed=0)
    val = D.train_val_split(ds, 0.2, seed=0).splits == "Validation"
    assert val.sum() > 0 and (ds.splits[val] == "Training").all()


def test_duplicates_within_and_across_splits_with_conflicts():
    ds = _toy(n=60)
    ds.images[1] = ds.images[0]                  # same split, labels 0 and 1: conflicting
    ds.images[59] = ds.images[2]                 # Training vs PrivateTest, labels 2 and 3: leakage + conflict
    ds.images[4] = ds.images[8]                  # same label 0, same split
    dups = D.find_duplicates(ds)
    assert len(dups) == 3
    by_first = {g.source_ids[0]: g for _, g in dups.iterrows()}
    assert by_first["toy:0"].conflicting and not by_first["toy:0"].cross_split
    assert by_first["toy:2"].cross_split and by_first["toy:2"].splits == ["PrivateTest", "Training"]
    assert not by_first["toy:4"].conflicting
    summary = D.duplicate_summary(ds, dups).set_index("kind")
    assert summary.loc["groups spanning splits (leakage)", "groups"] == 1
    assert summary.loc["groups with conflicting labels", "rows"] == 4


def test_full_fer2013_has_reported_duplicates(real_data):
    ds = D.load_fer2013_csv(real_data / "fer2013" / "fer2013.csv.gz")
    summary = D.duplicate_summary(ds).set_index("kind")
    # The data README counts about 1,074 duplicate groups within a Usage and 41 with conflicting labels.
    assert 1000 < summary.loc["within one split: groups", "groups"] < 1150
    assert 35 <= summary.loc["within one split: conflicting labels", "groups"] <= 50
    assert summary.loc["groups spanning splits (leakage)", "groups"] > 0


def test_limit_per_class_and_subset():
    ds = _toy()
    small = D.limit_per_class(ds, 3, seed=0)
    assert small.class_counts().loc[list("abcd"), "Training"].tolist() == [3, 3, 3, 3]
    assert D.limit_per_class(ds, 0) is ds


def test_auto_discovery_falls_back_to_synthetic_loudly(tmp_path, monkeypatch):
    monkeypatch.delenv("FER_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        ds = D.load_dataset("auto", "auto", synthetic_per_class=5, seed=0)
    assert ds.is_synthetic and ds.name == "synthetic"
    assert set(ds.split_names) == {"Training", "PublicTest", "PrivateTest"}
    with pytest.raises(D.DataError, match="dataset 'fer2013' not found; searched"):
        D.load_dataset("fer2013", "auto")


def test_discovery_finds_real_data(real_data, monkeypatch):
    monkeypatch.setenv("FER_DATA_DIR", str(real_data))
    assert D.discover("fer2013").kind == "fer2013_csv"
    assert D.discover("ferplus").extra["fer_csv"].endswith("fer2013.csv.gz")
    assert D.discover("ckplus").path.endswith("CK+48")


def test_unknown_dataset_name():
    with pytest.raises(D.DataError, match=r"dataset=.fer.: expected one of"):
        D.load_dataset("fer")


def test_synthetic_default_dataset_is_deterministic():
    a = D.load_synthetic(6, seed=3)
    b = D.load_synthetic(6, seed=3)
    assert a.checksum == b.checksum and a.synthetic.all()
    counts = a.class_counts()
    assert counts.loc["happy", "total"] > counts.loc["disgust", "total"]  # FER-like imbalance
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert D.load_synthetic(6, seed=4).checksum != a.checksum


# ----------------------------------------------------------------------------- the dataset type and secondary datasets

def test_datasets_are_frozen_and_every_change_is_checked():
    import dataclasses

    ds = _toy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.labels = np.zeros(len(ds), dtype=np.int64)
    with pytest.raises(D.DataError, match="labels must lie in 0..3"):
        ds.replace(labels=np.full(len(ds), 9))
    with pytest.raises(D.DataError, match="meta has 3 rows, images have 200"):
        ds.replace(meta=pd.DataFrame({"x": [1, 2, 3]}))
    with pytest.raises(D.DataError, match="soft_labels must be"):
        ds.replace(soft_labels=np.ones((len(ds), 2), np.float32))
    with pytest.raises(D.DataError, match="class names must be distinct"):
        ds.replace(class_names=("a", "A", "b", "c"))


def test_synthetic_stand_in_has_subjects_for_ckplus():
    ck = D.synthetic_stand_in("ckplus", 5, seed=0)
    assert ck.name == "synthetic stand-in for ckplus" and ck.is_synthetic
    assert ck.meta["subject"].nunique() == 20
    assert D.synthetic_stand_in("ferplus", 5, seed=0).meta is None


def test_load_optional_falls_back_only_when_not_found(tmp_path, capsys):
    assert D.load_optional("ckplus", tmp_path) is None
    assert "ckplus: not available" in capsys.readouterr().out
    stand_in = D.load_optional("ckplus", tmp_path, stand_in=True, synthetic_per_class=5)
    assert stand_in.is_synthetic and "SYNTHETIC stand-in" in capsys.readouterr().out
    # Found but broken is an error naming the file, never a silent stand-in.
    broken = tmp_path / "ckplus48.npz"
    broken.write_bytes(b"not an npz")
    with pytest.raises(D.DataError, match="ckplus48.npz: not a readable npz"):
        D.load_optional("ckplus", tmp_path, stand_in=True)


def test_ferplus_with_a_file_as_data_dir_loads_ferplus_not_fer2013(real_data, tmp_path):
    """Regression: dataset='ferplus' with data_dir=<a csv file> used to load FER-2013."""
    root = tmp_path / "data"
    (root / "fer2013").mkdir(parents=True)
    (root / "ferplus").mkdir()
    rows = [int(x) for x in (real_data / "fixtures" / "fer2013_tiny_rows.txt").read_text().split()
            if x.strip().isdigit()]
    full = pd.read_csv(real_data / "fer2013" / "fer2013.csv.gz")
    votes = pd.read_csv(real_data / "ferplus" / "fer2013new.csv")
    full.iloc[rows].to_csv(root / "fer2013" / "fer2013.csv", index=False)
    votes.iloc[rows].to_csv(root / "ferplus" / "fer2013new.csv", index=False)
    for given in (root / "ferplus" / "fer2013new.csv", root / "fer2013" / "fer2013.csv"):
        ds = D.load_dataset("ferplus", given, cache_dir=False)
        assert ds.name == "ferplus" and ds.class_names == D.FERPLUS_CLASSES, given
    with pytest.raises(D.DataError, match="is the FER\\+ votes file"):
        D.load_dataset("fer2013", root / "ferplus" / "fer2013new.csv")
    (root / "ferplus" / "fer2013new.csv").unlink()
    with pytest.raises(D.DataError, match="needs fer2013new.csv"):
        D.load_dataset("ferplus", root / "fer2013" / "fer2013.csv")


def test_empty_and_corrupt_gzip_csv_are_data_errors(tmp_path):
    empty = tmp_path / "fer2013.csv"
    empty.write_bytes(b"")
    with pytest.raises(D.DataError, match=f"{empty}: the file is empty"):
        D.load_fer2013_csv(empty, cache_dir=False)
    corrupt = tmp_path / "fer2013.csv.gz"
    corrupt.write_bytes(gzip.compress(b"emotion,pixels,Usage\n" * 2000)[:60] + b"\x00garbage" * 50)
    with pytest.raises(D.DataError, match=f"{corrupt}: cannot be read"):
        D.load_fer2013_csv(corrupt, cache_dir=False)


def test_explicit_data_dir_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    """Regression: a typo in data_dir used to train on synthetic data with exit 0."""
    monkeypatch.delenv("FER_DATA_DIR", raising=False)
    missing = tmp_path / "no-such-folder"
    for dataset in ("auto", "fer2013"):
        with pytest.raises(D.DataError, match=f"data_dir='{missing}' does not exist"):
            D.load_dataset(dataset, missing)
    with pytest.raises(D.DataError, match="does not exist"):
        D.load_optional("ferplus", missing, stand_in=True)
    # An existing folder without FER-2013 is "not found", naming what was searched; not a synthetic run.
    with pytest.raises(D.DataError, match=f"dataset 'auto' not found; searched \\['{tmp_path}'\\]"):
        D.load_dataset("auto", tmp_path)


def test_auto_fallback_reports_to_the_runner_console(tmp_path, monkeypatch):
    from fer_utils import progress

    log = tmp_path / "progress.log"
    monkeypatch.setenv(progress.ENV_VAR, str(log))
    monkeypatch.delenv("FER_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="SYNTHETIC"):
        D.load_dataset("auto", "auto", synthetic_per_class=3)
    assert "using the built-in SYNTHETIC dataset" in log.read_text()


def test_non_strict_counts_a_row_with_two_problems_once(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", [f"1,{_pixels()},Training", f"9,{_pixels(5)},Training",
                                             f"2,{_pixels()},Elsewhere"])
    with pytest.warns(UserWarning, match="skipped 2 bad row"):
        ds = D.load_fer2013_csv(path, strict=False, cache_dir=False)
    assert len(ds) == 1 and [s for s, _ in ds.skipped] == ["bad.csv:row=1", "bad.csv:row=2"]


def test_ferplus_votes_empty_or_broken_are_data_errors(tmp_path):
    empty = tmp_path / "fer2013new.csv"
    empty.write_text("")
    with pytest.raises(D.DataError, match=f"{empty}: the file is empty"):
        D.read_ferplus_votes(empty)


def _ck_folders(root, classes):
    rng = np.random.default_rng(0)
    for c in classes:
        for i in range(2):
            write_png(root / c / f"S{10 + i:03d}_001_0000000{i}.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))


def test_ckplus_class_folders_are_checked_case_insensitively(tmp_path):
    _ck_folders(tmp_path / "ok", [c.capitalize() for c in D.CKPLUS_CLASSES])
    ds = D.load_ckplus(tmp_path / "ok")
    assert ds.class_names == D.CKPLUS_CLASSES and ds.num_classes == 7
    _ck_folders(tmp_path / "missing", [c for c in D.CKPLUS_CLASSES if c != "contempt"])
    with pytest.raises(D.DataError, match="missing class folder 'contempt'"):
        D.load_ckplus(tmp_path / "missing")
    _ck_folders(tmp_path / "typo", [c if c != "sadness" else "sadnes" for c in D.CKPLUS_CLASSES])
    with pytest.raises(D.DataError, match="missing class folder 'sadness'"):
        D.load_ckplus(tmp_path / "typo")


def _ferplus_votes(path, n, bad=None):
    cols = ["Usage", "Image name", *D.FERPLUS_VOTE_COLUMNS]
    rows = [["Training", f"fer{i:07d}.png", *([10] + [0] * (len(D.FERPLUS_VOTE_COLUMNS) - 1))] for i in range(n)]
    if bad:
        r, c, v = bad
        rows[r][2 + c] = v
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)


def test_ferplus_negative_votes_and_row_count_mismatches_are_data_errors(tmp_path, tiny_csv):
    """A negative vote loaded silently (soft labels down to -0.333) and a votes file longer than fer2013.csv too."""
    votes = tmp_path / "fer2013new.csv"
    _ferplus_votes(votes, 5, bad=(3, 2, -1))
    with pytest.raises(D.DataError, match=rf"{votes}: row 3, column '{D.FERPLUS_VOTE_COLUMNS[2]}' has a negative vote"):
        D.read_ferplus_votes(votes)
    n = len(D.load_fer2013_csv(tiny_csv, cache_dir=False))
    for count in (n + 3, n - 1):
        _ferplus_votes(votes, count)
        with pytest.raises(D.DataError, match=rf"has {count} rows but .* has {n}; FER\+ must be aligned"):
            D.load_ferplus(tiny_csv, votes, cache_dir=False)


def test_ckplus_discovery_matches_class_folders_case_insensitively_and_does_not_fall_back(tmp_path):
    """A CK+48 copy with Anger/ (or without anger/) was 'not found'; a broken folder silently fell back to the npz."""
    from fer_utils.data.discovery import discover

    _ck_folders(tmp_path / "a" / "CK+48", [c.capitalize() for c in D.CKPLUS_CLASSES])
    found = discover("ckplus", tmp_path / "a")
    assert found is not None and found.path == str(tmp_path / "a" / "CK+48")
    _ck_folders(tmp_path / "b" / "CK+48", [c for c in D.CKPLUS_CLASSES if c != "anger"])
    (tmp_path / "b" / "ckplus48.npz").write_bytes(b"not used")
    found = discover("ckplus", tmp_path / "b")
    assert found.path == str(tmp_path / "b" / "CK+48")  # the folder, not the npz behind it
    with pytest.raises(D.DataError, match="missing class folder 'anger'"):
        D.load_ckplus(found.path)
    (tmp_path / "c" / "CK+48" / "notes").mkdir(parents=True)  # no class folder at all: not a CK+ copy
    assert discover("ckplus", tmp_path / "c") is None
