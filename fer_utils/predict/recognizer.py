"""``EmotionRecognizer``: photos, videos and arrays in, one row per face out (a pandas DataFrame).

This module owns the rows ``predict`` produces and the batching that makes it fast: faces from many images
are classified together in batches of ``batch_size``, while a background thread decodes and detects the
next images. The classifier is any :func:`fer_utils.predictor.load_predictor` predictor (``"default"`` is the
model shipped in the package), so a face goes through exactly the preprocessing and test-time augmentation
its model was evaluated with (or the ``tta`` asked for).

Columns (see :data:`COLUMNS`): ``source``, ``frame`` and ``time_s`` (videos), ``face`` (index in its image,
largest first), the detector's box ``x, y, w, h`` (pixels of the original image) and ``detector_score``, one
probability column per class, ``emotion`` (top class) and ``probability`` (its probability), ``status``
(``ok``, ``no_face``, ``error``) and ``error`` (why a file could not be read).
"""

from __future__ import annotations

import collections
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from fer_utils.predict import detect as D
from fer_utils.predict import sources as S

STATUS = ("ok", "no_face", "error")
BOX_COLUMNS = ("x", "y", "w", "h", "detector_score")
#: Bytes of decoded images held for annotation before a batch is flushed early (bounded memory on big photos).
MAX_HELD_BYTES = 256_000_000
#: Frames decoded and detected ahead of the classifier (the images themselves are dropped unless annotating).
PREFETCH_DEPTH = 8
#: Threads detecting faces in parallel (Haar and none; OpenCV releases the GIL).
DETECT_WORKERS = 2
#: Threads classifying batches in parallel, each with its own one-thread LiteRT interpreter (LiteRT runtimes only;
#: 1: one interpreter on every core classifies in the main thread). The rows are the same up to the kernels' rounding:
#: 300 PrivateTest faces in batches of 256 on one thread and of 64 on two gave identical probabilities (int8 and
#: float32 weights); batches of 5 faces moved them by up to 0.0004 (fixture faces), as any batch size can.
CLASSIFY_WORKERS = 1
#: Faces per classified batch when several classifying threads share the work (small batches keep them all busy
#: to the end; 8-256 faces per call classify equally fast).
WORKER_BATCH = 64


def columns(class_names: Sequence[str]) -> list:
    """The output columns for a model with ``class_names``."""
    return ["source", "frame", "time_s", "face", *BOX_COLUMNS, *class_names, "emotion", "probability", "status",
            "error"]


def resolve_model(model="default", runtime: str = "keras"):
    """A predictor from ``"default"`` (the shipped model), a run/ensemble/exported folder, a list of run
    folders, or a predictor object (returned as is); ``runtime``: one of :data:`fer_utils.predictor.RUNTIMES`."""
    from fer_utils.predict.shipped import DEFAULT_DIR
    from fer_utils.predictor import load_predictor

    if hasattr(model, "predict") and hasattr(model, "class_names"):
        return model
    if isinstance(model, str) and model == "default":
        return load_predictor(DEFAULT_DIR, runtime)
    if isinstance(model, (str, Path)) and not Path(model).exists():
        raise FileNotFoundError(f"model={str(model)!r}: no such folder; expected 'default', a run folder "
                                "(model.keras + preprocessing.json), an ensemble folder or an exported model folder")
    return load_predictor(model, runtime)


class EmotionRecognizer:
    """Detect faces, frame them like the training faces, classify them in batches.

    Args:
        model: ``"default"`` (shipped with the package), a run / ensemble / exported folder, or a predictor.
        detector: ``"blazeface"`` (default: fastest, finds the most faces, eye keypoints), ``"haar"``, ``"mtcnn"``
            (slow, eye keypoints) or ``"none"`` (each image is one already-cropped face), or a
            :class:`fer_utils.predict.detect.Detector`.
        align: rotate faces so the eyes are level (``mtcnn`` and ``blazeface``: they give eye keypoints).
        tta: ``"default"`` (the model's own test-time augmentation), ``None``/``"none"``, ``"flip"``,
            ``"center_flip"`` or ``"ten_crop"``.
        batch_size: faces per classifier call (with several classifying threads at most :data:`WORKER_BATCH`).
        classify_workers: threads classifying batches, each with its own one-thread interpreter (LiteRT runtimes
            only; default :data:`CLASSIFY_WORKERS`); the rows are the one-thread path's up to rounding.
        runtime: ``"keras"`` (default), ``"litert"`` (the model's float32 form run by LiteRT, converted once and
            cached) or ``"litert_int8"`` (its int8-weight form; see :mod:`fer_utils.models.lite`). Ignored for a
            predictor object.
        crop_size: side of the face crops handed to the predictor (48: the datasets' faces; the predictor
            then resizes them exactly as in training).
        **detector_kwargs: ``detect_size``, ``min_face``, ``min_confidence`` (mtcnn), ``min_neighbors`` (haar).

    Example::

        rec = EmotionRecognizer()                     # shipped model, Haar detector
        df = rec.predict(["photos/", "clip.mp4"], video_stride=10)
        df = rec.predict(rgb_array)                   # numpy arrays work too
    """

    def __init__(self, model="default", *, detector="blazeface", align: bool = False, tta: Any = "default",
                 batch_size: int = 256, crop_size: int = 48, max_pixels: int = S.MAX_PIXELS, runtime: str = "keras",
                 classify_workers: int | None = None, **detector_kwargs):
        from fer_utils.evaluate.tta import resolve_tta

        tta = resolve_tta(tta)  # "default" stays: the predictor resolves it to its model's own
        workers = _workers(CLASSIFY_WORKERS if classify_workers is None else classify_workers,
                           "classify_workers" if classify_workers is not None else "recognizer.CLASSIFY_WORKERS")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1")
        if int(crop_size) < 16:
            raise ValueError(f"crop_size={crop_size!r}: expected at least 16 pixels")
        if int(max_pixels) < 1:
            raise ValueError(f"max_pixels={max_pixels!r}: expected a positive number of pixels")
        self.max_pixels = int(max_pixels)
        self.detector = D.make_detector(detector, **detector_kwargs)
        if align and self.detector.name not in D.WITH_EYES:
            raise ValueError(f"align=True needs eye keypoints, which only the detectors {list(D.WITH_EYES)} give; "
                             f"got detector={self.detector.name!r}")
        self.predictor = resolve_model(model, runtime)
        self.class_names = tuple(self.predictor.class_names)
        # Several classifying threads need a model each can run alone: a plain predictor of a LiteRT file (one
        # interpreter per thread). Others classify in one thread; asked for more explicitly, that is an error.
        from fer_utils.models.lite import LiteModel
        from fer_utils.predictor import Predictor

        lite = type(self.predictor) is Predictor and isinstance(self.predictor.model, LiteModel)
        if workers > 1 and not lite and classify_workers is not None:
            raise ValueError(f"classify_workers={workers}: several classifying threads need the shipped or a run's "
                             f"model on runtime='litert' or 'litert_int8'; got {self.predictor!r} "
                             f"(runtime={runtime!r})")
        self._classify_workers = workers if lite else 1
        # each classifying thread borrows one of these per batch (made here: LiteRT's interpreter warns on creation,
        # and silencing warnings is not thread-safe)
        self._worker_predictors: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self._classify_workers if self._classify_workers > 1 else 0):
            p = self.predictor
            self._worker_predictors.put(Predictor(LiteModel(p.model.path, num_threads=1), p.preprocessing, p.run_dir))
        self.align, self.tta = bool(align), tta
        self.batch_size, self.crop_size = int(batch_size), int(crop_size)

    @property
    def classify_workers(self) -> int:
        """Threads classifying batches (fixed at construction: each has its own interpreter)."""
        return self._classify_workers

    def __repr__(self):
        return (f"EmotionRecognizer({self.predictor!r}, detector={self.detector.name}, align={self.align}, "
                f"tta={self.tta}, batch_size={self.batch_size})")

    @property
    def columns(self) -> list:
        return columns(self.class_names)

    # ------------------------------------------------------------------ one image

    def faces(self, image: np.ndarray) -> tuple:
        """``(faces, crops)``: the detected faces of one uint8 image (grey or RGB), largest first, and their
        uint8 crops ``[n, crop_size, crop_size]`` framed like the training faces."""
        grey = D.to_grey(image)
        found = self.detector.detect(image if self.detector.name == "mtcnn" else grey)
        crops = [D.crop_face(grey, D.crop_geometry(f, self.detector.name, align=self.align), self.crop_size)
                 for f in found]
        return found, (np.stack(crops) if crops else np.zeros((0, self.crop_size, self.crop_size), np.uint8))

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, K]`` of face crops (the predictor's preprocessing and TTA)."""
        if len(crops) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        return self.predictor.predict(crops, batch_size=self.batch_size, tta=self.tta)

    def _classified(self, pending: list) -> list:
        """A batch's rows, classified by a predictor on a one-thread interpreter borrowed for the batch (the
        classifying threads' path)."""
        predictor = self._worker_predictors.get()
        try:
            return list(self._flush(pending, lambda crops: predictor.predict(crops, batch_size=self.batch_size,
                                                                               tta=self.tta)))
        finally:
            self._worker_predictors.put(predictor)

    # ------------------------------------------------------------------ many inputs

    def predict(self, inputs, *, video_stride: int = 1, progress: bool = False) -> pd.DataFrame:
        """One row per face (and one per image without a face or file that could not be read).

        Args:
            inputs: a uint8 image array, a list of arrays, a path (image, video or folder), or a list of paths.
            video_stride: read every ``video_stride``-th frame of videos.
            progress: show a progress bar over the files.
        """
        rows = [row for _, frame_rows in self.iter_results(inputs, video_stride=video_stride, progress=progress)
                for row in frame_rows]
        return self.to_frame(rows)

    def to_frame(self, rows: Iterable[dict]) -> pd.DataFrame:
        """Rows as a DataFrame with :attr:`columns` in order and integer ``frame``/``face`` columns."""
        df = pd.DataFrame(list(rows), columns=self.columns)
        for c in ("frame", "face"):
            df[c] = df[c].astype("Int64")
        return df

    def iter_results(self, inputs, *, video_stride: int = 1, progress: bool = False, keep_images: bool = False,
                     exclude: Sequence = ()) -> Iterator[tuple]:
        """``(frame, rows)`` per image/video frame/failure in input order, classified in batches.

        ``frame`` is a :class:`~fer_utils.predict.sources.Frame` (with its image only when ``keep_images``)
        or a :class:`~fer_utils.predict.sources.Failure`. Paths are checked (all of them exist) first.
        """
        if int(video_stride) < 1:
            raise ValueError(f"video_stride={video_stride!r}: expected an integer >= 1")
        items, total = self._frames(inputs, int(video_stride), exclude)
        keep_images = bool(keep_images)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="file", desc="predict", disable=None)
        workers = 1 if keep_images else self.classify_workers  # annotating: one batch of photos held at a time
        batch = self.batch_size if workers == 1 else min(self.batch_size, WORKER_BATCH)

        def batches():
            pending, n_crops, held = [], 0, 0
            # Without the images a detected frame is a few crops: the detectors run up to two batches ahead, so they
            # keep working while the main thread classifies a batch (with 8 frames they stalled for most of it).
            depth = PREFETCH_DEPTH if keep_images else max(PREFETCH_DEPTH, 2 * self.batch_size)
            for item in _prefetch(self._detected(items, bar, keep_images), depth):
                frame, found, crops = item
                pending.append(item)
                n_crops += len(crops)
                if isinstance(frame, S.Frame) and frame.image is not None:
                    held += frame.image.nbytes
                if n_crops >= batch or held >= MAX_HELD_BYTES:
                    yield pending
                    pending, n_crops, held = [], 0, 0
            if pending:
                yield pending

        try:
            # one classifying thread: the main thread; several: batches classified by them, yielded in input order
            if workers == 1:
                for pending in batches():
                    yield from self._flush(pending, self.classify)
            else:
                for results in _ordered_map(self._classified, batches(), workers, window=workers + 1,
                                            name="fer-predict-classify"):
                    yield from results
        finally:
            if bar is not None:
                bar.close()

    def _frames(self, inputs, stride: int, exclude) -> tuple:
        """An iterator of frames/failures and the number of files (None for arrays)."""
        if isinstance(inputs, np.ndarray) and inputs.dtype != object and inputs.ndim in (2, 3) and (
                inputs.ndim == 2 or inputs.shape[-1] in (1, 3, 4)):
            inputs = [inputs]
        elif isinstance(inputs, (str, Path)):
            inputs = [inputs]
        inputs = list(inputs)
        if inputs and all(isinstance(i, np.ndarray) for i in inputs):
            for k, a in enumerate(inputs):
                try:
                    D.to_grey(a)
                except ValueError as err:
                    raise ValueError(f"inputs[{k}]: {err}") from None

            def arrays():
                for k, a in enumerate(inputs):
                    yield S.Frame(f"array[{k}]", a)
            return arrays(), None
        bad = [type(i).__name__ for i in inputs if not isinstance(i, (str, Path))]
        if bad:
            raise ValueError(f"inputs must be image arrays or paths, not a mix; got {sorted(set(bad))}")
        files = S.expand_paths(inputs, exclude=exclude)

        def read():
            for f in files:
                yield from S.read_frames(f, video_stride=stride, max_pixels=self.max_pixels)
        return read(), len(files)

    def _detected(self, items, bar, keep_images: bool) -> Iterator[tuple]:
        """Frames with their faces and crops, in input order (runs in the prefetch thread; frames are detected by
        :data:`DETECT_WORKERS` threads). A frame's image is dropped unless ``keep_images``, so the queue holds
        crops, not photos. Any error on one frame becomes a failure."""
        empty = np.zeros((0, self.crop_size, self.crop_size), np.uint8)

        def one(item):
            if isinstance(item, S.Failure):
                return item, [], empty
            try:
                found, crops = self.faces(item.image)
            except Exception as err:  # noqa: BLE001 - one bad image never stops a batch
                where = item.source if item.frame is None else f"{item.source} frame {item.frame}"
                return S.Failure(item.source, f"{where}: {type(err).__name__}: {err}", item.frame), [], empty
            if not keep_images:
                item.image = None
            return item, found, crops

        last = None
        # The MTCNN detector runs TensorFlow graphs: one thread; Haar (OpenCV releases the GIL) and none: several.
        workers = 1 if self.detector.name == "mtcnn" else DETECT_WORKERS
        for item, found, crops in _ordered_map(one, items, workers):
            if bar is not None and item.source != last:
                if last is not None:
                    bar.update(1)
                last = item.source
            yield item, found, crops
        if bar is not None and last is not None:
            bar.update(1)

    def _flush(self, pending: list, classify) -> Iterator[tuple]:
        """Rows of a batch of detected frames, their crops classified together by ``classify(crops)``."""
        if not pending:
            return
        crops = [c for _, _, c in pending if len(c)]
        probs = classify(np.concatenate(crops)) if crops else np.zeros((0, len(self.class_names)))
        at = 0
        for frame, found, c in pending:
            p = probs[at:at + len(c)]
            at += len(c)
            yield frame, self._rows(frame, found, p)

    def _rows(self, frame, found: list, probs: np.ndarray) -> list:
        base = {"source": frame.source, "frame": getattr(frame, "frame", None),
                "time_s": getattr(frame, "time_s", None)}
        if isinstance(frame, S.Failure):
            return [{**base, "status": "error", "error": frame.error}]
        if not found:
            return [{**base, "status": "no_face", "error": ""}]
        rows = []
        for k, (f, p) in enumerate(zip(found, probs)):
            top = int(np.argmax(p))
            rows.append({**base, "face": k, "x": round(f.x, 1), "y": round(f.y, 1), "w": round(f.w, 1),
                         "h": round(f.h, 1), "detector_score": round(f.score, 4),
                         **{c: round(float(v), 5) for c, v in zip(self.class_names, p)},
                         "emotion": self.class_names[top], "probability": round(float(p[top]), 5),
                         "status": "ok", "error": ""})
        return rows


def _workers(value, name: str) -> int:
    """A thread count >= 1 (any integer type), or an error naming where it came from."""
    import operator

    try:
        n = operator.index(value)
    except TypeError:
        n = None
    if n is None or isinstance(value, bool) or n < 1:
        raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    return n


def _ordered_map(fn, items: Iterable, workers: int, window: int = 16, name: str = "fer-predict-detect") -> Iterator:
    """``fn(item)`` for each item, computed by ``workers`` threads, yielded in input order, at most ``window`` ahead
    (one worker: in the calling thread)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _prefetch(iterator: Iterator, depth: int = PREFETCH_DEPTH) -> Iterator:
    """``iterator``'s items, produced by a background thread up to ``depth`` ahead (exceptions re-raised here)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            q.put(_Raised(err))
        q.put(done)

    thread = threading.Thread(target=work, name="fer-predict-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def predict(inputs, *, model="default", detector="blazeface", video_stride: int = 1, **kwargs) -> pd.DataFrame:
    """One-call form of :meth:`EmotionRecognizer.predict` (``kwargs`` go to :class:`EmotionRecognizer`)."""
    return EmotionRecognizer(model, detector=detector, **kwargs).predict(inputs, video_stride=video_stride)

