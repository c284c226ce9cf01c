"""timm models for parity tests, with every BatchNorm tensor randomized.

Random BatchNorm weights, biases, means and variances (and classifier bias)
make a misplaced or transposed tensor, or a wrong epsilon, show in the logits.
"""

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
