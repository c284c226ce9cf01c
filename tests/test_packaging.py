"""pyproject.toml lists its packages by hand (weights/ ships as keras_ultradeep._weights):
every package folder of the source tree must be in the list, or a non-editable
install silently leaves it out."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "keras_ultradeep").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk <= listed, sorted(on_disk - listed)
    assert config["package-dir"]["keras_ultradeep._weights"] == "weights"
    assert (ROOT / "weights" / "manifest.json").is_file()
