"""Per-image preprocessing: scaling, resizing and cropping, normalization, augmentation.

Shared by the training pipelines (:mod:`.datasets`, :mod:`.folders`), the
multi-crop evaluation and ``predict``. Every function works on one image
tensor ``(H, W, C)`` inside a ``tf.data`` map.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_ultradeep import checks
from keras_ultradeep.training.recipes import NORMALIZATIONS

__all__ = [
    "CENTER_CROP_FRACTION",
    "KNOWN_STATS",
    "Preprocessing",
    "normalization_stats",
    "normalizer",
    "random_resized_crop",
    "resize_shorter_and_center_crop",
]

_STATS_SAMPLE = 10_000
CENTER_CROP_FRACTION = 0.875  # 224 of 256
CIFAR_PADDING = 4

_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Per-channel mean and standard deviation of the training images, in [0, 1].
KNOWN_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet2012": _IMAGENET_STATS,
    "imagenette": _IMAGENET_STATS,
}


def normalization_stats(name, images=None, channels=3):
    """``(mean, std)`` per channel in [0, 1]: published, or measured on ``images``.

    ``images``: a dataset of ``(image, label)`` already scaled to [0, 1].
    """
    base = name.split("/", 1)[0]
    if base in KNOWN_STATS and channels == 3:
        mean, std = KNOWN_STATS[base]
        return tuple(mean), tuple(std)
    if images is None:
        return (0.0,) * channels, (1.0,) * channels
    count = 0
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for image, _ in images.take(_STATS_SAMPLE).as_numpy_iterator():
        pixels = image.reshape(-1, channels).astype("float64")
        total += pixels.sum(0)
        total_sq += (pixels**2).sum(0)
        count += len(pixels)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean**2, 1e-12))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def normalizer(normalization, mean, std, channel_order="RGB"):
    """``image -> normalized image``; ``channel_order="BGR"`` (keras.applications'
    caffe-mode weights) reverses the channels after ``mean_std``, whose ``mean``
    and ``std`` are in the input's RGB order (:func:`keras_ultradeep.data_config`)."""
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    checks.one_of(channel_order, "channel_order", ("RGB", "BGR"))
    if channel_order == "BGR":
        if normalization != "mean_std":
            raise ValueError(f"channel_order: 'BGR' needs normalization 'mean_std', got {normalization!r}")
        return lambda image: tf.reverse((image - mean) / std, axis=[-1])
    if normalization == "unit":
        return lambda image: image
    if normalization == "mean":
        return lambda image: image - mean
    if normalization == "mean_std":
        return lambda image: (image - mean) / std
    if normalization == "symmetric":
        return lambda image: image * 2.0 - 1.0
    raise ValueError(f"normalization: expected one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")


def resize_shorter_and_center_crop(image, size):
    """Resize so the shorter side is ``size / 0.875``, then the central ``size`` crop."""
    height, width = size
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    target = max(height, width) / CENTER_CROP_FRACTION
    scale = target / tf.reduce_min(shape)
    resized = tf.cast(tf.round(shape * scale), tf.int32)
    resized = tf.maximum(resized, [height, width])
    image = tf.image.resize(image, resized)
    top = (resized[0] - height) // 2
    left = (resized[1] - width) // 2
    return image[top : top + height, left : left + width]


def random_resized_crop(image, size, seed):
    """Inception-style crop: 8%-100% of the area, aspect 3/4-4/3, resized to ``size``."""
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, extent)
    return tf.image.resize(crop, size)


class Preprocessing:
    """The per-image train and eval functions for one dataset and recipe."""

    def __init__(self, size, *, scale, augmentation, normalize, channels, center_crop=False):
        self.size = tuple(size)
        self.scale = scale
        self.augmentation = augmentation
        self.normalize = normalize
        self.channels = channels
        # Images read larger than ``size`` (``size / crop_pct``) give their central crop.
        self.center_crop = center_crop

    def _scaled(self, image):
        return tf.cast(image, tf.float32) * self.scale

    def _resized(self, image):
        if tuple(image.shape[:2]) != self.size:
            if self.center_crop:
                return tf.image.resize_with_crop_or_pad(image, *self.size)
            image = tf.image.resize(image, self.size)
        return image

    def eval(self, image):
        image = self._scaled(image)
        if self.augmentation == "imagenet":
            image = resize_shorter_and_center_crop(image, self.size)
        else:
            image = self._resized(image)
        image = self.normalize(image)
        return tf.ensure_shape(image, (*self.size, self.channels))

    def train(self, image, seed):
        """``seed``: a stateless seed, shape ``[2]`` int64."""
        image = self._scaled(image)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        if self.augmentation == "imagenet":
            image = random_resized_crop(image, self.size, seeds[0])
            image = self.normalize(image)
        else:
            image = self.normalize(self._resized(image))
            if self.augmentation in ("crop_flip", "crop_flip_reflect"):
                p = CIFAR_PADDING
                mode = "REFLECT" if self.augmentation == "crop_flip_reflect" else "CONSTANT"
                padded = tf.pad(image, [[p, p], [p, p], [0, 0]], mode=mode)
                image = tf.image.stateless_random_crop(padded, (*self.size, self.channels), seeds[0])
        if self.augmentation != "none":
            image = tf.image.stateless_random_flip_left_right(image, seeds[1])
        return tf.ensure_shape(image, (*self.size, self.channels))
