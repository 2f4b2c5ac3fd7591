"""POST /v1/train: a request is accepted for the worker, which does the training."""

from __future__ import annotations

from lifelong.system.store import Store
from tests.system._server import Server


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
