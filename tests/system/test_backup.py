"""`lifelong backup`: a consistent copy of a serving data directory, restorable by serving it."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch

from lifelong.checks import toy_data
from lifelong.errors import ConfigError
from lifelong.learn import Learner
from lifelong.system.backup import MARKER, BackupReport, backup
from lifelong.system.registry import Registry
from lifelong.system.store import Store
from lifelong.system.trainer import bootstrap


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Store, Registry]]:
    split = toy_data(per_class=90)
    with Store(data_dir=tmp_path / "live") as store:
        registry = Registry(store)
        bootstrap(store, registry, split.train, n_classes=4, epochs=1, lr=0.05, batch_size=16)
        (tmp_path / "live" / "token").write_text("secret")
        yield store, registry


def _backup_while_writing(
    store: Store, registry: Registry, dest: Path, x: torch.Tensor, n: int
) -> BackupReport:
    """A backup taken while a server's writes go on (``n`` single samples at most, bounded)."""
    stop = threading.Event()

    def write() -> None:
        for i in range(n):
            if stop.is_set():
                return
            store.add_samples(x[i % len(x) : i % len(x) + 1], torch.tensor([i % 4]))

    writer = threading.Thread(target=write)
    writer.start()
    try:
        return backup(store, registry, dest)
    finally:
        stop.set()
        writer.join()


def test_a_backup_taken_while_samples_arrive_is_a_consistent_restorable_data_dir(
    served: tuple[Store, Registry], tmp_path: Path
) -> None:
    store, registry = served
    x = toy_data(per_class=90).test.x
    before = len(store.samples().ids)
    report = _backup_while_writing(store, registry, tmp_path / "copy", x, 200)
    after = len(store.samples().ids)
    with sqlite3.connect(tmp_path / "copy" / "lifelong.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert before <= report.rows["samples"] <= after and report.versions == [1]
    assert (tmp_path / "copy" / "token").read_text() == "secret"
    assert not (tmp_path / "copy.partial").exists()
    with Store(data_dir=tmp_path / "copy") as copy:  # restoring is opening (serving) the copy
        restored = Registry(copy)
        assert restored.alias("champion") == 1
        restored.verify(1)
        assert len(copy.samples().ids) == report.rows["samples"]
        ours, theirs = Learner.load(registry.get(1).path), Learner.load(restored.get(1).path)
        assert torch.equal(ours.predict(x), theirs.predict(x))


def test_destinations_in_use_are_refused_and_only_a_backups_own_leftover_is_removed(
    served: tuple[Store, Registry], tmp_path: Path
) -> None:
    store, registry = served
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    (tmp_path / "empty").mkdir()  # an empty mount point: the rename at the end failed after the whole copy
    for taken in ("used", "empty"):
        with pytest.raises(ConfigError, match="exists; name a new directory"):
            backup(store, registry, tmp_path / taken)
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
    (tmp_path / "mine.partial").mkdir()  # someone's directory of that name was deleted
    (tmp_path / "mine.partial" / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match="was not left by a backup"):
        backup(store, registry, tmp_path / "mine")
    assert (tmp_path / "mine.partial" / "notes.txt").read_text() == "precious"
    (tmp_path / "killed.partial").mkdir()  # a killed backup's: marked, so removed by the next
    (tmp_path / "killed.partial" / MARKER).write_text("")
    assert backup(store, registry, tmp_path / "killed").versions == [1]
    (tmp_path / "2026-12-06.partial").mkdir()  # killed under another (dated) name: was never removed
    (tmp_path / "2026-12-06.partial" / MARKER).write_text("")
    assert backup(store, registry, tmp_path / "2026-12-07").versions == [1]
    assert not (tmp_path / "2026-12-06.partial").exists()
    assert (tmp_path / "mine.partial" / "notes.txt").read_text() == "precious"  # unmarked: someone's
    (tmp_path / "busy.partial.lock").write_text("a user's file of that name")  # a lock file's old name
    fd = os.open(tmp_path, os.O_RDONLY)  # another backup into the same directory
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another backup into .* is running"):
            backup(store, registry, tmp_path / "busy")
    finally:
        os.close(fd)
    assert not (tmp_path / "busy").exists()
    assert backup(store, registry, tmp_path / "busy").versions == [1]
    assert (tmp_path / "busy.partial.lock").read_text() == "a user's file of that name"


def test_a_damaged_source_artifact_is_copied_and_reported_and_leases_stay_behind(
    served: tuple[Store, Registry], tmp_path: Path
) -> None:
    """One altered old version blocked every backup; the copy's worker read the original's lease."""
    store, registry = served
    store.acquire_lease("worker", "host:1:abc", 60.0)
    manifest = registry.get(1).path / "manifest.json"
    manifest.write_text(manifest.read_text() + " ")  # the live artifact no longer matches its hash
    report = backup(store, registry, tmp_path / "copy")
    assert (
        report.versions == [1]
        and report.damaged
        == [
            f"v1 (champion): {registry.get(1).path} does not match its registered sha256"  # was "v1": which served?
        ]
    )
    with Store(data_dir=tmp_path / "copy") as copy:
        assert copy.lease("worker") is None and store.lease("worker") is not None


def test_the_backup_command_prints_what_it_copied(served: tuple[Store, Registry], tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "lifelong",
        "backup",
        "--data-dir",
        str(tmp_path / "live"),
        str(tmp_path / "b"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 model versions to" in done.stdout
    assert (
        f"restore from a copy of it (cp -a {tmp_path / 'b'} DIR" in done.stdout
    )  # the backup stays as it was
    assert "then lifelong up --data-dir DIR with the original's" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert (
        again.returncode == 2
        and "exists; name a new directory" in again.stderr
        and "Traceback" not in again.stderr
    )


@pytest.mark.postgres
def test_a_postgresql_store_is_backed_up_into_a_servable_sqlite_data_dir(pg_url: str, tmp_path: Path) -> None:
    """Was: `lifelong backup` refused a PostgreSQL store ("back up ... with pg_dump first"), and an
    operator restored by hand (createdb, pg_restore, the dump's stale worker lease). Now every table is
    read from one snapshot while samples arrive, and the copy serves as it is, or migrates back."""
    from lifelong.system.migrate import migrate

    split = toy_data(per_class=90)
    with Store(pg_url, data_dir=tmp_path / "live") as store:
        registry = Registry(store)
        bootstrap(store, registry, split.train, n_classes=4, epochs=1, lr=0.05, batch_size=16)
        store.add_samples(split.test.x[:50], split.test.y[:50])
        with pytest.MonkeyPatch.context() as env:  # the live store's URL exported, as the replicas' recipe
            env.setenv("LIFELONG_DB_URL", pg_url)  # does: the copy is opened by its own path (was an assert)
            report = _backup_while_writing(store, registry, tmp_path / "copy", split.test.x, 100)
        assert report.versions == [1] and len(split.train.x) + 50 <= report.rows["samples"]
    with Store(data_dir=tmp_path / "copy") as copy:  # restoring is serving the copy
        restored = Registry(copy)
        assert restored.alias("champion") == 1
        restored.verify(1)
        assert len(copy.samples().ids) == report.rows["samples"]
        new = copy.add_samples(split.test.x[:1], torch.tensor([0]))[0]
        assert new > max(copy.samples(limit=10**6).ids[:-1])  # ids go on after the copied ones
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:  # a fresh database to move it back into
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    with Store(data_dir=tmp_path / "copy") as copy, Store(pg_url, data_dir=tmp_path / "copy") as target:
        migrate(copy, target)
    with Store(pg_url, data_dir=tmp_path / "copy") as back:
        assert Registry(back).alias("champion") == 1 and len(back.samples().ids) == report.rows["samples"] + 1
