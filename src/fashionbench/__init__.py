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

_API = ("ablate", "boost", "compare", "cross_validate", "evaluate_photos", "list_models", "list_recipes", "load",
        "make_config", "predict_photos", "report", "reproduce", "resume", "sweep")
_CLASSES = {"Predictor": "inference", "RunResult": "train.testing", "TrainConfig": "train.config",
            "Dataset": "data.sources", "FashionbenchError": "errors"}
_PACKAGES = ("datasets", "train", "evaluate")  # train and evaluate are callable: fashionbench.train(...)

__all__ = ["FASHION_CLASSES", "__version__", *_PACKAGES, *_API, *_CLASSES]


def __getattr__(name: str):
    # Imported on first use, so `fashionbench --help` and `import fashionbench` stay fast (no torch).
    import importlib

    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    if name in _CLASSES:
        return getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    if name in _PACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fashionbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
