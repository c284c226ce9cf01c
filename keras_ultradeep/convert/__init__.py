"""timm/torchvision checkpoints converted into keras_ultradeep models.

``convert_checkpoint("densenet121", "model.safetensors", "out.weights.h5")``
writes a Keras weights file that ``create_model(..., weights=path)`` loads.

One module per registry family holds its name mapping (``convert/<family>.py``);
the layouts, the strict assignment and the family lookup are shared
(``common.py``). The mappings import nothing above them, so the contract
uses them to load pretrained tags; this module, which builds models by name,
sits above the models.
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_ultradeep import files, registry
from keras_ultradeep.convert.common import (
    CHECKPOINT_SUFFIXES,
    HEAD_LAYER,
    convert_into,
    families,
    family_module,
    load_state_dict,
    plan_assignment,
    renamed_state_dict,
)

__all__ = ["load_state_dict", "convert_into", "convert_checkpoint", "families"]

# Models tried, in the failing model's family, to name the one a checkpoint fits.
_MAX_CANDIDATES = 16


def _check_arguments(model_name, checkpoint, output, model_kwargs):
    if not isinstance(model_name, str):
        raise TypeError(f"model_name: expected a model name string, got {model_name!r}")
    try:
        entry = registry.model_entry(model_name)
    except ValueError as error:
        raise ValueError(f"model_name: {str(error).removeprefix('name: ')}") from None
    family = family_module(entry.family, "model_name")

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
    return entry, family, checkpoint, output


def _build_for(model_name, family, state_dict, model_kwargs):
    """The model ``model_name`` with the options the checkpoint was trained with."""
    options = {**getattr(family, "ARCHITECTURE", {}), **model_kwargs}
    head = family.torch_module(HEAD_LAYER)
    head_weight = renamed_state_dict(state_dict, family).get(f"{head}.weight") if head else None
    if options.get("include_top", True) and "classes" not in options and head_weight is not None:
        options["classes"] = int(head_weight.shape[0])
    return registry.create_model(model_name, weights=None, **options)


def _fitting_model(entry, state_dict):
    """A registered model of ``entry``'s family that the checkpoint fits, or ``None``."""
    candidates = [
        name for name in registry.list_models()
        if name != entry.name and registry.model_entry(name).family == entry.family
    ]
    family = family_module(entry.family)
    for name in candidates[:_MAX_CANDIDATES]:
        try:
            plan_assignment(_build_for(name, family, state_dict, {}), state_dict, family)
        except ValueError:
            continue
        return name
    return None


def convert_checkpoint(model_name, checkpoint, output, **model_kwargs):
    """Converts a timm/torchvision checkpoint into a Keras ``.weights.h5`` file.

    The model is built with the options the checkpoint was trained with (for
    DenseNet PyTorch's BatchNorm epsilon 1e-5, not keras.applications'
    1.001e-5) and ``classes`` from the checkpoint's classifier; ``model_kwargs``
    override both. The checkpoint must fit the model exactly, else
    ``ValueError`` (naming the registered model it fits, when one does) and
    nothing is written; ``output`` appears only complete.

    Returns:
        The path of the written file.
    """
    entry, family, checkpoint, output = _check_arguments(model_name, checkpoint, output, model_kwargs)
    state_dict = load_state_dict(checkpoint)
    model = _build_for(model_name, family, state_dict, model_kwargs)
    try:
        plan = plan_assignment(model, state_dict, family)
    except ValueError as error:
        fits = _fitting_model(entry, state_dict)
        hint = f"It fits {fits!r}: convert it with that name. " if fits else ""
        raise ValueError(f"checkpoint: {str(checkpoint)!r} does not fit {model_name!r}. {hint}{error}") from None
    for variable, value in plan:
        variable.assign(value)
    with files.atomic_path(output) as temp:
        model.save_weights(temp)
    return output
