"""Training commands: ``train``, ``evaluate`` and ``tune``.

``train``'s recipe flags are generated from :data:`keras_ultradeep.training.recipes.OVERRIDES`
(plain data: reading it imports neither Keras nor TensorFlow).
"""

from __future__ import annotations

import argparse
import ast
import os

from keras_ultradeep.cli.common import (
    FAILURE,
    UserError,
    add_command,
    key_values,
    model_arg_option,
    model_kwargs,
)

__all__ = ["add_commands"]


def _milestones(text):
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs such as 150,225, got {text!r}")
    return values


def _space_arg(text):
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier() or not values.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... with NAME a hyperparameter, got {text!r}")
    try:
        return key, [ast.literal_eval(value.strip()) for value in values.split(",")]
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"expected numbers in {text!r}") from None


_KINDS = {"int": dict(type=int), "float": dict(type=float), "str": {},
          "bool": dict(action=argparse.BooleanOptionalAction, default=None),
          "epochs": dict(type=_milestones, metavar="E1,E2")}


def _override_flags(parser):
    """One flag per overridable recipe value, from the recipes' one list."""
    from keras_ultradeep.training.recipes import OVERRIDES

    for override in OVERRIDES:
        options = dict(_KINDS[override.kind])
        if override.choices:
            options["choices"] = override.choices
        if override.help:
            options["help"] = override.help
        parser.add_argument("--" + override.name.replace("_", "-"), **options)


def _train(args):
    from keras_ultradeep.training import fit
    from keras_ultradeep.training.recipes import OVERRIDABLE

    try:
        fit.train(
            args.model_name,
            dataset=args.dataset,
            recipe=args.recipe,
            output=args.output,
            seed=args.seed,
            input_size=args.input_size,
            model_kwargs=model_kwargs(args.model_kwargs),
            data_dir=args.data_dir,
            manual_dir=args.manual_dir,
            jit_compile="auto" if args.jit_compile is None else args.jit_compile,
            mixed_precision=args.mixed_precision,
            distribute=args.distribute,
            weights=args.weights,
            freeze_epochs=args.freeze_epochs,
            val_split=args.val_split,
            **{key: getattr(args, key) for key in OVERRIDABLE},
        )
    except fit.TrainingDiverged as error:
        raise UserError(str(error), FAILURE) from None


def _evaluate_folder(args):
    from keras_ultradeep.training import report

    result = report.evaluate_folder(
        args.model_file, args.dataset, output=args.report, batch_size=args.batch_size
    )
    print(
        f"{args.model_file} on {args.dataset} ({result['examples']} images): top-1 {result['top1']:.4f}, "
        f"top-5 {result['top5']:.4f}"
    )
    width = max(len(name) for name in result["class_names"])
    print(f"{'CLASS':<{width}}  PRECISION  RECALL  IMAGES")
    for name, row in result["per_class"].items():
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        print(f"{name:<{width}}  {precision:>9}  {recall:>6}  {row['support']:>6}")
    print(f"Report: {result['files']['report']} (confusion matrix and misclassified images beside it)")
    if args.json:
        import json

        print(json.dumps(result))


def _evaluate(args):
    import json

    from keras_ultradeep.training import evaluate, folders

    if folders.is_image_folder(args.dataset):
        return _evaluate_folder(args)

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


def _tune(args):
    from keras_ultradeep import tuner

    space = key_values(args.space, "--space")
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


def add_commands(commands):
    sub = add_command(
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
    sub.add_argument(
        "--dataset", help="'digits' (offline), a TensorFlow Datasets name, or a folder with one subfolder "
        "of images per class (default: the recipe's)",
    )
    sub.add_argument("--output", required=True, metavar="DIR", help="the run folder")
    _override_flags(sub)
    sub.add_argument(
        "--weights", metavar="TAG",
        help="fine-tune from this pretrained tag: a new head, trained alone first, then everything",
    )
    sub.add_argument("--freeze-epochs", type=int, help="with --weights: head-only epochs (default: half)")
    sub.add_argument(
        "--val-split", type=float, default=0.2,
        help="an image folder without train/ and val/: the validation fraction of each class",
    )
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
    model_arg_option(sub)

    sub = add_command(
        commands,
        "evaluate",
        _evaluate,
        help="top-1/top-5 accuracy of a .keras model on a dataset (1 or 10 crops) or an image folder",
        description="Evaluates MODEL_FILE on the dataset's validation split. The preprocessing "
        "(normalization) is read from the metrics.json of the run folder the model is in, unless given.",
    )
    sub.add_argument("model_file", metavar="MODEL_FILE")
    sub.add_argument(
        "--dataset", required=True,
        help="'digits', a TensorFlow Datasets name, or an image folder (one subfolder per class: "
        "per-class precision and recall, a confusion matrix and the misclassified images)",
    )
    sub.add_argument("--report", metavar="DIR",
                     help="an image folder's report folder (default: evaluation-NAME beside MODEL_FILE)")
    sub.add_argument("--crops", type=int, choices=(1, 10), default=1,
                     help="10: four corners and centre, each also flipped, predictions averaged")
    sub.add_argument("--batch-size", type=int, default=64)
    sub.add_argument("--split", help="the split to evaluate (default: test, else validation)")
    sub.add_argument("--data-dir", help="TensorFlow Datasets' data folder")
    sub.add_argument("--normalization", choices=("unit", "mean", "mean_std", "symmetric"))
    sub.add_argument("--resize", type=int, help="the side images are resized to before cropping")
    sub.add_argument("--max-examples", type=int, help="evaluate only the first N images")
    sub.add_argument("--json", action="store_true", help="print the result as JSON on the last line")

    sub = add_command(
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
