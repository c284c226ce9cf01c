"""Stage outputs of a backbone as a dict, from one call (timm's ``features_only``).

``feature_extractor("resnet50", input_shape=(224, 224, 3))`` returns a Keras
model whose output is ``{"stage1_s4": ..., "stage2_s8": ..., "stage3_s16": ...,
"stage4_s32": ...}``: each stage's last output, keyed by the stage's position
and its reduction of the input (``s4``: a quarter of the input's side).

Every family names its stages ``conv2``, ``conv3``, ... and the blocks in them
``conv{s}_block{b}_...`` (the keras.applications convention). A stage's output
is its last block's ``_out`` (residual networks) or ``_concat`` (DenseNet)
layer; in networks that end with a BatchNorm-ReLU over the last stage
(pre-activation ResNets, DenseNet), that ReLU's output is the last stage's.

Plain stacks named as keras.applications' VGG (``block{s}_conv{n}``) end each
stage with its max-pool, ``block{s}_pool``.
"""

from __future__ import annotations

import math
import re

__all__ = ["feature_extractor", "stage_layers"]

_STAGE_OUTPUT = re.compile(r"((?:conv|level)\d+)_block(\d+)_(out|concat)")
_POOLED_STAGE_OUTPUT = re.compile(r"(block\d+)_pool")  # VGG
# Inception-v4/-ResNet blocks are named by their grid, as keras.applications'
# InceptionResNetV2 names them: block35_{b}, block17_{b}, block8_{b}; a block's
# output is its ReLU "_ac" (residual blocks) or "_concat" (Inception-v4).
_GRID_BLOCK_OUTPUT = re.compile(r"(block(?:35|17|8))_(\d+)_(ac|concat)")
_FINAL_ACTIVATIONS = ("post_relu", "relu", "conv_7b_ac")
_PROBE_SIDE = 256  # a multiple of every total stride here
# Stage outputs under keras.applications' own names, which keras-compatible
# models keep: each stage's last layer and its reduction. Inception v3's
# valid-padded convs lose pixels (75 -> 3x3 at mixed7), so its reductions are
# stated, not measured. The stem taps are timm's feature_info.
_KERAS_STAGE_OUTPUTS = {
    ("conv2b_relu", "conv4a_relu", "mixed2", "mixed7", "mixed10"): (2, 4, 8, 16, 32),  # InceptionV3
}


def stage_layers(model):
    """``[(stage, layer name)]``: the layer whose output ends each stage, in order."""
    names = {layer.name for layer in model.layers}
    for known in _KERAS_STAGE_OUTPUTS:
        if names.issuperset(known):
            return [(f"stage{i + 1}", name) for i, name in enumerate(known)]
    last = {}
    for layer in model.layers:
        match = _STAGE_OUTPUT.fullmatch(layer.name) or _GRID_BLOCK_OUTPUT.fullmatch(layer.name)
        if match:
            stage, block, _ = match.groups()
            if stage not in last or int(block) >= last[stage][0]:
                last[stage] = (int(block), layer.name)
            continue
        match = _POOLED_STAGE_OUTPUT.fullmatch(layer.name)
        if match:
            last[match.group(1)] = (0, layer.name)
    stages = [(stage, name) for stage, (_, name) in last.items()]
    if not stages:
        raise ValueError(
            f"model: {model.name!r} has no stage outputs named conv{{s}}_block{{b}}_out, "
            "_concat or block{s}_pool; pass layer_names"
        )
    names = {layer.name for layer in model.layers}
    final = next((name for name in _FINAL_ACTIVATIONS if name in names), None)
    if final is not None:
        stages[-1] = (stages[-1][0], final)
    return stages


def _reductions(model, tensors):
    import keras

    probe = keras.Model(model.inputs[0], list(tensors))
    channels = model.inputs[0].shape[-1]
    shape = model.inputs[0].shape[1:3]
    side = shape[0] if shape[0] is not None else _PROBE_SIDE
    shapes = probe.compute_output_shape((1, side, side if shape[1] is None else shape[1], channels))
    shapes = [shapes] if isinstance(shapes, tuple) and isinstance(shapes[0], (int, type(None))) else shapes
    # Powers of two: valid-padded stems (Inception) lose a few pixels, 299 -> 35.
    return [max(1, 2 ** round(math.log2(side / s[1]))) for s in shapes]


def feature_extractor(model, layer_names=None, **model_kwargs):
    """A model returning the stage outputs of ``model`` as a dict.

    Args:
        model: a built Keras model, or a registry name (built with
            ``include_top=False`` and ``model_kwargs``).
        layer_names: the layers to return, in order; default: every stage's
            output (see :func:`stage_layers`).
        **model_kwargs: ``create_model`` arguments when ``model`` is a name.

    Returns:
        A ``keras.Model`` with the same inputs whose output is a dict
        ``{f"stage{i}_s{reduction}": tensor}`` (or ``{layer name: tensor}``
        for ``layer_names``).
    """
    import keras

    if isinstance(model, str):
        from keras_ultradeep import registry

        if "include_top" in model_kwargs:
            raise ValueError("model_kwargs: include_top cannot be set; a feature extractor has no head")
        model = registry.create_model(model, include_top=False, **model_kwargs)
    elif model_kwargs:
        raise TypeError(f"model_kwargs: only for a registry name, got a model and {sorted(model_kwargs)}")
    if not isinstance(model, keras.Model):
        raise TypeError(f"model: expected a keras.Model or a registry name, got {model!r}")

    if layer_names is None:
        stages = stage_layers(model)
        tensors = [model.get_layer(name).output for _, name in stages]
        reductions = _KERAS_STAGE_OUTPUTS.get(tuple(name for _, name in stages))
        reductions = reductions or _reductions(model, tensors)
        keys = [f"stage{i + 1}_s{r}" for i, r in enumerate(reductions)]
    else:
        if isinstance(layer_names, str) or not all(isinstance(n, str) for n in layer_names):
            raise TypeError(f"layer_names: expected a list of layer names, got {layer_names!r}")
        known = {layer.name for layer in model.layers}
        unknown = [name for name in layer_names if name not in known]
        if unknown:
            raise ValueError(f"layer_names: no layer {unknown[0]!r} in model {model.name!r}")
        tensors = [model.get_layer(name).output for name in layer_names]
        keys = list(layer_names)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, dict(zip(keys, tensors)), name=f"{model.name}_features")
