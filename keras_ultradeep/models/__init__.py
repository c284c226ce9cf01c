"""One module per architecture family; importing them registers their builders.

Every module in this package is imported, so a new family registers itself by
existing: ``models/<family>.py`` calling ``registry.register`` at import.
"""

import importlib
import pkgutil

__all__ = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))

for _name in __all__:
    importlib.import_module(f"{__name__}.{_name}")
