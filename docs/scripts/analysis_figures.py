"""Trains the analysis pages' models on the bundled digits and draws their figures.

    python docs/scripts/analysis_figures.py                 # 10-20 minutes on 2 shared CPU cores
    python docs/scripts/analysis_figures.py --work runs/analysis --out docs/assets/analysis

Every model trains with ``keras-ultradeep train`` (Adam, cosine decay, the
same epochs for a plain net and its ResNet) into ``WORK/<name>/``, which a
rerun reuses; the analyses then run with ``keras-ultradeep analyze`` on the
saved ``model.keras`` files and their digits validation split (360 images).
The PNGs and ``results.json`` (every figure quoted on the pages, the final
validation accuracies and the seconds each analysis took) go to ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EPOCHS = 3
BATCH_SIZE = 64
# name -> (registry model, model arguments, epochs)
MODELS = {
    "resnet20_cifar": ("resnet20_cifar", [], EPOCHS),
    "plain20_cifar": ("plain20_cifar", [], EPOCHS),
    "resnet56_cifar": ("resnet56_cifar", [], EPOCHS),
    "plain56_cifar": ("plain56_cifar", [], EPOCHS),
    "resnet20_cifar_sd": ("resnet20_cifar", ["survival_prob=0.5"], EPOCHS),
    "densenet40_k12": ("densenet40_k12", [], EPOCHS),
    # FractalNet-20's columns (C = 3), drop-path and dropout, three narrow blocks for 8x8 inputs;
    # half its batches train one column alone, so it gets more epochs.
    "fractalnet_small": (
        "fractalnet20",
        ["blocks=3", "filters=(16,32,64)", "dropout_rates=(0.0,0.1,0.2)"],
        8,
    ),
}


def _train(work, name):
    from keras_ultradeep import cli

    model, arguments, epochs = MODELS[name]
    folder = work / name
    if (folder / "model.keras").is_file():
        return folder
    argv = ["train", model, "--dataset", "digits", "--epochs", str(epochs), "--batch-size", str(BATCH_SIZE),
            "--output", str(folder)]
    for argument in arguments:
        argv += ["--model-arg", argument]
    if cli.main(argv) != 0:
        raise SystemExit(f"training {name} failed")
    return folder


def _final_accuracies(folder):
    """``{"train": ..., "validation": ...}`` of the last epoch (the train figure as Keras logs it)."""
    with open(folder / "metrics.json", encoding="utf-8") as f:
        last = json.load(f)["history"][-1]
    return {"train": last["accuracy"], "validation": last["val_accuracy"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / "runs" / "analysis"), help="training runs (reused)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "assets" / "analysis"), help="PNGs and results.json")
    args = parser.parse_args(argv)
    work, out = Path(args.work), Path(args.out)

    from keras_ultradeep import analysis, files
    from keras_ultradeep.analysis import command

    folders = {}
    for name in MODELS:
        start = time.perf_counter()
        folders[name] = _train(work, name)
        print(f"{name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    results = {"epochs": {n: m[2] for n, m in MODELS.items()}, "accuracy": {n: _final_accuracies(f) for n, f in folders.items()}}
    timings = results["seconds"] = {}

    def run(key, analysis_name, name, **options):
        start = time.perf_counter()
        result = command.analyze(analysis_name, folders[name] / "model.keras", progress=False, **options)
        timings[key] = round(time.perf_counter() - start, 1)
        results[key] = result
        print(f"{key}: {timings[key]} s", flush=True)
        return result

    for depth in (20, 56):
        residual = run(f"lesion_resnet{depth}", "lesion", f"resnet{depth}_cifar", dataset="digits")
        plain = run(f"lesion_plain{depth}", "lesion", f"plain{depth}_cifar", dataset="digits")
        analysis.plot([residual, plain], out / f"lesion_{depth}.png",
                      title=f"ResNet-{depth} against plain-{depth} on digits")
    paths = run("paths_resnet56", "paths", "resnet56_cifar", dataset="digits")
    analysis.plot(paths, out / "paths_resnet56.png", title="ResNet-56 (27 blocks) on digits")
    reuse = run("reuse_densenet40", "reuse", "densenet40_k12")
    analysis.plot(reuse, out / "reuse_densenet40.png", title="DenseNet (L=40, k=12) trained on digits")
    columns = run("columns_fractal", "columns", "fractalnet_small", dataset="digits")
    analysis.plot(columns, out / "columns_fractal.png", title="FractalNet (C=3, 3 blocks) on digits")

    import keras

    start = time.perf_counter()
    model = keras.models.load_model(folders["resnet20_cifar_sd"] / "model.keras", compile=False, safe_mode=True)
    data = command.load_validation(model, folders["resnet20_cifar_sd"] / "model.keras", "digits")
    depth_result = analysis.stochastic_depth(model, data)
    timings["stochastic_depth_resnet20"] = round(time.perf_counter() - start, 1)
    results["stochastic_depth_resnet20"] = depth_result
    analysis.plot(depth_result, out / "stochastic_depth_resnet20.png",
                  title="ResNet-20, stochastic depth (p_L = 0.5), on digits")
    files.write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    print(json.dumps({"accuracy": results["accuracy"], "seconds": timings}, indent=1))


if __name__ == "__main__":
    main()
