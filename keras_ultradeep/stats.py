"""A model's cost: multiply-accumulates of its convolutions and dense layers.

``count_macs(model)`` follows the papers' convention (ResNet-50 "3.8 x 10^9
FLOPs", timm's GMACs): one multiply-add per kernel weight per output
position, for every convolution and fully connected layer; BatchNorm,
activations, pooling, additions and concatenations are not counted (a few
percent at most). It reads the kernels and the output shapes of the built
functional model, so it needs a static input size and handles any layer that
holds kernels, ours included:

* a rank-4 kernel ``(kh, kw, in / groups, out)`` (``Conv2D``,
  ``GroupedConv2D``, ``DepthwiseConv2D``, a highway layer's two convolutions)
  costs ``H_out * W_out * kh * kw * in / groups * out``;
* a rank-2 kernel ``(in, out)`` (``Dense``) costs ``in * out`` per position.
"""

from __future__ import annotations

import math

__all__ = ["count_macs", "parameter_counts"]


def _output_positions(layer):
    shape = layer.output.shape
    if any(side is None for side in shape[1:]):
        raise ValueError(
            f"model: layer {layer.name!r} has output shape {tuple(shape)}; counting needs a static "
            "input size (build the model with input_shape=(H, W, C))"
        )
    return shape


def count_macs(model):
    """Multiply-accumulates of one forward pass for one image (an int)."""
    total = 0
    for layer in model.layers:
        kernels = [w for w in layer.weights if w.trainable and len(w.shape) in (2, 4)]
        kernels = [w for w in kernels if w.path.rsplit("/", 1)[-1].startswith("kernel") or len(w.shape) == 4]
        if not kernels:
            continue
        if hasattr(layer, "layers") and layer.layers:  # a nested model: count its own layers
            total += count_macs(layer)
            continue
        shape = _output_positions(layer)
        positions = math.prod(shape[1:-1])
        total += sum(positions * math.prod(kernel.shape) for kernel in kernels)
    return total


def parameter_counts(model):
    """``{"total", "trainable", "non_trainable"}`` parameter counts of a built model."""
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = model.count_params()
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}
