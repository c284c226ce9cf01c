"""Training: paper recipes, datasets as tf.data pipelines, resumable runs with Keras ``fit``,
and multi-crop evaluation.

``train("densenet40_k12", dataset="digits", epochs=3, batch_size=64, output="runs/digits")``
trains into a run folder and resumes an interrupted run (see :mod:`.fit`);
``train(..., recipe="densenet_cifar")`` uses a paper's setting (:mod:`.recipes`);
``evaluate.evaluate("runs/digits/model.keras", dataset="digits", crops=10)``
(:mod:`.evaluate`).

The names below load on first use (PEP 562), so that the command line can read
:mod:`.recipes` (plain data) to build its flags without importing TensorFlow.
"""

import importlib

_LAZY = {
    "train": "keras_ultradeep.training.fit",
    "TrainingDiverged": "keras_ultradeep.training.fit",
    "TrainSettings": "keras_ultradeep.training.settings",
    "load_dataset": "keras_ultradeep.training.datasets",
    "ImageDataset": "keras_ultradeep.training.datasets",
    "RECIPES": "keras_ultradeep.training.recipes",
    "Recipe": "keras_ultradeep.training.recipes",
    "list_recipes": "keras_ultradeep.training.recipes",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_ultradeep.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
