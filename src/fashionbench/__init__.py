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

# Bound after the constants above (the data layer imports FASHION_CLASSES from here). `train` is
# bound after the `fashionbench.train` package has been imported, so the function wins the name.
from . import datasets  # noqa: E402
from .api import (  # noqa: E402
    ablate,
    boost,
    compare,
    cross_validate,
    evaluate,
    list_models,
    list_recipes,
    load,
    make_config,
    report,
    reproduce,
    resume,
    train,
)
from .data.sources import Dataset  # noqa: E402
from .errors import FashionbenchError  # noqa: E402
from .inference import Predictor  # noqa: E402
from .train.config import TrainConfig  # noqa: E402
from .train.run import RunResult  # noqa: E402

__all__ = ["FASHION_CLASSES", "Dataset", "FashionbenchError", "Predictor", "RunResult", "TrainConfig", "__version__",
           "ablate", "boost", "compare", "cross_validate", "datasets", "evaluate", "list_models", "list_recipes", "load",
           "make_config", "report", "reproduce", "resume", "train"]
