"""Pretrained weights: the table of ``<arch>.<tag>``, verified downloads, cached conversions.

A leaf of the package: it imports nothing of ours but the ground floor
(``files``). :mod:`keras_ultradeep.contract` puts it together with the
per-family checkpoint mappings (:mod:`keras_ultradeep.convert`) when a
builder is called with a pretrained tag.
"""

from keras_ultradeep.weights import fetch, table
from keras_ultradeep.weights.fetch import (
    WeightsVerificationError,
    cache_dir,
    converted_file,
    download,
    file_hash,
    keras_file,
    load_weights_file,
    source_file,
)
from keras_ultradeep.weights.table import (
    CHECKPOINT_SUFFIXES,
    KERAS_WEIGHT_SUFFIXES,
    PREPROCESSING,
    Weights,
    excluded,
    find,
    index,
    list_pretrained,
    pin,
    resolve,
    rows,
    tags,
    unknown_weights_error,
)

__all__ = [*table.__all__, *fetch.__all__]
