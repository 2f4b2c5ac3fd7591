"""The backlog of predictions answered while the store could not write."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from lifelong.system.backlog import Backlog, Served


def _served(tag: str, n: int = 2) -> Served:
    ids = [f"{tag}{i}" for i in range(n)]
    return Served(0.0, None, ids, ids, [1] * n, ["champion"] * n, [0] * n, [[1.0]] * n)


def test_the_oldest_batches_are_dropped_beyond_the_limit_and_counted() -> None:
    backlog = Backlog(limit=5)
    for tag in "abc":
        backlog.add(_served(tag))
    assert len(backlog) == 4 and backlog.dropped == 2
    assert not backlog.holds(["a0"]) and backlog.holds(["zz", "c1"])
    written: list[str] = []
    assert backlog.flush(lambda s: written.append(s.prediction_ids[0])) == 4
    assert written == ["b0", "c0"] and len(backlog) == 0  # oldest first


def test_a_transient_failure_keeps_the_batch_and_the_rest() -> None:
    backlog = Backlog(limit=100)
    for tag in "ab":
        backlog.add(_served(tag))

    def down(s: Served) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    with pytest.raises(sa.exc.OperationalError):
        backlog.flush(down, transient=(sa.exc.OperationalError,))
    assert len(backlog) == 4 and backlog.dropped == 0 and backlog.holds(["a0", "b1"])


def test_a_batch_that_can_never_be_written_is_dropped_so_the_rest_still_land() -> None:
    """E.g. its ids were committed by a write whose acknowledgement was lost: retrying it forever
    would hold back every later answer."""
    backlog = Backlog(limit=100)
    for tag in "ab":
        backlog.add(_served(tag))
    written: list[str] = []

    def write(s: Served) -> None:
        if s.prediction_ids[0] == "a0":
            raise sa.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
        written.append(s.prediction_ids[0])

    assert backlog.flush(write, transient=(sa.exc.OperationalError,)) == 2
    assert written == ["b0"] and backlog.dropped == 2 and len(backlog) == 0


def test_two_threads_flushing_at_once_write_each_batch_once() -> None:
    backlog = Backlog(limit=1000)
    for i in range(50):
        backlog.add(_served(f"s{i}-", n=1))
    written: list[str] = []
    lock = threading.Lock()

    def write(s: Served) -> None:
        with lock:
            written.append(s.prediction_ids[0])

    threads = [threading.Thread(target=backlog.flush, args=(write,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backlog.flush(write)  # whatever a thread that found another flushing left
    assert sorted(written) == sorted(f"s{i}-0" for i in range(50)) and len(backlog) == 0
