"""Image classification datasets as batched ``tf.data`` pipelines.

``digits`` is scikit-learn's bundled handwritten digits (1,797 8x8 grayscale
images; no download), split 80/20 into train and validation, stratified by
class, fixed by the seed. Every other name is a TensorFlow Datasets builder
(``mnist``, ``cifar10``, ...): its ``train`` split trains and its ``test``
split (``validation`` where there is no test split) validates.

Images come out as float32 in [0, 1], resized with ``tf.image.resize`` to the
requested size; without one, to the dataset's own size raised to the model's
minimum input side (``digits`` stays 8x8 for a CIFAR DenseNet).
"""

from __future__ import annotations

import dataclasses
import difflib

import numpy as np
import tensorflow as tf

__all__ = ["ImageDataset", "DIGITS", "check_dataset_name", "load_dataset"]

DIGITS = "digits"
DIGITS_VALIDATION_FRACTION = 0.2
_SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Batched train and validation pipelines and what a model needs to fit them."""

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    num_classes: int
    image_shape: tuple  # (height, width, channels) of the images the pipelines yield
    train_examples: int
    validation_examples: int


def _tfds_names():
    import tensorflow_datasets as tfds

    # Community datasets would be looked up over the network.
    return tfds.list_builders(with_community_datasets=False)


def check_dataset_name(name):
    """Raises ``ValueError`` unless ``name`` is ``digits`` or a TFDS builder name.

    A TFDS name may carry a config and version (``"cifar10/3.0.2"``).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"dataset: expected a dataset name string, got {name!r}")
    if name == DIGITS:
        return name
    known = _tfds_names()
    if name.split("/", 1)[0] in known:
        return name
    close = difflib.get_close_matches(name, [DIGITS, *known], n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"dataset: unknown dataset {name!r}.{hint} Use {DIGITS!r} (scikit-learn's digits, "
        "offline) or a TensorFlow Datasets name such as 'mnist' or 'cifar10'."
    )


def _check_positive_int(value, argument, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{argument}: expected a positive integer, got {value!r}")


def _target_size(native_size, input_size, min_size, name):
    if input_size is not None:
        return (input_size, input_size)
    if None in native_size:
        raise ValueError(
            f"input_size: the images of dataset {name!r} vary in size; pass an input size"
        )
    return tuple(max(side, min_size) for side in native_size)


def _pipelines(train, validation, size, *, scale, batch_size, seed, train_examples):
    """Scaled, resized, batched pipelines (the train one reshuffled every epoch)."""

    def prepare(image, label):
        image = tf.cast(image, tf.float32) * scale
        if tuple(image.shape[:2]) != size:
            image = tf.image.resize(image, size)
        return image, label

    autotune = tf.data.AUTOTUNE
    train = (
        train.shuffle(min(train_examples, _SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
        .map(prepare, num_parallel_calls=autotune)
        .batch(batch_size)
        .prefetch(autotune)
    )
    validation = validation.map(prepare, num_parallel_calls=autotune).batch(batch_size).prefetch(autotune)
    return train, validation


def _load_digits(*, batch_size, input_size, min_size, seed):
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
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=DIGITS_VALIDATION_FRACTION, stratify=labels, random_state=seed
    )
    size = _target_size(images.shape[1:3], input_size, min_size, DIGITS)
    train, validation = _pipelines(
        tf.data.Dataset.from_tensor_slices((x_train, y_train)),
        tf.data.Dataset.from_tensor_slices((x_val, y_val)),
        size,
        scale=1.0 / 16.0,
        batch_size=batch_size,
        seed=seed,
        train_examples=len(x_train),
    )
    return ImageDataset(
        name=DIGITS,
        train=train,
        validation=validation,
        num_classes=int(labels.max()) + 1,
        image_shape=(*size, 1),
        train_examples=len(x_train),
        validation_examples=len(x_val),
    )


def _split_size(dataset, info, split):
    split_info = info.splits.get(split) if info.splits else None
    if split_info is not None:
        return split_info.num_examples
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _load_tfds(name, *, batch_size, input_size, min_size, seed, data_dir):
    import tensorflow_datasets as tfds

    known_splits = tfds.builder(name, data_dir=data_dir).info.splits
    # Before a dataset is downloaded its splits are unknown; most have "test".
    validation_split = "validation" if known_splits and "test" not in known_splits else "test"
    (train, validation), info = tfds.load(
        name,
        split=["train", validation_split],
        as_supervised=True,
        with_info=True,
        data_dir=data_dir,
    )
    image_key, label_key = info.supervised_keys
    image_shape = tuple(info.features[image_key].shape)
    label_feature = info.features[label_key]
    if len(image_shape) != 3 or not hasattr(label_feature, "num_classes"):
        raise ValueError(
            f"dataset: {name!r} is not an image classification dataset "
            f"(supervised features {info.supervised_keys})"
        )
    train_examples = _split_size(train, info, "train")
    validation_examples = _split_size(validation, info, validation_split)
    size = _target_size(image_shape[:2], input_size, min_size, name)
    scale = 1.0 / 255.0 if info.features[image_key].dtype == tf.uint8 else 1.0
    train, validation = _pipelines(
        train,
        validation,
        size,
        scale=scale,
        batch_size=batch_size,
        seed=seed,
        train_examples=train_examples,
    )
    return ImageDataset(
        name=name,
        train=train,
        validation=validation,
        num_classes=label_feature.num_classes,
        image_shape=(*size, image_shape[2]),
        train_examples=train_examples,
        validation_examples=validation_examples,
    )


def load_dataset(name, *, batch_size, input_size=None, min_size=1, seed=0, data_dir=None):
    """Loads dataset ``name`` as batched train and validation pipelines.

    Args:
        name: ``"digits"`` or a TensorFlow Datasets name.
        batch_size: examples per batch.
        input_size: the side images are resized to; ``None`` keeps each side
            of the dataset's images, raised to ``min_size``.
        min_size: the model's smallest accepted side.
        seed: fixes the digits split and the shuffling order.
        data_dir: where TensorFlow Datasets keeps its data (its default if None).

    Returns:
        An :class:`ImageDataset`.
    """
    check_dataset_name(name)
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(input_size, "input_size", allow_none=True)
    _check_positive_int(min_size, "min_size")
    if name == DIGITS:
        return _load_digits(batch_size=batch_size, input_size=input_size, min_size=min_size, seed=seed)
    return _load_tfds(
        name,
        batch_size=batch_size,
        input_size=input_size,
        min_size=min_size,
        seed=seed,
        data_dir=data_dir,
    )
