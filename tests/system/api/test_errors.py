"""Every error reaches the client as a JSON body ``{"error": {"type", "message"}}`` with the right status."""

import errno
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import BaseModel

from lifelong.errors import CheckpointError, ConfigError, NotFoundError, RegistryError
from lifelong.system.api import errors
from lifelong.system.api.errors import AuthError, BodyTooLargeError, ForbiddenError, status_of
from lifelong.system.health import NotRecordedYetError, StorageFullError
from tests.system._serve import running


class Item(BaseModel):
    label: int


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """A real server on loopback with the API's error handlers and routes that raise each error."""
    app = FastAPI()
    errors.install(app)
    raising = {
        "forbidden": ForbiddenError("wrong token"), "auth": AuthError("no token"),
        "missing": NotFoundError("no model 7"), "registry": RegistryError("already champion"),
        "config": ConfigError("bad option"), "surrogate": ConfigError("bad \ud800 label"),
        "down": sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")),
        "full": sa.exc.OperationalError("INSERT", {}, OSError(errno.ENOSPC, "No space left on device")),
        "bug": ZeroDivisionError("division by zero"),
    }  # fmt: skip

    @app.get("/raise/{what}")
    def raise_(what: str) -> None:
        raise raising[what]

    @app.post("/items")
    def items(item: Item) -> int:
        return item.label

    with running(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


@pytest.mark.parametrize(
    ("what", "status", "kind"),
    [
        ("forbidden", 403, "ForbiddenError"),
        ("auth", 401, "AuthError"),
        ("missing", 404, "NotFoundError"),
        ("registry", 409, "RegistryError"),
        ("config", 422, "ConfigError"),
        ("down", 503, "StoreUnavailable"),
    ],  # fmt: skip
)
def test_each_error_gets_its_status_and_a_json_body(
    client: httpx.Client, what: str, status: int, kind: str
) -> None:
    r = client.get(f"/raise/{what}")
    assert r.status_code == status and r.json()["error"]["type"] == kind
    assert ("WWW-Authenticate" in r.headers) == (status == 401)
    assert ("Retry-After" in r.headers) == (status == 503)


def test_an_unexpected_error_is_a_500_whose_text_stays_in_the_server_log(client: httpx.Client) -> None:
    # its own connection: the server closes one after an unhandled error (uvicorn, by design)
    r = httpx.get(client.base_url.join("/raise/bug"), timeout=10)
    assert r.status_code == 500 and r.json()["error"] == {
        "type": "InternalError", "message": "internal error; see the server log",
    }  # fmt: skip


def test_a_full_disk_is_507_and_says_nothing_was_stored(client: httpx.Client) -> None:
    r = client.get("/raise/full")
    assert r.status_code == 507 and "nothing was stored" in r.json()["error"]["message"]


def test_a_lone_surrogate_in_a_message_is_escaped_not_a_failure(client: httpx.Client) -> None:
    r = client.get("/raise/surrogate")
    assert r.status_code == 422 and r.json()["error"]["message"] == "bad \\ud800 label"


def test_bodies_that_are_not_json_or_not_valid_say_what_to_send(client: httpx.Client) -> None:
    c = client
    r = c.post("/items", content=b"{", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]["type"]) == (400, "MalformedJSON")
    r = c.post("/items", content=b"label=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]["message"]
    r = c.post("/items", json={"label": "seven"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("body.label: ")


def test_the_most_specific_status_wins() -> None:
    assert status_of(ForbiddenError("x")) == 403  # an AuthError too, which alone is 401
    assert status_of(BodyTooLargeError("x")) == 413
    assert status_of(StorageFullError("x")) == 507
    assert status_of(NotRecordedYetError("x")) == 503  # answered with Retry-After: worth sending again
    assert status_of(CheckpointError("x")) == 409
    assert status_of(ConfigError("x")) == 422  # any other error a user caused


def test_an_outage_logs_a_line_per_interval_not_per_refused_request(
    client: httpx.Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10 s database restart under load wrote 2,630 warning lines from one replica."""
    import logging

    monkeypatch.setattr(errors, "_store_down_log", {"at": float("-inf"), "last": float("-inf"), "quiet": 0})
    with caplog.at_level(logging.WARNING, logger="lifelong.system.api.errors"):
        assert [client.get("/raise/down").status_code for _ in range(20)] == [503] * 20
        errors._store_down_log["at"] -= 60  # the interval has passed, the outage goes on
        assert client.get("/raise/down").status_code == 503
        client.get("/raise/down")  # counted, then the store returns; a minute later another outage
        errors._store_down_log["at"] -= 60
        errors._store_down_log["last"] -= 60
        assert client.get("/raise/down").status_code == 503
    lines = [r.getMessage() for r in caplog.records if "store unavailable" in r.getMessage()]
    assert len(lines) == 3 and "(19 more requests refused since the last such line)" in lines[1]
    assert "(1 more requests were refused in an earlier stretch that ended 60 s ago)" in lines[2]


def test_a_middlewares_error_body_is_byte_for_byte_a_routes() -> None:
    """A 413 or 403 from the middleware read {"error": {"type": ... with spaces; routes answered compactly."""
    import asyncio

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(errors.raw_error(send, 413, "BodyTooLargeError", "too large: é"))
    assert sent[1]["body"] == errors.error_response(413, "BodyTooLargeError", "too large: é").body
