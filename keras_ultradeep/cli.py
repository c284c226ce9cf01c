"""The ``keras-ultradeep`` command line (also ``python -m keras_ultradeep``).

    keras-ultradeep list [PATTERN] [--weights] [--no-params]
    keras-ultradeep summary MODEL [--input-size N] [--model-arg KEY=VALUE ...]
    keras-ultradeep train MODEL [--recipe NAME] --dataset NAME --epochs N --batch-size B --output DIR
    keras-ultradeep evaluate MODEL_FILE --dataset NAME [--crops 1|10]
    keras-ultradeep export MODEL_FILE --format saved_model --output PATH [--overwrite]
    keras-ultradeep convert MODEL CHECKPOINT OUTPUT
    keras-ultradeep bench MODEL --mode train|infer|build --batch-size B --steps N [--memory-efficient] [--compare keras|timm]

Each command parses its arguments and calls the library (registry, training,
export, convert); Keras and TensorFlow are imported only inside commands, so
``--help`` is instant. A bad argument prints ``error: ...`` naming it and
exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

__all__ = ["main", "build_parser"]

USAGE_ERROR = 2
FAILURE = 1


class _UserError(Exception):
    """A message for the user and the exit status that goes with it."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- argument types


def _model_arg(text):
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY an argument name, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # not a Python literal: a plain string such as avg or imagenet


def _space_arg(text):
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier() or not values.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... with NAME a hyperparameter, got {text!r}")
    try:
        return key, [ast.literal_eval(value.strip()) for value in values.split(",")]
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"expected numbers in {text!r}") from None


def _model_kwargs(pairs):
    kwargs = {}
    for key, value in pairs or ():
        if key in kwargs:
            raise _UserError(f"--model-arg: {key!r} is given twice", USAGE_ERROR)
        kwargs[key] = value
    return kwargs


# ---------------------------------------------------------------------- commands


def _list(args):
    import keras

    from keras_ultradeep import registry, weights
    from keras_ultradeep.training.fit import parameter_counts

    names = registry.list_models(args.pattern, weights=True if args.weights else None)
    if not names:
        which = "with pretrained weights " if args.weights else ""
        raise _UserError(f"PATTERN: no registered model {which}matches {args.pattern!r}", FAILURE)
    width = max(len("NAME"), *map(len, names))
    print(f"{'NAME':<{width}}  {'PARAMS':>12}  {'TRAINABLE':>12}  {'INPUT':>7}  {'MIN':>3}  WEIGHTS")
    for name in names:
        entry = registry.model_entry(name)
        total = trainable = "-"
        if args.params:
            # The count at the smallest input: the head needs a static shape, and
            # the parameters do not depend on the input size.
            side = entry.min_size
            counts = parameter_counts(entry.build(weights=None, input_shape=(side, side, 3)))
            total, trainable = f"{counts['total']:,}", f"{counts['trainable']:,}"
            keras.backend.clear_session()
        tags = ", ".join(weights.pretrained_tags(name)) or "-"
        size = f"{entry.default_size}x{entry.default_size}"
        print(
            f"{name:<{width}}  {total:>12}  {trainable:>12}  {size:>7}  {entry.min_size:>3}  {tags}",
            flush=True,  # building every model takes a while; show each row as it comes
        )


def _summary(args):
    from keras_ultradeep import registry
    from keras_ultradeep.training.fit import parameter_counts

    entry = registry.model_entry(args.model_name)
    kwargs = {"weights": None, **_model_kwargs(args.model_kwargs)}
    if "input_shape" not in kwargs:
        side = args.input_size or entry.default_size
        kwargs["input_shape"] = (side, side, 3)
    elif args.input_size is not None:
        raise _UserError("--input-size: give either --input-size or --model-arg input_shape=...", USAGE_ERROR)
    model = registry.create_model(args.model_name, **kwargs)
    model.summary()
    counts = parameter_counts(model)
    print(
        f"Parameters: {counts['total']:,} total, {counts['trainable']:,} trainable, "
        f"{counts['non_trainable']:,} non-trainable"
    )


def _milestones(text):
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs such as 150,225, got {text!r}")
    return values


def _train(args):
    from keras_ultradeep.training import fit

    overrides = {
        key: getattr(args, key)
        for key in (
            "steps", "optimizer", "momentum", "nesterov", "weight_decay", "schedule", "milestones",
            "lr_factor", "label_smoothing", "dropout", "augmentation", "normalization", "clipnorm",
            "train_split",
        )
    }
    try:
        fit.train(
            args.model_name,
            dataset=args.dataset,
            recipe=args.recipe,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            output=args.output,
            seed=args.seed,
            input_size=args.input_size,
            model_kwargs=_model_kwargs(args.model_kwargs),
            data_dir=args.data_dir,
            manual_dir=args.manual_dir,
            jit_compile="auto" if args.jit_compile is None else args.jit_compile,
            mixed_precision=args.mixed_precision,
            distribute=args.distribute,
            **overrides,
        )
    except fit.TrainingDiverged as error:
        raise _UserError(str(error), FAILURE) from None


def _evaluate(args):
    import json

    from keras_ultradeep.training import evaluate

    result = evaluate.evaluate(
        args.model_file,
        dataset=args.dataset,
        crops=args.crops,
        batch_size=args.batch_size,
        split=args.split,
        data_dir=args.data_dir,
        normalization=args.normalization,
        resize=args.resize,
        max_examples=args.max_examples,
    )
    print(
        f"{args.model_file} on {result['dataset']} ({result['split']}, {result['examples']} images, "
        f"{result['crops']} crop{'s' if result['crops'] > 1 else ''}): top-1 {result['top1']:.4f}, "
        f"top-5 {result['top5']:.4f}"
    )
    if args.json:
        print(json.dumps(result))


def _export(args):
    from keras_ultradeep import export

    try:
        difference = export.export_model(
            args.model_file,
            args.output,
            format=args.format,
            overwrite=args.overwrite,
            verify=not args.no_verify,
        )
    except export.ExportVerificationError as error:
        raise _UserError(str(error), FAILURE) from None
    print(f"Exported {args.model_file} to {args.output} ({args.format}).")
    if difference is not None:
        print(
            f"Verified: max abs difference from the Keras model on a random batch: {difference:.3g} "
            f"(tolerance {export.VERIFY_TOLERANCE:g})"
        )


def _tune(args):
    from keras_ultradeep import tuner

    space = {}
    for key, values in args.space or ():
        if key in space:
            raise _UserError(f"--space: {key!r} is given twice", USAGE_ERROR)
        space[key] = values
    rows = tuner.tune(
        args.family,
        dataset=args.dataset,
        tuner=args.tuner,
        max_trials=args.max_trials,
        epochs=args.epochs,
        output=args.output,
        batch_size=args.batch_size,
        input_size=args.input_size,
        seed=args.seed,
        space=space or None,
        data_dir=args.data_dir,
        verbose=args.verbose,
    )
    columns = list(rows[0])
    print("  ".join(columns))
    for row in rows:
        print("  ".join(str(row[column]) for column in columns))
    print(
        f"Results: {os.path.join(args.output, tuner.RESULTS_FILE)}; best model: "
        f"{os.path.join(args.output, tuner.BEST_MODEL_FILE)} (SavedModel: "
        f"{os.path.join(args.output, tuner.BEST_EXPORT)})"
    )


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
        model_kwargs=_model_kwargs(args.model_kwargs),
        rounds=args.rounds,
        memory_efficient=args.memory_efficient,
    )

    def show(label, figures):
        ips = figures["images_per_sec"]
        ips = f"{ips:10.1f}" if ips is not None else f"{'-':>10}"
        print(f"{label:32s} {ips} {figures['peak_memory_mb']:12.1f} {figures['build_seconds']:9.2f}")

    print(f"{args.model_name}: {args.mode}, batch {result['batch_size']}, "
          f"{result['input_size']}x{result['input_size']}, {args.steps} steps"
          f"{', XLA' if args.jit_compile else ''}{', mixed precision' if args.mixed_precision else ''}"
          f"{', memory-efficient' if args.memory_efficient else ''}")
    print(f"{'':32s} {'images/s':>10} {'peak MB':>12} {'build s':>9}")
    show("keras_ultradeep " + args.model_name, result)
    if "compare" in result:
        reference = result["compare"]
        show(reference["name"], reference)
        ratio = reference["ratio"]
        print(
            "ratio (ours / reference): "
            + ", ".join(f"{key} {value:.3f}" for key, value in ratio.items() if value is not None)
        )
    if args.json:
        print(json.dumps(result))


def _convert(args):
    from keras_ultradeep.convert import convert_checkpoint

    path = convert_checkpoint(
        args.model_name, args.checkpoint, args.output, **_model_kwargs(args.model_kwargs)
    )
    print(f"Wrote {path}")


# ------------------------------------------------------------------------ parser


class _CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that remembers how each of its arguments is spelled,
    so a library error about ``batch_size`` can name ``--batch-size``."""

    def __init__(self, *args, **kwargs):
        self.spellings = {}  # before ArgumentParser adds --help
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        self.spellings[action.dest] = (
            action.option_strings[-1] if action.option_strings else action.metavar or action.dest
        )
        return action

    def spell(self, message):
        """``message`` with a leading ``argument:`` spelled the command line's way."""
        argument, sep, rest = message.partition(": ")
        if argument == "name":  # the registry's name for the model
            argument = "model_name"
        return f"{self.spellings[argument]}: {rest}" if sep and argument in self.spellings else message


def _command(commands, name, run, **kwargs):
    parser = commands.add_parser(name, **kwargs)
    parser.set_defaults(run=run, command_parser=parser)
    return parser


def _model_arg_option(parser):
    parser.add_argument(
        "--model-arg",
        dest="model_kwargs",
        metavar="KEY=VALUE",
        type=_model_arg,
        action="append",
        help="a model argument, repeatable (e.g. --model-arg depth=10); VALUE is a Python "
        "literal, anything else a string",
    )


def build_parser():
    from keras_ultradeep import __version__

    parser = argparse.ArgumentParser(
        prog="keras-ultradeep",
        description="The keras_ultradeep model zoo: list, inspect, train, export and convert models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    sub = _command(commands, "list", _list, help="the registered models, their sizes and weights")
    sub.add_argument("pattern", metavar="PATTERN", nargs="?", default="*", help="a wildcard such as 'densenet*'")
    sub.add_argument("--weights", action="store_true", help="only models with pretrained weights")
    sub.add_argument(
        "--no-params",
        dest="params",
        action="store_false",
        help="skip the parameter counts (they build every model, which takes a while)",
    )

    sub = _command(commands, "summary", _summary, help="a model's layers and parameter counts")
    sub.add_argument("model_name", metavar="MODEL")
    sub.add_argument("--input-size", type=int, help="the input side (default: the model's default size)")
    _model_arg_option(sub)

    sub = _command(
        commands,
        "train",
        _train,
        help="train a model from a paper's recipe; rerun the same command to resume an interrupted run",
        description="Trains MODEL with Keras fit into DIR (model.keras, metrics.json, log.csv, "
        "training_curves.png, tensorboard/, checkpoints/). Running it again resumes an interrupted run "
        "from its last finished epoch; a finished run is not retrained. --recipe picks a paper's "
        "settings (see docs/recipes.md); every other option overrides one of them.",
    )
    sub.add_argument("model_name", metavar="MODEL")
    sub.add_argument("--recipe", help="a paper's training recipe (default: 'default', Adam + cosine)")
    sub.add_argument("--dataset", help="'digits' (offline) or a TensorFlow Datasets name (default: the recipe's)")
    sub.add_argument("--epochs", type=int, help="the run's length in epochs (default: the recipe's)")
    sub.add_argument("--steps", type=int, help="the run's length in iterations, rounded up to epochs")
    sub.add_argument("--batch-size", type=int, help="the global batch size (default: the recipe's)")
    sub.add_argument("--output", required=True, metavar="DIR", help="the run folder")
    sub.add_argument("--learning-rate", type=float, help="the initial learning rate")
    sub.add_argument("--optimizer", choices=("sgd", "rmsprop", "adam"))
    sub.add_argument("--momentum", type=float)
    sub.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    sub.add_argument("--weight-decay", type=float, help="coupled L2 weight decay (gradient + wd * w)")
    sub.add_argument("--schedule", choices=("step", "cosine", "exponential", "constant"))
    sub.add_argument("--milestones", type=_milestones, metavar="E1,E2", help="step schedule epochs")
    sub.add_argument("--lr-factor", type=float, help="the learning-rate multiplier at each milestone")
    sub.add_argument("--label-smoothing", type=float)
    sub.add_argument("--dropout", type=float, help="the model's dropout_rate")
    sub.add_argument("--augmentation", choices=("none", "flip", "crop_flip", "crop_flip_reflect", "imagenet"))
    sub.add_argument("--normalization", choices=("unit", "mean", "mean_std", "symmetric"))
    sub.add_argument("--clipnorm", type=float, help="global gradient-norm clipping")
    sub.add_argument("--train-split", help="the TFDS split to train on (e.g. train+extra)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument(
        "--input-size", type=int, help="the image side (default: the recipe's, else the dataset's, "
        "at least the model's minimum)"
    )
    sub.add_argument("--data-dir", help="TensorFlow Datasets' data folder")
    sub.add_argument("--manual-dir", help="TensorFlow Datasets' manual download folder (imagenet2012)")
    sub.add_argument(
        "--jit-compile", action=argparse.BooleanOptionalAction, default=None,
        help="compile with XLA (default: Keras' auto, XLA on GPUs)",
    )
    sub.add_argument("--mixed-precision", choices=("mixed_float16", "mixed_bfloat16"))
    sub.add_argument(
        "--distribute", choices=("none", "mirrored", "multi_worker"), default="none",
        help="tf.distribute strategy; multi_worker reads TF_CONFIG",
    )
    _model_arg_option(sub)

    sub = _command(
        commands,
        "evaluate",
        _evaluate,
        help="top-1/top-5 accuracy of a .keras model on a dataset, with 1 or 10 crops",
        description="Evaluates MODEL_FILE on the dataset's validation split. The preprocessing "
        "(normalization) is read from the metrics.json of the run folder the model is in, unless given.",
    )
    sub.add_argument("model_file", metavar="MODEL_FILE")
    sub.add_argument("--dataset", required=True)
    sub.add_argument("--crops", type=int, choices=(1, 10), default=1,
                     help="10: four corners and centre, each also flipped, predictions averaged")
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--split", help="the split to evaluate (default: test, else validation)")
    sub.add_argument("--data-dir", help="TensorFlow Datasets' data folder")
    sub.add_argument("--normalization", choices=("unit", "mean", "mean_std", "symmetric"))
    sub.add_argument("--resize", type=int, help="the side images are resized to before cropping")
    sub.add_argument("--max-examples", type=int, help="evaluate only the first N images")
    sub.add_argument("--json", action="store_true", help="print the result as JSON on the last line")

    sub = _command(commands, "export", _export, help="export a .keras model for serving, verified")
    sub.add_argument("model_file", metavar="MODEL_FILE")
    sub.add_argument(
        "--format",
        default="saved_model",
        help="saved_model (the default, a folder), tflite (a .tflite file) or onnx (a .onnx file); "
        'tflite and onnx need pip install "keras-ultradeep[export]"',
    )
    sub.add_argument("--output", required=True, metavar="PATH")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing PATH")
    sub.add_argument("--no-verify", action="store_true", help="skip running the export against the model")

    sub = _command(
        commands,
        "tune",
        _tune,
        help="Keras Tuner search over a family's paper knobs; keeps the best model",
        description="Searches densenet (growth_rate, depth, compression), resnext (cardinality, "
        "bottleneck_width, depth) or wide_resnet (widening_factor, depth, dropout_rate), each with "
        "learning_rate; writes results.csv, best_model.keras and best_saved_model/ into --output.",
    )
    sub.add_argument("family", metavar="FAMILY", choices=("densenet", "resnext", "wide_resnet"))
    sub.add_argument("--dataset", required=True, help="'digits' (offline) or a TensorFlow Datasets name")
    sub.add_argument("--tuner", choices=("random", "bayesian", "hyperband"), default="random")
    sub.add_argument("--max-trials", required=True, type=int)
    sub.add_argument("--epochs", required=True, type=int, help="per trial (hyperband: the most a trial gets)")
    sub.add_argument("--output", required=True, metavar="DIR", help="the search folder (rerun to resume)")
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--input-size", type=int, help="the image side (default: the dataset's)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--data-dir", help="TensorFlow Datasets' data folder")
    sub.add_argument(
        "--space",
        type=_space_arg,
        action="append",
        metavar="NAME=V1,V2",
        help="the choices of one hyperparameter (repeatable), e.g. --space growth_rate=12,24",
    )
    sub.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0, help="Keras' fit verbosity")

    sub = _command(
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
    sub.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    sub.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (AMP for timm on GPU)")
    sub.add_argument(
        "--memory-efficient", action="store_true",
        help="build ours with memory_efficient=True (DenseNet: recomputed bottlenecks)",
    )
    sub.add_argument("--compare", choices=("keras", "timm"), help="also run the reference model")
    sub.add_argument("--rounds", type=int, default=1, help="alternating rounds of ours and the reference")
    sub.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    _model_arg_option(sub)

    sub = _command(commands, "convert", _convert, help="convert a timm/torchvision checkpoint to Keras weights")
    sub.add_argument("model_name", metavar="MODEL")
    sub.add_argument("checkpoint", metavar="CHECKPOINT")
    sub.add_argument("output", metavar="OUTPUT")
    _model_arg_option(sub)
    return parser


def main(argv=None):
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    prog = args.command_parser.prog
    try:
        args.run(args)
    except _UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.status
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"{prog}: error: {args.command_parser.spell(str(error))}", file=sys.stderr)
        return USAGE_ERROR
    except RuntimeError as error:  # a benchmark worker failed; its stderr is in the message
        print(f"{prog}: error: {error}", file=sys.stderr)
        return FAILURE
    except ImportError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0
