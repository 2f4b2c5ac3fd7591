"""Whether a serving replica is healthy: store write failures told apart, and readiness from facts.

A full disk must not stop predictions: their logging is best effort (counted, shown in ``/readyz``
and ``/metrics``), while samples and feedback, which the client expects to be kept, are refused
with HTTP 507 so the client retries later. :func:`is_storage_full` recognises the failure on SQLite
(``SQLITE_FULL``: "database or disk is full", or an I/O error from ``ENOSPC``) and PostgreSQL
(SQLSTATE 53100 ``disk_full``, "could not extend file"). Nothing needs a restart: the next write
that succeeds clears the state.

:func:`readiness_reasons` turns the facts a replica gathers (:meth:`System.readiness`) into the
list ``/readyz`` shows; it is a pure function, tested alone.
"""

from __future__ import annotations

import errno
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, ClassVar

from lifelong.errors import LifelongError

if TYPE_CHECKING:
    from lifelong.system.store import Lease

_FULL_MESSAGES = ("database or disk is full", "no space left on device", "could not extend file",
                  "disk quota exceeded", "disk full")  # fmt: skip


class StorageFullError(LifelongError):
    """The store cannot write (disk or database full); nothing was stored (HTTP 507)."""


class NotRecordedYetError(LifelongError):
    """What a request names may still be on its way into the store: another replica answered it
    while the store could not write and records it shortly (HTTP 503 with Retry-After)."""


class ChampionUnavailableError(LifelongError):
    """A champion is deployed but its artifact cannot be loaded and no earlier one is intact: not a
    missing deployment (HTTP 503 with Retry-After; ``/readyz`` gives the same reason)."""


def is_storage_full(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it wraps) says the disk or the database is full."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(current, "sqlstate", None) == "53100":  # psycopg: disk_full
            return True
        if any(m in str(current).lower() for m in _FULL_MESSAGES):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


@dataclass
class WriteHealth:
    """Failed store writes of this replica: thread-safe, cleared by a success ``settle_seconds`` after
    the last failure (on a nearly full disk small writes still fit while larger ones fail; one lucky
    small write must not report the store healthy)."""

    settle_seconds: ClassVar[float] = 2.0
    failed_since: float | None = None  # first failure of the current run of failures
    failed_last: float = 0.0
    last_error: str | None = None
    unlogged_predictions: int = 0  # monotonic: predictions answered without being recorded

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def failed(self, err: BaseException, unlogged: int = 0) -> None:
        with self._lock:
            self.failed_last = time.time()
            self.failed_since = self.failed_since or self.failed_last
            self.last_error = one_line(err)
            self.unlogged_predictions += unlogged

    def succeeded(self) -> None:
        if self.failed_since is not None and time.time() - self.failed_last > self.settle_seconds:
            with self._lock:
                self.failed_since, self.last_error = None, None


@dataclass(frozen=True)
class Facts:
    """What a replica knows about itself when asked whether it is ready."""

    now: float
    champion_loaded: bool
    store_error: str | None  # None: the store accepted a write just now
    write_failure: str | None  # None: the last store write of this replica succeeded
    unlogged_predictions: int
    worker_lease: Lease | None  # None: no worker holds the lease (never taken, or released)
    worker_stale_seconds: float
    failed_training: str | None  # the error of the latest training attempt if it failed
    degraded: tuple[str, ...] = ()
    lease_error: str | None = None  # the worker's lease could not be read (the store is down): unknown
    damaged_on_disk: tuple[str, ...] = ()  # served versions whose artifact no longer matches its sha256


def readiness_reasons(f: Facts, serving_only: bool = False) -> list[str]:
    """Every reason the replica is not ready; an empty list means ready.

    ``serving_only`` asks whether it can answer predictions (a load balancer's question): the worker's
    state and the store do not count then. A store outage or a full disk is shared by every replica, and
    each still answers from its loaded champion and keeps what it could not record; taking them all
    out of rotation would turn a database restart into an outage of the model (Kubernetes' advice:
    readiness must not hang on a shared dependency). The full answer reports both, for alerting."""
    reasons = []
    if not f.champion_loaded and not f.degraded:  # else the degraded reason says why it is not loaded
        reasons.append(
            "no champion is loaded; bootstrap one (lifelong up --bootstrap, or System.bootstrap(learner) in Python) "
            "or promote a version"
        )
    if not serving_only:
        reasons.extend(_store_reasons(f))
        reasons.extend(_worker_reasons(f))
        reasons.extend(f.damaged_on_disk)  # it serves from memory; a restart or another replica could not
    reasons.extend(f.degraded)
    return reasons


def _store_reasons(f: Facts) -> list[str]:
    """The store's part of readiness: it takes writes, and this replica's last write succeeded."""
    reasons = []
    if f.store_error is not None:
        reasons.append(f"the store is not writable: {f.store_error}")
    if f.write_failure is not None:
        reasons.append(
            f"store writes are failing ({f.write_failure}); {f.unlogged_predictions} predictions were "
            "answered without being recorded; the replica recovers by itself once the store takes writes "
            "again (samples and feedback get 507 while the disk or database is full, 503 with Retry-After "
            "while it cannot be reached)"
        )
    return reasons


def _worker_reasons(f: Facts) -> list[str]:
    """The loop's part of readiness: a live worker and a last training that did not fail."""
    reasons = []
    if f.lease_error is not None:  # not "no worker": one may be running and waiting for the store too
        reasons.append(
            f"whether a worker holds the lease is unknown: the store cannot be read ({f.lease_error})"
        )
    elif (missing := no_worker(f.worker_lease, f.now)) is not None:
        reasons.append(missing)
    elif (
        f.worker_lease is not None and f.now - f.worker_lease.heartbeat > f.worker_stale_seconds
    ):  # a live lease, renewed long ago
        age = f.now - f.worker_lease.heartbeat
        reasons.append(f"the worker's last heartbeat is {age:.0f} s old (limit {f.worker_stale_seconds:g} s); "
                       "is it running?")  # fmt: skip
    if f.failed_training is not None:
        reasons.append(f"the last training attempt failed: {f.failed_training}")
    return reasons


def no_worker(lease: Lease | None, now: float) -> str | None:
    """Why no worker runs (None: one holds the lease): none started or one stopped cleanly (it released
    the lease), or one gone without a word (its lease expired: killed, or cut off from the store)."""
    if lease is None:
        return "no worker holds the lease (none started, or it stopped): start `lifelong worker` or `lifelong up`"
    if worker_alive(lease, now):
        return None
    since = datetime.fromtimestamp(lease.expires, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"the worker {lease.holder} is gone: its lease expired {now - lease.expires:.0f} s ago (at {since}) and "
        "no standby took it (killed, or cut off from the store for longer than its lease): start `lifelong "
        "worker` or `lifelong up`"
    )


def worker_alive(lease: Lease | None, now: float) -> bool:
    """Whether a worker holds the lease at ``now`` (``/readyz`` and ``lifelong_worker_up`` both ask
    this): a worker killed outright (SIGKILL, a lost host) never releases it, so it is gone once the
    lease expires (``--lease-seconds``, 15 s by default), not when its heartbeat grows stale."""
    return lease is not None and lease.held(now)


def one_line(err: BaseException) -> str:
    """The first line of an error: whole for lifelong's own (written to be read: a restore's advice was
    cut mid-word at 200 characters), a driver's bounded at a word."""
    orig = getattr(err, "orig", None) or err  # SQLAlchemy wraps the driver's error
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if isinstance(orig, LifelongError) or len(text) <= 300:
        return text
    return text[:300].rsplit(" ", 1)[0] + " ..."
