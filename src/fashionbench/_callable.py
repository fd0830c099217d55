"""`fashionbench.train(...)` and `fashionbench.evaluate(...)`: subpackages that are also API functions.

A plain function bound to `fashionbench.train` would shadow the subpackage (`import
fashionbench.train.run as r` would break), so the two packages become callable instead: calling
one calls the function of the same name in fashionbench.api, imported on first call."""

from __future__ import annotations

import importlib
import inspect
import sys
import types


def _api_function(package: types.ModuleType):
    api = importlib.import_module("fashionbench.api")
    return getattr(api, package.__name__.rsplit(".", 1)[1])


class CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return _api_function(self)(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(_api_function(self))

    @property
    def __doc__(self) -> str:  # help(fashionbench.train) shows the function first, then the package
        return f"{_api_function(self).__doc__}\n\n(package) {self.__dict__.get('_package_doc', '')}"


def make_callable(name: str) -> None:
    package = sys.modules[name]
    package.__dict__["_package_doc"] = package.__dict__.get("__doc__") or ""
    package.__class__ = CallablePackage
