"""``predict`` on this machine: end-to-end faces/s, the detectors compared, and the framing constants measured.

- ``--speed``: for each runtime of the shipped model (``--runtime keras,litert,litert_int8``), faces/s end to end
  (decode a JPEG + detect + crop + classify, the command's own code path) on 128x128 single-face images made
  from FER-2013 PrivateTest faces, for each detector and test-time augmentation, and the classifier's
  images/s alone (crops already in memory). Anchor: the ``fer`` package (Haar + its 58k-parameter model) runs
  at about 200 images/s end to end on such images on a 2-core AMX machine (115-124 images/s on an AVX2-only
  one, measured by the team); ``--fer-package`` measures it here on the same images
  (``pip install --no-deps fer==25.10.3``: its Haar path needs only OpenCV and TensorFlow).
- ``--accuracy``: the shipped model's PrivateTest accuracy and macro-F1 (as published and without the images whose
  near-duplicate family holds a training image, as every table does) for each runtime and test-time augmentation,
  on the dataset's own 48x48 faces (the ``--detector none`` path), with McNemar's test against the Keras runtime at
  the same augmentation: what a faster runtime costs in accuracy, if anything.
- ``--tta-choice``: the shipped model's accuracy per TTA on its own validation rows without a near-duplicate in its
  training rows, as photos through BlazeFace and as crops (the ``litert_int8`` runtime): where ``predict``'s
  default TTA is chosen (never on a test split).
- ``--ten-crop-choice``: on the same validation crops, ten-crop at the model's crop side and at 0.98 for each
  runtime: which side the model's ten-crop takes and whether the command's ``--tta ten_crop`` should compute in
  float32 LiteRT instead of int8 (rules in :func:`ten_crop_choice`, committed before this command first ran; the
  run's own ten-crop validation scores at both sides were on file then:
  ``tta_crop_e26_longer_batch_64_validation.csv``).
- ``--components``: where the default path's time goes on this CPU, stage by stage on the same images as ``--speed``
  (decode, BlazeFace and Haar per image on one thread, the classifier per runtime on every core with the GFLOP/s it
  reaches, and an untrained ``fuse="separable"`` network's speed), then the command's default end to end with the
  cores it kept busy; the CPU kind is a column.
- ``--scenes N``: the detectors on N composed scenes (three PrivateTest faces each, enlarged and pasted among
  clutter): faces found (IoU >= 0.5 of the framed box), median IoU, false positives, ms per scene.
- ``--framing N``: :func:`fer_utils.predict.detect.measure_framing` on N FER-2013 Training faces per detector
  (the source of ``detect.FRAMING``).

Results go to ``benchmarks/results/predict_<what>.csv`` and are printed. Needs FER-2013 (``FER_DATA_DIR``).

Usage (from the repository root)::

    python benchmarks/predict.py --speed --images 600
    python benchmarks/predict.py --fer-package --images 600      # the fer package, same images, its own process
    python benchmarks/predict.py --accuracy
    python benchmarks/predict.py --tta-choice
    python benchmarks/predict.py --ten-crop-choice
    python benchmarks/predict.py --components --images 600
    python benchmarks/predict.py --scenes 100
    python benchmarks/predict.py --framing 1500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS = _REPO_ROOT / "benchmarks" / "results"


def single_face_images(faces, folder: Path, size: int = 128, face_side: int = 96) -> list:
    """JPEG files of ``size`` x ``size`` with one face of ``face_side`` pixels in the middle (replicated border)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    pad = (size - face_side) // 2
    paths = []
    for k, f in enumerate(faces):
        big = cv2.resize(f, (face_side, face_side), interpolation=cv2.INTER_CUBIC)
        img = cv2.copyMakeBorder(big, pad, size - face_side - pad, pad, size - face_side - pad, cv2.BORDER_REPLICATE)
        path = folder / f"{k:05d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


def best_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (this machine's host load makes single timings noisy)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speed(faces, n_images: int, batch_size: int, repeats: int = 3, runtimes=("keras", "litert", "litert_int8"),
          labels=None, class_names=None, only=None, classify_workers=None):
    """Steady-state throughput: each configuration runs once untimed (model graphs traced for every batch shape,
    detector loaded), then the best of ``repeats`` timed runs; for each runtime of the shipped model. ``only``:
    ``[(detector, tta)]`` end to end, nothing else (for interleaving with ``--fer-package`` runs).
    ``classify_workers``: the end-to-end recognizers' classifying threads (None: the command's default)."""
    import numpy as np
    import pandas as pd

    from fer_utils.evaluate.tta import TTA_NAMES
    from fer_utils.predict import EmotionRecognizer

    rows = []
    crops = np.asarray(faces[:1024])
    for runtime in runtimes if only is None else ():
        rec = EmotionRecognizer("default", detector="none", batch_size=batch_size, runtime=runtime)
        for tta in TTA_NAMES:
            rec.predictor.predict(crops, batch_size=batch_size, tta=tta)
            seconds = best_seconds(lambda: rec.predictor.predict(crops, batch_size=batch_size, tta=tta), repeats)
            rows.append({"what": "classifier alone (48x48 crops in memory)", "runtime": runtime, "detector": "-",
                         "tta": tta, "images": len(crops), "faces": len(crops),
                         "per_s": round(len(crops) / seconds, 1)})
            print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = single_face_images(faces[:n_images], Path(tmp) / "images")
        for runtime in runtimes:
            plan = (("haar", TTA_NAMES), ("blazeface", TTA_NAMES), ("none", ("none", "center_flip")),
                    ("mtcnn", ("center_flip",)))
            if only is not None:
                plan = [(d, [t for dd, t in only if dd == d]) for d in dict.fromkeys(d for d, _ in only)]
            for detector, ttas in plan:
                if detector == "mtcnn" and runtime != runtimes[0]:
                    continue  # the detector dominates: once is enough
                n = len(paths) if detector != "mtcnn" else min(len(paths), 120)
                rec = EmotionRecognizer("default", detector=detector, batch_size=batch_size, runtime=runtime,
                                        classify_workers=classify_workers)
                for tta in ttas:
                    rec.tta = tta
                    df = rec.predict(paths[:n])  # untimed warm-up
                    seconds = best_seconds(lambda: rec.predict(paths[:n]), repeats if detector != "mtcnn" else 1)
                    rows.append({**_end_to_end(runtime, detector, tta, n, int((df["status"] == "ok").sum()), seconds,
                                               rec.classify_workers),
                                 **_accuracy(df, labels, class_names, n)})
                    print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def _accuracy(df, labels, class_names, n) -> dict:
    """Accuracy of the largest face found per image against the image's label: over the images where a face was
    found, and over all ``n`` images (an image without a face counts as wrong)."""
    if labels is None:
        return {}
    ok = df[(df["status"] == "ok") & (df["face"] == 0)]
    index = ok["source"].map(lambda s: int(Path(s).stem)).to_numpy()
    right = ok["emotion"].to_numpy() == [class_names[int(labels[i])] for i in index]
    return {"accuracy (faces found)": round(float(right.mean()), 4) if len(right) else float("nan"),
            "accuracy (all images)": round(float(right.sum()) / n, 4)}


def _end_to_end(runtime, detector, tta, n, faces_found, seconds, classify_workers=None) -> dict:
    return {"what": "end to end (decode JPEG + detect + crop + classify)", "runtime": runtime, "detector": detector,
            "tta": tta, "images": n, "faces": faces_found, "per_s": round(n / seconds, 1),
            "faces_per_s": round(faces_found / seconds, 1),
            **({} if classify_workers is None else {"classify_workers": classify_workers})}


def fer_package_speed(faces, n_images: int, repeats: int = 3):
    """The ``fer`` package (Haar + its own model, as its README uses it) on the same JPEG files, end to end: decode
    with OpenCV, then ``FER().detect_emotions``. Run it in its own process (``--fer-package``), like ours."""
    import pandas as pd

    try:
        import cv2
        from fer.fer import FER
    except ImportError as e:
        raise SystemExit(f"--fer-package needs the fer package ({e}); install it beside the suite without its torch "
                         "and video extras: pip install --no-deps fer==25.10.3") from None
    detector = FER()  # Haar cascade, the package's default
    with tempfile.TemporaryDirectory() as tmp:
        paths = single_face_images(faces[:n_images], Path(tmp) / "images")

        def run():
            return [detector.detect_emotions(cv2.imread(str(p))) for p in paths]

        found = sum(bool(r) for r in run())  # untimed warm-up
        seconds = best_seconds(run, repeats)
    import fer

    row = _end_to_end(f"fer {fer.__version__}", "haar", "none", len(paths), found, seconds)
    print(row, flush=True)
    return pd.DataFrame([row])


def runtime_accuracy(ds, runtimes, split: str = "PrivateTest"):
    """The shipped model on ``split`` for each runtime x TTA: accuracy, macro-F1, both without the images whose
    near-duplicate family holds a training image (``data.leaked_rows``), agreement with Keras and McNemar's p
    against Keras at the same TTA."""
    import numpy as np
    import pandas as pd

    from fer_utils import data as D
    from fer_utils.evaluate.metrics import compute_metrics
    from fer_utils.evaluate.tta import TTA_NAMES
    from fer_utils.predictor import load_predictor
    from fer_utils.predict.shipped import DEFAULT_DIR
    from fer_utils.stats import mcnemar_test

    test = ds.split(split)
    keep = ~D.leaked_rows(ds)[ds.splits == split]
    names = list(ds.class_names)
    reference, rows = {}, []
    for runtime in dict.fromkeys(("keras", *runtimes)):
        predictor = load_predictor(DEFAULT_DIR, runtime=runtime)
        for tta in TTA_NAMES:
            start = time.perf_counter()
            pred = predictor.predict(test.images, tta=tta).argmax(1)
            seconds = time.perf_counter() - start
            ref = reference.setdefault(tta, pred)
            full, dedup = (compute_metrics(test.labels[m], pred[m], names) for m in (slice(None), keep))
            rows.append({"runtime": runtime, "tta": tta, "split": split, "images": len(pred),
                         "accuracy": round(full["accuracy"], 4), "macro_f1": round(full["macro_f1"], 4),
                         "dedup_images": int(keep.sum()), "dedup_accuracy": round(dedup["accuracy"], 4),
                         "dedup_macro_f1": round(dedup["macro_f1"], 4),
                         "agreement_with_keras": round(float(np.mean(pred == ref)), 4),
                         "mcnemar_p_vs_keras": round(mcnemar_test(test.labels, pred, ref)["p"], 4),
                         "seconds": round(seconds, 1)})
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def clean_validation(ds) -> tuple:
    """``(faces, labels)`` of the shipped model's own validation rows (its model card's split: whole near-duplicate
    families where the card records ``group``, else the carve-out that reproduces the card's data checksum) that have
    no near-duplicate in its training rows: where ``predict``'s choices are made, never on a test split.

    Raises:
        ValueError: no carve-out of ``ds`` reproduces the card's data checksum (names the card).
    """
    import json

    import numpy as np

    from fer_utils import data as D
    from fer_utils.experiments import export
    from fer_utils.predict.shipped import DEFAULT_DIR

    card = json.loads((DEFAULT_DIR / "model_card.json").read_text())
    split, _ = export.training_split(ds, card["split_params"], checksum=card["data_checksum"])
    if split.checksum != card["data_checksum"]:
        raise ValueError(f"{DEFAULT_DIR / 'model_card.json'}: its split_params {card['split_params']} do not "
                         f"reproduce its data checksum {card['data_checksum'][:12]}... on this dataset "
                         f"({split.checksum[:12]}...)")
    rows = np.flatnonzero((split.splits == "Validation") & ~D.leaked_rows(split, train_split="Training"))
    return split.images[rows], split.labels[rows]


def first_face_classes(df, n: int, class_names):
    """Class index of the first face ``predict`` reported in each of the ``n`` photos made by
    :func:`single_face_images` (named by their index), -1 where it found none (wrong whatever the label)."""
    import numpy as np

    first = df[(df["status"] == "ok") & (df["face"] == 0)]
    pred = np.full(n, -1)
    pred[first["source"].map(lambda s: int(Path(s).stem)).to_numpy()] = [list(class_names).index(e)
                                                                         for e in first["emotion"]]
    return pred


def tta_on_validation(ds, runtime: str = "litert_int8", detectors=("blazeface", "none"), limit: int = 0):
    """Which test-time augmentation ``predict`` should use, chosen where choosing is allowed: on the shipped model's
    own validation rows (its model card's split, never a test split) that have no near-duplicate in its training
    rows, as 128x128 JPEG photos through each detector (``none``: the 48x48 face itself). Per detector x TTA:
    faces found, accuracy over all images (a missed face counts wrong), the classifier's views per face (its cost),
    and McNemar's p against the cheapest TTA (``none``) on the same images."""

    import numpy as np
    import pandas as pd

    from fer_utils.evaluate.tta import TTA_NAMES
    from fer_utils.predict import EmotionRecognizer
    from fer_utils.stats import mcnemar_test

    faces, labels = clean_validation(ds)
    faces, labels = (faces[:limit], labels[:limit]) if limit else (faces, labels)
    names = list(ds.class_names)
    views = {"none": 1, "flip": 2, "center_flip": 2, "ten_crop": 10}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = single_face_images(faces, Path(tmp) / "images")
        for detector in detectors:
            rec = EmotionRecognizer("default", detector=detector, runtime=runtime)
            preds = {}
            for tta in TTA_NAMES:
                rec.tta = tta
                if detector == "none":
                    pred = rec.classify(faces).argmax(1)
                else:
                    pred = first_face_classes(rec.predict(paths), len(faces), names)
                preds[tta] = pred
                out.append({"detector": detector, "runtime": runtime, "tta": tta, "views per face": views[tta],
                            "images": len(faces), "faces found": int((pred >= 0).sum()),
                            "accuracy": round(float(np.mean(pred == labels)), 4),
                            "mcnemar_p_vs_none": round(mcnemar_test(labels, pred, preds["none"])["p"], 4)
                            if tta != "none" else float("nan")})
                print(out[-1], flush=True)
    return pd.DataFrame(out)


def ten_crop_choice(ds, fractions=(0.875, 0.98), runtimes=("keras", "litert", "litert_int8")):
    """The shipped model's ten-crop set-up, chosen on its own clean validation rows (48x48 crops, as
    ``--detector none`` gives them) by rules committed before this first ran: the crop side is the ``fractions``
    value with the best mean accuracy over ``runtimes`` (a tie keeps the model's recorded one), then the command's
    ten-crop runtime is float32 LiteRT only where it is right on more of these faces than int8 at that side (a tie
    keeps int8, the faster). Per runtime x fraction: accuracy, and McNemar's p against int8 at the source run's
    fraction (``source_crop_fraction`` where an export changed it, so a rerun after shipping the choice writes the
    same table); the ``chosen`` column marks the choice."""
    import numpy as np
    import pandas as pd

    from fer_utils.predictor import load_predictor
    from fer_utils.predict.shipped import DEFAULT_DIR
    from fer_utils.stats import mcnemar_test

    faces, labels = clean_validation(ds)
    preds, out = {}, []
    for runtime in runtimes:
        predictor = load_predictor(DEFAULT_DIR, runtime=runtime)
        own = predictor.preprocessing
        recorded = float(own.get("source_crop_fraction", own["crop_fraction"]))
        for fraction in dict.fromkeys((recorded, *fractions)):
            predictor.preprocessing["crop_fraction"] = float(fraction)
            preds[runtime, fraction] = predictor.predict(faces, tta="ten_crop").argmax(1)
    base = preds.get(("litert_int8", recorded))
    for (runtime, fraction), pred in preds.items():
        out.append({"runtime": runtime, "tta": "ten_crop", "crop_fraction": fraction, "images": len(labels),
                    "correct": int((pred == labels).sum()), "accuracy": round(float(np.mean(pred == labels)), 4),
                    "mcnemar_p_vs_shipped": float("nan") if base is None or pred is base
                    else round(mcnemar_test(labels, pred, base)["p"], 4)})
    return choose_ten_crop(pd.DataFrame(out), recorded)


def choose_ten_crop(table, recorded: float):
    """:func:`ten_crop_choice`'s rules on its table (``runtime``, ``crop_fraction``, ``correct``), its ``chosen``
    column added: the side with the most right answers over the runtimes (a tie keeps ``recorded``), then float32
    LiteRT over int8 at that side only with more right answers."""
    table = table.copy()
    totals = table.groupby("crop_fraction", sort=False)["correct"].sum()
    side = recorded if totals[recorded] >= totals.max() else float(totals.idxmax())
    at = table[table["crop_fraction"] == side].set_index("runtime")["correct"]
    lite = "litert" if at.get("litert", -1) > at.get("litert_int8", -1) else "litert_int8"
    table["chosen"] = (table["crop_fraction"] == side) & (table["runtime"] == lite)
    return table


def cpu_kind() -> str:
    """The CPU's class as the docs name it: AMX, AVX512-BF16, AVX-512 or AVX2 (from /proc/cpuinfo)."""
    from fer_utils.artifacts import cpu_flags

    flags = cpu_flags()
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "unknown"


def components(faces, n_images: int, repeats: int = 3):
    """The default path's stages timed apart on ``n_images`` single-face JPEGs (best of ``repeats``), then together:
    decode, BlazeFace and Haar per image on one thread, the classifier alone per runtime (``tta none``, batches of 256,
    every core) with the GFLOP/s its multiply-adds reach, the same for the untrained ``fuse="separable"`` network
    (what the cheaper classifier would cost), and the default end to end with the cores it kept busy (process CPU time
    / wall time), then the same path with the separable network's float32 LiteRT form (its faster runtime here)."""
    import resource

    import cv2
    import numpy as np
    import pandas as pd

    from fer_utils.models import build_model, multiply_adds
    from fer_utils.models.lite import lite_model
    from fer_utils.predict import EmotionRecognizer
    from fer_utils.predict.detect import make_detector
    from fer_utils.predictor import Predictor

    def cpu_seconds():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    kind, rows = cpu_kind(), []

    def add(stage, what, n, seconds, threads, cpu=None, gflops=None):
        rows.append({"cpu": kind, "stage": stage, "what": what, "items": n, "threads": threads,
                     "ms_per_item": round(1000 * seconds / n, 3), "per_s": round(n / seconds, 1),
                     "cores_busy": None if cpu is None else round(cpu / seconds, 2),
                     "gflop_s": None if gflops is None else round(gflops, 1)})
        print(rows[-1], flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        paths = single_face_images(faces[:n_images], Path(tmp) / "images")
        images = [cv2.imread(str(p)) for p in paths]
        add("decode", "cv2.imread 128x128 JPEG", len(paths),
            best_seconds(lambda: [cv2.imread(str(p)) for p in paths], repeats), 1)
        for name in ("blazeface", "haar"):
            det = make_detector(name)
            det.detect(images[0])
            add("detect", name, len(images), best_seconds(lambda: [det.detect(i) for i in images], repeats), 1)
        crops = np.asarray(faces[:n_images])
        macs = multiply_adds(EmotionRecognizer("default", detector="none").predictor.model)
        for runtime in ("keras", "litert", "litert_int8"):
            rec = EmotionRecognizer("default", detector="none", runtime=runtime)
            rec.predictor.predict(crops, tta="none")
            seconds = best_seconds(lambda: rec.predictor.predict(crops, batch_size=256, tta="none"), repeats)
            add("classify", f"{runtime}, {macs / 1e6:.1f}M multiply-adds per face", len(crops), seconds,
                os.cpu_count(), gflops=2 * macs * len(crops) / seconds / 1e9)
        # The cheaper network (recipe variant separable_fuse), untrained: its speed only, the shipped preprocessing.
        cheap = build_model("msca_resnet", (48, 48, 1), len(rec.predictor.class_names), fuse="separable")
        cheap_macs = multiply_adds(cheap)
        for runtime in ("litert", "litert_int8"):
            pred = Predictor(lite_model(cheap, int8=runtime == "litert_int8"), rec.predictor.preprocessing)
            pred.predict(crops, tta="none")
            seconds = best_seconds(lambda: pred.predict(crops, batch_size=256, tta="none"), repeats)
            add("classify", f"{runtime}, msca_resnet fuse=separable (untrained: speed only), {cheap_macs / 1e6:.1f}M "
                "multiply-adds per face", len(crops), seconds, os.cpu_count(),
                gflops=2 * cheap_macs * len(crops) / seconds / 1e9)
        cheap_float = Predictor(lite_model(cheap), rec.predictor.preprocessing)
        for what, model in (("the default: blazeface + litert_int8 + tta none", "default"),
                            ("the default with the separable network instead (untrained: speed only), litert",
                             cheap_float)):
            rec = EmotionRecognizer(model, detector="blazeface", runtime="litert_int8", tta="none")
            rec.predict(paths)
            best = None
            for _ in range(repeats):
                c0, t0 = cpu_seconds(), time.perf_counter()
                rec.predict(paths)
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                best = min(best or (wall, cpu), (wall, cpu))
            add("end to end", what, len(paths), best[0], os.cpu_count(), cpu=best[1])
    return pd.DataFrame(rows)


def compare_scenes(faces, n_scenes: int):
    import numpy as np

    from fer_utils.predict import detect, scenes

    rng = np.random.default_rng(0)
    made = [scenes.compose_scene(faces[3 * k:3 * k + 3], rng) for k in range(n_scenes)]
    dets = {name: detect.make_detector(name) for name in ("haar", "blazeface", "mtcnn")}
    return scenes.detection_table(dets, made).reset_index()


def framing(faces):
    import pandas as pd

    from fer_utils.predict import detect

    return pd.DataFrame([detect.measure_framing(faces, name) for name in ("haar", "blazeface", "mtcnn")])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", action="store_true")
    p.add_argument("--images", type=int, default=600, help="single-face images for --speed")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (the best is kept)")
    p.add_argument("--runtime", default="keras,litert,litert_int8", help="runtimes of the shipped model for --speed")
    p.add_argument("--only", default="", metavar="DETECTOR:TTA,...",
                   help="--speed: only these end-to-end configurations, e.g. blazeface:center_flip,blazeface:none")
    p.add_argument("--fer-package", action="store_true",
                   help="measure the fer package instead of the suite, on the same images (its own process)")
    p.add_argument("--accuracy", action="store_true",
                   help="PrivateTest accuracy of the shipped model per runtime and TTA (predict_accuracy.csv)")
    p.add_argument("--tta-choice", action="store_true",
                   help="accuracy per TTA on the shipped model's clean validation rows through BlazeFace and without a "
                        "detector, the int8 runtime (predict_tta_choice.csv): which TTA predict should use")
    p.add_argument("--ten-crop-choice", action="store_true",
                   help="ten-crop's crop side and the command's runtime for it, chosen on the shipped model's clean "
                        "validation crops (predict_ten_crop_choice.csv)")
    p.add_argument("--components", action="store_true", help="where the default path's time goes on this CPU")
    p.add_argument("--classify-workers", type=int, default=None, metavar="N",
                   help="--speed: the end-to-end paths with N threads classifying batches, each on its own one-thread "
                        "LiteRT interpreter (default: the command's, recognizer.CLASSIFY_WORKERS), written to "
                        "predict_speed_w<N>.csv")
    p.add_argument("--scenes", type=int, default=0, metavar="N")
    p.add_argument("--framing", type=int, default=0, metavar="N")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if not (args.speed or args.scenes or args.framing or args.fer_package or args.accuracy or args.tta_choice
            or args.ten_crop_choice or args.components):
        p.error("choose --speed, --fer-package, --accuracy, --tta-choice, --ten-crop-choice, --components, --scenes N "
                "and/or --framing N")
    if args.speed and args.fer_package:
        p.error("--speed and --fer-package measure in separate processes: run them one after the other")
    if args.classify_workers is not None and (args.classify_workers < 1 or not args.speed):
        p.error(f"--classify-workers {args.classify_workers}: expected an integer >= 1, with --speed")
    runtimes = tuple(r.strip() for r in args.runtime.split(",") if r.strip())
    from fer_utils.predictor import RUNTIMES

    if not runtimes or set(runtimes) - set(RUNTIMES):
        p.error(f"--runtime {args.runtime!r}: expected some of {', '.join(RUNTIMES)} (comma-separated)")

    from fer_utils.data import load_dataset

    ds = load_dataset("fer2013")
    if ds.is_synthetic:
        p.error("needs FER-2013 (set FER_DATA_DIR); the synthetic faces would say nothing about real photos")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    if args.framing:
        jobs.append(("framing", lambda: framing(ds.split("Training").images[:args.framing])))
    if args.scenes:
        jobs.append(("scenes", lambda: compare_scenes(ds.split("PrivateTest").images, args.scenes)))
    if args.speed:
        test = ds.split("PrivateTest")
        only = [tuple(x.split(":")) for x in args.only.split(",") if x] or None
        if only and any(len(x) != 2 for x in only):
            p.error(f"--only {args.only!r}: expected DETECTOR:TTA pairs separated by commas")
        name = "speed" if args.classify_workers is None else f"speed_w{args.classify_workers}"
        jobs.append((name, lambda: speed(test.images, args.images, args.batch_size, args.repeats, runtimes,
                                         labels=test.labels, class_names=list(ds.class_names), only=only,
                                         classify_workers=args.classify_workers)))
    if args.components:
        jobs.append(("components", lambda: components(ds.split("PrivateTest").images, args.images, args.repeats)))
    if args.accuracy:
        jobs.append(("accuracy", lambda: runtime_accuracy(ds, runtimes)))
    if args.tta_choice:
        jobs.append(("tta_choice", lambda: tta_on_validation(ds)))
    if args.ten_crop_choice:
        jobs.append(("ten_crop_choice", lambda: ten_crop_choice(ds)))
    if args.fer_package:
        jobs.append(("speed_fer_package", lambda: fer_package_speed(ds.split("PrivateTest").images, args.images,
                                                                    args.repeats)))
    for name, job in jobs:
        table = job()
        table.to_csv(out / f"predict_{name}.csv", index=False)
        print(f"\n{name} -> {out / f'predict_{name}.csv'}\n{table.to_string(index=False)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
