"""What each ingredient of a training recipe buys: one-at-a-time ablations on a short budget, time to accuracy.

The recipe has one owner, the profile's notebook 03 section (``params/<profile>.yaml``: model, builder arguments,
training config, augmentation, normalization, TTA); :func:`recipe_from_profile` reads it. Every variant is that
recipe with exactly one ingredient removed or replaced (:data:`VARIANTS`; ``old_cpu`` replaces all of them by the
earlier ``cpu`` setting), trained for the same short number of epochs on notebook 03's data split (same seed, same
validation carve-out, same test rows), each an ordinary resumable run folder
``reports/<profile>/recipe_ablation/e<epochs>-s<seed>/<variant>/``. Test-time augmentation is ablated without
retraining: the full variant's model is scored again with another TTA.

:func:`ablation_table` puts the variants side by side: train minutes, best validation accuracy, accuracy and
macro-F1 on each test split as published and deduplicated, the difference to the full recipe and McNemar's test
against it on the same test images. :func:`time_to_accuracy` turns run folders into validation accuracy against
cumulative training minutes (``timings.csv``), for the recipe and the old ``cpu`` setting. :func:`markdown_tables`
renders both as the Markdown the README quotes, so its numbers are copied by no hand.

``benchmarks/recipe.py`` is the command line.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd

from fer_utils import progress, runs
from fer_utils import data as D
from fer_utils.predictor import load_predictor

ABLATION_DIR = "recipe_ablation"
FULL = "full"

#: variant -> (what changes, overrides). Overrides: ``train_config`` keys, ``augment`` (replaces it), ``augment_add``
#: (keys added to the recipe's augmentation), ``distill`` (the teacher's weight alpha in the targets; the teacher is
#: run folders, or FER+'s votes where ``teacher`` is ``"crowd"``), ``model`` / ``model_kwargs`` (replace them; the
#: recipe model's normalization is kept unless ``normalization`` is given),
#: ``normalization``, ``tta``, ``epochs_from_variant`` (train the variant's own ``epochs``, not the budget),
#: ``epochs_factor`` (train that many times the budget's epochs, rounded; the schedule stretches with them).
VARIANTS: dict[str, tuple[str, dict]] = {
    FULL: ("the whole recipe", {}),
    "no_label_smoothing": ("label smoothing 0.1 -> 0", {"train_config": {"label_smoothing": 0.0}}),
    "flip_only": ("flip/shift/rotation/zoom -> flip only", {"augment": {"flip": True}}),
    "no_augmentation": ("no training augmentation", {"augment": {}}),
    "constant_lr": ("warm-up + cosine -> constant learning rate",
                    {"train_config": {"schedule": "constant", "warmup_epochs": 0}}),
    "batch_64": ("batch 128, lr 2e-3 -> batch 64, lr 1e-3",
                 {"train_config": {"batch_size": 64, "learning_rate": 0.001}}),
    "unit_normalization": ("per-image standardisation -> [0, 1] scaling", {"normalization": "unit"}),
    "float32": ("mixed bfloat16 -> float32", {"train_config": {"precision": "float32"}}),
    "cnn_half": ("msca_resnet -> Study B's CNN at half width (the old cpu model)",
                 {"model": "cnn", "model_kwargs": {"filters": [32, 64, 128, 256], "dense_units": 256}}),
    "old_cpu": ("the old cpu setting: half-width CNN, Adam 1e-3, batch 64, cosine, 14 epochs, flip TTA",
                {"model": "cnn", "model_kwargs": {"filters": [32, 64, 128, 256], "dense_units": 256},
                 "train_config": {"learning_rate": 0.001, "batch_size": 64, "warmup_epochs": 0, "epochs": 14},
                 "normalization": "auto", "tta": "flip", "epochs_from_variant": True}),
    # Ingredients added to the recipe (issue 24): each is the recipe plus one thing.
    "ema": ("+ weight averaging (EMA of the weights, momentum 0.999)", {"train_config": {"ema_momentum": 0.999}}),
    "erasing": ("+ random erasing (p 0.5)", {"augment_add": {"erasing": 0.5}}),
    # Not named by issue 24 (its list is done): the recipe has no weight penalty, and the longer run ends at 0.81
    # training (augmented) against 0.62 validation accuracy. 0.05 is AdamW's usual value for ConvNeXt and DeiT, one
    # guess, not tuned: at the peak rate it shrinks each kernel by 1e-4 per step, by 0.77 over 26 epochs.
    "weight_decay": ("+ decoupled weight decay 0.05 (AdamW; kernels only, not biases or batch norm)",
                     {"train_config": {"weight_decay": 0.05}}),
    "mixup": ("+ mixup (alpha 0.2)", {"augment_add": {"mixup": 0.2}}),
    "cutmix": ("+ cutmix (alpha 1.0)", {"augment_add": {"cutmix": 1.0}}),
    "distill": ("+ distillation: targets 0.5 one-hot + 0.5 the teacher's ten-crop probabilities (needs a teacher)",
                {"distill": 0.5}),
    # A longer schedule: the reference's 26 epochs took 59.6 min on the first bf16 CPU, 41 on a faster one (Zen 4,
    # 94 s per epoch), where 60 minutes train 36.
    "longer": ("1.4x the epochs, the cosine stretched over them (26 -> 36: an hour on the faster bf16 CPU)",
               {"epochs_factor": 1.4}),
    # A cheaper network (issue 24, part 4): on AVX2-only CPUs the classifier's float32 arithmetic bounds predict.
    "separable_fuse": ("3x3 fusion convolutions -> depthwise-separable (110M -> 54M multiply-adds per face)",
                       {"model_kwargs": {"fuse": "separable"}}),
    # A deeper network that still trains in the hour: a fourth block at 3x3 costs 1.18x the reference's step time on
    # the Zen 4 bf16 CPU (15 steps timed), 1.25x the width 1.53x. Its full run: 1.27x per epoch, 26 in 52.8 minutes.
    "deeper": ("+ a fourth block of 512 filters at 3x3 (1.26M -> 5.02M parameters, 110M -> 143M multiply-adds)",
               {"model_kwargs": {"filters": [64, 128, 256, 512]}}),
}
#: The three ablation candidates of the 7-epoch table (each +0.7 to +0.9 points PrivateTest there, p 0.10-0.17),
#: trained together by the ``candidates`` variant: one full-length run asks whether they win at all.
CANDIDATES = ("no_label_smoothing", "batch_64", "unit_normalization")


def _together(names, what: str) -> tuple[str, dict]:
    change: dict = {}
    for name in names:
        for key, value in VARIANTS[name][1].items():
            change[key] = {**change.get(key, {}), **value} if isinstance(value, dict) else value
    return f"{what}: " + "; ".join(VARIANTS[n][0] for n in names), change


VARIANTS["candidates"] = _together(CANDIDATES, "the three 7-epoch candidates together")
#: The cheaper network as a student of a teacher (compare it with ``separable_fuse``: distillation is the one change).
VARIANTS["separable_distill"] = _together(("separable_fuse", "distill"), "the cheaper network distilled")
#: The longer schedule as a student (compare it with ``longer``: distillation is the one change; the teacher meant is
#: the three-seed ``longer`` ensemble, the strongest measured on this split: 0.6977 PrivateTest with ten-crop).
VARIANTS["longer_distill"] = _together(("longer", "distill"), "the longer schedule distilled")
#: The longer schedule at batch 64 (compare it with ``longer``: the batch is the one change). ``batch_64`` alone was
#: the best 7-epoch candidate (+0.9 points, p 0.10) and twice the optimizer steps per epoch at the same cost per
#: image; at full length it was measured only inside ``candidates``, together with two other changes.
VARIANTS["longer_batch_64"] = _together(("longer", "batch_64"), "the longer schedule at batch 64")
#: The longer schedule at batch 64 as a student (compare it with ``longer_batch_64``: distillation is the one change;
#: the teacher meant is the three ``longer_batch_64`` seeds' ensemble, whose seed 0 has the best validation accuracy
#: of any run on this split; the ensemble's PrivateTest score, 0.7024 with ten-crop, was known when it was chosen).
VARIANTS["longer_batch_64_distill"] = _together(("longer_batch_64", "distill"),
                                                "the longer schedule at batch 64 distilled")
#: The same student taught by FER+'s crowd votes on the Training faces (``label_agreement.crowd_teacher``).
VARIANTS["longer_batch_64_crowd"] = ("the longer schedule at batch 64 taught by people: targets 0.5 one-hot + 0.5 "
                                     "FER+'s crowd vote shares",
                                     {**VARIANTS["longer_batch_64_distill"][1], "teacher": "crowd"})
#: Variants that need a teacher: run folders, or FER+'s votes where ``teacher`` is ``"crowd"`` (``--teacher``).
TEACHER_VARIANTS = ("distill", "separable_distill", "longer_distill", "longer_batch_64_distill",
                    "longer_batch_64_crowd")
#: TTA variants: the full variant's model scored with another test-time augmentation (no training).
TTA_VARIANTS = {"ten_crop_tta": ("TTA {} -> ten-crop", "ten_crop"), "flip_tta": ("TTA {} -> flip", "flip"),
                "center_flip_tta": ("TTA {} -> centre crop + flip", "center_flip"), "no_tta": ("TTA {} -> none", None)}
#: Weight variants: the full variant's run scored with its last epoch's model (``last.keras``, kept by every variant:
#: ``keep_last``) instead of the best-validation checkpoint (no training).
WEIGHT_VARIANTS = {"last_epoch": "the best-validation epoch's model -> the last epoch's (the cosine ends at 0)"}


def recipe_from_profile(profile: str, params_dir="params", notebooks_dir="notebooks") -> dict:
    """Notebook 03's parameters in ``profile`` (its defaults, then the profile's shared and 03 keys).

    Raises:
        ParamsError: the profile does not pass the runner's checks (unknown key, wrong type).
        ValueError: the profile's notebook 03 has no model to build a recipe from.
    """
    from fer_utils import params as P

    nb = P.list_notebooks(notebooks_dir, only=["03"])
    declared = P.notebook_parameters(nb[0])
    resolved = P.resolve(P.load_profile(profile, params_dir), nb)[nb[0].stem]
    recipe = {**declared, **resolved}
    unsupported = {k: recipe.get(k) for k in ("balanced_train", "tuned_from") if recipe.get(k)}
    if unsupported:
        raise ValueError(f"params/{profile}.yaml: notebook 03 sets {unsupported}; the ablation trains the recipe on "
                         "the real Training split with the profile's train_config only")
    if not recipe.get("models"):
        raise ValueError(f"params/{profile}.yaml: notebooks.03_baselines.models is empty (the recipe is its first)")
    return recipe


def check_variants(names) -> list:
    """The variant names, in the given order, each known (the error lists the choices)."""
    known = [*VARIANTS, *TTA_VARIANTS, *WEIGHT_VARIANTS]
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"Unknown ablation variant(s) {bad}; expected some of {known}")
    return list(dict.fromkeys(names))


def variant_settings(recipe: dict, variant: str, epochs: int) -> dict:
    """``run_model`` keyword arguments of one variant: the recipe with the variant's one change, ``epochs`` long.

    The warm-up stays at most ``epochs - 1`` epochs (a config rule); ``old_cpu`` keeps its own length, ``longer``
    and ``longer_distill`` train 1.4x ``epochs``. The profile's ``crop_fraction`` is not passed: every variant is
    scored with ``run_model``'s default crop (0.875), the one of every committed ablation and seed table, so they stay
    comparable (``benchmarks/tta_crop.py`` rescores finished runs at another).
    """
    change = VARIANTS[check_variants([variant])[0]][1]
    model = recipe["models"][0]
    cfg = {**recipe["train_config"], **((recipe.get("train_configs") or {}).get(model) or {})}
    cfg.update(change.get("train_config", {}))
    if not change.get("epochs_from_variant"):
        cfg["epochs"] = max(1, round(int(epochs) * change.get("epochs_factor", 1)))
    cfg["keep_last"] = True  # the last_epoch variant scores the full variant's last epoch
    cfg["warmup_epochs"] = min(int(cfg.get("warmup_epochs", 0)), int(cfg["epochs"]) - 1)
    normalization = recipe.get("normalization", "auto")
    if "model" in change and normalization == "auto" and "normalization" not in change:
        from fer_utils import models

        normalization = models.resolve_normalization(model, "auto")  # another architecture, the same input
    model = change.get("model", model)
    kwargs = copy.deepcopy(change.get("model_kwargs", (recipe.get("model_kwargs") or {}).get(model) or {}))
    augment = change.get("augment", recipe.get("augment"))
    if change.get("augment_add"):
        augment = {**(augment or {}), **change["augment_add"]}
    return {"model_name": model, "model_kwargs": kwargs, "train_config": cfg, "augment": augment,
            "normalization": change.get("normalization", normalization),
            "tta": change.get("tta", recipe.get("tta")), "input_size": int(recipe.get("input_size", 48))}


def load_recipe_data(recipe: dict) -> D.FERDataset:
    """Notebook 03's data: the same dataset, subsample and validation carve-out (its ``seed``)."""
    from fer_utils.experiments.running import prepare

    ds = D.load_dataset(recipe["dataset"], recipe["data_dir"], synthetic_per_class=recipe["synthetic_per_class"],
                        seed=recipe["seed"])
    return prepare(ds, max_per_class=recipe.get("max_per_class", 0), val_fraction=recipe.get("val_fraction", 0.1),
                   seed=recipe["seed"])


def data_of_runs(folders: dict, profile: str, params_dir="params", notebooks_dir="notebooks") -> D.FERDataset:
    """:func:`load_recipe_data` of ``profile`` for finished run folders (``{label: folder}``), checked against the
    data checksum each run recorded in its ``metrics.json``.

    Raises:
        ValueError: an unknown profile, or runs not trained on that data (named; synthetic data matches none).
    """
    ds = load_recipe_data(recipe_from_profile(profile, params_dir, notebooks_dir))
    checksums = {n: runs.read_metrics(f)["headline"].get("data_checksum") for n, f in folders.items()}
    other = {n: (c or "none")[:8] for n, c in checksums.items() if c != ds.checksum or ds.is_synthetic}
    if other:
        raise ValueError(f"runs {sorted(other)} were not trained on the {profile} profile's notebook 03 split "
                         f"(checksum {ds.checksum[:8]}; theirs {other}); set FER_DATA_DIR to the data they used")
    return ds


def run_ablation(recipe: dict, ds: D.FERDataset, out_dir, *, variants, epochs: int, seed: int = 0,
                 teacher: dict | None = None) -> dict:
    """Train (or resume, or reuse) every variant in ``out_dir/<variant>``; TTA variants rescore ``full``.

    ``teacher``: :func:`fer_utils.experiments.distill.teacher_probabilities` of ``ds``, needed by
    :data:`TEACHER_VARIANTS` (checked before anything trains).

    Returns ``{variant: run folder}`` in the order given.
    """
    from fer_utils.experiments import distill, label_agreement
    from fer_utils.experiments.running import evaluation_splits, run_model

    eval_splits, _ = evaluation_splits(ds, recipe.get("eval_splits") or (), recipe.get("report_split") or "")
    out_dir = Path(out_dir)
    names = check_variants(variants)
    by_crowd = teacher is not None and teacher.get("tta") == label_agreement.CROWD
    wrong = [n for n in names if n in TEACHER_VARIANTS
             and (teacher is None or (VARIANTS[n][1].get("teacher") == "crowd") != by_crowd)]
    if wrong:
        raise ValueError(f"variant(s) {wrong} need a teacher of their kind (got {teacher and teacher['tta']}): run "
                         "folders, or FER+'s crowd votes for those taught by people (benchmarks/recipe.py --teacher)")
    if FULL not in names:  # the whole recipe is always trained (or reused): the reference of most tables
        names.insert(0, FULL)
    # the data split's parameters, recorded in each run's metrics.json (what an export needs to re-create its data)
    split = {k: recipe.get(k, d) for k, d in (("seed", None), ("val_fraction", 0.1), ("max_per_class", 0))}
    folders = {}
    for i, name in enumerate(n for n in names if n in VARIANTS):
        progress.report(f"ablation {name}: {VARIANTS[name][0]}")
        settings = variant_settings(recipe, name, epochs)
        alpha = VARIANTS[name][1].get("distill")
        extra = {} if alpha is None else {"target": "distribution", "distillation": distill.record(teacher, alpha)}
        run_model(settings.pop("model_name"), ds if alpha is None else distill.distilled(ds, teacher, alpha),
                  out_dir / name, seed=seed, eval_splits=eval_splits, label=f"ablation {name}", params=split,
                  **settings, **extra)
        folders[name] = out_dir / name
    for name in (n for n in names if n in TTA_VARIANTS):
        folders[name] = rescore_tta(out_dir / FULL, ds, out_dir / name, TTA_VARIANTS[name][1], eval_splits)
    for name in (n for n in names if n in WEIGHT_VARIANTS):
        folders[name] = rescore_tta(out_dir / FULL, ds, out_dir / name, "default", eval_splits,
                                    model_file=runs.LAST_MODEL_FILE)
    return {n: folders[n] for n in names}


def rescore_tta(model_dir, ds: D.FERDataset, out_dir, tta, eval_splits, *, model_file: str = runs.MODEL_FILE) -> Path:
    """``model_dir``'s model scored with another TTA (``"default"``: the run's own); ``out_dir`` gets
    ``predictions.npz`` and ``metrics.json``. ``model_file``: another model of the run (``last.keras``: its last
    epoch), copied into ``out_dir/model`` with the run's preprocessing record."""
    import hashlib
    import shutil

    from fer_utils.experiments.running import evaluate_splits

    out_dir = Path(out_dir)
    source = Path(model_dir) / model_file
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist: train the full variant with keep_last (every ablation "
                                "variant does since the last_epoch variant exists) to score its last epoch")
    model_sha = hashlib.sha256(source.read_bytes()).hexdigest()
    if (out_dir / runs.METRICS_FILE).exists() and (out_dir / runs.PREDICTIONS_FILE).exists():
        if runs.read_metrics(out_dir)["headline"].get("model_sha256") == model_sha:
            return out_dir
        moved = runs.move_aside(out_dir)
        progress.report(f"{out_dir.name}: {model_dir} holds another model now; earlier scores moved to {moved}")
    folder = Path(model_dir)
    if model_file != runs.MODEL_FILE:  # a run folder the predictor reads: the model and its preprocessing
        folder = out_dir / "model"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / runs.MODEL_FILE)
        shutil.copyfile(Path(model_dir) / runs.PREPROCESSING_FILE, folder / runs.PREPROCESSING_FILE)
    predictor = load_predictor(folder)
    per_split = evaluate_splits(predictor, ds, eval_splits, out_dir, tta=tta)
    head = runs.read_metrics(model_dir)["headline"]
    tta = predictor.preprocessing["tta"] if tta == "default" else tta
    headline = {"tta": tta or "none", "tta_of_model": predictor.preprocessing["tta"] or "none",
                "rescored_from": str(folder), "model_sha256": model_sha, "data_checksum": ds.checksum,
                **{k: head[k] for k in ("epochs_run", "best_val_accuracy", "train_seconds") if k in head},
                **{f"{s}_{k}": per_split[s][k] for s in per_split for k in ("accuracy", "macro_f1")}}
    if model_file == runs.LAST_MODEL_FILE:  # the validation accuracy of the model scored: the last epoch's
        headline["best_val_accuracy"] = float(runs.load_history(model_dir)["val_accuracy"].iloc[-1])
    where = {"rescored_from": str(folder), "run": str(model_dir), "model_file": model_file}  # as in the headline
    runs.write_metrics(out_dir, headline, where, splits=per_split, class_names=list(ds.class_names))
    return out_dir


def ablation_table(folders: dict, ds: D.FERDataset, *, split: str, reference: str = FULL) -> pd.DataFrame:
    """One row per variant: what changed, epochs, train minutes, best validation accuracy, test accuracy and
    macro-F1 as published and deduplicated, the accuracy difference to ``reference`` (a variant of ``folders``:
    ``full``, or e.g. ``separable_fuse`` for its distilled student) and McNemar's p against it on ``split`` (the
    same images; exact binomial below 25 discordant images)."""
    if reference not in folders:
        raise ValueError(f"reference {reference!r} is not among the variants tabled, {list(folders)}")
    changes = {}
    for name, folder in folders.items():
        head = runs.read_metrics(folder)["headline"]
        changes[name] = (VARIANTS[name][0] if name in VARIANTS else WEIGHT_VARIANTS[name] if name in WEIGHT_VARIANTS
                         else TTA_VARIANTS[name][0].format(head.get("tta_of_model")))
    return compare_runs(folders, ds, split=split, reference=reference, changes=changes, index="variant")


def compare_runs(folders: dict, ds: D.FERDataset, *, split: str, reference: str, changes: dict | None = None,
                 index: str = "run") -> pd.DataFrame:
    """Finished run folders side by side against one of them (``reference``, a key of ``folders``): per run, what
    changed (``changes``), epochs, train minutes, best validation accuracy, accuracy and macro-F1 on every scored
    split as published and deduplicated, the difference to the reference on ``split`` and McNemar's p against it
    (the same images, checked; exact binomial below 25 discordant images).

    Raises:
        ValueError: a run scored on other ``split`` images than the reference.
    """
    from fer_utils import stats
    from fer_utils.experiments.seeds import DEDUP, add_dedup_scores

    rows = []
    for name, folder in folders.items():
        head = runs.read_metrics(folder)["headline"]
        rows.append({index: name, "change": (changes or {}).get(name, ""), "epochs": head.get("epochs_run"),
                     "train minutes": round(float(head.get("train_seconds", np.nan)) / 60, 1),
                     "best val acc": head.get("best_val_accuracy"),
                     **{k: v for k, v in head.items() if k.endswith(("_accuracy", "_macro_f1"))
                        and not k.startswith("best")}})
    # dedup scores from each folder's own predictions (folders under any parents)
    table = add_dedup_scores(pd.DataFrame(rows).set_index(index), ds, folders=folders) if rows else pd.DataFrame()
    if reference not in folders or table.empty:
        return table
    ref = runs.load_predictions(folders[reference])
    mask = ref["split"] == split
    col, dcol = f"{split}_accuracy", f"{split}{DEDUP}_accuracy"
    for name, folder in folders.items():
        p = runs.load_predictions(folder)
        m = p["split"] == split
        if not np.array_equal(p["source_ids"][m], ref["source_ids"][mask]):
            raise ValueError(f"{folder}: scored on other {split} images than {folders[reference]}")
        table.loc[name, f"diff vs {reference} ({split})"] = table.loc[name, col] - table.loc[reference, col]
        table.loc[name, f"diff vs {reference} ({split}, dedup)"] = table.loc[name, dcol] - table.loc[reference, dcol]
        if name != reference:
            r = stats.mcnemar_test(ref["y_true"][mask], ref["y_pred"][mask], p["y_pred"][m])
            table.loc[name, "McNemar p"] = r["p"]
            table.loc[name, f"discordant ({reference} right / {index} right)"] = (
                f"{r['a right b wrong']} / {r['a wrong b right']}")
    return table


def validation_copies(folders: dict, ds: D.FERDataset, *, split: str = "Validation",
                      train_split: str = "Training") -> pd.DataFrame:
    """Each variant's validation accuracy split by copies: validation images that copy a training image (byte for
    byte, or re-cropped, re-exposed or mirrored: ``data.leaked_rows``) flatter a model that memorises, so the
    validation accuracy that picks the best epoch is shown with and without them. The default carve-out keeps
    near-duplicate families on one side (none); a row-by-row carve-out (``group=False``) inherits FER-2013's pairs.

    Scored as training scored validation (no TTA) by the variant's saved model (a TTA variant: the model it
    rescored). Columns: ``val acc``, ``val acc without copies``, ``val acc on copies``, ``val copies``. A folder kept
    without its model (the committed 26-epoch reference) shows its recorded best validation accuracy, split only
    when there is nothing to split (no copies).
    """
    rows = split_rows(ds, split)
    copy = D.leaked_rows(ds, train_split)[rows]
    scored = {}  # model folder -> scores: the TTA variants share the full variant's model
    out = {}
    for name, folder in folders.items():
        model_dir = Path(folder)
        if not (model_dir / runs.MODEL_FILE).exists():
            model_dir = Path(runs.read_metrics(folder)["headline"].get("rescored_from", folder))
        if model_dir not in scored and not (model_dir / runs.MODEL_FILE).exists():
            best = runs.read_metrics(model_dir)["headline"]["best_val_accuracy"]
            scored[model_dir] = {"val acc": best, "val acc without copies": np.nan if copy.any() else best,
                                 "val acc on copies": np.nan, "val copies": int(copy.sum())}
        if model_dir not in scored:
            right = load_predictor(model_dir).predict(ds.images[rows], tta=None).argmax(1) == ds.labels[rows]
            scored[model_dir] = {"val acc": right.mean(), "val acc without copies": right[~copy].mean()
                                 if (~copy).any() else np.nan,
                                 "val acc on copies": right[copy].mean() if copy.any() else np.nan,
                                 "val copies": int(copy.sum())}
        out[name] = scored[model_dir]
    return pd.DataFrame(out).T.rename_axis("variant")


def split_rows(ds: D.FERDataset, split: str) -> np.ndarray:
    """Row indices of ``split``; an error naming the splits present when there are none."""
    rows = np.flatnonzero(ds.splits == split)
    if len(rows) == 0:
        raise ValueError(f"{ds.name}: no {split!r} rows; splits present: {ds.split_names}")
    return rows


def tta_matrix(folders: dict, ds: D.FERDataset, *, split: str, ttas=(None, "flip", "center_flip", "ten_crop")
               ) -> pd.DataFrame:
    """Accuracy on ``split`` (as published and deduplicated) of every trained variant's model under every TTA.

    Test-time augmentation interacts with training augmentation (crops at test time suit a model that saw shifts
    and zooms), so removing one of them alone can misstate what either buys; this table shows the pairs.
    Variants without a model of their own (the TTA rescorings) are left out.
    """
    rows = split_rows(ds, split)
    keep = ~D.leaked_rows(ds)[rows]
    out = {}
    for name, folder in folders.items():
        if not (Path(folder) / runs.MODEL_FILE).exists():
            continue
        predictor = load_predictor(folder)
        out[name] = {}
        for tta in ttas:
            right = predictor.predict(ds.images[rows], tta=tta).argmax(1) == ds.labels[rows]
            out[name][f"TTA {tta or 'none'}"] = right.mean()
            out[name][f"TTA {tta or 'none'} dedup"] = right[keep].mean()
    return pd.DataFrame(out).T.rename_axis("variant")


def time_to_accuracy(folders: dict) -> pd.DataFrame:
    """Validation accuracy after each epoch against cumulative training minutes, one row per (run, epoch).

    Minutes come from ``timings.csv`` (wall time of each finished epoch, resumed runs included).
    """
    rows = []
    for label, folder in folders.items():
        hist = runs.history_rows(folder)
        times = runs.history_rows(folder, runs.TIMINGS_FILE)
        minutes = np.cumsum([float(t["seconds"]) for t in times]) / 60
        for h, m in zip(hist, minutes):
            rows.append({"run": label, "epoch": int(h["epoch"]) + 1, "minutes": round(float(m), 2),
                         "val_accuracy": float(h["val_accuracy"])})
    return pd.DataFrame(rows, columns=["run", "epoch", "minutes", "val_accuracy"])


def minutes_to_reach(curves: pd.DataFrame, thresholds=(0.55, 0.60, 0.65)) -> pd.DataFrame:
    """Training minutes each run needed to first reach each validation accuracy (NaN: never)."""
    out = {}
    for run, g in curves.groupby("run", sort=False):
        out[run] = {f"val acc >= {t:.2f}": (float(g.loc[g.val_accuracy >= t, "minutes"].iloc[0])
                                           if (g.val_accuracy >= t).any() else np.nan) for t in thresholds}
        out[run]["best val acc"] = float(g.val_accuracy.max())
        out[run]["minutes"] = float(g.minutes.max())
    return pd.DataFrame(out).T


def _cell(value, fmt="{:.4f}") -> str:
    """One Markdown cell: numbers formatted, a missing value as ``-``, ``|`` in text replaced by ``/``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return fmt.format(value) if isinstance(value, (int, float, np.number)) else str(value).replace("|", "/")


def markdown_tables(table: pd.DataFrame, reach: pd.DataFrame | None = None, *, split: str = "PrivateTest",
                    ttas: pd.DataFrame | None = None, reference: str = FULL) -> str:
    """The ablation table (and the minutes-to-accuracy and variant-by-TTA tables) as Markdown, sorted as trained.

    Columns: variant, change, epochs, train minutes, best validation accuracy, ``split`` accuracy / macro-F1 as
    published and deduplicated, the difference to ``reference`` (the table's, :func:`ablation_table`; published and
    dedup), McNemar's p with the discordant counts, and the other test split's accuracy.
    """
    from fer_utils.experiments.seeds import DEDUP

    other = next((c[: -len("_accuracy")] for c in table.columns if c.endswith("_accuracy") and DEDUP not in c
                  and not c.startswith((split, "best"))), None)
    val_dedup = "val acc without copies" in table.columns
    head = ["variant", "change", "epochs", "train min", "best val", *(["best val without copies"] if val_dedup else []),
            f"{split} acc / F1", f"{split} dedup acc / F1",
            f"diff vs {reference} (dedup)", f"McNemar p ({reference} right / variant right)"] + (
        [f"{other} acc"] if other else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in table.iterrows():
        p = r.get("McNemar p")
        mcnemar = "-" if name == reference or p is None or np.isnan(p) else (
            f"{p:.2g} ({r.get(f'discordant ({reference} right / variant right)')})")
        diff = (f"{r.get(f'diff vs {reference} ({split})', np.nan):+.4f} "
                f"({r.get(f'diff vs {reference} ({split}, dedup)', np.nan):+.4f})")
        cells = [f"`{name}`", _cell(r.get("change")), _cell(r.get("epochs"), "{:.0f}"),
                 _cell(r.get("train minutes"), "{:.1f}"), _cell(r.get("best val acc")),
                 *([_cell(r.get("val acc without copies"))] if val_dedup else []),
                 *(f"{_cell(r.get(f'{split}{d}_accuracy'))} / {_cell(r.get(f'{split}{d}_macro_f1'), '{:.3f}')}"
                   for d in ("", DEDUP)), diff, mcnemar]
        if other:
            cells.append(_cell(r.get(f"{other}_accuracy")))
        lines.append("| " + " | ".join(cells) + " |")
    if ttas is not None and not ttas.empty:
        names = [c for c in ttas.columns if not c.endswith(" dedup")]
        lines += ["", "| variant | " + " | ".join(f"{split} {c} (dedup)" for c in names) + " |",
                  "|" + "---|" * (len(names) + 1)]
        for name, r in ttas.iterrows():
            lines.append(f"| `{name}` | " + " | ".join(f"{r[c]:.4f} ({r[c + ' dedup']:.4f})" for c in names) + " |")
    if reach is None or reach.empty:
        return "\n".join(lines) + "\n"
    thresholds = [c for c in reach.columns if c.startswith("val acc >=")]
    head = ["run", *(f"minutes to {c}" for c in thresholds), "best val acc", "training minutes"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, r in reach.iterrows():
        cells = ["never" if np.isnan(r[c]) else f"{r[c]:.1f}" for c in thresholds]
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {r['best val acc']:.4f} | {r['minutes']:.1f} |")
    return "\n".join(lines) + "\n"
