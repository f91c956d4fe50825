"""What each ingredient of the profile's training recipe buys, and how fast it gets there.

Trains the recipe of notebook 03 (``params/<profile>.yaml``) on a short budget, once whole and once without each
ingredient (``fer_utils.experiments.recipe.VARIANTS``), on notebook 03's own data split, then writes:

- ``<out>/recipe_ablation_<profile>.csv``: per variant, train minutes, best validation accuracy, accuracy and
  macro-F1 on each test split as published and deduplicated, the difference to the full recipe (or
  ``--reference``) and McNemar's p against it (PrivateTest), the validation accuracy with and without the
  validation images that copy a training image; ``<out>/recipe_ablation_<profile>.md``: the same and the minutes
  to accuracy as the Markdown tables the README quotes; with ``--tta-matrix``,
  ``<out>/recipe_tta_matrix_<profile>.csv``: every trained variant's test accuracy under every test-time
  augmentation (they interact with training augmentation);
- with ``--seed-table 0,1,2`` (trains nothing): ``<out>/recipe_seeds_<profile>_e<epochs>.csv`` and ``.md``, each
  variant's finished runs of those seeds side by side (official and deduplicated scores, McNemar against the first
  seed), their mean and sd, and their ensemble (``recipe_ablation/e<epochs>-ensemble-s0-1-2/<variant>/``); with
  ``--reference`` (default ``full``) and another variant,
  ``<out>/recipe_seeds_<profile>_e<epochs>_<variant>_vs_<reference>.csv`` and ``.md``: the variant against the
  reference seed by seed (McNemar per seed and between the ensembles, a paired t-test over seeds, the smallest mean
  difference it calls significant and the one it finds with 80% power), and against ``full`` too when it is tabled
  (``--variants full,longer,longer_distill --reference longer``);
- with a teacher variant, ``<out>/teacher_<profile>.json``: the teacher's members, their model checksums, its TTA, its
  inference minutes and what its targets carry (``distill.summary``);
- ``<out>/time_to_accuracy_<profile>.csv`` and ``.png``: validation accuracy against training minutes for
  notebook 03's recipe runs (``reports/<profile>/03_baselines/<model>/seed*``, when they exist), the short full
  recipe, the old ``cpu`` setting (variant ``old_cpu``) and the longer schedule (``longer``), with minutes to
  reach 55/60/65% validation accuracy.

Every variant is a resumable run folder ``reports/<profile>/recipe_ablation/e<epochs>-s<seed>/<variant>/``: run the
same command again after an interruption and finished variants are reused, an interrupted one resumes. A variant
folder whose recipe no longer matches the profile is refused (exit code 2), never overwritten.

Usage (from the repository root)::

    python benchmarks/recipe.py --profile cpu --epochs 7                       # every variant (hours on a CPU)
    python benchmarks/recipe.py --profile cpu --epochs 7 --variants full,flip_tta,no_tta,old_cpu
    python benchmarks/recipe.py --profile smoke --epochs 1 --variants full,no_label_smoothing,no_tta
    python benchmarks/recipe.py --profile cpu --epochs 7 --tta-matrix          # reuses the variants, adds the TTAs
    python benchmarks/recipe.py --profile cpu --epochs 26 --variants full,ema,erasing,distill \
        --teacher reports/cpu/03_baselines/msca_resnet/seed0,reports/cpu/03_baselines/msca_resnet/seed1
    python benchmarks/recipe.py --profile cpu --epochs 26 --variants full --seed 1     # one more seed of the recipe
    python benchmarks/recipe.py --profile cpu --epochs 26 --variants full --seed-table 0,1,2  # seeds, mean, ensemble
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


def parse_args(argv=None):
    from fer_utils.experiments import recipe as R

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu", help="params/<profile>.yaml whose notebook 03 holds the recipe")
    ap.add_argument("--epochs", type=int, default=7,
                    help="epochs of every variant but old_cpu (its own 14), longer and longer_distill (1.4x these) "
                         "(default: %(default)s)")
    ap.add_argument("--variants", default=",".join([*(v for v in R.VARIANTS if v not in R.TEACHER_VARIANTS),
                                                    *R.TTA_VARIANTS, *R.WEIGHT_VARIANTS]),
                    help="comma-separated variants, trained in this order (default: all but those needing a teacher: "
                         f"{', '.join(R.TEACHER_VARIANTS)})")
    ap.add_argument("--teacher", default="",
                    help="comma-separated trained run folders whose averaged probabilities the teacher variants "
                         f"({', '.join(R.TEACHER_VARIANTS)}) learn from "
                         "(e.g. reports/cpu/03_baselines/msca_resnet/seed0,...seed1,...seed2), or crowd: FER+'s "
                         "votes, for longer_batch_64_crowd")
    ap.add_argument("--teacher-tta", default="ten_crop",
                    help="the teacher's test-time augmentation (default: %(default)s)")
    ap.add_argument("--reference", default="full",
                    help="the variant every other is compared with (difference, McNemar; seed by seed with "
                         "--seed-table), one of --variants (default: %(default)s; e.g. separable_fuse for "
                         "separable_distill; full is trained or reused either way, and with --seed-table every "
                         "variant is compared with full too when it is tabled)")
    ap.add_argument("--seed", type=int, default=0, help="training seed of every variant (default: %(default)s)")
    ap.add_argument("--seed-table", default="",
                    help="comma-separated seeds (e.g. 0,1,2) whose finished runs of each variant are tabled with their "
                         "mean, sd and ensemble (recipe_seeds_<profile>_e<epochs>.csv / .md), and each variant "
                         "against --reference, and against full when tabled, seed by seed "
                         "(..._<variant>_vs_<reference>.csv / .md); trains nothing")
    ap.add_argument("--tta-matrix", action="store_true",
                    help="also score every trained variant under every TTA (recipe_tta_matrix_<profile>.csv)")
    ap.add_argument("--reports-dir", default="reports", help="where reports/<profile>/ lives")
    ap.add_argument("--out", default="benchmarks/results", help="folder of the CSV and PNG outputs")
    ap.add_argument("--params-dir", default="params")
    ap.add_argument("--notebooks-dir", default="notebooks")
    args = ap.parse_args(argv)
    args.variants = R.check_variants([v.strip() for v in args.variants.split(",") if v.strip()])
    if args.epochs < 1:
        ap.error(f"--epochs {args.epochs}: expected an integer >= 1")
    try:
        args.seed_table = [int(t) for t in args.seed_table.split(",") if t.strip()]
    except ValueError:
        ap.error(f"--seed-table {args.seed_table!r}: expected comma-separated integers, e.g. 0,1,2")
    if len(args.seed_table) == 1 or len(set(args.seed_table)) != len(args.seed_table):
        ap.error(f"--seed-table {args.seed_table}: expected at least two distinct seeds")
    args.seed_table = sorted(args.seed_table)  # the first (smallest) is the reference; one ensemble folder per set
    rescored = [v for v in args.variants if v in R.TTA_VARIANTS or v in R.WEIGHT_VARIANTS]
    if args.seed_table and rescored:
        ap.error(f"--seed-table: variant(s) {rescored} rescore another run's model; table the trained variant "
                 "(e.g. --variants full)")
    if args.reference not in {R.FULL, *args.variants}:
        tabled = list(dict.fromkeys([R.FULL, *args.variants]))
        ap.error(f"--reference {args.reference!r}: expected one of the variants tabled, {tabled}")
    args.teacher = [t.strip() for t in args.teacher.split(",") if t.strip()]
    needs = [v for v in args.variants if v in R.TEACHER_VARIANTS]
    if needs and not args.teacher and not args.seed_table:
        ap.error(f"variant(s) {needs} need --teacher (trained run folders, or crowd)")
    by_crowd = args.teacher == ["crowd"]
    other = [v for v in needs if (R.VARIANTS[v][1].get("teacher") == "crowd") != by_crowd]
    if args.teacher and other:
        ap.error(f"--teacher {','.join(args.teacher)}: variant(s) {other} learn from "
                 + ("trained run folders: train them in another call" if by_crowd else "--teacher crowd"))
    missing = [t for t in args.teacher if not Path(t).is_dir() and args.teacher != ["crowd"]]
    if missing:
        ap.error(f"--teacher: no such run folder(s) {missing}")
    return args


def main(argv=None) -> int:
    import numpy as np
    import pandas as pd

    from fer_utils import artifacts, experiments, notebook_exec, plots
    from fer_utils.experiments import recipe as R
    from fer_utils.experiments.published import published_table

    try:
        args = parse_args(argv)
        recipe = R.recipe_from_profile(args.profile, args.params_dir, args.notebooks_dir)
    except ValueError as err:  # ParamsError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    with notebook_exec.filtered_stderr():
        artifacts.quiet_warnings()
        ds = R.load_recipe_data(recipe)
        root = Path(args.reports_dir) / args.profile
        if args.seed_table:
            return seed_tables(args, ds, root, recipe)
        budget = root / R.ABLATION_DIR / f"e{args.epochs}-s{args.seed}"  # another budget or seed: another folder
        teacher = said = None
        try:
            if any(v in R.TEACHER_VARIANTS for v in args.variants):
                from fer_utils.experiments import distill

                if args.teacher == ["crowd"]:  # FER+'s votes on the Training faces: nothing to infer
                    from fer_utils.data.discovery import candidate_roots, discover
                    from fer_utils.experiments.label_agreement import crowd_teacher

                    votes = discover("ferplus", recipe["data_dir"])
                    if votes is None:
                        raise FileNotFoundError("--teacher crowd: no FER+ votes (ferplus/fer2013new.csv beside the "
                                                "FER-2013 csv) under "
                                                f"{[str(r) for r in candidate_roots(recipe['data_dir'])]}")
                    teacher = crowd_teacher(ds, votes.path)
                    print(f"teacher: FER+'s crowd votes ({votes.path}) on {len(teacher['rows'])} Training rows")
                else:
                    teacher = distill.teacher_probabilities(ds, args.teacher, budget / distill.TEACHER_FILE,
                                                            tta=args.teacher_tta)
                    print(f"teacher: {len(args.teacher)} model(s), {args.teacher_tta} TTA on {len(teacher['rows'])} "
                          f"Training rows: {teacher['seconds'] / 60:.1f} min of inference"
                          + (" (computed earlier, reused)" if teacher["reused"] else ""))
                said = distill.summary(ds, teacher)
                print(f"teacher on the Training rows it labels: accuracy {said['train_accuracy']:.4f}, mean top "
                      f"probability {said['mean_top_probability']:.3f} ({said['share_top_above_90']:.1%} above 0.9), "
                      f"mean entropy {said['mean_entropy']:.3f} nats")
            folders = R.run_ablation(recipe, ds, budget, variants=args.variants, epochs=args.epochs, seed=args.seed,
                                     teacher=teacher)
        except (FileExistsError, FileNotFoundError, ValueError) as err:  # another recipe in a variant folder; a
            # teacher that does not fit; a full variant trained before keep_last (no last.keras to score)
            print(f"error: {err}", file=sys.stderr)
            return 2
        split = experiments.evaluation_splits(ds, recipe.get("eval_splits") or (), recipe.get("report_split") or "")[1]
        table = R.ablation_table(folders, ds, split=split, reference=args.reference)
        table = table.join(R.validation_copies(folders, ds))
        if teacher is not None:  # the teacher's cost, apart from the student's training minutes
            table["teacher inference minutes"] = [teacher["seconds"] / 60 if v in R.TEACHER_VARIANTS else np.nan
                                                  for v in table.index]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / f"recipe_ablation_{args.profile}.csv")
        if teacher is not None:  # what the students learned from, with its cost and what its targets carry
            (out / f"teacher_{args.profile}.json").write_text(json.dumps(
                {"members": [str(m) for m in teacher["members"]],
                 "model_sha256": [str(s) for s in teacher["model_sha256"]], "tta": str(teacher["tta"]),
                 "data_checksum": ds.checksum, "training_rows": len(teacher["rows"]),
                 "inference_minutes": float(teacher["seconds"]) / 60, "reused": bool(teacher["reused"]), **said},
                indent=2) + "\n")
        model = recipe["models"][0]
        curves_from = {f"recipe seed {p.name[4:]} ({p.parent.name})": p
                       for p in sorted((root / "03_baselines" / model).glob("seed*")) if (p / "timings.csv").exists()}
        curves_from.update({f"ablation {n}": f for n, f in folders.items() if n in (R.FULL, "old_cpu", "longer")})
        curves = R.time_to_accuracy(curves_from)
        curves.to_csv(out / f"time_to_accuracy_{args.profile}.csv", index=False)
        peer = published_table()
        peer = peer[peer.study == "peer"]
        peer_lines = {f"peer (fer package) PrivateTest {a:.4f}": a for a in peer.accuracy}
        plots.time_to_accuracy(curves, peer_lines, save_to=out / f"time_to_accuracy_{args.profile}.png")
        reach = R.minutes_to_reach(curves)
        ttas = pd.DataFrame()
        if args.tta_matrix:
            ttas = R.tta_matrix(folders, ds, split=split)
            ttas.to_csv(out / f"recipe_tta_matrix_{args.profile}.csv")
        (out / f"recipe_ablation_{args.profile}.md").write_text(R.markdown_tables(table, reach, split=split,
                                                                                   ttas=ttas, reference=args.reference))
    print(table.to_string(float_format="{:.4f}".format))
    print()
    print(reach.to_string(float_format="{:.2f}".format))
    print(f"\nwritten: {out / f'recipe_ablation_{args.profile}.csv'}, {out / f'recipe_ablation_{args.profile}.md'}, "
          f"{out / f'time_to_accuracy_{args.profile}.csv'}, {out / f'time_to_accuracy_{args.profile}.png'}"
          + (f", {out / f'teacher_{args.profile}.json'}" if teacher is not None else ""))
    return 0


def _seed_pairs(variants, reference: str) -> list:
    """(reference, variant) pairs a seed table compares: every variant but the reference and ``full`` against
    ``reference``, then, when ``full`` is tabled, every other variant against ``full`` (the reference included:
    ``full`` is the baseline of every pair it is in)."""
    from fer_utils.experiments import recipe as R

    pairs = [(reference, v) for v in variants if reference in variants and v not in (reference, R.FULL)]
    if R.FULL in variants:
        pairs += [(R.FULL, v) for v in variants if v != R.FULL and (R.FULL, v) not in pairs]
    return pairs


def seed_tables(args, ds, root: Path, recipe: dict) -> int:
    """``--seed-table``: each variant's finished seed runs side by side with their mean, sd and ensemble, in
    ``recipe_seeds_<profile>_e<epochs>.csv`` / ``.md`` (every variant's seed runs checked before anything is
    written); each other variant against ``--reference`` seed by seed (McNemar per seed and between the ensembles, a
    paired t-test over seeds) in ``recipe_seeds_<profile>_e<epochs>_<variant>_vs_<reference>.csv`` / ``.md``, and
    against ``full`` too when it is tabled and is not the reference."""
    import pandas as pd

    from fer_utils import experiments
    from fer_utils.experiments import recipe as R
    from fer_utils.experiments import seeds as S

    split = experiments.evaluation_splits(ds, recipe.get("eval_splits") or (), recipe.get("report_split") or "")[1]
    base = root / R.ABLATION_DIR
    folders = {v: {s: base / f"e{args.epochs}-s{s}" / v for s in args.seed_table} for v in args.variants}
    tables, ensembles, by_seed = [], {}, {}
    try:
        for variant in args.variants:  # all checked first: a refused seed run leaves no ensemble folder behind
            S.check_seed_runs(folders[variant])
        for variant in args.variants:
            ensembles[variant] = base / f"e{args.epochs}-ensemble-s{'-'.join(map(str, args.seed_table))}" / variant
            tables.append(S.seed_table(folders[variant], ds, split=split, ensemble_dir=ensembles[variant])
                          .assign(variant=variant))
        for ref, variant in _seed_pairs(args.variants, getattr(args, "reference", R.FULL)):
            by_seed[ref, variant] = S.variant_by_seed(folders[ref], folders[variant], ds, split=split,
                                                      ensembles=(ensembles[ref], ensembles[variant]),
                                                      names=(ref, variant))
    except (ValueError, FileNotFoundError) as err:  # a seed not trained, trained with another recipe, or scored on
        print(f"error: {err}", file=sys.stderr)     # other images than the others
        return 2
    table = pd.concat(tables).set_index("variant", append=True).swaplevel()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"recipe_seeds_{args.profile}_e{args.epochs}"
    table.to_csv(out / f"{name}.csv")
    (out / f"{name}.md").write_text("\n".join(f"`{v}`:\n\n" + S.seed_markdown(t.droplevel(0), split=split)
                                              for v, t in table.groupby(level=0, sort=False)))
    for (ref, variant), t in by_seed.items():  # each variant against the reference, seed by seed
        t.to_csv(out / f"{name}_{variant}_vs_{ref}.csv")
        (out / f"{name}_{variant}_vs_{ref}.md").write_text(S.variant_by_seed_markdown(t, names=(ref, variant)))
    if args.seed or args.tta_matrix or args.teacher:
        print("note: --seed, --tta-matrix and --teacher do nothing with --seed-table", file=sys.stderr)
    print(table.to_string(float_format="{:.4f}".format))
    for (ref, variant), t in by_seed.items():
        print(f"\n{variant} against {ref}, seed by seed:\n{t.to_string(float_format='{:.4f}'.format)}")
    print(f"\nwritten: {out / f'{name}.csv'}, {out / f'{name}.md'}"
          + "".join(f", {out / f'{name}_{v}_vs_{r}.csv'} (.md)" for r, v in by_seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
