"""The backlog of predictions answered while the store could not write."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from lifelong.system.backlog import Backlog, Served, claim_spilled


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


def test_a_spill_is_taken_back_whole_by_exactly_one_claimer(tmp_path: Path) -> None:
    backlog = Backlog(limit=100)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    first = (
        1.5,
        ["a0", "a1"],
        ["r0", "a1"],
        [1, 2],
        ["champion", "canary"],
        [0, 3],
        [[0.9, 0.1], [0.1, 0.2, 0.3, 0.4]],
    )  # fmt: skip  (a canary may score more classes)
    second = (2.5, ["b0"], ["b0"], [1], ["champion"], [1], [[0.2, 0.8]])
    backlog.add(Served(first[0], x[:2], *first[1:]))
    backlog.add(Served(second[0], x[2:], *second[1:]))
    path = backlog.spill(tmp_path)
    assert path is not None and path.exists() and len(backlog) == 0
    assert backlog.spill(tmp_path) is None  # nothing held: no empty file
    taken = claim_spilled(tmp_path)
    assert claim_spilled(tmp_path) == [] and list(tmp_path.iterdir()) == []  # taken once, files removed
    fields = [
        (s.ts, s.prediction_ids, s.request_ids, s.versions, s.variants, s.labels, s.scores) for s in taken
    ]
    assert fields == [first, second]
    assert np.array_equal(taken[0].x, x[:2]) and np.array_equal(taken[1].x, x[2:])


def test_a_spill_without_inputs_and_an_unreadable_file(tmp_path: Path) -> None:
    backlog = Backlog(limit=100)
    backlog.add(_served("a"))
    backlog.spill(tmp_path)
    (tmp_path / "0-1.npz").write_bytes(b"not an archive")  # sorts first
    taken = claim_spilled(tmp_path)
    assert [s.prediction_ids for s in taken] == [["a0", "a1"]] and taken[0].x is None
    assert [p.name for p in tmp_path.iterdir()] == ["0-1.npz.unreadable"]  # kept for a person, not retried
