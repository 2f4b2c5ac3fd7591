"""Predictions answered while the store could not record them, kept in memory to record later.

Feedback names a prediction by its id, so an answer that was never recorded turns its label into a
404: a database restart or a full disk would lose the labels of everything served meanwhile. The
server keeps such batches (bounded: beyond ``limit`` rows the oldest are dropped and counted) and
writes them, with the time they were answered, ahead of the next write once the store takes writes
again. A server that stops before then spills what it holds to a file in ``<data_dir>/unrecorded/``
(:meth:`Backlog.spill`), and the next server started on that directory takes it back
(:func:`claim_spilled`): a rolling restart during a database outage loses nothing. Only a process
killed outright (SIGKILL, power) loses what it held.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """One micro-batch as the server answered it: what :meth:`Store.record_served` writes."""

    ts: float
    x: np.ndarray | None  # the inputs, None when inputs are not stored
    prediction_ids: list[str]
    request_ids: list[str]
    versions: list[int]
    variants: list[str]
    labels: list[int]
    scores: list[list[float]]

    def __len__(self) -> int:
        return len(self.prediction_ids)


class Backlog:
    """Unrecorded batches, oldest first; thread-safe. ``dropped`` counts rows given up for room.

    >>> b = Backlog(limit=3)
    >>> for i in range(3):
    ...     b.add(Served(0.0, None, [f"p{i}"] * 2, [f"p{i}"] * 2, [1, 1], ["champion"] * 2, [0, 0], [[1.0]] * 2))
    >>> len(b), b.dropped
    (2, 4)
    >>> b.flush(lambda served: None), len(b)
    (2, 0)
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.dropped = 0
        self._items: deque[Served] = deque()
        self._rows = 0
        self._lock = threading.Lock()  # guards the queue
        self._flushing = threading.Lock()  # one writer at a time, so no batch is written twice

    def __len__(self) -> int:
        return self._rows

    def holds(self, prediction_ids: list[str]) -> bool:
        """Whether any of ``prediction_ids`` waits here to be recorded."""
        wanted = set(prediction_ids)
        with self._lock:
            return any(not wanted.isdisjoint(s.prediction_ids) for s in self._items)

    def add(self, served: Served) -> None:
        """Keep ``served`` to record later, dropping the oldest batches beyond ``limit`` rows."""
        with self._lock:
            self._items.append(served)
            self._rows += len(served)
            while self._rows > self.limit:
                old = self._items.popleft()
                self._rows -= len(old)
                self.dropped += len(old)

    def flush(
        self, write: Callable[[Served], object], transient: tuple[type[BaseException], ...] = ()
    ) -> int:
        """Write the kept batches oldest first and return the rows written. A ``transient`` failure (the
        store is down or full) propagates and keeps that batch and the rest; any other drops that batch
        (counted and logged: it would fail forever and hold back the rest). Another thread flushing: 0."""
        if not self._flushing.acquire(blocking=False):
            return 0
        written = 0
        try:
            while True:
                with self._lock:
                    if not self._items:
                        return written
                    head = self._items[0]
                try:
                    write(head)
                    written += len(head)
                except transient:
                    raise
                except Exception as err:
                    log.error("dropped %d predictions that could not be recorded late: %s", len(head), err)
                    with self._lock:
                        self.dropped += len(head)
                with self._lock:
                    if self._items and self._items[0] is head:  # else dropped for room meanwhile
                        self._items.popleft()
                        self._rows -= len(head)
        finally:
            self._flushing.release()

    def spill(self, directory: Path) -> Path | None:
        """Write every batch still held to one new file in ``directory`` and forget them; None if none.

        A NumPy archive without pickles: per-row columns (ids and variants as text, scores as JSON, since
        a canary may score more classes than the champion), the inputs when kept, and each batch's time
        and size so that :func:`claim_spilled` rebuilds the batches as answered. Written to a temporary
        name and renamed, so a reader never sees half a file.
        """
        with self._lock:
            items = list(self._items)
        if not items:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        columns: dict[str, Any] = {  # Any: numpy's stubs type savez's keywords as its own options
            "ts": np.array([s.ts for s in items], dtype=np.float64),
            "sizes": np.array([len(s) for s in items], dtype=np.int64),
            "prediction_ids": np.array([p for s in items for p in s.prediction_ids], dtype=str),
            "request_ids": np.array([r for s in items for r in s.request_ids], dtype=str),
            "versions": np.array([v for s in items for v in s.versions], dtype=np.int64),
            "variants": np.array([v for s in items for v in s.variants], dtype=str),
            "labels": np.array([v for s in items for v in s.labels], dtype=np.int64),
            "scores": np.array([json.dumps(sc) for s in items for sc in s.scores], dtype=str),
        }
        if all(s.x is not None for s in items):
            columns["x"] = np.concatenate([s.x for s in items if s.x is not None])
        path = directory / f"{time.time():.6f}-{os.getpid()}.npz"
        tmp = path.with_name("." + path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **columns)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        with self._lock:
            for served in items:
                if self._items and self._items[0] is served:
                    self._items.popleft()
                    self._rows -= len(served)
        return path


def claim_spilled(directory: Path) -> list[Served]:
    """Take the batches earlier servers spilled to ``directory``, oldest file first, and remove the files.

    Each file is first renamed to a name only this process uses, so two servers starting at once never
    both take (and record twice) the same predictions. A file that cannot be read is left, renamed
    ``*.unreadable``, and logged.
    """
    if not directory.is_dir():
        return []
    out: list[Served] = []
    for path in sorted(directory.glob("*.npz")):
        mine = path.with_name(f"{path.name}.claimed-{os.getpid()}")
        try:
            os.replace(path, mine)
        except FileNotFoundError:  # another server took it first
            continue
        try:
            with np.load(mine, allow_pickle=False) as z:
                out.extend(_batches(z))
        except Exception as err:
            os.replace(mine, path.with_name(path.name + ".unreadable"))
            log.error("could not read the spilled predictions in %s (%s); left as *.unreadable", path, err)
            continue
        mine.unlink()
    return out


def _batches(z: Any) -> list[Served]:
    x = z["x"] if "x" in z.files else None
    out, start = [], 0
    for ts, n in zip(z["ts"].tolist(), z["sizes"].tolist()):
        rows = slice(start, start + n)
        out.append(Served(
            ts, None if x is None else x[rows], z["prediction_ids"][rows].tolist(), z["request_ids"][rows].tolist(),
            z["versions"][rows].tolist(), z["variants"][rows].tolist(), z["labels"][rows].tolist(),
            [json.loads(sc) for sc in z["scores"][rows].tolist()],
        ))  # fmt: skip
        start += n
    return out
