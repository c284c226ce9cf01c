"""Published parameter counts to check built models against (../shared/REFERENCE_RESULTS.md).

Keras totals include BatchNorm moving statistics; PyTorch and paper counts do
not, so those are compared with the trainable count.
"""

# Exact: keras.applications' documented totals.
KERAS_TOTAL = {
    "densenet121": 8_062_504,
    "densenet169": 14_307_880,
    "densenet201": 20_242_984,
}

# Exact trainable counts: torchvision's (DenseNet-121/169/201/161) and the
# paper's DenseNet-BC (L=100, k=12) with 10 classes.
TRAINABLE = {
    "densenet121": 7_978_856,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "densenet161": 28_681_000,
    "densenet_bc100_k12": 769_162,
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
