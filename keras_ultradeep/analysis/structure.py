"""The structure the analyses work from, read off a functional model's graph.

Nothing here knows a family or a layer-naming scheme: the graph is the one a
model's ``get_config()`` declares (the same for a model just built and one
loaded from a ``.keras`` file), and a residual block is recognised by what it
computes:

* its **merge** is a two-input ``Add`` or a
  :class:`~keras_ultradeep.layers.ResidualMerge` (stochastic depth, residual
  scaling), called on the shortcut and the residual branch;
* its **block input** is the nearest layer both merge inputs descend from;
* its **shortcut** is the merge input reached from the block input through
  fewer layers: none for an identity, one for a zero-padded (option A) or
  max-pooled one, a few for a projection (conv, BatchNorm, a pad, DPN's
  split); the **residual branch** the other, strictly longer one. A
  ``ResidualMerge`` declares the order (``[shortcut, residual]``) itself.
  A shortcut is a single chain: a shorter side that itself merges tensors
  (ResNet in ResNet's transient stream) makes the Add a sum of streams,
  not a residual block.

A plain network (no residual merges) is a chain instead: its **units** are the
stretches from one convolution to the next, and those whose input and output
have one shape can be removed from the chain.
"""

from __future__ import annotations

import dataclasses

import keras

from keras_ultradeep.layers.residual import ResidualMerge

__all__ = ["Graph", "ResidualBlock", "ChainUnit", "residual_blocks", "chain_units", "check_model"]

# Layers that start the next unit of a chain (or its head).
_STARTS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.ZeroPadding2D)


def check_model(model, argument="model"):
    """``model`` if it is a functional Keras model (built or loaded)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{argument}: expected a keras.Model, got {type(model).__name__}")
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError):
        config = None
    if not isinstance(config, dict) or "layers" not in config:
        raise ValueError(f"{argument}: expected a functional keras.Model (a graph of layers), got {model.name!r}")
    return model


def _tensor_refs(value, found):
    """Appends ``(layer name, tensor index, shape)`` of every tensor reference in a serialized call."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            name, _, index = value["config"]["keras_history"]
            found.append((name, index, tuple(value["config"]["shape"])))
        else:
            for item in value.values():
                _tensor_refs(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _tensor_refs(item, found)
    return found


class Graph:
    """The layer graph of a functional model: parents, children, a
    topological order, and ancestor/descendant sets (as bit masks)."""

    def __init__(self, model):
        check_model(model)
        self.model = model
        parents = {}
        for entry in model.get_config()["layers"]:
            nodes = entry.get("inbound_nodes") or []
            if len(nodes) > 1:
                raise ValueError(
                    f"model: layer {entry['name']!r} is called {len(nodes)} times; the analyses need "
                    "each layer called once"
                )
            parents[entry["name"]] = _tensor_refs(nodes[0], []) if nodes else []
        self.parents = {name: [(parent, index) for parent, index, _ in refs] for name, refs in parents.items()}
        # (layer, output index) -> shape, for every output some layer consumes.
        self.shapes = {(p, index): shape for refs in parents.values() for p, index, shape in refs}
        parents = self.parents
        self.children = {name: [] for name in parents}
        for name, refs in parents.items():
            for parent, _ in refs:
                if name not in self.children[parent]:
                    self.children[parent].append(name)
        self.order = self._topological(parents)
        self.index = {name: i for i, name in enumerate(self.order)}
        self.ancestors = {}  # strict, as a bit mask over self.order
        for name in self.order:
            mask = 0
            for parent, _ in parents[name]:
                mask |= self.ancestors[parent] | (1 << self.index[parent])
            self.ancestors[name] = mask
        self.descendants = {}
        for name in reversed(self.order):
            mask = 0
            for child in self.children[name]:
                mask |= self.descendants[child] | (1 << self.index[child])
            self.descendants[name] = mask

    @staticmethod
    def _topological(parents):
        order, placed = [], set()
        pending = list(parents)
        while pending:
            remaining = []
            for name in pending:
                if all(parent in placed for parent, _ in parents[name]):
                    order.append(name)
                    placed.add(name)
                else:
                    remaining.append(name)
            if len(remaining) == len(pending):
                raise ValueError(f"model: its graph has a cycle through {remaining[:3]}")
            pending = remaining
        return order

    def layer(self, name):
        return self.model.get_layer(name)

    def names(self, mask):
        return [name for i, name in enumerate(self.order) if mask >> i & 1]

    def between(self, start, end):
        """Layers after ``start`` up to and including ``end`` (on some path from one to the other)."""
        if start == end:
            return 0
        return self.descendants[start] & (self.ancestors[end] | (1 << self.index[end]))


@dataclasses.dataclass(frozen=True)
class ResidualBlock:
    """One residual block: its merge layer, which merge input is the shortcut
    (0 or 1), the block input, and the layers of each path (block input excluded)."""

    merge: str
    shortcut_index: int
    block_input: str
    shortcut_layers: tuple
    branch_layers: tuple

    @property
    def residual_index(self):
        return 1 - self.shortcut_index


def _is_merge(layer):
    return isinstance(layer, (keras.layers.Add, ResidualMerge))


def residual_blocks(model):
    """The residual blocks of ``model``, in the order data flows through them.

    Raises ``ValueError`` for a model without residual blocks.
    """
    graph = model if isinstance(model, Graph) else Graph(model)
    blocks = []
    for name in graph.order:
        refs = graph.parents[name]
        if len(refs) != 2 or not _is_merge(graph.layer(name)):
            continue
        (a, _), (b, _) = refs
        common = (graph.ancestors[a] | 1 << graph.index[a]) & (graph.ancestors[b] | 1 << graph.index[b])
        if not common:
            continue
        start = graph.order[common.bit_length() - 1]  # the nearest: highest in topological order
        sides = [graph.between(start, a), graph.between(start, b)]
        sizes = [side.bit_count() for side in sides]
        if isinstance(graph.layer(name), ResidualMerge):
            shortcut = 0  # declared: called on [shortcut, residual]
        elif sizes[0] == sizes[1]:
            continue  # two paths of one length: a sum, not a block with a shortcut
        else:
            shortcut = 0 if sizes[0] < sizes[1] else 1
            if any(len(graph.parents[layer]) != 1 for layer in graph.names(sides[shortcut])):
                continue  # a shortcut is one chain of layers; this side merges streams itself
        blocks.append(
            ResidualBlock(
                merge=name,
                shortcut_index=shortcut,
                block_input=start,
                shortcut_layers=tuple(graph.names(sides[shortcut])),
                branch_layers=tuple(graph.names(sides[1 - shortcut])),
            )
        )
    if not blocks:
        raise ValueError(
            f"model: {graph.model.name!r} has no residual blocks (no Add or residual merge layer "
            "joining a shortcut and a longer residual branch); for a plain network use the chain "
            "analyses (kind='plain')"
        )
    return blocks


@dataclasses.dataclass(frozen=True)
class ChainUnit:
    """A stretch of a plain network's chain: ``first`` (a convolution) up to
    ``last`` (the layer before the next convolution), fed by ``source``."""

    source: str
    first: str
    last: str
    layers: tuple


def chain_units(model):
    """The removable units of a plain network: each convolution with the
    single-input layers that follow it up to the next convolution, where the
    unit's output has its input's shape (a strided or widening one cannot be
    removed without breaking the shapes)."""
    graph = model if isinstance(model, Graph) else Graph(model)
    convs = [n for n in graph.order if isinstance(graph.layer(n), keras.layers.Conv2D)]
    units = []
    for conv in convs:
        refs = graph.parents[conv]
        if len(refs) != 1:
            continue
        source = refs[0][0]
        members, last = [conv], conv
        while len(graph.children[last]) == 1:
            child = graph.children[last][0]
            if len(graph.parents[child]) != 1 or isinstance(graph.layer(child), _STARTS):
                break  # the next convolution (or its explicit padding) starts the next unit
            if len(graph.shapes[(child, 0)] if (child, 0) in graph.shapes else ()) != len(graph.shapes[(conv, 0)]):
                break  # pooling to a vector (or the output): the head starts here
            members.append(child)
            last = child
        if graph.shapes.get((last, 0)) == graph.shapes[(source, refs[0][1])]:
            units.append(ChainUnit(source=source, first=conv, last=last, layers=tuple(members)))
    if not units:
        raise ValueError(
            f"model: {graph.model.name!r} has no convolution whose removal keeps the shapes "
            "(a unit with its input's shape)"
        )
    return units
