"""fashionbench: train, compare and explain Fashion-MNIST classifiers.

The public API, for notebooks and scripts (the CLI calls the same functions):

    import fashionbench as fb
    run = fb.train(recipe="fast-60s")            # RunResult: .model, .metrics, .state, .run_dir
    clf = fb.load(run.run_dir)                   # Predictor: .predict / .predict_proba / .predict_logits
    ds = fb.datasets.load()                      # the whole dataset as uint8 tensors
"""

__version__ = "0.1.0"

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Bound after the constants above (the data layer imports FASHION_CLASSES from here).
import sys as _sys  # noqa: E402
import types as _types  # noqa: E402

from . import api as _api  # noqa: E402
from . import datasets  # noqa: E402
from .api import (  # noqa: E402
    ablate,
    boost,
    compare,
    cross_validate,
    list_models,
    list_recipes,
    load,
    make_config,
    report,
    reproduce,
    resume,
)
from .data.sources import Dataset  # noqa: E402
from .errors import FashionbenchError  # noqa: E402
from .inference import Predictor  # noqa: E402
from .train.config import TrainConfig  # noqa: E402
from .train.run import RunResult  # noqa: E402


class _CallablePackage(_types.ModuleType):
    """`fashionbench.train` and `fashionbench.evaluate` are subpackages *and* the API functions of the
    same names: calling the package calls the function, and `import fashionbench.train.run as r`
    still finds the package (a plain function bound to the name would shadow it)."""

    def __call__(self, *args, **kwargs):
        return self.__api_function__(*args, **kwargs)


for _name in ("train", "evaluate"):
    _package = _sys.modules[f"{__name__}.{_name}"]
    _package.__class__ = _CallablePackage
    _package.__api_function__ = getattr(_api, _name)
    _package.__signature__ = __import__("inspect").signature(getattr(_api, _name))
    _package.__doc__ = f"{getattr(_api, _name).__doc__}\n\n(package) {_package.__doc__ or ''}"
train = _sys.modules[f"{__name__}.train"]
evaluate = _sys.modules[f"{__name__}.evaluate"]

__all__ = ["FASHION_CLASSES", "Dataset", "FashionbenchError", "Predictor", "RunResult", "TrainConfig", "__version__",
           "ablate", "boost", "compare", "cross_validate", "datasets", "evaluate", "list_models", "list_recipes", "load",
           "make_config", "report", "reproduce", "resume", "train"]
