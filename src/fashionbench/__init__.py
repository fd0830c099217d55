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

_API = ("train", "resume", "load", "evaluate", "cross_validate", "boost", "ablate", "reproduce", "report", "compare",
        "list_models", "list_recipes", "make_config")
_CLASSES = {"Predictor": "inference", "RunResult": "train.run", "TrainConfig": "train.config",
            "Dataset": "data.sources", "FashionbenchError": "errors"}

__all__ = ["FASHION_CLASSES", "__version__", "datasets", *_API, *_CLASSES]


def __getattr__(name: str):
    # Imported on first use: `import fashionbench` stays cheap and free of import cycles.
    import importlib

    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    if name in _CLASSES:
        return getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    if name == "datasets":
        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module 'fashionbench' has no attribute {name!r}")
