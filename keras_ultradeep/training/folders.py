"""Image folders as datasets: one subfolder per class (``PATH/cat/*.jpg``, ``PATH/dog/*.png``).

The layout of ``keras.utils.image_dataset_from_directory`` (and TFDS'
``ImageFolder``), which reads and decodes the files here. Validation images
come from ``PATH/val`` when ``PATH/train`` and ``PATH/val`` exist, else from a
stratified split of ``PATH`` (``val_split`` of each class, at least one image,
chosen by the seed). The class names are the subfolders' names, sorted.

Before anything is decoded, :func:`scan` checks the folder: at least two
classes, no empty class, and only JPEG, PNG, BMP or GIF files (recognised by
their first bytes, so a misnamed file is caught too).

Images of any size and mode (grayscale, RGB, RGBA, palette) are read as RGB,
the central square of each is kept and resized to ``load_side`` (with the
interpolation given); the pipelines crop the central ``input_size`` square of
that, as timm's evaluation transform does (``load_side = input_size /
crop_pct``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from keras_ultradeep import checks

__all__ = ["IMAGE_SUFFIXES", "FolderLayout", "is_image_folder", "scan", "image_kind", "stratified_split"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP", b"GIF87a": "GIF", b"GIF89a": "GIF"}
TRAIN, VAL = "train", "val"


def is_image_folder(name):
    """Whether dataset ``name`` names a folder (rather than ``digits`` or a TFDS name)."""
    return isinstance(name, (str, os.PathLike)) and Path(name).is_dir()


def image_kind(path):
    """``"JPEG"``, ``"PNG"``, ``"BMP"`` or ``"GIF"`` from the file's first bytes; ``None`` otherwise."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


@dataclasses.dataclass(frozen=True)
class FolderLayout:
    """What :func:`scan` found: the class names and the files of each split."""

    root: Path
    class_names: tuple
    train_files: tuple  # (path, class index) pairs
    val_files: tuple
    split_folders: bool  # PATH/train and PATH/val (else a stratified split of PATH)


def _class_files(folder, argument):
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if stray:
        raise ValueError(
            f"{argument}: {str(folder)!r} holds files outside class subfolders ({', '.join(stray[:3])}); "
            "expected one subfolder per class"
        )
    if len(classes) < 2:
        raise ValueError(
            f"{argument}: {str(folder)!r} has {len(classes)} class subfolder"
            f"{'' if len(classes) == 1 else 's'}; expected at least 2 (one subfolder per class)"
        )
    found = {}
    for name in classes:
        paths = sorted(p for p in (folder / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        if not paths:
            raise ValueError(f"{argument}: class {name!r} ({str(folder / name)!r}) has no images")
        for path in paths:
            if path.suffix.lower() not in IMAGE_SUFFIXES or image_kind(path) is None:
                raise ValueError(
                    f"{argument}: {str(path)!r} is not a JPEG, PNG, BMP or GIF image; "
                    "remove it or move it out of the folder"
                )
        found[name] = paths
    return found


def stratified_split(labels, fraction, seed):
    """``(train indices, validation indices)``: ``fraction`` of each class (at least one) validates."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        count = min(len(members) - 1, max(1, math.floor(len(members) * fraction + 0.5)))
        val.extend(members[:count])
        train.extend(members[count:])
    return np.sort(np.array(train, int)), np.sort(np.array(val, int))


def scan(path, *, val_split=0.2, seed=0, argument="dataset"):
    """Checks the image folder ``path`` and lists its classes and the files of each split."""
    root = Path(path)
    checks.number_in(val_split, "val_split", 0, 1, low_open=True, high_open=True)
    if (root / TRAIN).is_dir() and (root / VAL).is_dir():
        train, val = _class_files(root / TRAIN, argument), _class_files(root / VAL, argument)
        if sorted(train) != sorted(val):
            raise ValueError(
                f"{argument}: {str(root / TRAIN)!r} and {str(root / VAL)!r} have different classes "
                f"({', '.join(sorted(set(train) ^ set(val)))} in one only)"
            )
        names = tuple(sorted(train))

        def pairs(found):
            return tuple((path, names.index(name)) for name in names for path in found[name])

        return FolderLayout(root, names, pairs(train), pairs(val), True)
    found = _class_files(root, argument)
    names = tuple(sorted(found))
    for name in names:
        if len(found[name]) < 2:
            raise ValueError(
                f"{argument}: class {name!r} has 1 image; a validation split needs at least 2 per class "
                f"(or give {str(root / TRAIN)!r} and {str(root / VAL)!r})"
            )
    everything = [(p, names.index(c)) for c in names for p in found[c]]
    train_idx, val_idx = stratified_split([label for _, label in everything], val_split, seed)
    return FolderLayout(
        root, names, tuple(everything[i] for i in train_idx), tuple(everything[i] for i in val_idx), False
    )


# Decoded images are kept in memory when they fit in this (bytes, float32).
_CACHE_LIMIT = 1 << 29


def read_images(folder, class_names, *, load_side, interpolation):
    """``(dataset of (image, label), file paths)``: every image of ``folder`` in Keras' file order.

    ``keras.utils.image_dataset_from_directory`` reads them: RGB, the central
    square resized to ``load_side``, pixel values in [0, 255].
    """
    import keras

    data = keras.utils.image_dataset_from_directory(
        str(folder),
        labels="inferred",
        label_mode="int",
        class_names=list(class_names),
        color_mode="rgb",
        batch_size=None,
        image_size=(load_side, load_side),
        shuffle=False,
        interpolation=interpolation,
        crop_to_aspect_ratio=True,
        verbose=False,
    )
    return data, list(data.file_paths)


def load_sources(layout, *, load_side, interpolation, seed, val_split):
    """``(train source, validation source)``: unbatched ``(image, label)`` datasets of ``layout``."""
    import tensorflow as tf

    if layout.split_folders:
        train, _ = read_images(layout.root / TRAIN, layout.class_names, load_side=load_side,
                               interpolation=interpolation)
        validation, _ = read_images(layout.root / VAL, layout.class_names, load_side=load_side,
                                    interpolation=interpolation)
    else:
        everything, paths = read_images(layout.root, layout.class_names, load_side=load_side,
                                        interpolation=interpolation)
        labels = [layout.class_names.index(Path(p).relative_to(layout.root).parts[0]) for p in paths]
        _, val_indices = stratified_split(labels, val_split, seed)
        is_val = np.zeros(len(paths), bool)
        is_val[val_indices] = True
        mask = tf.constant(is_val)

        def subset(keep_validation):
            chosen = everything.enumerate().filter(lambda i, _: tf.equal(mask[i], keep_validation))
            return chosen.map(lambda _, example: example)

        train, validation = subset(False), subset(True)
    if (len(layout.train_files) + len(layout.val_files)) * load_side**2 * 3 * 4 <= _CACHE_LIMIT:
        train, validation = train.cache(), validation.cache()
    return train, validation
