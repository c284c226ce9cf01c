"""Local response normalization across channels (AlexNet, GoogLeNet, VGG-A-LRN)."""

from __future__ import annotations

import keras
from keras import ops

from keras_ultradeep import checks

__all__ = ["LocalResponseNormalization"]


@keras.saving.register_keras_serializable(package="keras_ultradeep")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalization across channels, as in AlexNet.

    Krizhevsky, Sutskever & Hinton (2012), section 3.3: with a^i the activity
    of channel i at one position and N channels,

        b^i = a^i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} (a^j)^2)^beta

    with n = ``size`` (odd; the window is the channel itself and ``size // 2``
    neighbours on each side, cut at the first and last channel). The paper's
    values are the defaults: k = 2, n = 5, alpha = 1e-4, beta = 0.75, applied
    after the ReLU of conv1 and conv2. Channels-last; any rank >= 2.

    **alpha is the paper's alpha, not divided by n.** Caffe's ``LRN`` layer,
    PyTorch's ``torch.nn.LocalResponseNorm`` (and so torchvision's GoogLeNet
    ports) divide their alpha by the window size: their alpha is ``n`` times
    ours. Build from their numbers with :meth:`from_caffe` (Caffe's and
    PyTorch's parameters). TensorFlow's ``tf.nn.local_response_normalization``
    uses the paper's form: ``depth_radius = size // 2``, ``bias = k`` and the
    same alpha and beta.

    The squares, their window sum and the power are computed in float32 even
    under a float16 policy (a sum of squared float16 activations overflows
    above 65504 and alpha = 1e-4 underflows toward float16's subnormals); the
    output has the layer's compute dtype. The window sum is ``size`` shifted
    slices of the zero-padded squares — exact, with no backend-specific op, so
    it compiles under XLA and exports like any elementwise graph.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, **kwargs):
        super().__init__(**kwargs)
        self.size = checks.positive_odd_int(size, "size")
        self.alpha = checks.non_negative_number(alpha, "alpha")
        self.beta = checks.non_negative_number(beta, "beta")
        # k > 0 keeps the denominator positive for an all-zero window.
        self.k = checks.positive_number(k, "k")

    @classmethod
    def from_caffe(cls, local_size=5, alpha=1.0, beta=0.75, k=1.0, **kwargs):
        """The layer Caffe's ``LRN`` (ACROSS_CHANNELS) or
        ``torch.nn.LocalResponseNorm(size, alpha, beta, k)`` computes.

        Both divide alpha by the window size, so the paper's alpha is
        ``alpha / local_size``. The defaults are Caffe's (alpha 1, k 1);
        BVLC GoogLeNet's ``local_size: 5, alpha: 1e-4, beta: 0.75`` is
        ``from_caffe(5, 1e-4, 0.75)``, i.e. ``LocalResponseNormalization(5,
        2e-5, 0.75, 1.0)``.
        """
        checks.positive_odd_int(local_size, "local_size")
        return cls(size=local_size, alpha=checks.non_negative_number(alpha, "alpha") / local_size, beta=beta, k=k, **kwargs)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"inputs: expected a channels-last tensor of rank >= 2, got shape {tuple(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError("inputs: the channel dimension must be known")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        squares = ops.square(x)
        channels = squares.shape[-1]
        half = self.size // 2
        if half:
            padding = [(0, 0)] * (len(squares.shape) - 1) + [(half, half)]
            padded = ops.pad(squares, padding)
            window = padded[..., 0:channels]
            for offset in range(1, self.size):
                window = window + padded[..., offset : offset + channels]
        else:
            window = squares
        scale = ops.power(self.k + self.alpha * window, -self.beta)
        return ops.cast(x * scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
        }
