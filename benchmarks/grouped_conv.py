"""Grouped 3x3 convolution on ResNeXt's shapes: Keras ``Conv2D(groups=...)``
against the alternatives, side by side in one process (TensorFlow backend).

    python benchmarks/grouped_conv.py            # batch 8, up to 20 timed runs each
    python benchmarks/grouped_conv.py --quick    # batch 2, up to 5 runs

Candidates, all computing the same function from the same grouped kernel
``(kh, kw, in // g, out)``:

* ``keras_groups``: ``keras.layers.Conv2D(groups=g)``, the reference. On
  TensorFlow it wraps the convolution in a nested ``tf.function(jit_compile=True)``;
* ``ops_conv``: ``keras.ops.conv`` on the grouped kernel, which is what
  ``Conv2D`` calls, so the same nested XLA function;
* ``tf_grouped``: ``tf.nn.convolution`` on the grouped kernel, no nested XLA
  (TensorFlow's own CPU kernel takes groups now);
* ``split``: g ``keras.ops.conv`` calls on channel slices and a concatenation;
* ``block_diagonal``: one dense convolution with the kernel expanded, inside
  the timed function, to a block-diagonal ``(kh, kw, in, out)`` kernel
  (g times the arithmetic);
* ``GroupedConv2D``: ``keras_ultradeep.layers.GroupedConv2D``, whichever of
  the above it uses.

Each runs inside ``tf.function`` with ``jit_compile`` off and on. Reported:
median milliseconds per forward pass, the ratio to ``keras_groups`` in the same
mode, and the largest absolute difference from ``keras_groups`` (eager). A
slow candidate stops after ``--budget`` seconds of timed runs (at least 3).
The numbers are ratios from one process on one machine; rerun them where you
need them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# (label, side, width, groups): the grouped 3x3 of the stage named
# (stage 2 is the first residual stage, at 1/4 resolution).
SHAPES = [
    ("ResNeXt-50 32x4d s2", 56, 128, 32),
    ("ResNeXt-50 32x4d s4", 14, 512, 32),
    ("ResNeXt-101 64x4d s3", 28, 512, 64),
    ("ResNeXt-101 64x4d s4", 14, 1024, 64),
    ("ResNeXt-29 8x64d s1", 32, 512, 8),
]


def _candidates(kernel, groups):
    """name -> function of x, each closing over the same grouped kernel."""
    import keras
    import tensorflow as tf
    from keras import ops

    from keras_ultradeep.layers import GroupedConv2D

    kh, kw, per_in, filters = kernel.shape
    per_out = filters // groups
    shape = (None, None, None, per_in * groups)

    reference = keras.layers.Conv2D(filters, (kh, kw), padding="same", groups=groups, use_bias=False)
    reference.build(shape)
    reference.kernel.assign(kernel)
    ours = GroupedConv2D(filters, (kh, kw), groups, padding="same")
    ours.build(shape)
    ours.kernel.assign(kernel)
    k = tf.Variable(kernel)
    # mask[i, o] = 1 where input channel i feeds output channel o.
    mask = np.kron(np.eye(groups, dtype="float32"), np.ones((per_in, per_out), "float32"))

    def split(x):
        return ops.concatenate(
            [
                ops.conv(x[..., g * per_in:(g + 1) * per_in], k[..., g * per_out:(g + 1) * per_out],
                         padding="same")
                for g in range(groups)
            ],
            axis=-1,
        )

    def block_diagonal(x):
        # Tile the grouped kernel over all input groups, then zero the
        # off-diagonal blocks: (kh, kw, g * per_in, out).
        dense = ops.reshape(ops.tile(k[:, :, None], (1, 1, groups, 1, 1)), (kh, kw, groups * per_in, filters))
        dense = dense * mask
        return ops.conv(x, dense, padding="same")

    return {
        "keras_groups": reference,
        "ops_conv": lambda x: ops.conv(x, k, padding="same"),
        "tf_grouped": lambda x: tf.nn.convolution(x, k, padding="SAME"),
        "split": split,
        "block_diagonal": block_diagonal,
        "GroupedConv2D": ours,
    }


def _median_ms(fn, x, runs, budget):
    fn(x)  # trace and compile
    fn(x)
    times = []
    while len(times) < runs and (len(times) < 3 or sum(times) < budget * 1e3):
        start = time.perf_counter()
        np.asarray(fn(x))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 2 and up to 5 runs")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed runs per candidate")
    args = parser.parse_args(argv)
    batch, runs = (2, 5) if args.quick else (8, 20)

    import keras
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"devices {[d.device_type for d in tf.config.list_physical_devices()]}, batch {batch}")
    header = f"{'shape':21s} {'HxW':>5s} {'C':>5s} {'g':>3s} {'candidate':15s} {'jit':>4s} " \
             f"{'ms':>9s} {'ratio':>6s} {'max|diff|':>9s}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for label, side, width, groups in SHAPES:
        x = tf.constant(rng.normal(0, 1, (batch, side, side, width)).astype("float32"))
        kernel = rng.normal(0, (9 * width / groups) ** -0.5, (3, 3, width // groups, width)).astype("float32")
        candidates = _candidates(kernel, groups)
        expected = np.asarray(candidates["keras_groups"](x))
        for jit in (False, True):
            baseline = None
            for name, candidate in candidates.items():
                fn = tf.function(candidate, jit_compile=jit, autograph=False)
                ms = _median_ms(fn, x, runs, args.budget)
                baseline = baseline or ms
                diff = float(np.abs(np.asarray(fn(x)) - expected).max())
                print(f"{label:21s} {side:5d} {width:5d} {groups:3d} {name:15s} {'on' if jit else 'off':>4s} "
                      f"{ms:9.2f} {ms / baseline:6.2f} {diff:9.1e}", flush=True)


if __name__ == "__main__":
    main()
