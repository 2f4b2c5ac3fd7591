"""/healthz and /readyz: readiness lists every reason; liveness stays liveness."""

from __future__ import annotations

import time

from lifelong.system.events import EventKind
from lifelong.system.store import Store
from tests.system._server import Server


def test_readyz_lists_every_reason_and_healthz_stays_liveness(server: Server) -> None:
    with server.client(auth=False) as c, Store(data_dir=server.data_dir) as store:
        store.release_lease("worker", "test-worker")
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert any("no worker" in reason for reason in r.json()["reasons"])
        assert c.get("/readyz", params={"scope": "serving"}).json() == {"ready": True, "reasons": []}
        assert c.get("/readyz", params={"scope": "nope"}).status_code == 422
        assert c.get("/healthz").status_code == 200
        # a load balancer's HEAD probe (was 405), and a trailing slash is a JSON 404, not a 307 to a
        # Location built from the client's Host header (a fuzzing trial)
        assert (
            c.head("/healthz").status_code == 200
            and c.head("/readyz", params={"scope": "serving"}).status_code == 200
        )
        with server.client() as authed:
            r = authed.post("/v1/predict/", json={"inputs": [[0.0]]}, headers={"Host": "evil.example"})
        assert r.status_code == 404 and "location" not in r.headers and r.json()["error"]["type"]
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
        # its retry running: still failing until a candidate is judged (it read ready for each retry's
        # seconds of training, and an alert flapped while every attempt failed: a trial)
        store.add_event(EventKind.TRAINING, {"state": "started"})
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["reasons"] == [
            "the last training attempt failed: IndexError: target 9 is out of bounds; a retry is running"
        ]
        store.add_event(EventKind.GATE, {"passed": False, "reasons": ["accuracy"]})
        assert c.get("/readyz").status_code == 200
        metrics = c.get("/metrics").text
        # a window too small to train is "skipped", not a candidate the gate rejected (an alert on
        # rejections fired with nothing trained or judged)
        store.add_event(EventKind.GATE, {"passed": False, "trained": False, "reasons": ["window too small"]})
        skipped = c.get("/metrics").text
        # a training stopped before its verdict read "running" for ever after
        store.add_event(EventKind.TRAINING, {"state": "started"})
        running = c.get("/metrics").text
        store.add_event(EventKind.TRAINING, {"state": "interrupted", "by": "the worker was asked to stop"})
        interrupted = c.get("/metrics").text
        # a stalled worker's own end, written after the new holder started its training: that one runs
        old = store.add_event(EventKind.TRAINING, {"state": "started"})
        store.add_event(EventKind.TRAINING, {"state": "started"})
        store.add_event(EventKind.TRAINING, {"state": "interrupted", "started": old, "by": "lost its lease"})
        still_running = c.get("/metrics").text
        store.release_lease("worker", "test-worker")
    assert 'lifelong_training_last_outcome{outcome="running"} 1' in running
    assert 'lifelong_training_last_outcome{outcome="interrupted"} 1' in interrupted
    assert 'lifelong_training_last_outcome{outcome="running"} 0' in interrupted
    assert 'lifelong_training_last_outcome{outcome="running"} 1' in still_running
    assert 'lifelong_training_last_outcome{outcome="rejected"} 1' in metrics
    assert 'lifelong_training_last_outcome{outcome="failed"} 0' in metrics
    assert 'lifelong_training_last_outcome{outcome="skipped"} 1' in skipped
    assert 'lifelong_training_last_outcome{outcome="rejected"} 0' in skipped
    # attempts: the failed one, the judged one and the skipped one (failures exceeded attempts)
    assert "lifelong_training_attempts_total 3" in skipped and "lifelong_training_failures_total 1" in skipped
    assert "lifelong_training_skipped_total 1" in skipped
    # the judged, refused candidate counts as a gate rejection; the skipped one does not
    assert "lifelong_gate_rejections_total 1" in skipped
    age = next(
        line for line in metrics.splitlines() if line.startswith("lifelong_worker_heartbeat_age_seconds")
    )
    assert 0 <= float(age.split()[-1]) < 5


def test_drift_checks_list_every_judged_block(server: Server) -> None:
    with server.client() as c, Store(data_dir=server.data_dir) as store:
        before = c.get("/v1/drift/checks").json()
        first = store.add_drift_check(1, 10, 209, {"monitor": "ks", "score": 0.4, "threshold": 0.05,
                                                   "p_value": float("nan"), "drift": True,
                                                   "details": {"drifted_features": [0, 3]}})  # fmt: skip
        got = c.get("/v1/drift/checks", params={"after_id": first - 1}).json()
        assert c.get("/v1/drift/checks", params={"limit": 0}).status_code == 422
    assert isinstance(before, list) and got == [{"id": first, "ts": got[0]["ts"], "version": 1, "monitor": "ks",
                                         "first_id": 10, "last_id": 209, "score": 0.4, "threshold": 0.05,
                                         "p_value": None, "drift": True, "drifted": 2}]  # fmt: skip
