"""Classifying image files: ``keras-ultradeep predict MODEL IMAGE...``.

``MODEL`` is

* a ``.keras`` file written by ``train`` or ``tune``: its class names and data
  configuration are the ones stored in it (:mod:`keras_ultradeep.saving`);
* ``<arch>.<tag>``: a registry model with pretrained weights (ImageNet class
  names), preprocessed the way the tag's data configuration says;
* a registry name with pretrained weights: its first tag.

Each image (JPEG, PNG, BMP or GIF, any size, grayscale or colour) is read as
RGB, its central square resized to ``input_size / crop_pct`` with the data
configuration's interpolation, the central ``input_size`` square cropped
(timm's evaluation transform for a square input) and normalized with its mean
and standard deviation. An image that cannot be read is reported by name and
the others are still classified.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from keras_ultradeep import checks

__all__ = ["Classifier", "load_classifier", "classify_files", "imagenet_class_names", "DEFAULT_DATA_CONFIG"]

# A model that stores no data configuration: resized to its input, in [0, 1].
DEFAULT_DATA_CONFIG = {
    "crop_pct": 1.0, "interpolation": "bilinear", "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "channel_order": "RGB",
}


@dataclasses.dataclass
class Classifier:
    """A model, the names of its classes, and how its inputs are prepared."""

    model: object
    class_names: list
    data_config: dict
    source: str

    @property
    def input_size(self):
        size = self.data_config.get("input_size")
        return int(size[0]) if size else int(self.model.input_shape[1])


def imagenet_class_names():
    """The 1,000 ImageNet-1k class names, in the index order of the pretrained weights.

    The WordNet synsets that TensorFlow Datasets ships for ``imagenet2012``
    (sorted, the order every ImageNet checkpoint uses), with their readable
    names where timm's ImageNet tables are installed.
    """
    import importlib.util

    import tensorflow_datasets as tfds

    synsets = list(tfds.builder("imagenet2012").info.features["label"].names)
    spec = importlib.util.find_spec("timm")
    lemmas = Path(spec.origin).parent / "data" / "_info" / "imagenet_synset_to_lemma.txt" if spec else None
    if lemmas is None or not lemmas.is_file():
        return synsets
    names = dict(line.rstrip("\n").split("\t", 1) for line in lemmas.read_text().splitlines() if "\t" in line)
    return [names.get(synset, synset) for synset in synsets]


def _pretrained(spec):
    """``(arch, tag)`` for ``<arch>.<tag>`` or a registry name with pretrained weights."""
    from keras_ultradeep import registry, weights

    arch, _, tag = spec.partition(".")
    registry.model_entry(arch)  # an unknown name raises, with suggestions
    row = weights.resolve(arch, tag or "imagenet", warn=False)  # no tag: what weights="imagenet" loads
    if row is None and not tag:
        raise ValueError(
            f"model: {arch} has no pretrained weights; give {arch}.<tag> with a tag of "
            "`keras-ultradeep list --weights`, or a .keras file written by train"
        )
    if row is None:
        raise ValueError(
            f"model: {arch} has no pretrained tag {tag!r} (available: {', '.join(weights.tags(arch)) or 'none'})"
        )
    return arch, row.tag


def load_classifier(spec):
    """The :class:`Classifier` that ``spec`` (a ``.keras`` file, ``<arch>.<tag>`` or a name) names."""
    import keras

    from keras_ultradeep import registry, saving

    checks.string(spec, "model")
    if spec.endswith(".keras") or os.path.sep in spec or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"model: no such file {spec!r}")
        saving.register_serializables()
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as error:  # Keras raises ValueError, OSError, zipfile errors...
            raise ValueError(f"model: cannot load {spec!r} as a Keras model ({error})") from error
        info = saving.read_model_info(path)
        classes = int(model.output_shape[-1])
        names = info.get("class_names") or [str(i) for i in range(classes)]
        config = {**DEFAULT_DATA_CONFIG, "input_size": tuple(model.input_shape[1:]), **info.get("data_config", {})}
        return Classifier(model, list(names), config, spec)
    from keras_ultradeep.training.finetune import tag_data_config

    arch, tag = _pretrained(spec)
    model = registry.create_model(arch, weights=tag)
    return Classifier(model, imagenet_class_names(), tag_data_config(arch, tag), f"{arch}.{tag}")


def read_image(path, classifier):
    """The file ``path`` prepared for ``classifier``'s model: ``(side, side, channels)`` float32.

    Raises ``ValueError`` naming the file if it cannot be read as an image.
    """
    import keras
    import tensorflow as tf

    from keras_ultradeep.training import preprocessing

    config = classifier.data_config
    side = classifier.input_size
    channels = int(classifier.model.input_shape[-1])
    if not Path(path).is_file():
        raise ValueError(f"image: no such file {str(path)!r}")
    try:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    except tf.errors.OpError:
        raise ValueError(f"image: cannot read {str(path)!r}: not a JPEG, PNG, BMP or GIF image") from None
    load_side = max(side, round(side / float(config.get("crop_pct", 1.0))))
    image = keras.ops.image.resize(
        tf.cast(image, tf.float32), (load_side, load_side),
        interpolation=config.get("interpolation", "bilinear"), crop_to_aspect_ratio=True,
    )
    image = tf.image.resize_with_crop_or_pad(image, side, side) / 255.0
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    normalize = preprocessing.normalizer(
        "mean_std", config["mean"][:channels], config["std"][:channels], config.get("channel_order", "RGB")
    )
    return np.asarray(normalize(image), "float32")


def classify_files(classifier, paths, *, top_k=5, batch_size=32):
    """``(results, errors)``: for each readable file ``{"image", "predictions": [{"class",
    "probability"}...]}`` (best first), and ``{path: message}`` for the others."""
    checks.positive_int(top_k, "top_k")
    top_k = min(top_k, len(classifier.class_names))
    images, readable, errors = [], [], {}
    for path in paths:
        try:
            images.append(read_image(path, classifier))
            readable.append(str(path))
        except ValueError as error:
            errors[str(path)] = str(error)
    results = []
    if images:
        probabilities = classifier.model.predict(np.stack(images), batch_size=batch_size, verbose=0)
        for path, row in zip(readable, np.asarray(probabilities, "float64")):
            best = np.argsort(-row)[:top_k]
            results.append({
                "image": path,
                "predictions": [
                    {"class": classifier.class_names[i], "probability": float(row[i])} for i in best
                ],
            })
    return results, errors
