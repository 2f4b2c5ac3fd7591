"""A consistent copy of a running embedded deployment: ``lifelong backup DEST``.

The SQLite store is copied with SQLite's online backup API (one read transaction, so a server and a
worker may keep writing: the copy is the database as of one instant), then every version that copy
registers gets its artifact copied and re-hashed against the registered sha256. Predictions the
server answered while the store could not write (``unrecorded/``) and the token come along, so the
copy is a data directory: restoring is serving it (``lifelong up --data-dir DEST``).

Everything is written under ``DEST.partial`` (marked as a backup's, one backup at a time) and renamed
to ``DEST`` at the end: a backup that was killed or failed leaves no directory that looks complete, and
the next one removes only such a leftover. The copy holds no leases (its worker starts free). An
artifact missing or altered in the source is copied as it is and reported, so one damaged old version
does not block every backup. A PostgreSQL store is copied into the backup as an SQLite store, every
table read from one snapshot (``Store.copy_into``, ``lifelong migrate``'s copy): the backup is an
embedded data directory, served as it is or migrated back into a PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from lifelong.errors import ConfigError, RegistryError, StoreError
from lifelong.system.backlog import JOURNAL_DIR
from lifelong.system.registry import Registry, hash_artifact
from lifelong.system.settings import TOKEN_FILE
from lifelong.system.store import SQLITE_FILE, Store, leases

MARKER = ".lifelong-backup-partial"  # in DEST.partial until it is complete: only such a leftover is removed


@dataclass(frozen=True)
class BackupReport:
    """What the copy holds, for the command's summary."""

    path: Path
    rows: dict[str, int]  # table -> rows copied
    versions: list[int]  # versions whose artifacts were copied
    damaged: list[str]  # versions whose artifact was missing or altered in the source, copied as they are
    seconds: float


def backup(store: Store, registry: Registry, dest: str | Path) -> BackupReport:
    """Copy ``store`` (into an SQLite store, whatever its engine) and the artifacts its copy registers
    into ``dest``, a new directory."""
    start = time.perf_counter()
    dest = Path(dest).resolve()
    if dest.exists() or dest.is_symlink():
        raise ConfigError(
            f"backup destination {dest} exists; name a new directory (for a mount point, a directory inside it)"
        )
    partial = dest.with_name(dest.name + ".partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(dest):
            _clear_leftover(partial)
            _clear_dead_siblings(dest.parent)
            partial.mkdir()
            (partial / MARKER).write_text("a backup being written by lifelong; removed when it completes\n")
            try:
                rows, versions, damaged = _copy(store, registry, partial)
                (partial / MARKER).unlink()
                partial.rename(dest)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
    except (OSError, sqlite3.Error) as e:  # a full disk, a file size limit, no permission
        raise StoreError(f"backup to {dest} failed, nothing was kept: {e}") from e
    return BackupReport(dest, rows, versions, damaged, time.perf_counter() - start)


@contextlib.contextmanager
def _exclusive(dest: Path) -> Iterator[None]:
    """One backup at a time into ``dest``'s directory (a lock on the directory itself: no lock file to
    leave behind, or to take from a user): another one removing the first one's partial copy made its
    "successful" backup an empty store (a cron job beside a manual run)."""
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another backup into {dest.parent} is running; wait for it, or back up into another directory"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _clear_dead_siblings(parent: Path) -> None:
    """Remove what killed backups into ``parent`` under other names left: under the directory's lock no
    other backup is writing there, so a marked ``*.partial`` is a dead one's (with dated names, as
    ``/backups/2026-12-07``, the same name never came back to clean it, and they piled up)."""
    for leftover in parent.glob("*.partial"):
        if leftover.is_dir() and not leftover.is_symlink() and (leftover / MARKER).is_file():
            shutil.rmtree(leftover, ignore_errors=True)


def _clear_leftover(partial: Path) -> None:
    """Remove what a killed backup left, and only that: a directory of that name without the marker
    is someone's, never deleted."""
    if not (partial.exists() or partial.is_symlink()):
        return
    if partial.is_dir() and not partial.is_symlink() and (partial / MARKER).is_file():
        shutil.rmtree(partial)
        return
    raise ConfigError(
        f"{partial} exists and was not left by a backup; move it away, or name another directory"
    )


def _copy(store: Store, registry: Registry, partial: Path) -> tuple[dict[str, int], list[int], list[str]]:
    """The database, then each artifact its copy registers, then the journal and token: rows per table,
    versions copied, and the damaged ones among them."""
    target = partial / SQLITE_FILE  # named, not found: LIFELONG_DB_URL (the live store) must not be opened
    if store.engine.dialect.name == "sqlite":
        _copy_database(store, target)
    with Store(f"sqlite:///{target}", data_dir=partial) as copy:
        if store.engine.dialect.name != "sqlite":
            store.copy_into(copy)
        with copy.transaction() as conn:  # the original's worker holds these, not the copy's
            conn.execute(sa.delete(leases))
        copied = Registry(copy, artifacts_dir=partial / "artifacts")
        versions, damaged = [], []
        serving: dict[int, list[str]] = {}  # a damaged version an alias points at is named so (the champion)
        for alias, state in copied.aliases().items():
            serving.setdefault(state.version, []).append(alias)
        for record in copied.versions():  # ready ones: a collected version has no artifact to copy
            origin = registry.artifacts_dir / record.path.name
            label = f"v{record.version}" + (
                f" ({', '.join(serving[record.version])})" if record.version in serving else ""
            )
            if not origin.is_dir():
                damaged.append(f"{label}: missing at {origin}")
                continue
            shutil.copytree(origin, record.path)
            if hash_artifact(record.path) != record.sha256:
                if hash_artifact(origin) == record.sha256:  # the source is sound: the copy went wrong
                    raise RegistryError(
                        f"the copy of v{record.version} does not match its sha256; nothing was kept"
                    )
                damaged.append(f"{label}: {origin} does not match its registered sha256")
            versions.append(record.version)
        rows = _row_counts(copy)
    for name in (JOURNAL_DIR, TOKEN_FILE):
        path = store.data_dir / name
        if path.is_dir():
            shutil.copytree(path, partial / name)
        elif path.is_file():
            shutil.copy2(path, partial / name)  # the token keeps its owner-only mode
    return rows, versions, damaged


def _copy_database(store: Store, target: Path) -> None:
    """SQLite's online backup: the whole database in one step, as of one read transaction."""
    raw = store.engine.raw_connection()
    try:
        source = raw.driver_connection
        assert isinstance(source, sqlite3.Connection)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        raw.close()


def _row_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        return {
            t: int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one())
            for t in tables
        }
