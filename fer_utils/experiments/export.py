"""Exporting a trained run as a compact model folder (float16 weights + model card), e.g. the model ``predict`` ships.

::

    python -m fer_utils.experiments.export RUN_DIR [--out DIR] [--tta default|none|flip|center_flip|ten_crop]
        [--crop-fraction F] [--dataset fer2013] [--overwrite]

An exported folder (the format is :mod:`fer_utils.predictor`'s, which loads it)::

    architecture.json   the Keras model's config (``model.to_json()``; custom layers are registered by fer_utils)
    weights.npz         every weight in ``model.get_weights()`` order, stored as float16 (loaded back as float32)
    preprocessing.json  the source run's preprocessing record (classes, input, normalization, TTA), unchanged but
                        for a TTA or crop side given to the export (the source's then kept as ``source_*``)
    predictions.npz     the exported model's probabilities on the test splits (the run-folder format)
    model_card.json     where it came from and how good it is: source run, data checksum, the commands that
                        reproduce it, the source run's scores and the exported weights' scores on every test
                        split as published and deduplicated, the peer's number, sizes, versions

:func:`export_model` writes one from a run folder and scores it on the dataset, so the card's numbers are the
shipped weights' own. The default ``--out`` is the package's shipped model (``fer_utils/predict/default_model``).
"""

from __future__ import annotations

import datetime as _dt
import json
import numbers
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from fer_utils import predictor as PR
from fer_utils import runs

TEST_SPLITS = ("PublicTest", "PrivateTest")
COMMAND = "python -m fer_utils.experiments.export"


def _file_sha256(path) -> Optional[str]:
    from fer_utils.data.dataset import file_sha256

    return file_sha256(path) if path and Path(path).is_file() else None


def _size_kb(path: Path) -> float:
    return round(path.stat().st_size / 1024, 1)


def export_model(run_dir, out_dir, *, dataset=None, tta="default", commands: Optional[list] = None,
                 overwrite: bool = False, note: str = "", group: Optional[bool] = None,
                 crop_fraction: Optional[float] = None) -> dict:
    """Export the model of ``run_dir`` to ``out_dir`` with float16 weights, score it, write its card.

    Args:
        run_dir: a finished model run folder (``model.keras``, ``preprocessing.json``, ``metrics.json``).
        out_dir: the exported folder to write.
        dataset: the :class:`fer_utils.data.FERDataset` the run was trained on (its checksum must match the
            run's): the exported weights are scored on its test splits, as published and deduplicated.
            None writes the card without the exported weights' scores.
        tta: the exported model's test-time augmentation (``"default"``: the run's own; ``"none"``, ``"flip"``,
            ``"center_flip"``, ``"ten_crop"``); the card scores every TTA, ``scores`` being those of this one.
        crop_fraction: the side of the ``center_flip`` / ``ten_crop`` crops as a fraction of the face's, in (0, 1]
            (None: the run's own), e.g. one chosen on validation (``benchmarks/predict.py --ten-crop-choice``).
        commands: the commands that reproduce the run and the export (recorded in the card).
        group: how the run's validation split was carved (True: whole near-duplicate families, False: row by row),
            recorded in the card's ``split_params`` so that choices made later on the model's validation rows
            (``benchmarks/predict.py --tta-choice``) use the same rows; None records nothing (readers then find the
            carve-out that reproduces the card's data checksum). :func:`main` passes :func:`training_split`'s.
        overwrite: replace an existing export (its files are moved aside to ``replaced-<time>/`` first).

    Returns:
        The model card.

    Raises:
        FileExistsError: ``out_dir`` already holds an export and not ``overwrite``.
        ValueError: ``dataset``'s checksum differs from the run's, an unknown ``tta`` or a ``crop_fraction`` outside
            (0, 1] (before anything is written).
    """
    from fer_utils import artifacts
    from fer_utils.evaluate.tta import TTA_NAMES, resolve_tta
    from fer_utils.experiments import running, seeds

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    tta = resolve_tta(tta)
    if crop_fraction is not None and (isinstance(crop_fraction, bool) or not isinstance(crop_fraction, numbers.Real)
                                      or not 0 < crop_fraction <= 1):
        raise ValueError(f"crop_fraction={crop_fraction!r}: expected a number in (0, 1] (the crop's side as a "
                         "fraction of the face's), or None for the run's own")
    metrics = runs.read_metrics(run_dir)
    checksum = metrics.get("headline", {}).get("data_checksum")
    if dataset is not None and checksum and dataset.checksum != checksum:
        raise ValueError(f"{run_dir} was trained on data {checksum[:12]}..., the dataset given is "
                         f"{dataset.checksum[:12]}...; export needs the run's own data to score it")
    present = [n for n in PR.EXPORTED_FILES if (out_dir / n).exists()]
    if present and not overwrite:
        raise FileExistsError(f"{out_dir} already holds an exported model ({present}); pass overwrite=True "
                              "to move it aside to replaced-<time>/")
    runs.move_aside(out_dir, present)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = runs.load_model(run_dir)
    (out_dir / PR.ARCHITECTURE_FILE).write_text(model.to_json(), encoding="utf-8")
    np.savez_compressed(out_dir / PR.WEIGHTS_FILE,
                        **{f"w{i:04d}": np.asarray(w, dtype=np.float16) for i, w in enumerate(model.get_weights())})
    spec = runs.read_preprocessing(run_dir)
    if tta != "default":
        spec = {**spec, "tta": tta, "source_tta": spec["tta"]}
    if crop_fraction is not None:  # given: recorded beside the run's own, as the card does
        spec = {**spec, "crop_fraction": float(crop_fraction), "source_crop_fraction": spec["crop_fraction"]}
    runs.write_preprocessing(out_dir, **spec)

    headline = metrics.get("headline", {})
    card = {
        "model": metrics.get("model"),
        "params": headline.get("params"),
        "input": headline.get("input"),
        "precision": headline.get("precision"),
        "weights_dtype": "float16 (loaded as float32)",
        "source_run": os.path.relpath(run_dir.resolve(), Path.cwd()) if run_dir.is_absolute() else str(run_dir),
        "data_checksum": checksum,
        "seed": metrics.get("metadata", {}).get("seed"),
        "split_params": {**split_params(metrics.get("metadata", {}).get("params", {})),
                         **({} if group is None else {"group": bool(group)})},
        "epochs_run": headline.get("epochs_run"),
        "train_seconds": headline.get("train_seconds"),
        "best_val_accuracy": headline.get("best_val_accuracy"),
        "tta": spec["tta"] or "none",
        "source_tta": runs.read_preprocessing(run_dir).get("tta"),
        "crop_fraction": spec["crop_fraction"],
        "source_crop_fraction": runs.read_preprocessing(run_dir).get("crop_fraction"),
        "commands": list(commands or []),
        "note": note,
        "source_scores": {k: v for k, v in headline.items() if k.endswith(("_accuracy", "_macro_f1", "_copies"))
                          and k != "best_val_accuracy"},
        "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": artifacts.versions(),
    }
    if dataset is not None:
        exported = PR.load_exported(out_dir)
        splits = [s for s in TEST_SPLITS if s in set(dataset.splits.tolist())]
        by_tta = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name in TTA_NAMES:
                folder = Path(tmp) / name
                per_split = running.evaluate_splits(exported, dataset, splits, folder, tta=name)
                scores = {}
                for s in splits:
                    scores[f"{s}_accuracy"] = per_split[s]["accuracy"]
                    scores[f"{s}_macro_f1"] = per_split[s]["macro_f1"]
                scores.update(seeds.dedup_scores(folder, dataset))
                by_tta[name] = scores
                if name == card["tta"]:
                    shutil.copyfile(folder / runs.PREDICTIONS_FILE, out_dir / runs.PREDICTIONS_FILE)
        card["scores"] = by_tta[card["tta"]]
        card["scores_by_tta"] = by_tta
        # what the scores were computed in: load_exported's "auto" (float32 where 16-bit compute would be emulated)
        from fer_utils.models import model_precision

        card["scores_precision"] = model_precision(exported.model)
        card["dataset"] = {"name": dataset.name, "checksum": dataset.checksum, "n": int(len(dataset)),
                           "file_sha256": _file_sha256(dataset.path)}
    card["files_kb"] = {n: _size_kb(out_dir / n) for n in PR.EXPORTED_FILES if (out_dir / n).exists()}
    runs.write_json(out_dir / PR.CARD_FILE, card)
    card["files_kb"][PR.CARD_FILE] = _size_kb(out_dir / PR.CARD_FILE)  # the card's own size, written once more
    runs.write_json(out_dir / PR.CARD_FILE, card)
    return card


def split_params(params: dict) -> dict:
    """The notebook parameters that decide a run's data split (``seed``, ``val_fraction``, ``max_per_class``;
    ``group`` too where recorded, as in an export's card)."""
    out = {"seed": params.get("seed", 42), "val_fraction": params.get("val_fraction", 0.1),
           "max_per_class": params.get("max_per_class", 0)}
    return {**out, "group": bool(params["group"])} if "group" in params else out


def training_data(dataset: str, params: dict, data_dir="auto", checksum: str | None = None):
    """The dataset a notebook-03/04 run was trained on: loaded, then split as the notebook did
    (:func:`split_params` of its parameters); :func:`training_split` also says which carve-out that was."""
    return training_split(dataset, params, data_dir, checksum)[0]


def training_split(dataset, params: dict, data_dir="auto", checksum: str | None = None) -> tuple:
    """``(dataset, group)``: the data a run was trained on and whether its validation carve-out kept near-duplicate
    families together (``group``; None when nothing says which). ``dataset``: a name to load from ``data_dir``, or
    the loaded dataset before its validation carve-out.

    Runs trained before families existed (such as the first shipped model) carved row by row. A recorded ``group``
    (an export card's ``split_params``) is used as it is; otherwise, with the run's recorded ``checksum``, the
    carve-out that reproduces it is returned (the family one, with ``group`` None, when neither does or there is no
    checksum: the caller's checksum check then names any mismatch)."""
    from fer_utils.data import load_dataset
    from fer_utils.experiments.running import prepare

    split = split_params(params)
    raw = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
    kwargs = {"max_per_class": split["max_per_class"], "val_fraction": split["val_fraction"], "seed": split["seed"]}
    if "group" in split:
        return prepare(raw, group=split["group"], **kwargs), split["group"]
    ds = prepare(raw, **kwargs)
    if checksum is None:
        return ds, None
    if ds.checksum != checksum:
        rowwise = prepare(raw, group=False, **kwargs)
        return (rowwise, False) if rowwise.checksum == checksum else (ds, None)
    return ds, True


def _under_reports(run_dir) -> Optional[tuple]:
    """``run_dir``'s path parts from its last ``reports`` folder on (``("reports", profile, ...)``), or None."""
    parts = Path(run_dir).resolve().parts
    if "reports" not in parts:
        return None
    return parts[len(parts) - 1 - parts[::-1].index("reports"):]


def training_command(run_dir, _seen: frozenset = frozenset()) -> Optional[str]:
    """The command that trains ``run_dir``, or None: the runner's for a notebook run
    (``reports/<profile>/<NN>_<name>/...``), ``benchmarks/recipe.py``'s for a recipe run
    (``reports/<profile>/recipe_ablation/e<epochs>-s<seed>/<variant>``, trained beside the reference ``full``). A
    distilled student's is its teacher members' commands (each once), then its own with ``--teacher`` naming them
    from ``reports/`` on, as the default ``--reports-dir`` finds them; None when a member's command is not known, when
    a teacher variant records no teacher, or when the teachers loop back to the student."""
    from fer_utils.experiments.label_agreement import CROWD
    from fer_utils.experiments.recipe import TEACHER_VARIANTS

    parts = _under_reports(run_dir)
    if parts is None or parts in _seen:
        return None
    if len(parts) == 5 and parts[2] == "recipe_ablation":
        m = re.fullmatch(r"e(\d+)-s(\d+)", parts[3])
        if not m:
            return None
        variants = "full" if parts[4] == "full" else f"full,{parts[4]}"
        own = f"python benchmarks/recipe.py --profile {parts[1]} --epochs {m[1]} --seed {m[2]} --variants {variants}"
        teacher = (runs.read_recipe(run_dir) or {}).get("distillation")
        if teacher is None:  # a teacher variant without its record cannot name its teacher
            return None if parts[4] in TEACHER_VARIANTS else own
        if teacher.get("tta") == CROWD:  # taught by FER+'s votes, not by runs
            return own + " --teacher crowd"
        members = [_under_reports(t) for t in teacher.get("members", [])]
        first = [training_command(t, _seen | {parts}) for t in teacher.get("members", [])]
        if not members or None in members or None in first:
            return None
        own += " --teacher " + ",".join("/".join(t) for t in members)
        if teacher.get("tta", "ten_crop") != "ten_crop":
            own += f" --teacher-tta {teacher['tta']}"
        return " && ".join([*dict.fromkeys(c for chain in first for c in chain.split(" && ")), own])
    if len(parts) < 3 or not parts[2][:2].isdigit():
        return None
    return f"python -m fer_utils.run --profile {parts[1]} --only {parts[2][:2]}"


def main(argv=None) -> int:
    """``python -m fer_utils.experiments.export RUN_DIR [--out DIR] [--tta flip] [--overwrite]``: export and score."""
    import argparse

    from fer_utils.evaluate.tta import DEFAULT_TTA, TTA_NAMES
    from fer_utils.predict.shipped import DEFAULT_DIR

    p = argparse.ArgumentParser(prog=COMMAND,
                                description="Export a trained run with float16 weights and a model card, scored "
                                            "on the test splits of the dataset it was trained on.")
    p.add_argument("run_dir")
    p.add_argument("--out", default=str(DEFAULT_DIR), help="exported folder (default: the package's default model)")
    p.add_argument("--tta", default=DEFAULT_TTA, choices=(DEFAULT_TTA,) + TTA_NAMES)
    p.add_argument("--crop-fraction", type=float, default=None,
                   help="side of the center_flip / ten_crop crops as a fraction of the face's (default: the run's)")
    p.add_argument("--dataset", default="fer2013", help="the dataset the run was trained on (found via FER_DATA_DIR)")
    p.add_argument("--overwrite", action="store_true", help="move an existing export aside and replace it")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / runs.MODEL_FILE).is_file():
        p.error(f"{run_dir}: no {runs.MODEL_FILE}; expected a finished model run folder")
    if args.crop_fraction is not None and not 0 < args.crop_fraction <= 1:
        p.error(f"--crop-fraction {args.crop_fraction}: expected a number in (0, 1]")
    metrics = runs.read_metrics(run_dir)
    ds, group = training_split(args.dataset, metrics.get("metadata", {}).get("params", {}),
                               checksum=metrics.get("headline", {}).get("data_checksum"))
    command = f"{COMMAND} " + " ".join(argv if argv is not None else sys.argv[1:])
    reproduce = training_command(run_dir)
    card = export_model(run_dir, args.out, dataset=ds, tta=args.tta, overwrite=args.overwrite,
                        commands=[c for c in (reproduce, command) if c], group=group,
                        crop_fraction=args.crop_fraction)
    print(json.dumps({k: card[k] for k in ("model", "params", "tta", "scores", "files_kb") if k in card}, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
