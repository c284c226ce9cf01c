"""Shared test fixtures.

timm imports torchvision, whose PyPI wheel fails to register its C++ operators
beside the CPU build of torch ("operator torchvision::nms does not exist").
timm needs none of them for the models tested here, so the two registration
modules are replaced by empty ones before anything imports torchvision.
"""

import os
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

for _module in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_module, types.ModuleType(_module))

# triton's native library (imported by torch._dynamo, which timm's torchvision
# import pulls in) is absent beside the CPU build of torch and fails on import;
# None makes "import triton" raise ImportError, which torch handles. This runs
# before any test module imports torch or timm.
sys.modules.setdefault("triton", None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_keras_home(tmp_path, monkeypatch):
    """Downloads and converted weights go to a per-test cache, never ~/.keras."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


class _CountingHandler(__import__("http.server").server.SimpleHTTPRequestHandler):
    requests = None  # set per server

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    """Serves a folder on 127.0.0.1 (an ephemeral port) and records each request path.

    Yields ``(root, url_of, requests)``: put files in ``root``; ``url_of(name)``
    is the URL of one.
    """
    import functools
    import http.server
    import threading

    root = tmp_path / "served"
    root.mkdir()
    requests = []
    handler = type("Handler", (_CountingHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address
    try:
        yield root, (lambda name: f"http://{host}:{port}/{name}"), requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def trainable():
    """The number of trainable parameters of a model (what papers and timm count;
    Keras' count_params() adds BatchNorm's moving statistics)."""

    def count(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    return count
