"""Runs' PrivateTest answers against FER+'s crowd votes on the same faces (``fer_utils.experiments.label_agreement``).

Splits each run's accuracy by whether the crowd's majority gives the FER-2013 label, and scores the crowd itself
against those labels (its majority, one annotator at random), on every face and without near-duplicates of training
images. Reads saved predictions only: nothing is trained or evaluated again. Writes ``<out>.csv`` and ``<out>.md``
(refused if either exists). Usage (from the repository root; the committed
``benchmarks/results/label_agreement_private_test*``)::

    R=benchmarks/results; E=recipe_e26_s
    python benchmarks/label_agreement.py $R/${E}{0,1,2}/full $R/${E}{0,1,2}/longer_batch_64 \\
        --ensemble "full, 3 seeds=${E}0/full,${E}1/full,${E}2/full" \\
        --ensemble "longer_batch_64, 3 seeds=${E}0/longer_batch_64,${E}1/longer_batch_64,${E}2/longer_batch_64" \\
        --out $R/label_agreement_private_test
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
    ap.add_argument("runs", nargs="+", help="run folders with predictions.npz and metrics.json (labelled by their "
                                            "last two path parts)")
    ap.add_argument("--ensemble", action="append", default=[], metavar="NAME=LABEL,LABEL,...",
                    help="a row for the mean probabilities of runs given above (repeatable)")
    ap.add_argument("--split", default="PrivateTest", help="the test split scored (PublicTest or PrivateTest)")
    ap.add_argument("--profile", default="cpu", help="params/<profile>.yaml whose notebook 03 data the runs used")
    ap.add_argument("--ferplus", default=None,
                    help="FER+ votes (default: fer2013new.csv found as the suite finds FER+, e.g. under $FER_DATA_DIR)")
    ap.add_argument("--out", required=True, help="the outputs' path without extension")
    ap.add_argument("--params-dir", default="params")
    ap.add_argument("--notebooks-dir", default="notebooks")
    args = ap.parse_args(argv)
    from fer_utils.experiments import commands as C

    args.folders = C.check_runs(ap, args.runs, ("predictions.npz", "metrics.json"))
    labels = list(args.folders)
    ensembles = {}
    for spec in args.ensemble:
        name, _, members = spec.rpartition("=")
        members = list(dict.fromkeys(m.strip() for m in members.split(",") if m.strip()))
        unknown = [m for m in members if m not in labels]
        if name in labels or name in ensembles:
            ap.error(f"--ensemble {spec!r}: the name {name!r} is taken (a run's label or another ensemble)")
        if not name or len(members) < 2 or unknown:
            ap.error(f"--ensemble {spec!r}: expected NAME=LABEL,LABEL,... with two or more different runs of {labels}"
                     + (f" (not among them: {unknown})" if unknown else ""))
        ensembles[name] = members
    args.ensembles = ensembles
    if args.ferplus is None:  # where the suite finds FER+ elsewhere (FER_DATA_DIR, ./data, ../data, Kaggle inputs)
        from fer_utils.data.discovery import candidate_roots, discover

        found = discover("ferplus")
        if found is None:
            ap.error("--ferplus not given and no FER+ votes (ferplus/fer2013new.csv beside the FER-2013 csv) under "
                     f"{[str(r) for r in candidate_roots()]}"
                     + ("" if os.environ.get("FER_DATA_DIR") else " (FER_DATA_DIR not set)"))
        args.ferplus = found.path
    if not Path(args.ferplus).is_file():
        ap.error(f"--ferplus {args.ferplus}: file not found (expected FER+ fer2013new.csv)")
    C.refuse_taken(ap, args.out)
    return args


def main(argv=None) -> int:
    from fer_utils import artifacts, notebook_exec
    from fer_utils.experiments import commands as C
    from fer_utils.experiments import label_agreement as L
    from fer_utils.experiments import seeds

    args = parse_args(argv)
    folders = args.folders
    with notebook_exec.filtered_stderr():
        artifacts.quiet_warnings()
        ds = C.runs_data(folders, args)
        if ds is None:
            return 2
        _, leaked = seeds.leaks(ds)
    try:
        preds = L.load_runs(folders)
        preds.update({name: seeds.averaged({m: preds[m] for m in members}) for name, members in args.ensembles.items()})
        tab = L.table(preds, args.ferplus, split=args.split, leaked=leaked)
    except (ValueError, OSError) as err:  # runs on other faces or classes, votes not aligned with fer2013.csv
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = L.markdown(tab)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tab.to_csv(f"{args.out}.csv", index=False)
    Path(f"{args.out}.md").write_text(text)
    print(text)
    print(f"written: {args.out}.csv, {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
