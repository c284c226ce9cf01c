"""Evaluating a trained model on an image folder: ``evaluate MODEL_FILE --dataset PATH``.

Writes, into the report folder: ``report.json`` (top-1, top-5, per-class
precision, recall and support, the confusion matrix, the misclassified files),
``confusion_matrix.png`` and ``misclassified.png`` (a grid of up to 36 of the
misclassified images, each titled with its true and predicted class).

The images are those of ``PATH/val`` when the folder has ``train``/``val``
subfolders, else every image of ``PATH``; they are prepared the way the model
file says (its stored data configuration, as ``predict`` does), and matched to
the model's classes by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_ultradeep import checks, files

__all__ = ["evaluate_folder", "REPORT_FILE", "CONFUSION_FILE", "MISCLASSIFIED_FILE"]

REPORT_FILE = "report.json"
CONFUSION_FILE = "confusion_matrix.png"
MISCLASSIFIED_FILE = "misclassified.png"
_GRID = 36


def _metrics(labels, probabilities, class_names):
    predictions = probabilities.argmax(-1)
    classes = len(class_names)
    confusion = np.zeros((classes, classes), int)
    np.add.at(confusion, (labels, predictions), 1)
    top_k = min(5, classes)
    top5 = np.argsort(-probabilities, axis=-1)[:, :top_k]
    per_class = {}
    for index, name in enumerate(class_names):
        predicted = confusion[:, index].sum()
        actual = confusion[index].sum()
        per_class[name] = {
            "precision": float(confusion[index, index] / predicted) if predicted else None,
            "recall": float(confusion[index, index] / actual) if actual else None,
            "support": int(actual),
        }
    return {
        "top1": float(np.mean(predictions == labels)),
        "top5": float(np.mean([label in row for label, row in zip(labels, top5)])),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def _confusion_png(confusion, class_names, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    confusion = np.asarray(confusion)
    side = max(4.0, 0.5 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(side, side))
    axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=90)
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(class_names) <= 30:
        for (row, column), count in np.ndenumerate(confusion):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def _misclassified_png(images, titles, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    columns = min(6, max(1, len(images)))
    rows = max(1, -(-len(images) // columns))
    figure, grid = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image, title in zip(grid.flat, images, titles):
        axes.imshow(np.clip(image, 0, 255).astype("uint8"))
        axes.set_title(title, fontsize=7)
    if not images:
        grid[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def _evaluation_files(folder):
    """``(root, files with class names)``: ``folder/val`` when there is a train/val split, else ``folder``."""
    from keras_ultradeep.training import folders

    layout = folders.scan(folder, argument="dataset")
    root = layout.root / folders.VAL if layout.split_folders else layout.root
    pairs = layout.val_files if layout.split_folders else layout.train_files + layout.val_files
    return root, sorted((str(path), layout.class_names[label]) for path, label in pairs)


def evaluate_folder(model_file, folder, *, output=None, batch_size=32):
    """Evaluates the ``.keras`` model ``model_file`` on the image folder ``folder``.

    Writes the report files into ``output`` (default: ``evaluation-<folder name>``
    beside the model file) and returns the report.
    """
    from keras_ultradeep import predict

    checks.positive_int(batch_size, "batch_size")
    model_path = Path(model_file)
    if not model_path.is_file():
        raise FileNotFoundError(f"model_file: no such file {str(model_file)!r}")
    _, items = _evaluation_files(folder)
    classifier = predict.load_classifier(str(model_path))
    class_names = list(classifier.class_names)
    unknown = sorted({name for _, name in items} - set(class_names))
    if unknown:
        raise ValueError(
            f"dataset: the model was trained on {', '.join(class_names)}; the folder has other "
            f"classes ({', '.join(unknown)})"
        )
    output = Path(output) if output is not None else model_path.parent / f"evaluation-{Path(folder).name}"
    paths = [path for path, _ in items]
    labels = np.array([class_names.index(name) for _, name in items])
    images = np.stack([predict.read_image(path, classifier) for path in paths])
    probabilities = np.asarray(classifier.model.predict(images, batch_size=batch_size, verbose=0), "float64")
    report = {
        "model": str(model_file),
        "dataset": str(folder),
        "examples": len(paths),
        "class_names": class_names,
        **_metrics(labels, probabilities, class_names),
    }
    predicted = probabilities.argmax(-1)
    wrong = np.flatnonzero(predicted != labels)
    report["misclassified"] = [
        {"image": paths[i], "true": class_names[labels[i]], "predicted": class_names[predicted[i]],
         "probability": float(probabilities[i, predicted[i]])}
        for i in wrong
    ]
    output.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(output / CONFUSION_FILE) as temp:
        _confusion_png(report["confusion_matrix"], class_names, temp)
    shown = wrong[:_GRID]
    with files.atomic_path(output / MISCLASSIFIED_FILE) as temp:
        _misclassified_png(
            [_original(paths[i]) for i in shown],
            [f"{class_names[labels[i]]} -> {class_names[predicted[i]]}" for i in shown],
            temp,
        )
    report["files"] = {
        "report": str(output / REPORT_FILE),
        "confusion_matrix": str(output / CONFUSION_FILE),
        "misclassified": str(output / MISCLASSIFIED_FILE),
    }
    files.write_text(output / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    return report


def _original(path):
    """The image file as RGB pixels, for the grid."""
    import tensorflow as tf

    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy()
