"""How good a teacher the committed runs would make: every ensemble of two or more finished run folders.

Issue 24 asks for distillation from an ensemble's ten-crop probabilities. Before training seeds for a teacher, this
asks what averaging the runs already committed gives: for every combination of the given run folders (trained on the
same data, scored on the same test images: checked), the mean of their saved test probabilities is scored like any
run (accuracy and macro-F1 as published and without near-duplicates of training images, McNemar against the first
folder on ``--split``). Nothing is trained; each ensemble is an ordinary ensemble run folder under ``--work``.

Usage (from the repository root)::

    python benchmarks/ensembles.py benchmarks/results/recipe_e26_s0/{full,ema,erasing,separable_fuse} \\
        --out benchmarks/results/recipe_e26_s0_ensembles.csv
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="finished run folders (metrics.json + predictions.npz); the first is the "
                                            "reference of the McNemar tests")
    ap.add_argument("--profile", default="cpu", help="params/<profile>.yaml whose notebook 03 data the runs used")
    ap.add_argument("--split", default="PrivateTest", help="the split of the differences and McNemar tests")
    ap.add_argument("--out", required=True, help="the CSV to write")
    ap.add_argument("--work", default="", help="where the ensemble folders go (default: a temporary folder)")
    ap.add_argument("--params-dir", default="params")
    ap.add_argument("--notebooks-dir", default="notebooks")
    args = ap.parse_args(argv)
    names = [Path(r).name for r in args.runs]
    if len(args.runs) < 2 or len(set(names)) != len(names):
        ap.error(f"expected two or more run folders with distinct names, got {names} (seeds of one variant, "
                 "e26-s<k>/full: use benchmarks/recipe.py --seed-table)")
    for file in ("metrics.json", "predictions.npz"):
        missing = [r for r in args.runs if not (Path(r) / file).is_file()]
        if missing:
            ap.error(f"no {file} in {missing}: expected finished run folders")
    if args.work and Path(args.work).is_dir() and any(Path(args.work).iterdir()):
        ap.error(f"--work {args.work}: not empty; give a new folder (earlier ensembles are not overwritten)")
    return args


def ensemble_table(folders: dict, ds, *, split: str, work: Path):
    """``compare_runs`` of the single runs and of every ensemble of two or more of them (rows ``a + b``), against the
    first run; ``members`` counts each row's runs."""
    from fer_utils.experiments import recipe as R
    from fer_utils.experiments import seeds as S

    names = list(folders)
    rows = dict(folders)
    for k in range(2, len(names) + 1):
        for combo in itertools.combinations(names, k):
            name = " + ".join(combo)
            S.evaluate_ensemble(name, [folders[n] for n in combo], ds, work / "__".join(combo))
            rows[name] = work / "__".join(combo)
    table = R.compare_runs(rows, ds, split=split, reference=names[0], index="run")
    table.insert(0, "members", [name.count(" + ") + 1 for name in rows])
    return table


def main(argv=None) -> int:
    from fer_utils import artifacts, notebook_exec, runs
    from fer_utils.experiments import recipe as R

    args = parse_args(argv)
    folders = {Path(r).name: Path(r) for r in args.runs}
    try:
        recipe = R.recipe_from_profile(args.profile, args.params_dir, args.notebooks_dir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with notebook_exec.filtered_stderr():
        artifacts.quiet_warnings()
        ds = R.load_recipe_data(recipe)
        if ds.is_synthetic:
            print("error: no real dataset found (set FER_DATA_DIR): the runs cannot be checked against synthetic "
                  "faces", file=sys.stderr)
            return 2
        checksums = {n: runs.read_metrics(f)["headline"].get("data_checksum") for n, f in folders.items()}
        unknown = sorted(n for n, c in checksums.items() if not c)
        other = {n: c[:8] for n, c in checksums.items() if c and c != ds.checksum}
        if unknown or other:
            print(f"error: runs {unknown} record no data checksum; runs {sorted(other)} were trained on other data "
                  f"than the {args.profile} profile's notebook 03 split (checksum {ds.checksum[:8]}; theirs {other})",
                  file=sys.stderr)
            return 2
        splits = set(runs.load_predictions(next(iter(folders.values())))["split"].tolist())
        if args.split not in splits:
            print(f"error: --split {args.split!r}: the runs were scored on {sorted(splits)}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            try:
                table = ensemble_table(folders, ds, split=args.split, work=Path(args.work or tmp))
            except ValueError as err:  # members scored on other images
                print(f"error: {err}", file=sys.stderr)
                return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out)
    cols = ["members", f"{args.split}_accuracy", f"{args.split}_dedup_accuracy", "McNemar p"]
    print(table[cols].sort_values(f"{args.split}_accuracy", ascending=False).to_string(float_format="{:.4f}".format))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
