"""Move a store to another database: the embedded SQLite default to PostgreSQL, when one process no
longer suffices (several server replicas, a worker on another machine).

Every table is copied row for row in key order, in one transaction on the target, which must be
empty of lifelong's rows; the target's id sequences then continue after the copied ids (a hand copy
left them at 1, so the next event collided with a copied one and every answered prediction was
dropped). The artifacts stay where they are, in the data directory: the copied registry names them
relative to it, so the service is started on the same ``--data-dir`` with the new ``--db-url``. The
service must be stopped: a live worker lease in the source is refused, so nothing is written to the
source while it is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from lifelong.errors import StoreError
from lifelong.system import registry as _registry  # noqa: F401 - its tables join the metadata copied
from lifelong.system.store import Store, leases, metadata

_ROWS = 2000  # rows per insert: bounds memory (a sample row holds its inputs)


@dataclass(frozen=True)
class MigrationReport:
    """Rows copied per table, and how long it took."""

    rows: dict[str, int]
    seconds: float


def migrate(source: Store, target: Store) -> MigrationReport:
    """Copy every row of ``source`` into the empty ``target``; refuses a live service or a target in use."""
    start = time.perf_counter()
    if source.engine.url == target.engine.url:
        raise StoreError("the source and the target are the same database; give --to another one")
    _refuse_live(source)
    tables = metadata.sorted_tables  # parents before children (foreign keys)
    with target.engine.connect() as conn:
        held = {t.name: _count(conn, t) for t in tables}
    if any(held.values()):
        named = ", ".join(f"{n} {t}" for t, n in held.items() if n)
        raise StoreError(
            f"the target database already holds lifelong rows ({named}): migrate into an empty database, "
            "or drop its tables first"
        )
    rows: dict[str, int] = {}
    with source.engine.connect() as reading, target.engine.begin() as writing:
        for table in tables:
            key = list(table.primary_key.columns)
            result = reading.execution_options(stream_results=True).execute(sa.select(table).order_by(*key))
            copied = 0
            while chunk := result.fetchmany(_ROWS):
                writing.execute(sa.insert(table), [dict(r._mapping) for r in chunk])
                copied += len(chunk)
            rows[table.name] = copied
        if writing.dialect.name == "postgresql":
            _continue_sequences(writing)
    with target.engine.connect() as conn:
        landed = {t.name: _count(conn, t) for t in tables}
    if landed != rows:  # a row lost on the way would be data lost for good once the source is retired
        raise StoreError(f"the copy does not match: read {rows}, the target holds {landed}")
    return MigrationReport(rows, time.perf_counter() - start)


def _refuse_live(store: Store) -> None:
    with store.engine.connect() as conn:
        live = conn.execute(sa.select(leases).where(leases.c.expires > time.time())).first()
    if live is not None:
        raise StoreError(
            f"the service is running on the source (the {live.name} lease is held by {live.holder} for "
            f"{live.expires - time.time():.0f} s more): stop it first, so nothing changes while it is copied"
        )


def _continue_sequences(conn: sa.Connection) -> None:
    """Each serial id sequence of the target goes on after the largest copied id."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is not True:
                continue
            sequence = conn.execute(
                sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if sequence is None:
                continue
            top = conn.execute(sa.select(sa.func.max(column))).scalar()
            conn.execute(
                sa.text("SELECT setval(:s, :v, :called)"),
                {"s": sequence, "v": top if top is not None else 1, "called": top is not None},
            )


def _count(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
