"""The data the analyses evaluate on: arrays in memory, and accuracy over them."""

from __future__ import annotations

import numpy as np

from keras_ultradeep import checks

__all__ = ["as_arrays", "accuracy", "Accuracy", "check_progress"]


def _numpy(value):
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _labels(labels, argument):
    labels = np.asarray(labels)
    if labels.ndim == 2:  # one-hot
        labels = labels.argmax(axis=-1)
    if labels.ndim != 1:
        raise ValueError(f"{argument}: expected class indices or one-hot labels, got shape {labels.shape}")
    return labels.astype("int64")


def as_arrays(data, max_examples=None, argument="data"):
    """``(images, labels)`` as NumPy arrays from ``data``: a pair of arrays,
    a ``tf.data.Dataset`` of ``(images, labels)`` batches, or an
    :class:`~keras_ultradeep.training.datasets.ImageDataset` (its validation
    pipeline). Labels may be class indices or one-hot."""
    max_examples = checks.optional_positive_int(max_examples, "max_examples")
    if hasattr(data, "validation") and hasattr(data, "num_classes"):
        data = data.validation
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = np.asarray(data[0]), _labels(data[1], argument)
    elif hasattr(data, "as_numpy_iterator") or hasattr(data, "element_spec"):
        images, labels, count = [], [], 0
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError(f"{argument}: expected a dataset of (images, labels), got {type(batch).__name__}")
            x, y = _numpy(batch[0]), _numpy(batch[1])
            if x.ndim == 3:  # unbatched examples
                x, y = x[None], np.asarray(y)[None]
            images.append(x)
            labels.append(_labels(y, argument))
            count += len(x)
            if max_examples and count >= max_examples:
                break
        if not images:
            raise ValueError(f"{argument}: the dataset is empty")
        images, labels = np.concatenate(images), np.concatenate(labels)
    else:
        raise TypeError(
            f"{argument}: expected (images, labels) arrays, a tf.data.Dataset of them or an ImageDataset, "
            f"got {type(data).__name__}"
        )
    if images.ndim != 4 or len(images) != len(labels) or not len(images):
        raise ValueError(
            f"{argument}: expected a batch of images (N, H, W, C) and N labels, got shapes "
            f"{images.shape} and {labels.shape}"
        )
    if max_examples:
        images, labels = images[:max_examples], labels[:max_examples]
    return images.astype("float32"), labels


class Accuracy:
    """Top-1 accuracy of ``model`` (in inference mode) on fixed arrays.

    The forward pass is traced once: the analyses call this hundreds of
    times on one gated model whose gates change between calls, and
    ``model.predict`` costs a new data adapter (and often a retrace) each time.
    """

    def __init__(self, model, images, labels, batch_size=256):
        import tensorflow as tf

        self.batches = [
            (tf.constant(images[i:i + batch_size]), labels[i:i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
        self.forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self):
        correct = sum(int(np.sum(np.argmax(self.forward(x).numpy(), axis=-1) == y)) for x, y in self.batches)
        return correct / sum(len(y) for _, y in self.batches)


def accuracy(model, images, labels, batch_size=256):
    """Top-1 accuracy of ``model`` (in inference mode) on the arrays."""
    return Accuracy(model, images, labels, batch_size)()


def check_progress(progress):
    """``progress`` if it is None or a callable ``progress(done, total)``."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress: expected None or a callable progress(done, total), got {progress!r}")
    return progress or (lambda done, total: None)
