"""What a saved file of ours needs to load with plain ``keras.models.load_model``.

A ``model.keras`` written by ``train`` names our layers and optimizers
(``keras_ultradeep>Adam``...). Keras finds them only once they are
registered, which happens when their modules are imported. ``import
keras_ultradeep`` stays cheap (no Keras), so the package registers them at the
moment Keras itself is imported, with a post-import hook (``wrapt``): in a
process that has imported ``keras_ultradeep``,
``keras.models.load_model("runs/digits/model.keras")`` works with safe mode on.

The model file also carries this package's record of the model
(:func:`write_model_info` / :func:`read_model_info`): the class names it was
trained on and its data configuration (input size, crop fraction,
interpolation, mean and standard deviation), in ``keras_ultradeep.json``
inside the ``.keras`` zip, beside Keras' own ``config.json`` (Keras ignores it).
"""

from __future__ import annotations

import importlib
import json
import zipfile

__all__ = ["register_serializables", "write_model_info", "read_model_info", "MODEL_INFO"]

MODEL_INFO = "keras_ultradeep.json"
# The modules whose import registers a class that a saved file may name.
_REGISTERING_MODULES = ("keras_ultradeep.layers", "keras_ultradeep.training.optimizers")


def register_serializables():
    """Imports every module that registers a Keras serializable of ours."""
    for name in _REGISTERING_MODULES:
        importlib.import_module(name)


def write_model_info(path, info):
    """Adds ``info`` (JSON) to the ``.keras`` file ``path`` (not yet in place: a temporary)."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(MODEL_INFO, json.dumps(info, indent=2))


def read_model_info(path):
    """The record :func:`write_model_info` stored in ``path``; ``{}`` if there is none."""
    try:
        with zipfile.ZipFile(path) as archive:
            if MODEL_INFO not in archive.namelist():
                return {}
            return json.loads(archive.read(MODEL_INFO))
    except (OSError, zipfile.BadZipFile, ValueError):
        return {}
