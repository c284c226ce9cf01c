"""Building and compiling a model for training (the trainer's and the tuner's).

:func:`prepare` gives a built network the trainer's BatchNorm momentum (and a
float32 head under mixed precision); :func:`compile_model` compiles it with
the loss and metrics that fit its labels; :func:`make_optimizer` turns a
run's :class:`~.settings.TrainSettings` into its optimizer and schedule.
"""

from __future__ import annotations

import keras

from keras_ultradeep import registry
from keras_ultradeep.training import optimizers

__all__ = [
    "BATCH_NORM_MOMENTUM",
    "all_layers",
    "build_model",
    "compile_model",
    "float32_head",
    "make_optimizer",
    "prepare",
]

# The paper's Torch code (and PyTorch) updates BatchNorm statistics with
# momentum 0.9; Keras' 0.99 needs hundreds of steps before the moving averages
# describe the trained network, which a short run on a small dataset never has.
BATCH_NORM_MOMENTUM = 0.9


def all_layers(layer):
    """``layer`` and every layer nested in it, depth first."""
    yield layer
    for inner in getattr(layer, "layers", ()):
        yield from all_layers(inner)


def float32_head(model):
    """Computes the model's output layers in float32 (softmax in float32 under mixed precision)."""
    for output in model.outputs:
        layer = output._keras_history.operation
        if layer.compute_dtype != "float32":
            layer.dtype_policy = "float32"
    return model


def prepare(model, *, mixed_precision=None):
    """``model`` with the trainer's BatchNorm momentum (and a float32 head under mixed precision)."""
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BATCH_NORM_MOMENTUM
    if mixed_precision:
        float32_head(model)
    return model


def build_model(name, kwargs, *, input_shape, classes, mixed_precision=None):
    """Registry model ``name`` built for training (random weights unless ``kwargs`` say otherwise)."""
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(mixed_precision)
    try:
        model = registry.create_model(
            name, **{"weights": None, **kwargs}, input_shape=tuple(input_shape), classes=classes
        )
    finally:
        keras.config.set_dtype_policy(previous)
    return prepare(model, mixed_precision=mixed_precision)


def make_optimizer(settings, *, steps_per_epoch, total_epochs, boundaries, learning_rate=None, schedule=None):
    """The run's optimizer, its learning rate following the recipe's schedule
    (``learning_rate`` and ``schedule`` replace the recipe's: a fine-tuning phase's)."""
    schedule = optimizers.make_schedule(
        settings.schedule if schedule is None else schedule,
        settings.learning_rate if learning_rate is None else learning_rate,
        total_steps=total_epochs * steps_per_epoch,
        boundaries=boundaries,
        factor=settings.lr_factor,
        decay_steps=(settings.decay_epochs or 1) * steps_per_epoch,
    )
    return optimizers.make_optimizer(
        settings.optimizer,
        schedule,
        momentum=settings.momentum,
        nesterov=settings.nesterov,
        weight_decay=settings.weight_decay,
        epsilon=settings.rmsprop_epsilon,
        clipnorm=settings.clipnorm,
    )


def compile_model(model, optimizer, *, label_smoothing=0.0, top5=False, jit_compile="auto"):
    """Compiles with cross-entropy (one-hot labels when smoothed) and accuracy (and top-5)."""
    if label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        top5_metric = keras.metrics.TopKCategoricalAccuracy
    else:
        loss = "sparse_categorical_crossentropy"
        top5_metric = keras.metrics.SparseTopKCategoricalAccuracy
    metrics = ["accuracy"]
    if top5:
        metrics.append(top5_metric(5, name="top5_accuracy"))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
    return model
