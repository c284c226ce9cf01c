"""Stage outputs of a backbone as a dict, from one call (timm's ``features_only``).

``feature_extractor("resnet50", input_shape=(224, 224, 3))`` returns a Keras
model whose output is ``{"stage1_s4": ..., "stage2_s8": ..., "stage3_s16": ...,
"stage4_s32": ...}``: each stage's last output, keyed by the stage's position
and its reduction of the input (``s4``: a quarter of the input's side).

The stages are not guessed from layer names: every family declares them once,
in its :class:`~keras_ultradeep.registry.Family` record (``stages``: for a
variant's configuration, the layer that ends each stage and its reduction, as
timm's ``feature_info``). A built model is matched to its registry entry by
``model.name`` (builders name models after their registry variant), or by the
``registry_name`` it is given.
"""

from __future__ import annotations

__all__ = ["feature_extractor", "stage_layers"]


def _declared_stages(model, registry_name):
    from keras_ultradeep import registry

    if registry_name is None:
        try:
            registry_name = registry.resolve_name(model.name)
        except ValueError:
            raise ValueError(
                f"model: {model.name!r} is not a registered model name, so its stages are unknown; "
                "pass registry_name (the registry name it was built as) or layer_names"
            ) from None
    stages = registry.feature_stages(registry_name)
    missing = [name for name, _ in stages if name not in {layer.name for layer in model.layers}]
    if missing:
        raise ValueError(
            f"registry_name: {registry_name!r} declares stage layer {missing[0]!r}, which model "
            f"{model.name!r} lacks; pass the registry name it was built as, or layer_names"
        )
    return stages


def stage_layers(model, registry_name=None):
    """``[(stage, layer name)]``: the layer whose output ends each stage, in
    order, as the model's family declares them (see :func:`feature_extractor`)."""
    return [(f"stage{i + 1}", name) for i, (name, _) in enumerate(_declared_stages(model, registry_name))]


def feature_extractor(model, layer_names=None, *, registry_name=None, **model_kwargs):
    """A model returning the stage outputs of ``model`` as a dict.

    Args:
        model: a built Keras model, or a registry name (built with
            ``include_top=False`` and ``model_kwargs``).
        layer_names: the layers to return, in order; default: every stage's
            output, as the model's family declares them.
        registry_name: the registry name that a built ``model`` is a variant
            of, when ``model.name`` is not one (a renamed model).
        **model_kwargs: ``create_model`` arguments when ``model`` is a name.

    Returns:
        A ``keras.Model`` with the same inputs whose output is a dict
        ``{f"stage{i}_s{reduction}": tensor}`` (or ``{layer name: tensor}``
        for ``layer_names``).
    """
    import keras

    from keras_ultradeep import registry

    if isinstance(model, str):
        if "include_top" in model_kwargs:
            raise ValueError("model_kwargs: include_top cannot be set; a feature extractor has no head")
        if registry_name is not None:
            raise TypeError("registry_name: only for a built model; model is already a registry name")
        registry_name = registry.resolve_name(model)
        model = registry.create_model(model, include_top=False, **model_kwargs)
    elif model_kwargs:
        raise TypeError(f"model_kwargs: only for a registry name, got a model and {sorted(model_kwargs)}")
    if not isinstance(model, keras.Model):
        raise TypeError(f"model: expected a keras.Model or a registry name, got {model!r}")
    if registry_name is not None and not isinstance(registry_name, str):
        raise TypeError(f"registry_name: expected a registry name string, got {registry_name!r}")

    if layer_names is None:
        stages = _declared_stages(model, registry_name)
        keys = [f"stage{i + 1}_s{reduction}" for i, (_, reduction) in enumerate(stages)]
        layer_names = [name for name, _ in stages]
    else:
        if isinstance(layer_names, str) or not all(isinstance(n, str) for n in layer_names):
            raise TypeError(f"layer_names: expected a list of layer names, got {layer_names!r}")
        known = {layer.name for layer in model.layers}
        unknown = [name for name in layer_names if name not in known]
        if unknown:
            raise ValueError(f"layer_names: no layer {unknown[0]!r} in model {model.name!r}")
        keys = list(layer_names)
    tensors = [model.get_layer(name).output for name in layer_names]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, dict(zip(keys, tensors)), name=f"{model.name}_features")
