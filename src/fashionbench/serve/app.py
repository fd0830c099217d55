"""The HTTP service: FastAPI app over one Predictor (a checkpoint or an exported .onnx), run by uvicorn.

    POST /predict        multipart field `file`: top-k, unknown-item flag and score, timings
    POST /predict/batch  multipart fields `files` (up to --max-batch)
    GET  /health, /model, /metrics (Prometheus text), /docs (OpenAPI), / (the upload page)

The model is loaded once. Photo conversion and inference run in a worker pool bounded by
`workers` (each inference using `threads` CPU threads), so a burst of uploads queues instead
of oversubscribing the cores. A request body over the upload limit is refused from its
Content-Length before it is read, or, without one, as soon as the bytes read pass the limit.
A user's bad file is a 4xx JSON error {"error": ..., "detail": ...}; the server stays up.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which name classes imported
# inside create_app (fastapi is an optional extra)

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated

from .. import __version__
from ..data.image_files import source_name
from ..errors import ConfigError, FashionbenchError, ImageTooLargeError, PhotoError
from ..inference import Predictor

log = logging.getLogger(__name__)

INSTALL = "pip install 'fashionbench[serve]'"
UPLOAD_NAME = source_name(b"")  # how the photo loader names bytes in its messages; replaced by the file name
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def require_fastapi():
    try:
        import fastapi
        import python_multipart  # noqa: F401  (FastAPI's form parser)
    except ImportError as e:
        raise ConfigError(f"serving needs FastAPI ({e.name} is not installed): {INSTALL}") from None
    return fastapi


@dataclass
class Metrics:
    """Request counts, a latency histogram and error counts, in Prometheus' text format."""

    requests: dict = field(default_factory=dict)  # (endpoint, status) -> count
    latency: dict = field(default_factory=dict)  # endpoint -> [bucket counts..., +Inf], sum
    errors: dict = field(default_factory=dict)  # (endpoint, kind) -> count
    images: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[endpoint, status] = self.requests.get((endpoint, status), 0) + 1
            counts, total = self.latency.get(endpoint, ([0] * (len(LATENCY_BUCKETS) + 1), 0.0))
            for i, b in enumerate((*LATENCY_BUCKETS, float("inf"))):
                if seconds <= b:
                    counts[i] += 1
            self.latency[endpoint] = (counts, total + seconds)

    def count_images(self, n: int) -> None:
        with self.lock:
            self.images += n

    def error(self, endpoint: str, kind: str) -> None:
        with self.lock:
            self.errors[endpoint, kind] = self.errors.get((endpoint, kind), 0) + 1

    def text(self) -> str:
        with self.lock:
            out = ["# HELP fashionbench_requests_total HTTP requests by endpoint and status code.",
                   "# TYPE fashionbench_requests_total counter"]
            out += [f'fashionbench_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                    for (e, s), n in sorted(self.requests.items())]
            out += ["# HELP fashionbench_request_seconds Request latency in seconds.",
                    "# TYPE fashionbench_request_seconds histogram"]
            for e, (counts, total) in sorted(self.latency.items()):
                for b, n in zip((*LATENCY_BUCKETS, "+Inf"), counts):
                    out.append(f'fashionbench_request_seconds_bucket{{endpoint="{e}",le="{b}"}} {n}')
                out += [f'fashionbench_request_seconds_sum{{endpoint="{e}"}} {total:.6f}',
                        f'fashionbench_request_seconds_count{{endpoint="{e}"}} {counts[-1]}']
            out += ["# HELP fashionbench_errors_total Requests answered with an error, by kind.",
                    "# TYPE fashionbench_errors_total counter"]
            out += [f'fashionbench_errors_total{{endpoint="{e}",kind="{k}"}} {n}'
                    for (e, k), n in sorted(self.errors.items())]
            out += ["# HELP fashionbench_images_total Images classified.", "# TYPE fashionbench_images_total counter",
                    f"fashionbench_images_total {self.images}"]
        return "\n".join(out) + "\n"


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, without reading past the limit."""

    def __init__(self, app, limit: int, metrics: Metrics):
        self.app, self.limit, self.metrics = app, int(limit), metrics

    async def refuse(self, scope, send) -> None:
        body = json.dumps({"error": f"the upload is over the {self.limit / 2**20:g} MB limit",
                           "detail": "send a smaller photo (or start the server with a larger --max-upload-mb)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe(scope.get("path", ""), 413, 0.0)
        self.metrics.error(scope.get("path", ""), "too_large")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                return await self.refuse(scope, send)
            return await self.app(scope, receive, send)
        # no Content-Length (chunked): read up to the limit here, then hand the buffered body on
        messages, total = [], 0
        while True:
            msg = await receive()
            messages.append(msg)
            if msg["type"] != "http.request":
                break
            total += len(msg.get("body", b""))
            if total > self.limit:
                return await self.refuse(scope, send)
            if not msg.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


def run_accuracy(checkpoint: Path) -> float | None:
    """The test accuracy in the metrics.json of the run a checkpoint belongs to, if it has one."""
    from .. import runs
    from ..errors import CheckpointError

    metrics = (checkpoint if checkpoint.is_dir() else checkpoint.parent) / runs.METRICS
    try:
        return runs.read_json(metrics).get("test_accuracy") if metrics.is_file() else None
    except CheckpointError:
        return None


def model_card(predictor: Predictor) -> dict:
    """GET /model: what the service runs."""
    info = predictor.info
    meta = info.get("onnx") or {}
    cfg = info.get("config") or {}
    accuracy = meta.get("test_accuracy")
    members = [{**m, "test_accuracy": run_accuracy(Path(m["path"])) if m.get("path") else None}
               for m in info.get("members", [])]
    if accuracy is None and info.get("path") and not members:
        accuracy = run_accuracy(Path(info["path"]))
    return {"model": info.get("model"), "format": info.get("format", "checkpoint"), "path": info.get("path"),
            "classes": predictor.class_names, "test_accuracy": accuracy, "temperature": predictor.temperature,
            "tta": meta.get("tta", predictor.tta) if meta else predictor.tta, "recipe": cfg.get("recipe"),
            "quantization": meta.get("quantization"), "photo_method": predictor.photo_method,
            "imagenet_prior_weight": predictor.imagenet_weight, "unknown_threshold": predictor.unknown_threshold,
            "input": {"upload": "one image file per field (JPEG, PNG, WebP, BMP, TIFF, GIF)",
                      "model_input": "28x28 grayscale, light item on black (photos are converted)"},
            "members": members, "fashionbench_version": __version__}


class Classifier:
    """One upload in, one JSON-able record out; thread-safe (one Predictor, calls serialized by the pool)."""

    def __init__(self, predictor: Predictor, k: int = 3):
        self.predictor, self.k = predictor, max(1, min(k, predictor.num_classes))

    def __call__(self, data: bytes, filename: str, with_image: bool = False) -> dict:
        from ..data.photos import to_fmnist

        t0 = time.perf_counter()
        try:
            converted = to_fmnist(data, self.predictor.photo_method)
        except PhotoError as e:
            raise type(e)(str(e).replace(UPLOAD_NAME, filename or "the upload", 1)) from None
        t1 = time.perf_counter()
        logits = self.predictor.predict_logits(converted.image[None], photos=[data], boxes=[converted.box])
        rec = self.predictor.describe(logits, self.k)[0]
        t2 = time.perf_counter()
        out = {"filename": filename, "label": rec["label"], "index": rec["index"], "probability": rec["probability"],
               "top_k": [{"label": n, "probability": p} for n, p in rec["top_k"]], "unknown": rec["unknown"],
               "unknown_score": rec["unknown_score"], "method": converted.method,
               "timings_ms": {"convert": round(1000 * (t1 - t0), 2), "inference": round(1000 * (t2 - t1), 2)}}
        if with_image:
            from PIL import Image

            from ..evaluate.html import png_data_url
            from ..evaluate.photos import png_bytes

            out["model_input"] = png_data_url(png_bytes(Image.fromarray(converted.image)))
        return out


def create_app(predictor: Predictor, *, max_upload_mb: float = 10.0, max_batch: int = 32, workers: int = 1, k: int = 3):
    """The ASGI app (FastAPI inside the upload-limit middleware)."""
    require_fastapi()
    import anyio
    from fastapi import FastAPI, File, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    if not max_upload_mb > 0:
        raise ConfigError(f"--max-upload-mb must be positive, got {max_upload_mb}")
    if max_batch < 1 or workers < 1:
        raise ConfigError("--max-batch and --inference-threads must be at least 1")
    metrics = Metrics()
    classify = Classifier(predictor, k)
    limiter = anyio.CapacityLimiter(workers)
    card = model_card(predictor)
    started = time.time()
    page = resources.files("fashionbench.serve").joinpath("page.html").read_text(encoding="utf-8").replace(
        "__MODEL__", json.dumps(card).replace("<", "\\u003c"))  # the card as a JS literal; no "</script>" inside

    app = FastAPI(title="fashionbench", version=__version__,
                  description=f"Fashion-MNIST classifier `{card['model']}` ({len(card['classes'])} classes). Upload a "
                              "photo of a garment, shoe or bag; photos are converted to 28x28 Fashion-MNIST style.")

    def error(status: int, message: str, detail: str, endpoint: str, kind: str) -> JSONResponse:
        metrics.error(endpoint, kind)
        return JSONResponse({"error": message, "detail": detail}, status_code=status)

    @app.middleware("http")
    async def count(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        metrics.observe(request.url.path, response.status_code, time.perf_counter() - t0)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # a body that is not a multipart form never reaches an endpoint: its missing fields land here
        if (bad := check_multipart(request)) is not None:
            return bad
        fields = sorted({str(e["loc"][-1]) for e in exc.errors() if e.get("loc")})
        want = "file" if request.url.path == "/predict" else "files"
        return error(422, f"missing or invalid form field {', '.join(map(repr, fields)) or repr(want)}",
                     f"send multipart/form-data with the image in field '{want}' (curl -F {want}=@photo.jpg)",
                     request.url.path, "bad_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), "see /docs for the API", request.url.path,
                     "not_found" if exc.status_code == 404 else "http")

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception):  # a bug on our side, never the user's file
        log.exception("internal error on %s", request.url.path)
        return error(500, "internal server error", f"{type(exc).__name__}; the server log has the traceback",
                     request.url.path, "internal")

    def check_multipart(request: Request) -> JSONResponse | None:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return error(415, f"wrong content type {ctype.split(';')[0] or '(none)'!r}",
                         "send multipart/form-data (curl -F file=@photo.jpg)", request.url.path, "content_type")
        return None

    def photo_error(e: PhotoError, endpoint: str) -> JSONResponse:
        too_large = isinstance(e, ImageTooLargeError)
        return error(413 if too_large else 400, str(e), "upload a JPEG, PNG, WebP, BMP, TIFF or GIF photo under "
                     f"{max_upload_mb:g} MB", endpoint, "too_many_pixels" if too_large else "bad_image")

    async def run(data: bytes, name: str, with_image: bool) -> dict:
        return await anyio.to_thread.run_sync(classify, data, name, with_image, limiter=limiter)

    @app.post("/predict", summary="Classify one photo")
    async def predict(file: Annotated[UploadFile, File(description="the photo")], image: bool = False):
        """Top-k classes with calibrated probabilities, the unknown-item flag and score, and timings;
        `?image=true` adds the 28x28 the model saw as a PNG data URL."""
        t0 = time.perf_counter()
        data = await file.read()
        try:
            out = await run(data, file.filename or "upload", image)
        except PhotoError as e:
            return photo_error(e, "/predict")
        metrics.count_images(1)
        out["timings_ms"]["total"] = round(1000 * (time.perf_counter() - t0), 2)
        return out

    @app.post("/predict/batch", summary="Classify several photos")
    async def predict_batch(files: Annotated[list[UploadFile], File(description="the photos")]):
        """One result per file, in order; a file that cannot be used gets {"filename", "error"} and the
        rest are still classified (400 if none could be)."""
        if len(files) > max_batch:
            return error(413, f"{len(files)} files in one batch; the limit is {max_batch}",
                         "split the upload into smaller batches", "/predict/batch", "too_many_files")
        t0 = time.perf_counter()
        results, ok = [], 0
        for f in files:
            try:
                results.append(await run(await f.read(), f.filename or "upload", False))
                ok += 1
            except PhotoError as e:
                metrics.error("/predict/batch", "bad_image")
                results.append({"filename": f.filename, "error": str(e)})
        metrics.count_images(ok)
        body = {"results": results, "classified": ok, "failed": len(files) - ok,
                "timings_ms": {"total": round(1000 * (time.perf_counter() - t0), 2)}}
        if not ok:
            return JSONResponse({"error": "none of the files could be classified", "detail": results[0]["error"],
                                 **body}, status_code=400)
        return body

    @app.get("/health", summary="Liveness")
    async def health():
        return {"status": "ok", "model": card["model"], "uptime_s": round(time.time() - started, 1)}

    @app.get("/model", summary="The model this service runs")
    async def model():
        return card

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus():
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/", summary="Upload page", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page)

    return BodyLimit(app, int(max_upload_mb * 2**20), metrics)


def run_server(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 10.0,
               threads: int | None = None, workers: int = 1, max_batch: int = 32, method: str = "auto",
               imagenet_weight: float = 0.0, tta: str | None = None, unknown_threshold: float | None = None,
               ensemble: Sequence[str | Path] = ()) -> int:
    """Load the model once (with `ensemble`, the mean of its and their logits / temperature, as `predict
    --ensemble` computes it) and serve it until interrupted."""
    require_fastapi()
    try:
        import uvicorn
    except ImportError:
        raise ConfigError(f"serving needs uvicorn, which is not installed: {INSTALL}") from None
    from ..utils import set_threads

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    set_threads(threads)
    predictor = Predictor.from_checkpoints([model, *ensemble], device="cpu", tta=tta, batch_size=64,
                                           photo_method=method, imagenet_weight=imagenet_weight)
    if unknown_threshold is not None:
        if not 0 <= unknown_threshold <= 1:
            raise ConfigError(f"--unknown-threshold must be in [0, 1], got {unknown_threshold}")
        predictor.unknown_threshold = unknown_threshold
    app = create_app(predictor, max_upload_mb=max_upload_mb, max_batch=max_batch, workers=workers)
    check_port(host, port)
    print(f"fashionbench: serving {predictor!r} on http://{host}:{port}/ (API docs at /docs); Ctrl-C stops it",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def check_port(host: str, port: int) -> None:
    """Fail with one line before uvicorn would (it logs and exits) when the address cannot be bound."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host!r} is not an address this machine has ({e.strerror}); use 127.0.0.1 or "
                          "0.0.0.0") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise FashionbenchError(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port or "
                                    "stop what uses it") from None
