"""The HTTP app against a real uvicorn server on 127.0.0.1: docs, auth, errors across routes, hot swaps."""

from __future__ import annotations

import threading
import time

import httpx

from tests.system._models import error_of
from tests.system._server import Server, sample


def test_health_docs_and_a_prediction(server: Server) -> None:
    with server.client() as c:
        assert c.get("/healthz").json()["live"]["champion"]["version"] == server.good
        paths = set(c.get("/openapi.json").json()["paths"])
        assert {
            "/v1/predict",
            "/v1/feedback",
            "/v1/samples",
            "/v1/models",
            "/v1/models/{version}/promote",
            "/v1/rollback",
            "/v1/deployments",
            "/v1/drift",
            "/v1/events",
            "/metrics",
            "/healthz",
        } <= paths
        r = c.post("/v1/predict", json={"inputs": sample(3)})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        assert [p["version"] for p in preds] == [server.good] * 3 and preds[0]["variant"] == "champion"
        assert c.post("/v1/feedback", json={"prediction_id": preds[0]["id"], "label": 0}).status_code == 204
        assert c.post("/v1/samples", json={"inputs": sample(2), "labels": [0, 1]}).status_code == 201
        assert {m["version"] for m in c.get("/v1/models").json()} == {server.good, server.other, server.bad}


def test_auth(server: Server) -> None:
    with server.client(auth=False) as c:
        r = c.post("/v1/predict", json={"inputs": sample()})
        assert error_of(r, 401) == "AuthError" and r.headers["www-authenticate"] == "Bearer"
        bad = {"Authorization": "Bearer wrong-token-wrong-token"}
        assert error_of(c.post("/v1/rollback", headers=bad), 403) == "ForbiddenError"
        assert error_of(c.post("/v1/feedback", headers={"Authorization": "Basic abc"}, json={}), 401)
        for path in ("/v1/models", "/v1/deployments", "/v1/events", "/v1/drift"):
            assert error_of(c.get(path), 401) == "AuthError", path  # reads need the token too
        assert error_of(c.get("/v1/models", headers=bad), 403) == "ForbiddenError"
        for path in ("/healthz", "/metrics", "/openapi.json", "/docs", "/redoc", "/static/dashboard.css"):
            assert c.get(path).status_code == 200, path  # liveness, metrics, docs and their assets
        assert c.get("/").status_code == 200  # the dashboard's shell: its data come from /v1/dashboard
        assert error_of(c.get("/v1/dashboard"), 401) == "AuthError"
        assert c.get("/readyz").status_code in (200, 503)  # open; whether ready is tested below


def test_unknown_things_are_404_and_conflicts_409(server: Server) -> None:
    with server.client() as c:
        assert error_of(c.post("/v1/models/999/promote"), 404) == "NotFoundError"
        assert error_of(c.post("/v1/models/0/promote"), 422) == "ValidationError"
        assert (
            error_of(c.post("/v1/feedback", json={"prediction_id": "x", "label": 1}), 404) == "NotFoundError"
        )
        assert error_of(c.post("/v1/feedback", json={"prediction_id": "x", "label": -1}), 422)
        assert error_of(c.post("/v1/deployments", json={"version": 999, "mode": "canary"}), 404)
        assert error_of(c.post("/v1/deployments", json={"version": 1, "mode": "blue"}), 422)
        nan = c.post("/v1/deployments", content=b'{"version": 1, "share": NaN}',
                     headers={"Content-Type": "application/json"})  # fmt: skip
        assert error_of(nan, 422) and "finite number" in nan.json()["error"]["message"]  # was "<= 1"
        assert error_of(c.post("/v1/rollback", json={"alias": "shadow"}), 409) == "RegistryError"
        assert error_of(c.get("/v1/nothing"), 404) == "HTTPError"
        assert error_of(c.get("/v1/events", params={"kind": "Bad Kind"}), 422)
        r = c.get("/v1/events", params={"kind": "gates"})  # was 200 [] (an empty log, not a typo)
        assert error_of(r, 422) == "DataError" and "valid: " in r.json()["error"]["message"]


def test_champion_hot_swaps_under_load_without_failed_requests(server: Server) -> None:
    stop, failures, versions, counts = threading.Event(), [], set(), [0]
    lock = threading.Lock()

    def client() -> None:
        with server.client() as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/predict", json={"inputs": sample(2)})
                    ok = r.status_code == 200
                    with lock:
                        counts[0] += 1
                        versions.update(
                            p["version"] for p in r.json()["predictions"]
                        ) if ok else failures.append(r)
                except httpx.HTTPError as err:
                    failures.append(err)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    with server.client() as admin:
        for i in range(20):
            target = server.other if i % 2 == 0 else server.good
            assert admin.post(f"/v1/models/{target}/promote").status_code == 200
            time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert not failures and counts[0] >= 40 and versions == {server.good, server.other}
    with server.client() as c:
        assert c.get("/healthz").json()["live"]["champion"]["version"] == server.good
        metrics = c.get("/metrics").text
        assert 'lifelong_http_requests_total{method="POST",route="/v1/predict",status="200"}' in metrics
        assert (
            "lifelong_model_swaps_total" in metrics
            and 'lifelong_predictions_total{variant="champion"}' in metrics
        )
