"""The documentation site builds (``mkdocs build --strict``) and its model table renders in a browser.

The site is built once into a temporary folder (block diagrams rendered afresh into a temporary
cache), then the built model zoo page is opened in headless Chromium (Debian's ``chromium``
package) and the table in the rendered DOM must list every registered model. Needs the ``docs``
extra (mkdocs, mkdocs-material, mkdocstrings[python], mkdocs-awesome-nav, pydot) and the Debian
packages ``chromium`` and ``graphviz``.
"""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, KU_DOCS_CACHE=str(tmp_path_factory.mktemp("diagrams")), TF_CPP_MIN_LOG_LEVEL="2",
               NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return out


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("headless Chromium is needed: apt-get install -y chromium")


def dump_dom(path):
    """The DOM of a local page after Chromium has loaded it and run its scripts."""
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=5000", "--dump-dom", Path(path).as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


class _Tables(html.parser.HTMLParser):
    """Rows of every table in a DOM: a list of rows, each a list of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.mark.slow
def test_zoo_page_renders_every_registered_model_in_chromium(site):
    import keras_ultradeep as ku

    dom = dump_dom(site / "zoo" / "index.html")
    assert "<title>" in dom and "Model zoo" in dom
    parser = _Tables()
    parser.feed(dom)
    header = next(row for row in parser.rows if row and row[0] == "Model")
    assert header[:6] == ["Model", "Family", "Default input", "Parameters", "GMACs", "Published error"]
    listed = [row[0] for row in parser.rows if row and row[0] != "Model"]
    assert sorted(listed) == ku.list_models()
    densenet121 = next(row for row in parser.rows if row[0] == "densenet121")
    assert densenet121[2] == "224x224x3" and densenet121[3].startswith("8,062,504")


def test_every_page_is_built_and_in_the_navigation(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    pages = [p.relative_to(ROOT / "docs") for p in (ROOT / "docs").rglob("*.md")
             if not {"hooks", "scripts"} & set(p.parts)]
    assert len(pages) > 20
    for page in pages:
        stem = page.with_suffix("")
        target = stem.parent if stem.name == "index" else stem
        assert (site / target / "index.html").exists(), f"{page} was not built"
        if stem.name != "index":
            href = "/".join(target.parts) + "/"
            assert re.search(rf'href="(\./)?{re.escape(href)}"', index), f"{page} is not in the navigation"


def test_family_pages_have_a_block_diagram(site):
    for family in ("densenet", "resnet", "dpn"):
        page = (site / family / "index.html").read_text(encoding="utf-8")
        assert 'id="block-diagram"' in page
        image = re.search(r'<img[^>]+src="\.\./(assets/diagrams/[^"]+\.svg)"', page).group(1)
        svg = (site / image).read_text(encoding="utf-8")
        assert "<svg" in svg and "conv2_block1_" in svg


def test_api_reference_lists_every_model_module(site):
    api = (site / "api" / "models" / "index.html").read_text(encoding="utf-8")
    for module in ("keras_ultradeep.models.densenet", "keras_ultradeep.models.dpn"):
        assert module in api
    assert "DenseNet121" in api


def test_family_pages_have_their_training_recipes(site):
    densenet = (site / "densenet" / "index.html").read_text(encoding="utf-8")
    assert 'id="training-recipes"' in densenet
    assert "<code>densenet_cifar</code>" in densenet and "<code>imagenet_densenet</code>" in densenet
    vgg = (site / "vgg" / "index.html").read_text(encoding="utf-8")
    assert 'id="training-recipes"' in vgg and "No setting from this family" in vgg
