"""Splitting a tensor's channels in two, for networks with parallel paths (DPN)."""

from __future__ import annotations

import keras

from keras_ultradeep import checks

__all__ = ["ChannelSplit"]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class ChannelSplit(keras.layers.Layer):
    """Splits a channels-last tensor in two: its first ``channels`` maps and the rest."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = checks.positive_int(channels, "channels")

    def call(self, x):
        return [x[..., : self.channels], x[..., self.channels :]]

    def compute_output_shape(self, input_shape):
        *rest, total = input_shape
        if total is not None and total <= self.channels:
            raise ValueError(
                f"channels: {self.channels} leaves no maps for the second part of {total}"
            )
        return [(*rest, self.channels), (*rest, None if total is None else total - self.channels)]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
