"""timm/torchvision checkpoints converted into keras_ultradeep models.

``convert_checkpoint("densenet121", "model.safetensors", "out.weights.h5")``
writes a Keras weights file that ``create_model(..., weights=path)`` loads.
Pretrained tags with a timm source (``weights="tv_in1k"``) do the same on first
use through :func:`keras_ultradeep.weights.fetch`.

One module per registry family holds its name mapping; the layouts and the
strict assignment are shared (``common.py``).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

from keras_ultradeep.convert.common import CHECKPOINT_SUFFIXES, HEAD_LAYER, load_state_dict
from keras_ultradeep.convert.common import plan_assignment as _plan_assignment
from keras_ultradeep.convert.common import renamed_state_dict as _renamed_state_dict

__all__ = ["load_state_dict", "convert_into", "convert_checkpoint", "families"]

# A registry family's mapping module is ``convert/<family>.py``, imported on
# first use; families that share another family's mapping are listed here.
_ALIASES = {
    "drn_a": "resnet",  # DRN-A-50 takes ResNet-50's tensors unchanged
}
_NOT_FAMILIES = {"common"}
_FAMILIES = {
    **{
        info.name: f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if info.name not in _NOT_FAMILIES and not info.name.startswith("_")
    },
    **{alias: f"{__name__}.{target}" for alias, target in _ALIASES.items()},
}


def families():
    """The registry families that have a checkpoint converter."""
    return tuple(sorted(_FAMILIES))


def _family_module(family, argument="family"):
    if family not in _FAMILIES:
        raise ValueError(
            f"{argument}: no checkpoint converter for family {family!r}; converters "
            f"exist for: {', '.join(families())}"
        )
    return importlib.import_module(_FAMILIES[family])


def convert_into(model, state_dict, family):
    """Assigns a PyTorch ``state_dict`` (``{key: array}``) to a built ``model``.

    All or nothing: a missing, unused or misshapen tensor raises
    ``ValueError`` before any weight changes.
    """
    plan = _plan_assignment(model, state_dict, _family_module(family))
    for variable, value in plan:
        variable.assign(value)
    return model


def _check_arguments(model_name, checkpoint, output, model_kwargs):
    from keras_ultradeep import registry

    if not isinstance(model_name, str):
        raise TypeError(f"model_name: expected a model name string, got {model_name!r}")
    try:
        entry = registry.model_entry(model_name)
    except ValueError as error:
        raise ValueError(f"model_name: {str(error).removeprefix('name: ')}") from None
    family = _family_module(entry.family, "model_name")

    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint: expected a file path, got {checkpoint!r}")
    checkpoint = Path(checkpoint)
    if checkpoint.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise ValueError(
            f"checkpoint: expected a file ending in {', '.join(CHECKPOINT_SUFFIXES)}, "
            f"got {str(checkpoint)!r}"
        )
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint: no such file {str(checkpoint)!r}")

    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"output: expected a file path, got {output!r}")
    output = Path(output)
    if not output.name.endswith(".weights.h5"):  # Keras' save_weights insists on it
        raise ValueError(f"output: expected a path ending in '.weights.h5', got {str(output)!r}")
    if not output.parent.is_dir():
        raise ValueError(f"output: the folder {str(output.parent)!r} does not exist")

    if "weights" in model_kwargs:
        raise ValueError("model_kwargs: 'weights' cannot be set; the checkpoint is the weights")
    return family, checkpoint, output


def convert_checkpoint(model_name, checkpoint, output, **model_kwargs):
    """Converts a timm/torchvision checkpoint into a Keras ``.weights.h5`` file.

    The model is built with the options the checkpoint was trained with (for
    DenseNet PyTorch's BatchNorm epsilon 1e-5, not keras.applications'
    1.001e-5) and ``classes`` from the checkpoint's classifier; ``model_kwargs``
    override both. ``output`` appears only complete: it is written beside
    itself and moved into place, and nothing is written if conversion fails.

    Returns:
        The path of the written file.
    """
    family, checkpoint, output = _check_arguments(model_name, checkpoint, output, model_kwargs)
    state_dict = load_state_dict(checkpoint)

    options = {**getattr(family, "ARCHITECTURE", {}), **model_kwargs}
    head = family.torch_module(HEAD_LAYER)
    head_weight = _renamed_state_dict(state_dict, family).get(f"{head}.weight") if head else None
    if options.get("include_top", True) and "classes" not in options and head_weight is not None:
        options["classes"] = int(head_weight.shape[0])

    from keras_ultradeep import registry
    from keras_ultradeep import weights as weights_lib

    model = registry.create_model(model_name, weights=None, **options)
    convert_into(model, state_dict, registry.model_entry(model_name).family)
    # weights.py owns the atomic write (a temp folder beside output, then os.replace).
    return weights_lib._save_weights_atomically(model, output)
