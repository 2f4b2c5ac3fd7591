"""Serving benchmark: the lifelong server under load while its champion is swapped, against two baselines.

Three server processes on loopback serve the same MLP checkpoint, each pinned to one core
(``taskset``): the lifelong app (auth, input validation, micro-batching, every input and
prediction committed to SQLite before the response), a minimal hand-written FastAPI endpoint
(parse, one forward pass per request, return) and a bare ASGI endpoint under the same uvicorn
(the same work without a framework: the limit of the stack). The load comes from ``wrk`` (Debian's
native HTTP load generator; a Lua script posts the JSON bodies) pinned to another core, so the
client does not take the servers' CPU. At each connection count the servers run in turn,
alternating over rounds; during every lifelong run the champion is swapped ``--swaps`` times
through ``POST /v1/models/{v}/promote``. Failed requests are wrk's non-2xx answers plus its socket
errors (connect, read, write, timeout). After each lifelong run the size of its SQLite WAL file is
recorded: it must stay bounded however long the load lasts.

    python benchmarks/serving.py --out benchmarks/results/serving.json [--profile]

``--compare-src DIR`` adds a fourth server in the same rounds: the lifelong app imported from
``DIR/src`` (another checkout, e.g. before a change), named ``system_before``, so a change is
measured against what it replaces under the same load on the machine.

``--profile`` records the lifelong server with py-spy during one extra run at the highest
connection count and adds where its time goes (inclusive share per function) to the JSON.
"""

import argparse
import collections
import json
import os
import re
import shutil
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
SERVERS = ("system", "fastapi", "asgi")
PATHS = {"system": "/v1/predict", "fastapi": "/predict", "asgi": "/predict"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the three servers (each runs in its own process) ----------------------------------------------
def serve_system(data_dir: str, port: int) -> None:
    import uvicorn

    from lifelong.system.app import create_app
    from lifelong.system.settings import Settings

    settings = Settings(data_dir=data_dir, token=TOKEN, torch_threads=1, max_batch=256)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _model(checkpoint: str) -> Any:
    import torch

    from lifelong.learn.learner import Learner

    torch.set_num_threads(1)
    return Learner.load(checkpoint).model.eval()


def serve_fastapi(checkpoint: str, port: int) -> None:
    """The minimal endpoint a person would write by hand: no store, no auth, no routing."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    model = _model(checkpoint)
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


def serve_asgi(checkpoint: str, port: int) -> None:
    """The same work as the FastAPI endpoint as a bare ASGI callable: what uvicorn alone costs."""
    import torch
    import uvicorn

    model = _model(checkpoint)
    headers = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/healthz":
            out = b'{"status":"ok"}'
        else:
            with torch.inference_mode():
                probs = model(torch.tensor(json.loads(body)["inputs"])).softmax(1)
            out = json.dumps({"labels": probs.argmax(1).tolist(), "scores": probs.tolist()}).encode()
        length = [(b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers + length})
        await send({"type": "http.response.body", "body": out})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


# -- the load: wrk with a Lua script -----------------------------------------------------------------
LUA = """
local bodies = {%(bodies)s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\\nRESULT {\\"requests\\": %%.0f, \\"duration_us\\": %%.0f, \\"connect\\": %%.0f, \\"read\\": %%.0f, " ..
    "\\"write\\": %%.0f, \\"status\\": %%.0f, \\"timeout\\": %%.0f, \\"p50_us\\": %%.0f, \\"p90_us\\": %%.0f, " ..
    "\\"p99_us\\": %%.0f, \\"max_us\\": %%.0f}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def pin(core: int | None) -> list[str]:
    """``taskset -c core`` where taskset exists and the core is there (else no pinning)."""
    if core is None or shutil.which("taskset") is None or core >= (os.cpu_count() or 1):
        return []
    return ["taskset", "-c", str(core)]


def wrk(url: str, script: Path, connections: int, seconds: float, core: int | None) -> dict[str, Any]:
    cmd = [
        *pin(core),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    out = proc.stdout + proc.stderr
    match = re.search(r"^RESULT (\{.*\})$", out, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(match.group(1))
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    ok = r["requests"] - r["status"]
    return {
        "requests": int(r["requests"]),
        "failed_requests": int(errors),
        "errors": {k: int(r[k]) for k in ("connect", "read", "write", "status", "timeout")},
        "throughput_rps": ok / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
    }


def swapper(url: str, versions: list[int], n: int, seconds: float, done: list[int]) -> None:
    """Promote the two versions in turn, ``n`` times spread over ``seconds``; count the 200s."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        for i in range(n):
            time.sleep(seconds / (n + 1))
            if client.post(f"/v1/models/{versions[(i + 1) % 2]}/promote").status_code == 200:
                done.append(i)


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


def profile_shares(raw: str, top: int = 30) -> list[dict[str, Any]]:
    """Inclusive share of samples per function from py-spy's raw (collapsed) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    return [
        {"function": f, "inclusive": n / total, "self": own[f] / total} for f, n in inclusive.most_common(top)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/serving.json")
    p.add_argument("--connections", type=int, nargs="+", default=[8, 64])
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each run")
    p.add_argument("--rounds", type=int, default=2, help="runs per server and level, alternating servers")
    p.add_argument("--swaps", type=int, default=20, help="champion swaps during each lifelong run")
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=1, help="samples per request")
    p.add_argument("--server-core", type=int, default=0, help="core the servers are pinned to")
    p.add_argument("--client-core", type=int, default=1, help="core wrk (and this script) is pinned to")
    p.add_argument("--profile", action="store_true", help="py-spy the lifelong server in one extra run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-src", help="another checkout whose lifelong app runs as 'system_before'")
    p.add_argument("--serve", choices=[*SERVERS, "system_before"], help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        return {
            "system": serve_system,
            "system_before": serve_system,
            "fastapi": serve_fastapi,
            "asgi": serve_asgi,
        }[args.serve](  # fmt: skip
            args.target, args.port
        )
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk (make system-deps)")
    if pin(args.client_core):
        os.sched_setaffinity(0, {args.client_core})

    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="lifelong-serving-"))
    versions, checkpoint = prepare(work / "data", args.features, args.hidden, args.seed)
    rng = np.random.default_rng(args.seed)
    bodies = [json.dumps({"inputs": rng.normal(size=(args.batch, args.features)).round(4).tolist()})
              for _ in range(64)]  # fmt: skip
    scripts = {}
    servers = (*SERVERS, "system_before") if args.compare_src else SERVERS
    for name in servers:
        scripts[name] = work / f"{name}.lua"
        lua = ", ".join("[==[" + b + "]==]" for b in bodies)  # JSON holds "]]": level-2 long strings
        scripts[name].write_text(
            LUA % {"bodies": lua, "token": TOKEN, "path": PATHS.get(name, "/v1/predict")}
        )
    ports = {name: _free_port() for name in servers}
    targets = {"system": str(work / "data"), "fastapi": checkpoint, "asgi": checkpoint,
               "system_before": str(work / "data_before")}  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    envs = {name: env for name in servers}
    if args.compare_src:
        shutil.copytree(work / "data", work / "data_before")
        before = str(Path(args.compare_src).resolve() / "src")
        envs["system_before"] = {**env, "PYTHONPATH": os.pathsep.join([before, env.get("PYTHONPATH", "")])}
    procs = {
        name: subprocess.Popen([*pin(args.server_core), sys.executable, __file__, "--serve", name,
                                "--target", targets[name], "--port", str(ports[name])], env=envs[name])
        for name in servers
    }  # fmt: skip
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in servers}
    levels: dict[str, Any] = {}
    profile: list[dict[str, Any]] | None = None
    try:
        for name, proc in procs.items():
            wait_ready(urls[name], proc)
        for c in args.connections:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for r in range(args.rounds):
                k = r % len(servers)
                order = servers[k:] + servers[:k]  # rotate who goes first
                for name in order:
                    wrk(urls[name], scripts[name], c, 1.0, args.client_core)  # warm up
                    swapped: list[int] = []
                    thread = None
                    if name.startswith("system"):
                        thread = threading.Thread(target=swapper, args=(urls[name], versions, args.swaps,
                                                                          args.seconds, swapped))  # fmt: skip
                        thread.start()
                    run = wrk(urls[name], scripts[name], c, args.seconds, args.client_core)
                    if thread is not None:
                        thread.join()
                    run["swaps"] = len(swapped)
                    if name.startswith("system"):  # SQLite's WAL must stay bounded under steady load
                        wal = Path(targets[name]) / "lifelong.db-wal"
                        run["wal_file_mb"] = round(wal.stat().st_size / 1e6, 1) if wal.exists() else 0.0
                    runs[name].append(run)
                    print(f"{c:3} connections {name:8} {run['throughput_rps']:7.0f} req/s p50 {run['p50_ms']:6.2f} "
                          f"p99 {run['p99_ms']:7.2f} ms failed {run['failed_requests']} swaps {run['swaps']}",
                          flush=True)  # fmt: skip
            levels[str(c)] = {name: summarize(runs[name]) for name in servers}
            sysm, fa = levels[str(c)]["system"], levels[str(c)]["fastapi"]
            levels[str(c)]["system_over_fastapi_throughput"] = sysm["throughput_rps"] / fa["throughput_rps"]
            levels[str(c)]["system_over_fastapi_p99"] = sysm["p99_ms"] / fa["p99_ms"]
        spy_bin = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if args.profile and spy_bin:
            raw = work / "profile.txt"
            spy = subprocess.Popen([*pin(args.client_core), spy_bin, "record", "--nonblocking", "--format", "raw",
                                    "-d", str(int(args.seconds)), "-o", str(raw), "-p", str(procs["system"].pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(1.0)
            wrk(urls["system"], scripts["system"], max(args.connections), args.seconds - 2, args.client_core)
            spy.wait(timeout=60)
            profile = profile_shares(raw.read_text()) if raw.exists() else None
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "load_generator": "wrk 4 (Debian), one thread, Lua script posting JSON bodies",
        "http_stack": _stack(),
        "failed_requests": sum(lv[name]["failed_requests"] for lv in levels.values() for name in servers),
        "swaps": sum(lv[name]["swaps"] for lv in levels.values() for name in servers),
        "levels": levels,
        "config": {k: getattr(args, k) for k in ("seconds", "rounds", "swaps", "features", "hidden", "batch",
                                                 "server_core", "client_core")}
        | {"model": f"MLP({args.features}, ({args.hidden},), 10)", "cpus": os.cpu_count(),
           "pinned": bool(pin(args.server_core)),
           "note": "per level and server: runs pooled (throughput mean, latency percentiles median of runs)"},
    }  # fmt: skip
    if profile is not None:
        result["system_profile"] = profile
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "system_profile"}, indent=2))


def _stack() -> str:
    """uvicorn's HTTP parser and event loop as it picks them ('auto': httptools and uvloop when installed)."""
    import importlib.util

    have = {m: importlib.util.find_spec(m) is not None for m in ("httptools", "uvloop")}
    return (
        f"uvicorn, {'httptools' if have['httptools'] else 'h11'}, {'uvloop' if have['uvloop'] else 'asyncio'}"
    )


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the runs of one server at one level."""
    return {
        "requests": sum(r["requests"] for r in runs),
        "failed_requests": sum(r["failed_requests"] for r in runs),
        "swaps": sum(r["swaps"] for r in runs),
        "throughput_rps": statistics.mean(r["throughput_rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        **({"wal_file_mb": max(r["wal_file_mb"] for r in runs)} if "wal_file_mb" in runs[0] else {}),
        "runs": runs,
    }


if __name__ == "__main__":
    main()
