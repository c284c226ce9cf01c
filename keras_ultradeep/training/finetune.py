"""Fine-tuning a pretrained model on new classes: the standard two-phase recipe.

Keras' "Transfer learning & fine-tuning" guide and timm's fine-tuning, in
the trainer's terms:

1. the pretrained body (``weights=TAG``, no top, global average pooling)
   under a new softmax head for the dataset's classes; the body is frozen and
   called with ``training=False``, so its BatchNorm layers stay in inference
   mode (their statistics are the pretrained ones); only the head trains,
   for ``freeze_epochs`` epochs at the recipe's learning rate;
2. then everything but BatchNorm trains at ``FINE_TUNE_LR_FACTOR`` times that
   rate (the recipe's schedule over the remaining epochs); BatchNorm layers
   stay frozen, so in inference mode with the pretrained statistics (keras.io's
   fine-tuning recipe).

Each phase compiles its own optimizer, so a run resumed after a kill restores
the checkpoint into the phase that wrote it and then goes on exactly as an
uninterrupted run would (the second phase's optimizer starts fresh either way).
The images are prepared as the tag says (:func:`tag_data_config`).
"""

from __future__ import annotations

import dataclasses

__all__ = ["Phase", "tag_data_config", "build_finetune_model", "phases"]


def tag_data_config(model_name, tag):
    """The tag's preprocessing, :func:`keras_ultradeep.data_config`'s: ``input_size``,
    ``crop_pct``, ``interpolation``, ``mean``, ``std``, ``channel_order``."""
    from keras_ultradeep import contract

    return dict(contract.data_config(f"{model_name}.{tag}"))


def build_finetune_model(name, kwargs, *, weights, input_shape, classes):
    """The pretrained body of ``name`` under a new ``classes``-way softmax head."""
    import keras

    from keras_ultradeep import registry

    body = registry.create_model(
        name, **kwargs, weights=weights, include_top=False, pooling="avg", input_shape=tuple(input_shape)
    )
    inputs = keras.Input(tuple(input_shape), name="image")
    # training=False keeps BatchNorm in inference mode in both phases.
    features = body(inputs, training=False)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(features)
    return keras.Model(inputs, outputs, name=f"{name}_{weights}_finetuned")


@dataclasses.dataclass(frozen=True)
class Phase:
    """Epochs ``[start, end)`` trained with the body trainable or not, at ``learning_rate``."""

    start: int
    end: int
    body_trainable: bool | None  # None: no pretrained body (a plain run, one phase)
    learning_rate: float
    schedule: str


def phases(settings, total_epochs):
    """The run's phases: one for a plain run, head-only then everything for fine-tuning."""
    from keras_ultradeep.training.settings import FINE_TUNE_LR_FACTOR

    if settings.weights is None:
        return [Phase(0, total_epochs, None, settings.learning_rate, settings.schedule)]
    freeze = settings.freeze_epochs
    result = []
    if freeze:
        result.append(Phase(0, freeze, False, settings.learning_rate, "constant"))
    if freeze < total_epochs:
        result.append(
            Phase(freeze, total_epochs, True, settings.learning_rate * FINE_TUNE_LR_FACTOR, settings.schedule)
        )
    return result


def set_body_trainable(model, trainable):
    """Freezes or unfreezes the pretrained body (the model's one nested model).

    Its BatchNorm layers stay frozen either way: a frozen BatchNorm runs in
    inference mode in Keras, whatever ``training`` the functional graph passes
    down (``fit`` passes ``training=True`` to every layer, overriding the
    ``training=False`` of the body's call).
    """
    import keras

    from keras_ultradeep.training.build import all_layers

    for layer in model.layers:
        if hasattr(layer, "layers"):
            layer.trainable = trainable
            for inner in all_layers(layer):
                if isinstance(inner, keras.layers.BatchNormalization):
                    inner.trainable = False
