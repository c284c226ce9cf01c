"""Custom layers, each serializable under the ``keras_ultradeep`` package name.

Model files only compose these; every layer has ``get_config`` and loads with
``keras.models.load_model(..., safe_mode=True)``.
"""

from keras_ultradeep.layers.grouped_conv import GroupedConv2D
from keras_ultradeep.layers.split import ChannelSplit
from keras_ultradeep.layers.highway import HighwayConv2D
from keras_ultradeep.layers.pooling import SymmetricMaxPooling2D
from keras_ultradeep.layers.residual import StochasticDepth, ZeroPadShortcut, survival_probabilities

__all__ = [
    "ChannelSplit",
    "GroupedConv2D",
    "HighwayConv2D",
    "StochasticDepth",
    "SymmetricMaxPooling2D",
    "ZeroPadShortcut",
    "survival_probabilities",
]
