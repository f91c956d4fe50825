"""Face detection and face crops framed like the training faces (no download at run time).

This module owns where a face is in a photo and how it is cut out:

- detectors: ``haar`` (OpenCV's frontal-face Haar cascade, shipped inside ``opencv-python-headless`` 4.x; fast),
  ``blazeface`` (MediaPipe's short-range BlazeFace network, shipped in ``blazeface_model/``, run by LiteRT: faster
  and finds more faces than Haar where faces fill a good part of the picture, with eye keypoints; see
  :mod:`fer_utils.predict.blazeface`), ``mtcnn`` (the ``mtcnn`` package, weights inside its wheel, runs on our
  TensorFlow; slower, more accurate, gives eye keypoints) and ``none`` (the whole image is one face, e.g. a
  dataset's 48x48 crops);
- framing: a detector's box is turned into the square crop a FER-2013 face would be, using constants
  measured by running each detector on FER-2013's own faces (:func:`measure_framing`,
  ``python benchmarks/predict.py --framing``): a Haar box is almost exactly a FER-2013 face (side x1.04),
  an MTCNN box is narrower and about as tall, a BlazeFace box sits lower; with ``align=True`` (MTCNN and
  BlazeFace) the crop is rotated so the eyes are level and scaled so the eyes sit where FER-2013's eyes sit on average;
- crops: a similarity warp of the grey image (replicated border where the square leaves the image), then an
  area resize to the model's input, so the face reaches the predictor as the datasets' uint8 faces do.

Large photos are detected on a copy whose long side is at most ``detect_size`` pixels and cropped from the
full-resolution image.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Optional, Sequence

import cv2
import numpy as np

DETECTORS = ("haar", "blazeface", "mtcnn", "none")
#: Detectors that give eye keypoints (what ``align=True`` needs).
WITH_EYES = ("blazeface", "mtcnn")

#: How FER-2013 frames a face, relative to each detector's box (measured on FER-2013 faces by
#: :func:`measure_framing`; see the README's *Predict* section). ``scale``: crop side / box height;
#: ``dx``, ``dy``: crop centre minus box centre, in box heights. ``eye_y``: eye line as a fraction of the crop
#: height from the top; ``eye_side``: crop side in inter-ocular distances (``align=True``).
#: ``python benchmarks/predict.py --framing 600`` (600 Training faces; Haar found 471, MTCNN 495):
#: haar scale 1.043, dx -0.003, dy 0.007; mtcnn scale 0.980, dx 0.007, dy -0.007, eye_y 0.385, eye_side 2.74;
#: blazeface (586 found) scale 1.178, dx 0.006, dy -0.092, eye_y 0.395, eye_side 2.76 (its box sits lower).
FRAMING = {
    "haar": {"scale": 1.04, "dx": 0.0, "dy": 0.0},
    "blazeface": {"scale": 1.18, "dx": 0.01, "dy": -0.09, "eye_y": 0.395, "eye_side": 2.76},
    "mtcnn": {"scale": 0.98, "dx": 0.01, "dy": -0.01, "eye_y": 0.385, "eye_side": 2.74},
}


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face: its box in the image (pixels), a detector score and, for MTCNN and BlazeFace, eyes."""

    x: float
    y: float
    w: float
    h: float
    score: float = float("nan")
    left_eye: Optional[tuple] = None
    right_eye: Optional[tuple] = None

    def scaled(self, factor: float) -> "Face":
        """The same face in an image ``factor`` times larger."""
        def eye(p):
            return None if p is None else (p[0] * factor, p[1] * factor)

        return Face(self.x * factor, self.y * factor, self.w * factor, self.h * factor, self.score,
                    eye(self.left_eye), eye(self.right_eye))


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey ``[H, W]`` from grey ``[H, W]``, ``[H, W, 1]``, RGB ``[H, W, 3]`` or RGBA ``[H, W, 4]``.

    Raises:
        ValueError: any other shape or dtype (says what was received).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image; got dtype {image.dtype} (shape {image.shape})")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    raise ValueError(f"expected an image [H, W] (grey) or [H, W, 3|4] (RGB/RGBA); got shape {image.shape}")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` from any image :func:`to_grey` accepts."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image
    if image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(to_grey(image), cv2.COLOR_GRAY2RGB)


class Detector:
    """Base class: ``detect(image) -> list[Face]`` on a uint8 image (grey or RGB), largest face first."""

    name = "none"

    def __init__(self, *, detect_size: int = 1024, min_face: int = 48):
        if int(detect_size) < 64:
            raise ValueError(f"detect_size={detect_size!r}: expected at least 64 pixels")
        if int(min_face) < 12:
            raise ValueError(f"min_face={min_face!r}: expected at least 12 pixels")
        self.detect_size = int(detect_size)
        self.min_face = int(min_face)

    def detect(self, image: np.ndarray) -> list:
        h, w = np.asarray(image).shape[:2]
        if type(self) is Detector:  # "none": the whole image, no resizing
            return [Face(0.0, 0.0, float(w), float(h))]
        factor = min(1.0, self.detect_size / max(h, w))
        small = image if factor == 1.0 else cv2.resize(np.asarray(image), (max(1, round(w * factor)),
                                                                           max(1, round(h * factor))),
                                                       interpolation=cv2.INTER_AREA)
        faces = [f.scaled(1.0 / factor) for f in self._detect(small, max(12, self.min_face * factor))]
        return sorted(faces, key=lambda f: -f.w * f.h)

    def _detect(self, image: np.ndarray, min_face: float) -> list:
        h, w = image.shape[:2]
        return [Face(0.0, 0.0, float(w), float(h))]

    def __repr__(self):
        return f"{type(self).__name__}(detect_size={self.detect_size}, min_face={self.min_face})"


class HaarDetector(Detector):
    """OpenCV's ``haarcascade_frontalface_default.xml``; the score is the number of merged detections.

    A ``CascadeClassifier`` must not run in two threads at once (opencv/opencv#4287): each thread gets its own.
    """

    name = "haar"

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5, **kwargs):
        super().__init__(**kwargs)
        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 removed it); "
                               "install opencv-python-headless 4.x (requirements.txt pins it)")
        self._path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._local = threading.local()
        self._cascade()  # fail here, not in a worker thread, if the cascade cannot be loaded
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)

    def _cascade(self):
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(self._path)
            if cascade.empty():
                raise RuntimeError(f"Could not load the Haar cascade {self._path}")
            self._local.cascade = cascade
        return cascade

    def _detect(self, image, min_face):
        grey = to_grey(image)
        side = int(math.ceil(min_face))
        boxes, counts = self._cascade().detectMultiScale2(grey, scaleFactor=self.scale_factor,
                                                        minNeighbors=self.min_neighbors, minSize=(side, side))
        return [Face(float(x), float(y), float(w), float(h), float(n)) for (x, y, w, h), n in zip(boxes, counts)]


class MTCNNDetector(Detector):
    """The ``mtcnn`` package (P-, R- and O-Net, weights in its wheel); keeps confidence >= ``min_confidence``."""

    name = "mtcnn"

    def __init__(self, *, min_confidence: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence={min_confidence!r}: expected a number in [0, 1]")
        try:
            from mtcnn import MTCNN
        except ImportError as err:  # pragma: no cover - requirements.txt installs it
            raise RuntimeError("detector='mtcnn' needs the mtcnn package (pip install mtcnn==1.0.0)") from err
        self._mtcnn = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
        self.min_confidence = float(min_confidence)

    def _detect(self, image, min_face):
        # min_face is applied to the boxes afterwards: mtcnn 1.0's min_face_size > 20 shifts its image pyramid
        # without extending it, so large faces are lost (a face filling a 480x640 picture is not found).
        found = self._mtcnn.detect_faces(to_rgb(image))
        faces = []
        for d in found or []:
            if d["confidence"] < self.min_confidence or min(d["box"][2], d["box"][3]) < min_face:
                continue
            x, y, w, h = (float(v) for v in d["box"])
            k = d.get("keypoints") or {}
            eyes = [tuple(float(v) for v in k[e]) if e in k else None for e in ("left_eye", "right_eye")]
            faces.append(Face(x, y, w, h, float(d["confidence"]), *eyes))
        return faces


def make_detector(name, **kwargs) -> Detector:
    """A detector by name (:data:`DETECTORS`), or ``name`` itself if it is already a :class:`Detector`.

    Raises:
        ValueError: an unknown name (lists the choices).
    """
    if isinstance(name, Detector):
        return name
    if name in (None, "none"):
        return Detector(**kwargs)
    if name == "haar":
        return HaarDetector(**kwargs)
    if name == "mtcnn":
        return MTCNNDetector(**kwargs)
    if name == "blazeface":
        from fer_utils.predict.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(**kwargs)
    raise ValueError(f"detector={name!r}: expected one of {list(DETECTORS)}")


# ----------------------------------------------------------------------------- framing and crops

def crop_geometry(face: Face, detector: str, *, align: bool = False) -> tuple:
    """``(centre_x, centre_y, side, angle_degrees)`` of the square crop that frames ``face`` like FER-2013.

    ``detector="none"`` keeps the box as it is (the whole image, squared around its centre).
    ``align=True`` needs eye keypoints (MTCNN, BlazeFace) and rotates the crop so the eyes are level.

    Raises:
        ValueError: ``align=True`` for a face without eye keypoints.
    """
    if detector not in FRAMING:
        return face.x + face.w / 2, face.y + face.h / 2, max(face.w, face.h), 0.0
    frame = FRAMING[detector]
    if align:
        if face.left_eye is None or face.right_eye is None:
            raise ValueError(f"align=True needs eye keypoints; the {detector} detector gives none (use mtcnn or "
                             "blazeface)")
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        if lx > rx:
            (lx, ly), (rx, ry) = (rx, ry), (lx, ly)
        dist = math.hypot(rx - lx, ry - ly)
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        side = frame["eye_side"] * dist
        # The eye midpoint sits eye_y of the side from the top of the (rotated) crop.
        ex, ey = (lx + rx) / 2, (ly + ry) / 2
        down = (0.5 - frame["eye_y"]) * side
        theta = math.radians(angle)
        return ex - down * math.sin(theta), ey + down * math.cos(theta), side, angle
    side = frame["scale"] * face.h
    return (face.x + face.w / 2 + frame["dx"] * face.h, face.y + face.h / 2 + frame["dy"] * face.h, side, 0.0)


def crop_face(grey: np.ndarray, geometry: tuple, size: int = 48) -> np.ndarray:
    """The uint8 ``[size, size]`` crop of ``grey`` given by :func:`crop_geometry` (replicated border outside).

    The square is first warped at up to four times ``size`` and then area-resized, so large faces are
    not aliased.
    """
    cx, cy, side, angle = geometry
    # Only the region the (rotated) square can reach is warped: a panorama of 32767+ px would break warpAffine.
    h, w = grey.shape[:2]
    r = side / math.sqrt(2) + 2
    x0, y0 = max(0, int(math.floor(cx - r))), max(0, int(math.floor(cy - r)))
    x1, y1 = min(w, int(math.ceil(cx + r)) + 1), min(h, int(math.ceil(cy + r)) + 1)
    if x1 > x0 and y1 > y0:
        grey, cx, cy = grey[y0:y1, x0:x1], cx - x0, cy - y0
    work = int(min(max(size, round(side)), 4 * size))
    scale = work / max(side, 1e-6)
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(scale))
    m[0, 2] += work / 2 - cx
    m[1, 2] += work / 2 - cy
    out = cv2.warpAffine(grey, m, (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if work != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return float(inter / union) if union > 0 else 0.0


def framed_box(face: Face, detector: str) -> tuple:
    """The axis-aligned ``(x, y, w, h)`` of the unrotated FER-2013-framed crop of ``face``."""
    cx, cy, side, _ = crop_geometry(face, detector)
    return cx - side / 2, cy - side / 2, side, side


def measure_framing(faces: np.ndarray, detector, *, upscale: int = 3) -> dict:
    """How ``detector`` boxes relate to dataset crops: the constants of :data:`FRAMING`, measured.

    Each uint8 face ``[N, S, S]`` is enlarged ``upscale`` times and placed in the middle of a black canvas
    twice its size; the largest detection is compared with where the crop is.

    Returns:
        ``{"detector", "n", "found", "scale", "dx", "dy"}`` (medians), plus ``eye_y`` and ``eye_side``
        when the detector gives eyes.
    """
    det = make_detector(detector)
    rows, eyes = [], []
    for face in np.asarray(faces):
        s = face.shape[0]
        big = cv2.resize(face, (s * upscale, s * upscale), interpolation=cv2.INTER_CUBIC)
        pad = s * upscale // 2
        canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        found = det.detect(canvas)
        if not found:
            continue
        f = found[0]
        side = s * upscale
        centre = pad + side / 2
        rows.append((side / f.h, (centre - (f.x + f.w / 2)) / f.h, (centre - (f.y + f.h / 2)) / f.h))
        if f.left_eye is not None and f.right_eye is not None:
            (lx, ly), (rx, ry) = f.left_eye, f.right_eye
            eyes.append((((ly + ry) / 2 - pad) / side, side / math.hypot(rx - lx, ry - ly)))
    out = {"detector": det.name, "n": int(len(faces)), "found": len(rows)}
    if rows:
        med = np.median(np.asarray(rows), axis=0)
        out.update(scale=round(float(med[0]), 3), dx=round(float(med[1]), 3), dy=round(float(med[2]), 3))
    if eyes:
        med = np.median(np.asarray(eyes), axis=0)
        out.update(eye_y=round(float(med[0]), 3), eye_side=round(float(med[1]), 2))
    return out
