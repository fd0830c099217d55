"""Export a checkpoint to a self-describing ONNX file (optionally int8) and check it against PyTorch.

The graph takes float32 (N, 1, 28, 28) in [0, 1] with a dynamic batch and returns logits:
normalization, and with `tta` the run's test-time views (through the same `tta_forward` as
PyTorch inference), are inside it, so a phone app or another runtime needs no fashionbench code.
The metadata (`onnx_file.METADATA_KEY`) holds what `predict` and `serve` need to use the file
alone. Every export runs the 10,000 test images through ONNX Runtime and through PyTorch and
reports the largest logit difference, top-1 agreement and both accuracies. BatchNorm is folded
into the conv before it first (`fold.py`), also across a max-pool, which ORT does not do.

int8: ONNX Runtime static quantization in the QDQ format, calibrated on training images:
int8 weights (symmetric, per output channel by default) and uint8 activations (asymmetric:
after GELU/ReLU most activations are non-negative, and an asymmetric range spends no code on
negatives that do not occur), reduce_range off. That is ORT's recommended scheme for x86 CPUs
with VNNI (every CPU kind of this project); QDQ is the format its CPU kernels are optimized for.
ORT fuses conv + ReLU into one integer op; GELU has no integer kernel and runs in float between
a dequantize and a quantize, which at batch 1 costs more than the int8 convs save.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data.normalize import Normalization
from ..errors import CheckpointError, ConfigError
from ..forward import predict_logits, tta_forward
from ..inference import Predictor
from ..models.fold import fold_batchnorm
from ..onnx_file import (
    FORMAT,
    INPUT,
    INSTALL,
    METADATA_KEY,
    OUTPUT,
    VERSION,
    OnnxModule,
    is_onnx_path,
    open_session,
    read_metadata,
)
from ..utils import atomic_write_bytes

OPSET = 18
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
CALIBRATION_IMAGES = 2048
CHECK_BATCH = 1000
CONFIG_KEYS = ("recipe", "model", "model_args", "dataset", "epochs", "seed", "augment", "tta", "teacher", "prune_from")
# Models whose forward torch.onnx cannot trace, and why.
NOT_EXPORTABLE = {"numpy_mlp": "written in NumPy (forward and backward by hand): there is no torch graph to export"}


@contextlib.contextmanager
def _quiet(loggers: tuple[str, ...], level: int):
    """Silence what the ONNX tools print on stdout and log below `level` on `loggers` ("" is the root)."""
    chatty = [logging.getLogger(name or None) for name in loggers]
    levels = [lg.level for lg in chatty]
    for lg in chatty:
        lg.setLevel(level)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, old in zip(chatty, levels):
            lg.setLevel(old)


def _check_calibration(method: str | None = None, n: int | None = None) -> None:
    if method is not None and method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    if n is not None and n < 1:
        raise ConfigError(f"--calibration-images must be at least 1, got {n}")


class ExportGraph(nn.Module):
    """[0, 1] images -> normalization -> model -> mean over the TTA views: what is exported."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor, tta: list[str]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.float())  # Normalization.tensors: scalars, or (1, 1, 28, 28) per pixel
        self.register_buffer("std", std.float())
        self.tta = list(tta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tta_forward(lambda v: self.model((v - self.mean) / self.std), x, self.tta)


@dataclass
class ExportCheck:
    """ONNX Runtime against a reference on the same images."""

    images: int
    max_abs_diff: float
    agreement: float  # fraction of images with the same top-1
    accuracy: float  # of the exported graph
    reference_accuracy: float
    reference: str  # what it was compared with

    def line(self) -> str:
        return (f"check on {self.images:,} test images against {self.reference}: max |logit difference| "
                f"{self.max_abs_diff:.2e}, top-1 agreement {100 * self.agreement:.2f}%, accuracy "
                f"{100 * self.accuracy:.2f}% ({self.reference} {100 * self.reference_accuracy:.2f}%, "
                f"{100 * (self.accuracy - self.reference_accuracy):+.2f} points)")


@dataclass
class ExportResult:
    path: Path
    size_bytes: int
    metadata: dict
    checks: list[ExportCheck] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        q = self.metadata.get("quantization")
        kind = f"int8 ({q['scheme']}, {q['calibration']} calibration on {q['calibration_images']:,} training images)" \
            if q else "fp32"
        tta = "+".join(self.metadata["tta"]) or "none"
        return [f"exported {self.path} ({self.size_bytes / 1024:.1f} KB, {kind}, opset {self.metadata['opset']}, "
                f"dynamic batch, TTA {tta}) in {self.seconds:.1f} s", *("  " + c.line() for c in self.checks)]


def _graph(predictor: Predictor, tta: list[str]) -> ExportGraph:
    mean, std = predictor.normalizer.tensors(torch.device("cpu"))
    model, _ = fold_batchnorm(predictor.model)  # a copy: the predictor's own model is left as it is
    return ExportGraph(model.float().cpu(), mean, std, tta).eval()


def onnx_bytes(graph: nn.Module, opset: int = OPSET) -> bytes:
    """Serialized ONNX model of `graph` with a dynamic batch dimension (torch.onnx's dynamo exporter)."""
    example = torch.rand(2, 1, 28, 28)
    try:
        # the exporter's graph passes log each rewrite at INFO, which the CLI's log level would print
        with _quiet(("onnx_ir", "onnxscript"), logging.WARNING), torch.no_grad():
            program = torch.onnx.export(graph, (example,), input_names=[INPUT], output_names=[OUTPUT],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset,
                                        dynamo=True, verbose=False)
    except ImportError as e:
        raise ConfigError(f"ONNX export needs the onnx packages ({e.name} is not installed): {INSTALL}") from None
    return program.model_proto.SerializeToString()


def compact(proto) -> None:
    """Drop what only debugging reads: the exporter's per-node metadata (stack traces, module paths),
    doc strings, intermediate shape records, and long tensor and node names (renamed t0, t1...).
    On a 100 k-parameter int8 model that is half the file."""
    keep = {INPUT, OUTPUT}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    del proto.graph.value_info[:]
    for init in proto.graph.initializer:
        init.name = short(init.name)
        init.doc_string = ""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string, node.name = "", ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for vi in (*proto.graph.input, *proto.graph.output):
        vi.name = short(vi.name)
        vi.doc_string = ""
    del proto.graph.metadata_props[:]


def with_metadata(model: bytes, meta: dict) -> bytes:
    import onnx

    proto = onnx.load_from_string(model)
    compact(proto)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)
    proto.producer_name, proto.producer_version = "fashionbench", __version__
    proto.doc_string = (f"{meta['model']} for {len(meta['class_names'])}-class 28x28 grayscale images; input "
                        f"'{INPUT}' float32 (N, 1, 28, 28) in [0, 1], light item on black; output '{OUTPUT}': "
                        f"logits, probabilities = softmax(logits / {meta['temperature']:.4g})")
    return proto.SerializeToString()


def quantize_int8(model: bytes, calibration: np.ndarray, method: str = "minmax", per_channel: bool = True) -> bytes:
    """Static QDQ quantization (s8 weights, u8 activations) calibrated on `calibration` (N, 1, 28, 28) in [0, 1]."""
    _check_calibration(method)
    try:
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ConfigError(f"int8 export needs ONNX Runtime's quantization tools: {INSTALL}") from None

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT: calibration[i:i + 64]} for i in range(0, len(calibration), 64)])

        def get_next(self):
            return next(self.batches, None)

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory(prefix="fashionbench-int8-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(model)
        # shape inference and graph optimization (BatchNorm folded into the convs) before quantizing
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        # the quantizer prints and logs (root logger) about tensors it leaves in float, e.g. GELU
        with _quiet(("",), logging.ERROR):
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=not _has_vnni(), activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=methods[method])
        return out.read_bytes()


def _has_vnni() -> bool:
    """x86 CPUs without VNNI overflow ORT's u8 x s8 int8 products (16-bit intermediate sums): there
    7-bit weights (reduce_range) keep them exact; elsewhere, and off x86 or Linux, full 8 bits."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "vnni" in flags or "avx2" not in flags


def onnx_logits(model: bytes, images_u8: torch.Tensor, class_names: list[str]) -> torch.Tensor:
    """Logits of a serialized graph through the one inference path, as `Predictor.from_onnx` runs it."""
    module = OnnxModule(open_session(model), {"class_names": class_names})
    return predict_logits(module, images_u8, normalizer=Normalization.identity(), batch_size=CHECK_BATCH)


def compare(logits: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor, name: str) -> ExportCheck:
    pred, ref = logits.argmax(1), reference.argmax(1)
    return ExportCheck(len(labels), float((logits - reference).abs().max()), float((pred == ref).float().mean()),
                       float((pred == labels).float().mean()), float((ref == labels).float().mean()), name)


def calibration_images(train_images: torch.Tensor, n: int, seed: int = 0) -> np.ndarray:
    """`n` training images drawn at random (seeded) as (n, 1, 28, 28) float32 in [0, 1]."""
    _check_calibration(n=n)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train_images), generator=g)[:n]
    return train_images[idx].unsqueeze(1).float().div(255).numpy()


def default_out(checkpoint: str | Path, int8: bool) -> Path:
    """model.onnx / model-int8.onnx beside the checkpoint (inside a run folder given as a folder)."""
    p = Path(checkpoint)
    folder = p if p.is_dir() else p.parent
    return folder / ("model-int8.onnx" if int8 else "model.onnx")


def export_onnx(checkpoint: str | Path, out: str | Path | None = None, *, tta: bool = False, int8: bool = False,
                calibration: str = "minmax", n_calibration: int = CALIBRATION_IMAGES, per_channel: bool = True,
                data=None, dataset: str | None = None, data_dir: str | None = None, opset: int = OPSET,
                overwrite: bool = False) -> ExportResult:
    """Checkpoint (or run folder) -> .onnx with metadata, checked on the test set; `data` is the Dataset
    to check and calibrate on (default: the run's own, or `dataset` / `data_dir` as on the command line).
    An `out` file that exists is refused unless `overwrite`; the default file in the run folder is the
    run's own export and is rewritten."""
    from ..data.sources import dataset_args, load_dataset
    from ..models import count_params

    start = time.perf_counter()
    if is_onnx_path(checkpoint):
        raise ConfigError(f"{checkpoint} is already an ONNX file; pass the checkpoint (best.pt / last.pt or the run "
                          "folder) it came from")
    given = out is not None
    out = Path(out) if given else default_out(checkpoint, int8)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {out} must end in .onnx")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the .onnx file to write")
    if given and out.exists() and not overwrite:
        raise ConfigError(f"--out {out} exists; pass --overwrite to replace it, or another file name")
    _check_calibration(calibration, n_calibration if int8 else None)
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", precision="fp32", tta=None)
    name = predictor.info["model"]
    if name in NOT_EXPORTABLE:
        raise ConfigError(f"model {name!r} cannot be exported to ONNX: {NOT_EXPORTABLE[name]}")
    views = list(predictor.tta) if tta else []
    cfg = predictor.info.get("config") or {}
    ds = data if data is not None else load_dataset(*dataset_args(cfg, dataset, data_dir))
    if ds.num_classes != predictor.num_classes:
        raise ConfigError(f"the checkpoint has {predictor.num_classes} classes but the dataset has {ds.num_classes}")

    graph = _graph(predictor, views)
    try:
        fp32 = onnx_bytes(graph, opset)
    except ConfigError:
        raise
    except Exception as e:  # tracing failures carry long internal messages; the first line names the op
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"model {name!r} could not be exported to ONNX ({why})") from None
    # the model as trained, BatchNorms and all: the graph's own fold is part of what is checked
    reference = dataclasses.replace(predictor, tta=views, batch_size=CHECK_BATCH,
                                    fold_batchnorm=False).predict_logits(ds.test_images)
    labels = ds.test_labels
    fp32_logits = onnx_logits(fp32, ds.test_images, predictor.class_names)
    checks = [compare(fp32_logits, reference, labels, "PyTorch fp32")]
    meta = {
        "format": FORMAT, "version": VERSION, "model": name, "model_args": cfg.get("model_args") or {},
        "class_names": predictor.class_names, "params": count_params(predictor.model),
        "normalization": {**predictor.normalizer.to_dict(), "applied": "inside the graph"},
        "input": {"name": INPUT, "dtype": "float32", "shape": ["N", 1, 28, 28], "range": [0.0, 1.0],
                  "layout": "NCHW", "convention": "pixels / 255, light item on black (Fashion-MNIST)"},
        "output": {"name": OUTPUT, "dtype": "float32", "shape": ["N", predictor.num_classes],
                   "probabilities": "softmax(logits / temperature)"},
        "temperature": predictor.temperature, "tta": views, "opset": opset, "epoch": predictor.info.get("epoch"),
        # the training config's headline fields, not all of it: the file is meant to stay small
        "config": {k: cfg[k] for k in CONFIG_KEYS if k in cfg},
        "dataset": ds.name, "fashionbench_version": __version__, "torch_version": torch.__version__,
        "source_checkpoint": predictor.info["path"], "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quantization": None,
    }
    model = fp32
    if int8:
        calib = calibration_images(ds.train_images, n_calibration)
        model = quantize_int8(fp32, calib, calibration, per_channel)
        checks.append(compare(onnx_logits(model, ds.test_images, predictor.class_names), fp32_logits, labels,
                              "ONNX fp32"))
        meta["quantization"] = {"scheme": f"QDQ static, s8 weights{' per channel' if per_channel else ''}, "
                                          "u8 activations", "calibration": calibration,
                                "calibration_images": len(calib), "fp32_test_accuracy": checks[0].accuracy}
    meta["test_accuracy"] = checks[-1].accuracy
    meta["test_images"] = len(labels)
    model = with_metadata(model, meta)
    read_metadata(open_session(model), str(out))  # the file reads back before it is written
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, model)
    return ExportResult(out, len(model), meta, checks, time.perf_counter() - start)
