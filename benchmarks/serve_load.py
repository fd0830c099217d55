"""Bounded load test of `fashionbench serve` on loopback: concurrent clients POST /predict for a fixed time.

Starts the server as a user does (`fashionbench serve MODEL --threads T`), then for each
`--clients` level keeps that many requests in flight for `--seconds` (asyncio + httpx, one
connection per client), then stops. Reports requests/s, p50/p99 latency, non-200 answers and
the server's resident memory before and after, for two uploads: a 28x28 Fashion-MNIST-style
PNG (what a phone app that converts on the device sends: the service's own overhead) and a
phone photo (the whole conversion, GrabCut included, on the server).

    .venv/bin/python benchmarks/serve_load.py runs/light/model-int8.onnx --clients 64 200 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from pathlib import Path

PHOTO = Path(__file__).resolve().parents[1] / "tests" / "photos" / "clothing" / "dress.jpg"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, name: str, data: bytes, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        async def worker():
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", files={"file": (name, data, "image/png")})
                    code = r.status_code
                except httpx.HTTPError:
                    code = -1
                latencies.append(time.perf_counter() - t0)
                statuses[code] = statuses.get(code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / wall, "p50": statistics.median(latencies) * 1e3,
            "p99": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
            "errors": sum(n for c, n in statuses.items() if c != 200)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="checkpoint, run folder or .onnx file")
    ap.add_argument("--clients", type=int, nargs="+", default=[64, 200])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=1, help="the server's CPU threads per inference")
    ap.add_argument("--photo", default=str(PHOTO), help="the phone photo to upload")
    args = ap.parse_args(argv)

    import numpy as np
    from PIL import Image

    from fashionbench.serve.local import start_server
    from fashionbench.utils import machine_description

    buf = io.BytesIO()
    square = np.zeros((28, 28), np.uint8)
    square[4:24, 8:20] = 200  # a light item on black: passes through unconverted
    Image.fromarray(square).save(buf, format="PNG")
    uploads = [("28x28 PNG", "item.png", buf.getvalue()), ("phone photo", Path(args.photo).name,
                                                          Path(args.photo).read_bytes())]
    proc, url = start_server(args.model, threads=args.threads, timeout=60, capture=False)
    try:
        print(f"# serve load: {args.model}, server --threads {args.threads}, {machine_description()}, "
              f"{time.strftime('%Y-%m-%d')}\n")
        print("| upload | clients | seconds | requests | requests/s | p50 | p99 | errors | server RSS before -> after |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for label, name, data in uploads:
            for clients in args.clients:
                before = rss_mb(proc.pid)
                r = asyncio.run(load(url, name, data, clients, args.seconds))
                after = rss_mb(proc.pid)
                print(f"| {label} ({len(data) / 1024:.1f} KB) | {clients} | {args.seconds:g} | {r['requests']:,} | "
                      f"{r['rps']:.1f} | {r['p50']:.0f} ms | {r['p99']:.0f} ms | {r['errors']} | "
                      f"{before:.0f} -> {after:.0f} MB |", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
