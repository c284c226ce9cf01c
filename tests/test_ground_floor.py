"""The ground-floor modules: checks (one wording per rule) and atomic files."""

import ast
import os
from pathlib import Path

import pytest

from keras_ultradeep import checks, files

PACKAGE = Path(checks.__file__).parent


@pytest.mark.parametrize("module", ["checks.py", "files.py"])
def test_ground_floor_imports_nothing_of_ours(module):
    tree = ast.parse((PACKAGE / module).read_text())
    imported = [
        alias.name if isinstance(node, ast.Import) else (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    assert not [name for name in imported if name.startswith("keras")], imported


def test_positive_int():
    assert checks.positive_int(3, "depth") == 3
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=r"^depth: expected a positive integer, got "):
            checks.positive_int(bad, "depth")


def test_boolean_is_a_type_error():
    assert checks.boolean(False, "include_top") is False
    with pytest.raises(TypeError, match=r"^include_top: expected True or False, got 1$"):
        checks.boolean(1, "include_top")


def test_integer_bounds_are_worded():
    assert checks.integer(0, "seed") == 0
    with pytest.raises(ValueError, match=r"pool_size: expected an integer >= 2, got 1"):
        checks.integer(1, "pool_size", minimum=2)
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, 5\], got 6"):
        checks.integer(6, "k", minimum=1, maximum=5)


def test_number_in_writes_the_interval():
    assert checks.number_in(0.0, "dropout_rate", 0, 1, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"dropout_rate: expected a number in \[0, 1\), got 1"):
        checks.number_in(1, "dropout_rate", 0, 1, high_open=True)
    with pytest.raises(ValueError, match=r"survival_prob: expected a number in \(0, 1\], got 0"):
        checks.number_in(0, "survival_prob", 0, 1, low_open=True)
    for bad in (float("nan"), float("inf"), True, "0.5"):
        with pytest.raises(ValueError):
            checks.number_in(bad, "rate", 0, 1)


def test_positive_number_and_sequences_and_choices():
    assert checks.positive_number(1e-5, "batch_norm_epsilon") == 1e-5
    with pytest.raises(ValueError, match="batch_norm_epsilon: expected a positive number, got 0"):
        checks.positive_number(0, "batch_norm_epsilon")
    assert checks.positive_ints([6, 12], "blocks", what="block counts") == (6, 12)
    with pytest.raises(ValueError, match=r"blocks: expected 4 block counts, got \(1, 2\)"):
        checks.positive_ints((1, 2), "blocks", length=4, what="block counts")
    assert checks.one_of("avg", "pooling", (None, "avg", "max")) == "avg"
    with pytest.raises(ValueError, match=r"pooling: expected one of None, 'avg', 'max', got 'mean'"):
        checks.one_of("mean", "pooling", (None, "avg", "max"))
    assert checks.optional_int(None, "seed") is None
    with pytest.raises(ValueError, match="seed: expected None or an integer"):
        checks.optional_int(1.5, "seed")


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.weights.h5"
    files.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as temp:
            assert temp.name == target.name and temp.parent != tmp_path
            temp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary left
    with files.atomic_path(target) as temp:
        temp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_path_replaces_a_folder_and_refuses_without_overwrite(tmp_path):
    target = tmp_path / "saved_model"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with files.atomic_path(target) as temp:
        temp.mkdir()
        (temp / "new.pb").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.pb"]
    with pytest.raises(FileExistsError):
        with files.atomic_path(target, overwrite=False):
            pass
    with pytest.raises(FileNotFoundError, match="wrote nothing"):
        with files.atomic_path(tmp_path / "empty.txt"):
            pass
    assert sorted(os.listdir(tmp_path)) == ["saved_model"]


def test_link_or_copy(tmp_path):
    source = files.write_bytes(tmp_path / "a.keras", b"abc")
    copy = files.link_or_copy(source, tmp_path / "b.keras")
    assert copy.read_bytes() == b"abc"


def test_builder_names_resolve_to_registry_names():
    from keras_ultradeep import registry

    assert registry.resolve_name("densenet121") == "densenet121"
    assert registry.resolve_name("DenseNet121") == "densenet121"
    assert registry.resolve_name("ResNet50") == "resnet50_keras"  # keras.applications' ResNet50
    assert registry.model_entry("ResNet50B").name == "resnet50"
    # A family builder registered under several names stands for none of them.
    with pytest.raises(ValueError, match="unknown model 'ResNetCIFAR'"):
        registry.resolve_name("ResNetCIFAR")
    with pytest.raises(TypeError, match="name: expected a model name string"):
        registry.resolve_name(121)
