"""The recipe's test answers against a second set of human labels: FER+'s crowd votes on the same faces (issue 24).

FER+ (Barsoum et al. 2016) had ten crowd annotators label every FER-2013 face again; ``fer2013new.csv`` lines up with
``fer2013.csv`` row by row. Owns one question: how much of what a model gets "wrong" on FER-2013's PrivateTest is a
face whose FER-2013 label the crowd does not give either, and how the crowd itself scores against those labels.

* :func:`crowd_votes` reads the votes of the seven FER-2013 emotions, in FER-2013's class order, for given rows
  (contempt, unknown and not-a-face votes left out: FER-2013 has no such class).
* :func:`crowd_majority` is the crowd's answer per face: the emotion with the most votes, ``-1`` where no emotion got
  a vote or the top emotions tie (no single answer).
* :func:`agreement` scores one set of answers against the FER-2013 labels, overall and split by whether the crowd's
  majority gives the FER-2013 label (``crowd agrees``) or another emotion (``crowd disagrees``); faces without a
  crowd answer count only in the overall numbers.
* :func:`table` puts runs' saved predictions and the crowd itself side by side (``benchmarks/label_agreement.py``).
* :func:`crowd_teacher` turns the votes of the **Training** rows into a teacher for
  :func:`fer_utils.experiments.distill.distilled` (the recipe variant ``longer_batch_64_crowd``); validation and test
  faces keep their FER-2013 labels.

The crowd's own rows are the reference the models are read against: its majority as a classifier, and one annotator
drawn at random (the expected share of votes for the FER-2013 label). The votes of test faces are read to describe
test answers, never to choose or train a model.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils.data.classes import FER2013_CLASSES, FER_TO_FERPLUS
from fer_utils.data.dataset import DataError
from fer_utils.data.ferplus import read_ferplus_votes

#: FER+'s vote columns of FER-2013's seven classes, in FER-2013's order (0 angry ... 6 neutral).
EMOTION_COLUMNS = tuple(FER_TO_FERPLUS[c] for c in FER2013_CLASSES)
_ROW = re.compile(r"^fer2013\.csv(?:\.gz)?:row=(\d+)$")


def source_rows(source_ids) -> np.ndarray:
    """Row numbers of ``fer2013.csv`` from source ids ``fer2013.csv[.gz]:row=N``.

    Raises:
        ValueError: an id of another form (named, with its position), e.g. a face of another dataset.
    """
    rows = []
    for i, sid in enumerate(np.asarray(source_ids).astype(str)):
        m = _ROW.match(sid)
        if not m:
            raise ValueError(f"source id {i} is {str(sid)!r}: expected 'fer2013.csv.gz:row=N' (FER+ votes exist "
                             "only for the rows of fer2013.csv)")
        rows.append(int(m.group(1)))
    return np.asarray(rows, dtype=np.int64)


def crowd_votes(ferplus_csv, rows, splits=None) -> np.ndarray:
    """Vote counts ``[len(rows), 7]`` of FER-2013's seven emotions for ``rows`` of ``fer2013.csv``.

    ``splits`` (optional, one per row): FER-2013 split names the votes file must give those rows (``Usage``); a
    mismatch means the files are not aligned row by row.

    Raises:
        DataError: a row beyond the votes file, or a split that differs (the row and both names).
    """
    votes = read_ferplus_votes(ferplus_csv)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(votes)):
        bad = int(rows[(rows < 0) | (rows >= len(votes))][0])
        raise DataError(f"{ferplus_csv}: has {len(votes)} rows, no row {bad}; expected FER+ votes aligned row by row "
                        "with fer2013.csv")
    if splits is not None:
        usage, splits = votes["Usage"].to_numpy(dtype=object)[rows], np.asarray(splits).astype(str)
        wrong = np.flatnonzero(usage != splits)
        if len(wrong):
            i = int(wrong[0])
            raise DataError(f"{ferplus_csv}: row {rows[i]} has Usage={str(usage[i])!r}, the predictions say "
                            f"{str(splits[i])!r}; the files are not aligned row by row")
    return votes[list(EMOTION_COLUMNS)].to_numpy(dtype=np.float64)[rows]


def crowd_majority(votes) -> np.ndarray:
    """The crowd's answer per face: the emotion with the most votes, ``-1`` where none got a vote or the top tie."""
    votes = np.asarray(votes, dtype=np.float64)
    top = votes.max(axis=1)
    single = (votes == top[:, None]).sum(axis=1) == 1
    return np.where((top > 0) & single, votes.argmax(axis=1), -1).astype(np.int64)


def agreement(y_true, y_pred, votes) -> dict:
    """``y_pred`` against the FER-2013 labels ``y_true``, split by whether the crowd's majority agrees with them.

    Returns ``{images, crowd_answers (faces with a single crowd majority), crowd_agrees (share of those whose majority
    is the FER-2013 label), accuracy, accuracy_crowd_agrees, accuracy_crowd_disagrees, crowd_pick_where_disagrees
    (share of the disagreeing faces where y_pred is the crowd's answer), accuracy_vs_crowd (y_pred against the crowd's
    answer)}``; a subset without faces gives NaN.

    Raises:
        ValueError: arrays of different lengths, or votes not ``[N, 7]``.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    votes = np.asarray(votes, dtype=np.float64)
    if y_true.shape != y_pred.shape or votes.shape != (len(y_true), len(EMOTION_COLUMNS)):
        raise ValueError(f"labels {y_true.shape}, answers {y_pred.shape} and votes {votes.shape}: expected N, N and "
                         f"[N, {len(EMOTION_COLUMNS)}]")
    crowd = crowd_majority(votes)
    has = crowd >= 0
    agrees, disagrees = has & (crowd == y_true), has & (crowd != y_true)

    def mean(x, where):
        return float(x[where].mean()) if where.any() else float("nan")

    right = y_pred == y_true
    return {"images": int(len(y_true)), "crowd_answers": int(has.sum()), "crowd_agrees": mean(crowd == y_true, has),
            "accuracy": mean(right, np.ones_like(has)), "accuracy_crowd_agrees": mean(right, agrees),
            "accuracy_crowd_disagrees": mean(right, disagrees),
            "crowd_pick_where_disagrees": mean(y_pred == crowd, disagrees),
            "accuracy_vs_crowd": mean(y_pred == crowd, has)}


def one_annotator(y_true, votes) -> float:
    """Expected accuracy of one crowd annotator drawn at random against ``y_true``: the mean share of each face's
    emotion votes that name its FER-2013 label (faces without emotion votes left out)."""
    votes = np.asarray(votes, dtype=np.float64)
    total = votes.sum(axis=1)
    has = total > 0
    return float((votes[has, np.asarray(y_true)[has]] / total[has]).mean())


def table(predictions: dict, ferplus_csv, split: str = "PrivateTest", leaked=()) -> pd.DataFrame:
    """Each run's answers on ``split`` and the crowd's own, scored by :func:`agreement`, on every face and on those
    without a near-duplicate in the training data (``leaked``: their source ids, :func:`seeds.leaks`).

    ``predictions``: ``{label: dict of runs.load_predictions}`` (``y_pred``, ``y_true``, ``split``, ``source_ids``),
    all on the same faces of ``split``. Rows: the runs in the order given, then ``FER+ crowd majority`` (the crowd's
    answer as a classifier; no answer counts wrong) and ``one FER+ annotator (expected)``.

    Raises:
        ValueError: no predictions, a run without ``split`` or its source ids, another class list than FER-2013's,
            or runs on different faces.
    """
    if not predictions:
        raise ValueError("no predictions to compare")
    faces = None
    for label, p in predictions.items():
        if p.get("split") is None or p.get("source_ids") is None:
            raise ValueError(f"{label}: predictions without split names or source ids (saved before they were kept)")
        if p.get("class_names") is not None and list(p["class_names"]) != list(FER2013_CLASSES):
            raise ValueError(f"{label}: classes {list(p['class_names'])}, expected FER-2013's {list(FER2013_CLASSES)} "
                             "(FER+'s votes are compared with FER-2013's labels)")
        keep = np.asarray(p["split"]) == split
        if not keep.any():
            raise ValueError(f"{label}: no {split} faces (splits: {sorted(set(np.asarray(p['split']).tolist()))})")
        ids = np.asarray(p["source_ids"]).astype(str)[keep]
        if faces is None:
            faces, y_true = ids, np.asarray(p["y_true"])[keep]
        elif not np.array_equal(ids, faces) or not np.array_equal(np.asarray(p["y_true"])[keep], y_true):
            raise ValueError(f"{label}: its {split} faces or labels differ from {next(iter(predictions))}'s")
    rows = source_rows(faces)
    votes = crowd_votes(ferplus_csv, rows, splits=[split] * len(rows))
    clean = ~np.isin(faces, list(leaked))
    answers = {label: np.asarray(p["y_pred"])[np.asarray(p["split"]) == split] for label, p in predictions.items()}
    answers["FER+ crowd majority"] = crowd_majority(votes)
    out = []
    for label, y_pred in answers.items():
        row = {"answers": label}
        for suffix, where in (("", np.ones(len(faces), bool)), ("_dedup", clean)):
            row.update({f"{k}{suffix}": v for k, v in agreement(y_true[where], y_pred[where], votes[where]).items()})
        out.append(row)
    annotator = {"answers": "one FER+ annotator (expected)", "images": len(faces),  # no answers: agreement undefined
                 "accuracy": one_annotator(y_true, votes), "images_dedup": int(clean.sum()),
                 "accuracy_dedup": one_annotator(y_true[clean], votes[clean])}
    return pd.DataFrame([*out, annotator])


def markdown(df: pd.DataFrame) -> str:
    """The table as Markdown: accuracy overall and where the crowd agrees or not, official (without near-duplicates)."""
    def pair(r, key, digits=4):
        a, b = r.get(key), r.get(f"{key}_dedup")
        fmt = f"{{:.{digits}f}}"
        return "-" if pd.isna(a) else f"{fmt.format(a)} ({fmt.format(b)})"

    lines = ["| answers | accuracy vs FER-2013 labels | where the crowd agrees | where it disagrees | "
             "picks the crowd's answer where it disagrees | agrees with the crowd's answer |",
             "|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        lines.append(f"| {r['answers']} | {pair(r, 'accuracy')} | {pair(r, 'accuracy_crowd_agrees')} | "
                     f"{pair(r, 'accuracy_crowd_disagrees')} | {pair(r, 'crowd_pick_where_disagrees')} | "
                     f"{pair(r, 'accuracy_vs_crowd')} |")
    first = df.iloc[0]
    lines.append("")
    n = {k: int(first[k]) for k in ("images", "images_dedup", "crowd_answers", "crowd_answers_dedup")}
    lines.append(f"{n['images']} faces ({n['images_dedup']} without near-duplicates); the crowd gives a single answer "
                 f"for {n['crowd_answers']} ({n['crowd_answers_dedup']}), the FER-2013 label for "
                 f"{first['crowd_agrees']:.4f} ({first['crowd_agrees_dedup']:.4f}) of those.")
    return "\n".join(lines) + "\n"


def load_runs(folders: dict) -> dict:
    """``{label: runs.load_predictions(folder)}`` for run folders or ``predictions.npz`` files."""
    from fer_utils import runs

    return {label: runs.load_predictions(Path(f)) for label, f in folders.items()}


#: What the teacher of a crowd student is called in its run's recipe (``distillation.tta``).
CROWD = "FER+ crowd votes"


def crowd_teacher(ds, ferplus_csv) -> dict:
    """The crowd's vote shares of FER-2013's seven emotions on ``ds``'s Training rows, as a distillation teacher.

    Returns the dict :func:`fer_utils.experiments.distill.distilled` takes (``probs`` [n_train, 7], ``rows``) and what
    a run records of it (``members``: the votes file; ``model_sha256``: its checksum; ``tta``: :data:`CROWD`;
    ``seconds``: 0, nothing is inferred). A face without emotion votes (only contempt, unknown or not-a-face) keeps
    its one-hot FER-2013 label.

    Raises:
        ValueError: another class list than FER-2013's, or Training rows that are not rows of ``fer2013.csv``
            (another dataset, synthetic faces).
        DataError: votes not aligned with ``fer2013.csv``.
    """
    if tuple(ds.class_names) != FER2013_CLASSES:
        raise ValueError(f"{ds.name}: classes {list(ds.class_names)}, expected FER-2013's {list(FER2013_CLASSES)}")
    rows = np.flatnonzero(ds.splits == "Training")
    votes = crowd_votes(ferplus_csv, source_rows(np.asarray(ds.source_ids)[rows]), splits=["Training"] * len(rows))
    total = votes.sum(axis=1, keepdims=True)
    one_hot = np.eye(len(EMOTION_COLUMNS))[ds.labels[rows]]
    probs = np.where(total > 0, votes / np.maximum(total, 1), one_hot).astype(np.float32)
    return {"probs": probs, "rows": rows, "seconds": 0.0, "tta": CROWD, "members": [str(ferplus_csv)],
            "model_sha256": [hashlib.sha256(Path(ferplus_csv).read_bytes()).hexdigest()], "reused": False}
