"""GET /metrics in the Prometheus text format, and the ASGI middleware that measures requests.

Hand-written (a few counters and one histogram) to avoid a dependency. The same middleware enforces
the body size limit, before the body is parsed, so an oversized upload never reaches JSON decoding.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifelong.system.api.deps import SystemDep

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
router = APIRouter(tags=["monitoring"])


class HttpMetrics:
    """Request counts by route and status, and a latency histogram by route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.buckets: dict[str, list[int]] = {}
        self.sums: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self.buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[route] += seconds

    def render(self) -> list[str]:
        with self._lock:
            out = ["# TYPE lifelong_http_requests_total counter"]
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(
                    f'lifelong_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}'
                )
            out.append("# TYPE lifelong_http_request_seconds histogram")
            for route, counts in sorted(self.buckets.items()):
                total = 0
                for le, n in zip([*map(str, BUCKETS), "+Inf"], counts):
                    total += n
                    out.append(f'lifelong_http_request_seconds_bucket{{route="{route}",le="{le}"}} {total}')
                out.append(f'lifelong_http_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                out.append(f'lifelong_http_request_seconds_count{{route="{route}"}} {total}')
            return out


class ObserveAndLimit:
    """Pure ASGI middleware: 413 for bodies over ``max_body_bytes``, then time and count the request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await _too_large(send_status, self.max_body_bytes)
                return
            await self.app(scope, _replay(body), send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None if it is (or claims to be) larger than the limit."""
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _too_large(send: Send, limit: int) -> None:
    msg = f"request body exceeds {limit} bytes; send smaller batches"
    payload = json.dumps({"error": {"type": "BodyTooLargeError", "message": msg}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _gauge(name: str, kind: str, samples: list[tuple[str, Any]]) -> list[str]:
    return [f"# TYPE {name} {kind}", *(f"{name}{labels} {value}" for labels, value in samples)]


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(request: Request, system: SystemDep) -> PlainTextResponse:
    counts = dict(system.counts)
    lines = request.app.state.http_metrics.render()
    preds = [(f'{{variant="{k.removeprefix("predictions_")}"}}', v) for k, v in sorted(counts.items())
             if k.startswith("predictions_")]  # fmt: skip
    lines += _gauge("lifelong_predictions_total", "counter", preds)
    lines += _gauge("lifelong_model_swaps_total", "counter", [("", system.holder.swaps)])
    lines += _gauge("lifelong_shadow_dropped_total", "counter", [("", counts.get("shadow_dropped", 0))])
    batcher = system.batcher_stats()
    lines += _gauge("lifelong_microbatches_total", "counter", [("", batcher["batches"])])
    lines += _gauge("lifelong_microbatched_requests_total", "counter", [("", batcher["requests"])])
    live = system.live_versions() if system.holder.ready else {}
    lines += _gauge(
        "lifelong_model_version", "gauge", [(f'{{alias="{a}"}}', v) for a, (v, _) in live.items()]
    )
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
