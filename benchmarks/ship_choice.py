"""Which finished recipe run the shipped default model should be, by the rule of ``fer_utils.experiments.ship_choice``.

Scores every candidate run folder on the validation split with what the shipped model computes (ten-crop at its crop
side), compares each with the shipped model's source run face by face (McNemar, Holm over the candidates) and says
whether the rule keeps or replaces it. Nothing is trained or exported; the test split takes no part in the choice.

Writes ``<out>.csv`` (one row per run), ``<out>.md`` (the table and the verdict), ``<out>_validation.npz`` (the true
classes and every run's predicted classes, from which the verdict can be derived again) and keeps
``<out>_cache.npz`` (a killed call resumes from it). Usage (from the repository root; the committed
``benchmarks/results/ship_choice_e26*``)::

    python benchmarks/ship_choice.py reports/cpu/recipe_ablation/e26-s{0,1,2}/longer_batch_64 \\
        reports/cpu/recipe_ablation/e26-s{0,1,2}/longer ... --out benchmarks/results/ship_choice_e26
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CARD = _REPO_ROOT / "fer_utils" / "predict" / "default_model" / "model_card.json"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="finished run folders (model.keras + preprocessing.json + metrics.json), "
                                            "the shipped model's source run among them")
    ap.add_argument("--shipped", default=None,
                    help="the shipped model's source run as <parent>/<name> (default: the model card's source_run)")
    ap.add_argument("--fraction", type=float, default=None,
                    help="ten-crop's crop side (default: the model card's crop_fraction, what the shipped model uses)")
    ap.add_argument("--profile", default="cpu", help="params/<profile>.yaml whose notebook 03 data the runs used")
    ap.add_argument("--out", required=True, help="the outputs' path without extension")
    ap.add_argument("--params-dir", default="params")
    ap.add_argument("--notebooks-dir", default="notebooks")
    args = ap.parse_args(argv)
    from fer_utils.experiments import commands as C

    args.folders = C.check_runs(ap, args.runs, ("model.keras", "preprocessing.json", "metrics.json"),
                                what="finished run folders with their model")
    labels = list(args.folders)
    card = json.loads(CARD.read_text())
    args.shipped = args.shipped or C.label(card["source_run"])
    if args.shipped not in labels:
        ap.error(f"--shipped {args.shipped!r} is not among the runs {labels}: give the shipped model's source run too")
    args.fraction = float(card["crop_fraction"]) if args.fraction is None else args.fraction
    if not 0 < args.fraction < 1:
        ap.error(f"--fraction {args.fraction}: expected a number in (0, 1)")
    C.refuse_taken(ap, args.out, (".csv", ".md", "_validation.npz"))
    return args


def main(argv=None) -> int:
    import numpy as np

    from fer_utils import artifacts, notebook_exec
    from fer_utils.experiments import commands as C
    from fer_utils.experiments import recipe as R
    from fer_utils.experiments import ship_choice

    args = parse_args(argv)
    folders = args.folders
    with notebook_exec.filtered_stderr():
        artifacts.quiet_warnings()
        ds = C.runs_data(folders, args)
        if ds is None:
            return 2
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        preds = ship_choice.validation_predictions(folders, ds, fraction=args.fraction,
                                                   cache=f"{args.out}_cache.npz")
    y = ds.labels[R.split_rows(ds, "Validation")]
    decision = ship_choice.decide(y, preds, args.shipped)
    tab = ship_choice.table(decision, folders, fraction=args.fraction)
    text = ship_choice.markdown(tab, decision, fraction=args.fraction)  # every output made before any is written
    labels = sorted(preds)
    np.savez_compressed(f"{args.out}_validation.npz", y=y.astype(np.int8), runs=np.array(labels),
                        predictions=np.stack([preds[k] for k in labels]).astype(np.int8),
                        shipped=np.array(args.shipped), fraction=np.array(args.fraction),
                        data_checksum=np.array(ds.checksum))
    tab.to_csv(f"{args.out}.csv", index=False)
    Path(f"{args.out}.md").write_text(text)
    print(text)
    print(f"written: {args.out}.csv, {args.out}.md, {args.out}_validation.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
