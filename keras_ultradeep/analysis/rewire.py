"""New models from a model's own layers, with blocks removed or gated.

Every model here is rebuilt with ``keras.models.clone_model`` calling the
*same* layer objects (so the same weights, BatchNorm statistics included) on
new inputs; only the calls of a lesioned merge or unit change. No Lambda
layers: a lesioned block's merge is simply not called, and a gate is a
registered layer (:mod:`keras_ultradeep.layers.gates`).
"""

from __future__ import annotations

import keras

from keras_ultradeep.analysis.structure import Graph, chain_units, residual_blocks
from keras_ultradeep.layers import BypassGate, ResidualGate

__all__ = ["lesion", "remove_units", "gated_residual", "gated_chain", "select"]


def _shared(layer):
    return layer


def _clone(model, call, name):
    clone = keras.models.clone_model(model, clone_function=_shared, call_function=call)
    return keras.Model(clone.inputs, clone.outputs, name=name)


def select(items, chosen, argument, what):
    """The items named (by name or position) in ``chosen``; a clear error for unknown ones."""
    if isinstance(chosen, (int, str)) and not isinstance(chosen, bool):
        chosen = [chosen]
    try:
        chosen = list(chosen)
    except TypeError:
        raise TypeError(f"{argument}: expected {what} indices or names, got {chosen!r}") from None
    names = [item.merge if hasattr(item, "merge") else item.first for item in items]
    picked = []
    for value in chosen:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"{argument}: expected {what} indices or names, got {value!r}")
        if isinstance(value, int):
            if not -len(items) <= value < len(items):
                raise ValueError(f"{argument}: index {value} out of range for {len(items)} {what}s")
            picked.append(items[value])
        elif value in names:
            picked.append(items[names.index(value)])
        else:
            raise ValueError(f"{argument}: {value!r} is not one of the model's {what}s {names[:4]}...")
    return picked


def lesion(model, blocks, name=None):
    """``model`` with the residual blocks ``blocks`` removed (Veit et al. 2016).

    A removed block outputs its shortcut: the identity, or its projection (or
    zero-padding) where the block changes the shape; whatever follows the
    merge (a ReLU in ResNet v1) still applies. The new model shares
    ``model``'s layers and weights.

    Args:
        model: a functional model with residual blocks (built or loaded).
        blocks: block indices (in data-flow order, see
            :func:`~keras_ultradeep.analysis.residual_blocks`) or merge-layer
            names; one or several.
        name: the new model's name; default ``{model.name}_lesioned``.
    """
    graph = Graph(model)
    removed = {block.merge: block for block in select(residual_blocks(graph), blocks, "blocks", "block")}

    def call(layer, *args, **kwargs):
        if layer.name in removed:
            return args[0][removed[layer.name].shortcut_index]
        return layer(*args, **kwargs)

    return _clone(model, call, name or f"{model.name}_lesioned")


def remove_units(model, units, name=None):
    """A plain network with the chain units ``units`` removed: each feeds its
    input straight to what followed it (Veit et al.'s VGG comparison)."""
    graph = Graph(model)
    removed = {unit.first: unit for unit in select(chain_units(graph), units, "units", "unit")}
    by_last = {unit.last: unit for unit in removed.values()}
    inputs = {}

    def call(layer, *args, **kwargs):
        if layer.name in removed:
            inputs[layer.name] = args[0]
        output = layer(*args, **kwargs)
        if layer.name in by_last:
            return inputs[by_last[layer.name].first]
        return output

    return _clone(model, call, name or f"{model.name}_lesioned")


def gated_residual(model):
    """``(model with a ResidualGate in front of every residual merge, [gates], [blocks])``."""
    graph = Graph(model)
    blocks = residual_blocks(graph)
    by_merge = {block.merge: block for block in blocks}
    gates = {}

    def call(layer, *args, **kwargs):
        block = by_merge.get(layer.name)
        if block is None:
            return layer(*args, **kwargs)
        pair = list(args[0])
        gate = ResidualGate(name=f"{layer.name}_analysis_gate")
        shortcut, residual = gate([pair[block.shortcut_index], pair[block.residual_index]])
        pair[block.shortcut_index], pair[block.residual_index] = shortcut, residual
        gates[layer.name] = gate
        return layer(pair, *args[1:], **kwargs)

    gated = _clone(model, call, f"{model.name}_gated")
    return gated, [gates[block.merge] for block in blocks], blocks


def gated_chain(model):
    """``(model with a BypassGate after every removable chain unit, [gates], [units])``."""
    graph = Graph(model)
    units = chain_units(graph)
    by_first = {unit.first: unit for unit in units}
    by_last = {unit.last: unit for unit in units}
    inputs, gates = {}, {}

    def call(layer, *args, **kwargs):
        if layer.name in by_first:
            inputs[layer.name] = args[0]
        output = layer(*args, **kwargs)
        unit = by_last.get(layer.name)
        if unit is not None:
            gate = BypassGate(name=f"{unit.first}_analysis_gate")
            gates[unit.first] = gate
            output = gate([inputs[unit.first], output])
        return output

    gated = _clone(model, call, f"{model.name}_gated")
    return gated, [gates[unit.first] for unit in units], units
