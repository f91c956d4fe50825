"""A test split's 48x48 faces through the ``predict`` command exactly as a user runs it, scored.

Writes every face of ``--split`` (FER-2013 PrivateTest by default) as a PNG file into a temporary folder, runs
``python -m fer_utils.predict <folder> --model MODEL --detector none --tta TTA --out rows.csv`` in a child process
(the command's own defaults for everything else: runtime, batch size), reads its rows back and scores them against the
labels: accuracy and macro-F1 as published and without the images whose near-duplicate family holds a training image
(``data.leaked_rows``). This is issue 24's done-when check; ``benchmarks/predict.py --accuracy`` scores the same model
in process per runtime and TTA.

    python benchmarks/predict_command.py [--model default] [--tta ten_crop] [--split PrivateTest] --out CSV

Needs FER-2013 (``FER_DATA_DIR``). Refuses an existing ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def score_rows(rows, labels, keep, class_names) -> dict:
    """Accuracy and macro-F1 of the command's ``rows`` (one per file ``<index>.png``, in any order) against
    ``labels``, on all images and on ``keep``; a file without an ``ok`` row counts wrong.

    Raises:
        ValueError: the rows name a file that is not one of the written faces, or name one twice.
    """
    import numpy as np

    from sklearn.metrics import f1_score

    index = rows["source"].map(lambda s: Path(str(s)).stem)
    if not index.str.fullmatch(r"\d+").all() or index.duplicated().any():
        raise ValueError(f"the command's rows name unexpected or repeated files: {sorted(set(index))[:5]}")
    index = index.astype(int).to_numpy()
    if index.max(initial=-1) >= len(labels):
        raise ValueError(f"the command's rows name face {index.max()}, but only {len(labels)} were written")
    names = list(class_names)
    pred = np.full(len(labels), -1)
    ok = (rows["status"] == "ok").to_numpy()
    pred[index[ok]] = [names.index(e) for e in rows["emotion"][ok]]
    out = {"images": len(labels), "faces_scored": int(ok.sum()), "dedup_images": int(keep.sum())}
    for prefix, mask in (("", slice(None)), ("dedup_", keep)):
        y, p = labels[mask], pred[mask]
        out[f"{prefix}accuracy"] = round(float(np.mean(p == y)), 4)
        f1 = f1_score(y, p, labels=range(len(names)), average="macro", zero_division=0)
        out[f"{prefix}macro_f1"] = round(float(f1), 4)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--tta", default="ten_crop")
    p.add_argument("--split", default="PrivateTest", choices=("PublicTest", "PrivateTest"))
    p.add_argument("--out", required=True, help="the result CSV to write (never an existing file)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        p.error(f"{out} exists: choose another --out (nothing is overwritten)")
    import cv2
    import numpy as np
    import pandas as pd

    from fer_utils import data as D

    ds = D.load_dataset("fer2013")  # a missing FER-2013 is a DataError that says where it looked
    test = ds.split(args.split)
    keep = ~D.leaked_rows(ds)[ds.splits == args.split]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "faces"
        folder.mkdir()
        for i, face in enumerate(test.images):
            cv2.imwrite(str(folder / f"{i}.png"), np.asarray(face).reshape(face.shape[:2]))
        command = [sys.executable, "-m", "fer_utils.predict", str(folder), "--model", args.model,
                   "--detector", "none", "--tta", args.tta, "--out", str(Path(tmp) / "rows.csv"), "--quiet"]
        path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": path})
        rows = pd.read_csv(Path(tmp) / "rows.csv")
    result = {"split": args.split, "model": args.model, "tta": args.tta,
              "command": "python -m fer_utils.predict <faces> --model {} --detector none --tta {}".format(
                  args.model, args.tta),
              **score_rows(rows, test.labels, keep, ds.class_names)}
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([result]).to_csv(out, index=False)
    print(pd.DataFrame([result]).T.to_string(header=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
