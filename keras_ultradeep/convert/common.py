"""The family-independent half of checkpoint conversion.

A family module (``convert/densenet.py``, ...) knows only names: which PyTorch
module each Keras layer is. This module knows the rest, which is the same for
every family: how each layer type stores its tensors on either side, reading
a checkpoint without trusting it, and assigning strictly, so that a checkpoint
that does not fit the model is reported in full and leaves the model as it was
(a half-assigned model looks fine and predicts garbage).

A family module provides:

* ``torch_module(layer_name) -> str | None``: the PyTorch module path
  (``"features.conv0"``) of a Keras layer that has weights.
* ``rename_key(key) -> str`` (optional): maps older spellings of a key
  (torchvision's) to the current one.
* ``adapt_tensor(key, value) -> array`` (optional): reshapes a tensor whose
  PyTorch layer differs in form from ours (a 1x1-conv classifier for a Dense).
* ``ARCHITECTURE`` (optional): builder options the checkpoints were trained
  with that are not weights, e.g. PyTorch's BatchNorm epsilon.
* ``prepare_state_dict(state_dict) -> dict`` (optional): renames that need the
  whole checkpoint at once (timm/torchvision VGG's flat ``features.{i}``,
  whose meaning depends on the configuration); applied before ``rename_key``.
* ``HEAD_LAYERS`` (optional): the Keras layers that ``include_top=False``
  leaves out, whose tensors a no-top model ignores (default: ``predictions``;
  VGG's ``fc1``, ``fc2`` and ``predictions``).
* ``OPTIONAL_PREFIXES`` (optional): checkpoint key prefixes of parts a model
  may be built without (auxiliary classifiers, ``"aux1."``), ignored when
  none of their keys is used.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import keras
import numpy as np

from keras_ultradeep.layers import GroupedConv2D

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "CONVERTER_VERSION",
    "HEAD_LAYER",
    "families",
    "family_module",
    "converter_version",
    "load_state_dict",
    "register_layout",
    "plan_assignment",
    "convert_into",
]

# Part of every cached conversion's key: raise it when a change here alters
# what any conversion produces (a family module can add its own VERSION), so
# that conversions made by the old code are not reused.
CONVERTER_VERSION = 1

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
# The classifier's name in contract.classifier_head; a model built with
# include_top=False has no such layer and the checkpoint's classifier is unused.
HEAD_LAYER = "predictions"
# BatchNorm's update counter: PyTorch bookkeeping that Keras has no use for.
_IGNORED_SUFFIXES = (".num_batches_tracked",)
_WRAPPER_KEYS = ("state_dict", "model")  # timm train checkpoints, torchvision references
_SHOWN = 5  # keys listed per kind of problem in an error


# ------------------------------------------------------------------ families

_PACKAGE = __name__.rpartition(".")[0]
# A registry family's mapping module is ``convert/<family>.py``, imported on
# first use; families that share another family's mapping are listed here.
_ALIASES = {
    "drn_a": "resnet",  # DRN-A-50 takes ResNet-50's tensors unchanged
}
_NOT_FAMILIES = {"common", "checkpoint"}


def _family_modules():
    package = importlib.import_module(_PACKAGE)
    found = {
        info.name: f"{_PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if info.name not in _NOT_FAMILIES and not info.name.startswith("_")
    }
    return {**found, **{alias: f"{_PACKAGE}.{target}" for alias, target in _ALIASES.items()}}


def families():
    """The registry families that have a checkpoint mapping."""
    return tuple(sorted(_family_modules()))


def family_module(family, argument="family"):
    """The mapping module of a registry family (``convert/<family>.py``)."""
    modules = _family_modules()
    if family not in modules:
        raise ValueError(
            f"{argument}: no checkpoint converter for family {family!r}; converters "
            f"exist for: {', '.join(families())}"
        )
    return importlib.import_module(modules[family])


def converter_version(family):
    """The cache key part of a family's conversion: ``"<common>.<family>"``."""
    return f"{CONVERTER_VERSION}.{getattr(family, 'VERSION', 0)}"


# ------------------------------------------------------------------- reading


def _to_numpy(key, value, path):
    import torch

    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"checkpoint: {str(path)!r} is not a state dict of tensors "
            f"({key!r} holds a {type(value).__name__})"
        )
    value = value.detach().cpu()
    if value.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16
        value = value.float()
    return value.numpy()


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"reading the PyTorch checkpoint {str(path)!r} needs torch: "
            'pip install "keras-ultradeep[torch]" (or use a .safetensors file, '
            "which needs no torch)"
        ) from None
    # weights_only: a .pth is a pickle, and only plain tensors may come out of it.
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state_dict(path):
    """A timm/torchvision checkpoint as ``{key: numpy array}``.

    ``.safetensors`` files are read without torch; ``.pth``/``.pt``/``.bin``
    need it. Training wrappers (``{"state_dict": ...}``, ``{"model": ...}``)
    and DataParallel's ``module.`` prefix are removed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(
            f"checkpoint: expected a file ending in {', '.join(CHECKPOINT_SUFFIXES)}, "
            f"got {str(path)!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file {str(path)!r}")
    try:
        if suffix == ".safetensors":
            from safetensors.numpy import load_file

            state = load_file(path)
        else:
            state = _read_torch(path)
    except ImportError:
        raise
    except Exception as error:  # SafetensorError, OSError, RuntimeError, UnpicklingError
        raise ValueError(
            f"checkpoint: could not read {str(path)!r}: the file is truncated, corrupted "
            f"or not a plain state dict ({type(error).__name__}: {error})"
        ) from error

    while isinstance(state, dict):
        wrapped = next((k for k in _WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if wrapped is None:
            break
        state = state[wrapped]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"checkpoint: {str(path)!r} holds no state dict")
    result = {}
    for key, value in state.items():
        if not isinstance(value, np.ndarray):
            value = _to_numpy(key, value, path)
        result[key.removeprefix("module.")] = value
    return result


# ------------------------------------------------------------------- layouts

# Each layout maps a Keras variable name to (PyTorch parameter name, transform).
_CONV = {
    # PyTorch stores (out, in / groups, h, w); Keras (h, w, in / groups, out).
    "kernel": ("weight", lambda w: np.transpose(w, (2, 3, 1, 0))),
    "bias": ("bias", None),
}
_DENSE = {
    # nn.Linear computes x W^T with W (out, in); Keras x K with K (in, out).
    "kernel": ("weight", np.transpose),
    "bias": ("bias", None),
}
_BATCH_NORM = {
    "gamma": ("weight", None),
    "beta": ("bias", None),
    "moving_mean": ("running_mean", None),
    "moving_variance": ("running_var", None),
}
_EXTRA_LAYOUTS = []  # (layer class, layout), searched before the built-in ones


def register_layout(layer_class, layout):
    """Teaches conversion a layer type: ``{keras_variable: (torch_name, transform)}``.

    ``transform`` takes the PyTorch array and returns the Keras one (``None``:
    unchanged). For custom layers, e.g. a grouped convolution of our own.
    """
    _EXTRA_LAYOUTS.insert(0, (layer_class, dict(layout)))


def _layout(layer):
    builtin = [
        (keras.layers.Conv2D, _CONV),
        (GroupedConv2D, _CONV),  # Keras Conv2D(groups=...)'s kernel layout
        (keras.layers.Dense, _DENSE),
        (keras.layers.BatchNormalization, _BATCH_NORM),
    ]
    for layer_class, layout in _EXTRA_LAYOUTS + builtin:
        if isinstance(layer, layer_class):
            return layout
    return None


def _weighted_layers(model):
    """Every layer that owns weights; nested models are walked into."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weighted_layers(layer)
        elif layer.weights:
            yield layer


# ----------------------------------------------------------------- assignment


def _problem(kind, items):
    shown = ", ".join(items[:_SHOWN]) + (", ..." if len(items) > _SHOWN else "")
    return f"{len(items)} {kind} ({shown})"


def renamed_state_dict(state_dict, family):
    """The checkpoint under the names ``family.torch_module`` uses."""
    prepare = getattr(family, "prepare_state_dict", None)
    if prepare is not None:
        state_dict = prepare(state_dict)
    rename = getattr(family, "rename_key", lambda key: key)
    return {rename(key): value for key, value in state_dict.items()}


def plan_assignment(model, state_dict, family):
    """``[(variable, value)]`` for every weight of ``model``, or ``ValueError``.

    Nothing is assigned here: the caller assigns only a complete plan. Every
    model weight needs a source of the right shape and every checkpoint key
    must be used, except BatchNorm counters, and the classifier when the
    model has no head.
    """
    adapt = getattr(family, "adapt_tensor", lambda key, value: value)
    state = {key: adapt(key, value) for key, value in renamed_state_dict(state_dict, family).items()}

    plan, used, missing, mismatched = [], set(), [], []
    has_head = False
    for layer in _weighted_layers(model):
        has_head = has_head or layer.name == HEAD_LAYER
        module = family.torch_module(layer.name)
        layout = _layout(layer)
        if module is None or layout is None:
            why = "no PyTorch module" if module is None else f"no layout for {type(layer).__name__}"
            missing.extend(f"{w.path} ({why})" for w in layer.weights)
            continue
        for variable in layer.weights:
            if variable.name not in layout:
                missing.append(f"{variable.path} (no layout entry)")
                continue
            torch_name, transform = layout[variable.name]
            key = f"{module}.{torch_name}"
            if key not in state:
                missing.append(f"{variable.path} <- {key}")
                continue
            used.add(key)
            value = np.asarray(state[key])
            value = transform(value) if transform is not None else value
            if tuple(value.shape) != tuple(variable.shape):
                mismatched.append(
                    f"{variable.path} {tuple(variable.shape)} <- {key} {tuple(state[key].shape)}"
                )
                continue
            plan.append((variable, value.astype(variable.dtype)))

    heads = (family.torch_module(name) for name in getattr(family, "HEAD_LAYERS", (HEAD_LAYER,)))
    heads = tuple(f"{head}." for head in heads if head is not None)
    # Parts a model may be built without (auxiliary classifiers): left unused
    # as a whole when the model has none of their layers.
    optional = tuple(
        prefix
        for prefix in getattr(family, "OPTIONAL_PREFIXES", ())
        if not any(key.startswith(prefix) for key in used)
    )
    unexpected = [
        key
        for key in state
        if key not in used
        and not key.endswith(_IGNORED_SUFFIXES)
        and not (not has_head and heads and key.startswith(heads))
        and not (optional and key.startswith(optional))
    ]
    problems = []
    if missing:
        problems.append(_problem("model weights missing from the checkpoint", missing))
    if unexpected:
        problems.append(_problem("unexpected checkpoint keys", sorted(unexpected)))
    if mismatched:
        problems.append(_problem("shape mismatches", mismatched))
    if problems:
        raise ValueError(
            f"state_dict: the checkpoint does not fit model {model.name!r}; nothing was "
            "assigned: " + "; ".join(problems)
        )
    return plan


def convert_into(model, state_dict, family):
    """Assigns a PyTorch ``state_dict`` (``{key: array}``) to a built ``model``.

    ``family`` is a mapping module or a registry family's name. All or
    nothing: a missing, unused or misshapen tensor raises ``ValueError``
    before any weight changes.
    """
    if isinstance(family, str):
        family = family_module(family)
    for variable, value in plan_assignment(model, state_dict, family):
        variable.assign(value)
    return model
