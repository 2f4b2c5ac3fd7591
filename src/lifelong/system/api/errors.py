"""Map every user-caused error to a 4xx JSON body ``{"error": {"type", "message"}}``; keep serving."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Send

from lifelong.errors import CheckpointError, LifelongError, NotFoundError, RegistryError
from lifelong.system.health import (
    ChampionUnavailableError,
    NotRecordedYetError,
    StorageFullError,
    is_storage_full,
    one_line,
)
from lifelong.system.schemas import UNION_TAGS, InputTooLargeError
from lifelong.system.store import STORE_DOWN

log = logging.getLogger(__name__)


class AuthError(LifelongError):
    """No bearer token was sent (HTTP 401)."""


class ForbiddenError(AuthError):
    """A bearer token was sent but it is wrong (HTTP 403)."""


class BodyTooLargeError(InputTooLargeError):
    """The request body is larger than ``max_body_bytes`` (HTTP 413)."""


# Most specific first: the first matching class decides the status.
STATUS: list[tuple[type[LifelongError], int]] = [
    (ForbiddenError, 403),
    (AuthError, 401),
    (NotFoundError, 404),
    (InputTooLargeError, 413),
    (StorageFullError, 507),
    (NotRecordedYetError, 503),
    (ChampionUnavailableError, 503),
    (RegistryError, 409),
    (CheckpointError, 409),
    (LifelongError, 422),
]


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": _printable(message)}}, status_code=status,
                        headers=headers)  # fmt: skip


async def raw_error(send: Send, status: int, kind: str, message: str,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    """The same JSON error body, sent from a pure ASGI middleware (before any route runs)."""
    payload = error_body(kind, message)
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": payload})


def http_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol answering a request it cannot parse (a broken request line, bad
    framing) with the API's JSON error body: uvicorn sends those 400s itself, before any route or
    middleware runs, as plain text (``Invalid HTTP request received.``). Passed as ``http=``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class JSONErrorHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        def send_400_response(self, msg: str) -> None:
            payload = error_body("MalformedHTTP", f"the request is not valid HTTP/1.1 ({msg.rstrip('.')}); send "
                                 "a well-formed request, as an HTTP client library does")  # fmt: skip
            head = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\nconnection: close\r\n\r\n" % len(payload))  # fmt: skip
            self.transport.write(head + payload)
            self.transport.close()

    return JSONErrorHTTPProtocol


def error_body(kind: str, message: str) -> bytes:
    """The error body as ``JSONResponse`` renders it (compact, UTF-8), for the paths that write bytes
    themselves: a 413 or 403 from the middleware read ``{"error": {"type": ...`` where routes answered
    ``{"error":{"type":...``."""
    return json.dumps({"error": {"type": kind, "message": _printable(message)}}, ensure_ascii=False,
                      allow_nan=False, separators=(",", ":")).encode("utf-8")  # fmt: skip


def _printable(message: str) -> str:
    """A client may send a lone surrogate (valid JSON, invalid UTF-8): escape it rather than fail."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def status_of(err: LifelongError) -> int:
    return next(code for cls, code in STATUS if isinstance(err, cls))


async def _lifelong(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, LifelongError)
    status = status_of(err)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:  # worth retrying shortly
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return error_response(status, type(err).__name__, str(err), headers)


async def _validation(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    problems = err.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return error_response(400, "MalformedJSON", "the request body is not valid JSON")
    kind = request.headers.get("content-type", "")
    sent = kind or request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if sent and not _json_media(kind) and any(tuple(p.get("loc", ()))[:1] == ("body",) for p in problems):
        how = f"as {kind!r}" if kind else "with no Content-Type"
        return error_response(  # FastAPI reads a body as JSON only when it says it is JSON
            415, "UnsupportedMediaType", f"the body was sent {how}; send it as JSON with the header "
            "'Content-Type: application/json'",
        )  # fmt: skip
    if any(_where(p.get("loc", ())) == ["body"] for p in problems):  # not an object at all (a bare list)
        shape = BODY_SHAPES.get(request.url.path.rstrip("/"), "")
        return error_response(422, "ValidationError", f"the body must be a JSON object{shape}")
    parts = [f"{'.'.join(_where(e.get('loc', ())))}: {e.get('msg', '')}" for e in problems[:5]]
    return error_response(422, "ValidationError", "; ".join(parts))


#: what a body that is not an object should have been (a bare list of feedback read "body: Input should
#: be a valid dictionary or object to extract fields from")
BODY_SHAPES = {
    "/v1/feedback": ': {"prediction_id": "...", "label": 5}, or {"feedback": [{"prediction_id": "...", "label": 5}, ...]}',
    "/v1/predict": ': {"inputs": [[...], ...]} (one list of numbers, or an object of named features, per sample)',
    "/v1/samples": ': {"inputs": [[...], ...], "labels": [...]} (labels optional)',
}


def _json_media(kind: str) -> bool:
    """FastAPI's rule for reading a body as JSON: ``application/json`` or ``application/*+json``
    (``text/json`` and ``application/jsonx`` were read as text and answered with a 422)."""
    media = kind.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _where(loc: tuple[object, ...] | list[object]) -> list[str]:
    """An error's location in the body as the client wrote it: ``body.label``, not ``body.item.label``."""
    loc = list(loc)
    if len(loc) > 1 and loc[0] == "body" and loc[1] in UNION_TAGS:
        del loc[1]
    return [str(p) for p in loc]


async def _http(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, HTTPException)
    if err.status_code == 413:  # api.limits.BodyLimit stopped reading a body that passed the limit
        return error_response(413, "BodyTooLargeError", str(err.detail), {"connection": "close"})
    if err.status_code == 400 and err.__cause__ is not None:  # FastAPI could not read the body as JSON
        return error_response(
            400, "MalformedJSON", f"the request body could not be read as JSON ({type(err.__cause__).__name__}): "
            "send uncompressed UTF-8 JSON (no Content-Encoding), nested no deeper than a list of rows",
        )  # fmt: skip
    return error_response(err.status_code, "HTTPError", str(err.detail), getattr(err, "headers", None))


RETRY_AFTER_SECONDS = 5
#: at most one "store unavailable" line per this many seconds: one per refused request was 2,630 lines
#: from one replica in a 10 s database restart under load
STORE_DOWN_LOG_SECONDS = 10.0
#: when the last line was written, when the last request was refused, and the refusals not yet counted
_store_down_log = {"at": -math.inf, "last": -math.inf, "quiet": 0}


async def _store_down(request: Request, err: Exception) -> JSONResponse:
    """503 with Retry-After (507 for a full disk): the transaction rolled back, nothing changed."""
    now, state = time.monotonic(), _store_down_log
    if now - state["at"] >= STORE_DOWN_LOG_SECONDS:
        quiet, ago = int(state["quiet"]), now - state["last"]
        more = ("" if not quiet else f" ({quiet} more requests refused since the last such line)"
                if ago < STORE_DOWN_LOG_SECONDS else
                f" ({quiet} more requests were refused in an earlier stretch that ended {ago:.0f} s ago)")  # fmt: skip
        log.warning("store unavailable on %s %s: %s%s", request.method, request.url.path, one_line(err), more)
        state.update(at=now, quiet=0)
    else:
        state["quiet"] += 1
    state["last"] = now
    if is_storage_full(err):
        return error_response(
            507, "StorageFullError", f"the store is full ({one_line(err)}); nothing was stored"
        )
    return error_response(
        503, "StoreUnavailable",
        f"the store cannot be reached or written ({one_line(err)}); nothing was changed: try again shortly",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )  # fmt: skip


async def _unexpected(request: Request, err: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "InternalError", "internal error; see the server log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(LifelongError, _lifelong)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    for kind in STORE_DOWN:
        app.add_exception_handler(kind, _store_down)
    app.add_exception_handler(Exception, _unexpected)
