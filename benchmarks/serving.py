"""Serving benchmark: the lifelong server under load while its champion is swapped, against a baseline.

Two server processes on loopback serve the same MLP checkpoint: the lifelong app (auth, input
validation, micro-batching, every input and prediction committed to SQLite before the response)
and a minimal hand-written FastAPI endpoint (parse, forward, return). One asyncio + httpx client
drives both with the same payloads at each concurrency level, alternating runs. During every
lifelong run the champion is swapped ``--swaps`` times through ``POST /v1/models/{v}/promote``;
a request that does not come back 200 is a failure.

    python benchmarks/serving.py --out benchmarks/results/serving.json
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "benchmark-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the two servers (each runs in its own process) ------------------------------------------------
def serve_system(data_dir: str, port: int) -> None:
    import uvicorn

    from lifelong.system.app import create_app
    from lifelong.system.settings import Settings

    settings = Settings(data_dir=data_dir, token=TOKEN, torch_threads=1, max_batch=256)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_baseline(checkpoint: str, port: int) -> None:
    """The minimal endpoint a person would write by hand: no store, no auth, no routing."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    from lifelong.learn.learner import Learner

    torch.set_num_threads(1)
    model = Learner.load(checkpoint).model.eval()
    app = FastAPI()

    class Request(BaseModel):
        inputs: list[list[float]]

    @app.post("/predict")
    def predict(request: Request) -> dict[str, Any]:
        with torch.inference_mode():
            probs = model(torch.tensor(request.inputs)).softmax(1)
        return {"labels": probs.argmax(1).tolist(), "scores": probs.tolist()}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the client ------------------------------------------------------------------------------------
async def load(
    url: str,
    path: str,
    payloads: list[bytes],
    concurrency: int,
    seconds: float,
    swap: list[int] | None,
    n_swaps: int,
) -> dict[str, Any]:
    """Send ``payloads`` round-robin from ``concurrency`` tasks for ``seconds``; swap versions meanwhile."""
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failures, swaps, versions = 0, 0, set()
    async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal failures
            i = k
            while time.perf_counter() < deadline:
                body = payloads[i % len(payloads)]
                i += concurrency
                start = time.perf_counter()
                try:
                    r = await client.post(path, content=body)
                    ok = r.status_code == 200
                    if ok and swap:
                        versions.update(p["version"] for p in r.json()["predictions"])
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    failures += 1

        async def swapper() -> None:
            nonlocal swaps
            assert swap is not None
            for i in range(n_swaps):
                await asyncio.sleep(seconds / (n_swaps + 1))
                r = await client.post(f"/v1/models/{swap[i % 2]}/promote")
                r.raise_for_status()
                swaps += 1

        started = time.perf_counter()
        tasks = [worker(k) for k in range(concurrency)] + ([swapper()] if swap else [])
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None  # noqa: E731
    return {
        "requests": len(latencies) + failures,
        "failed_requests": failures,
        "swaps": swaps,
        "versions_seen": sorted(versions),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "throughput_rps": len(latencies) / elapsed,
        "latencies": latencies,
    }


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server {url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server {url} did not become ready")


def prepare(data_dir: Path, features: int, hidden: int, seed: int) -> tuple[list[int], str]:
    """Register two versions of the same architecture; return them and the champion's checkpoint."""
    import torch

    from lifelong.learn.learner import Learner
    from lifelong.learn.models import MLP
    from lifelong.system.service import System
    from lifelong.system.settings import Settings

    with System(Settings(data_dir=data_dir, auth=False)) as system:
        versions = []
        for s in (seed, seed + 1):
            torch.manual_seed(s)
            versions.append(system.bootstrap(Learner(MLP(features, (hidden,), 10))))
        system.promote(versions[0])
        return versions, str(system.registry.get(versions[0]).path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/serving.json")
    p.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each run")
    p.add_argument("--rounds", type=int, default=2, help="alternating baseline/system runs per level")
    p.add_argument("--swaps", type=int, default=20, help="champion swaps during each system run")
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=1, help="samples per request")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", choices=["system", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve == "system":
        return serve_system(args.target, args.port)
    if args.serve == "baseline":
        return serve_baseline(args.target, args.port)

    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="lifelong-serving-"))
    versions, checkpoint = prepare(work, args.features, args.hidden, args.seed)
    rng = np.random.default_rng(args.seed)
    payloads = [json.dumps({"inputs": rng.normal(size=(args.batch, args.features)).round(4).tolist()}).encode()
                for _ in range(256)]  # fmt: skip
    ports = {"system": _free_port(), "baseline": _free_port()}
    targets = {"system": str(work), "baseline": checkpoint}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                name,
                "--target",
                targets[name],
                "--port",
                str(ports[name]),
            ],
            env=env,
        )  # fmt: skip
        for name in ports
    }
    try:
        for name, proc in procs.items():
            wait_ready(f"http://127.0.0.1:{ports[name]}", proc)
        levels: dict[str, Any] = {}
        for c in args.concurrency:
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "system": []}
            for _ in range(args.rounds):
                for name in ("baseline", "system"):  # alternate, so drift in machine load hits both
                    url, path = (
                        f"http://127.0.0.1:{ports[name]}",
                        "/predict" if name == "baseline" else "/v1/predict",
                    )
                    asyncio.run(load(url, path, payloads[:32], c, 1.0, None, 0))  # warm up
                    swap = [versions[1], versions[0]] if name == "system" else None
                    runs[name].append(
                        asyncio.run(load(url, path, payloads, c, args.seconds, swap, args.swaps))
                    )
            levels[str(c)] = summarize(runs["system"]) | {
                "baseline_throughput_rps": statistics.mean(r["throughput_rps"] for r in runs["baseline"]),
                "baseline_p50_ms": statistics.median(r["p50_ms"] for r in runs["baseline"]),
                "baseline_p99_ms": statistics.median(r["p99_ms"] for r in runs["baseline"]),
                "baseline_failed_requests": sum(r["failed_requests"] for r in runs["baseline"]),
            }
            print(f"concurrency {c}: {json.dumps(levels[str(c)])}", flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
    top = max(levels, key=int)
    result = {
        "requests": sum(v["requests"] for v in levels.values()),
        "failed_requests": sum(v["failed_requests"] for v in levels.values()),
        "swaps": sum(v["swaps"] for v in levels.values()),
        **{k: levels[top][k] for k in ("p50_ms", "p99_ms", "throughput_rps", "baseline_throughput_rps")},
        "headline_concurrency": int(top),
        "levels": levels,
        "config": {k: getattr(args, k) for k in ("seconds", "rounds", "swaps", "features", "hidden", "batch")}
        | {"model": f"MLP({args.features}, ({args.hidden},), 10)", "cpus": os.cpu_count(),
           "note": "requests, failures, swaps: totals; latency and throughput: highest concurrency"},
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "levels"}, indent=2))


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the system runs of one concurrency level."""
    latencies = sorted(x for r in runs for x in r["latencies"])
    pick = lambda q: 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    return {
        "requests": sum(r["requests"] for r in runs),
        "failed_requests": sum(r["failed_requests"] for r in runs),
        "swaps": sum(r["swaps"] for r in runs),
        "versions_seen": sorted({v for r in runs for v in r["versions_seen"]}),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "throughput_rps": statistics.mean(r["throughput_rps"] for r in runs),
    }


if __name__ == "__main__":
    main()
