"""Imports every model family so their @register_model decorators run."""

from . import cnn, efficientnet_lite, fast, lenet, mlp, numpy_mlp, resnet, vgg  # noqa: F401
