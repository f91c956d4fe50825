"""Training and inference throughput of the suite's models, with and without the input pipeline.

For every model x input size x precision this benchmark builds a registry model
(:func:`fer_utils.models.build_model`, channels from :func:`~fer_utils.models.model_info`),
compiles it (Adam, categorical cross-entropy) and measures, in images per second:

1. ``train_img_s``: ``model.train_on_batch`` on one fixed, pre-made float32 batch held in
   memory, i.e. the model's own training speed with no input cost. The first call traces and
   compiles the graph; its wall time (trace plus one step) is reported as ``trace_s`` and is
   kept out of the rate, as are ``--warmup`` further calls.
2. ``infer_img_s``: ``model.predict_on_batch`` on the same in-memory batch, after warm-up.
3. ``pipeline_train_img_s``: ``model.fit`` fed by the real training pipeline
   (:func:`fer_utils.pipeline.make_dataset` from uint8 48x48 images: resize to the model input,
   grey-to-RGB repeat for the ImageNet backbones, flip/shift/rotation/zoom augmentation, shuffle,
   in-memory cache), after a warm-up ``fit``. ``pipeline_cost_pct`` is
   ``100 * (1 - pipeline_train_img_s / train_img_s)``: the share of training speed lost to
   feeding the model (negative values are measurement noise).
4. ``pipeline_only_img_s``: the same dataset iterated with no model at all, i.e. the most the
   pipeline can deliver on this machine.

The input images come from :func:`fer_utils.data.make_synthetic_faces`, so no dataset
files are needed. Only speed is measured; accuracy is meaningless here.

How it is timed and why:

- ``time.perf_counter`` around calls that return NumPy values (``train_on_batch`` and
  ``predict_on_batch`` return host values), so each timed step has really finished.
- The pipeline dataset is repeated and its cache is filled by the pipeline-only warm-up, so the
  timed steps see the steady state of a real run's second and later epochs.
- In ``fit``, a callback times from the start of the first batch to the end of the last one.
  That leaves out ``fit``'s once-per-epoch set-up (data adapter, callbacks, new iterator),
  which a real epoch of hundreds of steps amortises but a 20-step benchmark would not.
- ``keras.backend.clear_session()`` runs between configurations, and the float32 dtype policy
  is restored at the end, even after an error or Ctrl-C.

A size below a model's ``min_input_size`` is raised to that minimum and the row's ``note``
says so. A failing configuration is recorded with its ``error`` and the benchmark goes on.
Results are appended to the CSV (created with a header when missing; an existing CSV with
different columns is refused rather than mixed). Each row is written as soon as it is
measured. All rows of one run share one ``timestamp``. A Markdown table of this run's rows
is printed at the end.

The numbers depend on everything else running on the machine: ``load_1m`` (the 1-minute load
average at the start of the configuration) is recorded so busy-machine rows can be spotted.
``mixed_bfloat16`` on a CPU without native bf16 (AVX512-BF16/AMX) is emulated and usually
slower than float32; the row's ``note`` says so.

Usage (from the repository root)::

    python benchmarks/throughput.py                                   # the full default grid
    python benchmarks/throughput.py --models cnn --sizes 48 --steps 3 --warmup 1 --out /tmp/tp.csv
    python benchmarks/throughput.py --recipe cpu --steps 15      # the cpu profile's training recipe as trained

Options: ``--models`` (comma-separated registry names), ``--sizes`` (input sides),
``--batch``, ``--steps`` (timed steps per measurement), ``--warmup`` (untimed steps before each
measurement), ``--precision`` (comma-separated Keras policies), ``--out`` (CSV path),
``--normalization`` (``auto``: each model's registry default), ``--recipe PROFILE`` (measure that profile's
notebook-03 recipe: model, builder arguments, input size, batch, precision, augmentation, normalization).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import gc
import math
import os
import sys
import time
from pathlib import Path

# Running ``python benchmarks/throughput.py`` puts benchmarks/ on sys.path, not the repository
# root, so make ``fer_utils`` importable without requiring PYTHONPATH.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))
# Must be set before Keras is first imported; explicit user settings win.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after KERAS_BACKEND is set)
import numpy as np  # noqa: E402

DEFAULT_MODELS = "cnn,cnn_se,cnn_cbam,msca_resnet,resnet50,vgg19,inception_v3"
DEFAULT_SIZES = "48,96"
DEFAULT_PRECISIONS = "float32,mixed_bfloat16"
DEFAULT_OUT = "benchmarks/results/throughput.csv"

# The training augmentation of the cpu and paper profiles (params/*.yaml).
AUGMENT = {"flip": True, "shift": 0.1, "rotation_deg": 10.0, "zoom": 0.1}
NUM_CLASSES = 7
SOURCE_SIZE = 48  # FER-2013 images are 48x48 grey; the pipeline resizes them to the model input.
# Distinct batches in the pipeline's image pool. The dataset repeats, so this only bounds
# memory (the cache holds resized images) while still exercising shuffling over several batches.
POOL_BATCHES = 8

COLUMNS = [
    "model", "params", "input", "precision", "batch", "trace_s", "train_img_s", "infer_img_s",
    "pipeline_train_img_s", "pipeline_cost_pct", "pipeline_only_img_s", "cpu_count", "tensorflow",
    "keras", "timestamp", "steps", "load_1m", "note", "error",
]

# Columns of the printed Markdown table, with their headers.
TABLE = [
    ("model", "model"), ("input", "input"), ("precision", "precision"), ("params", "params"),
    ("trace_s", "trace s"), ("train_img_s", "train img/s"), ("infer_img_s", "infer img/s"),
    ("pipeline_train_img_s", "pipeline train img/s"), ("pipeline_cost_pct", "pipeline cost %"),
    ("pipeline_only_img_s", "pipeline only img/s"), ("note", "note"), ("error", "error"),
]


def _csv_list(text):
    """Splits a comma-separated option into its non-empty, stripped items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv=None):
    """Parses and validates the command line.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        An ``argparse.Namespace`` whose ``models``, ``sizes`` and ``precision`` are lists.
    """
    from fer_utils import models, train

    parser = argparse.ArgumentParser(
        description="Train/inference/input-pipeline throughput of the FER models (images per second).")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"registry names (default: {DEFAULT_MODELS})")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="input sides in pixels (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps before each measurement (default: %(default)s)")
    parser.add_argument("--precision", default=DEFAULT_PRECISIONS,
                        help=f"Keras dtype policies, some of {', '.join(train.PRECISIONS)} (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="CSV to append to (default: %(default)s)")
    parser.add_argument("--normalization", default="auto",
                        help="pipeline normalization; auto = each model's registry default (default: %(default)s)")
    parser.add_argument("--recipe", default="",
                        help="a profile (e.g. cpu) whose notebook-03 recipe is measured: its model, builder arguments, "
                             "input size, batch, precision, augmentation and normalization replace those options")
    args = parser.parse_args(argv)
    args.augment, args.model_kwargs = dict(AUGMENT), {}
    if args.recipe:
        from fer_utils.experiments import recipe as R

        try:
            settings = R.variant_settings(R.recipe_from_profile(args.recipe, _REPO_ROOT / "params",
                                                                _REPO_ROOT / "notebooks"), R.FULL, 1)
        except ValueError as err:
            parser.error(f"--recipe {args.recipe}: {err}")
        args.models, args.sizes = settings["model_name"], str(settings["input_size"])
        args.batch, args.precision = settings["train_config"]["batch_size"], settings["train_config"]["precision"]
        args.augment, args.normalization = settings["augment"] or {}, settings["normalization"]
        args.model_kwargs = settings["model_kwargs"]

    args.models = _csv_list(args.models)
    unknown = [m for m in args.models if m not in models.available_models()]
    if unknown or not args.models:
        parser.error(f"--models: unknown {unknown}; known: {', '.join(models.available_models())}")
    try:
        args.sizes = [int(s) for s in _csv_list(args.sizes)]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated integers, got {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--sizes: expected positive integers")
    args.precision = _csv_list(args.precision)
    bad = [p for p in args.precision if p not in train.PRECISIONS]
    if bad or not args.precision:
        parser.error(f"--precision: unknown {bad}; expected some of {', '.join(train.PRECISIONS)}")
    from fer_utils.pipeline import NORMALIZATIONS

    if args.normalization not in ("auto", *NORMALIZATIONS):
        parser.error(f"--normalization {args.normalization!r}: expected auto or one of {', '.join(NORMALIZATIONS)}")
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--batch and --steps must be >= 1, --warmup >= 0")
    return args


def _cpu_count():
    """CPUs this process may run on (the affinity mask, which containers may restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 0


def _load_1m():
    """The 1-minute load average, or None where the OS does not report one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _rate(images, seconds):
    """Images per second, rounded; None when nothing was timed."""
    return round(images / seconds, 1) if seconds > 0 else None


def open_csv(path):
    """Opens ``path`` for appending rows, writing the header if the file is new or empty.

    Args:
        path: CSV path; missing parent folders are created.

    Returns:
        ``(file, csv.DictWriter)``; the caller closes the file.

    Raises:
        SystemExit: The file exists with other columns (appending would corrupt it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    is_new = not path.exists() or path.stat().st_size == 0
    if not is_new:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if header != COLUMNS:
            raise SystemExit(f"{path} exists with different columns {header}; expected {COLUMNS}. "
                             "Pass another --out (results are never overwritten).")
    f = open(path, "a", newline="", encoding="utf-8")
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    if is_new:
        writer.writeheader()
        f.flush()
    return f, writer


class _BatchTimer(keras.callbacks.Callback):
    """Times ``fit`` from the first batch's start to the last batch's end (set-up excluded)."""

    def __init__(self):
        super().__init__()
        self.start = self.end = None
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.end = time.perf_counter()
        self.batches += 1


def benchmark_one(name, size, precision, images, labels, *, batch, steps, warmup, augment=None,
                  normalization="auto", model_kwargs=None):
    """Measures one model x size x precision configuration.

    Args:
        name: Registry model name.
        size: Requested input side; raised to the model's ``min_input_size`` if smaller.
        precision: A precision accepted by :func:`fer_utils.train.set_precision`.
        images: uint8 ``[N, 48, 48]`` source images (``N >= batch``).
        labels: int ``[N]`` class indices.
        batch: Batch size.
        steps: Timed steps per measurement.
        warmup: Untimed steps before each measurement.
        augment: Training augmentation of the pipeline (default: the profiles' flip/shift/rotation/zoom).
        normalization: Pipeline normalization; ``auto`` = the model's registry default.
        model_kwargs: Builder arguments (e.g. a recipe's filters).

    Returns:
        A dict with the measured columns (``model``, ``params``, ``input``, ``precision``,
        ``trace_s``, the four rates, ``pipeline_cost_pct``, ``note``). Keys not yet measured
        when an exception escapes are simply absent from the partial dict attached to the
        exception as ``exc.partial_row``.
    """
    import tensorflow as tf

    from fer_utils import models, pipeline, train

    # The size and normalization a run of this model would train with (the registry's one rule for both).
    side, channels, norm, raised = models.resolve_input(name, size, normalization, (model_kwargs or {}).get("weights"))
    row = {"model": name, "input": f"{side}x{side}x{channels}", "precision": precision}
    notes = [raised] if raised else []
    try:
        # The policy must be set before the model (and, as in experiments.run_experiment, before
        # the dataset, whose augmentation layers follow it too).
        row["precision"] = policy = train.set_precision(precision)
        if policy == "mixed_bfloat16" and getattr(train, "_cpu_supports_bf16", lambda: True)() is False \
                and not tf.config.list_physical_devices("GPU"):
            notes.append("bf16 emulated (CPU lacks avx512_bf16/amx_bf16)")
        keras.utils.set_random_seed(0)
        model = models.build_model(name, (side, side, channels), NUM_CLASSES, **(model_kwargs or {}))
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        row["params"] = int(model.count_params())

        # A fixed batch exactly as the pipeline would deliver it (resized, normalised, channel
        # repeated) but without augmentation, held in memory as tensors so no input work is timed.
        if norm == "standardize":
            norm = "unit"  # needs training statistics; the cost is the same
        common = dict(input_size=(side, side), channels=channels, batch_size=batch, normalization=norm)
        x_np, y_np = pipeline.as_arrays(
            pipeline.make_dataset(images[:batch], labels[:batch], NUM_CLASSES, cache=False, **common))
        x, y = tf.constant(x_np, tf.float32), tf.constant(y_np, tf.float32)

        # 1. Training on in-memory tensors. The first call traces the train step.
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        row["trace_s"] = round(time.perf_counter() - t0, 3)
        for _ in range(warmup):
            model.train_on_batch(x, y)
        t0 = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        row["train_img_s"] = _rate(steps * batch, time.perf_counter() - t0)

        # 2. Inference on in-memory tensors; at least one untimed call absorbs the predict trace.
        for _ in range(max(1, warmup)):
            model.predict_on_batch(x)
        t0 = time.perf_counter()
        for _ in range(steps):
            model.predict_on_batch(x)
        row["infer_img_s"] = _rate(steps * batch, time.perf_counter() - t0)

        # The real training pipeline (pipeline.TrainingStream, what runs and trials train on): endless, so
        # any number of steps can be drawn from a small pool. drop_remainder keeps every batch full, so
        # images = steps * batch exactly.
        ds = pipeline.TrainingStream(images, np.eye(NUM_CLASSES, dtype=np.float32)[labels], seed=0,
                                     augment=AUGMENT if augment is None else augment, drop_remainder=True,
                                     **common).dataset()

        # 4. Pipeline alone. Its warm-up runs one full pass over the pool so the augmentation is traced.
        pool_batches = len(images) // batch
        it = iter(ds)
        for _ in range(pool_batches + warmup):
            next(it)
        t0 = time.perf_counter()
        for _ in range(steps):
            next(it)
        row["pipeline_only_img_s"] = _rate(steps * batch, time.perf_counter() - t0)
        # A live iterator keeps prefetch threads and buffers; drop it so it does not compete with fit.
        del it
        gc.collect()

        # 3. Training fed by the pipeline. The warm-up fit traces fit's train function (it takes
        # an iterator, unlike train_on_batch's) and starts tf.data's autotuning.
        # shuffle=False only silences Keras' warning: the dataset shuffles itself.
        model.fit(ds, steps_per_epoch=max(1, warmup), epochs=1, verbose=0, shuffle=False)
        timer = _BatchTimer()
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
        if timer.batches != steps or timer.start is None:
            raise RuntimeError(f"fit ran {timer.batches} of {steps} steps")
        row["pipeline_train_img_s"] = _rate(steps * batch, timer.end - timer.start)
        if row["train_img_s"] and row["pipeline_train_img_s"]:
            row["pipeline_cost_pct"] = round(100.0 * (1.0 - row["pipeline_train_img_s"] / row["train_img_s"]), 1)
    except Exception as exc:
        row["note"] = "; ".join(notes)
        exc.partial_row = row
        raise
    row["note"] = "; ".join(notes)
    return row


def _fmt(key, value):
    """Formats a cell for the Markdown table (empty for None, thousands separators for counts)."""
    if value is None or value == "":
        return ""
    if key == "trace_s":
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value).replace("|", "\\|")


def markdown_table(rows):
    """Renders rows as a Markdown table (columns in :data:`TABLE`; empty columns are left out).

    Args:
        rows: Dicts keyed by :data:`COLUMNS`.

    Returns:
        The table as a string.
    """
    cols = [(key, head) for key, head in TABLE if key not in ("note", "error") or any(r.get(key) for r in rows)]
    lines = ["| " + " | ".join(head for _, head in cols) + " |",
             "|" + "|".join("---" if key in ("model", "input", "precision", "note", "error") else "---:"
                            for key, _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(key, r.get(key)) for key, _ in cols) + " |")
    return "\n".join(lines)


def main(argv=None):
    """Runs the benchmark grid, appends to the CSV and prints the Markdown table.

    Args:
        argv: Command-line arguments without the program name; None reads ``sys.argv``.

    Returns:
        0 if every configuration was measured, 1 if any failed (its row has an ``error``).
    """
    args = parse_args(argv)

    import tensorflow as tf

    from fer_utils import data, train

    tf.get_logger().setLevel("ERROR")  # retracing notices between configurations are expected here
    # Enough source images for POOL_BATCHES full batches (make_synthetic_faces counts per class).
    n_per_class = math.ceil(POOL_BATCHES * args.batch / NUM_CLASSES)
    images, labels = data.make_synthetic_faces(n_per_class, size=SOURCE_SIZE, seed=0)
    images, labels = images[:POOL_BATCHES * args.batch], labels[:POOL_BATCHES * args.batch]

    common = {"batch": args.batch, "steps": args.steps, "cpu_count": _cpu_count(), "tensorflow": tf.__version__,
              "keras": keras.__version__,
              "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    configs = [(m, s, p) for m in args.models for s in args.sizes for p in args.precision]
    rows, failed = [], 0
    f, writer = open_csv(args.out)
    try:
        for i, (name, size, precision) in enumerate(configs, 1):
            print(f"[{i}/{len(configs)}] {name} size={size} {precision} ...", flush=True)
            load = _load_1m()
            try:
                row = benchmark_one(name, size, precision, images, labels,
                                    batch=args.batch, steps=args.steps, warmup=args.warmup, augment=args.augment,
                                    normalization=args.normalization, model_kwargs=args.model_kwargs)
                if args.recipe:
                    row["note"] = "; ".join(filter(None, [row.get("note", ""), f"recipe of params/{args.recipe}.yaml"]))
                row["error"] = ""
            except Exception as exc:  # one broken configuration must not end the whole grid
                failed += 1
                row = dict(getattr(exc, "partial_row", {"model": name, "precision": precision}))
                row["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                print(f"    failed: {row['error']}", file=sys.stderr, flush=True)
            finally:
                # Free the graph and the model before the next configuration, and never leave a
                # mixed policy behind for it (each configuration sets its own).
                keras.backend.clear_session()
                train.set_precision("float32")
                gc.collect()
            row.update(common, load_1m=load)
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
            f.flush()  # a crash or Ctrl-C later keeps the rows measured so far
            rows.append(row)
    finally:
        f.close()
        train.set_precision("float32")

    print(f"\nAppended {len(rows)} row(s) to {args.out} (batch {args.batch}, {args.steps} timed steps, "
          f"{args.warmup} warm-up, {common['cpu_count']} CPUs, TF {common['tensorflow']}, "
          f"Keras {common['keras']}).\n")
    print(markdown_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
