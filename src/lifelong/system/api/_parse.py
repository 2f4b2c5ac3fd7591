"""The JSON parsing done in the helper process of :mod:`lifelong.system.api.body` (kept tiny: the
helper imports only this module, json and NumPy)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import numpy as np


def parse_body(body: bytes) -> tuple[str, Any]:
    """``("ok", document)`` with a rectangular numeric ``inputs`` turned into an array (exactly
    what :func:`~lifelong.system.schemas.to_array` makes of it first), or ``("invalid", (message,
    position))``: a JSONDecodeError does not survive pickling."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as err:
        return "invalid", (err.msg, err.pos)
    if isinstance(doc, dict) and isinstance(doc.get("inputs"), list):
        try:
            arr = np.asarray(doc["inputs"])
        except (ValueError, OverflowError):  # ragged or odd: leave it to the route's error message
            return "ok", doc
        if arr.dtype.kind in "fiu" and arr.ndim >= 2:
            doc["inputs"] = arr
    return "ok", doc


def watch_parent(parent: int) -> None:
    """Initializer of the helper: exit once the server that started it is gone, even after a SIGKILL
    (the pool's own shutdown never runs then, and the helper would be left an orphan). A Ctrl-C
    reaches the whole process group; the server stops the helper itself, so the helper ignores
    SIGINT (it printed a KeyboardInterrupt traceback from its queue read at every Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="lifelong-parent-watch", daemon=True).start()


def ready() -> bool:
    """A no-op the server runs once at start-up, so the helper is spawned before the first big body."""
    return True
