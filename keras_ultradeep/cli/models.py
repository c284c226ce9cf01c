"""Commands about the zoo's models: ``list``, ``summary``, ``bench``, ``convert``."""

from __future__ import annotations

import argparse

from keras_ultradeep.cli.common import (
    FAILURE,
    USAGE_ERROR,
    UserError,
    add_command,
    model_arg_option,
    model_kwargs,
)

__all__ = ["add_commands"]


def _list_weights(pattern):
    from keras_ultradeep import weights

    names = weights.list_pretrained(pattern) or weights.list_pretrained(f"{pattern}.*")
    if not names:
        raise UserError(f"PATTERN: no pretrained weights match {pattern!r}", FAILURE)
    width = max(len("TAG"), *map(len, names))
    print(f"{'TAG':<{width}}  {'LICENCE':<14}  {'TOP-1':>20}  {'INPUT':>7}  SOURCE")
    for name in names:
        arch, tag = name.split(".", 1)
        row = weights.find(arch, tag)
        top1 = ", ".join(f"{value:.2f}@{side}" for side, value in row.top1.items()) or "-"
        height, width_px, _ = row.data["input_size"]
        licence = row.licence.split(" ")[0]
        print(f"{name:<{width}}  {licence:<14}  {top1:>20}  {f'{height}x{width_px}':>7}  {row.source}")


def _list(args):
    import fnmatch

    from keras_ultradeep import weights, zoo

    if args.weights:
        return _list_weights(args.pattern)

    # From the shipped table (a test holds it to the registry): no model is
    # built, and not even Keras is imported.
    table = zoo.table()
    names = sorted(name for name in table if fnmatch.fnmatchcase(name, args.pattern))
    if not names:
        raise UserError(f"PATTERN: no registered model matches {args.pattern!r}", FAILURE)
    width = max(len("NAME"), *map(len, names))
    print(f"{'NAME':<{width}}  {'PARAMS':>12}  {'TRAINABLE':>12}  {'INPUT':>7}  {'MIN':>3}  WEIGHTS")
    for name in names:
        figures = table[name]
        total = trainable = "-"
        if args.params:
            # Counted at the default input with the default head, as
            # keras.applications counts (a Flatten head's size depends on the input).
            total, trainable = f"{figures['params']:,}", f"{figures['trainable_params']:,}"
        tags = ", ".join(weights.tags(name)) or "-"
        size = f"{figures['default_size']}x{figures['default_size']}"
        print(f"{name:<{width}}  {total:>12}  {trainable:>12}  {size:>7}  {figures['min_size']:>3}  {tags}")


def _summary(args):
    from keras_ultradeep import registry
    from keras_ultradeep.stats import parameter_counts

    entry = registry.model_entry(args.model_name)
    kwargs = {"weights": None, **model_kwargs(args.model_kwargs)}
    if "input_shape" not in kwargs:
        side = args.input_size or entry.default_size
        kwargs["input_shape"] = (side, side, 3)
    elif args.input_size is not None:
        raise UserError("--input-size: give either --input-size or --model-arg input_shape=...", USAGE_ERROR)
    model = registry.create_model(args.model_name, **kwargs)
    model.summary()
    counts = parameter_counts(model)
    print(
        f"Parameters: {counts['total']:,} total, {counts['trainable']:,} trainable, "
        f"{counts['non_trainable']:,} non-trainable"
    )


def _backend_list(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def _bench(args):
    import json

    from keras_ultradeep import bench

    result = bench.benchmark(
        args.model_name,
        mode=args.mode,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        input_size=args.input_size,
        jit_compile=args.jit_compile,
        mixed_precision=args.mixed_precision,
        compare=args.compare,
        model_kwargs=model_kwargs(args.model_kwargs),
        rounds=args.rounds,
        memory_efficient=args.memory_efficient,
        backend=args.backend or ["tensorflow"],
    )

    def show(label, figures):
        ips = figures["images_per_sec"]
        ips = f"{ips:10.1f}" if ips is not None else f"{'-':>10}"
        print(f"{label:32s} {ips} {figures['peak_memory_mb']:12.1f} {figures['build_seconds']:9.2f}")

    print(f"{args.model_name}: {args.mode}, batch {result['batch_size']}, "
          f"{result['input_size']}x{result['input_size']}, {args.steps} steps"
          f"{', mixed precision' if args.mixed_precision else ''}"
          f"{', memory-efficient' if args.memory_efficient else ''}")
    print(f"{'':32s} {'images/s':>10} {'peak MB':>12} {'build s':>9}")
    for backend, figures in result["backends"].items():
        jit = (", torch.compile" if backend == "torch" else ", XLA") if figures["jit_compile"] else ""
        show(f"keras_ultradeep {args.model_name}" + (f" ({backend}{jit})" if args.backend else ""), figures)
    if "compare" in result:
        reference = result["compare"]
        show(reference["name"], reference)
        for backend, figures in result["backends"].items():
            print(
                "ratio (ours / reference)" + (f" on {backend}" if args.backend else "") + ": "
                + ", ".join(f"{key} {value:.3f}" for key, value in figures["ratio"].items() if value is not None)
            )
    if args.json:
        print(json.dumps(result))


def _convert(args):
    from keras_ultradeep.convert import convert_checkpoint

    path = convert_checkpoint(
        args.model_name, args.checkpoint, args.output, **model_kwargs(args.model_kwargs)
    )
    print(f"Wrote {path}")


def add_commands(commands):
    sub = add_command(commands, "list", _list, help="the registered models, their sizes and weights")
    sub.add_argument("pattern", metavar="PATTERN", nargs="?", default="*", help="a wildcard such as 'densenet*'")
    sub.add_argument(
        "--weights", action="store_true",
        help="every pretrained <model>.<tag> instead: licence, ImageNet top-1 (timm's results), input size",
    )
    sub.add_argument(
        "--no-params",
        dest="params",
        action="store_false",
        help="leave out the parameter counts",
    )

    sub = add_command(commands, "summary", _summary, help="a model's layers and parameter counts")
    sub.add_argument("model_name", metavar="MODEL")
    sub.add_argument("--input-size", type=int, help="the input side (default: the model's default size)")
    model_arg_option(sub)

    sub = add_command(
        commands,
        "bench",
        _bench,
        help="throughput, peak memory and build time, optionally against keras.applications or timm",
        description="Measures MODEL in worker processes (one per configuration, so peak memory is its "
        "own); with --compare, the reference runs alternately with ours and the ratio is printed.",
    )
    sub.add_argument("model_name", metavar="MODEL")
    sub.add_argument("--mode", choices=("train", "infer", "build"), default="train")
    sub.add_argument("--batch-size", type=int, default=32)
    sub.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    sub.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    sub.add_argument("--input-size", type=int, help="the image side (default: the model's default size)")
    sub.add_argument(
        "--jit-compile", action=argparse.BooleanOptionalAction, default=None,
        help="XLA on TensorFlow and JAX, torch.compile on PyTorch; --no-jit-compile for none "
        "(default: each backend's own: XLA on JAX only)",
    )
    sub.add_argument(
        "--backend", type=_backend_list, action="extend", metavar="NAME[,NAME]",
        help="tensorflow, jax or torch; repeatable or comma-separated, one worker process per backend "
        "(default: tensorflow)",
    )
    sub.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (AMP for timm on GPU)")
    sub.add_argument(
        "--memory-efficient", action="store_true",
        help="build ours with memory_efficient=True (DenseNet: recomputed bottlenecks)",
    )
    sub.add_argument("--compare", choices=("keras", "timm"), help="also run the reference model")
    sub.add_argument("--rounds", type=int, default=1, help="alternating rounds of ours and the reference")
    sub.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    model_arg_option(sub)

    sub = add_command(commands, "convert", _convert, help="convert a timm/torchvision checkpoint to Keras weights")
    sub.add_argument("model_name", metavar="MODEL")
    sub.add_argument("checkpoint", metavar="CHECKPOINT")
    sub.add_argument("output", metavar="OUTPUT")
    model_arg_option(sub)
