"""Imports every model family so their @register_model decorators run."""

from . import cnn, fast, mlp  # noqa: F401
from . import lenet, numpy_mlp, resnet, vgg  # noqa: F401  (issue 3)
