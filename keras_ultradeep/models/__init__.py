"""One module per architecture family; importing them registers their builders."""

from keras_ultradeep.models import densenet, dpn, drn, highway, resnet, resnet_v2

__all__ = ["densenet", "dpn", "drn", "highway", "resnet", "resnet_v2"]
