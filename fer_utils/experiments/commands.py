"""What the commands that read finished run folders share (``benchmarks/ship_choice.py``, ``tta_crop.py`` and
``label_agreement.py``): each run's label, the files a run must hold, outputs that are never overwritten, and the
data the runs were trained on, all checked before any scoring starts."""

from __future__ import annotations

import sys
from pathlib import Path


def label(folder) -> str:
    """A run's label in the commands' tables: its folder's last two path parts (``e26-s0/longer``)."""
    folder = Path(folder)
    return f"{folder.parent.name}/{folder.name}"


def check_runs(ap, runs, files, *, what: str = "finished run folders") -> dict:
    """``{label: folder}`` of ``runs`` in the order given; ``ap.error`` (exit 2) when two runs share a label or a run
    lacks one of ``files`` (the file and the runs named, with ``what`` was expected)."""
    runs = [Path(r) for r in runs]
    labels = [label(r) for r in runs]
    if len(set(labels)) != len(labels):
        ap.error(f"run folders with the same last two path parts: {labels}")
    for file in files:
        missing = [str(r) for r in runs if not (r / file).is_file()]
        if missing:
            ap.error(f"no {file} in {missing}: expected {what}")
    return dict(zip(labels, runs))


def refuse_taken(ap, out, suffixes=(".csv", ".md")) -> None:
    """``ap.error`` when an output ``<out><suffix>`` exists: earlier results are never overwritten."""
    taken = [str(p) for p in (Path(f"{out}{s}") for s in suffixes) if p.exists()]
    if taken:
        ap.error(f"--out {out}: {taken} exist; give a new name (earlier results are not overwritten)")


def runs_data(folders: dict, args):
    """The data ``folders`` were trained on (``recipe.data_of_runs`` of the command's ``--profile``, ``--params-dir``
    and ``--notebooks-dir``), or None with the reason printed: an unknown profile, an unreadable ``metrics.json``,
    runs trained on other data."""
    from fer_utils.experiments import recipe as R

    try:
        return R.data_of_runs(folders, args.profile, args.params_dir, args.notebooks_dir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
