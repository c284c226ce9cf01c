"""Training: paper recipes, datasets as tf.data pipelines, resumable runs with Keras ``fit``,
and multi-crop evaluation.

``train("densenet40_k12", dataset="digits", epochs=3, batch_size=64, output="runs/digits")``
trains into a run folder and resumes an interrupted run (see :mod:`.fit`);
``train(..., recipe="densenet_cifar")`` uses a paper's setting (:mod:`.recipes`);
``evaluate.evaluate("runs/digits/model.keras", dataset="digits", crops=10)``
(:mod:`.evaluate`).
"""

from keras_ultradeep.training.datasets import ImageDataset, load_dataset
from keras_ultradeep.training.fit import TrainingDiverged, train
from keras_ultradeep.training.recipes import RECIPES, Recipe, list_recipes

__all__ = [
    "train",
    "load_dataset",
    "ImageDataset",
    "TrainingDiverged",
    "RECIPES",
    "Recipe",
    "list_recipes",
]
