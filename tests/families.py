"""A small model of every registered family, shared by the tests that must
cover each family (export, mixed precision).

Each family is represented by its smallest honest configuration: the family
builder with few blocks and narrow widths, or a registered model at its
minimum size where the architecture is fixed.
"""

import importlib

import keras_ultradeep as ku


def _family(module, builder, **knobs):
    def build(**keras_arguments):
        return getattr(importlib.import_module(f"keras_ultradeep.models.{module}"), builder)(
            **knobs, **keras_arguments
        )

    return build


def _registered(name):
    def build(**keras_arguments):
        return ku.create_model(name, **keras_arguments)

    return build


# family -> a builder of a small model of it, and the side of its input.
SMALL = {
    "densenet": (_family("densenet", "DenseNet", blocks=(1, 2, 2, 1), growth_rate=8, stem_filters=16), 32),
    "densenet_cifar": (_family("densenet", "DenseNetCIFAR", depth=10, growth_rate=4, bottleneck=True, compression=0.5), 8),
    "resnet": (_family("resnet", "ResNet", blocks=(1, 1, 1, 1), block="bottleneck", cardinality=4, bottleneck_width=4, survival_prob=0.8), 32),
    "resnet_cifar": (_family("resnet", "ResNeXtCIFAR", depth=11, cardinality=2, bottleneck_width=4, survival_prob=0.8), 8),
    "resnet_v2": (_family("resnet_v2", "ResNetV2", blocks=(2, 2, 2, 2)), 32),
    "resnet_v2_cifar": (_family("resnet_v2", "WideResNet", depth=10, widening_factor=1, dropout_rate=0.3), 8),
    "drn": (_family("drn", "DRN", arch="C", blocks=(1, 1, 1, 1, 1, 1, 1, 1), block="basic"), 32),
    "drn_a": (_registered("drn_a_50"), 32),  # fixed: ResNet-50 with dilated stages 4 and 5
    "dpn": (_family("dpn", "DPN", k_sec=(1, 1, 1, 1), inc_sec=(4, 4, 4, 4), k_r=16, groups=4, num_init_features=16, small=True), 32),
    "cspnet": (
        _family(  # cspresnext50's form (grouped, -inf padded max-pool stem), narrow and shallow
            "cspnet", "CSPNet", depths=(1, 1), filters=(16, 32), strides=(1, 2), block="bottleneck",
            expand_ratio=1.0, bottle_ratio=1.0, block_ratio=0.5, groups=2, stem_filters=8,
            stem_kernel_size=7, stem_stride=4, down_growth=False, cross_linear=True,
        ),
        32,
    ),
    "rir": (_family("rir", "ResNetInResNet", blocks=(1, 1), residual_widths=(8, 16)), 8),
    "cspdensenet": (_family("cspdensenet", "CSPDenseNet", blocks=(2, 2, 2, 2), growth_rate=8, stem_filters=16), 32),
    # LeNet-5's RBF output gives logits in the hundreds (float32 rounding ~3e-5): the dense head here.
    "lenet": (_family("lenet", "LeNet5", output="dense"), 32),
    "alexnet": (_family("alexnet", "AlexNet", filters=(8, 16, 16, 16, 16), fc_units=16), 67),
    "alexnet_tv": (_family("alexnet", "AlexNetTV", filters=(8, 16, 16, 16, 16), fc_units=16), 63),
    "overfeat": (
        _family("overfeat", "OverFeat", model="accurate", filters=(8, 8, 8, 8, 8, 8), full_units=(16, 16)),
        221,
    ),
    "vgg": (
        _family("vgg", "VGG", config=((3,), (3,), (3,), (3,), (3,)), batch_norm=True, lrn=True, fc_units=16),
        32,
    ),
    "plain_cifar": (_family("plain", "PlainCIFAR", depth=8), 8),
    "nin": (_family("nin", "NINCIFAR", second_pool="avg"), 8),
    "googlenet": (_registered("googlenet"), 32),  # LRN, ceil-mode pools
    "bn_inception": (_registered("bn_inception"), 32),
    "inception_v3": (_registered("inception_v3"), 75),
    "inception_v4": (_family("inception_v4", "InceptionV4", blocks=(1, 1, 1)), 75),
    "inception_resnet_v1": (_family("inception_v4", "InceptionResNetV1", blocks=(1, 1, 1)), 75),
    "inception_resnet_v2": (_family("inception_v4", "InceptionResNetV2", blocks=(1, 1, 1)), 75),
    "fractalnet": (_family("fractalnet", "FractalNet", columns=3, blocks=2, filters=(8, 16)), 8),
    "highway": (_family("highway", "HighwayNetCIFAR", stages=((8, 1), (16, 1)), head_filters=10), 8),
}


def check_declared_stages(name, model):
    """``ku.feature_extractor(model)`` gives the stages that the family of
    registered model ``name`` declares: their keys, layers and order."""
    from keras_ultradeep import registry

    declared = registry.feature_stages(name)
    extractor = ku.feature_extractor(model)
    assert list(extractor.output) == [f"stage{i + 1}_s{r}" for i, (_, r) in enumerate(declared)], name
    for key, (layer, _) in zip(extractor.output, declared):
        assert extractor.output[key] is model.get_layer(layer).output, (name, key, layer)
    reductions = [r for _, r in declared]
    assert reductions == sorted(reductions), name


def one_per_family_builder():
    """The smallest registered model (fewest parameters) of each family builder:
    ResNet-20 for ResNet-20 ... ResNet-1202, one per builder of every family."""
    from keras_ultradeep import registry, zoo

    groups = {}
    for name in ku.list_models():
        entry = registry.model_entry(name)
        builder = getattr(entry.builder, "family_builder", entry.builder)
        groups.setdefault((entry.family, builder), []).append(name)
    return sorted(min(names, key=lambda name: zoo.table()[name]["params"]) for names in groups.values())
