"""Training: datasets as tf.data pipelines and resumable runs with Keras ``fit``.

``train("densenet40_k12", dataset="digits", epochs=3, batch_size=64, output="runs/digits")``
trains into a run folder and resumes an interrupted run (see :mod:`.fit`).
"""

from keras_ultradeep.training.datasets import ImageDataset, load_dataset
from keras_ultradeep.training.fit import train

__all__ = ["train", "load_dataset", "ImageDataset"]
