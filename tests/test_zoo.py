"""The model zoo table cannot drift: keras_ultradeep/zoo.json matches the registry and the models'
real figures.

``python -m keras_ultradeep.zoo`` writes ``keras_ultradeep/zoo.json`` (parameters, MACs, default and
minimum input of every registered model), which ``keras-ultradeep list`` serves; the site's hook (``docs/hooks/zoo.py``) renders the table from the registry and
that file and refuses to build when they disagree. These tests check the same without building the
site, and rebuild a few cheap models to check their recorded figures.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def zoo_script():
    from keras_ultradeep import zoo

    return zoo


@pytest.fixture(scope="module")
def hook():
    return _load(ROOT / "docs" / "hooks" / "zoo.py", "docs_zoo_hook")


@pytest.fixture(scope="module")
def zoo():
    with open(ROOT / "keras_ultradeep" / "zoo.json", encoding="utf-8") as f:
        return json.load(f)["models"]


def test_zoo_json_lists_exactly_the_registered_models(zoo):
    import keras_ultradeep as ku

    registered = set(ku.list_models())
    assert not registered - set(zoo), (
        f"keras_ultradeep/zoo.json lacks {sorted(registered - set(zoo))}: "
        "run `python -m keras_ultradeep.zoo --missing`"
    )
    assert not set(zoo) - registered, f"keras_ultradeep/zoo.json lists unregistered models {sorted(set(zoo) - registered)}"


def test_zoo_json_default_sizes_and_families_match_the_registry(zoo):
    from keras_ultradeep import registry

    for name, figures in zoo.items():
        entry = registry.model_entry(name)
        assert figures["default_size"] == entry.default_size, name
        assert figures["min_size"] == entry.min_size, name
        assert figures["family"] == entry.family, name
        assert figures["input_shape"][:2] == [entry.default_size] * 2, name
        assert 0 < figures["trainable_params"] <= figures["params"], name
        assert figures["macs"] > 0, name


# test_contract.py builds every registered model at its default input and holds
# it to its row (zoo.build_at_default + zoo.row, what `measure` runs).


def test_counts_are_at_the_default_input_as_keras_applications_counts(zoo):
    # keras.applications' documented totals: a Flatten head makes them depend
    # on the input, so they hold only at the default input, not the minimum.
    assert zoo["vgg16_keras" if "vgg16_keras" in zoo else "vgg16"]["params"] == 138_357_544
    assert zoo["vgg19_keras" if "vgg19_keras" in zoo else "vgg19"]["params"] == 143_667_240
    assert zoo["alexnet"]["params"] == 60_965_224
    assert zoo["densenet121"]["params"] == 8_062_504


def test_published_and_parity_tables_name_registered_models(hook, zoo):
    rows = hook.zoo_rows(zoo=zoo)
    import keras_ultradeep as ku

    assert [row["name"] for row in rows] == ku.list_models()
    densenet121 = next(row for row in rows if row["name"] == "densenet121")
    assert "25.02" in densenet121["error"] and "Table 3" in densenet121["source"]
    assert "`imagenet`" in densenet121["weights"] and "keras-applications" in densenet121["weights"]
    assert densenet121["page"] == "densenet"
    table = hook.zoo_table(rows)
    assert table.count("\n| `") == len(rows)


def test_the_build_refuses_a_stale_zoo_json(hook, zoo):
    from mkdocs.exceptions import PluginError

    import keras_ultradeep as ku

    names = ku.list_models()
    stale = dict(zoo)
    del stale[names[0]]
    with pytest.raises(PluginError, match=f"missing: {names[0]}"):
        hook.check_zoo(names, stale)
    with pytest.raises(PluginError, match="not registered: not_a_model"):
        hook.check_zoo(names, {**zoo, "not_a_model": zoo[names[0]]})


def test_zoo_script_writes_atomically_and_keeps_other_entries(zoo_script, tmp_path, zoo):
    output = tmp_path / "zoo.json"
    zoo_script.write({"densenet40_k12": zoo["densenet40_k12"], "not_registered": {}}, output)
    assert zoo_script.main(["lenet5", "--output", str(output)]) == 0
    written = zoo_script.load(output)
    assert set(written) == {"densenet40_k12", "lenet5"}  # unregistered names are dropped
    assert written["lenet5"] == zoo["lenet5"]
    assert [p.name for p in tmp_path.iterdir()] == ["zoo.json"]


def test_every_registered_model_is_on_a_family_page(hook):
    import keras_ultradeep as ku

    pages = hook.page_models(ku)
    covered = {name for names in pages.values() for name in names}
    assert sorted(set(ku.list_models()) - covered) == []


def test_family_pages_get_their_recipes_and_results(hook):
    from keras_ultradeep.training.recipes import RECIPES

    page = (
        "## On the bundled digits\n\ntext\n\n| recipe | model | acc |\n|---|---|---|\n"
        "| `wrn_cifar` | `wrn16_4` | 0.98 |\n| `resnet_cifar` | `resnet20_cifar` | 0.97 |\n"
    )
    section = hook.recipe_markdown(["wrn16_4", "wrn28_10"], RECIPES, page)
    assert section.startswith("## Training recipes")
    assert "- `wrn_cifar` (`wrn28_10`, `wrn16_4`): Zagoruyko & Komodakis 2016" in section
    assert "resnet_cifar" not in section  # neither its recipe nor its result row
    assert "| recipe | model | acc |\n|---|---|---|\n| `wrn_cifar` | `wrn16_4` | 0.98 |" in section
    section = hook.recipe_markdown(["vgg16"], RECIPES, page)
    assert "No setting from this family's papers" in section and "has been trained" in section


def test_readme_model_table_and_layout_are_generated_from_the_registry():
    readme = _load(ROOT / "docs" / "scripts" / "readme.py", "docs_readme_script")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.render(text) == text, "README.md is stale: run `python docs/scripts/readme.py`"
    import keras_ultradeep as ku
    from keras_ultradeep import registry

    table = text.split("<!-- models:start -->")[1].split("<!-- models:end -->")[0]
    assert {registry.model_entry(n).family for n in ku.list_models()} <= set(re.findall(r"(\w+) \(\d+x\d+\)", table))
    rows = [line.split(" | ")[2].rstrip(" |").split(", ") for line in table.strip().splitlines()[2:]]
    assert sorted(name for row in rows for name in row) == ku.list_models()
    layout = text.split("<!-- layout:start -->")[1]
    for module in (ROOT / "keras_ultradeep" / "models").glob("*.py"):
        assert module.name == "__init__.py" or module.name in layout, module.name
