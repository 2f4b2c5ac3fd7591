"""/v1/models and /v1/rollback: promote a version, roll back to the one before."""

from __future__ import annotations

from tests.system._server import Server


def test_rollback_and_drift_endpoints(server: Server) -> None:
    with server.client() as c:
        assert c.post(f"/v1/models/{server.other}/promote").status_code == 200
        r = c.post("/v1/rollback")
        assert r.status_code == 200 and r.json() == {"alias": "champion", "version": server.good}
        assert c.get("/healthz").json()["live"]["champion"]["version"] == server.good
        assert c.get("/v1/drift").json() == []
        assert c.get("/v1/events", params={"kind": "rollback"}).json()[-1]["payload"]["to"] == server.good
