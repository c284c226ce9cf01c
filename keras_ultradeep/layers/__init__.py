"""Custom layers, each serializable under the ``keras_ultradeep`` package name.

Model files only compose these; every layer has ``get_config`` and loads with
``keras.models.load_model(..., safe_mode=True)``.

Every module of this package is imported and its ``__all__`` re-exported here,
so ``from keras_ultradeep.layers import GroupedConv2D`` works for each layer.
"""

import importlib
import pkgutil

__all__ = []
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if _info.name.startswith("_"):
        continue
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
__all__.sort()
