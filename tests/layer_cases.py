"""Every custom layer of the package, in a tiny model: the shared layer harness's table.

Each case builds a small functional model around one layer (with the layer's
typical non-default options) and sample inputs for it. test_layer_harness.py
runs the same checks over every case (config round trip, .keras save and
safe-mode load, XLA, mixed precision); each layer's own test file keeps only
what is particular to it (its formula, its reference implementation, its
errors). A layer exported by keras_ultradeep.layers without a case here fails
test_every_layer_has_a_case.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np

from keras_ultradeep import layers as ku_layers


@dataclasses.dataclass(frozen=True)
class LayerCase:
    layer: str  # the class name, as exported by keras_ultradeep.layers
    model: Callable[[], keras.Model]
    input_shapes: tuple  # per input, without the batch dimension
    random_in_training: bool = False  # drop-path / stochastic depth: compare inference only

    def inputs(self, rng, batch=2):
        arrays = [rng.standard_normal((batch, *shape)).astype("float32") for shape in self.input_shapes]
        return arrays[0] if len(arrays) == 1 else arrays


def _single(layer_fn, shape):
    def build():
        x = keras.Input(shape)
        return keras.Model(x, layer_fn()(x))

    return build


def _pair(layer_fn, shape):
    """A merge layer called on [shortcut, residual]."""

    def build():
        shortcut, residual = keras.Input(shape), keras.Input(shape)
        branch = keras.layers.Conv2D(shape[-1], 1, name="branch")(residual)
        return keras.Model([shortcut, residual], layer_fn()([shortcut, branch]))

    return build


def _fractal_join():
    x = keras.Input((4, 4, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(x)
    b = keras.layers.Conv2D(4, 1, name="b")(x)
    selection = ku_layers.DropPathSampler(2, global_drop_path=0.5, seed=1, name="sampler")(x)
    joined = ku_layers.FractalJoin(local_drop_path=0.15, columns=[0, 1], seed=2, name="join")(
        [a, b], selection=selection
    )
    return keras.Model(x, joined)


def _dense_bottleneck():
    a, b = keras.Input((4, 4, 3)), keras.Input((4, 4, 5))
    out = ku_layers.DenseBottleneck(6, input_channels=[3, 5], name="bottleneck")([a, b])
    return keras.Model([a, b], out)


def _channel_split():
    x = keras.Input((3, 3, 6))
    first, second = ku_layers.ChannelSplit(4, name="split")(x)
    return keras.Model(x, keras.layers.Concatenate()([second, first]))


def _lenet_c3():
    x = keras.Input((14, 14, 6))
    return keras.Model(x, ku_layers.ConnectionTableConv2D(activation="tanh", name="c3")(x))


def _rbf():
    x = keras.Input((84,))
    return keras.Model(x, ku_layers.EuclideanRBF(10, seed=3, name="rbf")(x))


def _gates():
    """A residual gate in front of a merge, and a bypass gate around the merged block, both half open."""
    x = keras.Input((3, 3, 4))
    branch = keras.layers.Conv2D(4, 1, name="branch")(x)
    residual_gate, bypass = ku_layers.ResidualGate(name="gate"), ku_layers.BypassGate(name="bypass")
    shortcut, residual = residual_gate([x, branch])
    merged = keras.layers.Add(name="merge")([shortcut, residual])
    model = keras.Model(x, bypass([x, merged]))
    residual_gate.keep.assign(0.5)
    residual_gate.route.assign(1.0)
    bypass.keep.assign(0.25)
    return model


CASES = (
    LayerCase("AdaptiveAveragePooling2DTorch", _single(
        lambda: ku_layers.AdaptiveAveragePooling2DTorch(3, name="pool"), (7, 5, 2)), ((7, 5, 2),)),
    LayerCase("BypassGate", _gates, ((3, 3, 4),)),
    LayerCase("ChannelSplit", _channel_split, ((3, 3, 6),)),
    LayerCase("ConnectionTableConv2D", _lenet_c3, ((14, 14, 6),)),
    LayerCase("DenseBottleneck", _dense_bottleneck, ((4, 4, 3), (4, 4, 5))),
    LayerCase("DropPathSampler", _fractal_join, ((4, 4, 3),), random_in_training=True),
    LayerCase("EuclideanRBF", _rbf, ((84,),)),
    LayerCase("FractalJoin", _fractal_join, ((4, 4, 3),), random_in_training=True),
    LayerCase("GroupedConv2D", _single(
        lambda: ku_layers.GroupedConv2D(8, 3, groups=4, strides=2, padding="same", name="gconv"),
        (5, 5, 8)), ((5, 5, 8),)),
    LayerCase("HighwayConv2D", _single(
        lambda: ku_layers.HighwayConv2D(3, gate_bias=-1.0, name="highway"), (4, 4, 3)), ((4, 4, 3),)),
    LayerCase("LocalResponseNormalization", _single(
        lambda: ku_layers.LocalResponseNormalization(5, alpha=1e-2, beta=0.75, k=2.0, name="lrn"),
        (3, 3, 7)), ((3, 3, 7),)),
    LayerCase("ResidualGate", _gates, ((3, 3, 4),)),
    LayerCase("ResidualScaling", _pair(
        lambda: ku_layers.ResidualScaling(0.17, name="scale"), (3, 3, 4)), ((3, 3, 4), (3, 3, 4))),
    LayerCase("StochasticDepth", _pair(
        lambda: ku_layers.StochasticDepth(0.8, seed=4, name="sd"), (3, 3, 4)), ((3, 3, 4), (3, 3, 4)),
        random_in_training=True),
    LayerCase("Subsampling2D", _single(
        lambda: ku_layers.Subsampling2D(2, name="s2"), (6, 6, 3)), ((6, 6, 3),)),
    LayerCase("SymmetricMaxPooling2D", _single(
        lambda: ku_layers.SymmetricMaxPooling2D(3, 2, 1, name="maxpool"), (7, 7, 2)), ((7, 7, 2),)),
    LayerCase("ZeroPadShortcut", _single(
        lambda: ku_layers.ZeroPadShortcut(6, strides=2, name="zeropad"), (4, 4, 3)), ((4, 4, 3),)),
)


def to_numpy(x):
    if isinstance(x, (list, tuple)):
        return [to_numpy(v) for v in x]
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float32")
