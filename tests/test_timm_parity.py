"""timm parity, one table for every architecture with pretrained tags.

For each architecture, a timm model with random weights and randomized
BatchNorm statistics is saved as ``model.safetensors`` in a huggingface_hub
cache (``models--timm--<arch>.<tag>/snapshots/<commit>/...`` + ``refs/main``)
and loaded offline through ``ku.create_model("<arch>.<tag>")``: its no-top
form gives timm's pooled features (a pretrained top needs the default input).
For one or more architectures of each family the same checkpoint converted
into the model with its head gives timm's logits with timm's parameter count
(one build per architecture otherwise). Every other tag of the architecture goes through
the strict mapping with a checkpoint of the right shapes (all tags of one
architecture share them) and names the same number of classes.
"""

import keras
import numpy as np
import pytest

import keras_ultradeep as ku
from keras_ultradeep import registry
from keras_ultradeep import weights as weights_lib
from keras_ultradeep.convert import common as convert_common

from hub_fixtures import write_hub_cache
from timm_models import assert_parity, calibrated_timm, nchw

# Built at small inputs; the light ones are one or more of each family.
LIGHT = {
    "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "resnetv2_18", "resnetv2_34", "resnetv2_50",
    "densenet121", "densenet169", "dpn68", "dpn68b", "cspresnet50", "cspresnext50", "cspdarknet53",
    "inception_v3", "vgg11", "vgg11_bn",
}
ARCHS = sorted({row.arch for row in weights_lib.rows() if row.source == "timm"})
# timm's VGG head is an MLP of 7x7 and 1x1 convs: its logits need 224x224
# inputs (test_vgg.py checks them there); features are compared here.
FEATURES_ONLY = {arch for arch in ARCHS if arch.startswith("vgg")}
# The checkpoint converted into the model with its head gives timm's logits: the
# light architectures (one or more of each family) and the Inception-v4 line.
WITH_LOGITS = (LIGHT | {"inception_v4", "inception_resnet_v2"}) - FEATURES_ONLY


def _size(arch):
    return max(64, registry.model_entry(arch).min_size)


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype="float64")


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_timm_tag_loads_offline_to_timm_outputs(arch, hub_cache, rng, record_property):
    import torch
    from safetensors.torch import save

    size = _size(arch)
    reference = calibrated_timm(arch, seed=ARCHS.index(arch), size=size)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    timm_rows = [weights_lib.find(arch, tag) for tag in weights_lib.tags(arch)]
    timm_rows = [row for row in timm_rows if row.source == "timm" and not row.non_commercial]
    row = next((row for row in timm_rows if row.default), timm_rows[0])
    write_hub_cache(hub_cache, row.hub_repo, "model.safetensors", save(state))

    x = rng.normal(0.0, 1.0, (2, size, size, 3)).astype("float32")
    with torch.no_grad():
        features = reference.forward_features(nchw(x))
        logits = reference(nchw(x)).numpy()
    pooled = features.mean(dim=(2, 3)).numpy()

    # The tag as users load it (a pretrained top needs the default input: the no-top form here).
    ours = ku.create_model(row.name, include_top=False, pooling="avg", input_shape=(size, size, 3))
    diff, _ = assert_parity(_numpy(ours(x, training=False)), pooled, f"{row.name} pooled features")
    record_property("features_relative_diff", diff)
    del ours

    if arch in WITH_LOGITS:  # the head's mapping, for one or more of each family
        numpy_state = {k: v.numpy() for k, v in state.items()}
        full = ku.create_model(
            arch, weights=None, input_shape=(size, size, 3), classifier_activation=None,
            **weights_lib.resolve(arch, row.tag, warn=False).architecture,
        )
        convert_common.convert_into(full, numpy_state, convert_common.family_module(registry.model_entry(arch).family))
        trainable = sum(int(np.prod(w.shape)) for w in full.trainable_weights)
        assert trainable == sum(p.numel() for p in reference.parameters())
        diff, _ = assert_parity(_numpy(full(x, training=False)), logits, f"{arch} logits ({trainable:,} trainable)")
        record_property("logits_relative_diff", diff)
    mapping = convert_common.family_module(registry.model_entry(arch).family)

    # Every tag of the architecture has these shapes: the strict mapping took
    # them (VGG's head needs 224x224 inputs: test_vgg.py), and each tag names
    # the checkpoint's number of classes and this mapping.
    classifier = reference.get_classifier()
    classes = getattr(classifier, "out_features", None) or classifier.out_channels  # DPN's is a 1x1 conv
    for tag in weights_lib.tags(arch):
        other = weights_lib.find(arch, tag)
        if other.source != "timm":  # keras.applications' file of the same name
            continue
        assert other.classes == classes == 1000 and other.format == "safetensors"
        assert convert_common.family_module(registry.model_entry(other.arch).family) is mapping
