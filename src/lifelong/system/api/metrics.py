"""GET /metrics in the Prometheus text format, and the ASGI middleware that measures requests.

Hand-written (a few counters and one histogram) to avoid a dependency. Names follow Prometheus
conventions: base units in the name (``_seconds``, ``_bytes``, ``_ratio``), ``_total`` for counters.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match
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
        self.sums: defaultdict[str, float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self.buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[route] += seconds

    def render(self) -> list[str]:
        with self._lock:
            out = [
                "# HELP lifelong_http_requests_total requests by method, route template and status "
                '(route="unmatched": no route has the path)',
                "# TYPE lifelong_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(
                    f'lifelong_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}'
                )
            out.append("# HELP lifelong_http_request_seconds request latency by route")
            out.append("# TYPE lifelong_http_request_seconds histogram")
            for route, counts in sorted(self.buckets.items()):
                total = 0
                for le, n in zip([*map(str, BUCKETS), "+Inf"], counts):
                    total += n
                    out.append(f'lifelong_http_request_seconds_bucket{{route="{route}",le="{le}"}} {total}')
                out.append(f'lifelong_http_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                out.append(f'lifelong_http_request_seconds_count{{route="{route}"}} {total}')
            return out


#: the status counted for a request whose client went away before any answer (nginx's 499): an upload
#: aborted mid-body counted as a 500 on /v1/predict, where the README says to alert on 5xx
CLIENT_CLOSED = 499


class Observe:
    """Pure ASGI middleware: time and count every request (401s and 413s included) by route and status.

    ``routes`` are the app's routes, so a request refused before routing (401/403/413 from the other
    middlewares) still counts under its route template; "unmatched" means no route has its path.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, started = time.perf_counter(), 500, False

        async def send_status(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start" and status != CLIENT_CLOSED:
                status, started = message["status"], True
            await send(message)

        async def receive_status() -> Message:
            nonlocal status
            got = await receive()
            if got["type"] == "http.disconnect" and not started:
                status = CLIENT_CLOSED  # gone before any answer: what follows (an error page) reaches no one
            return got

        try:
            await self.app(scope, receive_status, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or self._template(scope)
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)

    def _template(self, scope: Scope) -> str:
        partial = "unmatched"
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "unmatched"))
            if match == Match.PARTIAL and partial == "unmatched":  # the path with another method (405)
                partial = str(getattr(route, "path", "unmatched"))
        return partial


def _gauge(name: str, kind: str, samples: list[tuple[str, Any]], help: str) -> list[str]:
    return [
        f"# HELP {name} {help}",
        f"# TYPE {name} {kind}",
        *(f"{name}{labels} {value}" for labels, value in samples),
    ]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(request: Request, system: SystemDep) -> PlainTextResponse:
    counts = dict(system.counts)
    lines = request.app.state.http_metrics.render()
    preds = [(f'{{variant="{k.removeprefix("predictions_")}"}}', v) for k, v in sorted(counts.items())
             if k.startswith("predictions_") and k != "predictions_unlogged"]  # fmt: skip
    lines += _gauge("lifelong_predictions_total", "counter", preds, "predictions answered by each variant")
    lines += _gauge("lifelong_model_swaps_total", "counter", [("", system.holder.swaps)],
                    "hot swaps of the served models since this replica started")  # fmt: skip
    lines += _gauge("lifelong_shadow_dropped_total", "counter", [("", counts.get("shadow_dropped", 0))],
                    "samples whose shadow answers were dropped: its queue was full, or the store could not record them")  # fmt: skip
    batcher = system.batcher_stats()
    lines += _gauge("lifelong_microbatches_total", "counter", [("", batcher["batches"])],
                    "model calls, each answering one or more requests")  # fmt: skip
    lines += _gauge("lifelong_microbatched_requests_total", "counter", [("", batcher["requests"])],
                    "requests answered through the micro-batcher")  # fmt: skip
    live = system.live_versions() if system.holder.ready else {}
    lines += _gauge("lifelong_model_version", "gauge", [(f'{{alias="{a}"}}', v) for a, (v, _) in live.items()],
                    "version this replica serves for each alias")  # fmt: skip
    lines += _gauge("lifelong_ready", "gauge",
                    [(f'{{scope="{s}"}}', int(not system.readiness(s))) for s in ("all", "serving")],
                    "1 when /readyz (scope all) or /readyz?scope=serving answers 200")  # fmt: skip
    lines += _gauge("lifelong_degraded", "gauge", [("", int(bool(system.degraded)))],
                    "1 while this replica serves a fallback instead of its champion")  # fmt: skip
    lines += _loop_metrics(system.health_metrics())
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


def _loop_metrics(h: dict[str, Any]) -> list[str]:
    """The production loop's own figures (worker, trainings, accuracy, drift, storage)."""
    out = []
    if h["worker_up"] is not None:  # absent while the store cannot be read
        out += _gauge("lifelong_worker_up", "gauge", [("", h["worker_up"])],
                      "1 while a worker holds an unexpired training lease; 0 when none does (stopped or dead)")  # fmt: skip
    if h["worker_heartbeat_age_seconds"] is not None:
        out += _gauge("lifelong_worker_heartbeat_age_seconds", "gauge", [("", f"{h['worker_heartbeat_age_seconds']:.3f}")],
                      "seconds since the worker last renewed its lease")  # fmt: skip
    outcome = h["training_outcome"]
    out += _gauge("lifelong_training_last_outcome", "gauge",
                  [(f'{{outcome="{o}"}}', int(o == outcome))
                   for o in ("running", "passed", "rejected", "skipped", "failed", "interrupted")]
                  if outcome != "unknown" else [],
                  "1 for the outcome of the latest training attempt (passed/rejected by the gate, skipped: window "
                  "too small to train, failed: raised, interrupted: its worker stopped or lost its lease, or the "
                  "champion moved, so nothing was published)")  # fmt: skip
    if h["training_timestamp_seconds"] is not None:
        out += _gauge("lifelong_training_last_timestamp_seconds", "gauge",
                      [("", f"{h['training_timestamp_seconds']:.3f}")], "when the latest training attempt ended")  # fmt: skip
    out += _gauge("lifelong_live_accuracy_ratio", "gauge",
                  [(f'{{variant="{v}"}}', f"{acc:.6f}") for v, (acc, _) in sorted(h["live_accuracy"].items())],
                  "accuracy of each variant over its latest labelled predictions")  # fmt: skip
    out += _gauge("lifelong_live_accuracy_window_predictions", "gauge",
                  [(f'{{variant="{v}"}}', n) for v, (_, n) in sorted(h["live_accuracy"].items())],
                  "labelled predictions the live accuracy of each variant is measured on")  # fmt: skip
    out += _gauge("lifelong_drift_score", "gauge",
                  [(f'{{kind="{_escape(k)}"}}', f"{v:.6g}") for k, v in sorted(h["drift_score"].items())],
                  "score of the latest drift report of each kind against the serving champion")  # fmt: skip
    if h["store_size_bytes"] is not None:
        out += _gauge(
            "lifelong_store_size_bytes", "gauge", [("", h["store_size_bytes"])], "database size on disk"
        )
    out += _gauge("lifelong_predictions_unlogged_total", "counter", [("", h["predictions_unlogged_total"])],
                  "predictions answered while the store could not write (kept to record later)")  # fmt: skip
    out += _gauge("lifelong_predictions_pending", "gauge", [("", h["predictions_pending"])],
                  "predictions answered while the store could not write, waiting in memory to be recorded")  # fmt: skip
    out += _gauge("lifelong_predictions_dropped_total", "counter", [("", h["predictions_dropped_total"])],
                  "answered predictions never recorded (beyond LIFELONG_UNRECORDED_BACKLOG rows, or refused late)")  # fmt: skip
    out += _gauge("lifelong_store_write_failing", "gauge", [("", int(h["store_write_failing"]))],
                  "1 while this replica's store writes fail (e.g. a full disk)")  # fmt: skip
    if h["training_cpu_seconds"] is not None:
        out += _gauge("lifelong_training_last_cpu_seconds", "gauge", [("", f"{h['training_cpu_seconds']:.3f}")],
                      "CPU seconds the latest training attempt took (training, boundary work and gate)")  # fmt: skip
    out += _gauge("lifelong_training_attempts_total", "counter", _known(h["trainings_total"]),
                  "training attempts, each answering a trigger: judged by the gate, skipped (window too small) or failed (raised)")  # fmt: skip
    out += _gauge("lifelong_training_skipped_total", "counter", _known(h["trainings_skipped_total"]),
                  "training attempts that trained nothing: the window was too small to hold out a gate set")  # fmt: skip
    out += _gauge("lifelong_training_failures_total", "counter", _known(h["training_failures_total"]),
                  "training attempts that raised (each retried after 5, 10, 20 ... 300 s)")  # fmt: skip
    out += _gauge("lifelong_gate_rejections_total", "counter", _known(h["gate_rejections_total"]),
                  "trained candidates the gate refused (each reason is in `lifelong events --kind gate`)")  # fmt: skip
    out += _gauge("lifelong_drift_detections_total", "counter",
                  [(f'{{kind="{k}"}}', v) for k, v in h["drift_detections_total"].items()],
                  "drift reports by monitor kind (data_drift, performance_drift)")  # fmt: skip
    out += _gauge("lifelong_versions_promoted_total", "counter", _known(h["promoted_total"]),
                  "champion promotions recorded in the event log")  # fmt: skip
    out += _gauge("lifelong_versions_rolled_back_total", "counter", _known(h["rolled_back_total"]),
                  "rollbacks and canary rollbacks recorded in the event log")  # fmt: skip
    return out


def _known(value: Any) -> list[tuple[str, Any]]:
    """One unlabelled sample, or none while the store cannot say (not 0: a counter would seem reset)."""
    return [] if value is None else [("", value)]
