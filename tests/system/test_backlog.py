"""The backlog of predictions answered while the store could not write."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from lifelong.system.backlog import Backlog, Served, _save, adopt_journals


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


def test_a_journal_is_taken_back_whole_once_its_server_let_go_and_by_exactly_one_claimer(
    tmp_path: Path,
) -> None:
    backlog = Backlog(limit=100, journal=tmp_path)
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
    assert backlog.journal is not None and len(list(backlog.journal.glob("*.npz"))) == 2  # on disk as kept
    other = Backlog(limit=100, journal=tmp_path)
    assert adopt_journals(tmp_path, other) == 0  # its server still runs (holds the lock): not taken
    journal = backlog.journal
    assert backlog.close() == journal  # stopped: what it still holds stays for the next server
    taken = Backlog(limit=100, journal=tmp_path)
    assert adopt_journals(tmp_path, taken) == 3
    assert adopt_journals(tmp_path, other) == 0 and len(other) == 0  # taken once
    assert list(tmp_path.iterdir()) == [taken.journal]  # the old journal is gone, its batches in the taker's
    fields = [
        (s.ts, s.prediction_ids, s.request_ids, s.versions, s.variants, s.labels, s.scores)
        for s, _ in taken._items
    ]
    assert fields == [first, second]
    assert taken.journal is not None and len(list(taken.journal.glob("*.npz"))) == 2  # kept before removed
    assert np.array_equal(taken._items[0][0].x, x[:2]) and np.array_equal(taken._items[1][0].x, x[2:])


def test_a_batch_leaves_the_journal_when_recorded_or_dropped_and_an_empty_journal_goes_at_close(
    tmp_path: Path,
) -> None:
    backlog = Backlog(limit=5, journal=tmp_path)
    for tag in "abc":
        backlog.add(_served(tag))  # a dropped for room
    assert backlog.journal is not None
    journal = backlog.journal
    assert len(list(journal.glob("*.npz"))) == 2
    backlog.flush(lambda s: None)
    assert list(journal.glob("*.npz")) == []
    assert backlog.close() is None and list(tmp_path.iterdir()) == []


def test_a_journal_that_cannot_be_written_still_keeps_the_batch_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "unrecorded"
    blocked.write_text("a file where the directory should be")
    backlog = Backlog(limit=100, journal=blocked)
    backlog.add(_served("a"))  # must not fail the answer it is called for
    assert len(backlog) == 2 and backlog.journal is None
    assert "kept in memory only" in caplog.text


def test_a_server_that_cannot_write_its_own_journal_leaves_a_dead_servers_journal_in_place(
    tmp_path: Path,
) -> None:
    """Was: the adopter kept the batches in memory only and removed the dead server's files, so a disk
    full at that moment and a second kill lost them; now they stay on disk until a later poll can
    take them."""
    dead = Backlog(limit=100, journal=tmp_path / "unrecorded")
    dead.add(_served("a"))
    dead.add(_served("b"))
    journal = dead.close()
    _save(tmp_path / "unrecorded" / "5-1.npz", [_served("c")])  # an earlier version's spill beside it
    blocked = tmp_path / "full"
    blocked.write_text("a file where the directory should be")
    full = Backlog(limit=100, journal=blocked)
    assert adopt_journals(tmp_path / "unrecorded", full) == 0 and len(full) == 0
    assert journal is not None and len(list(journal.glob("*.npz"))) == 2
    assert (tmp_path / "unrecorded" / "5-1.npz").exists()
    taker = Backlog(limit=100, journal=tmp_path / "unrecorded")
    assert adopt_journals(tmp_path / "unrecorded", taker) == 6  # a later poll with room takes all


def test_an_earlier_versions_spill_and_an_unreadable_file_are_handled(tmp_path: Path) -> None:
    _save(tmp_path / "5-1.npz", [_served("a"), _served("b", n=1)])
    (tmp_path / "0-1.npz").write_bytes(b"not an archive")  # sorts first
    taken = Backlog(limit=100)
    assert adopt_journals(tmp_path, taken) == 3
    assert [s.prediction_ids for s, _ in taken._items] == [["a0", "a1"], ["b0"]] and taken._items[0][
        0
    ].x is None
    assert [p.name for p in tmp_path.iterdir()] == ["0-1.npz.unreadable"]  # kept for a person, not retried


def test_a_journal_that_cannot_be_locked_leaves_no_directory_and_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import os

    def refuse(fd: int, op: int) -> None:
        raise OSError("no locks on this filesystem")

    opened: list[int] = []
    real_open = os.open
    monkeypatch.setattr(fcntl, "flock", refuse)
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(real_open(*a, **k)) or opened[-1])
    backlog = Backlog(limit=100, journal=tmp_path)
    backlog.add(_served("a"))  # kept in memory, said once
    assert len(backlog) == 2 and backlog.journal is None and list(tmp_path.iterdir()) == []
    for fd in opened:
        with pytest.raises(OSError):
            os.fstat(fd)  # closed
