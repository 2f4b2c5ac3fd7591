"""A consistent copy of a running embedded deployment: ``lifelong backup DEST``.

The SQLite store is copied with SQLite's online backup API (one read transaction, so a server and a
worker may keep writing: the copy is the database as of one instant), then every version that copy
registers gets its artifact copied and re-hashed against the registered sha256. Predictions the
server answered while the store could not write (``unrecorded/``) and the token come along, so the
copy is a data directory: restoring is serving it (``lifelong up --data-dir DEST``).

Everything is written under ``DEST.partial`` and renamed to ``DEST`` at the end: a backup that was
killed or failed leaves no directory that looks complete. A PostgreSQL store is backed up by its own
tools (``pg_dump``), the artifacts directory by copying it after the dump.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from lifelong.errors import ConfigError, RegistryError
from lifelong.system.registry import Registry
from lifelong.system.settings import TOKEN_FILE
from lifelong.system.store import Store, sqlite_file

UNRECORDED = "unrecorded"  # the server's journal of answered predictions waiting to be recorded


@dataclass(frozen=True)
class BackupReport:
    """What the copy holds, for the command's one-line summary."""

    path: Path
    rows: dict[str, int]  # table -> rows copied
    versions: list[int]  # versions whose artifacts were copied and verified
    seconds: float


def backup(store: Store, registry: Registry, dest: str | Path) -> BackupReport:
    """Copy ``store`` (SQLite) and the artifacts its copy registers into the new directory ``dest``."""
    start = time.perf_counter()
    dest = Path(dest)
    if store.engine.dialect.name != "sqlite":
        raise ConfigError(
            "lifelong backup copies the embedded SQLite store; back up a PostgreSQL store with pg_dump, "
            f"then copy {registry.artifacts_dir}"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"backup destination {dest} exists and is not empty; name a new directory")
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():  # left by a backup that was killed: never part of a complete one
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        target = sqlite_file(None, partial)
        assert target is not None
        _copy_database(store, target)
        with Store(data_dir=partial) as copy:
            copied = Registry(copy, artifacts_dir=partial / "artifacts")
            versions = []
            for record in copied.versions():  # ready ones: a collected version has no artifact to copy
                origin = registry.artifacts_dir / record.path.name
                if not origin.is_dir():
                    raise RegistryError(
                        f"the artifact of v{record.version} is missing at {origin}; nothing was kept"
                    )
                shutil.copytree(origin, record.path)
                copied.verify(record.version)  # the copy is the registered artifact, byte for byte
                versions.append(record.version)
            rows = _row_counts(copy)
        for name in (UNRECORDED, TOKEN_FILE):
            path = store.data_dir / name
            if path.is_dir():
                shutil.copytree(path, partial / name)
            elif path.is_file():
                shutil.copy2(path, partial / name)  # the token keeps its owner-only mode
        if dest.exists():
            dest.rmdir()  # empty, checked above
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupReport(dest, rows, versions, time.perf_counter() - start)


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
