"""/v1/samples: labelled samples are relabelled and deleted by id."""

from __future__ import annotations

from lifelong.system.store import Store
from tests.system._models import error_of
from tests.system._server import Server, sample


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
