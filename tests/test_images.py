"""Your own images: training on a class-per-subfolder folder, fine-tuning a pretrained tag,
``predict``, ``evaluate`` on a folder, and model files that load with plain Keras anywhere.

Folders are written from scikit-learn's bundled digits (``image_folders``); every model is a
tiny DenseNet (L=10, k=4) at 16x16; pretrained weights come from a server on 127.0.0.1.
"""

import hashlib
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

import keras_ultradeep as ku
from keras_ultradeep import cli, saving
from keras_ultradeep import weights as weights_lib
from keras_ultradeep.training import datasets, fit, folders

from image_folders import write_digit_folder

TINY = {"depth": 10, "growth_rate": 4}
PNG = b"\x89PNG\r\n\x1a\n"


def _train(output, dataset, model="densenet40_k12", **overrides):
    arguments = dict(dataset=str(dataset), epochs=2, batch_size=16, input_size=16, output=output,
                     model_kwargs=TINY, verbose=0, tensorboard=False, plot=False)
    arguments.update(overrides)
    return fit.train(model, **arguments)


def _run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A mixed folder (PNG/JPEG/BMP/GIF, L/RGB/RGBA/P, 16-24 px) and a finished run on it."""
    root = tmp_path_factory.mktemp("images")
    folder = write_digit_folder(root / "digits", per_class=20, mixed=True, names=("zero", "one", "two"))
    heldout = write_digit_folder(root / "heldout", per_class=2, offset=100, size=20, names=("zero", "one", "two"))
    record = _train(root / "run", folder, epochs=6, learning_rate=0.01)
    return folder, heldout, root / "run", record


# ------------------------------------------------------------------ training on a folder


@pytest.mark.slow
def test_folder_run_stores_class_names_and_data_config(folder_run):
    folder, _, run, record = folder_run
    assert record["complete"] and record["classes"] == 3 and record["input_shape"] == [16, 16, 3]
    # A stratified 20% per class: 4 of each class's 20 images validate.
    assert (record["train_examples"], record["validation_examples"]) == (48, 12)
    info = saving.read_model_info(run / "model.keras")
    assert info["class_names"] == ["one", "two", "zero"]
    assert info["data_config"]["input_size"] == [16, 16, 3]
    assert saving.read_model_info(run / "checkpoints" / "best.keras")["class_names"] == info["class_names"]
    assert record["best_val_accuracy"] > 0.6, record["history"]


def test_stratified_split_is_seeded_and_per_class():
    labels = [0] * 10 + [1] * 5 + [2] * 2
    train, val = folders.stratified_split(labels, 0.2, seed=3)
    assert sorted(np.bincount(np.asarray(labels)[val]).tolist()) == [1, 1, 2]
    assert set(train) | set(val) == set(range(17)) and not set(train) & set(val)
    again = folders.stratified_split(labels, 0.2, seed=3)
    assert [a.tolist() for a in again] == [train.tolist(), val.tolist()]
    assert folders.stratified_split(labels, 0.2, seed=4)[1].tolist() != val.tolist()


def test_train_and_val_subfolders_are_used_as_given(tmp_path):
    write_digit_folder(tmp_path / "data" / "train", digits=(3, 4), per_class=6)
    write_digit_folder(tmp_path / "data" / "val", digits=(3, 4), per_class=3, offset=50)
    data = datasets.load_dataset(str(tmp_path / "data"), batch_size=4, input_size=8)
    assert (data.train_examples, data.validation_examples) == (12, 6)
    assert data.class_names == ("digit_3", "digit_4")
    assert sum(len(y) for _, y in data.validation) == 6
    images, _ = next(iter(data.validation))
    assert images.shape == (4, 8, 8, 3) and float(np.max(images)) <= 1.0


def _one_class(root):
    write_digit_folder(root, digits=(1,), per_class=3)


def _empty_class(root):
    write_digit_folder(root, digits=(1, 2), per_class=3)
    (root / "digit_7").mkdir()


def _text_file(root):
    write_digit_folder(root, digits=(1, 2), per_class=3)
    (root / "digit_2" / "notes.txt").write_text("not an image")


def _misnamed_file(root):
    write_digit_folder(root, digits=(1, 2), per_class=3)
    (root / "digit_1" / "fake.png").write_text("not a png either")


def _loose_file(root):
    write_digit_folder(root, digits=(1, 2), per_class=3)
    (root / "readme.md").write_text("x")


def _split_mismatch(root):
    write_digit_folder(root / "train", digits=(1, 2), per_class=3)
    write_digit_folder(root / "val", digits=(1, 3), per_class=3)


@pytest.mark.parametrize(
    "make, message",
    [
        (_one_class, "has 1 class subfolder; expected at least 2"),
        (_empty_class, "class 'digit_7' .* has no images"),
        (_text_file, "notes.txt' is not a JPEG, PNG, BMP or GIF image"),
        (_misnamed_file, "fake.png' is not a JPEG, PNG, BMP or GIF image"),
        (_loose_file, "holds files outside class subfolders \\(readme.md\\)"),
        (_split_mismatch, "have different classes \\(digit_2, digit_3 in one only\\)"),
    ],
)
def test_bad_folders_are_refused_before_training(tmp_path, make, message):
    make(tmp_path / "data")
    with pytest.raises(ValueError, match="dataset: .*" + message):
        _train(tmp_path / "run", tmp_path / "data")
    assert not (tmp_path / "run").exists()


def test_bad_val_split_and_cli_errors(tmp_path, capsys):
    folder = write_digit_folder(tmp_path / "data", digits=(1, 2), per_class=4)
    with pytest.raises(ValueError, match=r"val_split: expected a number in \(0, 1\), got 1.5"):
        _train(tmp_path / "run", folder, val_split=1.5)
    status, _, err = _run(capsys, "train", "densenet40_k12", "--dataset", tmp_path / "nowhere",
                          "--epochs", "1", "--output", tmp_path / "run")
    assert status == 2 and "--dataset: unknown dataset" in err and "one subfolder of images per class" in err
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- predict


def test_predict_prints_the_folders_class_names(folder_run, capsys):
    _, heldout, run, _ = folder_run
    images = sorted(heldout.rglob("*.png"))
    status, out, err = _run(capsys, "predict", run / "model.keras", *images, "--top-k", "2")
    assert status == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(images) == 6
    for line, image in zip(lines, images):
        path, _, shown = line.partition(": ")
        names = shown.split(", ")
        assert path == str(image) and len(names) == 2
        assert {n.split()[0] for n in names} <= {"zero", "one", "two"}
    correct = sum(line.split(": ")[1].split()[0] == image.parent.name for line, image in zip(lines, images))
    assert correct >= 4, out


def test_predict_json_and_an_unreadable_image(folder_run, tmp_path, capsys):
    _, heldout, run, _ = folder_run
    good = sorted(heldout.rglob("*.png"))[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff truncated")
    status, out, err = _run(capsys, "predict", run / "model.keras", good[0], broken, good[1],
                            tmp_path / "missing.png", "--json", "--top-k", "5")
    assert status == 1
    results = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["image"] for r in results] == [str(good[0]), str(good[1])]
    for result in results:
        probabilities = [p["probability"] for p in result["predictions"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)  # 3 classes
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert f"cannot read '{broken}': not a JPEG, PNG, BMP or GIF image" in err
    assert f"no such file '{tmp_path / 'missing.png'}'" in err


def test_predict_bad_model_arguments(tmp_path, capsys):
    status, _, err = _run(capsys, "predict", tmp_path / "none.keras", "x.png")
    assert status == 2 and "MODEL: no such file" in err
    status, _, err = _run(capsys, "predict", "densenet40_k12", "x.png")
    assert status == 2 and "densenet40_k12 has no pretrained weights" in err
    status, _, err = _run(capsys, "predict", "densenet121.nope", "x.png")
    assert status == 2 and "no pretrained tag 'nope'" in err
    status, _, err = _run(capsys, "predict", "densenet40_k12", "x.png", "--top-k", "0")
    assert status == 2


# -------------------------------------------------------------------------- evaluate


@pytest.mark.slow
def test_evaluate_on_a_folder_writes_the_report(folder_run, tmp_path, capsys):
    folder, _, run, _ = folder_run
    report_dir = tmp_path / "report"
    status, out, err = _run(capsys, "evaluate", run / "model.keras", "--dataset", folder, "--report", report_dir)
    assert status == 0, err
    report = json.loads((report_dir / "report.json").read_text())
    assert report["examples"] == 60 and report["class_names"] == ["one", "two", "zero"]
    confusion = np.array(report["confusion_matrix"])
    assert confusion.sum() == 60 and confusion.sum(1).tolist() == [20, 20, 20]
    assert report["top1"] == pytest.approx(np.trace(confusion) / 60)
    assert report["top5"] == 1.0  # three classes
    for name, row in report["per_class"].items():
        index = report["class_names"].index(name)
        assert row["recall"] == pytest.approx(confusion[index, index] / 20)
        assert row["support"] == 20
    assert len(report["misclassified"]) == 60 - np.trace(confusion)
    for name in ("confusion_matrix.png", "misclassified.png"):
        assert (report_dir / name).read_bytes()[:8] == PNG
    assert f"top-1 {report['top1']:.4f}" in out and "PRECISION" in out


def test_evaluate_refuses_a_folder_with_other_classes(folder_run, tmp_path):
    from keras_ultradeep.training import report

    _, _, run, _ = folder_run
    other = write_digit_folder(tmp_path / "other", digits=(5, 6), per_class=2)
    with pytest.raises(ValueError, match="dataset: the model was trained on one, two, zero; .*digit_5, digit_6"):
        report.evaluate_folder(run / "model.keras", other, output=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# --------------------------------------------- plain keras.models.load_model, fresh process


_LOAD = textwrap.dedent(
    """
    import sys, json
    import numpy as np
    import keras_ultradeep
    import keras
    out = {}
    for path in sys.argv[1:]:
        model = keras.models.load_model(path)  # safe_mode on
        x = np.random.default_rng(0).uniform(0, 1, (4,) + tuple(model.input_shape[1:])).astype("float32")
        y = np.arange(4) % model.output_shape[-1]
        if model.loss.__class__.__name__ == "CategoricalCrossentropy":
            y = np.eye(model.output_shape[-1])[y]
        model.fit(x, y, epochs=1, verbose=0)  # training goes on
        out[path] = [type(model.optimizer).__module__, type(model.optimizer).__name__]
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_every_recipe_and_optimizer_loads_with_plain_keras(folder_run, tmp_path):
    from keras_ultradeep.training import build, finetune, recipes, settings

    _, _, run, _ = folder_run
    paths = [str(run / "model.keras")]
    for name in recipes.list_recipes():
        config = recipes.resolve(name, epochs=2, milestones=[1.0]) if name != "default" else recipes.resolve(name, epochs=2)
        config.pop("input_size")
        run_settings = settings.TrainSettings(model="densenet40_k12", model_kwargs=TINY, dataset="digits",
                                              input_size=8, **config)
        model = build.build_model("densenet40_k12", TINY, input_shape=(8, 8, 1), classes=10)
        phase = finetune.phases(run_settings, 2)[0]
        optimizer = build.make_optimizer(run_settings, steps_per_epoch=3, total_epochs=2, boundaries=[3],
                                         learning_rate=phase.learning_rate, schedule=phase.schedule)
        build.compile_model(model, optimizer, label_smoothing=run_settings.label_smoothing, top5=True)
        # The optimizer's slots as a step would create them (folder_run's model.keras
        # comes from a real training run).
        optimizer.build(model.trainable_variables)
        path = tmp_path / f"{name}.keras"
        model.save(path)
        paths.append(str(path))
    result = subprocess.run([sys.executable, "-c", _LOAD, *paths], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    kinds = {tuple(v) for v in loaded.values()}
    assert {name for _, name in kinds} == {"SGD", "RMSprop", "Adam"}
    assert all(module == "keras_ultradeep.training.optimizers" for module, _ in kinds)
    # The issue's own command: Keras imported first, then the package.
    code = f"import keras, keras_ultradeep; keras.models.load_model({paths[0]!r}); print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# ----------------------------------------------------------------------- fine-tuning

TAG = "test_in1k"
TAG_CONFIG = {"input_size": [224, 224, 3], "mean": [0.4, 0.4, 0.4], "std": [0.3, 0.3, 0.3],
              "crop_pct": 0.875, "interpolation": "bicubic", "channel_order": "RGB"}
ARCH = "densenet121"  # the smallest registry model whose builder looks tags up under its own name


@pytest.fixture(scope="module")
def tag_files(tmp_path_factory):
    """DenseNet-121 weights files (random, top and no-top), written once for the module."""
    from keras_ultradeep import registry

    root = tmp_path_factory.mktemp("tag")
    top = registry.create_model(ARCH, weights=None)
    rng = np.random.default_rng(0)
    for weight in top.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape) if "variance" in weight.path or "gamma" in weight.path
                      else rng.normal(0, 0.05, weight.shape))
    notop = registry.create_model(ARCH, weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3))
    notop.set_weights(top.get_weights()[: len(notop.weights)])
    top.save_weights(root / "top.weights.h5")
    notop.save_weights(root / "notop.weights.h5")
    keras.backend.clear_session()
    # In build order (a loaded model's nested variables may carry other paths).
    return root, [(w.path, w.numpy()) for w in notop.weights], notop.output_shape[-1]


@pytest.fixture
def pretrained_tag(tag_files, file_server, monkeypatch):
    """A pretrained tag of densenet121 (random weights) served from 127.0.0.1; the model's only tag."""
    import shutil

    source, pretrained, features = tag_files
    root, url_of, _ = file_server
    files = {}
    for kind in ("top", "notop"):
        shutil.copyfile(source / f"{kind}.weights.h5", root / f"{kind}.weights.h5")
        files[kind] = {"url": url_of(f"{kind}.weights.h5"), "file_name": f"tag_{kind}.weights.h5",
                       "hash": "sha256:" + hashlib.sha256((root / f"{kind}.weights.h5").read_bytes()).hexdigest()}
    row = weights_lib.Weights(
        arch=ARCH, tag=TAG, source="keras-applications", format="keras-h5", licence="test", classes=1000,
        top1={}, data={**TAG_CONFIG, "test_input_size": TAG_CONFIG["input_size"], "crop_mode": "center"},
        files=files,
    )
    table = {**weights_lib.index(), ARCH: {TAG: row}}
    monkeypatch.setattr(weights_lib.table, "index", lambda: table)
    return pretrained, features


def _tag_train(output, dataset, **overrides):
    return _train(output, dataset, ARCH, weights=TAG, input_size=32, model_kwargs=None, **overrides)


def _body(model):
    return next(layer for layer in model.layers if hasattr(layer, "layers"))


@pytest.mark.slow
def test_fine_tuning_first_phase_trains_only_the_head(pretrained_tag, tmp_path):
    pretrained, features = pretrained_tag
    folder = write_digit_folder(tmp_path / "digits", per_class=8, size=20)
    record = _tag_train(tmp_path / "run", folder, freeze_epochs=1, epochs=1)
    assert record["params"]["trainable"] == 3 * (features + 1)  # the new head only
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    for weight, (_, original) in zip(_body(model).weights, pretrained, strict=True):
        np.testing.assert_array_equal(weight.numpy(), original)


def test_fine_tuning_input_size_defaults_to_the_tags(pretrained_tag, tmp_path):
    from keras_ultradeep.training import settings

    folder = write_digit_folder(tmp_path / "digits", digits=(1, 2), per_class=4)
    arguments = dict(dataset=str(folder), seed=0, input_size=None, model_kwargs=None, recipe=None,
                     overrides={"epochs": 4}, mixed_precision=None)
    _, tuned = settings.resolve_settings(ARCH, weights=TAG, **arguments)
    assert (tuned.input_size, tuned.freeze_epochs, tuned.normalization) == (224, 2, "mean_std")
    _, plain = settings.resolve_settings("densenet40_k12", **arguments)
    assert (plain.input_size, plain.freeze_epochs, plain.normalization) == (32, 0, "unit")


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == 1:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_fine_tuning_freezes_then_trains_the_body_and_resumes_across_the_phase_boundary(pretrained_tag, tmp_path):
    pretrained, _ = pretrained_tag
    folder = write_digit_folder(tmp_path / "digits", per_class=8, size=16)
    options = dict(freeze_epochs=1, epochs=2, seed=1)
    whole = _tag_train(tmp_path / "whole", folder, **options)
    assert whole["complete"] and whole["weights"] == TAG and whole["freeze_epochs"] == 1
    assert whole["normalization"] == "mean_std"  # with the tag's statistics
    assert whole["normalization_mean"] == TAG_CONFIG["mean"] and whole["normalization_std"] == TAG_CONFIG["std"]
    info = saving.read_model_info(tmp_path / "whole" / "model.keras")
    assert (info["data_config"]["crop_pct"], info["data_config"]["interpolation"]) == (0.875, "bicubic")
    assert info["data_config"]["mean"] == TAG_CONFIG["mean"] and info["class_names"] == ["digit_0", "digit_1", "digit_2"]

    final = keras.models.load_model(tmp_path / "whole" / "model.keras")
    body = [w.numpy() for w in _body(final).weights]
    assert len(body) == len(pretrained)
    moving = [i for i, (path, _) in enumerate(pretrained) if "moving" in path]
    kernels = [i for i, (path, _) in enumerate(pretrained) if "kernel" in path]
    assert moving and kernels
    for i in moving:  # BatchNorm in inference mode in both phases: statistics untouched
        np.testing.assert_array_equal(body[i], pretrained[i][1])
    assert any(not np.array_equal(body[i], pretrained[i][1]) for i in kernels)  # phase 2 trained the body
    assert final.output_shape == (None, 3)

    # Interrupted at the end of the first (frozen) phase, then resumed: the same end.
    with pytest.raises(KeyboardInterrupt):
        _tag_train(tmp_path / "cut", folder, callbacks=[_Interrupt()], **options)
    assert not (tmp_path / "cut" / "model.keras").exists()
    resumed = _tag_train(tmp_path / "cut", folder, **options)
    assert [e["epoch"] for e in resumed["history"]] == [1, 2]
    b = keras.models.load_model(tmp_path / "cut" / "model.keras")
    for x, y in zip(final.weights, b.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5)
    assert whole["val_accuracy"] == pytest.approx(resumed["val_accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(weights="nope"), "weights: densenet121 has no pretrained tag 'nope'"),
        (dict(weights=TAG, freeze_epochs=3), r"freeze_epochs: expected an integer in \[0, 2\], got 3"),
        (dict(freeze_epochs=1), "freeze_epochs: only with weights"),
        (dict(weights=TAG, dataset="digits"), "weights: pretrained weights need RGB images"),
    ],
)
def test_fine_tuning_bad_arguments(pretrained_tag, tmp_path, overrides, message):
    folder = write_digit_folder(tmp_path / "digits", digits=(1, 2), per_class=4)
    arguments = dict(overrides, model_kwargs=None, input_size=32)
    with pytest.raises(ValueError, match=message):
        fit.train(ARCH, dataset=str(arguments.pop("dataset", folder)), epochs=2, output=tmp_path / "run",
                  **arguments)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_predict_with_a_pretrained_tag_names_imagenet_classes(pretrained_tag, tmp_path, capsys):
    from keras_ultradeep import predict

    image = write_digit_folder(tmp_path / "digits", digits=(1, 2), per_class=1) / "digit_1" / "1_0000.png"
    status, out, err = _run(capsys, "predict", f"{ARCH}.{TAG}", image, "--top-k", "3", "--json")
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    names = predict.imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) > 990
    assert len(result["predictions"]) == 3 and all(p["class"] in names for p in result["predictions"])
    # A bare name takes the model's (only) tag.
    status, out2, _ = _run(capsys, "predict", ARCH, image, "--top-k", "3", "--json")
    assert status == 0 and json.loads(out2.strip().splitlines()[-1]) == result


def test_read_image_follows_the_data_config(tmp_path):
    from keras_ultradeep import predict

    pixels = np.zeros((20, 40, 3), "uint8")
    pixels[:, 10:30] = 200  # the central square, which a centre crop keeps whole
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    config = {"input_size": (8, 8, 3), "crop_pct": 1.0, "interpolation": "bilinear",
              "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    image = predict.read_image(tmp_path / "wide.png", predict.Classifier(model, ["a", "b"], config, "m"))
    assert image.shape == (8, 8, 3)
    np.testing.assert_allclose(image, (200 / 255 - 0.5) / 0.25, atol=1e-5)


def test_caffe_mode_tags_get_bgr_mean_subtracted_pixels(tmp_path):
    """keras.applications' caffe-mode preprocessing, from data_config, in predict and in training."""
    from keras_ultradeep import predict

    config = ku.data_config("vgg16_keras.imagenet")
    assert config["channel_order"] == "BGR"
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype="uint8")
    expected = keras.applications.vgg16.preprocess_input(pixels.astype("float32")[None])[0]
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    folder = tmp_path / "colours"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    classifier = predict.Classifier(model, ["a", "b"], {**config, "input_size": (8, 8, 3), "crop_pct": 1.0}, "m")
    np.testing.assert_allclose(predict.read_image(folder / "a" / "0.png", classifier), expected, atol=1e-3)

    data = datasets.load_dataset(
        str(folder), batch_size=4, input_size=8, normalization="mean_std", val_split=0.5,
        stats=(config["mean"], config["std"]), channel_order=config["channel_order"],
    )
    images, _ = next(iter(data.validation))
    np.testing.assert_allclose(images.numpy()[0], expected, atol=1e-3)
