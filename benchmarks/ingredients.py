"""Every recipe ingredient measured at full length, in one table: the committed ablation tables put together.

Issue 24 measured its ingredients one run at a time, each written by ``benchmarks/recipe.py`` to its own
``recipe_ablation_cpu_e26_<name>.csv`` with the reference (``full``) and the variant, McNemar against ``full`` on the
same test images. This script reads those files and writes them as one table (the reference once, then every other
row in the order given, the file it came from in ``from``), after checking that they can stand together: every file
has a ``full`` row with the same scores as the first file's (one reference run, or a rerun that matched it to the
last digit), every row the same epochs, and no variant twice. Nothing is trained or scored again; the Markdown is
``recipe.markdown_tables``'s.

Usage (from the repository root)::

    cd benchmarks/results && python ../ingredients.py \\
        recipe_ablation_cpu_e26{,_candidates,_distill,_ema,_erasing,_separable}.csv \\
        --images 3589 --out recipe_ingredients_cpu_e26.csv
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


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+", help="ablation CSVs of benchmarks/recipe.py, each with a 'full' row")
    ap.add_argument("--split", default="PrivateTest", help="the split of the tables' McNemar tests")
    ap.add_argument("--images", type=int, default=0,
                    help="images of --split (FER-2013 PrivateTest: 3589): adds the smallest accuracy difference each "
                         "row's McNemar test detects with 80%% power (default: not computed)")
    ap.add_argument("--out", required=True, help="the CSV to write (the Markdown goes next to it, .md)")
    args = ap.parse_args(argv)
    missing = [t for t in args.tables if not Path(t).is_file()]
    if missing:
        ap.error(f"no such table(s) {missing}")
    if Path(args.out).exists():
        ap.error(f"--out {args.out} exists; give a new name (an earlier table is not overwritten)")
    return args


def ingredient_table(tables, *, images: int = 0):
    """The ablation CSVs ``tables`` as one DataFrame indexed by variant: the first file's ``full`` row, then every
    other row of every file in order, with the file's name in ``from``, and McNemar's p Holm-adjusted over the rows
    compared (``McNemar p (Holm)``: the table makes that many comparisons with one reference). ``images``: the test
    split's size; when given, ``detectable (80% power)`` is the smallest true accuracy difference each row's test
    detects at 0.05 with 80% power given its discordant images (``stats.detectable_difference_mcnemar``).

    Raises:
        ValueError: a file without a ``full`` row, a ``full`` row whose scores differ from the first file's (named
            with the column), rows of another number of epochs, or a variant in two files.
    """
    import numpy as np
    import pandas as pd

    parts, reference = [], None
    for path in map(Path, tables):
        table = pd.read_csv(path).set_index("variant")
        if "full" not in table.index:
            raise ValueError(f"{path}: no 'full' row, so its rows were not compared with the reference")
        full = table.loc["full"]
        if reference is None:
            reference = full
            parts.append(table.loc[["full"]].assign(**{"from": path.name}))
        for column in REFERENCE_SCORES:
            if not np.isclose(float(full[column]), float(reference[column]), rtol=0, atol=1e-12):
                raise ValueError(f"{path}: its 'full' row has {column} {float(full[column]):.6f}, the first table's "
                                 f"{float(reference[column]):.6f}: another reference run")
        parts.append(table.drop(index="full").assign(**{"from": path.name}))
    together = pd.concat(parts)
    epochs = together["epochs"].unique()
    if len(epochs) != 1:
        raise ValueError(f"rows of different budgets {sorted(int(e) for e in epochs)} epochs: "
                         f"{ {v: int(e) for v, e in together['epochs'].items()} }")
    twice = together.index[together.index.duplicated()].unique().tolist()
    if twice:
        where = together.loc[twice, "from"].groupby(level=0).apply(list).to_dict()
        raise ValueError(f"variant(s) {twice} appear in more than one table: {where}")
    from statsmodels.stats.multitest import multipletests

    from fer_utils import stats

    tested = together["McNemar p"].notna()
    together.loc[tested, "McNemar p (Holm)"] = multipletests(together.loc[tested, "McNemar p"], method="holm")[1]
    if images:
        discordant = together["discordant (full right / variant right)"].fillna("0 / 0").map(
            lambda cell: sum(int(k) for k in str(cell).split("/")))
        together["detectable (80% power)"] = [stats.detectable_difference_mcnemar(images, d) for d in discordant]
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
    out.with_suffix(".md").write_text(R.markdown_tables(table, split=args.split))
    print(out.with_suffix(".md").read_text())
    print(f"written: {out}, {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
