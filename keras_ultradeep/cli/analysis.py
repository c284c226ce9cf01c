"""The ``analyze`` command: the papers' analyses of a saved model (keras_ultradeep.analysis)."""

from __future__ import annotations

from keras_ultradeep.cli.common import add_command

__all__ = ["add_commands"]


def _analyze(args):
    import json

    from keras_ultradeep.analysis import command

    result = command.analyze(
        args.analysis, args.model_file, dataset=args.dataset, kind=args.kind, draws=args.draws,
        max_removed=args.max_removed, samples=args.samples, batch_size=args.batch_size,
        max_examples=args.max_examples, seed=args.seed, plot=args.plot,
    )
    print(command.summary(result))
    if args.plot:
        print(f"Wrote {args.plot}")
    if args.json:
        print(json.dumps(result))


def add_commands(commands):
    sub = add_command(
        commands,
        "analyze",
        _analyze,
        help="lesion study, path lengths, DenseNet feature reuse or FractalNet columns of a saved model",
        description="lesion: accuracy with each residual block (or a plain network's layer) removed, "
        "then k random ones (Veit et al. 2016); paths: gradient by path length and the effective path "
        "length (Veit et al.); reuse: the DenseNet weight heatmaps (Huang et al. 2017, Fig. 5); "
        "columns: each FractalNet column alone (Larsson et al. 2017).",
    )
    sub.add_argument("analysis", choices=("lesion", "paths", "reuse", "columns"))
    sub.add_argument("model_file", metavar="MODEL_FILE", help="a .keras file")
    sub.add_argument(
        "--dataset", metavar="NAME|PATH",
        help="'digits' (offline), a TensorFlow Datasets name, or what the training dataset loader "
        "accepts; its validation split is used (reuse needs none)",
    )
    sub.add_argument(
        "--kind", choices=("auto", "residual", "plain"), default="auto",
        help="lesion: residual blocks or a plain network's layers (auto: residual if the model has any)",
    )
    sub.add_argument("--draws", type=int, default=5, help="lesion: random sets per number of blocks removed")
    sub.add_argument("--max-removed", type=int, help="lesion: the most blocks removed at random (default all)")
    sub.add_argument("--samples", type=int, default=8, help="paths: random batches per path length")
    sub.add_argument("--batch-size", type=int, default=128)
    sub.add_argument("--max-examples", type=int, help="use only the first N validation images")
    sub.add_argument("--seed", type=int, default=0, help="the random draws' seed")
    sub.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    sub.add_argument("--plot", metavar="FILE.png", help="write the figure to FILE.png")
