"""Bodies over ``OFFLOAD_BYTES`` are parsed in the helper process, and a dead helper costs nothing."""

import json
import os
import signal
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Body, FastAPI

from lifelong.system.api import body, errors
from lifelong.system.api.body import JsonParser, OffloadedJSONRoute
from tests.system._serve import running


@pytest.fixture(scope="module")
def parser() -> Iterator[JsonParser]:
    p = JsonParser()
    yield p
    p.close()


@pytest.fixture
def client(parser: JsonParser, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch.setattr(body, "OFFLOAD_BYTES", 100)  # read per request: a small body stands in for a big one
    router = APIRouter(route_class=OffloadedJSONRoute)

    @router.post(
        "/parse"
    )  # a body parameter, as the API's routes declare theirs: FastAPI calls request.json()
    async def parse(doc: Annotated[Any, Body()]) -> dict[str, Any]:
        return {"type": type(doc["inputs"]).__name__, "rows": len(doc["inputs"]), "pid": os.getpid()}

    app = FastAPI()
    app.include_router(router)
    app.state.json_parser = parser
    errors.install(app)
    json_body = {"Content-Type": "application/json"}
    with running(app) as url, httpx.Client(base_url=url, headers=json_body, timeout=30) as c:
        yield c


def _rows(n: int) -> bytes:
    return json.dumps({"inputs": [[0.5] * 8] * n}).encode()


def test_a_big_body_comes_back_from_the_helper_as_one_array(client: httpx.Client) -> None:
    assert client.post("/parse", content=_rows(1)).json()["type"] == "list"  # under the limit: inline
    assert client.post("/parse", content=_rows(50)).json() == {
        "type": "ndarray",
        "rows": 50,
        "pid": os.getpid(),
    }


def test_bad_json_parsed_in_the_helper_is_a_400(client: httpx.Client) -> None:
    r = client.post("/parse", content=_rows(50)[:-3])
    assert (r.status_code, r.json()["error"]["type"]) == (400, "MalformedJSON")


def test_a_helper_killed_mid_service_is_replaced_and_the_body_parsed_inline(
    client: httpx.Client, parser: JsonParser, caplog: pytest.LogCaptureFixture
) -> None:
    client.post("/parse", content=_rows(50))
    old = parser._pool
    assert old is not None
    for pid in list(old._processes):  # the OOM killer, say
        os.kill(pid, signal.SIGKILL)
    r = client.post("/parse", content=_rows(50))
    assert r.status_code == 200 and r.json()["rows"] == 50
    assert "the JSON parsing process died; parsing this body inline" in caplog.text
    assert client.post("/parse", content=_rows(50)).json()["type"] == "ndarray"
    assert parser._pool is not None and parser._pool is not old  # a new helper took over
