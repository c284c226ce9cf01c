"""timm models for parity tests, with every BatchNorm tensor randomized.

Random BatchNorm weights, biases, means and variances (and classifier bias)
make a misplaced or transposed tensor, or a wrong epsilon, show in the logits.
"""

import numpy as np
import pytest


def randomized_timm(name, seed):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        classifier = model.get_classifier()
        if getattr(classifier, "bias", None) is not None:
            classifier.bias.normal_(0.0, 0.1)
    return model.eval()


def nchw(x):
    """A channels-last NumPy batch as a channels-first torch tensor."""
    import torch

    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def relative(got, expected):
    """max |got - expected| / max(1, max |expected|): the parity measure of these tests."""
    return float(np.abs(got - expected).max()) / max(1.0, float(np.abs(expected).max()))
