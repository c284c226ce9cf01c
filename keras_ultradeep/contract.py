"""The keras.applications contract, written once for every model.

A model file describes only its architecture: a ``features(inputs) -> tensor``
function. :func:`application` does the rest the way keras.applications does it:
argument validation (all of it before any layer is built), the input-shape
rules, the input tensor, the classification head or pooling, the model and
its weights.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import keras

from keras_ultradeep import checks, registry
from keras_ultradeep import weights as weights_lib
from keras_ultradeep.convert import common as convert_common

__all__ = [
    "application",
    "obtain_input_shape",
    "classifier_head",
    "pretrained_option",
    "data_config",
    "is_pretrained",
    "preprocess_input",
    "decode_predictions",
    "ensure_recursion_limit",
]

POOLING_VALUES = (None, "avg", "max")
PREPROCESS_MODES = ("caffe", "tf", "torch")


def _resolve_weights(model_name, weights):
    """``None``, a :class:`weights.Weights` row or a local file; validates only.

    A string is a local file when one exists there, else a pretrained tag
    (``"imagenet"``, ``"ra_in1k"``, ``"<arch>.<tag>"``, ``"timm/<arch>.<tag>"``).
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        tags = weights_lib.tags(model_name)
        raise TypeError(
            "weights: expected None, a pretrained tag "
            f"{tags if tags else '(none for this model)'} or a file path, got {weights!r}"
        )
    if os.path.isfile(weights):
        suffixes = weights_lib.KERAS_WEIGHT_SUFFIXES + weights_lib.CHECKPOINT_SUFFIXES
        if not weights.lower().endswith(suffixes):
            raise ValueError(
                f"weights: expected a Keras weights file ({', '.join(weights_lib.KERAS_WEIGHT_SUFFIXES)}) "
                f"or a timm/torchvision checkpoint ({', '.join(weights_lib.CHECKPOINT_SUFFIXES)}), "
                f"got {weights!r}"
            )
        return Path(weights)
    row = weights_lib.resolve(model_name, weights)
    if row is None:
        raise weights_lib.unknown_weights_error(model_name, weights)
    if row.arch != model_name and _family(row.arch) != _family(model_name):
        raise ValueError(
            f"weights: {row.name} are weights of {row.arch!r}, which is not a model of "
            f"{model_name!r}'s family; build {row.arch!r} instead"
        )
    return row


def _family(model_name):
    try:
        return registry.model_entry(model_name).family
    except ValueError:  # a custom configuration of a family builder
        return None


def is_pretrained(model_name, weights):
    """Whether ``weights`` names a pretrained tag (not a file) for ``model_name``."""
    return isinstance(_resolve_weights(model_name, weights), weights_lib.Weights)


def _layer_fingerprint(model):
    """The names and shapes of ``model``'s weights, hashed: what a cached
    conversion must have been made for."""
    text = "\n".join(f"{w.path}:{tuple(w.shape)}" for w in model.weights)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _mapping(row):
    return convert_common.family_module(registry.model_entry(row.arch).family)


def _load_checkpoint(model, path, mapping):
    convert_common.convert_into(model, convert_common.load_state_dict(path), mapping)


def _load_pretrained(model, row, include_top):
    """Loads ``row`` into ``model``: keras.applications' file as it is, a
    timm/torchvision checkpoint through its cached conversion."""
    if row.format == "keras-h5":
        weights_lib.load_weights_file(model, weights_lib.keras_file(row, include_top))
        return
    mapping = _mapping(row)

    def convert(source, dest):
        _load_checkpoint(model, source, mapping)
        model.save_weights(dest)

    path = weights_lib.converted_file(
        row,
        include_top=include_top,
        fingerprint=_layer_fingerprint(model),
        converter_version=convert_common.converter_version(mapping),
        convert=convert,
    )
    weights_lib.load_weights_file(model, path)


def _check_classifier_activation(classifier_activation, pretrained_top):
    if classifier_activation is not None and not (
        isinstance(classifier_activation, str) or callable(classifier_activation)
    ):
        raise TypeError(
            "classifier_activation: expected None, an activation name or a callable, "
            f"got {classifier_activation!r}"
        )
    if isinstance(classifier_activation, str):
        try:
            keras.activations.get(classifier_activation)
        except ValueError:
            raise ValueError(
                f"classifier_activation: unknown activation {classifier_activation!r}"
            ) from None
    if pretrained_top and classifier_activation not in (None, "softmax", keras.activations.softmax):
        raise ValueError(
            "classifier_activation: only None and 'softmax' are allowed with pretrained "
            f"weights and include_top=True, got {classifier_activation!r}"
        )


def obtain_input_shape(input_shape, *, default_size, min_size, require_flatten, pretrained):
    """keras.applications' input-shape rules (channels_last).

    Without an ``input_shape`` the default is ``(default_size, default_size,
    3)`` when the head needs a static shape or weights are pretrained, else
    ``(None, None, 3)``. Pretrained weights need 3 channels, and with the top
    the default size exactly. Sides must be at least ``min_size``.
    """
    if input_shape is None:
        if require_flatten:
            return (default_size, default_size, 3)
        return (None, None, 3)
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            "input_shape: expected a tuple of three integers (height, width, channels), "
            f"got {input_shape!r}"
        )
    input_shape = tuple(input_shape)
    for dim in input_shape:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise ValueError(
                f"input_shape: expected positive integers or None, got {input_shape!r}"
            )
    height, width, channels = input_shape
    if channels is None:
        raise ValueError(f"input_shape: the channel dimension must be set, got {input_shape!r}")
    if pretrained and channels != 3:
        raise ValueError(
            f"input_shape: pretrained weights need 3 input channels, got {input_shape!r}"
        )
    default_shape = (default_size, default_size, 3)
    if pretrained and require_flatten and input_shape != default_shape:
        raise ValueError(
            f"input_shape: with pretrained weights and include_top=True it must be "
            f"{default_shape}, got {input_shape!r}"
        )
    if any(side is not None and side < min_size for side in (height, width)):
        raise ValueError(
            f"input_shape: height and width must be at least {min_size}, got {input_shape!r}"
        )
    if require_flatten and None in input_shape:
        raise ValueError(
            f"input_shape: include_top=True needs a static input shape, got {input_shape!r}"
        )
    return input_shape


def _input_tensor_shape(input_tensor, input_shape):
    if not keras.backend.is_keras_tensor(input_tensor):
        raise TypeError(
            "input_tensor: expected a Keras tensor such as keras.Input(shape=(224, 224, 3)), "
            f"got {type(input_tensor).__name__}"
        )
    if len(input_tensor.shape) != 4:
        raise ValueError(
            "input_tensor: expected a 4D tensor (batch, height, width, channels), "
            f"got shape {tuple(input_tensor.shape)}"
        )
    tensor_shape = tuple(input_tensor.shape[1:])
    if input_shape is not None and tuple(input_shape) != tensor_shape:
        raise ValueError(
            f"input_shape: {tuple(input_shape)!r} disagrees with input_tensor's shape "
            f"{tensor_shape!r}; pass one of them"
        )
    return tensor_shape


def classifier_head(x, *, include_top, pooling, classes, classifier_activation, dropout_rate=0.0):
    """keras.applications' head: global average pool and a Dense classifier
    (with dropout between them where an architecture has it: pass
    ``head=functools.partial(classifier_head, dropout_rate=...)``).

    Without the top, ``pooling`` "avg"/"max" adds a global pool, ``None``
    returns the last feature map.
    """
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name="head_drop")(x)
        return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


# Keras maps (and saves and loads) a functional graph recursively, a frame or
# two per block along the shortcuts: ResNet-1202 needs more than Python's
# default of 1,000. The limit is process-wide and stays raised, so that the
# model can be saved and loaded again later in the same process.
MIN_RECURSION_LIMIT = 10_000


def ensure_recursion_limit():
    """Raises Python's recursion limit to :data:`MIN_RECURSION_LIMIT` (building,
    saving and loading a very deep model all recurse that deep)."""
    if sys.getrecursionlimit() < MIN_RECURSION_LIMIT:
        sys.setrecursionlimit(MIN_RECURSION_LIMIT)


def application(
    features,
    *,
    model_name,
    default_size,
    min_size,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    name,
    head=classifier_head,
):
    """Builds a keras.applications-style model around ``features``.

    Args:
        features: ``features(inputs) -> tensor``, the architecture's body.
        model_name: the registry name, used to look up pretrained weights.
        default_size, min_size: the input-shape rules of this architecture.
        head: ``head(x, include_top=, pooling=, classes=, classifier_activation=)``;
            the keras.applications head by default.
        The other arguments are keras.applications' own.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            f"{model_name} supports only the 'channels_last' image data format, "
            f"got {keras.config.image_data_format()!r}"
        )
    checks.boolean(include_top, "include_top")
    checks.one_of(pooling, "pooling", POOLING_VALUES)
    checks.positive_int(classes, "classes")
    checks.string(name, "name")
    resolved = _resolve_weights(model_name, weights)
    pretrained = isinstance(resolved, weights_lib.Weights)
    if pretrained and include_top and classes != resolved.classes:
        raise ValueError(
            f"classes: weights={weights!r} with include_top=True has {resolved.classes} "
            f"classes, got classes={classes}"
        )
    _check_classifier_activation(classifier_activation, pretrained and include_top)
    if input_tensor is not None:
        input_shape = _input_tensor_shape(input_tensor, input_shape)
    input_shape = obtain_input_shape(
        input_shape,
        default_size=default_size,
        min_size=min_size,
        require_flatten=include_top,
        pretrained=pretrained,
    )

    if input_tensor is None:
        inputs = img_input = keras.Input(shape=input_shape)
    else:
        img_input = input_tensor
        sources = keras.utils.get_source_inputs(input_tensor)
        # One source: the model takes a tensor, not a one-element list.
        inputs = sources[0] if len(sources) == 1 else sources
    x = features(img_input)
    x = head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    ensure_recursion_limit()
    model = keras.Model(inputs, x, name=name)

    if pretrained:
        _load_pretrained(model, resolved, include_top)
    elif resolved is not None and str(resolved).lower().endswith(weights_lib.CHECKPOINT_SUFFIXES):
        _load_checkpoint(model, resolved, convert_common.family_module(_family(model_name), "weights"))
    elif resolved is not None:
        weights_lib.load_weights_file(model, resolved)
    return model


KERAS_ARGUMENTS = (
    "include_top",
    "weights",
    "input_tensor",
    "input_shape",
    "pooling",
    "classes",
    "classifier_activation",
    "name",
)


def keras_arguments(namespace):
    """keras.applications' arguments picked from a builder's ``locals()``, to
    pass on to :func:`application` unchanged."""
    return {key: namespace[key] for key in KERAS_ARGUMENTS}


def variant_builder(family_builder, variant, title, config, *, default_weights=None, doc=None):
    """A public builder for one row of a family's variant table.

    It takes keras.applications' arguments (``weights`` defaulting to
    ``default_weights``, ``name`` to ``variant``) and any further knob of
    ``family_builder`` except those ``config`` fixes, and calls
    ``family_builder(**config, model_name=variant, ...)``: the registry name
    travels down to the contract (pretrained weights are looked up by it).
    """

    def builder(
        include_top=True,
        weights=default_weights,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=1000,
        classifier_activation="softmax",
        name=variant,
        **knobs,
    ):
        fixed = sorted(set(knobs) & set(config))
        if fixed:
            raise TypeError(
                f"{fixed[0]}: {variant} fixes it to {config[fixed[0]]!r}; build other "
                f"configurations with {family_builder.__name__}(...)"
            )
        return family_builder(**config, **keras_arguments(locals()), model_name=variant, **knobs)

    builder.__name__ = builder.__qualname__ = title
    builder.__module__ = family_builder.__module__  # the family's module: docs, listings, its preprocess_input
    builder.__doc__ = doc or f"{title}: ``{family_builder.__name__}`` with {config}."
    builder.family_builder = family_builder  # the code it runs: what a contract test covers
    return builder


def registered_variant(
    family_builder, variant, title, config, *, family, default_size, min_size, default_weights=None, doc=None
):
    """:func:`variant_builder`, registered as ``variant`` in ``family``; returns the builder."""
    builder = variant_builder(family_builder, variant, title, config, default_weights=default_weights, doc=doc)
    return registry.register(variant, builder, family=family, default_size=default_size, min_size=min_size)


def register_family(family_builder, family, titles, *, doc, default_weights=None):
    """The public builders of ``family`` (a :class:`~keras_ultradeep.registry.Family`),
    registered, in the order of ``titles``.

    Args:
        family_builder: the family's builder; it takes each row of
            ``family.variants`` and ``model_name``.
        titles: ``{registry name: builder name}`` (``{"resnet50_keras": "ResNet50"}``).
        doc: ``doc(title, variant, config) -> str``, each builder's docstring.
        default_weights: ``{registry name: tag}`` for the builders whose
            ``weights`` default to a pretrained tag (keras.applications' own).
    """
    default_weights = default_weights or {}
    registry.declare(family)
    return tuple(
        registered_variant(
            family_builder, variant, title, family.variants[variant],
            family=family.name, default_size=family.default_size, min_size=family.min_size,
            default_weights=default_weights.get(variant), doc=doc(title, variant, family.variants[variant]),
        )
        for variant, title in titles.items()
    )


def pretrained_option(model_name, weights, key, default):
    """An architecture option that a pretrained checkpoint was trained with.

    timm and keras.applications sometimes differ in details that are not
    weights (BatchNorm epsilon, say); the manifest entry records them under
    ``architecture`` and a builder uses this when the user leaves the option
    unset.
    """
    if not isinstance(weights, str) or os.path.isfile(weights):
        return default
    row = weights_lib.resolve(model_name, weights, warn=False)
    return row.architecture.get(key, default) if row is not None else default


def _affine_preprocessing(preprocess):
    """mean, std (on [0, 1]) and channel order of an affine ``preprocess_input``,
    read off its outputs for a few probe pixels."""
    import numpy as np

    probe = np.array([[[[0.0, 0.0, 0.0], [255.0, 255.0, 255.0], [10.0, 100.0, 200.0]]]], "float32")
    out = np.asarray(keras.ops.convert_to_numpy(preprocess(probe.copy())), "float64")[0, 0]
    slope = (out[1] - out[0]) / 255.0  # per output channel: y = slope * pixel + offset
    std = 1.0 / (255.0 * slope)
    mean = -out[0] * std
    order = "BGR" if np.allclose(out[2], slope * probe[0, 0, 2, ::-1] + out[0], atol=1e-3) else "RGB"
    if order == "BGR":  # the constants in the input's (RGB) order
        mean, std = mean[::-1], std[::-1]
    return {
        "mean": tuple(round(float(v), 6) for v in mean),
        "std": tuple(round(float(v), 6) for v in std),
        "channel_order": order,
    }


def data_config(name_or_tag):
    """How to prepare images for a model or a pretrained tag, as timm's data config.

    ``name_or_tag`` is a registry name (``"resnet50"``: its default weights'
    config, or its family's preprocessing when it has no weights), a tag
    (``"inception_v4.tf_in1k"``, ``"timm/dpn68b.ra_in1k"``) or ``"<name>.imagenet"``.

    Returns:
        ``{"input_size": (H, W, 3), "test_input_size": (H, W, 3),
        "interpolation": "bilinear" | "bicubic", "crop_pct": float,
        "crop_mode": "center", "mean": (r, g, b), "std": (r, g, b),
        "channel_order": "RGB" | "BGR"}``: mean and std on the [0, 1] pixel
        scale (``(pixels / 255 - mean) / std``), channels-last sizes;
        ``channel_order`` is ``"BGR"`` only for keras.applications' caffe-mode
        files, which also take their channels reversed.
    """
    arch, tag = registry.split_name(name_or_tag)
    row = weights_lib.resolve(arch, tag or "imagenet", warn=False)
    if row is None and tag is not None:
        raise weights_lib.unknown_weights_error(arch, tag).with_traceback(None)
    if row is not None:
        return row.data_config()
    entry = registry.model_entry(arch)
    module = sys.modules[entry.builder.__module__]
    size = (entry.default_size, entry.default_size, 3)
    preprocess = getattr(module, "preprocess_input", None)
    scale = (
        _affine_preprocessing(preprocess)
        if preprocess is not None
        else {"mean": (0.0, 0.0, 0.0), "std": (1 / 255,) * 3, "channel_order": "RGB"}
    )
    return {
        "input_size": size,
        "test_input_size": size,
        "interpolation": "bilinear",
        "crop_pct": 0.875,
        "crop_mode": "center",
        **scale,
    }


def preprocess_input(x, data_format=None, *, mode):
    """keras.applications' ``preprocess_input`` for ``mode`` caffe/tf/torch."""
    checks.one_of(mode, "mode", PREPROCESS_MODES)
    return keras.applications.imagenet_utils.preprocess_input(x, data_format=data_format, mode=mode)


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions: a list of ``(class_id, name, score)`` per sample."""
    return keras.applications.imagenet_utils.decode_predictions(preds, top=top)
