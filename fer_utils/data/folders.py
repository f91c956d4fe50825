"""Any ``<root>/<class>/<images>`` folder, and reading single image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_utils.data.dataset import DataError, FERDataset, report_skipped

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


# ----------------------------------------------------------------------------- image folders

def _read_image(path: Path, image_size) -> np.ndarray:
    """Read one image file as uint8 grey, optionally resized to ``image_size``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if image_size is not None and im.size != (image_size[1], image_size[0]):
                im = im.resize((image_size[1], image_size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc}); "
                        f"expected a {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} file") from exc


def _size_tuple(image_size):
    if image_size is None:
        return None
    return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)


def _class_folders(root: Path, class_names):
    """Class folders of ``root`` in label order, checking expected ones exist and are not empty."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (expected <root>/<class>/<images>)")
    present = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    if class_names is None:
        if not present:
            raise DataError(f"{root}: has no class folders (expected <root>/<class>/<images>)")
        class_names = tuple(present)
    lower = {k.lower(): v for k, v in present.items()}
    folders = []
    for c in class_names:
        folder = present.get(c) or lower.get(c.lower())
        if folder is None:
            raise DataError(f"{root}: missing class folder {c!r}; expected folders {list(class_names)}, "
                            f"found {sorted(present)}")
        folders.append(folder)
    extra = sorted(set(k.lower() for k in present) - set(c.lower() for c in class_names))
    if extra:
        raise DataError(f"{root}: unexpected class folder(s) {extra}; expected {list(class_names)}")
    return tuple(class_names), folders


def _list_images(folder: Path, strict: bool, problems: list):
    files = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            if strict:
                raise DataError(f"{p}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
            problems.append((str(p), "not an image file"))
            continue
        files.append(p)
    if not files:
        raise DataError(f"{folder}: class folder is empty (expected at least one image)")
    return files


def load_image_folder(root, *, class_names=None, split: str = "all", image_size=None, strict: bool = True,
                      name: str = "folder") -> FERDataset:
    """Load any ``<root>/<class>/<images>`` folder.

    Args:
        root: the folder holding one sub-folder per class.
        class_names: expected classes in label order (case-insensitive folder match); ``None``
            takes the sub-folders in sorted order.
        split: split name given to every row.
        image_size: ``int`` or ``(H, W)`` to resize to; ``None`` requires all images to share a size.
        strict: if False, unreadable files are skipped and reported instead of raising.
        name: dataset name.

    Raises:
        DataError: missing root or class folder, empty class folder, non-image or unreadable
            file, or mismatched image sizes, naming the path.
    """
    root = Path(root)
    size = _size_tuple(image_size)
    class_names, folders = _class_folders(root, class_names)
    images, labels, sources, problems = [], [], [], []
    for label, folder in enumerate(folders):
        for f in _list_images(folder, strict, problems):
            try:
                img = _read_image(f, size)
            except DataError as exc:
                if strict:
                    raise
                problems.append((str(f), str(exc)))
                continue
            if images and img.shape != images[0].shape:
                raise DataError(f"{f}: image is {img.shape[1]}x{img.shape[0]}, expected {images[0].shape[1]}x"
                                f"{images[0].shape[0]} like {sources[0]}; pass image_size= to resize")
            images.append(img)
            labels.append(label)
            sources.append(str(f))
    if not images:
        raise DataError(f"{root}: split {split!r} is empty (no readable images)")
    ds = FERDataset(images=np.stack(images), labels=np.array(labels), class_names=class_names,
                    splits=np.array([split] * len(images), dtype=object), source_ids=np.array(sources, dtype=object),
                    name=name, path=str(root), skipped=problems)
    report_skipped(ds)
    return ds


