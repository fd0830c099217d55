"""The HTTP service against a real uvicorn on 127.0.0.1: every endpoint and every bad upload."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="pip install -e '.[dev]'")
pytest.importorskip("fastapi", reason="pip install 'fashionbench[serve]'")

PHOTOS = Path(__file__).resolve().parents[1] / "photos" / "clothing"
MAX_BATCH = 4


@pytest.fixture(scope="module")
def server(onnx_file, start_server):
    proc, url = start_server(onnx_file, "--max-upload-mb", "1", "--max-batch", str(MAX_BATCH))
    yield url
    proc.terminate()
    proc.wait(10)


def photo(name: str = "dress.jpg") -> tuple[str, bytes, str]:
    return name, (PHOTOS / name).read_bytes(), "image/jpeg"


def assert_json_error(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    for w in words:
        assert w in body["error"] + body.get("detail", ""), body
    return body


def test_health_and_model(server, band_data):
    assert httpx.get(server + "/health").json()["status"] == "ok"
    card = httpx.get(server + "/model").json()
    assert card["model"] == "fastnet" and card["format"] == "onnx" and card["classes"] == band_data.class_names
    assert 0 < card["test_accuracy"] <= 1 and card["input"]["model_input"].startswith("28x28")


def test_predict_one_photo(server, band_data):
    r = httpx.post(server + "/predict", files={"file": photo()}, params={"image": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["filename"] == "dress.jpg" and body["label"] in band_data.class_names
    probs = [t["probability"] for t in body["top_k"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert body["label"] == body["top_k"][0]["label"]
    assert isinstance(body["unknown"], bool) and body["unknown_score"] == pytest.approx(1 - probs[0], abs=1e-5)
    assert set(body["timings_ms"]) == {"convert", "inference", "total"}
    assert body["model_input"].startswith("data:image/png;base64,")


def test_predict_batch_keeps_going_past_a_bad_file(server):
    files = [("files", photo("dress.jpg")), ("files", ("notes.txt", b"hello", "text/plain")),
             ("files", photo("pants.jpg"))]
    body = httpx.post(server + "/predict/batch", files=files).json()
    assert body["classified"] == 2 and body["failed"] == 1
    assert [r["filename"] for r in body["results"]] == ["dress.jpg", "notes.txt", "pants.jpg"]
    assert "notes.txt" in body["results"][1]["error"] and "not an image" in body["results"][1]["error"]
    r = httpx.post(server + "/predict/batch", files=[("files", ("a.txt", b"x", "text/plain"))])
    assert_json_error(r, 400, "none of the files")


def _bomb_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, format="PNG")  # 81 M pixels in a few kB
    return buf.getvalue()


@pytest.mark.parametrize("name, data, status, words", [
    ("notes.txt", b"just text, no pixels", 400, ("notes.txt", "not an image")),
    ("empty.jpg", b"", 400, ("empty.jpg", "empty")),
    ("cut.jpg", (PHOTOS / "dress.jpg").read_bytes()[:2000], 400, ("cut.jpg", "truncated")),
    ("bomb.png", None, 413, ("bomb.png", "pixel")),
])
def test_bad_uploads_get_json_4xx(server, name, data, status, words):
    data = _bomb_png() if data is None else data
    r = httpx.post(server + "/predict", files={"file": (name, data, "image/jpeg")})
    assert_json_error(r, status, *words)
    assert httpx.get(server + "/health").status_code == 200, "the server stays up"


def test_request_shape_errors(server):
    assert_json_error(httpx.post(server + "/predict", files={"photo": photo()}), 422, "'file'")
    assert_json_error(httpx.post(server + "/predict", json={"file": "x"}), 415, "multipart")
    assert_json_error(httpx.post(server + "/predict", content=b"\x89PNG", headers={"content-type": "image/png"}),
                      415, "image/png")
    too_many = [("files", photo()) for _ in range(MAX_BATCH + 1)]
    assert_json_error(httpx.post(server + "/predict/batch", files=too_many), 413, f"limit is {MAX_BATCH}")
    assert_json_error(httpx.get(server + "/nothing-here"), 404)


def test_upload_over_the_limit_is_refused_before_the_body(server):
    big = b"\xff" * (2 * 2**20)
    assert_json_error(httpx.post(server + "/predict", files={"file": ("big.jpg", big, "image/jpeg")}), 413, "1 MB")
    # a client announcing 50 MB gets its answer without sending a byte of the body
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 52428800\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):  # the server answers and closes
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and "limit" in reply

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"\x00" * 65536

    r = httpx.post(server + "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_json_error(r, 413, "limit")


def test_metrics_docs_and_page(server):
    httpx.post(server + "/predict", files={"file": photo()})
    text = httpx.get(server + "/metrics").text
    assert 'fashionbench_requests_total{endpoint="/predict",status="200"}' in text
    assert 'fashionbench_request_seconds_bucket{endpoint="/predict",le="+Inf"}' in text
    assert "# TYPE fashionbench_request_seconds histogram" in text and "fashionbench_images_total" in text
    assert "/predict" in httpx.get(server + "/openapi.json").json()["paths"]
    assert httpx.get(server + "/docs").status_code == 200
    page = httpx.get(server + "/").text
    assert 'capture="environment"' in page and "__MODEL__" not in page and "http" not in page.split("<script>")[1]


def test_serve_bad_model_and_busy_port(tmp_path, server, onnx_file, capsys):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"junk")
    r = subprocess.run([sys.executable, "-m", "fashionbench", "serve", str(bad)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "could not be opened as an ONNX model" in r.stderr and "Traceback" not in r.stderr
    from fashionbench.cli import main

    port = server.rsplit(":", 1)[1]
    assert main(["serve", str(onnx_file), "--port", port]) == 2  # the module's server holds it
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
    assert main(["serve", str(onnx_file), "--port", "70000"]) == 2
    assert "--port must be in 1..65535" in capsys.readouterr().err


def test_missing_extra_is_one_line(monkeypatch):
    from fashionbench.errors import ConfigError
    from fashionbench.serve.app import require_fastapi

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(ConfigError, match=r"fashionbench\[serve\]"):
        require_fastapi()


def test_serve_an_ensemble_as_predict_computes_it(fast_run, second_run, start_server):
    from fashionbench import load

    proc, url = start_server(fast_run, "--ensemble", str(second_run))
    try:
        card = httpx.get(url + "/model").json()
        assert [Path(m["path"]).parent for m in card["members"]] == [fast_run, second_run]
        assert all(0 < m["test_accuracy"] <= 1 for m in card["members"]) and card["test_accuracy"] is None
        body = httpx.post(url + "/predict", files={"file": photo()}).json()
    finally:
        proc.terminate()
        proc.wait(10)
    expected = load([fast_run, second_run], device="cpu").predict([PHOTOS / "dress.jpg"])[0]
    assert body["label"] == expected["label"]
    assert body["probability"] == pytest.approx(expected["probability"], abs=1e-4)
    single = load(fast_run, device="cpu").predict([PHOTOS / "dress.jpg"])[0]
    assert body["probability"] != pytest.approx(single["probability"], abs=1e-4)  # the second run counts
