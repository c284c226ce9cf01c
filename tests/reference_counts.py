"""Published parameter counts to check built models against (../shared/REFERENCE_RESULTS.md).

Keras totals include BatchNorm moving statistics; PyTorch and paper counts do
not, so those are compared with the trainable count.
"""

# Exact: keras.applications' documented totals.
KERAS_TOTAL = {
    "inception_resnet_v2_keras": 55_873_736,
    "inception_v3_keras": 23_851_784,
    "densenet121": 8_062_504,
    "densenet169": 14_307_880,
    "densenet201": 20_242_984,
    "resnet50_keras": 25_636_712,
    "resnet101_keras": 44_707_176,
    "resnet152_keras": 60_419_944,
}

# Exact trainable counts: torchvision's (DenseNet-121/169/201/161, ResNets) and the
# paper's DenseNet-BC (L=100, k=12) with 10 classes.
TRAINABLE = {
    "inception_v4": 42_679_816,  # timm
    "inception_resnet_v2": 55_843_464,  # timm
    # torchvision googlenet; GoogLeNet as BVLC's prototxt computes (ARCHITECTURE_FACTS part 2, 1);
    # BN-Inception without conv biases (Cadene's port with them: 11,295,240); timm inception_v3.
    "googlenet": 6_998_552,
    "googlenet_tv": 6_624_904,
    "bn_inception": 11_285_224,
    "inception_v3": 23_834_568,
    # torchvision's AlexNet; OverFeat's counts from the official weight files (ARCHITECTURE_FACTS 6).
    "alexnet_tv": 61_100_840,
    "overfeat_fast": 145_920_872,
    "overfeat_accurate": 144_656_488,
    "densenet121": 7_978_856,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "densenet161": 28_681_000,
    "densenet_bc100_k12": 769_162,
    # torchvision's documented counts (timm's models are the same networks).
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    # timm's Dual Path Networks (sum of its parameters' numel).
    "dpn68": 12_611_602,
    "dpn68b": 12_611_602,
    "dpn92": 37_668_392,
    "dpn98": 61_570_728,
    "dpn107": 86_917_800,
    "dpn131": 79_254_504,
    "cspresnet50": 21_616_168,
    "cspresnext50": 20_569_896,
    "cspdarknet53": 27_642_184,
}

# The DenseNet paper's Table 2, in millions, rounded to 0.1M (10 classes).
PAPER_MILLIONS = {
    "densenet40_k12": 1.0,
    "densenet100_k12": 7.0,
    "densenet100_k24": 27.2,
    "densenet_bc100_k12": 0.8,
    "densenet_bc250_k24": 15.3,
    "densenet_bc190_k40": 25.6,
}
