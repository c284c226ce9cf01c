"""keras_ultradeep: the Keras 3 model zoo of the classic ultra-deep convolutional networks.

Every builder takes keras.applications' signature (``include_top, weights,
input_tensor, input_shape, pooling, classes, classifier_activation, name``)
plus its architecture's knobs in the paper's terms.

Importing the package is cheap: Keras (and TensorFlow) load on first use of a
builder, ``list_models`` or ``create_model``.
"""

import importlib

from keras_ultradeep.registry import create_model, list_models

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "densenet": "keras_ultradeep.models.densenet",
    "DenseNet": "keras_ultradeep.models.densenet",
    "DenseNet121": "keras_ultradeep.models.densenet",
    "DenseNet161": "keras_ultradeep.models.densenet",
    "DenseNet169": "keras_ultradeep.models.densenet",
    "DenseNet201": "keras_ultradeep.models.densenet",
    "DenseNet264": "keras_ultradeep.models.densenet",
    "DenseNetCIFAR": "keras_ultradeep.models.densenet",
    "convert_checkpoint": "keras_ultradeep.convert",
}

__all__ = ["create_model", "list_models", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_ultradeep' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
