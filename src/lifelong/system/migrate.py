"""Move a store to another database: the embedded SQLite default to PostgreSQL, when one process no
longer suffices (several server replicas, a worker on another machine).

Every table is copied row for row in key order, in one transaction on the target, which must be
empty of lifelong's rows; the target's id sequences then continue after the copied ids (a hand copy
left them at 1, so the next event collided with a copied one and every answered prediction was
dropped). The artifacts stay where they are, in the data directory: the copied registry names them
relative to it, so the service is started on the same ``--data-dir`` with the new ``--db-url``. The
service must be stopped: a live worker lease in the source is refused, and a copy during which the
source was written to (a server, which holds no lease) is undone, the target left empty.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lifelong.errors import StoreError
from lifelong.system.store import Store
from lifelong.system.worker import LEASE


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
    lease = source.lease(LEASE)
    if lease is not None and lease.expires > time.time():
        raise StoreError(
            f"the service is running on the source (the worker lease is held by {lease.holder} for "
            f"{lease.expires - time.time():.0f} s more): stop it first, so nothing changes while it is copied"
        )
    return MigrationReport(source.copy_into(target), time.perf_counter() - start)
