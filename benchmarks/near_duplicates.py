"""The near-duplicate finder measured: recall on known transformations, false matches on different photographs,
speed, and what it finds in FER-2013 (``fer_utils.data.duplicates``).

- **Recall**: ``--n`` random distinct FER-2013 Training images, each transformed (shifts of 1-3 px, crop-and-rescale,
  brightness, contrast, gamma, JPEG, mirroring, a combination) and searched among all distinct Training images:
  found = the best match is the original, with the right kind (``near``; ``mirror`` for the mirrored ones).
- **False matches**: (a) CK+48, each subject's images against every *other* subject's (different people in one lab:
  aligned, frontal, the same backgrounds; the hardest negatives there are); (b) every CK+48 image against FER-2013
  Training (different photograph collections). A false match = an image with any match.
- **FER-2013**: the test splits against Training (best match per test image, by split and kind), the families over
  all splits and their conflicting labels, and the wall time of each search.
- ``--shipped``: the shipped model's accuracy on the test splits, on their copies of Training images and without;
  with ``--against``, its recorded PrivateTest predictions against an earlier file's, face by face.

Writes ``benchmarks/results/near_duplicates.json`` and ``.md``. Needs ``FER_DATA_DIR`` (FER-2013 and CK+48).

    python benchmarks/near_duplicates.py            # about 10 minutes on 2 cores, no cache used
    python benchmarks/near_duplicates.py --shipped  # the shipped model with and without the copies
    python benchmarks/near_duplicates.py --shipped --against OLD/predictions.npz  # against earlier predictions
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fer_utils import data as D
from fer_utils.data import duplicates as dup
from fer_utils.data import near

OUT = Path(__file__).parent / "results"


def _shift(x, dx, dy):
    return cv2.warpAffine(x, np.float32([[1, 0, dx], [0, 1, dy]]), (48, 48), borderMode=cv2.BORDER_REPLICATE)


def _crop(x, side, ox, oy):
    return cv2.resize(x[oy:oy + side, ox:ox + side], (48, 48), interpolation=cv2.INTER_LINEAR)


def _jpeg(x, q):
    return cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_GRAYSCALE)


def _gamma(x, g):
    return np.clip(255 * (x / 255.0) ** g, 0, 255).astype(np.uint8)


def _affine(x, a, b):
    return np.clip(x.astype(np.float32) * a + b, 0, 255).astype(np.uint8)


def _mirror(x):
    return np.ascontiguousarray(x[:, ::-1])


TRANSFORMS = {
    "shift 1 px": lambda x: _shift(x, 1, 0),
    "shift 2 px (diagonal)": lambda x: _shift(x, 2, -2),
    "shift 3 px (diagonal)": lambda x: _shift(x, -3, 3),
    "crop 44 px + rescale to 48 (zoom 1.09)": lambda x: _crop(x, 44, 2, 1),
    "crop 42 px + rescale to 48 (zoom 1.14)": lambda x: _crop(x, 42, 3, 3),
    "brightness +40": lambda x: _affine(x, 1, 40),
    "contrast 0.6": lambda x: _affine(x, 0.6, 50),
    "gamma 0.6": lambda x: _gamma(x, 0.6),
    "gamma 1.6": lambda x: _gamma(x, 1.6),
    "JPEG quality 30": lambda x: _jpeg(x, 30),
    "mirror": _mirror,
    "mirror + shift 2 px": lambda x: _shift(_mirror(x), 2, 1),
    "crop 44 + gamma 0.8 + JPEG 50": lambda x: _jpeg(_gamma(_crop(x, 44, 1, 3), 0.8), 50),
}


def recall(train: np.ndarray, n: int, seed: int) -> pd.DataFrame:
    """Found = the best match is the original or one of its own duplicates in Training (its family: the same
    photograph), with the right kind."""
    firsts, _ = near._unique(train)
    library = train[firsts]
    ds = D.FERDataset(images=library, labels=np.zeros(len(library), np.int64), class_names=("face",),
                      splits=np.array(["Training"] * len(library), dtype=object),
                      source_ids=np.arange(len(library)).astype(str), name="library")
    family = D.families(ds)
    picks = np.random.default_rng(seed).choice(len(library), n, replace=False)
    rows = []
    for name, f in TRANSFORMS.items():
        found = dup.near_duplicates(np.stack([f(library[i]) for i in picks]), library).set_index("i")
        want = "mirror" if name.startswith("mirror") else "near"
        right = [i in found.index and family[found.loc[i, "j"]] == family[picks[i]] and found.loc[i, "kind"] == want
                 for i in range(n)]
        rows.append({"transformation": name, "n": n, "found": int(np.sum(right)), "recall": float(np.mean(right))})
        print(f"recall {name}: {np.mean(right):.3f}", flush=True)
    return pd.DataFrame(rows)


def false_matches(ck: D.FERDataset, fer_train: np.ndarray) -> pd.DataFrame:
    subject = ck.meta["subject"].astype(str).to_numpy()
    matched = 0
    for s in np.unique(subject):
        matched += len(dup.near_duplicates(ck.images[subject == s], ck.images[subject != s]))
    cross = len(dup.near_duplicates(ck.images, fer_train))
    return pd.DataFrame([
        {"negatives": "CK+48 image vs every other subject's images", "images": len(ck), "false matches": matched,
         "rate": matched / len(ck)},
        {"negatives": "CK+48 image vs FER-2013 Training", "images": len(ck), "false matches": cross,
         "rate": cross / len(ck)}])


def fer_tables(ds: D.FERDataset) -> dict:
    train = ds.splits == "Training"
    t = time.perf_counter()
    best = dup.near_duplicates(ds.images[~train], ds.images[train])
    seconds_cross = time.perf_counter() - t
    best["split"] = ds.splits[~train][best["i"]]
    by_kind = best.pivot_table(index="split", columns="kind", values="i", aggfunc="count", fill_value=0)
    by_kind["any"] = by_kind.sum(axis=1)
    by_kind["of"] = [int((ds.splits == s).sum()) for s in by_kind.index]
    t = time.perf_counter()
    pairs = D.dataset_pairs(ds, cache_dir=False)
    seconds_self = time.perf_counter() - t
    fam = D.families(ds, pairs)
    table = D.family_table(ds, fam)
    leaked = D.leaked_rows(ds, "Training", fam)
    dist = best[best["kind"] != "exact"]["distance"]
    return {
        "test vs Training (best match per test image)": by_kind.reset_index().to_dict("records"),
        "seconds test vs Training": round(seconds_cross, 1),
        "seconds all pairs (families)": round(seconds_self, 1),
        "pairs by kind": pairs["kind"].value_counts().to_dict(),
        "families of 2+": int(len(table)), "rows in families": int(table["n"].sum()),
        "largest family": int(table["n"].max()),
        "families spanning splits": int(table["cross_split"].sum()),
        "families with conflicting labels": int(table["conflicting"].sum()),
        "rows in conflicting families": int(table.loc[table["conflicting"], "n"].sum()),
        "conflicting families by majority class": table[table["conflicting"]]["majority"].value_counts().to_dict(),
        "test rows whose family holds a Training image": {
            s: int((leaked & (ds.splits == s)).sum()) for s in ("PublicTest", "PrivateTest")},
        "hash distance of near/mirror matches (quantiles 10/50/90%)": [float(q) for q in dist.quantile([.1, .5, .9])],
    }


def shipped_accuracy(ds: D.FERDataset) -> pd.DataFrame:
    """The shipped model (``fer_utils/predict/default_model``) on each test split: all images, the byte copies of a
    Training image, the other copies (near-duplicates and mirrors: their family holds a Training image; the model
    trained on Training minus its validation carve, and validation images are Training images too), the rest."""
    from fer_utils.predictor import load_predictor

    model = Path(D.__file__).parents[1] / "predict" / "default_model"
    predictor = load_predictor(model)
    leaked = D.leaked_rows(ds, "Training")
    exact = D.copies_of_training(ds, "Training")
    rows = []
    for tta in ("default", "ten_crop"):
        for split in ("PublicTest", "PrivateTest"):
            idx = np.flatnonzero(ds.splits == split)
            right = predictor.predict(ds.images[idx], tta=tta).argmax(1) == ds.labels[idx]
            for part, mask in (("all", np.ones(len(idx), bool)), ("byte copies of Training", exact[idx]),
                               ("near-duplicates or mirrors of Training", leaked[idx] & ~exact[idx]),
                               ("without any copy (dedup)", ~leaked[idx])):
                rows.append({"TTA": tta, "split": split, "images": part, "n": int(mask.sum()),
                             "accuracy": float(right[mask].mean())})
            print(rows[-4:], flush=True)
    return pd.DataFrame(rows)


def shipped_against(ds: D.FERDataset, earlier, split: str = "PrivateTest") -> pd.DataFrame:
    """The shipped model's recorded predictions (its ``predictions.npz``) against an ``earlier`` predictions file of
    the same rows (e.g. the same weights at another crop side): accuracy of each, faces newly right and newly wrong,
    McNemar's p, on ``split``'s images, their copies of Training images (byte copies, near-duplicates, mirrors) and
    the rest."""
    from fer_utils import runs
    from fer_utils.experiments.seeds import leaks
    from fer_utils.predict.shipped import DEFAULT_DIR as model
    from fer_utils.stats import mcnemar_test

    now, then = runs.load_predictions(model), runs.load_predictions(earlier)
    if not np.array_equal(now["source_ids"], then["source_ids"]):
        raise ValueError(f"{earlier}: its rows are not the shipped model's ({model / 'predictions.npz'})")
    keep = now["split"] == split
    leaked = np.isin(np.asarray(now["source_ids"][keep]).astype(str), list(leaks(ds)[1]))
    y, new, old = now["y_true"][keep], now["y_pred"][keep], then["y_pred"][keep]
    out = []
    for part, mask in (("all", np.ones(len(y), bool)), ("copies of Training (byte, near, mirror)", leaked),
                       ("without any copy (dedup)", ~leaked)):
        test = mcnemar_test(y[mask], new[mask], old[mask])
        out.append({"split": split, "images": part, "n": int(mask.sum()),
                    "earlier_accuracy": round(float(np.mean(old[mask] == y[mask])), 4),
                    "shipped_accuracy": round(float(np.mean(new[mask] == y[mask])), 4),
                    "newly_right": test["a right b wrong"], "newly_wrong": test["a wrong b right"],
                    "mcnemar_p": round(test["p"], 4)})
    return pd.DataFrame(out)


def _markdown(df: pd.DataFrame) -> str:
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
                     + ["| " + " | ".join(r) + " |" for r in cells])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="images per transformation (300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT / "near_duplicates"))
    p.add_argument("--shipped", action="store_true", help="only score the shipped model with and without copies "
                   "(writes <out>_shipped.csv)")
    p.add_argument("--against", metavar="PREDICTIONS_NPZ",
                   help="with --shipped: compare the shipped model's recorded predictions with this earlier file's "
                        "on PrivateTest, with and without copies, McNemar (writes <out>_shipped_against.csv)")
    args = p.parse_args(argv)
    if args.against and not (args.shipped and Path(args.against).is_file()):
        p.error(f"--against {args.against!r}: expected an existing predictions .npz file, with --shipped")
    root = Path(os.environ["FER_DATA_DIR"])
    fer = D.load_dataset("fer2013", root)
    if args.against:
        table = shipped_against(fer, args.against)
        table.to_csv(Path(args.out + "_shipped_against.csv"), index=False)
        print(_markdown(table))
        return
    if args.shipped:
        table = shipped_accuracy(fer)
        table.to_csv(Path(args.out + "_shipped.csv"), index=False)
        print(_markdown(table))
        return
    ck = D.load_dataset("ckplus", root)
    train = fer.images[fer.splits == "Training"]
    result = {"command": "python benchmarks/near_duplicates.py", "threshold": dup.NEAR_THRESHOLD, "gate": near.GATE,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d")}
    rec = recall(train, args.n, args.seed)
    neg = false_matches(ck, train)
    print(neg, flush=True)
    result.update({"recall": rec.to_dict("records"), "false matches": neg.to_dict("records"), **fer_tables(fer)})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    md = ["# Near-duplicate finder: measured", "", f"`{result['command']}` on {result['date']} ({result['machine']}); "
          f"threshold {dup.NEAR_THRESHOLD} (fine detail), gate {near.GATE} (plain correlation).", "",
          "## Recall on transformed FER-2013 Training images", "", _markdown(rec), "",
          "## False matches on different photographs", "", _markdown(neg), "",
          "## FER-2013", "", "```", json.dumps({k: v for k, v in result.items()
                                                 if k not in ("recall", "false matches")}, indent=1, default=str),
          "```", ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
