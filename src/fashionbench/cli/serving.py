"""`fashionbench export` (a checkpoint to a self-describing ONNX file, optionally int8) and
`fashionbench serve` (the HTTP API and upload page)."""

from __future__ import annotations

import argparse

from . import options


def cmd_export(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..serve.export import CALIBRATION_IMAGES, export_onnx
    from ..utils import set_threads

    if args.format != "onnx":
        raise ConfigError(f"unknown --format {args.format!r}; onnx is the one export format")
    quant = [f for f, v in (("--calibration", args.calibration), ("--calibration-images", args.calibration_images),
                            ("--per-tensor", args.per_tensor or None)) if v is not None]
    if quant and not args.int8:
        raise ConfigError(f"{', '.join(quant)} set(s) the int8 quantization; add --int8 or drop {quant[0]}")
    set_threads(args.threads)
    result = export_onnx(args.checkpoint, args.out, tta=args.tta, int8=args.int8,
                         calibration=args.calibration or "minmax",
                         n_calibration=CALIBRATION_IMAGES if args.calibration_images is None else args.calibration_images,
                         per_channel=not args.per_tensor,
                         dataset=args.dataset, data_dir=args.data_dir, overwrite=args.overwrite)
    print("\n".join(result.lines()))
    print(f"use it: fashionbench predict {result.path} photo.jpg   |   fashionbench serve {result.path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ..serve.app import run_server

    return run_server(args.model, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
                      threads=args.threads, workers=args.inference_threads, max_batch=args.max_batch,
                      method=args.method, imagenet_weight=args.imagenet_prior, tta=args.tta,
                      unknown_threshold=args.unknown_threshold, ensemble=args.ensemble)


def add_parsers(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (optionally int8), checked against PyTorch",
                       description="Write a self-describing ONNX file (dynamic batch; normalization, TTA views "
                       "and metadata inside) and check it on the 10,000 test images: largest logit difference, "
                       "top-1 agreement and accuracy against PyTorch (and, with --int8, against the fp32 graph).")
    p.add_argument("checkpoint", help="best.pt / last.pt or a run folder")
    p.add_argument("--format", default="onnx", help="onnx (the only format)")
    p.add_argument("--out", help="the .onnx file to write (default: model.onnx / model-int8.onnx in the run folder, "
                   "rewritten on each export)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--int8", action="store_true", help="ONNX Runtime static int8 quantization (QDQ, s8 weights, "
                   "u8 activations), calibrated on training images")
    p.add_argument("--tta", action="store_true", help="bake the run's test-time views (flip, shifts) into the graph "
                   "(more accurate, that many times slower)")
    p.add_argument("--calibration", choices=["minmax", "percentile", "entropy"],
                   help="how --int8 picks activation ranges (default minmax)")
    p.add_argument("--calibration-images", type=int, help="training images for --int8 calibration (default 2048)")
    p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor instead of per channel")
    options.add_data_args(p)
    p.add_argument("--threads", type=int, help="CPU threads (default one per core)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="HTTP API and upload page for a checkpoint or an exported .onnx",
                       description="FastAPI + uvicorn (pip install 'fashionbench[serve]'): POST /predict, "
                       "POST /predict/batch, GET /health, /model, /metrics (Prometheus), /docs, and an upload "
                       "page at /.")
    p.add_argument("model", help="best.pt / last.pt, a run folder or an exported .onnx file")
    p.add_argument("--ensemble", action="append", default=[], metavar="RUN",
                   help="another run (or checkpoint, or .onnx) to average with MODEL: the mean of their logits / "
                   "temperature, as predict --ensemble (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a "
                   "phone on the same network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body accepted (default 10)")
    p.add_argument("--max-batch", type=int, default=32, help="most images in one /predict/batch request")
    p.add_argument("--threads", type=int, help="CPU threads per inference (default one per core)")
    p.add_argument("--inference-threads", type=int, default=1, help="requests run through the model at once "
                   "(default 1; the rest wait their turn)")
    p.add_argument("--method", default="auto", help="photo conversion: auto, grabcut, border, fmnist, naive")
    p.add_argument("--imagenet-prior", type=float, nargs="?", const=1.0, default=0.0, metavar="W",
                   help="combine with EfficientNet-Lite0's zero-shot ImageNet prior (weight W, default 1)")
    p.add_argument("--tta", help="test-time views for a checkpoint (default: the run's)")
    p.add_argument("--unknown-threshold", type=float, help="flag 'probably none of the classes' above this score")
    p.set_defaults(func=cmd_serve)
