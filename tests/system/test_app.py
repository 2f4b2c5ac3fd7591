"""The HTTP API against a real uvicorn server on 127.0.0.1: errors, auth, hot swaps, canaries."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

from lifelong.system.app import create_app
from lifelong.system.contract import Contract
from lifelong.system.events import EventKind
from lifelong.system.registry import Registry
from lifelong.system.service import System
from lifelong.system.settings import Settings
from lifelong.system.store import Store
from tests.system._models import DATA, error_of, trained
from tests.system._serve import running

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Server:
    url: str
    good: int
    other: int
    bad: int
    data_dir: Path

    def client(self, auth: bool = True) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=AUTH if auth else {}, timeout=10)


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
    try:
        with running(create_app(settings)) as url:
            yield Server(url, good, other, bad, data_dir)
    finally:
        torch.set_num_threads(threads)


FEATURES = tuple(f"x{i}" for i in range(8))


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
        for path in ("/healthz", "/metrics", "/openapi.json", "/docs", "/redoc", "/static/dashboard.css"):
            assert c.get(path).status_code == 200, path  # liveness, metrics, docs and their assets
        assert c.get("/").status_code == 200  # the dashboard's shell: its data come from /v1/dashboard
        assert error_of(c.get("/v1/dashboard"), 401) == "AuthError"
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


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind", "says"),
    [  # was: 422 "Input should be a valid dictionary", and 400 "There was an error parsing the body"
        (b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]]}', {"Content-Type": "text/plain"}, 415,
         "UnsupportedMediaType", "Content-Type: application/json"),
        (gzip.compress(b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, 0]]}', mtime=0),
         {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "MalformedJSON", "uncompressed"),
        (b"[" * 15_000, {"Content-Type": "application/json"}, 400, "MalformedJSON", "nested"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_plain_json_says_how_to_send_it(
    server: Server, body: bytes, headers: dict[str, str], status: int, kind: str, says: str
) -> None:
    with server.client() as c:
        r = c.post("/v1/predict", content=body, headers=headers)
        assert error_of(r, status) == kind and says in r.json()["error"]["message"], r.text


def test_finite_inputs_that_overflow_the_models_outputs_get_a_422(server: Server) -> None:
    w = trained(0).model.features[1].weight[0]  # every term of hidden unit 0 pushed the same way
    with server.client() as c:
        r = c.post("/v1/predict", json={"inputs": [(3e38 * w.sign()).tolist()]})
        assert error_of(r, 422) == "DataError" and "values too large" in r.json()["error"]["message"]


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
        metrics = c.get("/metrics").text
    for route, status in (("/v1/predict", 401), ("/v1/models/{version}/promote", 401), ("/v1/samples", 413),
                          ("unmatched", 401)):  # fmt: skip
        method = "GET" if route == "unmatched" else "POST"
        assert (
            f'lifelong_http_requests_total{{method="{method}",route="{route}",status="{status}"}}' in metrics
        )
    assert 'route="/v1/nowhere"' not in metrics  # a client's made-up paths never become labels


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


def test_batch_feedback_is_all_or_nothing_and_labels_the_inputs(server: Server) -> None:
    with server.client() as c, Store(data_dir=server.data_dir) as store:
        preds = c.post("/v1/predict", json={"inputs": sample(3)}).json()["predictions"]
        labelled = store.count_samples(labelled_only=True)
        items = [{"prediction_id": p["id"], "label": i} for i, p in enumerate(preds)]
        r = c.post("/v1/feedback", json={"feedback": [*items, {"prediction_id": "nope", "label": 0}]})
        assert error_of(r, 404) == "NotFoundError" and "item 3" in r.json()["error"]["message"]
        assert store.count_samples(labelled_only=True) == labelled  # nothing stored
        assert c.post("/v1/feedback", json={"feedback": items}).status_code == 204
        assert store.count_samples(labelled_only=True) == labelled + 3
        assert store.samples(labelled_only=True).y.tolist()[-3:] == [0, 1, 2]


def test_samples_are_relabelled_and_deleted_by_id(server: Server) -> None:
    with server.client() as c, Store(data_dir=server.data_dir) as store:
        (sid,) = c.post("/v1/samples", json={"inputs": sample(1), "labels": [1]}).json()["ids"]
        r = c.patch(f"/v1/samples/{sid}", json={"label": 3})
        assert r.status_code == 200 and r.json() == {"id": sid, "label": 3}
        assert store.samples(since_id=sid - 1, until_id=sid).y.tolist() == [3]
        assert "valid labels" in c.patch(f"/v1/samples/{sid}", json={"label": 4}).json()["error"]["message"]
        assert c.patch(f"/v1/samples/{sid}", json={"label": None}).json()["label"] is None
        assert c.delete(f"/v1/samples/{sid}").status_code == 204
        assert len(store.samples(since_id=sid - 1, until_id=sid).ids) == 0
        assert error_of(c.delete(f"/v1/samples/{sid}"), 404) == "NotFoundError"
        assert error_of(c.patch(f"/v1/samples/{sid}", json={"label": 1}), 404) == "NotFoundError"


def test_train_request_is_accepted_for_the_worker(server: Server) -> None:
    """Was: 202 "queued" alone with no worker running, as if one would train at its next poll."""
    with server.client() as c, Store(data_dir=server.data_dir) as store:
        assert store.lease("worker") is None  # no worker runs on this store
        r = c.post("/v1/train", json={"reason": "new labels arrived"})
        assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["worker"] is False
        assert "no worker holds the lease" in r.json()["message"], r.json()
        assert "waits until a worker runs on the store" in r.json()["message"], r.json()
        event = c.get("/v1/events", params={"kind": "train_request"}).json()[-1]
        assert event["id"] == r.json()["event_id"] and event["payload"]["reason"] == "new labels arrived"
        assert store.acquire_lease("worker", "test-worker", 60.0)
        try:
            r = c.post("/v1/train")  # the body is optional
            assert r.status_code == 202 and r.json()["worker"] is True, r.json()
            assert "the worker starts it at its next poll" in r.json()["message"]
        finally:
            store.release_lease("worker", "test-worker")
        schema = c.get("/openapi.json").json()["components"]["schemas"]["TrainAccepted"]
        assert {"worker", "message"} <= set(schema["required"])


def test_predictions_can_carry_probabilities_by_class(server: Server) -> None:
    with server.client() as c:
        plain = c.post("/v1/predict", json={"inputs": sample(2)}).json()["predictions"]
        assert "probabilities" not in plain[0]
        preds = c.post("/v1/predict", json={"inputs": sample(2), "probabilities": True}).json()["predictions"]
        for p in preds:
            assert list(p["probabilities"]) == ["0", "1", "2", "3"]
            assert list(p["probabilities"].values()) == p["scores"] and abs(sum(p["scores"]) - 1) < 1e-5
            assert max(p["probabilities"], key=p["probabilities"].get) == str(p["label"])


def test_readyz_lists_every_reason_and_healthz_stays_liveness(server: Server) -> None:
    with server.client(auth=False) as c, Store(data_dir=server.data_dir) as store:
        store.release_lease("worker", "test-worker")
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert any("no worker" in reason for reason in r.json()["reasons"])
        assert c.get("/readyz", params={"scope": "serving"}).json() == {"ready": True, "reasons": []}
        assert c.get("/readyz", params={"scope": "nope"}).status_code == 422
        assert c.get("/healthz").status_code == 200
        assert store.acquire_lease("worker", "test-worker", 60.0, now=time.time() - 100)  # killed 40 s ago
        assert any("the worker test-worker is gone: its lease expired" in reason
                   for reason in c.get("/readyz").json()["reasons"])  # fmt: skip
        assert "lifelong_worker_up 0" in c.get("/metrics").text
        assert store.acquire_lease("worker", "test-worker", 200.0, now=time.time() - 100)  # live, but stuck
        assert any("heartbeat is 100 s old" in reason for reason in c.get("/readyz").json()["reasons"])
        assert store.acquire_lease("worker", "test-worker", 60.0)
        assert c.get("/readyz").json() == {"ready": True, "reasons": []}
        store.add_event(
            EventKind.TRAINING, {"state": "failed", "error": "IndexError: target 9 is out of bounds"}
        )
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["reasons"] == [
            "the last training attempt failed: IndexError: target 9 is out of bounds"
        ]
        store.add_event(EventKind.GATE, {"passed": False, "reasons": ["accuracy"]})
        assert c.get("/readyz").status_code == 200
        metrics = c.get("/metrics").text
        store.release_lease("worker", "test-worker")
    assert 'lifelong_training_last_outcome{outcome="rejected"} 1' in metrics
    assert 'lifelong_training_last_outcome{outcome="failed"} 0' in metrics
    age = next(
        line for line in metrics.splitlines() if line.startswith("lifelong_worker_heartbeat_age_seconds")
    )
    assert 0 <= float(age.split()[-1]) < 5


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
        assert int(lines["lifelong_training_attempts_total"]) == len(store.events(EventKind.GATE))
        for name in ("lifelong_versions_rolled_back_total", "lifelong_predictions_unlogged_total",
                     "lifelong_drift_detections_total", "lifelong_training_attempts_total"):  # fmt: skip
            assert f"# TYPE {name} counter" in text


NAMES = ("barbera", "barolo", "dolcetto", "nebbiolo")


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A deployment whose classes have names, as `lifelong up --bootstrap` makes from string labels."""
    data_dir: Path = tmp_path_factory.mktemp("named")
    settings = Settings(data_dir=data_dir, token=TOKEN, poll_seconds=0.2)
    with System(settings) as setup:
        contract = Contract(classes=(0, 1, 2, 3), input_shape=(8,), class_names=NAMES, feature_names=FEATURES)
        version = setup.bootstrap(trained(0), contract=contract)
    with running(create_app(settings)) as url:
        yield Server(url, version, version, version, data_dir)


def test_class_names_come_back_in_predictions_and_are_accepted_as_labels(named: Server) -> None:
    with named.client() as c, Store(data_dir=named.data_dir) as store:
        preds = c.post("/v1/predict", json={"inputs": sample(3), "probabilities": True}).json()["predictions"]
        assert [p["class_name"] for p in preds] == [NAMES[p["label"]] for p in preds]
        assert set(preds[0]["probabilities"]) == set(NAMES)
        labelled = store.count_samples(labelled_only=True)
        items = [
            {"prediction_id": p["id"], "label": name} for p, name in zip(preds, ["nebbiolo", "barbera", 2])
        ]
        assert c.post("/v1/feedback", json={"feedback": items}).status_code == 204
        assert store.samples(labelled_only=True).y.tolist()[-3:] == [3, 0, 2]  # names stored as indices
        assert store.count_samples(labelled_only=True) == labelled + 3
        (sid,) = c.post("/v1/samples", json={"inputs": sample(1), "labels": ["dolcetto"]}).json()["ids"]
        assert c.patch(f"/v1/samples/{sid}", json={"label": "barolo"}).json() == {"id": sid, "label": 1}
        # an unknown name is refused with the valid ones, and nothing of the batch is stored
        before = store.count_samples(labelled_only=True)
        r = c.post(
            "/v1/feedback",
            json={"feedback": [items[0], {"prediction_id": preds[1]["id"], "label": "chianti"}]},
        )
        assert error_of(r, 422) == "DataError"
        message = r.json()["error"]["message"]
        assert "item 1" in message and "'chianti'" in message and "1 (barolo)" in message
        assert store.count_samples(labelled_only=True) == before
        # a malformed batch item is reported as a batch item, not as a malformed single feedback
        r = c.post("/v1/feedback", json={"feedback": [{"prediction_id": preds[0]["id"], "label": 1.5}]})
        assert error_of(r, 422) == "ValidationError" and "FeedbackItem" not in r.json()["error"]["message"]
        assert r.json()["error"]["message"].startswith("body.feedback.0.label")
        # a wrong shape is named in the client's words (was: body.item.prediction_id, pydantic's union tag)
        r = c.post("/v1/feedback", json={"items": [items[0]]})
        assert error_of(r, 422) == "ValidationError"
        assert r.json()["error"]["message"] == (
            "body.prediction_id: Field required; body.label: Field required; body.items: Extra inputs are not permitted"
        )
        # a whole-number float is its index, as in the library (a label column read as float)
        r = c.post("/v1/feedback", json={"feedback": [{"prediction_id": preds[0]["id"], "label": 2.0}]})
        assert r.status_code == 204 and store.samples(labelled_only=True).y.tolist()[-4] == 2
        assert r.content == b"" and "content-type" not in r.headers  # no body, no content type


def test_inputs_may_be_sent_by_feature_name(named: Server) -> None:
    rows = sample(2)
    records = [dict(reversed(list(zip(FEATURES, row)))) for row in rows]  # any key order
    with named.client() as c:
        by_position = c.post("/v1/predict", json={"inputs": rows}).json()["predictions"]
        by_name = c.post("/v1/predict", json={"inputs": records}).json()["predictions"]
        assert [p["scores"] for p in by_name] == [p["scores"] for p in by_position]
        assert len(c.post("/v1/samples", json={"inputs": records, "labels": [0, 1]}).json()["ids"]) == 2
        r = c.post("/v1/predict", json={"inputs": [rows[0], records[1]]})  # a list first, then an object
        assert (
            error_of(r, 422) == "DataError"
            and "send every sample the same way" in r.json()["error"]["message"]
        )
        r = c.post("/v1/predict", json={"inputs": [{"x0": 1.0}]})
        assert error_of(r, 422) == "DataError" and "sample 0 lacks 'x1'" in r.json()["error"]["message"]
        r = c.post("/v1/predict", json={"inputs": [{**records[0], "x2": "high"}]})
        assert (
            error_of(r, 422) == "DataError" and "holds 'high' in feature 'x2'" in r.json()["error"]["message"]
        )


def test_class_names_are_refused_where_the_classes_have_none(server: Server) -> None:
    with server.client() as c:
        r = c.post("/v1/samples", json={"inputs": sample(1), "labels": ["cat"]})
        assert (
            error_of(r, 422) == "DataError"
            and "have none; send the class index" in r.json()["error"]["message"]
        )
        assert "class_name" not in c.post("/v1/predict", json={"inputs": sample(1)}).json()["predictions"][0]


def test_every_metric_family_has_help_and_type_and_readiness_is_a_gauge(server: Server) -> None:
    with server.client(auth=False) as c:
        text = c.get("/metrics").text
    lines = text.splitlines()
    typed = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    helped = {line.split()[2] for line in lines if line.startswith("# HELP ")}
    assert len(typed) >= 20 and set(typed) <= helped, sorted(set(typed) - helped)  # 10 had no HELP
    assert 'lifelong_ready{scope="serving"} ' in text and "lifelong_degraded 0" in text


def test_an_ab_canary_taking_all_traffic_is_refused_saying_what_to_deploy(tmp_path: Path) -> None:
    """Was: 201, then silence: under the A/B canary test a canary at share 1 leaves the champion no
    traffic, so its arm never reached the horizon and the canary was never judged."""
    settings = Settings(data_dir=tmp_path, token=TOKEN, poll_seconds=0.2, canary_test="ab")
    with System(settings) as setup:
        challenger, champion = setup.bootstrap(trained(1)), setup.bootstrap(trained(0))
    with running(create_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH, timeout=10) as c:
        before = c.get("/v1/deployments").json()
        assert before["aliases"] == {"champion": {"version": champion, "share": None}}
        r = c.post("/v1/deployments", json={"version": challenger, "mode": "canary", "share": 1.0})
        assert error_of(r, 422) == "ConfigError"
        message = r.json()["error"]["message"]
        assert "A/B canary test" in message and "never reaches its horizon" in message, message
        assert "give a share below 1" in message and "champion directly" in message, message
        assert c.get("/v1/deployments").json() == before  # nothing deployed
        r = c.post("/v1/deployments", json={"version": challenger, "mode": "canary", "share": 0.5})
        assert r.status_code == 201 and r.json()["aliases"]["canary"] == {"version": challenger, "share": 0.5}
        schema = c.get("/openapi.json").json()["components"]["schemas"]["DeploymentRequest"]
        assert "A/B" in schema["properties"]["share"]["description"]
