"""The one inference path: checkpoint -> model on device -> normalization -> precision and memory
format -> test-time augmentation -> logits / probabilities, as a `Predictor` that takes
Fashion-MNIST arrays and photos alike.

Training (validation and test), evaluation, boosting, the report and every later consumer
(photos, export, serving) go through `forward.predict_logits` or a `Predictor`, so they agree on
what "the model's output" is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import build_from_checkpoint, load_checkpoint
from .data.normalize import Normalization
from .errors import ConfigError
from .forward import ensemble_logits, inference_model, last_linear, model_threads, parse_tta, predict_logits, unknown_scores
from .layout import PROBE_BATCH, choose_layout, rule_layout
from .models.registry import list_models, model_info, place_model
from .onnx_file import is_onnx_path, load_onnx
from .utils import keep_freed_memory, resolve_device

# "Probably none of the ten classes": flagged when the unknown-item score is above this. The score is
# 1 - the largest calibrated class probability, so the flag means "no class gets half the belief".
UNKNOWN_THRESHOLD = 0.5


def _is_photo_source(x) -> bool:
    from PIL import Image

    return isinstance(x, (str, Path, bytes, bytearray, memoryview, Image.Image)) or (isinstance(x, np.ndarray) and (
        x.ndim == 3 and x.shape[-1] in (3, 4) or x.ndim == 2 and x.shape != (28, 28)))


def as_image_batch(images) -> torch.Tensor:
    """uint8 images as a (N, 28, 28) tensor, from a tensor or array of (N, 28, 28) or one (28, 28)."""
    try:
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"expected 28x28 grayscale images (a tensor or NumPy array), got {type(images).__name__}") \
            from None
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int16, torch.int32,
                                                                       torch.int64, torch.int8)):
        raise ConfigError(f"expected numeric images, got {x.dtype}")
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or tuple(x.shape[1:]) != (28, 28):
        raise ConfigError(f"expected 28x28 grayscale images shaped (N, 28, 28), got {tuple(x.shape)}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ConfigError("the images hold NaN or infinite values; pass pixels in 0..255 or floats in [0, 1]")
    if x.dtype != torch.uint8:
        if x.is_floating_point() and x.numel() and float(x.max()) <= 1.0:
            x = x * 255  # floats in [0, 1]
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x


def check_same_classes(predictors: Sequence[Predictor]) -> None:
    """Refuse to combine models that name different classes (trained on different datasets)."""
    first = predictors[0]
    for p in predictors[1:]:
        if p.class_names != first.class_names:
            raise ConfigError(f"{p.info.get('path')} names other classes than {first.info.get('path')}; "
                              "an ensemble needs models of one dataset")


@dataclass
class Predictor:
    """A trained model ready to predict: `Predictor.from_checkpoint(path)` or `fashionbench.load(path)`.

    Every method takes Fashion-MNIST-style images (N, 28, 28) as a tensor or NumPy array (uint8,
    or floats in [0, 1]), or photos: a file path, a PIL image, an (H, W, 3) array, the bytes of an
    image file, or a list of them, converted by `fashionbench.data.photos` (`photo_method`).
    `predict(images, k)` returns the top-k classes with calibrated probabilities and the
    unknown-item flag."""

    model: nn.Module
    normalizer: Normalization
    class_names: list[str]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    channels_last: bool = False
    tta: list[str] = field(default_factory=list)
    batch_size: int = 1000
    info: dict = field(default_factory=dict)  # model name, epoch, path, training config
    temperature: float = 1.0  # fitted on the run's validation split; divides the logits for probabilities
    photo_method: str = "auto"  # how photos are turned into 28x28 images (fashionbench.data.photos.METHODS)
    unknown_threshold: float = UNKNOWN_THRESHOLD
    # Weight w of the ImageNet prior on photos: softmax(logits / T + w * log p_imagenet), a weighted geometric mean
    # of this model's probabilities and EfficientNet-Lite0's zero-shot ones (the [imagenet] extra); 0 = off.
    imagenet_weight: float = 0.0
    # torch threads for this model's forward on a CPU (None: the process's); numpy_mlp registers 1, since
    # torch's spinning OpenMP workers and NumPy's BLAS threads fight on a small machine
    threads: int | None = None
    # the precision of a call with one image (a server's upload, a single photo), where the batch's can lose:
    # bf16's casts cost more than they save on one image (the layout probe at batch 1); None: `precision`
    single_image_precision: str | None = None
    # an ensemble (`Predictor.ensemble`): the runs whose logits / temperature are averaged; empty: this model alone
    members: list = field(default_factory=list, repr=False)
    # predictions run a copy of `model` with its BatchNorms folded into the convs (the same function up to
    # rounding, less work; `forward.inference_model`), made again whenever `model` or its weights change;
    # `model` itself keeps its layers for what reads them (pruning, export, gradients). False: predictions
    # run `model` as it is (an ensemble's setting holds for its members)
    fold_batchnorm: bool = True
    _prior: object = field(default=None, repr=False, compare=False)
    _folded: tuple | None = field(default=None, repr=False, compare=False)  # (key of model's weights, the copy)

    def __post_init__(self) -> None:
        self.tta = parse_tta(self.tta)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ConfigError(f"the temperature must be a positive number, got {self.temperature!r}")
        from .data.photos import check_method

        check_method(self.photo_method)
        if not (isinstance(self.imagenet_weight, (int, float)) and 0 <= self.imagenet_weight <= 10):
            raise ConfigError(f"the ImageNet prior weight must be a number in [0, 10], got {self.imagenet_weight!r}")

    @classmethod
    def from_model(cls, model: nn.Module, normalizer: Normalization, class_names: Sequence[str], *,
                   device: str | torch.device = "auto", precision: str = "auto", tta: Sequence[str] | str = (),
                   batch_size: int = 1000, info: dict | None = None, temperature: float = 1.0,
                   photo_method: str = "auto", imagenet_weight: float = 0.0,
                   threads: int | None = None) -> Predictor:
        """Wrap an in-memory model, placed on `device` with the precision and memory format that run it
        fastest there (`precision='auto'`: a probe at this batch size, cached; see layout.py)."""
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        if dev.type == "cpu":  # a fresh mapping per activation halves batch-1024 throughput (BENCHMARKS.md)
            keep_freed_memory()
        sample = torch.randn(max(1, min(int(batch_size), PROBE_BATCH)), 1, 28, 28)
        layout = choose_layout(model, sample, dev, train=False) if precision == "auto" else \
            rule_layout(model, dev, precision)
        single = None
        if precision == "auto" and len(sample) > 1:  # the same memory format: the weights are placed once
            one = choose_layout(model, sample[:1], dev, train=False, channels_last=layout.channels_last)
            single = one.precision if one.precision != layout.precision else None
        model, channels_last = place_model(model, dev, layout.channels_last)
        return cls(model, normalizer, list(class_names), dev, layout.precision, channels_last,
                   parse_tta(tta), batch_size, dict(info or {}), float(temperature), photo_method,
                   imagenet_weight=imagenet_weight, threads=threads, single_image_precision=single)

    @classmethod
    def from_checkpoint(cls, path: str | Path | dict, *, device: str = "auto", precision: str = "auto",
                        tta: Sequence[str] | str | None = None, batch_size: int = 1000,
                        expect_model: str | None = None, photo_method: str = "auto",
                        imagenet_weight: float = 0.0, threads: int | None = None) -> Predictor:
        """Load best.pt / last.pt, a run folder, an exported .onnx file (`from_onnx`) or a checkpoint
        dict already read with `read_checkpoint`. `tta=None` uses the views the run was trained with;
        `threads=None` the model's own CPU thread count where it registers one, else the process's."""
        if is_onnx_path(path):
            if expect_model is not None:
                raise ConfigError("--model cannot be checked against an ONNX file; leave it out")
            return cls.from_onnx(path, tta=tta, batch_size=batch_size, threads=threads, photo_method=photo_method,
                                 imagenet_weight=imagenet_weight)
        if isinstance(path, dict):
            ckpt = path
            model = build_from_checkpoint(ckpt, expect_model)
        else:
            model, ckpt = load_checkpoint(path, expect_model=expect_model)
        cfg = ckpt.get("config") or {}
        info = {"model": ckpt["model"], "epoch": ckpt.get("epoch"), "path": ckpt["path"], "config": cfg}
        if threads is None and ckpt["model"] in list_models():
            threads = model_info(ckpt["model"]).cpu_threads
        return cls.from_model(model, Normalization.from_dict(ckpt["normalization"]), ckpt["class_names"],
                              device=device, precision=precision, tta=cfg.get("tta", []) if tta is None else tta,
                              batch_size=batch_size, info=info, temperature=ckpt.get("temperature") or 1.0,
                              photo_method=photo_method, imagenet_weight=imagenet_weight, threads=threads)

    @classmethod
    def from_onnx(cls, path: str | Path, *, tta: Sequence[str] | str | None = None, batch_size: int = 1000,
                  threads: int | None = None, photo_method: str = "auto", imagenet_weight: float = 0.0) -> Predictor:
        """An exported .onnx file run by ONNX Runtime on the CPU. Its graph already normalizes and
        averages the TTA views it was exported with; `tta` adds views outside a graph without them."""
        module = load_onnx(path, threads)
        meta = module.meta
        baked = parse_tta(meta["tta"])
        extra = parse_tta(tta)
        if baked and extra:
            raise ConfigError(f"{path} already averages the TTA views {'+'.join(baked)} inside its graph; "
                              "leave --tta out")
        info = {"model": meta["model"], "epoch": meta.get("epoch"), "path": str(path), "config": meta.get("config") or {},
                "format": "onnx", "onnx": meta}
        # the graph takes [0, 1] pixels and normalizes inside
        return cls(module, Normalization.identity(), list(meta["class_names"]), torch.device("cpu"), "fp32",
                   False, extra, batch_size, info, float(meta["temperature"] or 1.0), photo_method,
                   imagenet_weight=imagenet_weight)

    @classmethod
    def from_checkpoints(cls, paths: Sequence, **kwargs) -> Predictor:
        """`from_checkpoint` for one path; for several, each loaded with the same keyword arguments and
        combined by `ensemble`."""
        predictors = [cls.from_checkpoint(p, **kwargs) for p in paths]
        return predictors[0] if len(predictors) == 1 else cls.ensemble(predictors)

    @classmethod
    def ensemble(cls, predictors: Sequence[Predictor]) -> Predictor:
        """Several trained runs as one Predictor. Its logits are the mean of the members' logits divided
        by their temperatures, each member with its own normalization, TTA and temperature
        (`ensemble_logits`); the photo conversion, the ImageNet prior's weight and the unknown-item
        threshold are the first member's, applied once to the ensemble."""
        predictors = list(predictors)
        if len(predictors) < 2:
            raise ConfigError(f"an ensemble needs at least two models, got {len(predictors)}")
        check_same_classes(predictors)
        first = predictors[0]
        info = {**first.info, "model": "ensemble of " + ", ".join(str(p.info.get("model")) for p in predictors),
                "path": ", ".join(str(p.info.get("path")) for p in predictors), "epoch": None,
                "members": [{k: p.info.get(k) for k in ("model", "path", "epoch")} for p in predictors]}
        members = [replace(p, imagenet_weight=0.0, members=[], _prior=None) for p in predictors]
        return replace(first, members=members, temperature=1.0, info=info, _prior=None)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_images(self, images) -> tuple[torch.Tensor, list | None, list | None]:
        """(N, 28, 28) uint8, the photos they came from and each item's box in its photo:
        Fashion-MNIST-style arrays as they are (no photos, no boxes), photos converted."""
        if _is_photo_source(images):
            images = [images]
        if isinstance(images, (list, tuple)) and images and any(_is_photo_source(x) for x in images):
            from .data.photos import convert_many
            from .errors import PhotoError

            batch, converted, problems = convert_many(images, self.photo_method)
            if problems:
                name, why = problems[0]
                more = f" ({len(problems)} of {len(images)} inputs failed)" if len(problems) > 1 else ""
                raise PhotoError(f"{name}: {why}{more}")
            return torch.as_tensor(batch), list(images), [c.box for c in converted]
        return as_image_batch(images), None, None

    def predict_logits(self, images, *, photos: Sequence | None = None, boxes: Sequence | None = None
                       ) -> torch.Tensor:
        """Logits before the temperature, float32 on the CPU. With the ImageNet prior on and photos
        given (or passed as `photos`, the originals of 28x28 `images` already converted, with the
        items' `boxes` in them from `Converted.box`), the combined logits: this model's plus
        T * w * log p_imagenet, so that softmax(logits / T) is the weighted geometric mean of both."""
        if boxes is not None and photos is None:
            raise ConfigError("boxes= names the items in photos=; pass the photos with them")
        x, sources, found = self.to_images(images)
        if photos is not None:  # the photos behind images already converted: their boxes come with them or not at all
            sources, found = list(photos), None if boxes is None else list(boxes)
        if not len(x):
            return torch.zeros(0, self.num_classes)
        logits = self._model_logits(x)
        if self.imagenet_weight and sources is not None:
            if len(sources) != len(logits):
                raise ConfigError(f"photos= names {len(sources)} photos for {len(logits)} images")
            logits = logits + self.temperature * self.imagenet_weight * torch.as_tensor(
                self.imagenet_prior(sources, found), dtype=torch.float32)
        return logits

    def _model_logits(self, x: torch.Tensor, fold: bool | None = None) -> torch.Tensor:
        """The network's logits for an (N, 28, 28) batch with this predictor's TTA; an ensemble's combined."""
        fold = self.fold_batchnorm if fold is None else fold
        if self.members:
            return ensemble_logits([m._model_logits(x, fold) / m.temperature for m in self.members])
        precision = self.single_image_precision if self.single_image_precision and len(x) == 1 else self.precision
        with model_threads(self.threads if self.device.type == "cpu" else None):
            return predict_logits(self.forward_model(fold), x.to(self.device), normalizer=self.normalizer,
                                  batch_size=self.batch_size, precision=precision, channels_last=self.channels_last,
                                  tta=self.tta)

    def forward_model(self, fold: bool | None = None) -> nn.Module:
        """The module predictions run: `model` with its BatchNorms folded (`fold_batchnorm`), or as it is."""
        if not ((self.fold_batchnorm if fold is None else fold) and isinstance(self.model, nn.Module)):
            return self.model
        # weights loaded, trained or moved in place give new pointers or versions: fold again
        key = (id(self.model), *((t.data_ptr(), t._version) for t in (*self.model.parameters(), *self.model.buffers())))
        if self._folded is None or self._folded[0] != key:
            self._folded = (key, inference_model(self.model))
        return self._folded[1]

    def imagenet_prior(self, photos: Sequence, boxes: Sequence | None = None) -> np.ndarray:
        """(N, 10) log-probabilities of EfficientNet-Lite0's ImageNet classes summed into the ten; with
        `boxes` (each item's box in its photo, from the conversion) it looks at the item, not the centre."""
        from .data.photos import load_image
        from .models.imagenet_prior import ImageNetPrior

        if self.num_classes != 10:
            raise ConfigError("the ImageNet prior maps ImageNet classes to Fashion-MNIST's ten; this model has "
                              f"{self.num_classes} classes")
        if self._prior is None:
            self._prior = ImageNetPrior(self.device)
        return self._prior([load_image(p).convert("RGB") for p in photos], None if boxes is None else list(boxes))

    def predict_proba(self, images) -> np.ndarray:
        """Calibrated class probabilities: softmax(logits / temperature)."""
        return torch.softmax(self.predict_logits(images) / self.temperature, 1).numpy()

    def predict(self, images, k: int = 3) -> list[dict]:
        """Per image: the predicted class, its probability, the top-k (name, probability) pairs and
        the unknown-item score and flag ("probably none of the classes")."""
        return self.describe(self.predict_logits(images), k)

    def describe(self, logits: torch.Tensor, k: int = 3) -> list[dict]:
        """`predict`'s records for logits already computed."""
        probs = torch.softmax(torch.as_tensor(logits) / self.temperature, 1).numpy()
        unknown = unknown_scores(logits, self.temperature)["msp"]
        k = max(1, min(k, self.num_classes))
        out = []
        for p, u in zip(probs, unknown):
            top = np.argsort(-p, kind="stable")[:k]
            out.append({"label": self.class_names[top[0]], "index": int(top[0]), "probability": float(p[top[0]]),
                        "top_k": [(self.class_names[i], float(p[i])) for i in top],
                        "unknown_score": float(u), "unknown": bool(u > self.unknown_threshold)})
        return out

    @torch.no_grad()
    def embeddings(self, images) -> np.ndarray | None:
        """The features entering the last nn.Linear (the classifier head), without TTA; None for a
        model without a Linear layer."""
        if self.members:
            raise ConfigError("an ensemble has no single embedding space; take the embeddings of one member "
                              "(predictor.members[i].embeddings)")
        head = last_linear(self.model)
        if head is None:
            return None
        captured: list[torch.Tensor] = []

        def hook(module, inputs):
            captured.append(inputs[0].detach().float().flatten(1).cpu())

        handle = head.register_forward_pre_hook(hook)
        try:
            predict_logits(self.model, self.to_images(images)[0].to(self.device), normalizer=self.normalizer,
                           batch_size=self.batch_size, precision=self.precision, channels_last=self.channels_last)
        finally:
            handle.remove()
        return torch.cat(captured).numpy() if captured else None

    def __repr__(self) -> str:
        prior = f", imagenet prior w={self.imagenet_weight:g}" if self.imagenet_weight else ""
        if self.members:
            return f"Predictor({self.info['model']}, {self.num_classes} classes{prior})"
        one = f" ({self.single_image_precision} for one image)" if self.single_image_precision else ""
        return (f"Predictor({self.info.get('model', type(self.model).__name__)}, {self.num_classes} classes, "
                f"{self.device}, {self.precision}{one}, tta={'+'.join(self.tta) or 'none'}, T={self.temperature:.3g}{prior})")
