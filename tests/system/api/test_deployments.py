"""/v1/deployments: a worse canary is rolled back; an A/B canary leaving the champion no traffic is refused."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from lifelong.system.app import create_app
from lifelong.system.service import System
from lifelong.system.settings import Settings
from tests.system._models import DATA, error_of, trained
from tests.system._serve import running
from tests.system._server import AUTH, TOKEN, Server, sample


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
