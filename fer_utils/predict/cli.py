"""The ``predict`` command: emotions of the faces in images, folders and videos, to CSV/JSON and annotated copies.

::

    python -m fer_utils.predict PATH... [--model default|RUN_DIR] [--detector blazeface|haar|mtcnn|none] [--align]
        [--out results.csv|results.json] [--annotate OUT_DIR] [--tta default|none|flip|center_flip|ten_crop]
        [--video-stride N] [--batch-size N] [--max-pixels N] [--overwrite]

Everything that can be wrong with the arguments is checked before the model loads: the paths exist, the
output has a known extension and is not an existing file (``--overwrite`` replaces it), the annotation
folder is empty or new. The CSV is written as results come (a killed run keeps what it finished);
JSON is written at the end. Files that cannot be read get a row with ``status=error`` and are listed at the
end; the exit status is 0 when the batch finished (even with unreadable files), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from fer_utils.evaluate.tta import DEFAULT_TTA, TTA_NAMES
from fer_utils.predict import detect as D
from fer_utils.predict import sources as S
from fer_utils.predictor import RUNTIMES

#: The command's TTA unless ``--tta`` is given: one view. Chosen on the shipped model's validation rows without a
#: near-duplicate in its training rows, as photos through BlazeFace (``python benchmarks/predict.py --tta-choice``,
#: benchmarks/results/predict_tta_choice.csv: none 0.621, flip 0.624 (McNemar p 0.59), center_flip 0.616, ten_crop
#: 0.624 (p 0.75) of 2,872 images): no TTA was worth its cost there. The Python API keeps the model's own
#: (``"default"``).
CLI_TTA = "none"

OUT_FORMATS = (".csv", ".json")
IMAGE_OUT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Box colours (RGB) per class, in the class order of FER-2013.
COLOURS = [(230, 57, 70), (106, 153, 78), (155, 93, 229), (255, 190, 11), (58, 134, 255), (255, 0, 110),
           (160, 160, 160)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fer_utils.predict",
                                description="Facial expressions of the faces in images, folders (recursive) and "
                                            "videos: one row per face with the class probabilities.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders, video files")
    p.add_argument("--model", default="default",
                   help="'default' (shipped with the package), a run folder, an ensemble folder or an exported folder")
    p.add_argument("--detector", default="blazeface", choices=D.DETECTORS,
                   help="blazeface (default): MediaPipe's BlazeFace, fastest, finds the most faces, eye keypoints; "
                        "haar: OpenCV's cascade; mtcnn: slow, eye keypoints; none: images are face crops")
    p.add_argument("--align", action="store_true",
                   help="rotate faces so the eyes are level (blazeface and mtcnn: they give eye keypoints)")
    p.add_argument("--out", help="write the rows to this .csv or .json file")
    p.add_argument("--annotate", metavar="OUT_DIR", help="write copies of the images with boxes and labels here")
    p.add_argument("--tta", default=CLI_TTA, choices=(DEFAULT_TTA,) + TTA_NAMES,
                   help="test-time augmentation; default: none (one view: on the shipped model's clean validation "
                        "photos through BlazeFace no other TTA was significantly more accurate, "
                        "benchmarks/results/predict_tta_choice.csv); 'default': the model's own (the shipped "
                        "model: ten_crop); ten_crop: 10 views, about 2 points more accurate on 48x48 FER-2013 crops "
                        "(--detector none)")
    p.add_argument("--runtime", default="litert_int8", choices=RUNTIMES,
                   help="what computes the probabilities: litert_int8 (default: the model with int8 weights, "
                        "LiteRT dynamic-range quantization, converted once into the cache; about twice as fast as "
                        "keras; about one face in a hundred changes class, no accuracy lost measurably on PrivateTest; "
                        "kept for ten_crop on validation, benchmarks/results/predict_ten_crop_choice.csv), "
                        "litert (float32, the Keras float32 probabilities to about 1e-6) or keras "
                        "(exactly as evaluated)")
    p.add_argument("--video-stride", type=int, default=1, metavar="N", help="read every N-th video frame")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="faces per classifier batch")
    p.add_argument("--min-face", type=int, default=48, metavar="PX",
                   help="smallest face to detect, in pixels (default 48, the model's input size: smaller faces are "
                        "upsampled and lose detail; 20 finds them, more slowly)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images above N pixels before decoding, as an error row (default 50,000,000)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file / write into a non-empty --annotate folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no per-face lines")
    return p


def check_args(args) -> list:
    """The files to read; raises ``SystemExit(2)`` with a message naming the bad argument."""
    def fail(message):
        print(f"predict: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    if args.video_stride < 1:
        fail(f"--video-stride {args.video_stride}: expected an integer >= 1")
    if args.batch_size < 1:
        fail(f"--batch-size {args.batch_size}: expected an integer >= 1")
    if args.max_pixels is not None and args.max_pixels < 1:
        fail(f"--max-pixels {args.max_pixels}: expected a positive number of pixels")
    if args.align and args.detector not in D.WITH_EYES:
        fail(f"--align needs eye keypoints, which only --detector {' or '.join(D.WITH_EYES)} gives (got --detector "
             f"{args.detector})")
    exclude = []
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in OUT_FORMATS:
            fail(f"--out {args.out}: expected a file ending in {' or '.join(OUT_FORMATS)}")
        if out.exists() and not args.overwrite:
            fail(f"--out {args.out} exists; pass --overwrite to replace it or choose another name")
        if out.is_dir():
            fail(f"--out {args.out} is a folder; expected a file name")
        if not out.parent.is_dir():
            fail(f"--out {args.out}: the folder {out.parent} does not exist")
        exclude.append(out)
    if args.annotate:
        ann = Path(args.annotate)
        if ann.exists() and (not ann.is_dir() or (any(ann.iterdir()) and not args.overwrite)):
            fail(f"--annotate {args.annotate} exists and is not an empty folder; pass --overwrite to write into it "
                 "or choose another folder")
        exclude.append(ann)
    if args.model != "default" and not Path(args.model).exists():
        fail(f"--model {args.model}: no such folder; expected 'default' or a run / ensemble / exported folder")
    try:
        files = S.expand_paths(args.paths, exclude=exclude)
    except FileNotFoundError as err:
        fail(str(err))
    if not files:
        fail(f"no files to read under {' '.join(args.paths)}")
    return files


def annotation_path(out_dir: Path, source: str, root: Optional[Path], frame: Optional[int]) -> Path:
    """Where the annotated copy of ``source`` (or of one video frame) goes, mirroring the input tree."""
    src = Path(source).resolve()
    rel = src.relative_to(root) if root is not None and root in src.parents else Path(src.name)
    if frame is not None:
        return out_dir / rel / f"frame_{frame:06d}.jpg"
    if rel.suffix.lower() not in IMAGE_OUT_EXTENSIONS:
        rel = rel.with_name(rel.name + ".png")
    return out_dir / rel


def draw(image: np.ndarray, rows: list, class_names) -> np.ndarray:
    """A copy of the RGB ``image`` with each face's box and ``label pp%`` drawn."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    thick = max(1, round(max(out.shape[:2]) / 400))
    for r in rows:
        if r.get("status") != "ok":
            continue
        k = list(class_names).index(r["emotion"])
        colour = COLOURS[k % len(COLOURS)]
        x, y, w, h = (int(round(r[c])) for c in ("x", "y", "w", "h"))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thick)
        label = f"{r['emotion']} {100 * r['probability']:.0f}%"
        scale = max(0.35, w / 220)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y - th - base - 2 if y - th - base - 2 >= 0 else y + h
        cv2.rectangle(out, (x, top), (x + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(out, label, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick,
                    cv2.LINE_AA)
    return out


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB image (any path, including non-ASCII names)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix.lower() or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    files = check_args(args)

    from fer_utils.predict.recognizer import EmotionRecognizer

    try:
        rec = EmotionRecognizer(args.model, detector=args.detector, align=args.align, tta=args.tta,
                                batch_size=args.batch_size, min_face=args.min_face, runtime=args.runtime,
                                **({"max_pixels": args.max_pixels} if args.max_pixels else {}))
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"predict: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    ann = Path(args.annotate) if args.annotate else None
    root = Path(os.path.commonpath([str(Path(f).resolve().parent) for f in files]))
    # Rows are kept in memory only for JSON or the console table; a CSV is streamed.
    keep_rows = out is None or out.suffix.lower() == ".json"
    csv_started, kept, failures = False, [], []
    counts = {status: 0 for status in ("ok", "no_face", "error")}
    started = time.perf_counter()
    for frame, rows in rec.iter_results(files, video_stride=args.video_stride, progress=not args.quiet,
                                        keep_images=ann is not None, exclude=[p for p in (out, ann) if p]):
        if isinstance(frame, S.Failure):
            failures.append(frame)
        elif ann is not None:
            write_image(annotation_path(ann, frame.source, root, frame.frame), draw(frame.image, rows, rec.class_names))
            frame.image = None
        if out is not None and out.suffix.lower() == ".csv":
            rec.to_frame(rows).to_csv(out, mode="a" if csv_started else "w", header=not csv_started, index=False)
            csv_started = True
        for r in rows:
            counts[r["status"]] += 1
        if keep_rows:
            kept.extend(rows)
    seconds = time.perf_counter() - started
    if out is not None and out.suffix.lower() == ".json":
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        os.close(fd)
        rec.to_frame(kept).to_json(tmp, orient="records", indent=1)
        os.replace(tmp, out)
    if out is None and not args.quiet:
        df = rec.to_frame(kept)
        shown = df[df["status"] == "ok"][["source", "frame", "face", "emotion", "probability"]]
        print(shown.to_string(index=False) if len(shown) else "no faces found")
    print(f"predict: {len(files)} file(s), {counts['ok']} face(s), {counts['no_face']} image(s)/frame(s) "
          f"without a face, {len(failures)} unreadable, {seconds:.1f} s"
          + (f"; rows in {out}" if out else "") + (f"; annotated copies in {ann}" if ann else ""), file=sys.stderr)
    if failures:
        print(f"predict: {len(failures)} file(s) could not be read:", file=sys.stderr)
        for f in failures:
            print(f"  {f.error}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
