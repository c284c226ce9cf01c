"""The model registry: ``register``, ``list_models`` and ``create_model``.

Every public builder is registered under a snake_case name (timm's naming, e.g.
``densenet121``, ``densenet_bc100_k12``). A registered variant is a builder plus
the keyword arguments that make it that variant.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import os
from typing import Any, Callable

from keras_ultradeep import weights as weights_lib

__all__ = [
    "Family",
    "ModelEntry",
    "declare",
    "declares_stages",
    "feature_stages",
    "register",
    "register_variants",
    "list_models",
    "create_model",
    "model_entry",
    "resolve_name",
    "split_name",
]


@dataclasses.dataclass(frozen=True)
class Family:
    """A family of models, declared once in its module.

    Attributes:
        name: the family's name in the registry (``"resnet"``).
        default_size, min_size: the input-side rules of every member.
        variants: ``{registry name: the family builder's configuration}``,
            the paper's (or timm's) table.
        preprocessing: the mode the family module's ``preprocess_input``
            applies by default (keras.applications' ``"caffe"``, ``"tf"``,
            ``"torch"``, or a family's own such as DPN's ``"dpn"``), the one
            its reference weights expect; a pretrained tag may say otherwise.
        stages: ``stages(config) -> ((layer name, reduction), ...)``: the
            layer that ends each feature stage of the variant with that
            configuration (a row of ``variants``, or the keyword arguments it
            was registered with), in order, and the stage's reduction of the
            input side (timm's ``feature_info``); ``None``: the family has no
            stages to offer.
    """

    name: str
    default_size: int
    min_size: int
    variants: dict = dataclasses.field(default_factory=dict)
    preprocessing: str | None = None
    stages: Callable[[dict], tuple] | None = None


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder and the arguments that define it."""

    name: str
    builder: Callable[..., Any]
    family: str
    default_size: int
    min_size: int
    kwargs: dict = dataclasses.field(default_factory=dict)

    def build(self, **kwargs):
        return self.builder(**{**self.kwargs, **kwargs})


_REGISTRY: dict[str, ModelEntry] = {}
_FAMILIES: dict[str, list[Family]] = {}
_MODELS_PACKAGE = "keras_ultradeep.models"  # importing it registers every family


def _registry():
    importlib.import_module(_MODELS_PACKAGE)
    return _REGISTRY


def declare(family):
    """Records ``family`` (a :class:`Family`) under its name; returns it.

    Two records may share a name (keras.applications' and timm's ResNet-v2
    tables); a model's record is the one whose ``variants`` list it, else the
    one without a table."""
    if not isinstance(family, Family):
        raise TypeError(f"family: expected a registry.Family, got {type(family).__name__}")
    records = _FAMILIES.setdefault(family.name, [])
    if family not in records:
        records.append(family)
    return family


def _family_of(entry):
    records = _FAMILIES.get(entry.family, [])
    return next(
        (f for f in records if entry.name in f.variants), next((f for f in records if not f.variants), None)
    )


def declares_stages(name):
    """Whether the family of model ``name`` declares its feature stages."""
    family = _family_of(model_entry(name))
    return family is not None and family.stages is not None


def feature_stages(name):
    """``((layer name, reduction), ...)``: the feature stages that the family
    of model ``name`` (a registry or builder name) declares for it; a
    ``ValueError`` when its family declares none."""
    entry = model_entry(name)
    family = _family_of(entry)
    if not declares_stages(entry.name):
        raise ValueError(
            f"model: the {entry.family!r} family of {entry.name!r} declares no feature stages; "
            "pass layer_names"
        )
    config = family.variants.get(entry.name, entry.kwargs)
    return tuple(family.stages(config))


def register(name, builder, /, *, family, default_size, min_size, **kwargs):
    """Registers ``builder`` (called with ``kwargs``) under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = ModelEntry(
        name=name,
        builder=builder,
        family=family,
        default_size=default_size,
        min_size=min_size,
        kwargs=dict(kwargs),
    )
    return builder


def register_variants(variants, /, *, family, default_size, min_size):
    """Registers each ``{name: (builder, kwargs)}``; the builder also gets ``name=name``."""
    for name, (builder, kwargs) in variants.items():
        register(
            name, builder, family=family, default_size=default_size, min_size=min_size, name=name, **kwargs
        )


def _unknown_name_error(name):
    close = difflib.get_close_matches(name, list(_registry()), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"name: unknown model {name!r}.{hint} "
        "Use keras_ultradeep.list_models() to see every registered name."
    )


def _builder_names():
    """``{builder name: registry name}`` for every builder that is one model
    (``DenseNet121`` -> ``densenet121``); a family builder such as
    ``ResNetCIFAR``, registered under several names, names none."""
    names = {}
    for entry in _registry().values():
        if not set(entry.kwargs) - {"name"}:
            names.setdefault(entry.builder.__name__, []).append(entry.name)
    return {builder: found[0] for builder, found in names.items() if len(found) == 1}


def resolve_name(name):
    """The registry name of ``name``: a registry name, or a builder's name
    (``"DenseNet121"``, ``"ResNet50"``) as the Python API spells it."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a model name string, got {type(name).__name__}")
    if name in _registry():
        return name
    resolved = _builder_names().get(name)
    if resolved is None:
        raise _unknown_name_error(name)
    return resolved


def model_entry(name) -> ModelEntry:
    """The registry entry for ``name`` (a registry or a builder name); a
    ``ValueError`` suggests close names."""
    return _registry()[resolve_name(name)]


def list_models(pattern="*", weights=None, *, pretrained=False):
    """Sorted registered names matching ``pattern`` (fnmatch wildcards).

    Args:
        pattern: a wildcard pattern such as ``"densenet*"`` (with
            ``pretrained=True``, matched against ``"<arch>.<tag>"``).
        weights: ``None``/``False`` lists every model; ``True`` only models
            with pretrained weights; a tag string (e.g. ``"imagenet"``) only
            models that have weights under that tag.
        pretrained: list every pretrained ``"<arch>.<tag>"`` instead, as
            ``timm.list_models(pretrained=True)`` does.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"pattern: expected a wildcard string, got {type(pattern).__name__}")
    if weights not in (None, False, True) and not isinstance(weights, str):
        raise TypeError(
            f"weights: expected None, True or a weights tag string, got {weights!r}"
        )
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained: expected True or False, got {pretrained!r}")
    if pretrained:
        return [name for name in weights_lib.list_pretrained(pattern) if name.split(".")[0] in _registry()]
    names = sorted(n for n in _registry() if fnmatch.fnmatchcase(n, pattern))
    if weights is None or weights is False:
        return names

    def keep(name):
        if weights is True:
            return bool(weights_lib.tags(name))
        return weights_lib.resolve(name, weights, warn=False) is not None

    return [n for n in names if keep(n)]


def split_name(name):
    """``(registry name, tag or None)`` of ``"<arch>"``, ``"<arch>.<tag>"`` or
    ``"timm/<arch>.<tag>"``; a ``ValueError`` for an unknown architecture."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a model name string, got {type(name).__name__}")
    bare = name.removeprefix("timm/")
    if bare in _registry() or "." not in bare:
        return resolve_name(bare), None
    arch, _, tag = bare.partition(".")
    return resolve_name(arch), tag


def create_model(name, /, **kwargs):
    """Builds the registered model ``name`` with ``kwargs`` overriding its defaults.

    ``name`` may carry a weights tag the way timm names do
    (``"dpn68b.ra_in1k"``); it then defaults ``weights`` to that tag. A bare
    tag in ``weights`` (``weights="ra_in1k"``) is this model's tag.
    """
    arch, tag = split_name(name)
    if tag is not None:
        kwargs.setdefault("weights", tag)
    weights = kwargs.get("weights")
    # Qualified, the tag means this registry name's weights even where two
    # names share a builder (vgg16 and vgg16_keras): the builder sees only
    # its own configuration.
    if (
        isinstance(weights, str)
        and "." not in weights
        and not os.path.exists(weights)
        and weights_lib.resolve(arch, weights, warn=False) is not None
    ):
        kwargs["weights"] = f"{arch}.{weights}"
    return model_entry(arch).build(**kwargs)
