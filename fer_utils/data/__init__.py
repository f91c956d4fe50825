"""Datasets: loading, validating, discovering and describing facial-expression data.

One module per concern; this package re-exports the public names, so ``from fer_utils import data``
then ``data.load_dataset(...)`` works. Nothing under ``fer_utils.data`` imports TensorFlow.

- ``classes``     class, split and label-map constants of every dataset (their one home)
- ``dataset``     :class:`FERDataset` (frozen; changes go through ``replace`` and are checked) and :class:`DataError`
- ``fer2013_csv`` the original FER-2013 csv (plain/gzip), strict or skipping bad rows, parse cache
- ``folders``     any ``<root>/<class>/<images>`` folder, image reading
- ``kaggle``      FER-2013's Kaggle folder layout (``PublicTest_``/``PrivateTest_`` prefixes restore the splits)
- ``ferplus``     FER+ votes: majority labels, tie rule, vote distributions
- ``ckplus``      CK+48 (folders or npz), subjects, subject-independent folds
- ``synthetic``   the procedurally drawn default dataset and the FER+/CK+ stand-ins
- ``discovery``   where datasets are looked for and ``load_dataset`` by name
- ``splits``      validation carved from training only, whole near-duplicate families; per-class subsampling
- ``near``        the near-duplicate finder (perceptual hash and low-resolution candidates, pixel check), cached
- ``duplicates``  byte copies and near-duplicates (re-crops, re-exposures, mirrors), their families across splits
                  (leakage, conflicting labels), deduplicated views
- ``balanced``    GAN balancing plans and the balanced training file (real + flagged generated rows)
- ``stats``       pixel statistics, FER vs FER+ agreement, CK+ subjects, class samples

Bad input raises :class:`DataError` naming the file, row or path and what was expected.
"""

from fer_utils.data.balanced import (
    BALANCED_FILE,
    STUDY_A_TABLE3,
    oversampled,
    plan_counts,
    plan_label,
    read_balanced,
    real_training_checksum,
    with_balanced_training,
    write_balanced,
)
from fer_utils.data.ckplus import fold_dataset, load_ckplus, parse_ck_subject, subject_kfold
from fer_utils.data.classes import (
    CKPLUS_CLASSES,
    FER2013_CLASSES,
    FER2013_SPLITS,
    FER_TO_FERPLUS,
    FERPLUS_CLASSES,
    FERPLUS_VOTE_COLUMNS,
    KNOWN_CLASSES,
    SINGLE_TEST_SPLIT,
)
from fer_utils.data.dataset import (
    DataError,
    FERDataset,
    check_generated_only_in_training,
    concatenate,
    file_sha256,
)
from fer_utils.data.discovery import (
    DATASETS,
    DataSource,
    candidate_roots,
    discover,
    expected_splits,
    load_dataset,
    load_optional,
    locate,
)
from fer_utils.data.duplicates import (
    NEAR_THRESHOLD,
    copies_of_training,
    dataset_pairs,
    deduplicated,
    distinct_rows,
    duplicate_summary,
    families,
    family_table,
    find_duplicates,
    image_hashes,
    leaked_rows,
    near_duplicate_pairs,
    near_duplicates,
)
from fer_utils.data.fer2013_csv import load_fer2013_csv
from fer_utils.data.ferplus import ferplus_majority, load_ferplus, read_ferplus_votes
from fer_utils.data.folders import IMAGE_SUFFIXES, load_image_folder
from fer_utils.data.kaggle import load_fer2013_folders
from fer_utils.data.splits import limit_per_class, train_val_split
from fer_utils.data.stats import agreement_rate, iter_class_samples, label_agreement, pixel_stats, subjects_per_class
from fer_utils.data.synthetic import load_synthetic, make_synthetic_faces, synthetic_stand_in

__all__ = [
    "BALANCED_FILE", "STUDY_A_TABLE3", "check_generated_only_in_training", "oversampled", "plan_counts", "plan_label",
    "read_balanced", "real_training_checksum", "with_balanced_training", "write_balanced",
    "CKPLUS_CLASSES", "DATASETS", "DataError", "DataSource", "FER2013_CLASSES", "FER2013_SPLITS", "FERDataset",
    "FERPLUS_CLASSES", "FERPLUS_VOTE_COLUMNS", "FER_TO_FERPLUS", "IMAGE_SUFFIXES", "KNOWN_CLASSES",
    "NEAR_THRESHOLD", "SINGLE_TEST_SPLIT", "agreement_rate", "candidate_roots", "concatenate", "copies_of_training",
    "deduplicated",
    "dataset_pairs", "discover", "distinct_rows", "duplicate_summary", "families", "family_table", "leaked_rows",
    "near_duplicate_pairs", "near_duplicates",
    "expected_splits", "ferplus_majority", "file_sha256", "find_duplicates", "fold_dataset", "image_hashes",
    "iter_class_samples", "label_agreement", "limit_per_class", "load_ckplus", "load_dataset", "load_fer2013_csv",
    "load_fer2013_folders", "load_ferplus", "load_image_folder", "load_optional", "load_synthetic", "locate",
    "make_synthetic_faces", "parse_ck_subject", "pixel_stats", "read_ferplus_votes", "subject_kfold",
    "subjects_per_class", "synthetic_stand_in", "train_val_split",
]
