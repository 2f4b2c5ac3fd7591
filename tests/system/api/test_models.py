"""/v1/models and /v1/rollback: promote a version, roll back to the one before."""

from __future__ import annotations

from tests.system._server import Server


def test_rollback_and_drift_endpoints(server: Server) -> None:
    with server.client() as c:
        assert c.post(f"/v1/models/{server.other}/promote").status_code == 200
        r = c.post("/v1/rollback")
        assert r.status_code == 200 and r.json()["alias"] == "champion" and r.json()["version"] == server.good
        assert r.json()["aliases"]["champion"]["version"] == server.good  # the same shape promote answers
        assert c.get("/healthz").json()["live"]["champion"]["version"] == server.good
        assert c.get("/v1/drift").json() == []
        assert c.get("/v1/events", params={"kind": "rollback"}).json()[-1]["payload"]["to"] == server.good


def test_a_version_of_another_schema_is_a_409_unless_forced(server: Server) -> None:
    """Promoting it answered 200, and every client request failed after it."""
    from lifelong.learn.learner import Learner
    from lifelong.learn.models import MLP
    from lifelong.system.service import System
    from lifelong.system.settings import Settings

    with System(Settings(data_dir=server.data_dir, auth=False)) as setup:
        narrow = setup.bootstrap(Learner(MLP(in_features=4, hidden=(8,), n_classes=2)), force=True)
        setup.promote(server.good, force=True)  # published, the champion back: only the HTTP call is tested
    with server.client() as c:
        r = c.post(f"/v1/models/{narrow}/promote")
        assert r.status_code == 409 and "would break the clients of champion" in r.json()["error"]["message"]
        r = c.post("/v1/deployments", json={"version": narrow, "mode": "canary", "share": 0.1})
        assert r.status_code == 409
        assert c.post(f"/v1/models/{narrow}/promote", json={"force": True}).status_code == 200
        assert c.post(f"/v1/models/{server.good}/promote", json={"force": True}).status_code == 200


def test_force_is_true_or_false_only(server: Server) -> None:
    """ "yes", 1 or "t" were read as force=true, skipping the check on the clients' contract."""
    with server.client() as c:
        champion = c.get("/healthz").json()["live"]["champion"]["version"]
        for value in ("yes", 1, "t"):
            r = c.post(f"/v1/models/{server.other}/promote", json={"force": value})
            assert r.status_code == 422 and "valid boolean" in r.text, r.text
            r = c.post("/v1/deployments", json={"version": server.other, "share": 0.5, "force": value})
            assert r.status_code == 422, r.text
        assert c.post("/v1/deployments", json={"version": str(server.other)}).status_code == 422
        assert c.get("/healthz").json()["live"]["champion"]["version"] == champion
