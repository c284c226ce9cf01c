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


def assert_parity(got, expected, what, bound=1e-4, varying_bound=1e-3):
    """``relative(got, expected) <= bound``, and for a batch of several inputs,
    the part of the outputs that depends on the input agrees as well.

    With random BatchNorm statistics a deep network's logits can be nearly the
    same for every input (the shifts dominate); a wrong padding or a misplaced
    stride then changes the logits far less than ``bound``. The deviations from
    the batch mean are what the input decides: they must be there, and match to
    ``varying_bound`` of their own size. Returns the two measures.
    """
    got, expected = np.asarray(got, dtype="float64"), np.asarray(expected, dtype="float64")
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    diff = relative(got, expected)
    varying = None
    if expected.shape[0] > 1:
        centred = expected - expected.mean(axis=0)
        spread = float(np.abs(centred).max())
        assert spread > 0.0, f"{what}: the reference gives the same output for every input"
        varying = float(np.abs((got - got.mean(axis=0)) - centred).max()) / spread
    print(f"\nparity {what}: {diff:.2e}" + ("" if varying is None else f" (input-dependent part {varying:.2e})"))
    assert diff <= bound, f"{what}: relative difference {diff:.2e} > {bound:g}"
    assert varying is None or varying <= varying_bound, (
        f"{what}: the input-dependent part differs by {varying:.2e} of its size (> {varying_bound:g})"
    )
    return diff, varying


def calibrated_timm(name, seed, size, batch=4, dtype="float32"):
    """timm's ``name`` with He-normal weights, random biases and BatchNorm
    statistics measured on ``batch`` random images of ``size``, then perturbed,
    and random BatchNorm gamma/beta: every layer's output stays normalised and
    input-dependent (with default initialization a deep net's logits barely
    depend on the input, and a wrong stride or padding could hide).
    ``dtype="float64"`` gives a float64 model (see :func:`build_float64`)."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # a cumulative average: the batch's statistics
        model.to(getattr(torch, dtype)).train()
        model(torch.randn(batch, 3, size, size, dtype=getattr(torch, dtype)))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.add_(torch.randn_like(module.running_mean) * 0.1 * module.running_var.sqrt())
                module.running_var.mul_(torch.empty_like(module.running_var).uniform_(0.8, 1.25))
    return model.eval()


def build_float64(builder, *args, **kwargs):
    """A Keras model built in float64 (inputs and layers); the global settings are restored.

    With a float64 reference (``calibrated_timm(..., dtype="float64")``) a
    faithful port agrees to ~1e-12, so a tolerance of 1e-9 leaves no room for
    a misplaced tensor or a wrong epsilon.
    """
    import keras

    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        model = builder(*args, **kwargs)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float64"}
    return model


def stage_features_agree(reference, model, layer_names, x, bound=1e-9):
    """``model``'s outputs at ``layer_names`` against timm's ``forward_intermediates``
    on the channels-last batch ``x`` (float64 models: ``bound`` 1e-9)."""
    import keras
    import torch

    import keras_ultradeep as ku

    extractor = ku.feature_extractor(model, layer_names)
    with torch.no_grad():
        theirs = reference.forward_intermediates(nchw(x), intermediates_only=True)
    ours = extractor(x, training=False)
    assert list(ours) == list(layer_names) and len(theirs) == len(layer_names)
    for name, expected in zip(layer_names, theirs):
        expected = expected.numpy().transpose(0, 2, 3, 1)
        assert relative(keras.ops.convert_to_numpy(ours[name]), expected) <= bound, name
