"""Training: config, optimizers/losses/schedules by name, the engine and callbacks."""

from .._callable import make_callable

make_callable(__name__)  # fashionbench.train(...) calls fashionbench.api.train
