"""Large JSON bodies are parsed in a helper process, so parsing never stalls the event loop.

``json.loads`` of an 8 MB batch takes most of a second of CPU and holds the GIL the whole time, so a
thread would not help: every other request (``/healthz`` included) would wait behind it. Bodies over
``OFFLOAD_BYTES`` therefore go to a one-process pool that parses them and hands back the numeric
``inputs`` as one NumPy array (cheap to send back; a list of a million floats is not). Smaller bodies
are parsed inline, where a process hop would cost more than it saves. Routes opt in with
``APIRouter(route_class=OffloadedJSONRoute)``, FastAPI's documented hook for a custom ``Request``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from lifelong.system.api._parse import parse_body, ready, watch_parent

log = logging.getLogger(__name__)
OFFLOAD_BYTES = 1_000_000


class JsonParser:
    """The helper process (started on first use, spawned: the server's threads are not forked)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Spawn the helper now (in the background), not when the first big body arrives."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=watch_parent, initargs=(os.getpid(),))  # fmt: skip
            self._pool.submit(ready)

    async def parse(self, body: bytes) -> Any:
        self.start()
        assert self._pool is not None
        try:
            kind, value = await asyncio.get_running_loop().run_in_executor(self._pool, parse_body, body)
        except BrokenProcessPool:  # the helper died (e.g. out of memory): start a new one next time
            log.warning("the JSON parsing process died; parsing this body inline")
            self._pool = None
            kind, value = parse_body(body)
        if kind == "invalid":
            msg, pos = value
            raise json.JSONDecodeError(msg, "", pos)
        return value

    def close(self) -> None:
        """Stop the helper and wait for it (at most the one body it is parsing): the pool's queues hold
        multiprocessing locks, unlinked only once its thread has ended and let go of them. Without the
        wait, `lifelong serve` (which uvicorn ends by re-raising SIGTERM, with no clean-up after it)
        left them behind and the resource tracker warned of leaked semaphores at every stop."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class OffloadedJSONRequest(Request):
    """``request.json()`` parses bodies over ``OFFLOAD_BYTES`` in the helper process."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            parser: JsonParser | None = getattr(self.app.state, "json_parser", None)
            if len(body) > OFFLOAD_BYTES and parser is not None:
                self._json = await parser.parse(body)
            else:
                self._json = json.loads(body)
        return self._json


class OffloadedJSONRoute(APIRoute):
    """A route whose JSON body is read through :class:`OffloadedJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(OffloadedJSONRequest(request.scope, request.receive))

        return route
