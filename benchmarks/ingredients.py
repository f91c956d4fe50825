"""Every recipe ingredient measured at full length, in one table: the committed ablation tables put together.

Issue 24 measured its ingredients one run at a time, each written by ``benchmarks/recipe.py`` to its own
``recipe_ablation_cpu_e26_<name>.csv`` with the reference (``full``) and the variant, McNemar against ``full`` on the
same test images. This script reads those files and writes them as one table (the reference once, then every other
row in the order given, the file it came from in ``from``), after checking that they can stand together: every file
has a ``full`` row with the same scores as the first file's (one reference run, or a rerun that matched it to the
last digit; each row's ``reference train minutes`` says which), every row the reference's epochs (times the
variant's own factor: ``longer``), and no variant twice.
McNemar's p is Holm-adjusted within two families: the reference model scored another way (TTA, last epoch) and the
ingredients trained anew. With ``--images``, each difference gets its 95% interval and the smallest difference its
test detects. Nothing is trained or scored again; the Markdown is ``recipe.markdown_tables``'s.

Usage (a new ``--out``: an existing table is not overwritten)::

    cd benchmarks/results && python ../ingredients.py \\
        recipe_ablation_cpu_e26{,_candidates,_distill,_ema,_erasing,_separable,_longer}.csv \\
        --images 3589 --out /tmp/recipe_ingredients_cpu_e26.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

#: Columns that must be equal in every file's ``full`` row: the reference's scores.
REFERENCE_SCORES = ("best val acc", "PublicTest_accuracy", "PublicTest_macro_f1", "PrivateTest_accuracy",
                    "PrivateTest_macro_f1", "PublicTest_dedup_accuracy", "PrivateTest_dedup_accuracy")
SPLIT = "PrivateTest"  # the split of recipe.py's differences and McNemar tests
DISCORDANT = "discordant (full right / variant right)"
#: Each row's family for Holm's correction: the reference model scored another way, or an ingredient trained anew.
RESCORED, TRAINED = "the reference model rescored", "trained with the ingredient"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+", help="ablation CSVs of benchmarks/recipe.py, each with a 'full' row")
    ap.add_argument("--images", type=int, default=0,
                    help=f"images of {SPLIT} (FER-2013: 3589): adds each difference's 95%% interval and the smallest "
                         "difference each McNemar test detects with 80%% power (default: not computed)")
    ap.add_argument("--out", required=True, help="the CSV to write (the Markdown goes next to it, .md)")
    args = ap.parse_args(argv)
    missing = [t for t in args.tables if not Path(t).is_file()]
    if missing:
        ap.error(f"no such table(s) {missing}")
    taken = [str(p) for p in (Path(args.out), Path(args.out).with_suffix(".md")) if p.exists()]
    if taken:
        ap.error(f"--out: {taken} exist; give a new name (an earlier table is not overwritten; diff the two)")
    return args


def _read(path: Path):
    import pandas as pd

    table = pd.read_csv(path).set_index("variant")
    needed = ["epochs", "train minutes", *REFERENCE_SCORES, f"diff vs full ({SPLIT})", "McNemar p", DISCORDANT]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise ValueError(f"{path}: no column(s) {absent}: not an ablation table compared with 'full' on {SPLIT} "
                         "(benchmarks/recipe.py with the default --reference)")
    if "full" not in table.index:
        raise ValueError(f"{path}: no 'full' row, so its rows were not compared with the reference")
    untested = [v for v in table.index.drop("full") if pd.isna(table.loc[v, "McNemar p"])
                or pd.isna(table.loc[v, DISCORDANT])]
    if untested or not pd.isna(table.loc["full", "McNemar p"]):
        raise ValueError(f"{path}: rows {untested or ['full']} break the table's shape: every row but 'full' "
                         "compared with 'full' (McNemar p and discordant counts), 'full' with nothing")
    return table


def ingredient_table(tables, *, images: int = 0):
    """The ablation CSVs ``tables`` as one DataFrame indexed by variant: the first file's ``full`` row, then every
    other row of every file in order, with the file's name in ``from``.

    ``family``: TTA and weight variants score the reference's own model another way (:data:`RESCORED`), the others
    train with an ingredient (:data:`TRAINED`); ``McNemar p (Holm)`` is Holm-adjusted within each family (the
    questions differ: how to score the model, what to train). ``images``: the split's size; when given,
    ``diff 95% low`` / ``diff 95% high`` bound each accuracy difference (``stats.paired_difference_interval`` of
    the discordant counts) and ``detectable (80% power)`` is the smallest true difference its test detects at an
    uncorrected 0.05 (``stats.detectable_difference_mcnemar``).

    Raises:
        ValueError: a file that is not an ablation table against ``full`` (columns, rows), a ``full`` row whose
            scores differ from the first file's (named with the column), rows of another number of epochs, or a
            variant in two files.
    """
    import numpy as np
    import pandas as pd

    from fer_utils import stats
    from fer_utils.experiments import recipe as R

    parts, reference = [], None
    for path in map(Path, tables):
        table = _read(path)
        full = table.loc["full"]
        if reference is None:
            reference = full
            parts.append(table.loc[["full"]].assign(**{"from": path.name,
                                                       "reference train minutes": float(full["train minutes"])}))
        for column in REFERENCE_SCORES:
            if not np.isclose(float(full[column]), float(reference[column]), rtol=0, atol=1e-12):
                raise ValueError(f"{path}: its 'full' row has {column} {float(full[column]):.6f}, the first table's "
                                 f"{float(reference[column]):.6f}: another reference run")
        parts.append(table.drop(index="full").assign(**{"from": path.name,
                                                        "reference train minutes": float(full["train minutes"])}))
    together = pd.concat(parts)
    budget = int(together.loc["full", "epochs"])  # the first table's reference (the others' are dropped)
    expected = {v: round(budget * R.VARIANTS.get(v, ("", {}))[1].get("epochs_factor", 1)) for v in together.index}
    wrong = {v: int(e) for v, e in together["epochs"].items() if int(e) != expected[v]}
    if wrong:
        raise ValueError(f"rows of other budgets than the reference's {budget} epochs (a variant's own factor, e.g. "
                         f"'longer', allowed): {wrong}")
    twice = together.index[together.index.duplicated()].unique().tolist()
    if twice:
        where = together.loc[twice, "from"].groupby(level=0).apply(list).to_dict()
        raise ValueError(f"variant(s) {twice} appear in more than one table: {where}")
    rescored = {*R.TTA_VARIANTS, *R.WEIGHT_VARIANTS}
    together["family"] = ["" if v == "full" else RESCORED if v in rescored else TRAINED for v in together.index]
    for family in (RESCORED, TRAINED):
        rows = together["family"] == family
        together.loc[rows, "McNemar p (Holm)"] = stats.holm(together.loc[rows, "McNemar p"])[0]
    if images:
        counts = together[DISCORDANT].dropna().map(lambda cell: [int(k) for k in str(cell).split("/")])
        bounds = [stats.paired_difference_interval(images, full_only, variant_only)
                  for full_only, variant_only in counts]
        together.loc[counts.index, "diff 95% low"] = [low for low, _ in bounds]
        together.loc[counts.index, "diff 95% high"] = [high for _, high in bounds]
        together.loc[counts.index, "detectable (80% power)"] = [
            stats.detectable_difference_mcnemar(images, sum(pair)) for pair in counts]
    return together


def main(argv=None) -> int:
    from fer_utils.experiments import recipe as R

    args = parse_args(argv)
    try:
        table = ingredient_table(args.tables, images=args.images)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out)
    out.with_suffix(".md").write_text(R.markdown_tables(table, split=SPLIT))
    print(out.with_suffix(".md").read_text())
    print(f"written: {out}, {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
