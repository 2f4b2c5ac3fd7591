"""Drive a pure ASGI middleware by hand: one request in, the messages it sent back out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message


def call(app: ASGIApp, path: str = "/predict", method: str = "POST", headers: dict[str, str] | None = None,
         chunks: tuple[bytes, ...] = (b"{}",)) -> tuple[list[Message], list[bytes]]:  # fmt: skip
    """``(sent, read)``: the messages ``app`` sent and the body chunks anything read from ``receive``."""
    scope = {"type": "http", "path": path, "method": method,
             "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]}  # fmt: skip
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    sent: list[Message] = []
    read: list[bytes] = []

    async def receive() -> Message:
        message = pending.pop(0)
        read.append(message["body"])
        return message

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, read


def status_and_error(sent: list[Message]) -> tuple[int, dict[str, Any]]:
    """The status and the ``error`` object of a JSON error response."""
    return sent[0]["status"], json.loads(sent[1]["body"])["error"]


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """The app behind the middleware: reads the whole body, answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})
