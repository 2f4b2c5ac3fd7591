"""Predictions answered while the store could not record them, kept to record later.

Feedback names a prediction by its id, so an answer that was never recorded turns its label into a
404: a database restart or a full disk would lose the labels of everything served meanwhile. The
server keeps such batches (bounded: beyond ``limit`` rows the oldest are dropped and counted) and
writes them, with the time they were answered, ahead of the next write once the store takes writes
again.

Each kept batch is also on disk from the moment it is kept (a journal: one file per batch in a
directory of ``<data_dir>/unrecorded/`` that this process holds locked), so no way of stopping the
server loses it, SIGKILL included: the next server started on that data directory finds a journal
whose lock nobody holds and takes it back (:func:`adopt_journals`). A batch leaves the journal when
it is recorded or dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
JOURNAL_DIR = "unrecorded"  # in the data directory: answered predictions waiting to be recorded


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

    With a ``journal`` root directory each batch is written there as it is kept (see the module);
    without one (tests, doctests) the backlog lives in memory only.

    >>> b = Backlog(limit=3)
    >>> for i in range(3):
    ...     b.add(Served(0.0, None, [f"p{i}"] * 2, [f"p{i}"] * 2, [1, 1], ["champion"] * 2, [0, 0], [[1.0]] * 2))
    >>> len(b), b.dropped
    (2, 4)
    >>> b.flush(lambda served: None), len(b)
    (2, 0)
    """

    def __init__(self, limit: int, journal: Path | None = None) -> None:
        self.limit = limit
        self.dropped = 0
        self._root = journal
        self._dir: Path | None = None  # this process's journal, made at the first batch kept
        self._lock_fd: int | None = None  # held for the process's life: a live owner's journal is not taken
        self._seq = 0
        self._items: deque[tuple[Served, Path | None]] = deque()  # each batch and its journal file
        self._rows = 0
        self._lock = threading.Lock()  # guards the queue and the journal
        self._flushing = threading.Lock()  # one writer at a time, so no batch is written twice

    def __len__(self) -> int:
        return self._rows

    @property
    def journal(self) -> Path | None:
        """This backlog's own journal directory (None until a batch was kept on disk)."""
        return self._dir

    def holds(self, prediction_ids: list[str]) -> bool:
        """Whether any of ``prediction_ids`` waits here to be recorded."""
        wanted = set(prediction_ids)
        with self._lock:
            return any(not wanted.isdisjoint(s.prediction_ids) for s, _ in self._items)

    def add(self, served: Served) -> None:
        """Keep ``served`` to record later (on disk too, when journaled), dropping the oldest batches
        beyond ``limit`` rows. A journal that cannot be written (a full disk) is logged, and the batch
        is still kept in memory: this runs in the answer's path and must not fail it."""
        with self._lock:
            self._keep(served, self._journal(served))

    def adopt(self, served: Served) -> bool:
        """Keep a batch another server journaled, but only once it is in this backlog's own journal
        (when it has one): False, and nothing kept, when it could not be written, so the caller leaves
        the other journal's file where it is rather than hold its only copy in memory."""
        with self._lock:
            path = self._journal(served)
            if path is None and self._root is not None:
                return False
            self._keep(served, path)
            return True

    def _keep(self, served: Served, path: Path | None) -> None:
        self._items.append((served, path))
        self._rows += len(served)
        while self._rows > self.limit:
            old, oldpath = self._items.popleft()
            self._rows -= len(old)
            self.dropped += len(old)
            _forget(oldpath)

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
                    write(head[0])
                    written += len(head[0])
                except transient:
                    raise
                except Exception as err:
                    log.error("dropped %d predictions that could not be recorded late: %s", len(head[0]), err)
                    with self._lock:
                        self.dropped += len(head[0])
                with self._lock:
                    if self._items and self._items[0] is head:  # else dropped for room meanwhile
                        self._items.popleft()
                        self._rows -= len(head[0])
                        _forget(head[1])
        finally:
            self._flushing.release()

    def close(self) -> Path | None:
        """Let go of the journal: the directory holding what is still unrecorded (the next server takes
        it back), or None when nothing is (the empty journal is removed)."""
        with self._lock:
            held, directory, fd = bool(self._items), self._dir, self._lock_fd
            self._dir, self._lock_fd = None, None
        if directory is not None and not held:
            shutil.rmtree(directory, ignore_errors=True)
        if fd is not None:
            os.close(fd)  # after the removal, so no server takes an empty journal meanwhile
        return directory if held else None  # held only in memory (the journal failed): None too

    def _journal(self, served: Served) -> Path | None:
        """Write ``served`` to its own journal file (written whole, then renamed); None without a journal."""
        if self._root is None:
            return None
        try:
            if self._dir is None:
                self._dir, self._lock_fd = _new_journal(self._root)
            self._seq += 1
            path = self._dir / f"{self._seq:012d}.npz"
            _save(path, [served])
        except OSError as err:
            log.error("could not keep %d unrecorded predictions on disk in %s (%s): they are kept in memory "
                      "only and lost if this server is killed", len(served), self._root, err)  # fmt: skip
            return None
        return path


def _new_journal(root: Path) -> tuple[Path, int]:
    """A journal directory and its held lock: made under a hidden name, locked, then shown, so it is
    never taken half-made; a failure on the way leaves neither a directory nor an open descriptor."""
    name = f"{time.time():.6f}-{os.getpid()}"
    making = root / f".{name}"
    making.mkdir(parents=True)
    fd: int | None = None
    try:
        fd = os.open(making / "lock", os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return making.rename(root / name), fd
    except OSError:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(making, ignore_errors=True)
        raise


def adopt_journals(directory: Path, into: Backlog) -> int:
    """Move into ``into`` the batches that servers which stopped (however they stopped) left in
    ``directory``, oldest first, and return how many rows. Journals whose owner still runs are left.

    A journal is taken under its lock, so two servers starting at once never both take (and record
    twice) the same predictions; each batch is kept by ``into`` (in its own journal) before the old
    file is removed. A file that cannot be read is left, renamed ``*.unreadable``, and logged. Files
    straight under ``directory`` are spills of earlier versions (several batches each), taken too.
    """
    if not directory.is_dir():
        return 0
    rows = 0
    own = into.journal
    for journal in sorted(
        p for p in directory.iterdir() if p.is_dir() and p != own and not p.name.startswith(".")
    ):
        try:
            fd = os.open(journal / "lock", os.O_RDWR)
        except FileNotFoundError:  # being made or removed by its owner
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its server still runs
            os.close(fd)
            continue
        try:
            taken, whole = _take(sorted(journal.glob("*.npz")), into)
            rows += taken
            if whole and not any(journal.glob("*.unreadable")):
                shutil.rmtree(journal, ignore_errors=True)
        finally:
            os.close(fd)
        if not whole:
            return rows  # this server's journal cannot be written: the rest stays for a later poll
    for path in sorted(directory.glob("*.npz")):  # an earlier version's spill
        mine = path.with_name(f"{path.name}.claimed-{os.getpid()}")
        try:
            os.replace(path, mine)
        except FileNotFoundError:  # another server took it first
            continue
        taken, whole = _take([mine], into, shown=path)
        rows += taken
        if not whole:
            os.replace(mine, path)  # for a later poll (its batches already kept are recognised then)
            return rows
    return rows


def _take(paths: list[Path], into: Backlog, shown: Path | None = None) -> tuple[int, bool]:
    """Rows moved into ``into`` from ``paths`` (each removed once all its batches are kept), and whether
    all were: False as soon as ``into`` cannot keep a batch on disk (that file and the rest are left)."""
    rows = 0
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as z:
                batches = _batches(z)
        except Exception as err:
            os.replace(path, (shown or path).with_name((shown or path).name + ".unreadable"))
            log.error("could not read the unrecorded predictions in %s (%s); left as *.unreadable", shown or path,
                      err)  # fmt: skip
            continue
        for served in batches:
            if not into.adopt(served):
                return rows, False
            rows += len(served)
        path.unlink()
    return rows, True


def _forget(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _save(path: Path, items: list[Served]) -> None:
    """A NumPy archive without pickles: per-row columns (ids and variants as text, scores as JSON, since
    a canary may score more classes than the champion), the inputs when kept, and each batch's time and
    size so that a reader rebuilds the batches as answered. Written to a temporary name, flushed to the
    disk and renamed, so a reader never sees half a file."""
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
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **columns)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def journaled_elsewhere(directory: Path, own: Path | None) -> bool:
    """Whether a server other than the one journaling in ``own`` holds unrecorded predictions in
    ``directory`` (so a prediction id the store lacks may yet arrive)."""
    try:
        return any(
            d.is_dir() and not d.name.startswith(".") and d != own and any(d.glob("*.npz"))
            for d in directory.iterdir()
        )
    except OSError:  # no such directory: nothing journaled
        return False
