"""Cheaper BlazeFace set-ups for ``predict``'s default path, measured where it falls short (issue 24): none kept.

On an AVX2-only CPU the default path (BlazeFace + the shipped classifier, ``litert_int8``, ``--tta none``) reaches
1.16-1.53x the ``fer`` package; BlazeFace is about a third of its CPU time (``benchmarks/predict.py --components``).
This script measures what could make the detector's share cheaper without touching the shipped model:

- ``invoke``: one BlazeFace call per 128x128 window on one thread (the shipped model, as the command runs it), the
  same network with its first convolution folded over the three identical channels of a grey photo (one input
  channel: the same outputs for grey input up to float rounding, 4.9M fewer of its 30.8M multiply-adds), 31
  windows in one call (what a 640x480 photo is read as) on one and on two threads, and the network on a 64x64
  window (a quarter of the work);
- ``first_pass_64``: the detector reading a single-window photo at 64x64 first and at 128x128 only when that finds
  no face, against the shipped set-up: faces found and accuracy (over all photos, and over the photos where both
  found a face) on the shipped model's own validation rows without a near-duplicate in its training rows, as
  128x128 photos (where ``predict``'s choices are made, never on a test
  split; McNemar against the shipped set-up), and images/s end to end on PrivateTest photos (A/B alternated);
- ``threads``: the command end to end with 1-3 detecting threads x 1, 2 and every core for the classifier, one
  configuration after the other.

Writes ``benchmarks/results/detector_setups_<cpu kind>.csv`` (``--out``). Needs FER-2013 (``FER_DATA_DIR``).

Usage (from the repository root)::

    python benchmarks/detector_setups.py --images 600
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import predict as P  # noqa: E402  (benchmarks/predict.py: images, timing, CPU kind; sets KERAS_BACKEND)


def patched_model(*, fold_grey: bool = False, any_batch: bool = False) -> bytes:
    """The shipped BlazeFace ``.tflite`` rewritten in memory: ``fold_grey`` sums the first convolution's kernel over
    its three input channels and makes the input one channel (the same outputs for a grey image up to float
    rounding); ``any_batch`` lets its four reshapes take any batch (they are fixed to batch 1)."""
    import numpy as np
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from fer_utils.predict import blazeface as B

    m = fu.read_model(str(B.MODEL_FILE))
    g = m.subgraphs[0]
    if fold_grey:
        inp = g.inputs[0]
        first = next(op for op in g.operators if inp in list(op.inputs))
        k, deq = next((k, op) for k, op in enumerate(g.operators) if first.inputs[1] in list(op.outputs))
        src = g.tensors[deq.inputs[0]]  # float16 kernel [24, 5, 5, 3] behind a DEQUANTIZE
        kernel = np.frombuffer(m.buffers[src.buffer].data.tobytes(), np.float16).reshape(src.shape)
        folded = kernel.astype(np.float32).sum(axis=-1, keepdims=True)
        buf = fu.schema_fb.BufferT()
        buf.data = np.frombuffer(folded.tobytes(), np.uint8)
        m.buffers.append(buf)
        w = g.tensors[first.inputs[1]]
        w.buffer, w.shape = len(m.buffers) - 1, np.array(folded.shape, np.int32)
        del g.operators[k]  # the kernel is float32 now: no DEQUANTIZE
        g.tensors[inp].shape = np.array([1, B.INPUT_SIDE, B.INPUT_SIDE, 1], np.int32)
        for t in (w, g.tensors[inp]):
            if t.shapeSignature is not None:
                t.shapeSignature = np.array(t.shape, np.int32)
    if any_batch:
        for op in g.operators:
            if getattr(op.builtinOptions, "newShape", None) is not None:
                op.builtinOptions.newShape = np.array([-1, *g.tensors[op.outputs[0]].shape[1:]], np.int32)
    return bytes(fu.convert_object_to_bytearray(m))


def interpreter(content=None, *, shape=None, threads: int = 1):
    import tensorflow as tf

    from fer_utils.predict import blazeface as B

    it = (tf.lite.Interpreter(model_content=content, num_threads=threads) if content is not None
          else tf.lite.Interpreter(model_path=str(B.MODEL_FILE), num_threads=threads))
    if shape is not None:
        it.resize_tensor_input(it.get_input_details()[0]["index"], list(shape))
    it.allocate_tensors()
    return it


def run(it, x) -> list:
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return sorted((it.get_tensor(o["index"]) for o in it.get_output_details()), key=lambda a: -a.shape[-1])


def first_pass_detector(side: int = 64):
    """BlazeFace reading a single-window photo at ``side`` x ``side`` first, at 128x128 only if that finds no face;
    larger photos (tiles) as shipped. Keeps the shipped framing (its boxes frame like the 128 ones in a side check
    with ``detect.measure_framing``: scale 1.17 against 1.18, the same offsets)."""
    from fer_utils.models.lite import LiteModel
    from fer_utils.predict import blazeface as B

    class FirstPass(B.BlazeFaceDetector):
        def _small(self):
            it = getattr(self._local, "small", None)
            if it is None:
                it = LiteModel(B.MODEL_FILE, num_threads=1)
                it._it.resize_tensor_input(it._in["index"], [1, side, side, 3])
                it._it.allocate_tensors()
                it.input_shape, it._batch = (None, side, side, 3), 1
                self._local.small = it
            return it

        def _detect(self, image, min_face):
            h, w = image.shape[:2]
            if len(B.windows(h, w, min_face)) > 1:
                return super()._detect(image, min_face)
            x, (scale, px, py) = B.letterbox(image, side)
            raw = sorted(self._small().run(x[None]), key=lambda a: -a.shape[-1])
            boxes, kps, scores = B.decode(raw[0][0], raw[1][0], anchors, min_confidence=self.min_confidence, side=side)
            boxes, kps = (boxes - [px, py, px, py]) / scale, (kps - [px, py]) / scale
            return B.to_faces(B.weighted_nms(boxes, kps, scores), min_face) or super()._detect(image, min_face)

    anchors = B.anchors(side)
    return FirstPass()


def invoke_rows(greys, repeats: int) -> list:
    import numpy as np

    from fer_utils.predict import blazeface as B

    boxes = [B.letterbox(g)[0] for g in greys]
    n = len(boxes)
    rows = []

    def add(what, threads, seconds, windows, max_diff=None):
        rows.append({"job": "invoke", "what": what, "threads": threads, "items": windows,
                     "ms_per_item": round(1000 * seconds / windows, 3),
                     "core_ms_per_item": round(1000 * seconds * threads / windows, 3), "max_abs_diff": max_diff})
        print(rows[-1], flush=True)

    shipped = interpreter()
    want = [run(shipped, b[None]) for b in boxes]
    add("shipped, 128x128 RGB", 1, P.best_seconds(lambda: [run(shipped, b[None]) for b in boxes], repeats), n)
    grey = interpreter(patched_model(fold_grey=True))
    got = [run(grey, b[None, :, :, :1]) for b in boxes]
    diff = max(float(np.abs(a - c).max()) for w, g in zip(want, got) for a, c in zip(w, g))
    add("first convolution folded, 128x128 grey", 1,
        P.best_seconds(lambda: [run(grey, b[None, :, :, :1]) for b in boxes], repeats), n, diff)
    batch = np.stack(boxes[:31])
    for threads in (1, 2):
        it = interpreter(patched_model(any_batch=True), shape=batch.shape, threads=threads)
        out = run(it, batch)
        diff = max(float(np.abs(out[j][i] - want[i][j][0]).max()) for i in range(31) for j in range(2))
        add("31 windows per call", threads, P.best_seconds(lambda: [run(it, batch) for _ in range(n // 31)], repeats),
            31 * (n // 31), diff)
    small = [B.letterbox(g, 64)[0] for g in greys]
    it = interpreter(shape=(1, 64, 64, 3))
    add("64x64 window", 1, P.best_seconds(lambda: [run(it, s[None]) for s in small], repeats), n)
    return rows


def first_pass_rows(ds, paths, repeats: int) -> list:
    import numpy as np

    from fer_utils.predict import EmotionRecognizer
    from fer_utils.stats import mcnemar_test

    faces, labels = P.clean_validation(ds)
    setups = {"shipped": "blazeface", "first_pass_64": first_pass_detector(64)}
    recs = {k: EmotionRecognizer("default", detector=d, runtime="litert_int8", tta="none") for k, d in setups.items()}
    preds, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        val_paths = P.single_face_images(faces, Path(tmp) / "val")
        for name, rec in recs.items():
            preds[name] = P.first_face_classes(rec.predict(val_paths), len(faces), ds.class_names)
    for rec in recs.values():
        rec.predict(paths)  # warm
    speed = {k: [] for k in recs}
    for _ in range(repeats):  # alternated: this machine's speed drifts from one minute to the next
        for name, rec in recs.items():
            start = time.perf_counter()
            rec.predict(paths)
            speed[name].append(len(paths) / (time.perf_counter() - start))
    both = (preds["shipped"] >= 0) & (preds["first_pass_64"] >= 0)  # the faces both set-ups found
    for name in recs:
        rows.append({"job": "first_pass_64", "what": name, "items": len(paths),
                     "per_s": round(max(speed[name]), 1), "val_images": len(faces),
                     "val_faces_found": int((preds[name] >= 0).sum()),
                     "val_accuracy": round(float(np.mean(preds[name] == labels)), 4),
                     "val_both_found": int(both.sum()),
                     "val_accuracy_both_found": round(float(np.mean(preds[name][both] == labels[both])), 4),
                     "mcnemar_p_vs_shipped": round(mcnemar_test(labels, preds[name], preds["shipped"])["p"], 4)})
        print(rows[-1], flush=True)
    return rows


def thread_rows(paths, repeats: int) -> list:
    import fer_utils.models.lite as L
    import fer_utils.predict.recognizer as R
    from fer_utils.predict import EmotionRecognizer

    rows, init, workers0 = [], L.LiteModel.__init__, R.DETECT_WORKERS
    try:
        for workers, threads in itertools.product((1, 2, 3), sorted({1, 2, os.cpu_count() or 1})):
            R.DETECT_WORKERS = workers

            def patched(self, path, num_threads=None, _t=threads):  # the detector keeps its one thread
                init(self, path, num_threads=num_threads if num_threads == 1 else _t)
            L.LiteModel.__init__ = patched
            rec = EmotionRecognizer("default", detector="blazeface", runtime="litert_int8", tta="none")
            rec.predict(paths)
            seconds = P.best_seconds(lambda: rec.predict(paths), repeats)
            rows.append({"job": "threads", "what": f"{workers} detecting, classifier on {threads}",
                         "items": len(paths), "per_s": round(len(paths) / seconds, 1),
                         "default": (workers, threads) == (workers0, os.cpu_count())})
            print(rows[-1], flush=True)
    finally:
        L.LiteModel.__init__, R.DETECT_WORKERS = init, workers0
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=600, help="128x128 PrivateTest photos for the timings")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(P.RESULTS))
    args = p.parse_args(argv)
    import cv2
    import pandas as pd

    from fer_utils.data import load_dataset

    ds = load_dataset("fer2013")
    if ds.is_synthetic:
        p.error("needs FER-2013 (set FER_DATA_DIR)")
    kind = P.cpu_kind()
    with tempfile.TemporaryDirectory() as tmp:
        paths = P.single_face_images(ds.split("PrivateTest").images[:args.images], Path(tmp) / "test")
        greys = [cv2.imread(str(q), cv2.IMREAD_GRAYSCALE) for q in paths]
        rows = invoke_rows(greys, args.repeats) + first_pass_rows(ds, paths, args.repeats) + thread_rows(
            paths, args.repeats)
    table = pd.DataFrame(rows)
    table.insert(0, "cpu", kind)
    out = Path(args.out) / f"detector_setups_{kind.lower().replace('-', '')}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"\n-> {out}\n{table.to_string(index=False)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
