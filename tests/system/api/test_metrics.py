"""GET /metrics: the loop's figures, each with HELP and TYPE, counted under the route refused on."""

from __future__ import annotations

import pytest

from lifelong.system.events import EventKind
from lifelong.system.registry import Registry
from lifelong.system.store import Store
from tests.system._models import DATA
from tests.system._server import Server, sample


def test_requests_refused_before_routing_count_under_their_route(server: Server) -> None:
    """Was: every 401/403/413 counted as route="unmatched" (answered before FastAPI routes)."""
    with server.client(auth=False) as anonymous, server.client() as c:
        assert anonymous.post("/v1/predict", json={"inputs": sample(1)}).status_code == 401
        assert anonymous.post(f"/v1/models/{server.good}/promote").status_code == 401
        big = b'{"inputs": ' + str([[0.5] * 8] * 600).encode() + b"}"
        assert (
            c.post("/v1/samples", content=big, headers={"content-type": "application/json"}).status_code
            == 413
        )
        assert anonymous.get("/v1/nowhere").status_code == 401
        assert c.get("/openapi.json").status_code == 200  # FastAPI's own route: was counted as unmatched
        metrics = c.get("/metrics").text
    for route, status in (("/v1/predict", 401), ("/v1/models/{version}/promote", 401), ("/v1/samples", 413),
                          ("unmatched", 401)):  # fmt: skip
        method = "GET" if route == "unmatched" else "POST"
        assert (
            f'lifelong_http_requests_total{{method="{method}",route="{route}",status="{status}"}}' in metrics
        )
    assert 'route="/v1/nowhere"' not in metrics  # a client's made-up paths never become labels
    assert 'lifelong_http_requests_total{method="GET",route="/openapi.json",status="200"}' in metrics


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/samples"])
def test_an_upload_the_client_abandons_counts_as_client_closed_not_500(server: Server, path: str) -> None:
    """Content-Length 100, 5 bytes, then the socket closed: /v1/predict counted a 500 each time."""
    import socket
    import time

    from tests.system._server import AUTH

    host, port = server.url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {AUTH['Authorization']}\r\nContent-Length: 100\r\n\r\n{{\"in")  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
    deadline, line = (
        time.monotonic() + 10,
        f'lifelong_http_requests_total{{method="POST",route="{path}",status="499"}}',
    )
    with server.client() as c:
        while line not in (metrics := c.get("/metrics").text) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert line in metrics and f'route="{path}",status="500"' not in metrics


def test_metrics_carry_the_loop(server: Server) -> None:
    with server.client() as c, Store(data_dir=server.data_dir) as store:
        preds = c.post("/v1/predict", json={"inputs": sample(4)}).json()["predictions"]
        truth = DATA.test.y[:4].tolist()
        c.post(
            "/v1/feedback",
            json={"feedback": [{"prediction_id": p["id"], "label": y} for p, y in zip(preds, truth)]},
        )
        store.add_event(EventKind.DATA_DRIFT, {"score": 0.42, "monitor": "ks"})
        text = c.get("/metrics").text
        lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
        acc = float(lines['lifelong_live_accuracy_ratio{variant="champion"}'])
        registry = Registry(store)  # the current champion's answers since it was deployed
        since, version = registry.deployed_since("champion"), registry.aliases()["champion"].version
        rows = store.labelled_predictions(version, variant="champion", since=since, limit=500)
        assert acc == pytest.approx(sum(r.predicted == r.label for r in rows) / len(rows), abs=1e-6)
        assert float(lines['lifelong_drift_score{kind="data_drift"}']) == pytest.approx(0.42)
        # the background WAL checkpoint may move a few pages between the two reads
        assert int(lines["lifelong_store_size_bytes"]) == pytest.approx(store.size_bytes(), rel=0.05)
        assert store.size_bytes() > 0
        promotions = len(store.events(EventKind.PROMOTION))
        assert int(lines["lifelong_versions_promoted_total"]) == promotions > 0
        assert int(lines["lifelong_predictions_unlogged_total"]) == 0
        drifts = len(store.events(EventKind.DATA_DRIFT))
        assert int(lines['lifelong_drift_detections_total{kind="data_drift"}']) == drifts >= 1
        # a report against an earlier champion read as current through every later champion
        store.add_event(EventKind.DATA_DRIFT, {"score": 0.9, "monitor": "ks", "version": version + 100})
        assert 'lifelong_drift_score{kind="data_drift"}' not in c.get("/metrics").text
        store.add_event(EventKind.DATA_DRIFT, {"score": 0.43, "monitor": "ks", "version": version})
        assert 'lifelong_drift_score{kind="data_drift"} 0.43' in c.get("/metrics").text
        judged_or_skipped = len(store.events(EventKind.GATE))
        assert (
            int(lines["lifelong_training_attempts_total"])
            == judged_or_skipped + store.count_failed_trainings()
        )
        assert int(lines["lifelong_training_skipped_total"]) == store.count_untrained_attempts()
        for name in ("lifelong_versions_rolled_back_total", "lifelong_predictions_unlogged_total",
                     "lifelong_drift_detections_total", "lifelong_training_attempts_total"):  # fmt: skip
            assert f"# TYPE {name} counter" in text


def test_every_metric_family_has_help_and_type_and_readiness_is_a_gauge(server: Server) -> None:
    with server.client(auth=False) as c:
        text = c.get("/metrics").text
    lines = text.splitlines()
    typed = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    helped = {line.split()[2] for line in lines if line.startswith("# HELP ")}
    assert len(typed) >= 20 and set(typed) <= helped, sorted(set(typed) - helped)  # 10 had no HELP
    assert 'lifelong_ready{scope="serving"} ' in text and "lifelong_degraded 0" in text
