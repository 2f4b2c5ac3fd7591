"""The request body size limit, enforced while the body streams in (never after buffering it all).

A declared ``Content-Length`` over the limit is answered 413 before a byte is read; a body without
one (chunked) is counted as it arrives and refused the moment it passes the limit. Starlette's own
limiter answers in plain text when the length is declared; this one keeps the API's JSON error body.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifelong.system.api.errors import raw_error


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTPExceptions raised while reading a body through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes; send smaller batches")


class BodyLimit:
    """Pure ASGI middleware: 413 as soon as a body is known to be larger than ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.limit = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                msg = BodyTooLarge(self.limit).detail
                await raw_error(send, 413, "BodyTooLargeError", msg, [(b"connection", b"close")])
                return
        size = 0

        async def limited() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)
