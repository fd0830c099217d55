"""Imports every model family so their @register_model decorators run."""

from . import cnn, mlp  # noqa: F401
