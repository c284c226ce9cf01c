"""One module per architecture family; importing them registers their builders."""

from keras_ultradeep.models import densenet, drn, highway, resnet, resnet_v2

__all__ = ["densenet", "drn", "highway", "resnet", "resnet_v2"]
