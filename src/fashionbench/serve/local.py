"""`fashionbench serve` started as a child process on a free 127.0.0.1 port, as a user starts it:
what the API tests and the load benchmark both need."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str | Path, *extra: str, threads: int = 1, timeout: float = 60.0,
                 capture: bool = True) -> tuple[subprocess.Popen, str]:
    """(process, base URL) once GET /health answers 200. `capture` keeps the server's output for the
    error message (the caller reads or discards proc.stdout); otherwise it goes nowhere."""
    import httpx

    port = free_port()
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "fashionbench", "serve", str(model), "--port", str(port),
                             "--threads", str(threads), *extra], stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stdout.read() if capture else proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server did not come up within {timeout:g} s")
