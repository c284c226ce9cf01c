"""keras_ultradeep: the Keras 3 model zoo of the classic ultra-deep convolutional networks.

Every builder takes keras.applications' signature (``include_top, weights,
input_tensor, input_shape, pooling, classes, classifier_activation, name``)
plus its architecture's knobs in the paper's terms.

Importing the package is cheap: Keras (and TensorFlow) load on first use of a
builder, ``list_models`` or ``create_model``.
"""

import importlib

import wrapt

from keras_ultradeep.registry import create_model, list_models

__version__ = "0.1.0"

# Our layers and optimizers register with Keras as soon as Keras is imported
# (at once if it already is), so that keras.models.load_model finds them in
# any process that imported keras_ultradeep; see keras_ultradeep.saving.
wrapt.register_post_import_hook(
    lambda keras: importlib.import_module("keras_ultradeep.saving").register_serializables(), "keras"
)

# Public name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "densenet": "keras_ultradeep.models.densenet",
    "DenseNet": "keras_ultradeep.models.densenet",
    "DenseNet121": "keras_ultradeep.models.densenet",
    "DenseNet161": "keras_ultradeep.models.densenet",
    "DenseNet169": "keras_ultradeep.models.densenet",
    "DenseNet201": "keras_ultradeep.models.densenet",
    "DenseNet264": "keras_ultradeep.models.densenet",
    "DenseNetCIFAR": "keras_ultradeep.models.densenet",
    "resnet": "keras_ultradeep.models.resnet",
    "ResNet": "keras_ultradeep.models.resnet",
    "ResNet50": "keras_ultradeep.models.resnet",
    "ResNet101": "keras_ultradeep.models.resnet",
    "ResNet152": "keras_ultradeep.models.resnet",
    "ResNet18": "keras_ultradeep.models.resnet",
    "ResNet34": "keras_ultradeep.models.resnet",
    "ResNet50B": "keras_ultradeep.models.resnet",
    "ResNet101B": "keras_ultradeep.models.resnet",
    "ResNet152B": "keras_ultradeep.models.resnet",
    "WideResNet50_2": "keras_ultradeep.models.resnet",
    "WideResNet101_2": "keras_ultradeep.models.resnet",
    "ResNeXt50_32x4d": "keras_ultradeep.models.resnet",
    "ResNeXt101_32x4d": "keras_ultradeep.models.resnet",
    "ResNeXt101_32x8d": "keras_ultradeep.models.resnet",
    "ResNeXt101_64x4d": "keras_ultradeep.models.resnet",
    "ResNetCIFAR": "keras_ultradeep.models.resnet",
    "ResNeXtCIFAR": "keras_ultradeep.models.resnet",
    "resnet_v2": "keras_ultradeep.models.resnet_v2",
    "ResNetV2": "keras_ultradeep.models.resnet_v2",
    "ResNet50V2": "keras_ultradeep.models.resnet_v2",
    "ResNet101V2": "keras_ultradeep.models.resnet_v2",
    "ResNet152V2": "keras_ultradeep.models.resnet_v2",
    "PreActResNetCIFAR": "keras_ultradeep.models.resnet_v2",
    "WideResNet": "keras_ultradeep.models.resnet_v2",
    "PreActResNet": "keras_ultradeep.models.resnet_v2",
    "PreActResNet18": "keras_ultradeep.models.resnet_v2",
    "PreActResNet34": "keras_ultradeep.models.resnet_v2",
    "PreActResNet50": "keras_ultradeep.models.resnet_v2",
    "PreActResNet101": "keras_ultradeep.models.resnet_v2",
    "PreActResNet152": "keras_ultradeep.models.resnet_v2",
    "drn": "keras_ultradeep.models.drn",
    "DRN": "keras_ultradeep.models.drn",
    "DRNA50": "keras_ultradeep.models.drn",
    "dpn": "keras_ultradeep.models.dpn",
    "DPN": "keras_ultradeep.models.dpn",
    "DPN68": "keras_ultradeep.models.dpn",
    "DPN68b": "keras_ultradeep.models.dpn",
    "DPN92": "keras_ultradeep.models.dpn",
    "DPN98": "keras_ultradeep.models.dpn",
    "DPN107": "keras_ultradeep.models.dpn",
    "DPN131": "keras_ultradeep.models.dpn",
    "cspnet": "keras_ultradeep.models.cspnet",
    "CSPNet": "keras_ultradeep.models.cspnet",
    "CSPResNet50": "keras_ultradeep.models.cspnet",
    "CSPResNeXt50": "keras_ultradeep.models.cspnet",
    "CSPDarkNet53": "keras_ultradeep.models.cspnet",
    "highway": "keras_ultradeep.models.highway",
    "HighwayNetCIFAR": "keras_ultradeep.models.highway",
    "fractalnet": "keras_ultradeep.models.fractalnet",
    "FractalNet": "keras_ultradeep.models.fractalnet",
    "fractal_column": "keras_ultradeep.models.fractalnet",
    "rir": "keras_ultradeep.models.rir",
    "ResNetInResNet": "keras_ultradeep.models.rir",
    "cspdensenet": "keras_ultradeep.models.cspdensenet",
    "CSPDenseNet": "keras_ultradeep.models.cspdensenet",
    "CSPDenseNet121": "keras_ultradeep.models.cspdensenet",
    "CSPDenseNet201": "keras_ultradeep.models.cspdensenet",
    "LeNet5": "keras_ultradeep.models.lenet",
    "AlexNet": "keras_ultradeep.models.alexnet",
    "AlexNetTV": "keras_ultradeep.models.alexnet",
    "OverFeat": "keras_ultradeep.models.overfeat",
    "OverFeatFast": "keras_ultradeep.models.overfeat",
    "OverFeatAccurate": "keras_ultradeep.models.overfeat",
    "vgg": "keras_ultradeep.models.vgg",
    "VGG": "keras_ultradeep.models.vgg",
    "VGG11": "keras_ultradeep.models.vgg",
    "VGG11_LRN": "keras_ultradeep.models.vgg",
    "VGG13": "keras_ultradeep.models.vgg",
    "VGG16_C": "keras_ultradeep.models.vgg",
    "VGG16": "keras_ultradeep.models.vgg",
    "VGG19": "keras_ultradeep.models.vgg",
    "VGG11_BN": "keras_ultradeep.models.vgg",
    "VGG13_BN": "keras_ultradeep.models.vgg",
    "VGG16_BN": "keras_ultradeep.models.vgg",
    "VGG19_BN": "keras_ultradeep.models.vgg",
    "nin": "keras_ultradeep.models.nin",
    "NINCIFAR": "keras_ultradeep.models.nin",
    "inception": "keras_ultradeep.models.inception",
    "GoogLeNet": "keras_ultradeep.models.inception",
    "GoogLeNetTV": "keras_ultradeep.models.inception",
    "BNInception": "keras_ultradeep.models.inception",
    "inception_v3": "keras_ultradeep.models.inception_v3",
    "InceptionV3": "keras_ultradeep.models.inception_v3",
    "InceptionV3Timm": "keras_ultradeep.models.inception_v3",
    "inception_v4": "keras_ultradeep.models.inception_v4",
    "InceptionV4": "keras_ultradeep.models.inception_v4",
    "InceptionResNetV1": "keras_ultradeep.models.inception_v4",
    "InceptionResNetV2": "keras_ultradeep.models.inception_v4",
    "plain": "keras_ultradeep.models.plain",
    "PlainCIFAR": "keras_ultradeep.models.plain",
    "layers": "keras_ultradeep.layers",
    "analysis": "keras_ultradeep.analysis",
    "tuner": "keras_ultradeep.tuner",
    "export": "keras_ultradeep.export",
    "stats": "keras_ultradeep.stats",
    "count_macs": "keras_ultradeep.stats",
    "feature_extractor": "keras_ultradeep.features",
    "convert_checkpoint": "keras_ultradeep.convert",
    "data_config": "keras_ultradeep.contract",
    "predict": "keras_ultradeep.predict",
    "saving": "keras_ultradeep.saving",
}

__all__ = ["create_model", "list_models", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_ultradeep' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
