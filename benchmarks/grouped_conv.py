"""Grouped 3x3 convolution on ResNeXt's shapes: Keras ``Conv2D(groups=...)``
against the alternatives, side by side in one process.

    python benchmarks/grouped_conv.py            # batch 8, 20 timed runs each
    python benchmarks/grouped_conv.py --quick    # batch 2, 5 runs

Candidates, all computing the same function from the same kernel:

* ``keras_groups``: ``keras.layers.Conv2D(groups=g)`` (the reference);
* ``split``: ``keras_ultradeep.layers.GroupedConv2D``, one convolution per
  group and a concatenation;
* ``block_diagonal``: one dense convolution with the grouped kernel expanded
  to a block-diagonal (kh, kw, in, out) kernel (g times the arithmetic).

Each runs inside ``tf.function`` with ``jit_compile`` off and on. Reported:
median milliseconds per forward pass, the ratio to ``keras_groups`` in the
same mode, and the largest absolute difference from ``keras_groups``. Timings
are ratios from one run on one machine; rerun them where you need them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# (label, side, channels, groups): the grouped 3x3 of each stage named.
SHAPES = [
    ("ResNeXt-50 32x4d stage 2", 56, 128, 32),
    ("ResNeXt-50 32x4d stage 5", 7, 1024, 32),
    ("ResNeXt-101 64x4d stage 4", 14, 1024, 64),
    ("ResNeXt-29 8x64d stage 1", 32, 512, 8),
]


def _block_diagonal(kernel, groups):
    kh, kw, per_in, out = kernel.shape
    per_out = out // groups
    dense = np.zeros((kh, kw, per_in * groups, out), kernel.dtype)
    for g in range(groups):
        dense[:, :, g * per_in:(g + 1) * per_in, g * per_out:(g + 1) * per_out] = (
            kernel[:, :, :, g * per_out:(g + 1) * per_out]
        )
    return dense


def _median_ms(fn, x, runs):
    fn(x)  # trace and compile
    fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        np.asarray(fn(x))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 2 and 5 runs")
    args = parser.parse_args(argv)
    batch, runs = (2, 5) if args.quick else (8, 20)

    import keras
    import tensorflow as tf

    from keras_ultradeep.layers import GroupedConv2D

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"devices {[d.device_type for d in tf.config.list_physical_devices()]}, batch {batch}")
    header = f"{'shape':28s} {'candidate':15s} {'jit':>4s} {'ms':>9s} {'ratio':>7s} {'max|diff|':>10s}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for label, side, channels, groups in SHAPES:
        x = tf.constant(rng.normal(0, 1, (batch, side, side, channels)).astype("float32"))
        reference = keras.layers.Conv2D(channels, 3, padding="same", groups=groups, use_bias=False)
        reference.build(x.shape)
        kernel = rng.normal(0, 0.05, reference.kernel.shape).astype("float32")
        reference.kernel.assign(kernel)
        split = GroupedConv2D(channels, 3, groups, padding="same")
        split.build(x.shape)
        split.kernel.assign(kernel)
        dense = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)
        dense.build(x.shape)
        dense.kernel.assign(_block_diagonal(kernel, groups))
        expected = np.asarray(reference(x))
        for jit in (False, True):
            baseline = None
            for name, layer in (("keras_groups", reference), ("split", split), ("block_diagonal", dense)):
                fn = tf.function(layer.__call__, jit_compile=jit)
                ms = _median_ms(fn, x, runs)
                baseline = baseline or ms
                diff = float(np.abs(np.asarray(fn(x)) - expected).max())
                print(f"{label:28s} {name:15s} {'on' if jit else 'off':>4s} {ms:9.2f} "
                      f"{ms / baseline:7.2f} {diff:10.2e}", flush=True)


if __name__ == "__main__":
    main()
