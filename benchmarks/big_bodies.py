"""Big request bodies against a lifelong server: does anything else still get answered?

A server process on loopback (its own process, like ``lifelong serve``) receives three ~7.8 MB
``/v1/predict`` bodies at once, first without a token, then with one; meanwhile one client polls
``/healthz`` every 10 ms. Reported per case: the time each upload took to be answered and its
status, and the ``/healthz`` latency (max, p50, p99). ``inline parse`` is the same server with the
helper process disabled (JSON parsed on the event loop, as FastAPI does by default), for comparison.

    python benchmarks/big_bodies.py --out benchmarks/results/big_bodies.json
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "benchmark-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data_dir: str, port: int, inline: bool) -> None:
    import torch
    import uvicorn

    from lifelong.checks import toy_model
    from lifelong.learn.learner import Learner
    from lifelong.system.api import body
    from lifelong.system.app import create_app
    from lifelong.system.service import System
    from lifelong.system.settings import Settings

    torch.set_num_threads(1)
    if inline:
        body.OFFLOAD_BYTES = 10**12  # never offload: parse on the event loop
    settings = Settings(data_dir=data_dir, token=TOKEN)
    with System(settings) as system:
        if system.registry.alias("champion") is None:
            system.bootstrap(Learner(toy_model(0)))
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


def measure(url: str, payload: bytes, auth: bool) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []

    def upload() -> None:
        headers = {"content-type": "application/json"}
        if auth:
            headers["authorization"] = f"Bearer {TOKEN}"
        start = time.perf_counter()
        r = httpx.post(f"{url}/v1/predict", content=payload, headers=headers, timeout=300)
        answers.append({"status": r.status_code, "seconds": round(time.perf_counter() - start, 3)})

    uploads = [threading.Thread(target=upload) for _ in range(3)]
    latencies = []
    with httpx.Client(base_url=url, timeout=60) as c:
        c.get("/healthz")
        for t in uploads:
            t.start()
        while any(t.is_alive() for t in uploads):
            start = time.perf_counter()
            c.get("/healthz")
            latencies.append(time.perf_counter() - start)
            time.sleep(0.01)
    latencies.sort()
    return {
        "uploads": answers,
        "healthz_n": len(latencies),
        "healthz_max_ms": round(1000 * latencies[-1], 1),
        "healthz_p50_ms": round(1000 * statistics.median(latencies), 1),
        "healthz_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
    }


def run_server(inline: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="lifelong-bigbody-")
    cmd = [sys.executable, __file__, "--serve", data_dir, str(port)] + (["--inline"] if inline else [])
    proc = subprocess.Popen(cmd, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                time.sleep(2)  # let the helper process finish starting
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/big_bodies.json"))
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--inline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.inline)
        return
    row = "[" + ",".join(["0.123456"] * 8) + "]"
    payload = ('{"inputs": [' + ",".join([row] * (7_800_000 // (len(row) + 1))) + "]}").encode()
    results: dict[str, Any] = {
        "body_bytes": len(payload),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
    }
    for name, inline, auth in [("no token", False, False), ("with token", False, True),
                               ("with token, inline parse", True, True)]:  # fmt: skip
        proc, url = run_server(inline)
        try:
            results[name] = measure(url, payload, auth)
            print(name, json.dumps(results[name]), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
