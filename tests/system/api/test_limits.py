"""``BodyLimit``: a body over the limit is refused with the API's JSON 413 while it streams in."""

import pytest

from lifelong.system.api.limits import BodyLimit, BodyTooLarge
from tests.system.api._asgi import call, echo, status_and_error

LIMIT = 100


def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read() -> None:
    sent, read = call(BodyLimit(echo, LIMIT), headers={"Content-Length": "101"}, chunks=(b"x" * 101,))
    status, error = status_and_error(sent)
    assert status == 413 and error == {
        "type": "BodyTooLargeError", "message": "request body exceeds 100 bytes; send smaller batches",
    }  # fmt: skip
    assert read == [] and (b"connection", b"close") in sent[0]["headers"]


def test_a_length_that_is_not_a_number_is_refused_too() -> None:
    sent, _ = call(BodyLimit(echo, LIMIT), headers={"Content-Length": "-1"})
    assert status_and_error(sent)[0] == 413


def test_a_chunked_body_is_counted_as_it_arrives_and_stopped_past_the_limit() -> None:
    chunks = (b"x" * 60, b"x" * 60, b"x" * 60)
    with pytest.raises(BodyTooLarge, match="exceeds 100 bytes"):  # FastAPI turns it into the JSON 413
        call(BodyLimit(echo, LIMIT), chunks=chunks)


def test_bodies_at_the_limit_and_other_scopes_pass() -> None:
    sent, read = call(
        BodyLimit(echo, LIMIT), headers={"Content-Length": "100"}, chunks=(b"x" * 50, b"x" * 50)
    )
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"100" and len(read) == 2
