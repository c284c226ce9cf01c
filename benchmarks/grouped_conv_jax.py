"""Grouped 3x3 convolution on the JAX backend, on ResNeXt-50's shapes: XLA's
grouped op against ``keras_ultradeep.layers.GroupedConv2D`` (the same forward
op; on a CPU, gradients taken group by group), side by side in one process.

    KERAS_BACKEND=jax python benchmarks/grouped_conv_jax.py            # batch 4
    KERAS_BACKEND=jax python benchmarks/grouped_conv_jax.py --batch 8

Each candidate is jitted; reported: median milliseconds of the forward pass and
of the forward and backward pass (``jax.value_and_grad`` for the input and the
kernel), the ratio grouped op / ours, and the largest difference of the
gradients. Ratios from one process on one machine; rerun them where you need them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from keras_ultradeep.layers import grouped_conv  # noqa: E402

# ResNeXt-50 (32x4d): the grouped 3x3 of each stage (side, width), stride 1.
STAGES = ((56, 128), (28, 256), (14, 512), (7, 1024))
GROUPS = 32


def _candidates():
    def xla_grouped(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=GROUPS)

    def ours(x, k):
        return grouped_conv._jax_grouped_convolution(x, k, strides=(1, 1), padding="same", dilations=(1, 1),
                                                     groups=GROUPS)

    return {"xla_grouped": xla_grouped, "GroupedConv2D": ours}


def _median_ms(function, *args, repeats):
    jax.block_until_ready(function(*args))  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"JAX {jax.__version__} on {jax.default_backend()}; batch {args.batch}; groups {GROUPS}")
    print("| side x width | pass | xla_grouped ms | GroupedConv2D ms | ratio | max grad difference |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for side, width in STAGES:
        x = jnp.asarray(rng.normal(size=(args.batch, side, side, width)).astype("float32"))
        k = jnp.asarray(0.1 * rng.normal(size=(3, 3, width // GROUPS, width)).astype("float32"))
        timed, gradients = {}, {}
        for name, convolution in _candidates().items():
            loss = jax.jit(jax.value_and_grad(lambda x, k, f=convolution: jnp.sum(f(x, k) ** 2), argnums=(0, 1)))
            timed[name] = (_median_ms(jax.jit(convolution), x, k, repeats=args.repeats),
                           _median_ms(loss, x, k, repeats=args.repeats))
            gradients[name] = loss(x, k)[1]
        difference = max(float(jnp.max(jnp.abs(a - b)) / (1.0 + float(jnp.max(jnp.abs(a)))))
                         for a, b in zip(gradients["xla_grouped"], gradients["GroupedConv2D"]))
        for index, label in enumerate(("forward", "forward+backward")):
            ms = [timed[name][index] for name in ("xla_grouped", "GroupedConv2D")]
            print(f"| {side}x{width} | {label} | {ms[0]:.1f} | {ms[1]:.1f} | {ms[0] / ms[1]:.2f}x | "
                  f"{difference:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
