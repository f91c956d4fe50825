"""What ``predict`` reads: paths expanded to files, images decoded, videos sampled, failures kept.

- :func:`expand_paths`: files as given, folders walked recursively in sorted order (hidden files and
  folders skipped, and any path the caller excludes, e.g. the output file and the annotation folder);
  a path that does not exist is an error before anything runs.
- :func:`read_frames`: one file -> :class:`Frame` objects (an image is one frame, with its EXIF rotation
  applied; a video gives every ``stride``-th frame with its time) or one :class:`Failure` saying why it could
  not be read (corrupt image, text file, empty video). A failure never stops a batch.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

#: Images above this many pixels are refused before decoding (a 168 KB PNG can declare 12000x12000 and take
#: 2.4 GB and 16 s to decode); ``max_pixels`` / ``--max-pixels`` change it. 50 MP holds any camera photo.
MAX_PIXELS = 50_000_000
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


@dataclasses.dataclass
class Frame:
    """A decoded image (uint8 RGB ``[H, W, 3]``) with where it came from."""

    source: str
    image: np.ndarray
    frame: Optional[int] = None
    time_s: Optional[float] = None


@dataclasses.dataclass
class Failure:
    """A file that could not be read, and why."""

    source: str
    error: str
    frame: Optional[int] = None


def expand_paths(paths: Sequence[Union[str, Path]], *, exclude: Sequence[Union[str, Path]] = ()) -> list:
    """Files to read, in a stable order: each file as given, each folder's files recursively (sorted).

    Hidden files and folders (names starting with ``.``) inside folders are skipped; so is anything under
    an ``exclude`` path.

    Raises:
        FileNotFoundError: a path that does not exist (names it), before any file is read.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"No such file or folder: {', '.join(missing)}")
    excluded = [Path(e).resolve() for e in exclude]

    def is_excluded(p: Path) -> bool:
        r = p.resolve()
        return any(r == e or e in r.parents for e in excluded)

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not is_excluded(Path(root) / d))
                files.extend(Path(root) / n for n in sorted(names)
                             if not n.startswith(".") and not is_excluded(Path(root) / n))
        elif not is_excluded(p):
            files.append(p)
    return [str(f) for f in files]


def is_video(path: Union[str, Path]) -> bool:
    """Whether a file is read as a video (by its extension)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _to_uint8_rgb(im) -> np.ndarray:
    """A decoded Pillow image as uint8 RGB; 16- and 32-bit grey (``I;16``, ``I``) scaled from their full range
    (``convert("RGB")`` clips them at 255: a 16-bit photo came out all white)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or (im.mode == "I" and a.max() <= 65535) else max(a.max(), 1.0)
        if im.mode == "F":
            top = 1.0 if a.max() <= 1.0 else 255.0
        grey = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_image(path: Union[str, Path], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """uint8 RGB ``[H, W, 3]`` of an image file, rotated as its EXIF orientation says; 16-bit grey scaled to 8 bits.

    Raises:
        ValueError: the file is not an image Pillow can decode, or declares more than ``max_pixels`` pixels
            (refused from its header, before decoding); the message names the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > int(max_pixels):
                raise ValueError(f"{path}: {width}x{height} = {width * height:,} pixels, above the limit of "
                                 f"{int(max_pixels):,} (max_pixels / --max-pixels); refused before decoding")
            im = ImageOps.exif_transpose(im)
            return _to_uint8_rgb(im)
    except ValueError:
        raise
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image or video this tool can read") from None
    except Exception as err:  # noqa: BLE001 - OSError, SyntaxError, DecompressionBombError, MemoryError...
        raise ValueError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None


def read_video(path: Union[str, Path], stride: int = 1) -> Iterator[Frame]:
    """Every ``stride``-th frame of a video (frame 0, stride, 2*stride, ...), RGB, with its time in seconds
    (frame index / the container's frame rate).

    Raises:
        ValueError: ``stride`` below 1; a file OpenCV cannot open or read a single frame from; after the frames
            it could read, a video that ends before the frame count its header announces, or frames that could
            not be decoded.
    """
    import cv2

    if int(stride) < 1:
        raise ValueError(f"video stride={stride!r}: expected an integer >= 1")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"{path}: not a video OpenCV can open")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index, read_any, undecodable = 0, False, []
        while True:
            ok = cap.grab()
            if not ok:
                break
            if index % stride == 0:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    read_any = True
                    yield Frame(str(path), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), index,
                                round(index / fps, 3) if fps > 0 else None)
                else:
                    undecodable.append(index)
            index += 1
        if not read_any:
            raise ValueError(f"{path}: no frame could be read from this video")
        if undecodable:
            raise ValueError(f"{path}: {len(undecodable)} frame(s) could not be decoded (first: {undecodable[0]})")
        # Headers of some codecs round the count: a gap of a frame or two is not a broken file.
        if announced > 0 and index < announced - 2:
            raise ValueError(f"{path}: the video ends after {index} of the {announced} frames its header announces")
    finally:
        cap.release()


def read_frames(path: Union[str, Path], *, video_stride: int = 1, max_pixels: int = MAX_PIXELS
                ) -> Iterator[Union[Frame, Failure]]:
    """The frames of one file, or a single :class:`Failure` (never raises for a bad file).

    A video that breaks part way gives its frames so far and then a :class:`Failure`.
    """
    path = str(path)
    if is_video(path):
        try:
            yield from read_video(path, video_stride)
        except Exception as err:  # noqa: BLE001 - a bad file never stops a batch
            yield Failure(path, str(err) if isinstance(err, ValueError) else f"{path}: {type(err).__name__}: {err}")
        return
    try:
        image = read_image(path, max_pixels=max_pixels)
    except ValueError as err:
        yield Failure(path, str(err))
        return
    yield Frame(path, image)
