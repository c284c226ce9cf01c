"""The analyses behind ultra-deep networks, run on any model of the zoo they apply to.

* :func:`lesion_study` (Veit et al. 2016): accuracy with each residual block
  removed, then k random ones; ``kind="plain"`` for a plain network's layers.
* :func:`path_lengths` (Veit et al. 2016): the gradient carried by paths of
  each length and the effective path length.
* :func:`feature_reuse` (Huang et al. 2017, Fig. 5): the DenseNet heatmaps.
* :func:`fractal_columns` (Larsson et al. 2017): each FractalNet column alone.
* :func:`stochastic_depth` (Huang et al. 2016): test-time scaling or not.

Each takes a Keras model (built, or loaded from a ``.keras`` file) and data,
and returns plain data (JSON-ready dicts); :func:`plot` draws any of them to a
PNG. The structure comes from the model's graph
(:func:`residual_blocks`), and :func:`lesion` returns the lesioned network as a
model of its own.
"""

from keras_ultradeep.analysis.columns import fractal_columns, stochastic_depth
from keras_ultradeep.analysis.data import as_arrays
from keras_ultradeep.analysis.lesion import lesion_study
from keras_ultradeep.analysis.paths import path_length_distribution, path_lengths
from keras_ultradeep.analysis.plot import plot
from keras_ultradeep.analysis.reuse import feature_reuse
from keras_ultradeep.analysis.rewire import lesion, remove_units
from keras_ultradeep.analysis.structure import chain_units, residual_blocks

__all__ = [
    "lesion_study",
    "path_lengths",
    "path_length_distribution",
    "feature_reuse",
    "fractal_columns",
    "stochastic_depth",
    "plot",
    "lesion",
    "remove_units",
    "residual_blocks",
    "chain_units",
    "as_arrays",
]
