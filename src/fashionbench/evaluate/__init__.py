"""Metrics, interpretation, plots and reports."""

from .._callable import make_callable

make_callable(__name__)  # fashionbench.evaluate(...) calls fashionbench.api.evaluate
