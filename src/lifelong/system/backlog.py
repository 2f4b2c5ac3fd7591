"""Predictions answered while the store could not record them, kept in memory to record later.

Feedback names a prediction by its id, so an answer that was never recorded turns its label into a
404: a database restart or a full disk would lose the labels of everything served meanwhile. The
server keeps such batches (bounded: beyond ``limit`` rows the oldest are dropped and counted) and
writes them, with the time they were answered, ahead of the next write once the store takes writes
again. A process that exits meanwhile loses what it held.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

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
