"""Exported ONNX files: the metadata they carry and a module that runs one in ONNX Runtime.

`fashionbench export` writes them (serve/export.py); `Predictor.from_checkpoint` reads them
through `load_onnx`, so `predict`, `evaluate` and `serve` take a .onnx file alone. The graph
maps float32 images (N, 1, 28, 28) in [0, 1], light item on black, to logits (N, classes):
normalization and any test-time augmentation are inside it. Everything else a consumer needs
(class names, temperature, accuracy, provenance) is one JSON document in the model's
metadata_props under `METADATA_KEY`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import CheckpointError, ConfigError

FORMAT = "fashionbench-onnx"
VERSION = 1
METADATA_KEY = "fashionbench"
INPUT, OUTPUT = "image", "logits"
INSTALL = "pip install 'fashionbench[export]'"


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"ONNX files need ONNX Runtime, which is not installed: {INSTALL}") from None
    return onnxruntime


def is_onnx_path(path) -> bool:
    return isinstance(path, (str, Path)) and Path(path).suffix.lower() == ".onnx"


def session_options(threads: int | None = None):
    """ORT session options: `threads` intra-op threads (default: torch's count) and no inter-op pool."""
    ort = require_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: ORT's warnings are about its own graph rewrites
    return opts


def open_session(model: str | Path | bytes, threads: int | None = None):
    """An ORT CPU session for a file or serialized model; a clear error for anything that is not ONNX."""
    ort = require_onnxruntime()
    name = "the model bytes" if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes):
        path = Path(model)
        if not path.is_file():
            raise CheckpointError(f"ONNX file {path} not found; write one with `fashionbench export CHECKPOINT`")
        if path.stat().st_size == 0:
            raise CheckpointError(f"{path} is empty (0 bytes); export it again")
        model = str(path)
    try:
        return ort.InferenceSession(model, sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own pybind exception types for unreadable or invalid models
        why = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"{name} could not be opened as an ONNX model ({why}); export it again with "
                              "`fashionbench export CHECKPOINT`") from None


def read_metadata(session, name: str) -> dict:
    """The fashionbench document of an open session, checked."""
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    try:
        meta = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{name} is an ONNX model without fashionbench metadata (no '{METADATA_KEY}' entry); "
                              "export it with `fashionbench export CHECKPOINT`")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise CheckpointError(f"{name} was written by a newer fashionbench (ONNX format {meta.get('version')}); upgrade")
    missing = [k for k in ("model", "class_names", "temperature", "tta") if k not in meta]
    if missing:
        raise CheckpointError(f"{name}: its fashionbench metadata lacks {', '.join(missing)}; export it again")
    inputs = [i.name for i in session.get_inputs()]
    if inputs != [INPUT]:
        raise CheckpointError(f"{name} takes inputs {inputs}, not ['{INPUT}']; export it again")
    return meta


class OnnxModule(nn.Module):
    """An ORT session as a module: float (N, 1, 28, 28) in [0, 1] -> float32 logits on the CPU."""

    def __init__(self, session, meta: dict):
        super().__init__()
        self.session = session
        self.meta = meta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not len(x):
            return torch.zeros(0, len(self.meta["class_names"]))
        feed = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run([OUTPUT], {INPUT: feed})[0])


def load_onnx(path: str | Path, threads: int | None = None) -> OnnxModule:
    session = open_session(path, threads)
    return OnnxModule(session, read_metadata(session, str(path)))
