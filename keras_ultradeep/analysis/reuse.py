"""Feature reuse in a DenseNet (Huang, Liu, van der Maaten, Weinberger 2017, Fig. 5).

Within a dense block, layer l's first convolution sees the concatenation of
the block input and the maps of layers 1..l-1; the average absolute weight
it gives each of those sources says how much it reuses them. Their trained
DenseNet (L=40, k=12) spread weight over many earlier layers, the transition
layers gave weight to all of their block's layers, and the classifier
concentrated on the last few maps.

The blocks are read from the graph: a dense block is a chain of two-input
``Concatenate`` layers, each called on ``[maps so far, the new layer's
maps]``; a layer's (and the transition's) weights are those of the first
convolution (or the classifier's ``Dense``) its input reaches through
channel-wise layers (BatchNorm, activations, dropout, pooling).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_ultradeep.analysis.structure import Graph, check_model

__all__ = ["feature_reuse"]

_CHANNELWISE = (
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.Dropout,
    keras.layers.ZeroPadding2D,
    keras.layers.AveragePooling2D,
    keras.layers.MaxPooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)


def _consumer(graph, name, channels):
    """The first Conv2D/Dense fed by ``name``'s output through channel-wise layers only."""
    frontier = [child for child in graph.children[name] if not isinstance(graph.layer(child), keras.layers.Concatenate)]
    while frontier:
        frontier.sort(key=graph.index.get)
        child = frontier.pop(0)
        layer = graph.layer(child)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = np.asarray(layer.get_weights()[0])
            if kernel.shape[-2] == channels:
                return child, kernel
        elif isinstance(layer, _CHANNELWISE):
            frontier.extend(graph.children[child])
    return None, None


def _chains(graph):
    concats = {
        name for name in graph.order
        if isinstance(graph.layer(name), keras.layers.Concatenate) and len(graph.parents[name]) == 2
    }
    chains = []
    for name in graph.order:
        if name in concats and graph.parents[name][0][0] not in concats:
            chain = [name]
            while True:
                following = [c for c in graph.children[chain[-1]] if c in concats and graph.parents[c][0][0] == chain[-1]]
                if not following:
                    break
                chain.append(following[0])
            if len(chain) >= 2:  # one concatenation is an Inception-style join, not a dense block
                chains.append(chain)
    return chains


def feature_reuse(model):
    """Per dense block, the average absolute weight each layer puts on each earlier source.

    Returns:
        ``{"analysis": "reuse", "model", "blocks": [{"sources", "targets",
        "weights"}]}``, per block: the sources (the block input, then layers
        1 .. L), the targets (layers 1 .. L, then the transition or classifier
        when one follows the block; each named by its first convolution) and,
        for target t, a row whose entry s is the mean absolute weight of t's
        first convolution over the input channels of source s (``None`` where
        s is not an input of t, i.e. s > t).

    Raises ``ValueError`` for a model without dense blocks.
    """
    check_model(model)
    graph = Graph(model)
    blocks = []
    for chain in _chains(graph):
        head = graph.parents[chain[0]][0]
        sources = [head] + [graph.parents[c][1] for c in chain]
        widths = [graph.shapes[ref][-1] for ref in sources]
        inputs = [graph.parents[c][0] for c in chain] + [(chain[-1], 0)]
        rows, targets = [], []
        for t, ref in enumerate(inputs):
            channels = sum(widths[: t + 1])
            target, kernel = _consumer(graph, ref[0], channels)
            if target is None:
                if t == len(chain):
                    break  # nothing weighted follows the block
                raise ValueError(f"model: dense layer {t + 1} after {ref[0]!r} has no convolution on its input")
            magnitude = np.abs(kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]))
            edges = np.cumsum([0] + widths[: t + 1])
            row = [float(magnitude[:, edges[s]:edges[s + 1], :].mean()) for s in range(t + 1)]
            rows.append(row + [None] * (len(sources) - len(row)))
            targets.append(target)
        blocks.append({"sources": [ref[0] for ref in sources], "targets": targets, "weights": rows})
    if not blocks:
        raise ValueError(
            f"model: {model.name!r} has no dense blocks (chains of Concatenate layers called on "
            "[maps so far, new maps])"
        )
    return {"analysis": "reuse", "model": model.name, "blocks": blocks}
