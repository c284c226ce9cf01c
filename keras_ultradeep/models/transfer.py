"""Moving weights between two builds of one architecture.

Some weights files do not load into the model asked for as they are: a
DenseNet's naive and memory-efficient forms keep the same variables under
other layers, and pretrained Inception v3 files hold no auxiliary head. The
model that can read the file loads it, and its weights are copied over.
"""

from __future__ import annotations

__all__ = ["copy_by_path", "copy_by_layer_name", "load_through"]


def copy_by_path(source, target):
    """Copies every variable of ``source`` into the variable of ``target`` with the same path.

    The two models must hold the same variables (paths), however their layers
    group them.
    """
    values = {variable.path: variable for variable in source.weights}
    targets = target.weights
    missing = [variable.path for variable in targets if variable.path not in values]
    if missing or len(values) != len(targets):
        raise ValueError(
            f"source: {source.name!r} and {target.name!r} have different variables "
            f"(e.g. {missing[:3] or sorted(set(values) - {v.path for v in targets})[:3]})"
        )
    for variable in targets:
        variable.assign(values[variable.path])


def copy_by_layer_name(source, target):
    """Copies the weights of every layer of ``source`` into ``target``'s layer of the same name
    (``target`` may have more layers, an auxiliary head say)."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def load_through(load_source, build_target, copy):
    """``build_target()`` holding the weights of ``load_source()``, moved by ``copy(source, target)``."""
    source = load_source()
    target = build_target()
    copy(source, target)
    return target
