"""DenseNet's memory-efficient form (Pleiss et al., 2017) and moving weights
between it and the naive form.

A dense layer's concat -> BN -> ReLU -> conv is one :class:`DenseBottleneck`,
recomputed in the backward pass. The two forms hold the same variables under
the same paths, but Keras files address weights by layer, so a weights file of
one form loads into the other through a model of its own form whose weights
are then copied by path (:func:`build_in_form`).
"""

from __future__ import annotations

import os

from keras import layers

from keras_ultradeep.layers.dense_bottleneck import DenseBottleneck
from keras_ultradeep.models import transfer

__all__ = ["efficient_conv_block", "saved_memory_efficient", "copy_weights", "build_in_form"]

# The naive and the memory-efficient form hold the same variables under the
# same paths: this moves weights (and BatchNorm statistics) either way.
copy_weights = transfer.copy_by_path


def efficient_conv_block(
    pieces, growth_rate, name, *, bottleneck, bottleneck_width, dropout_rate, bn_epsilon
):
    """:func:`conv_block` on the list of a block's feature maps so far, memory-efficiently.

    Its concat -> BN -> ReLU -> conv part is one :class:`DenseBottleneck`,
    recomputed in the backward pass; the sublayers carry the naive layers'
    names (``{name}_0_bn`` and ``{name}_1_conv``, or ``{name}_2_conv`` without
    a bottleneck). Returns the layer's new ``growth_rate`` maps only.
    """
    channels = [int(piece.shape[-1]) for piece in pieces]
    options = dict(input_channels=channels, norm_name=f"{name}_0_bn", epsilon=bn_epsilon)
    if bottleneck:
        y = DenseBottleneck(
            bottleneck_width * growth_rate, 1, conv_name=f"{name}_1_conv", name=f"{name}_0_1_bottleneck",
            **options,
        )(pieces)
        if dropout_rate:
            y = layers.Dropout(dropout_rate, name=f"{name}_1_drop")(y)
        y = layers.BatchNormalization(epsilon=bn_epsilon, name=f"{name}_1_bn")(y)
        y = layers.Activation("relu", name=f"{name}_1_relu")(y)
        y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    else:
        y = DenseBottleneck(
            growth_rate, 3, conv_name=f"{name}_2_conv", name=f"{name}_0_2_bottleneck", **options
        )(pieces)
    if dropout_rate:
        y = layers.Dropout(dropout_rate, name=f"{name}_2_drop")(y)
    return y


def saved_memory_efficient(path):
    """Whether the weights file ``path`` was saved from a memory-efficient DenseNet
    (True), a naive one (False), or cannot be told (None: not a readable HDF5 file).

    Keras files address weights by layer: a Keras 3 ``.weights.h5`` under
    ``layers/<class name>_<n>``, a legacy ``.h5`` under the layers' names, so the
    memory-efficient form's ``DenseBottleneck`` layers show in either.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return None
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            if "layers" in handle:
                return any(key.startswith("dense_bottleneck") for key in handle["layers"])
            group = handle["model_weights"] if "model_weights" in handle else handle
            names = group.attrs.get("layer_names", [])
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
            return any(name.endswith("_bottleneck") for name in names)
    except (OSError, KeyError, ImportError):
        return None


def build_in_form(builder, arguments, knobs, memory_efficient, application):
    """``application()`` (this form through the contract, ``weights`` loaded by
    Keras) when ``weights`` is in this form's layout; otherwise the other form
    loads them and its weights are copied by path into this one.

    The two forms have the same variables under the same paths, but Keras
    files address weights by layer, and the naive form's first BatchNorm and
    Conv2D of each dense layer are sublayers of a ``DenseBottleneck`` in the
    memory-efficient form. Pretrained weights (manifest entries,
    keras.applications' files) are in the naive layout.
    """
    weights = arguments["weights"]
    if weights is None:
        return application()
    source_form = bool(saved_memory_efficient(weights))
    if source_form == memory_efficient:
        return application()
    return transfer.load_through(
        lambda: builder(**arguments, **knobs, memory_efficient=source_form),
        lambda: builder(**{**arguments, "weights": None}, **knobs, memory_efficient=memory_efficient),
        copy_weights,
    )
