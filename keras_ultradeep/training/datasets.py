"""Image classification datasets as batched ``tf.data`` pipelines.

``digits`` is scikit-learn's bundled handwritten digits (1,797 8x8 grayscale
images; no download), split 80/20 into train and validation, stratified by
class, fixed by the seed. Every other name is a TensorFlow Datasets builder
(``cifar10``, ``cifar100``, ``svhn_cropped``, ``imagenette``,
``imagenet2012``, ...): its ``train`` split (or ``train_split``, e.g.
``"train+extra"``) trains and its ``test`` split (``validation`` where there is
no test split, and for ImageNet) validates. ``imagenet2012`` needs its
archives in TFDS' manual folder (``manual_dir``, by default
``DATA_DIR/downloads/manual``).

A folder with one subfolder of images per class is read by
``keras.utils.image_dataset_from_directory`` (see :mod:`.folders`): its
``train``/``val`` subfolders, or a stratified ``val_split`` of each class.

Images are scaled to [0, 1], resized with ``tf.image.resize`` to the requested
size (without one, to the dataset's own size raised to the model's minimum
input side) and normalized:

* ``unit``: left in [0, 1];
* ``mean``: minus the per-channel mean of the training images;
* ``mean_std``: minus the mean, divided by the standard deviation;
* ``symmetric``: scaled to [-1, 1] (Inception's preprocessing).

Means and standard deviations are the published ones for CIFAR, SVHN and
ImageNet, and measured on the training images otherwise.

Augmentation of the training images, per image, in a parallel map:

* ``none``;
* ``flip``: random horizontal flip;
* ``crop_flip``: 4-pixel zero padding (zero is the mean after
  normalization), a random crop back to size, a random flip (the CIFAR/SVHN
  papers');
* ``crop_flip_reflect``: the same with reflection padding (Wide ResNets);
* ``imagenet``: random-resized crop (area 8%-100%, aspect 3/4-4/3) and flip;
  evaluation then resizes the shorter side to ``size / 0.875`` and takes the
  central crop (256 -> 224).

Reproducibility across interruptions: the training pipeline of epoch ``e`` is
shuffled with a seed made of ``(seed, e)`` and augmented with stateless random
ops seeded by ``(seed, e, index)``, so epoch ``e`` sees the same images in the
same order with the same crops whether or not the run was interrupted before
it. ``train_epochs(initial_epoch, epochs)`` gives the batches of those epochs
back to back (what ``fit`` with ``steps_per_epoch`` consumes).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os

import numpy as np
import tensorflow as tf

from keras_ultradeep import checks
from keras_ultradeep.training import folders
from keras_ultradeep.training.preprocessing import (
    KNOWN_STATS,
    Preprocessing,
    normalization_stats,
    normalizer,
)
from keras_ultradeep.training.recipes import AUGMENTATIONS, NORMALIZATIONS

__all__ = [
    "ImageDataset",
    "DIGITS",
    "AUGMENTATIONS",
    "NORMALIZATIONS",
    "check_dataset_name",
    "load_dataset",
    "normalization_stats",
    "KNOWN_STATS",
    "digits_arrays",
    "validation_split_name",
]

DIGITS = "digits"
DIGITS_VALIDATION_FRACTION = 0.2
_SHUFFLE_BUFFER = 10_000
_EPOCH_GRAPH_SEED = 1  # the graph-level seed of each epoch's shuffle (see _pipelines)

# Datasets validated on their "validation" split: ImageNet's "test" has no labels, and
# Imagenette has no "test" (TFDS does not know the splits before the download).
VALIDATION_SPLIT = {
    "imagenet2012": "validation",
    "imagenet2012_subset": "validation",
    "imagenette": "validation",
}


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Batched train and validation pipelines and what a model needs to fit them.

    ``train`` is one epoch, reshuffled and re-augmented each time it is
    iterated (for a plain ``fit(data.train, epochs=...)``);
    ``train_epochs(initial_epoch, epochs)`` the batches of epochs
    ``initial_epoch .. epochs-1`` one after another, each a function of the
    seed and its epoch number only (what the resumable trainer uses).
    """

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    num_classes: int
    image_shape: tuple  # (height, width, channels) of the images the pipelines yield
    train_examples: int
    validation_examples: int
    batch_size: int = 1
    mean: tuple = ()
    std: tuple = ()
    train_epochs: object = None
    class_names: tuple = ()  # an image folder's class subfolders (index order)

    @property
    def steps_per_epoch(self):
        return math.ceil(self.train_examples / self.batch_size)


def _tfds_names():
    import tensorflow_datasets as tfds

    # Community datasets would be looked up over the network.
    return tfds.list_builders(with_community_datasets=False)


def check_dataset_name(name, *, val_split=0.2, seed=0):
    """Raises ``ValueError`` unless ``name`` is ``digits``, a TFDS builder name or an image folder.

    A TFDS name may carry a config and version (``"cifar10/3.0.2"``). An image
    folder is checked whole (:func:`.folders.scan`): its classes and files.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise TypeError(f"dataset: expected a dataset name or folder, got {name!r}")
    if name == DIGITS:
        return name
    if folders.is_image_folder(name):
        folders.scan(name, val_split=val_split, seed=seed)
        return name
    known = _tfds_names()
    if name.split("/", 1)[0] in known:
        return name
    close = difflib.get_close_matches(name, [DIGITS, *known], n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"dataset: unknown dataset {name!r}.{hint} Use {DIGITS!r} (scikit-learn's digits, "
        "offline), a TensorFlow Datasets name such as 'mnist' or 'cifar10', or a folder with "
        "one subfolder of images per class."
    )


def _target_size(native_size, input_size, min_size, name):
    if input_size is not None:
        return (input_size, input_size)
    if None in native_size:
        raise ValueError(
            f"input_size: the images of dataset {name!r} vary in size; pass an input size"
        )
    return tuple(max(side, min_size) for side in native_size)


def _pipelines(train, validation, prep, *, batch_size, seed, train_examples, label_fn):
    """The validation pipeline and ``train_epochs(initial_epoch, epochs)``."""
    autotune = tf.data.AUTOTUNE
    buffer = min(train_examples, _SHUFFLE_BUFFER)

    def epoch(index):
        # tf.data pairs an op seed with the graph's seed and compares the pair with
        # (0, 0) in Python, which fails for a tensor op seed when the global seed is
        # 0. Setting the seed of this traced function's own graph (the global seed is
        # untouched) avoids that, and makes the epoch's order depend on ``seed`` and
        # the epoch alone, whatever global seed the caller set.
        tf.random.set_seed(_EPOCH_GRAPH_SEED)
        index = tf.cast(index, tf.int64)
        epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + index
        data = train.shuffle(buffer, seed=epoch_seed, reshuffle_each_iteration=False).enumerate()

        def prepare(position, example):
            image, label = example
            return prep.train(image, tf.stack([epoch_seed, position])), label_fn(label)

        return data.map(prepare, num_parallel_calls=autotune).batch(batch_size)

    def train_epochs(initial_epoch=0, epochs=None):
        epochs = initial_epoch + 1 if epochs is None else epochs
        return tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch).prefetch(autotune)

    def reshuffled():
        """One epoch, reshuffled and re-augmented every time it is iterated (plain ``fit``)."""
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip(train.shuffle(buffer, seed=seed, reshuffle_each_iteration=True), seeds)

        def prepare(example, element_seed):
            image, label = example
            return prep.train(image, element_seed), label_fn(label)

        return data.map(prepare, num_parallel_calls=autotune).batch(batch_size).prefetch(autotune)

    validation = (
        validation.map(lambda image, label: (prep.eval(image), label_fn(label)), num_parallel_calls=autotune)
        .batch(batch_size)
        .prefetch(autotune)
    )
    return train_epochs, reshuffled(), validation


def _label_fn(one_hot, num_classes):
    if one_hot:
        return lambda label: tf.one_hot(label, num_classes)
    return lambda label: label


def _finish(name, train_source, validation_source, *, size, channels, scale, num_classes, train_examples,
            validation_examples, batch_size, seed, augmentation, normalization, one_hot, stats=None,
            center_crop=False, class_names=(), channel_order="RGB"):
    stats_source = train_source.map(lambda image, label: (tf.cast(image, tf.float32) * scale, label))
    if stats is not None:  # a pretrained tag's
        mean, std = (tuple(float(v) for v in values) for values in stats)
    elif normalization in ("mean", "mean_std"):
        mean, std = normalization_stats(name, stats_source, channels)
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    prep = Preprocessing(
        size,
        scale=scale,
        augmentation=augmentation,
        normalize=normalizer(normalization, mean, std, channel_order),
        channels=channels,
        center_crop=center_crop,
    )
    train_epochs, train, validation = _pipelines(
        train_source,
        validation_source,
        prep,
        batch_size=batch_size,
        seed=seed,
        train_examples=train_examples,
        label_fn=_label_fn(one_hot, num_classes),
    )
    return ImageDataset(
        name=name,
        train=train,
        validation=validation,
        num_classes=num_classes,
        image_shape=(*size, channels),
        train_examples=train_examples,
        validation_examples=validation_examples,
        batch_size=batch_size,
        mean=mean,
        std=std,
        train_epochs=train_epochs,
        class_names=tuple(class_names),
    )


def digits_arrays(seed):
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "the 'digits' dataset needs scikit-learn: pip install \"keras-ultradeep[digits]\""
        ) from error
    digits = load_digits()
    images = digits.images.astype("float32")[..., np.newaxis]  # pixel values 0..16
    labels = digits.target.astype("int64")
    return train_test_split(
        images, labels, test_size=DIGITS_VALIDATION_FRACTION, stratify=labels, random_state=seed
    )


def _load_digits(*, input_size, min_size, seed, **options):
    x_train, x_val, y_train, y_val = digits_arrays(seed)
    size = _target_size(x_train.shape[1:3], input_size, min_size, DIGITS)
    return _finish(
        DIGITS,
        tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        tf.data.Dataset.from_tensor_slices((x_val, y_val)),
        size=size,
        channels=1,
        scale=1.0 / 16.0,
        num_classes=10,
        train_examples=len(x_train),
        validation_examples=len(x_val),
        seed=seed,
        **options,
    )


def validation_split_name(name, known_splits):
    """The split that validates TFDS dataset ``name`` (whose splits, once downloaded, are ``known_splits``)."""
    base = name.split("/", 1)[0]
    if base in VALIDATION_SPLIT:
        return VALIDATION_SPLIT[base]
    # Before a dataset is downloaded its splits are unknown; most have "test".
    return "validation" if known_splits and "test" not in known_splits else "test"


def _load_folder(path, *, input_size, seed, val_split, crop_pct, interpolation, **options):
    layout = folders.scan(path, val_split=val_split, seed=seed)
    if input_size is None:
        raise ValueError(f"input_size: the images of folder {str(path)!r} vary in size; pass an input size")
    load_side = max(input_size, round(input_size / crop_pct))
    train, validation = folders.load_sources(
        layout, load_side=load_side, interpolation=interpolation, seed=seed, val_split=val_split
    )
    return _finish(
        str(path),
        train,
        validation,
        size=(input_size, input_size),
        channels=3,
        scale=1.0 / 255.0,
        num_classes=len(layout.class_names),
        train_examples=len(layout.train_files),
        validation_examples=len(layout.val_files),
        seed=seed,
        center_crop=True,
        class_names=layout.class_names,
        **options,
    )


def _split_size(dataset, info, split):
    try:
        split_info = info.splits[split] if info.splits else None
    except (KeyError, ValueError):
        split_info = None
    if split_info is not None:
        return split_info.num_examples
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _load_tfds(name, *, input_size, min_size, seed, data_dir, manual_dir, train_split, **options):
    import tensorflow_datasets as tfds

    known_splits = tfds.builder(name, data_dir=data_dir).info.splits
    validation_split = validation_split_name(name, known_splits)
    kwargs = {}
    if manual_dir is not None:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir))
        }
    (train, validation), info = tfds.load(
        name,
        split=[train_split, validation_split],
        as_supervised=True,
        with_info=True,
        data_dir=data_dir,
        **kwargs,
    )
    image_key, label_key = info.supervised_keys
    image_shape = tuple(info.features[image_key].shape)
    label_feature = info.features[label_key]
    if len(image_shape) != 3 or not hasattr(label_feature, "num_classes"):
        raise ValueError(
            f"dataset: {name!r} is not an image classification dataset "
            f"(supervised features {info.supervised_keys})"
        )
    size = _target_size(image_shape[:2], input_size, min_size, name)
    scale = 1.0 / 255.0 if info.features[image_key].dtype == tf.uint8 else 1.0
    return _finish(
        name,
        train,
        validation,
        size=size,
        channels=image_shape[2],
        scale=scale,
        num_classes=label_feature.num_classes,
        train_examples=_split_size(train, info, train_split),
        validation_examples=_split_size(validation, info, validation_split),
        seed=seed,
        **options,
    )


def load_dataset(
    name,
    *,
    batch_size,
    input_size=None,
    min_size=1,
    seed=0,
    data_dir=None,
    manual_dir=None,
    augmentation="none",
    normalization="unit",
    one_hot=False,
    train_split="train",
    val_split=0.2,
    crop_pct=1.0,
    interpolation="bilinear",
    stats=None,
    channel_order="RGB",
):
    """Loads dataset ``name`` as batched train and validation pipelines.

    Args:
        name: ``"digits"`` or a TensorFlow Datasets name.
        batch_size: examples per batch.
        input_size: the side images are resized to; ``None`` keeps each side
            of the dataset's images, raised to ``min_size``.
        min_size: the model's smallest accepted side.
        seed: fixes the digits split, the shuffling order and the augmentation.
        data_dir: where TensorFlow Datasets keeps its data (its default if None).
        manual_dir: TFDS' manual download folder (``imagenet2012``'s archives).
        augmentation: one of :data:`AUGMENTATIONS` (training images only).
        normalization: one of :data:`NORMALIZATIONS`.
        one_hot: one-hot labels (for label smoothing) instead of class indices.
        train_split: the TFDS split to train on (``"train+extra"`` for SVHN).
        val_split: an image folder's validation fraction (without ``val/``).
        crop_pct, interpolation: how an image folder's images are resized:
            the central square to ``input_size / crop_pct``, then the
            central ``input_size`` crop (see :mod:`.folders`).
        stats: ``(mean, std)`` to normalize with (a pretrained tag's), else
            published or measured ones.
        channel_order: ``"BGR"`` reverses an image folder's normalized
            channels (a caffe-mode tag's, :func:`keras_ultradeep.data_config`).

    Returns:
        An :class:`ImageDataset`.
    """
    name = check_dataset_name(name, val_split=val_split, seed=seed)
    checks.positive_int(batch_size, "batch_size")
    checks.optional_positive_int(input_size, "input_size")
    checks.positive_int(min_size, "min_size")
    checks.one_of(augmentation, "augmentation", AUGMENTATIONS)
    checks.one_of(normalization, "normalization", NORMALIZATIONS)
    options = dict(
        batch_size=batch_size,
        augmentation=augmentation,
        normalization=normalization,
        one_hot=bool(one_hot),
    )
    if folders.is_image_folder(name):
        return _load_folder(
            name, input_size=input_size, seed=seed, val_split=val_split, crop_pct=crop_pct,
            interpolation=interpolation, stats=stats, channel_order=channel_order, **options,
        )
    if name == DIGITS:
        return _load_digits(input_size=input_size, min_size=min_size, seed=seed, **options)
    return _load_tfds(
        name,
        input_size=input_size,
        min_size=min_size,
        seed=seed,
        data_dir=data_dir,
        manual_dir=manual_dir,
        train_split=train_split,
        **options,
    )
