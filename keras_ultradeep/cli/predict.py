"""The ``predict`` command: classify image files with a trained or pretrained model."""

from __future__ import annotations

from keras_ultradeep.cli.common import FAILURE, add_command

__all__ = ["add_commands"]


def _predict(args):
    import json
    import sys

    from keras_ultradeep import predict

    classifier = predict.load_classifier(args.model)
    results, errors = predict.classify_files(classifier, args.images, top_k=args.top_k)
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            shown = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in result["predictions"])
            print(f"{result['image']}: {shown}")
    for message in errors.values():
        print(f"keras-ultradeep predict: error: {message}", file=sys.stderr)
    return FAILURE if errors else 0


def add_commands(commands):
    sub = add_command(
        commands,
        "predict",
        _predict,
        help="classify image files with a .keras model, or a pretrained <arch>.<tag>",
        description="Prints the top-k classes of each IMAGE (JPEG, PNG, BMP or GIF, any size, grayscale "
        "or colour), prepared as the model's data configuration says. MODEL is a .keras file written by "
        "train or tune (its own class names), <arch>.<tag> (pretrained, ImageNet class names) or a "
        "registry name with pretrained weights. An unreadable image is named on stderr, the others are "
        "still classified, and the exit status is 1.",
    )
    sub.add_argument("model", metavar="MODEL")
    sub.add_argument("images", metavar="IMAGE", nargs="+")
    sub.add_argument("--top-k", type=int, default=5, help="how many classes to show per image")
    sub.add_argument("--json", action="store_true", help="one JSON object per image")
