"""``keras-ultradeep evaluate``: top-1 and top-5 accuracy with 1 or 10 crops.

The 10-crop evaluation of the AlexNet (Krizhevsky et al. 2012, sec. 4.1) and
GoogLeNet (Szegedy et al. 2015, sec. 7) papers: the four corner crops and the
central crop of the model's input size, and their horizontal flips; the ten
softmax outputs are averaged.

The image the crops come from (side ``resize``):

* ImageNet-style runs (augmentation ``imagenet``, or images of varying size):
  the shorter side resized to ``resize`` (default ``size / 0.875``: 256 for
  224) and the central ``resize`` square;
* otherwise (CIFAR, SVHN, digits: images at the model's input size): the
  normalized image zero-padded by 4 pixels on each side (``resize = size + 8``,
  the training crops' padding), or resized to ``resize`` when given.

One crop is the central one, which is exactly the validation preprocessing of
training. The normalization (``unit``, ``mean``, ``mean_std``, ``symmetric``
with the run's mean and standard deviation) is read from the ``metrics.json``
of the run folder holding the model file, unless given.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_ultradeep import checks
from keras_ultradeep.training import datasets, preprocessing

__all__ = ["crop_offsets", "evaluate", "multi_crop_predict", "run_record"]

CROPS = (1, 10)


def crop_offsets(side, crop):
    """``(top, left)`` of the four corner crops and the central crop of a ``side`` square."""
    far = side - crop
    centre = far // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (centre, centre)]


def multi_crop_predict(model, images, crops, crop_size=None, batch_size=64):
    """The model's outputs averaged over ``crops`` (1: central; 10: corners, centre and flips).

    ``images``: preprocessed square images ``(N, side, side, C)``, ``side >= crop_size``
    (default: the model's input side).
    """
    checks.one_of(crops, "crops", CROPS)
    images = tf.convert_to_tensor(images, tf.float32)
    side = int(images.shape[1])
    crop_size = crop_size or int(model.input_shape[1])
    offsets = crop_offsets(side, crop_size)
    views = []
    for top, left in offsets if crops == 10 else offsets[-1:]:
        crop = images[:, top : top + crop_size, left : left + crop_size]
        views.append(crop)
        if crops == 10:
            views.append(tf.reverse(crop, axis=[2]))
    total = None
    for view in views:
        out = model.predict(view, batch_size=batch_size, verbose=0).astype("float64")
        total = out if total is None else total + out
    return total / len(views)


def run_record(model_file):
    """The metrics.json of the run folder holding ``model_file`` (or its checkpoints/)."""
    path = Path(model_file).resolve()
    for folder in (path.parent, path.parent.parent):
        metrics = folder / "metrics.json"
        if metrics.is_file():
            try:
                with open(metrics, encoding="utf-8") as f:
                    record = json.load(f)
            except (OSError, ValueError):
                return None
            return record if isinstance(record, dict) else None
    return None


def _source(name, split, data_dir, seed):
    """``(dataset of (image, label) at native size, scale, split name, channels)``."""
    if name == datasets.DIGITS:
        _, x_val, _, y_val = datasets.digits_arrays(seed)
        return tf.data.Dataset.from_tensor_slices((x_val, y_val)), 1.0 / 16.0, "validation", 1, (8, 8)
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if split is None:
        split = datasets.validation_split_name(name, builder.info.splits)
    source, info = tfds.load(name, split=split, as_supervised=True, with_info=True, data_dir=data_dir)
    image_key, _ = info.supervised_keys
    feature = info.features[image_key]
    scale = 1.0 / 255.0 if feature.dtype == tf.uint8 else 1.0
    return source, scale, split, feature.shape[2], tuple(feature.shape[:2])


def evaluate(
    model_file,
    *,
    dataset,
    crops=1,
    batch_size=64,
    split=None,
    data_dir=None,
    normalization=None,
    resize=None,
    max_examples=None,
):
    """Top-1 and top-5 accuracy of the ``.keras`` model ``model_file`` on ``dataset``.

    Returns ``{"dataset", "split", "examples", "crops", "top1", "top5",
    "input_size", "resize", "normalization"}``.
    """
    import keras

    import keras_ultradeep.training.optimizers  # noqa: F401  (registers the optimizers)

    checks.one_of(crops, "crops", CROPS)
    checks.positive_int(batch_size, "batch_size")
    checks.optional_positive_int(resize, "resize")
    checks.optional_positive_int(max_examples, "max_examples")
    if normalization is not None:
        checks.one_of(normalization, "normalization", datasets.NORMALIZATIONS)
    if not Path(model_file).is_file():
        raise FileNotFoundError(f"model_file: no such file {str(model_file)!r}")
    datasets.check_dataset_name(dataset)
    record = run_record(model_file) or {}
    same_data = record.get("dataset") == dataset
    if normalization is None:
        normalization = record.get("normalization", "unit") if same_data else "unit"
    seed = record.get("seed", 0) if same_data else 0

    model = keras.models.load_model(model_file, compile=False, safe_mode=True)
    height, width, channels = model.input_shape[1:]
    if height is None or height != width:
        raise ValueError(f"model_file: expected a model with a fixed square input, got {model.input_shape}")
    size = int(height)
    source, scale, split, data_channels, native = _source(dataset, split, data_dir, seed)
    if data_channels != channels:
        raise ValueError(
            f"dataset: {dataset!r} has {data_channels}-channel images, the model takes {channels}"
        )
    if normalization in ("mean", "mean_std"):
        if same_data and record.get("normalization_mean"):
            mean, std = record["normalization_mean"], record["normalization_std"]
        else:
            mean, std = datasets.normalization_stats(dataset, None, channels)
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    normalize = preprocessing.normalizer(normalization, mean, std)
    imagenet_style = record.get("augmentation") == "imagenet" if same_data else None in native
    if imagenet_style or None in native:
        side = resize or round(size / preprocessing.CENTER_CROP_FRACTION)

        def prepare(image, label):
            image = preprocessing.resize_shorter_and_center_crop(tf.cast(image, tf.float32) * scale, (side, side))
            return normalize(image), label

    else:
        side = resize or size + 2 * preprocessing.CIFAR_PADDING

        def prepare(image, label):
            image = normalize(tf.image.resize(tf.cast(image, tf.float32) * scale, (size, size)))
            if resize is None:
                pad = preprocessing.CIFAR_PADDING
                return tf.pad(image, [[pad, pad], [pad, pad], [0, 0]]), label
            return tf.image.resize(image, (side, side)), label

    if side < size:
        raise ValueError(f"resize: expected at least the model's input side {size}, got {side}")
    if max_examples:
        source = source.take(max_examples)
    pipeline = source.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)
    classes = int(model.output_shape[-1])
    k = min(5, classes)
    top1 = top5 = examples = 0
    for images, labels in pipeline:
        probabilities = multi_crop_predict(model, images, crops, size, batch_size=batch_size)
        labels = labels.numpy().astype("int64")
        ranked = np.argsort(-probabilities, axis=-1)[:, :k]
        top1 += int(np.sum(ranked[:, 0] == labels))
        top5 += int(np.sum(np.any(ranked == labels[:, None], axis=-1)))
        examples += len(labels)
    if not examples:
        raise ValueError(f"dataset: the {split!r} split of {dataset!r} is empty")
    return {
        "dataset": dataset,
        "split": split,
        "examples": examples,
        "crops": crops,
        "top1": top1 / examples,
        "top5": top5 / examples,
        "input_size": size,
        "resize": side,
        "normalization": normalization,
    }
