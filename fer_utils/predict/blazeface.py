"""BlazeFace (MediaPipe's short-range face detector) run by LiteRT: the fast detector for photos of a few faces.

The model file ships in ``blazeface_model/`` (229 KB, Apache 2.0, see its ``NOTICE.txt``); nothing is downloaded.
The network sees a 128x128 RGB window in [-1, 1] and scores 896 SSD anchors (strides 8, 16, 16, 16); boxes and six
keypoints are decoded relative to their anchors. It is trained for faces that fill a good part of its window
(selfie range), so a photo is read as windows (:func:`windows`): the whole image letterboxed, then square tiles
overlapping by half, each level half the side of the one before, down to the side where the smallest face asked
for (``min_face``) fills a quarter of the window. Candidates scoring at least ``min_confidence`` are mapped back to
the image (those cut by a tile's inner edge dropped: the neighbouring tile holds the whole face) and merged by
weighted non-maximum suppression (IoU 0.3, MediaPipe's setting). A 128x128 photo is one window; a 640x480 one with
48-pixel faces about thirty.

:class:`BlazeFaceDetector` is a :class:`fer_utils.predict.detect.Detector`; each thread gets its own interpreter.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np

from fer_utils.predict.detect import Detector, Face, to_rgb

MODEL_FILE = Path(__file__).resolve().parent / "blazeface_model" / "face_detection_short_range.tflite"
INPUT_SIDE = 128
STRIDES = (8, 16, 16, 16)
NMS_IOU = 0.3
#: Raw scores are clipped here before the sigmoid (MediaPipe clips at 100; 80 keeps float32 finite).
SCORE_CLIP = 80.0


def anchors(side: int = INPUT_SIDE, strides=STRIDES) -> np.ndarray:
    """``[896, 2]`` anchor centres (x, y) in [0, 1]: two per cell per layer, layers of one stride merged."""
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = side // strides[i]
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(centres, centres, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(grid, 2 * (j - i), axis=0))
        i = j
    return np.concatenate(out)


def letterbox(image: np.ndarray, side: int = INPUT_SIDE) -> tuple:
    """``(float32 [side, side, 3] RGB in [-1, 1], (scale, pad_x, pad_y))``: the image resized with its aspect ratio
    kept and centred on black; ``scale`` maps image pixels to input pixels."""
    rgb = to_rgb(np.asarray(image))
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    px, py = (side - nw) // 2, (side - nh) // 2
    canvas = np.zeros((side, side, 3), np.float32)
    canvas[py:py + nh, px:px + nw] = small.astype(np.float32) / 127.5 - 1.0
    return canvas, (scale, px, py)


def windows(h: int, w: int, min_face: float, side: int = INPUT_SIDE) -> list:
    """``[(x0, y0, t)]``: square windows of side ``t`` over an ``h`` x ``w`` image, the whole image first (``t`` its
    long side), then levels of half the side with half overlap, down to ``max(side, 4 * min_face)``."""
    long = max(h, w)
    smallest = max(side, 4 * float(min_face))
    out, t = [(0, 0, long)], long / 2
    levels = []
    while t >= smallest:
        levels.append(t)
        t /= 2
    if (levels[-1] if levels else long) > 1.3 * smallest:
        levels.append(smallest)
    for t in (int(round(v)) for v in levels):
        xs = np.linspace(0, max(0, w - t), max(1, math.ceil(max(0, w - t) / (t / 2)) + 1)).round().astype(int)
        ys = np.linspace(0, max(0, h - t), max(1, math.ceil(max(0, h - t) / (t / 2)) + 1)).round().astype(int)
        out += [(int(x), int(y), t) for y in ys for x in xs]
    return out


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchor_xy: np.ndarray, *, min_confidence: float,
           side: int = INPUT_SIDE) -> tuple:
    """``(boxes [M, 4] as x0, y0, x1, y1 in input pixels, keypoints [M, 6, 2], scores [M])`` of the anchors scoring
    at least ``min_confidence``. ``raw_boxes``: ``[896, 16]`` (centre offset, size, six keypoint offsets, in input
    pixels relative to the anchor); ``raw_scores``: ``[896]`` logits."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -SCORE_CLIP, SCORE_CLIP)))
    keep = np.flatnonzero(scores >= min_confidence)
    pts = raw_boxes.reshape(-1, 8, 2)[keep] / side
    anchor = anchor_xy[keep]
    centre, size = pts[:, 0] + anchor, pts[:, 1]
    keypoints = (pts[:, 2:] + anchor[:, None, :]) * side
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * side
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[valid], keypoints[valid], scores[keep][valid]


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list:
    """MediaPipe's weighted non-maximum suppression: the best-scoring detection and every one overlapping it by more
    than ``iou`` become one, their boxes and keypoints averaged with the scores as weights; the best score is kept.
    Returns ``[(box [4], keypoints [6, 2], score)]``, best first."""
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out = []
    while len(order):
        top = order[0]
        x0 = np.maximum(boxes[top, 0], boxes[order, 0])
        y0 = np.maximum(boxes[top, 1], boxes[order, 1])
        x1 = np.minimum(boxes[top, 2], boxes[order, 2])
        y1 = np.minimum(boxes[top, 3], boxes[order, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        overlap = inter / (area[top] + area[order] - inter)
        group, order = order[overlap > iou], order[overlap <= iou]
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(), (keypoints[group] * w[:, :, None]).sum(0) / w.sum(),
                    float(scores[top])))
    return out


def to_faces(merged: list, min_face: float) -> list:
    """:class:`Face` objects of :func:`weighted_nms`'s detections (image pixels) whose box is at least ``min_face``
    on both sides, with the face's left and right eye from the keypoints."""
    faces = []
    for box, kp, score in merged:
        bw, bh = box[2] - box[0], box[3] - box[1]
        if min(bw, bh) < min_face:
            continue
        eyes = [(float(kp[k, 0]), float(kp[k, 1])) for k in (1, 0)]  # the face's left eye, right eye
        faces.append(Face(float(box[0]), float(box[1]), float(bw), float(bh), score, *eyes))
    return faces


class BlazeFaceDetector(Detector):
    """MediaPipe's BlazeFace short-range model (``blazeface``): boxes, a confidence and eye keypoints.

    Args:
        min_confidence: smallest score kept (MediaPipe's default 0.5).
        **kwargs: ``detect_size``, ``min_face`` (:class:`fer_utils.predict.detect.Detector`).
    """

    name = "blazeface"

    def __init__(self, *, min_confidence: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence={min_confidence!r}: expected a number in (0, 1]")
        if not MODEL_FILE.is_file():
            raise RuntimeError(f"{MODEL_FILE} is missing: the BlazeFace model ships with fer_utils (reinstall it)")
        self.min_confidence = float(min_confidence)
        self._anchors = anchors()
        self._local = threading.local()
        self._interpreter()  # fail here, not in a worker thread

    def _interpreter(self):
        it = getattr(self._local, "interpreter", None)
        if it is None:
            from fer_utils.models.lite import LiteModel

            it = LiteModel(MODEL_FILE, num_threads=1)  # detection runs in several threads already
            self._local.interpreter = it
        return it

    def _detect(self, image, min_face):
        h, w = image.shape[:2]
        tensors, places = [], []
        for x0, y0, t in windows(h, w, min_face):
            tensor, (scale, px, py) = letterbox(image[y0:y0 + t, x0:x0 + t])
            tensors.append(tensor)
            places.append((x0, y0, t, scale, px, py))
        all_boxes, all_kps, all_scores = [], [], []
        for k, (x0, y0, t, scale, px, py) in enumerate(places):
            # One window per call: the model's reshapes are fixed to batch 1. Outputs [1,896,16] and [1,896,1].
            raw = sorted(self._interpreter().run(tensors[k][None]), key=lambda a: -a.shape[-1])
            boxes, kps, scores = decode(raw[0][0], raw[1][0], self._anchors, min_confidence=self.min_confidence)
            boxes = (boxes - [px, py, px, py]) / scale + [x0, y0, x0, y0]
            kps = (kps - [px, py]) / scale + [x0, y0]
            if k:  # a tile: drop faces cut by an inner edge (the overlapping tile holds them whole)
                m = 0.02 * t
                cut = (((boxes[:, 0] < x0 + m) & (x0 > 0)) | ((boxes[:, 1] < y0 + m) & (y0 > 0))
                       | ((boxes[:, 2] > x0 + t - m) & (x0 + t < w)) | ((boxes[:, 3] > y0 + t - m) & (y0 + t < h)))
                boxes, kps, scores = boxes[~cut], kps[~cut], scores[~cut]
            all_boxes.append(boxes)
            all_kps.append(kps)
            all_scores.append(scores)
        return to_faces(weighted_nms(np.concatenate(all_boxes), np.concatenate(all_kps), np.concatenate(all_scores)),
                        min_face)
