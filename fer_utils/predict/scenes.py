"""Composed scenes with faces at known places, to check and compare the detectors.

Real dataset faces (uint8 crops) are enlarged and pasted into a bigger picture with clutter (shapes, lines,
noise, a gradient), several per scene, never overlapping. A detector is right about a face when the
FER-2013-framed crop of its box (:func:`fer_utils.predict.detect.framed_box`) overlaps the pasted square with
IoU >= 0.5; detections matching no face are false positives. The tests and ``benchmarks/predict.py`` use this.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from fer_utils.predict import detect as D


def compose_scene(faces: Sequence[np.ndarray], rng: np.random.Generator, *, size=(480, 640),
                  side_range=(80, 150), clutter: int = 12, margin: float = 0.2) -> tuple:
    """An RGB scene ``[H, W, 3]`` with ``faces`` pasted at random non-overlapping places, and their boxes.

    Each face is pasted with its border replicated ``margin`` of its side outwards (a head in a photo is not
    cut off by a hard edge at the chin); the box is the face crop itself, without the margin.

    Returns:
        ``(image, boxes)`` with ``boxes`` a list of ``(x, y, side, side)``, one per face, in order.

    Raises:
        ValueError: the faces do not fit in the scene (after 200 attempts per face).
    """
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(60, 190, 3)
    slope = rng.uniform(-0.15, 0.15, (2, 3))
    image = base + xx[..., None] * slope[0] + yy[..., None] * slope[1] + rng.normal(0, 12, (h, w, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(clutter):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        p = (int(rng.integers(w)), int(rng.integers(h)))
        if kind == 0:
            cv2.rectangle(image, p, (p[0] + int(rng.integers(10, 120)), p[1] + int(rng.integers(10, 120))), colour, -1)
        elif kind == 1:
            cv2.circle(image, p, int(rng.integers(5, 60)), colour, -1)
        else:
            cv2.line(image, p, (int(rng.integers(w)), int(rng.integers(h))), colour, int(rng.integers(1, 6)))
    boxes, taken = [], []
    for face in faces:
        for _ in range(200):
            side = int(rng.integers(side_range[0], side_range[1] + 1))
            m = int(round(margin * side))
            x, y = int(rng.integers(m, w - side - m + 1)), int(rng.integers(m, h - side - m + 1))
            outer = (x - m - 4, y - m - 4, side + 2 * m + 8, side + 2 * m + 8)
            if all(D.iou(outer, b) == 0 for b in taken):
                break
        else:
            raise ValueError(f"could not place {len(faces)} faces of {side_range} px in a {w}x{h} scene")
        big = cv2.resize(np.asarray(face, np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, m, m, m, m, cv2.BORDER_REPLICATE)
        image[y - m:y + side + m, x - m:x + side + m] = big[..., None]
        boxes.append((x, y, side, side))
        taken.append(outer)
    return image, boxes


def match_detections(found: Sequence, boxes: Sequence, detector: str, *, threshold: float = 0.5) -> dict:
    """Match detections to the true boxes (greedy by IoU of the framed box).

    Returns:
        ``{"iou": [best IoU per true box], "found": [bool per true box], "false_positives": int}``.
    """
    framed = [D.framed_box(f, detector) for f in found]
    used, ious = set(), []
    for b in boxes:
        cand = [(D.iou(fb, b), k) for k, fb in enumerate(framed) if k not in used]
        best = max(cand, default=(0.0, None))
        if best[1] is not None and best[0] >= threshold:
            used.add(best[1])
        ious.append(best[0])
    return {"iou": ious, "found": [v >= threshold for v in ious],
            "false_positives": sum(1 for k, fb in enumerate(framed) if k not in used)}


def detection_table(detectors: dict, scenes: Sequence[tuple]) -> pd.DataFrame:
    """Per detector: faces found (IoU >= 0.5), recall, median IoU, false positives and seconds per scene.

    Args:
        detectors: ``{name: Detector}``.
        scenes: ``(image, boxes)`` pairs from :func:`compose_scene`.
    """
    import time

    rows = []
    for name, det in detectors.items():
        found_all, ious, fps, seconds = [], [], 0, 0.0
        for image, boxes in scenes:
            t = time.perf_counter()
            found = det.detect(image)
            seconds += time.perf_counter() - t
            m = match_detections(found, boxes, det.name)
            found_all += m["found"]
            ious += [v for v, ok in zip(m["iou"], m["found"]) if ok]
            fps += m["false_positives"]
        rows.append({"detector": name, "faces": len(found_all), "found": int(sum(found_all)),
                     "recall": round(float(np.mean(found_all)), 3) if found_all else np.nan,
                     "median IoU (found)": round(float(np.median(ious)), 3) if ious else np.nan,
                     "false positives": fps, "ms per scene": round(1000 * seconds / max(1, len(scenes)), 1)})
    return pd.DataFrame(rows).set_index("detector")
