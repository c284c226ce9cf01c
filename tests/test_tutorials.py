"""The tutorials in docs/tutorials/ run as tests, at tiny sizes, so they cannot rot.

Every ``python`` block of a tutorial page runs in order in one namespace, in a fresh folder. A
statement ending in ``# tiny: EXPRESSION`` gets ``EXPRESSION`` as its right-hand side (a smaller
input, fewer epochs, a local file instead of a download). Downloads of pretrained weights go to a
server on 127.0.0.1 that serves randomly initialised DenseNet-121 files under the manifest's entry
(only the URLs and hashes change), and ImageNet's class names are stubbed: nothing touches the
network. Every page in docs/tutorials/ is collected, so a new tutorial is tested without an edit here;
a page that imports torch is marked ``torch``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import http.server
import re
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every test here runs models end to end (seconds to minutes)

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
_TINY = re.compile(r"#\s*tiny:\s*(.+?)\s*$")


def python_blocks(markdown):
    return [block for block in _FENCE.findall(markdown)]


def tiny_source(code):
    """``code`` with each ``target = value  # tiny: EXPR`` statement turned into ``target = EXPR``."""
    lines = code.splitlines()
    tree = ast.parse(code)
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    replaced = {}
    for number, line in enumerate(lines, start=1):
        match = _TINY.search(line)
        if not match:
            continue
        owners = [s for s in statements if s.end_lineno == number and isinstance(s, (ast.Assign, ast.AnnAssign))]
        if not owners:
            raise AssertionError(f"'# tiny:' on line {number} does not end an assignment: {line!r}")
        statement = owners[0]
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        target = " = ".join(ast.get_source_segment(code, t) for t in targets)
        indent = re.match(r"\s*", lines[statement.lineno - 1]).group(0)
        replaced[statement.lineno] = (statement.end_lineno, f"{indent}{target} = {match.group(1)}")
    out, number = [], 1
    while number <= len(lines):
        if number in replaced:
            end, text = replaced[number]
            out.append(text)
            number = end + 1
        else:
            out.append(lines[number - 1])
            number += 1
    return "\n".join(out) + "\n"


def tutorial_source(page):
    blocks = python_blocks(Path(page).read_text(encoding="utf-8"))
    assert blocks, f"{page} has no python block"
    return "\n".join(tiny_source(block) for block in blocks)


def _pages():
    params = []
    for page in sorted(TUTORIALS.glob("*.md")):
        if page.stem == "index":
            continue
        marks = [pytest.mark.torch] if re.search(r"^\s*import (torch|timm)\b", page.read_text(), re.M) else []
        params.append(pytest.param(page, id=page.stem, marks=marks))
    return params


# --------------------------------------------------------------------------- offline fixtures


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def weights_server(tmp_path_factory):
    """DenseNet-121 weights files (random, top and no-top) served from 127.0.0.1."""
    import keras_ultradeep as ku

    root = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(0)
    top = ku.DenseNet121(weights=None)
    for weight in top.weights:
        low, high = (0.5, 1.5) if "variance" in weight.path or "gamma" in weight.path else (-0.05, 0.05)
        weight.assign(rng.uniform(low, high, weight.shape).astype("float32"))
    top.save_weights(root / "top.weights.h5")
    notop = ku.DenseNet121(weights=None, include_top=False)
    notop.set_weights(top.get_weights()[: len(notop.weights)])
    notop.save_weights(root / "notop.weights.h5")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address
    try:
        yield root, f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def offline(weights_server, monkeypatch, tmp_path):
    """The manifest's densenet121 `imagenet` entry pointing at the local server; class names stubbed."""
    from keras.src.applications import imagenet_utils

    from keras_ultradeep.weights import table

    root, base = weights_server
    files = {
        kind: {
            "url": f"{base}/{kind}.weights.h5",
            "file_name": f"tutorial_{kind}.weights.h5",
            "hash": "sha256:" + hashlib.sha256((root / f"{kind}.weights.h5").read_bytes()).hexdigest(),
        }
        for kind in ("top", "notop")
    }
    index = {arch: dict(rows) for arch, rows in table.index().items()}
    index["densenet121"]["imagenet"] = dataclasses.replace(index["densenet121"]["imagenet"], files=files)
    monkeypatch.setattr(table, "index", lambda: index)
    monkeypatch.setattr(
        imagenet_utils, "CLASS_INDEX", {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    )

    import keras

    image = tmp_path / "inputs" / "image.png"
    image.parent.mkdir()
    rng = np.random.default_rng(1)
    keras.utils.save_img(image, rng.uniform(0, 255, (40, 48, 3)).astype("uint8"))
    folder = tmp_path / "inputs" / "flowers"
    for label in ("daisy", "tulips"):
        (folder / label).mkdir(parents=True)
        for i in range(5):
            keras.utils.save_img(folder / label / f"{i}.png", rng.uniform(0, 255, (36, 36, 3)).astype("uint8"))
    return {"TUTORIAL_IMAGE": str(image), "TUTORIAL_IMAGE_DIR": str(folder)}


# --------------------------------------------------------------------------- tests


def test_tiny_substitution():
    code = 'size = 224  # tiny: 32\npath = get(\n    "x",\n)  # tiny: LOCAL\nprint(size)\n'
    assert tiny_source(code) == "size = 32\npath = LOCAL\nprint(size)\n"
    with pytest.raises(AssertionError, match="does not end an assignment"):
        tiny_source("print(1)  # tiny: 2\n")


def test_every_tutorial_is_linked_from_the_index():
    index = (TUTORIALS / "index.md").read_text()
    for page in TUTORIALS.glob("*.md"):
        if page.stem != "index":
            assert f"({page.name})" in index, f"docs/tutorials/index.md does not link {page.name}"


@pytest.mark.parametrize("page", _pages())
def test_tutorial_runs(page, offline, tmp_path, monkeypatch):
    import keras

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    source = tutorial_source(page)
    namespace = {"__name__": f"tutorial_{page.stem}", **offline}
    keras.utils.set_random_seed(0)
    try:
        exec(compile(source, str(page), "exec"), namespace)
    finally:
        keras.backend.clear_session()
