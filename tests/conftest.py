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

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_keras_home(tmp_path, monkeypatch):
    """Downloads and converted weights go to a per-test cache, never ~/.keras."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
