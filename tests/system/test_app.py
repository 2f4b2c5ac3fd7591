"""The HTTP API against a real uvicorn server on 127.0.0.1: errors, auth, hot swaps, canaries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn

from lifelong.system.app import create_app
from lifelong.system.service import System
from lifelong.system.settings import Settings
from tests.system.test_service import DATA, trained

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Server:
    url: str
    good: int
    other: int
    bad: int

    def client(self, auth: bool = True) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH if auth else {}, timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared 2-core machine
    data_dir: Path = tmp_path_factory.mktemp("serve")
    settings = Settings(data_dir=data_dir, token=TOKEN, poll_seconds=0.2, canary_min_labelled=20,
                        max_batch=16, max_body_bytes=20_000)  # fmt: skip
    with System(settings) as setup:  # what the worker process would have registered
        good, other, bad = (setup.bootstrap(trained(0)), setup.bootstrap(trained(1)),
                            setup.bootstrap(trained(1, wrong=True)))  # fmt: skip
        setup.promote(good)
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started and time.time() < deadline:
        time.sleep(0.02)
    assert uv.started, "uvicorn did not start"
    try:
        yield Server(f"http://127.0.0.1:{port}", good, other, bad)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        torch.set_num_threads(threads)


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"} and body["error"]["message"]
    return body["error"]["type"]


def sample(n: int = 1) -> list[list[float]]:
    return DATA.test.x[:n].tolist()


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
        for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
            assert c.get(path).status_code == 200, path
        assert c.get("/readyz").status_code in (200, 503)  # open; whether ready is tested below


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "MalformedJSON"),
        (b'{"inputs": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [[1e39, 0, 0, 0, 0, 0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [[0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0], [0]]}', 422, "DataError"),
        (b'{"inputs": [["a", 0, 0, 0, 0, 0, 0, 0]]}', 422, "DataError"),
        (b'{"inputs": [1, 2]}', 422, "DataError"),
        (b'{"inputs": []}', 422, "ValidationError"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]], "extra": 1}', 422, "ValidationError"),
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]], "ids": ["a", "b"]}', 422, "DataError"),
        (b'{"inputs": ' + str([[0] * 8] * 17).encode() + b"}", 413, "InputTooLargeError"),
        (b'{"inputs": ' + str([[0.5] * 8] * 600).encode() + b"}", 413, "BodyTooLargeError"),
    ],
)
def test_bad_predict_requests_get_a_4xx_and_the_server_keeps_serving(
    server: Server, body: bytes, status: int, kind: str
) -> None:
    with server.client() as c:
        r = c.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
        assert error_of(r, status) == kind
        assert c.post("/v1/predict", json={"inputs": sample()}).status_code == 200


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
        assert error_of(c.post("/v1/rollback", json={"alias": "shadow"}), 409) == "RegistryError"
        assert error_of(c.get("/v1/nothing"), 404) == "HTTPError"
        assert error_of(c.get("/v1/events", params={"kind": "Bad Kind"}), 422)


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


def test_worse_canary_is_rolled_back_automatically(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/deployments", json={"version": server.bad, "mode": "canary", "share": 0.5})
        assert r.status_code == 201 and r.json()["aliases"]["canary"] == {"version": server.bad, "share": 0.5}
        for start in range(0, len(DATA.test.x), 16):  # 80 samples, about half to the canary
            x, y = DATA.test.x[start : start + 16].tolist(), DATA.test.y[start : start + 16].tolist()
            r = c.post("/v1/predict", json={"inputs": x})
            assert r.status_code == 200, r.text
            for p, label in zip(r.json()["predictions"], y):
                assert (
                    c.post("/v1/feedback", json={"prediction_id": p["id"], "label": label}).status_code == 204
                )
        c.post("/v1/deployments/canary/evaluate")  # the poller may have decided already
        deadline = time.time() + 5
        while not c.get("/v1/events", params={"kind": "canary_rollback"}).json() and time.time() < deadline:
            time.sleep(0.05)
        (event,) = c.get("/v1/events", params={"kind": "canary_rollback"}).json()
        assert event["payload"]["canary"] == server.bad
        assert "canary" not in c.get("/v1/deployments").json()["aliases"]
        assert {
            p["variant"] for p in c.post("/v1/predict", json={"inputs": sample(8)}).json()["predictions"]
        } == {"champion"}


def test_rollback_and_drift_endpoints(server: Server) -> None:
    with server.client() as c:
        assert c.post(f"/v1/models/{server.other}/promote").status_code == 200
        r = c.post("/v1/rollback")
        assert r.status_code == 200 and r.json() == {"alias": "champion", "version": server.good}
        assert c.get("/healthz").json()["live"]["champion"]["version"] == server.good
        assert c.get("/v1/drift").json() == []
        assert c.get("/v1/events", params={"kind": "rollback"}).json()[-1]["payload"]["to"] == server.good
