"""The crop side of ten-crop test-time augmentation, chosen on validation for finished recipe runs.

Ten-crop's five crops (corners and centre, each mirrored) take ``crop_fraction`` of the face's side, 0.875 (42 of 48
pixels) in every run so far, a default nothing chose. For each run folder this scores ten-crop on the validation
split at every ``--fractions`` value, chooses the fraction with the best mean validation accuracy over the runs
(``fer_utils.experiments.tta_crop``), then scores each run on ``--split`` with the chosen fraction against its own.
Nothing is trained; the test split takes no part in the choice.

Writes ``<out>_<validation split>.csv`` (the grid, e.g. ``_validation.csv``; a killed run resumes from it),
``<out>.csv`` (the test table) and ``<out>.md`` (both as Markdown). Usage (from the repository root; the committed
``benchmarks/results/tta_crop_e26_longer*``)::

    python benchmarks/tta_crop.py reports/cpu/recipe_ablation/e26-s{0,1,2}/longer \\
        reports/cpu/recipe_ablation/e26-s{0,1,2}/longer_distill \\
        --fractions 0.875,0.9,0.92,0.94,0.95,0.98 --out benchmarks/results/tta_crop_e26_longer
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="finished run folders (model.keras + preprocessing.json + metrics.json)")
    ap.add_argument("--fractions", default="0.875,0.9,0.92,0.94,0.95,0.98",
                    help="comma-separated crop fractions in (0, 1), each a different number of pixels "
                         "(default: %(default)s: 42, 43, 44, 45, 46 and 47 of 48)")
    ap.add_argument("--profile", default="cpu", help="params/<profile>.yaml whose notebook 03 data the runs used")
    ap.add_argument("--validation-split", default="Validation", help="the split the fraction is chosen on")
    ap.add_argument("--split", default="PrivateTest", help="the test split scored with the chosen fraction")
    ap.add_argument("--out", required=True, help="the outputs' path without extension")
    ap.add_argument("--params-dir", default="params")
    ap.add_argument("--notebooks-dir", default="notebooks")
    args = ap.parse_args(argv)
    from fer_utils.experiments import commands as C

    args.folders = C.check_runs(ap, args.runs, ("model.keras", "preprocessing.json", "metrics.json"),
                                what="finished run folders with their model")
    try:
        args.fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    except ValueError:
        ap.error(f"--fractions {args.fractions!r}: expected comma-separated numbers, e.g. 0.875,0.95")
    if len(args.fractions) < 2:
        ap.error(f"--fractions {args.fractions}: expected two or more to choose from")
    from fer_utils.experiments import tta_crop
    try:
        tta_crop.crop_pixels(args.fractions, 48)  # the range and distinctness; the model's side is checked again
    except ValueError as err:
        ap.error(f"--fractions: {err}")
    if args.split == args.validation_split:
        ap.error(f"--split {args.split!r}: the split the fraction is chosen on cannot also judge it")
    C.refuse_taken(ap, args.out)
    return args


def main(argv=None) -> int:
    from fer_utils import artifacts, notebook_exec
    from fer_utils.experiments import commands as C
    from fer_utils.experiments import tta_crop

    args = parse_args(argv)
    folders = args.folders
    with notebook_exec.filtered_stderr():
        artifacts.quiet_warnings()
        ds = C.runs_data(folders, args)
        if ds is None:
            return 2
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        try:
            grid = tta_crop.validation_grid(folders, ds, args.fractions, split=args.validation_split,
                                            cache=f"{args.out}_{args.validation_split.lower()}.csv")
            chosen = tta_crop.choose(grid)
            table = tta_crop.test_table(folders, ds, chosen, split=args.split)
        except ValueError as err:  # a split the data lacks, an unreadable grid
            print(f"error: {err}", file=sys.stderr)
            return 2
    table.to_csv(f"{args.out}.csv", index=False)
    Path(f"{args.out}.md").write_text(tta_crop.markdown(grid, table, chosen))
    print(Path(f"{args.out}.md").read_text())
    print(f"chosen on {args.validation_split}: {chosen:g}\nwritten: {args.out}_{args.validation_split.lower()}.csv, "
          f"{args.out}.csv, {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
