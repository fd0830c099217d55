"""Errors a user can cause. The CLI prints their message and exits non-zero, no traceback."""


class FashionbenchError(Exception):
    """Base class: the message names the problem and the fix."""

    exit_code = 2


class DataError(FashionbenchError):
    """Missing, corrupt or inconsistent dataset files."""


class ConfigError(FashionbenchError):
    """Unknown names or impossible option combinations."""


class CheckpointError(FashionbenchError):
    """A checkpoint or run folder that cannot be used as asked."""


class PhotoError(FashionbenchError):
    """A photo that cannot be read or converted: not an image, truncated, too large, no images found."""


class ImageTooLargeError(PhotoError):
    """A photo over the pixel limit (a decompression bomb, or just too big to convert)."""
