"""One module per architecture family; importing them registers their builders."""

from keras_ultradeep.models import densenet

__all__ = ["densenet"]
