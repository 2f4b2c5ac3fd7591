"""The durable record of the production loop: what came in, what was predicted, what was learned.

One SQLAlchemy Core schema serves SQLite (default: one WAL-mode file, ``<data_dir>/lifelong.db``)
and PostgreSQL (``url=`` or ``LIFELONG_DB_URL``, shared by several replicas). Every public write
is one transaction that has committed when the method returns, so a crash never loses an
acknowledged write. Features are stored as raw little-endian float32/uint8 bytes plus shape,
never pickled, so reading the store can never run code.

Labels usually arrive after the prediction (feedback). Feedback is keyed by the input answered
(``request_id``: the served answer's own id, which a shadow's mirrored answer to it shares, never the
client's routing id, which repeats), so both answers are judged against the same label, and the label
is copied onto the stored sample for training.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
import torch
from sqlalchemy.dialects import postgresql, sqlite
from torch import Tensor

from lifelong.errors import NotFoundError, StoreError
from lifelong.system.contract import MAX_CLASS_NAME
from lifelong.system.events import EventKind
from lifelong.system.settings import env_choice

log = logging.getLogger(__name__)

VARIANTS = ("champion", "canary", "shadow")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
#: the store could not be reached or written (a database down, a read-only file, a pool timeout):
#: the API answers 503 and the worker waits, neither treats it as a bug
STORE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")  # LIFELONG_SQLITE_SYNCHRONOUS (OFF would lose commits)
_CHUNK = 500  # bound on parameters per statement (SQLite caps bound variables)

# --- schema -------------------------------------------------------------------------------------
metadata = sa.MetaData()
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only
# sqlite_autoincrement=True on the tables below: ids are never reused after deletes (retention), so
# id cursors stay valid.

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False, index=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("features", sa.LargeBinary, nullable=False),  # little-endian row bytes
    sa.Column("shape", sa.JSON, nullable=False),  # shape of one sample, e.g. [28, 28]
    sa.Column("dtype", sa.String(8), nullable=False),  # "float32" | "uint8"
    sa.Column("label", sa.Integer),
    sa.Column("trained_version", sa.Integer, index=True),
    sa.Column("trained_at", sa.Double),
    sqlite_autoincrement=True,
)
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("seq", _Id, primary_key=True, autoincrement=True),  # arrival order, also within a batch
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("ts", sa.Double, nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False, index=True),
    sa.Column("variant", sa.String(16), nullable=False),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("scores", sa.JSON),
    # indexed: deleting samples (retention) finds the predictions to unlink through it
    sa.Column("sample_id", _Id, sa.ForeignKey("samples.id", ondelete="SET NULL"), index=True),
    sqlite_autoincrement=True,
)
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("prediction_id", sa.String(32), sa.ForeignKey("predictions.id"), nullable=False, index=True),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
)
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sqlite_autoincrement=True,
)
drift_checks = sa.Table(  # every block the data-drift test judged, drifting or not: the history over time
    "drift_checks",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=True),  # the champion whose reference it was tested against
    sa.Column("monitor", sa.String(32), nullable=False),
    sa.Column("first_id", sa.BigInteger, nullable=False),  # the block's samples
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("score", sa.Double, nullable=True),
    sa.Column("threshold", sa.Double, nullable=True),
    sa.Column("p_value", sa.Double, nullable=True),
    sa.Column("drift", sa.Boolean, nullable=False),
    sa.Column("drifted", sa.Integer, nullable=True),  # features (or positions) the test flagged
    sqlite_autoincrement=True,
)
cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
classes = sa.Table(  # names of classes that arrived after the deployment's contract (allow_new_classes)
    "classes",
    metadata,
    sa.Column("label", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(MAX_CLASS_NAME), nullable=False, unique=True),
)
leases = sa.Table(  # one row per exclusive role ("worker"): who holds it and until when
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),  # host:pid:nonce
    sa.Column("acquired", sa.Double, nullable=False),
    sa.Column("heartbeat", sa.Double, nullable=False),
    sa.Column("expires", sa.Double, nullable=False),
)

# Without these, each deleted sample or prediction scans the child table: retention of 5,000 samples
# beside 15,000 predictions held SQLite's write lock for over 30 s (benchmarks/retention.py).
_FOREIGN_KEY_INDEXES = [i for t in (predictions, feedback) for i in t.indexes
                        if i.name in ("ix_predictions_sample_id", "ix_feedback_prediction_id")]  # fmt: skip


def _count_rows(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _rows_per_table(engine: sa.Engine, tables: Sequence[sa.Table]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: _count_rows(conn, t) for t in tables}


def _continue_sequence(conn: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
    """A serial id's sequence goes on after the largest id in ``table``."""
    sequence = conn.execute(
        sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
    ).scalar()
    if sequence is not None:
        top = conn.execute(sa.select(sa.func.max(column))).scalar()
        conn.execute(
            sa.text("SELECT setval(:s, :v, :called)"),
            {"s": sequence, "v": top if top is not None else 1, "called": top is not None},
        )


def _refuse_foreign(engine: sa.Engine) -> None:
    """Refuse, before creating anything, a database that is another application's: one holding tables
    and none of lifelong's, or a table of lifelong's name without its columns (an ``events`` of its own
    made lifelong create nine tables beside it and then fail on a missing column, with a traceback)."""
    inspector = sa.inspect(engine)
    present = set(inspector.get_table_names())
    where = engine.url.render_as_string(hide_password=True)
    ours = present & set(metadata.tables)
    for name in sorted(ours):
        missing = {c.name for c in metadata.tables[name].columns} - {
            c["name"] for c in inspector.get_columns(name)
        }
        if missing and name in ("samples", "events", "predictions", "feedback"):  # columns every version had
            raise StoreError(
                f"the database at {where!r} has a table {name!r} without lifelong's columns ({', '.join(sorted(missing))}): "
                "it is another application's; give lifelong a database of its own (a new file, or CREATE DATABASE lifelong)"
            )
    if present and not ours:
        shown = ", ".join(sorted(present)[:5]) + (" ..." if len(present) > 5 else "")
        raise StoreError(
            f"the database at {where!r} holds other tables ({shown}) and none of lifelong's: give lifelong a "
            "database of its own (a new file, or CREATE DATABASE lifelong)"
        )


# --- returned records ---------------------------------------------------------------------------
class Samples(NamedTuple):
    """A window of samples in id order. ``y`` is -1 where no label has arrived yet."""

    ids: Tensor  # (n,) int64
    x: Tensor  # (n, *shape) float32 or uint8, as stored
    y: Tensor  # (n,) int64


class LabelledPrediction(NamedTuple):
    prediction_id: str
    ts: float
    version: int
    variant: str
    predicted: int
    label: int
    sample_id: int | None = None


class JudgedPrediction(NamedTuple):
    version: int
    predicted: int
    label: int
    sample_id: int | None
    ts: float  # when the feedback arrived


class Lease(NamedTuple):
    name: str
    holder: str
    acquired: float
    heartbeat: float
    expires: float

    def held(self, now: float | None = None) -> bool:
        """Whether it is unexpired: until then :meth:`Store.acquire_lease` refuses any other holder."""
        return self.expires >= (time.time() if now is None else now)


class Event(NamedTuple):
    id: int
    ts: float
    kind: str
    payload: dict[str, Any]


class DriftCheck(NamedTuple):
    """One block of inputs as the data-drift test judged it (``drift``: the block drifted, not yet a report:
    that takes ``drift_persistence`` blocks in a row)."""

    id: int
    ts: float
    version: int | None
    monitor: str
    first_id: int
    last_id: int
    score: float | None
    threshold: float | None
    p_value: float | None
    drift: bool
    drifted: int | None


@dataclass(frozen=True)
class RetentionPolicy:
    """How long raw samples may be kept (privacy). Replay memory lives in checkpoints, not here.

    ``max_age_days`` deletes samples (and predictions with their feedback) older than that;
    ``delete_trained`` deletes samples as soon as a registered version has been trained on them;
    ``max_samples`` keeps at most that many samples and as many predictions (the oldest go first).
    A prediction whose sample was deleted keeps its label and output; its link becomes NULL.
    """

    max_age_days: float | None = None
    delete_trained: bool = False
    max_samples: int | None = None

    def __post_init__(self) -> None:
        if self.max_age_days is not None and not self.max_age_days > 0:
            raise StoreError(f"RetentionPolicy.max_age_days must be > 0 or None, got {self.max_age_days}")
        if self.max_samples is not None and self.max_samples < 1:
            raise StoreError(f"RetentionPolicy.max_samples must be >= 1 or None, got {self.max_samples}")


# --- the store ----------------------------------------------------------------------------------


SQLITE_FILE = "lifelong.db"  # the embedded store's file in a data directory


def sqlite_file(url: str | None, data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The SQLite file ``Store(url, data_dir=data_dir)`` opens, or None when it opens a database URL
    (``url``, else ``LIFELONG_DB_URL``): one answer for the store and for commands that must not make one."""
    if url or os.environ.get("LIFELONG_DB_URL"):
        return None
    return Path(data_dir if data_dir is not None else "lifelong-data") / SQLITE_FILE


class Store:
    """Samples, predictions, feedback, model versions, aliases and events in one database.

    Parameters
    ----------
    url
        SQLAlchemy URL; ``postgresql://`` uses psycopg 3. Defaults to ``LIFELONG_DB_URL`` and then to
        SQLite at ``<data_dir>/lifelong.db``.
    data_dir
        Directory of the default SQLite file (``./lifelong-data``).
    checkpoint_every
        SQLite only: seconds between WAL checkpoints on a background thread; the store's own commits
        then never checkpoint. By default SQLite checkpoints inside the commit that fills the WAL past
        1,000 pages: that commit copies the pages and fsyncs the database, 10-30x the time of a plain
        commit, and every request of the micro-batch waits for it (4-row serving commits, p99 7.7 ms
        against 2.6 ms with a checkpoint every second: ``benchmarks/commit_latency.py``). None keeps
        SQLite's behaviour (short-lived processes, the CLI).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: float | None = None,
        offline_ok: bool = False,
    ) -> None:
        self.opened_offline = False  # the database was unreachable when this store was opened
        self.data_dir = Path(data_dir if data_dir is not None else "lifelong-data")
        # checked before the data directory is made, and on every store: a typo in a shared environment
        # file must not wait for a move to SQLite
        synchronous = env_choice("LIFELONG_SQLITE_SYNCHRONOUS", SYNCHRONOUS_MODES, "NORMAL")
        file = sqlite_file(url, self.data_dir)
        if file is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{file.resolve()}"
        else:
            url = url or os.environ["LIFELONG_DB_URL"]
        url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
        if not url.startswith(("sqlite", "postgresql")):  # a MySQL URL failed on "No module named 'MySQLdb'"
            scheme = url.split(":", 1)[0]
            raise StoreError(
                f"database URL scheme {scheme!r} is not supported: lifelong stores in SQLite (the default, or "
                "sqlite:///path) or PostgreSQL (postgresql://user@host/db)"
            )
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        except (
            sa.exc.ArgumentError,
            ImportError,
            ValueError,
        ) as err:  # ValueError: a port that is not a number
            shown = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
            raise StoreError(f"cannot use database URL {shown!r}: {err}") from err
        self._checkpointer: _Checkpointer | None = None
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine, synchronous, autocheckpoint=checkpoint_every is None)
        self._writer = self.engine.execution_options(lifelong_write=True)
        try:
            _refuse_foreign(self.engine)
            metadata.create_all(self.engine)
            for index in _FOREIGN_KEY_INDEXES:  # create_all adds them only to new tables; older files too
                index.create(self.engine, checkfirst=True)
        except sa.exc.DatabaseError as err:  # unreachable, refused, or not a database (a damaged file)
            # one line: drivers add indented hints on lines of their own
            why = " ".join(str(err.orig).split())
            self.engine.dispose()
            if offline_ok and isinstance(err, STORE_DOWN) and self.engine.dialect.name != "sqlite":
                self.opened_offline = True
                return
            raise StoreError(f"cannot open the database at {self!r}: {why}") from err
        if self.engine.dialect.name == "sqlite" and checkpoint_every is not None:
            self._checkpointer = _Checkpointer(self.engine, checkpoint_every)

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()

    def transaction(self) -> AbstractContextManager[sa.Connection]:
        """One write transaction (commits on exit); SQLite takes its write lock up front."""
        if self._checkpointer is not None and self._checkpointer.rewind_due:
            self._checkpointer.catch_up()
        return self._writer.begin()

    # samples ------------------------------------------------------------------------------------
    def add_samples(
        self,
        x: np.ndarray | Tensor,
        y: Sequence[int] | np.ndarray | Tensor | None = None,
        *,
        source: str = "api",
        new_classes: NewClasses | None = None,
    ) -> list[int]:
        """Store a batch ``x`` of shape (n, *features), optionally labelled; return the new ids in order.

        ``new_classes``: names the labels bring, named in the same transaction (see :class:`NewClasses`)."""
        feats = _features(x)
        labels: list[int | None] = list(_labels(y, len(feats), "y")) if y is not None else [None] * len(feats)
        _check_name(source, "source")
        if not len(feats):
            return []
        now, shape, dtype = time.time(), list(feats.shape[1:]), feats.dtype.name
        stmt = sa.insert(samples).returning(samples.c.id, sort_by_parameter_order=True)
        with self.transaction() as conn:
            labels = _named_labels(conn, labels, new_classes)
            rows = [{"ts": now, "source": source, "features": f.tobytes(), "shape": shape, "dtype": dtype,
                     "label": lab} for f, lab in zip(feats, labels)]  # fmt: skip
            return [int(i) for i in conn.execute(stmt, rows).scalars()]

    def samples(
        self,
        since_id: int | None = None,
        until_id: int | None = None,
        *,
        labelled_only: bool = False,
        limit: int | None = None,
    ) -> Samples:
        """Samples with ``since_id < id <= until_id`` in id order (the first ``limit`` of them)."""
        q = sa.select(samples.c.id, samples.c.features, samples.c.shape, samples.c.dtype, samples.c.label)
        q = _id_window(q, since_id, until_id, labelled_only).order_by(samples.c.id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return _decode(rows)

    def relabel_sample(
        self, sample_id: int, label: int | None, new_classes: NewClasses | None = None
    ) -> None:
        """Set (None: clear) the label of one stored sample; NotFoundError if there is no such sample
        (and then a new class name it brought is not named either)."""
        checked = None if label is None else int(_labels([label], 1, "label")[0])
        with self.transaction() as conn:
            values = {"label": _named_labels(conn, [checked], new_classes)[0]}
            if (
                conn.execute(sa.update(samples).where(samples.c.id == int(sample_id)).values(values)).rowcount
                == 0
            ):
                raise NotFoundError(f"no sample with id {sample_id}; ids are returned by POST /v1/samples")

    def delete_sample(self, sample_id: int) -> None:
        """Delete one stored sample; predictions made on it keep their outputs and lose the link."""
        with self.transaction() as conn:
            if conn.execute(sa.delete(samples).where(samples.c.id == int(sample_id))).rowcount == 0:
                raise NotFoundError(f"no sample with id {sample_id}; ids are returned by POST /v1/samples")

    def count_samples(self, since_id: int | None = None, *, labelled_only: bool = False) -> int:
        """How many samples arrived after ``since_id``: the policy's "enough new data" test."""
        q = _id_window(sa.select(sa.func.count()).select_from(samples), since_id, None, labelled_only)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def counts(self) -> dict[str, int]:
        """Rows an operator asks about (``lifelong status``): samples, labelled ones and those trained on,
        predictions, feedback and events."""
        count = sa.func.count()
        with self.engine.connect() as conn:
            one = conn.execute(
                sa.select(count, sa.func.count(samples.c.label), sa.func.count(samples.c.trained_version))
            ).one()
            return {
                "samples": int(one[0]), "labelled": int(one[1]), "trained": int(one[2]),
                **{t.name: _count_rows(conn, t) for t in (predictions, feedback, events)},
            }  # fmt: skip

    def copy_into(self, target: Store) -> dict[str, int]:
        """Copy every row of every table (the registry's too) into ``target``, which must hold none, in key
        order and one transaction (read from one snapshot of a PostgreSQL source); PostgreSQL's id
        sequences then go on after the copied ids (a hand copy left them at 1: the next event collided
        with a copied one). Returns the rows per table, checked against what the target holds after."""
        from lifelong.system import registry  # noqa: F401 - its tables join the metadata copied

        tables = metadata.sorted_tables  # parents before children (foreign keys)
        held = _rows_per_table(target.engine, tables)
        if any(held.values()):
            named = ", ".join(f"{n} {t}" for t, n in held.items() if n)
            raise StoreError(
                f"the target database already holds lifelong rows ({named}): migrate into an empty database, "
                "or drop its tables first"
            )
        rows: dict[str, int] = {}
        # one snapshot of a PostgreSQL source (every table as of one instant, while a service writes: a
        # backup); an SQLite source is read while stopped (migrate) or by its online backup instead
        snapshot = {"isolation_level": "REPEATABLE READ"} if self.engine.dialect.name == "postgresql" else {}
        with self.engine.connect().execution_options(**snapshot) as reading, target.engine.begin() as writing:
            for table in tables:
                key = list(table.primary_key.columns)
                result = reading.execution_options(stream_results=True).execute(
                    sa.select(table).order_by(*key)
                )
                rows[table.name] = 0
                while chunk := result.fetchmany(2000):  # bounded memory: a sample row holds its inputs
                    writing.execute(sa.insert(table), [dict(r._mapping) for r in chunk])
                    rows[table.name] += len(chunk)
            # an SQLite source is read from one snapshot (BEGIN) too, so rows written meanwhile, by a
            # `serve` that migrate's lease check cannot see, would be left behind in the retired store
            if self.engine.dialect.name == "sqlite" and _rows_per_table(self.engine, tables) != rows:
                raise StoreError(  # raised inside the target's transaction: it keeps nothing
                    "the source store was written to while it was copied (a `lifelong serve` or `up` still runs on "
                    "it): stop every process using it and run the command again; nothing was written to the target"
                )
            if writing.dialect.name == "postgresql":
                for table in tables:
                    for column in table.primary_key.columns:
                        if column.autoincrement is True:
                            _continue_sequence(writing, table, column)
        landed = _rows_per_table(target.engine, tables)
        if landed != rows:  # a row lost on the way would be lost for good once the source is retired
            raise StoreError(f"the copy does not match: read {rows}, the target holds {landed}")
        return rows

    def label_counts(self, at_least: int) -> dict[int, int]:
        """Labelled samples per class index ``>= at_least`` (the classes a deployment's head lacks)."""
        q = (
            sa.select(samples.c.label, sa.func.count())
            .where(samples.c.label >= at_least)
            .group_by(samples.c.label)
        )
        with self.engine.connect() as conn:
            return {int(label): int(n) for label, n in conn.execute(q).all()}

    def untrained_of(
        self, labels: Sequence[int], before_id: int, limit: int, after_id: int | None = None
    ) -> Samples:
        """The last ``limit`` samples labelled one of ``labels`` below ``before_id`` (and above ``after_id``)
        that no version was trained on, in id order: a new class's first labels, held back until it had enough."""
        q = sa.select(samples.c.id, samples.c.features, samples.c.shape, samples.c.dtype, samples.c.label)
        q = q.where(
            samples.c.label.in_([int(c) for c in labels]),
            samples.c.id < before_id,
            samples.c.trained_version.is_(None),
        )
        if after_id is not None:
            q = q.where(samples.c.id > after_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(samples.c.id.desc()).limit(limit)).all()
        return _decode(rows[::-1])

    def nth_latest_labelled(self, n: int) -> int | None:
        """The id just before the ``n`` most recent labelled samples (None: fewer than ``n`` exist)."""
        q = sa.select(samples.c.id).where(samples.c.label.is_not(None)).order_by(samples.c.id.desc())
        with self.engine.connect() as conn:
            row = conn.execute(q.offset(n).limit(1)).first()
        return None if row is None else int(row[0])

    def labelled_before(self, first_new: int, n: int) -> Samples:
        """The ``n`` most recent labelled samples with ids below ``first_new``, in id order."""
        q = sa.select(samples.c.id).where(samples.c.label.is_not(None), samples.c.id < first_new)
        with self.engine.connect() as conn:
            row = conn.execute(q.order_by(samples.c.id.desc()).offset(n).limit(1)).first()
        since = None if row is None else int(row[0])
        return self.samples(since_id=since, until_id=first_new - 1, labelled_only=True)

    def trained_samples(self, version: int, limit: int) -> Samples:
        """The last ``limit`` samples ``version`` was trained on: the data-drift reference."""
        q = sa.select(samples.c.id).where(samples.c.trained_version == version)
        with self.engine.connect() as conn:
            row = conn.execute(q.order_by(samples.c.id.desc()).offset(limit).limit(1)).first()
            last = conn.execute(
                sa.select(sa.func.max(samples.c.id)).where(samples.c.trained_version == version)
            ).scalar()
        if last is None:
            return _decode([])
        q = sa.select(samples.c.id, samples.c.features, samples.c.shape, samples.c.dtype, samples.c.label)
        q = q.where(samples.c.trained_version == version)
        q = _id_window(q, None if row is None else int(row[0]), int(last), False).order_by(samples.c.id)
        with self.engine.connect() as conn:
            return _decode(conn.execute(q).all())

    def last_sample_id(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(samples.c.id))).scalar()

    def mark_trained(self, ids: Sequence[int] | np.ndarray | Tensor, version: int) -> None:
        """Record that ``version`` was trained on ``ids`` and advance the ``trained`` cursor past them."""
        _check_version(version)
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, np.ndarray | Tensor) else ids)]
        if not ids:
            return
        now = time.time()
        with self.transaction() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                conn.execute(
                    sa.update(samples)
                    .where(samples.c.id.in_(chunk))
                    .values(trained_version=int(version), trained_at=now)
                )
            _advance(conn, "trained", max(ids))

    def last_trained_sample_id(self) -> int | None:
        """The trainer's cursor: the highest sample id any version was trained on (survives retention)."""
        return self.cursor("trained")

    def cursor(self, name: str) -> int | None:
        """A named monotonic counter (e.g. the last sample a monitor has checked), or None if unset."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name)).scalar_one_or_none()

    def advance_cursor(self, name: str, value: int) -> None:
        """Move cursor ``name`` forward to ``value``; it never moves back."""
        _check_name(name, "cursor name")
        with self.transaction() as conn:
            _advance(conn, name, int(value))

    def apply_retention(self, policy: RetentionPolicy, *, now: float | None = None, chunk: int = 2000) -> int:
        """Delete what ``policy`` no longer allows to keep; return how many samples were deleted.

        Deletes in transactions of at most ``chunk`` rows: the server's writes wait for SQLite's one
        write lock, and a purge of 100,000 rows in one transaction held it for 10-18 s
        (benchmarks/retention.py); in chunks the server's writes interleave with the purge.
        """
        now = time.time() if now is None else now
        conds, old_predictions = [], []
        if policy.max_age_days is not None:
            conds.append(samples.c.ts < now - policy.max_age_days * 86400.0)
            old_predictions.append(predictions.c.ts < now - policy.max_age_days * 86400.0)
        if policy.delete_trained:
            conds.append(samples.c.trained_version.is_not(None))
        if policy.max_samples is not None:
            with self.engine.connect() as conn:  # rows arriving meanwhile get higher ids: they stay
                for key, cond in ((samples.c.id, conds), (predictions.c.seq, old_predictions)):
                    # the newest N of the rows the other rules keep: trained or old rows deleted anyway
                    # must not count, or untrained rows under the cap went too
                    q = sa.select(key).order_by(key.desc()).offset(policy.max_samples).limit(1)
                    if cond:
                        q = q.where(sa.not_(sa.or_(*cond)))
                    edge = conn.execute(q).scalar()
                    if edge is not None:
                        cond.append(key <= edge)
        # predictions first: deleting their samples then has no rows left to unlink (SET NULL)
        while old_predictions:
            first = sa.select(predictions.c.seq).where(sa.or_(*old_predictions)).order_by(predictions.c.seq)
            first = first.limit(chunk)
            gone = sa.select(predictions.c.id).where(predictions.c.seq.in_(first))
            with self.transaction() as conn:
                conn.execute(sa.delete(feedback).where(feedback.c.prediction_id.in_(gone)))
                n = conn.execute(sa.delete(predictions).where(predictions.c.seq.in_(first))).rowcount
            if n < chunk:
                break
        deleted = 0
        while conds:
            first = sa.select(samples.c.id).where(sa.or_(*conds)).order_by(samples.c.id).limit(chunk)
            with self.transaction() as conn:
                n = conn.execute(sa.delete(samples).where(samples.c.id.in_(first))).rowcount
            deleted += n
            if n < chunk:
                break
        if policy.max_age_days is not None:  # the drift history ages out with the data it describes
            with self.transaction() as conn:
                conn.execute(
                    sa.delete(drift_checks).where(drift_checks.c.ts < now - policy.max_age_days * 86400.0)
                )
        if deleted and self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:  # give the WAL back: the file stops growing
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    # predictions and feedback -------------------------------------------------------------------
    def add_predictions(
        self,
        version: int,
        labels: Sequence[int] | np.ndarray | Tensor,
        scores: np.ndarray | Tensor | Sequence[Sequence[float]] | None = None,
        *,
        sample_ids: Sequence[int | None] | None = None,
        variant: str = "champion",
        request_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Record a batch of outputs of ``version``; return their ids (UUIDv7 hex, see `prediction_ids`).

        Predictions sharing a ``request_id`` answered the same request (a shadow mirrors the
        champion); it defaults to the prediction's own id.
        """
        _check_version(version)
        labs = _labels(labels, None, "labels")
        n = len(labs)
        score_rows = _scores(scores, n)
        sample_ids = _same_length(sample_ids, n, "sample_ids")
        request_ids = _same_length(request_ids, n, "request_ids")
        if variant not in VARIANTS:
            raise StoreError(f"variant must be one of {VARIANTS}, got {variant!r}")
        now, ids = time.time(), prediction_ids(n)
        rows = [
            {
                "id": pid,
                "request_id": str(request_ids[i]) if request_ids[i] is not None else pid,
                "ts": now,
                "version": int(version),
                "variant": variant,
                "label": labs[i],
                "scores": score_rows[i],
                "sample_id": None if sample_ids[i] is None else int(sample_ids[i]),
            }
            for i, pid in enumerate(ids)
        ]
        if any(len(str(r["request_id"])) > 64 for r in rows):
            raise StoreError("request ids must be at most 64 characters")
        if rows:
            try:
                with self.transaction() as conn:
                    conn.execute(sa.insert(predictions), rows)
            except sa.exc.IntegrityError as err:
                raise NotFoundError(
                    f"a sample id in {sorted(set(sample_ids) - {None})} does not exist"
                ) from err
        return ids

    def record_served(
        self,
        x: np.ndarray | None,
        prediction_ids: Sequence[str],
        request_ids: Sequence[str],
        versions: Sequence[int],
        variants: Sequence[str],
        labels: Sequence[int],
        scores: Sequence[Sequence[float]],
        *,
        ts: float | None = None,
    ) -> list[int | None]:
        """What the server answered for one micro-batch, in one transaction (group commit): the inputs
        ``x`` as unlabelled samples (None: not kept) and one prediction row each, at time ``ts`` (None:
        now; a batch recorded late keeps the time it was answered). Returns sample ids."""
        now = time.time() if ts is None else ts
        sample_ids: list[int | None] = [None] * len(prediction_ids)
        with self.transaction() as conn:
            if x is not None:
                feats = np.ascontiguousarray(x, dtype="<f4")
                shape = list(feats.shape[1:])
                rows = [{"ts": now, "source": "predict", "features": f.tobytes(), "shape": shape,
                         "dtype": "float32", "label": None} for f in feats]  # fmt: skip
                sample_ids = _insert_ids(conn, rows)
            conn.execute(
                sa.insert(predictions),
                [
                    {"id": pid, "request_id": rid, "ts": now, "version": ver, "variant": var, "label": lab,
                     "scores": sc, "sample_id": sid}
                    for pid, rid, ver, var, lab, sc, sid in zip(
                        prediction_ids, request_ids, versions, variants, labels, scores, sample_ids
                    )
                ],
            )  # fmt: skip
        return sample_ids

    def add_prediction(
        self,
        version: int,
        label: int,
        scores: Any = None,
        *,
        sample_id: int | None = None,
        variant: str = "champion",
        request_id: Any = None,
    ) -> str:
        """Record one output of ``version``; see :meth:`add_predictions`."""
        return self.add_predictions(
            version,
            [label],
            None if scores is None else [scores],
            sample_ids=[sample_id],
            variant=variant,
            request_ids=[request_id],
        )[0]

    def add_feedback(self, prediction_id: str, label: int) -> None:
        """Attach the true ``label`` to the request ``prediction_id`` answered; a later call corrects it.

        The label is also copied onto the request's stored sample, which is how unlabelled traffic
        becomes training data.
        """
        (label,) = _labels([label], 1, "label")
        with self.transaction() as conn:
            row = conn.execute(
                sa.select(predictions.c.request_id, predictions.c.sample_id).where(
                    predictions.c.id == prediction_id
                )
            ).first()
            if row is None:
                raise NotFoundError(_no_prediction(prediction_id))
            values = {"prediction_id": prediction_id, "label": label, "ts": time.time()}
            upsert(conn, feedback, {"request_id": row.request_id}, values)
            if row.sample_id is not None:
                conn.execute(sa.update(samples).where(samples.c.id == row.sample_id).values(label=label))

    def has_prediction(self, prediction_id: str) -> bool:
        """Whether a prediction with this id is recorded."""
        with self.engine.connect() as conn:
            q = sa.select(predictions.c.id).where(predictions.c.id == prediction_id).limit(1)
            return conn.execute(q).first() is not None

    def prediction_samples(self) -> dict[str, int | None]:
        """Every prediction id with the sample id of its input (for offline analysis of a run)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(predictions.c.id, predictions.c.sample_id)).all()
        return {r.id: r.sample_id for r in rows}

    def judged_since(self, since: float, *, variant: str = "champion") -> list[JudgedPrediction]:
        """Predictions of ``variant`` whose feedback arrived at or after ``since``, in feedback order."""
        p, f = predictions, feedback
        q = (
            sa.select(p.c.version, p.c.label, f.c.label.label("truth"), p.c.sample_id, f.c.ts)
            .join(f, f.c.prediction_id == p.c.id)
            .where(f.c.ts >= since, p.c.variant == variant)
            .order_by(f.c.ts)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [JudgedPrediction(r.version, r.label, r.truth, r.sample_id, r.ts) for r in rows]

    def add_feedback_many(
        self, items: Sequence[tuple[str, int]], new_classes: NewClasses | None = None
    ) -> None:
        """Attach labels to many predictions in one transaction: all are stored, or none.

        An unknown prediction id raises NotFoundError naming it (and its position in ``items``); the new
        class names the labels bring (``new_classes``) are named in the same transaction, or not at all.
        """
        labels: list[int | None] = [int(v) for v in _labels([lab for _, lab in items], len(items), "labels")]
        ids = [pid for pid, _ in items]
        now = time.time()
        with self.transaction() as conn:
            found: dict[str, Any] = {}
            for start in range(0, len(ids), _CHUNK):
                q = sa.select(predictions.c.id, predictions.c.request_id, predictions.c.sample_id)
                for row in conn.execute(q.where(predictions.c.id.in_(ids[start : start + _CHUNK]))):
                    found[row.id] = row
            for i, pid in enumerate(ids):
                if pid not in found:
                    where = f"feedback item {i}: " if len(ids) > 1 else ""
                    raise NotFoundError(f"{where}{_no_prediction(pid)}; nothing was stored")
            labels = _named_labels(conn, labels, new_classes)
            for pid, label in zip(ids, labels):
                row = found[pid]
                upsert(conn, feedback, {"request_id": row.request_id},
                       {"prediction_id": pid, "label": label, "ts": now})  # fmt: skip
                if row.sample_id is not None:
                    conn.execute(sa.update(samples).where(samples.c.id == row.sample_id).values(label=label))

    def count_events(self) -> dict[str, int]:
        """How many events of each kind were ever logged (promotions, rollbacks... for /metrics)."""
        q = sa.select(events.c.kind, sa.func.count()).group_by(events.c.kind)
        with self.engine.connect() as conn:
            return {kind: int(n) for kind, n in conn.execute(q)}

    def count_failed_trainings(self) -> int:
        """Training attempts that raised (``training`` events in state ``failed``), for /metrics."""
        state = events.c.payload["state"].as_string()  # json_extract on SQLite, ->> on PostgreSQL
        q = sa.select(sa.func.count()).where(events.c.kind == EventKind.TRAINING.value, state == "failed")
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def count_untrained_attempts(self) -> int:
        """Training attempts that trained nothing (``gate`` events with ``trained`` false: the window
        was too small to hold out a gate set), for /metrics: they answer a trigger, so they are attempts."""
        trained = events.c.payload["trained"].as_boolean()  # absent (a judged candidate): NULL, not counted
        q = sa.select(sa.func.count()).where(events.c.kind == EventKind.GATE.value, trained == sa.false())
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def count_gate_rejections(self) -> int:
        """Candidates the gate judged and refused (``gate`` events with ``passed`` false that trained),
        for /metrics: a rising count is a loop that trains but never improves on its champion."""
        passed = events.c.payload["passed"].as_boolean()
        trained = events.c.payload["trained"].as_boolean()  # absent on a judged candidate: it trained
        q = sa.select(sa.func.count()).where(
            events.c.kind == EventKind.GATE.value, passed == sa.false(), sa.or_(trained.is_(None), trained)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def size_bytes(self) -> int:
        """Bytes the database takes on disk (SQLite: the file plus its WAL; PostgreSQL: the database)."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
        path = Path(self.engine.url.database or "")
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())

    def probe_write(self) -> None:
        """A tiny real write (one cursor row), so readiness knows the store takes writes right now."""
        with self.transaction() as conn:
            upsert(conn, cursors, {"name": "readiness-probe"}, {"value": time.time_ns() // 1_000_000})

    def labelled_predictions(
        self,
        version: int | None = None,
        *,
        variant: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[LabelledPrediction]:
        """Predictions whose request got feedback, oldest first (the ``limit`` most recent ones).

        Filter by ``version`` or ``variant`` to compare a canary or shadow with the champion, or
        walk them in order for prequential (test-then-train) accuracy.
        """
        p = predictions
        q = sa.select(
            p.c.id,
            p.c.ts,
            p.c.version,
            p.c.variant,
            p.c.label,
            feedback.c.label.label("truth"),
            p.c.sample_id,
        )
        q = q.join(feedback, feedback.c.request_id == p.c.request_id)
        if version is not None:
            q = q.where(p.c.version == version)
        if variant is not None:
            q = q.where(p.c.variant == variant)
        if since is not None:
            q = q.where(p.c.ts >= since)
        q = q.order_by(p.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            LabelledPrediction(r.id, r.ts, r.version, r.variant, r.label, r.truth, r.sample_id)
            for r in reversed(rows)
        ]

    # class names --------------------------------------------------------------------------------
    def class_names(self) -> dict[str, int]:
        """Names given to classes that arrived after the deployment's contract, with their indices."""
        with self.engine.connect() as conn:
            return {r.name: r.label for r in conn.execute(sa.select(classes.c.name, classes.c.label))}

    def compact_classes(self, first: int, admitted: int = 1) -> dict[int, int]:
        """Free the indices of named classes from ``first`` on that hold no label (a mistyped name,
        corrected; every sample of a class deleted), and order the rest: classes with ``admitted``
        labelled samples or more first, then those still waiting for labels. The head grows to the
        largest label, so a name left without labels, or a typo waiting below a class admitted after
        it, would otherwise take an output for good.

        ``first`` is the class count of the widest registered version: below it every index is some
        version's output and never moves. Nothing moves while an unnamed index past ``first`` holds
        labels (a client numbering new classes itself). Returns ``{old: new}`` of the moved indices."""
        with self.transaction() as conn:
            _lock_classes(conn)
            named = {
                r.label: r.name for r in conn.execute(sa.select(classes).where(classes.c.label >= first))
            }
            if not named:
                return {}
            used: set[int] = set()
            for table in (samples, feedback):
                q = sa.select(table.c.label).where(table.c.label >= first).distinct()
                used.update(int(v) for v in conn.execute(q).scalars())
            if used - named.keys():
                return {}
            q = sa.select(samples.c.label, sa.func.count()).where(samples.c.label >= first)
            counts = {int(c): int(n) for c, n in conn.execute(q.group_by(samples.c.label)).all()}
            keep = sorted((i for i in named if i in used), key=lambda i: (counts.get(i, 0) < admitted, i))
            moves = {old: first + k for k, old in enumerate(keep) if old != first + k}
            if len(keep) == len(named) and not moves:
                return {}
            conn.execute(sa.delete(classes).where(classes.c.label.in_([i for i in named if i not in used])))
            # through indices no label holds, so that two classes can trade places
            parked = {old: -1 - k for k, old in enumerate(sorted(moves))}
            for step in (parked, {parked[old]: new for old, new in moves.items()}):
                for old, new in sorted(step.items()):
                    for table in (samples, feedback, classes):
                        conn.execute(sa.update(table).where(table.c.label == old).values(label=new))
            return moves

    def name_classes(self, names: Sequence[str], first: int) -> dict[str, int]:
        """Every named new class with its index: a known name keeps its own, an unknown one takes the
        next free index from ``first`` (the deployment's class count) on, once, whichever replica asks."""
        with self.transaction() as conn:
            return _name_in(conn, names, first)

    # leases -------------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl_seconds: float, *, now: float | None = None) -> bool:
        """Take or renew lease ``name`` for ``holder``; False while another holder's lease is unexpired.

        One statement (insert, or update only where expired or already ours), so two workers racing
        on SQLite or PostgreSQL can never both hold it.
        """
        _check_name(name, "lease name")
        now = time.time() if now is None else now
        dialect = {"sqlite": sqlite, "postgresql": postgresql}[self.engine.dialect.name]
        ins = dialect.insert(leases).values(
            name=name, holder=holder, acquired=now, heartbeat=now, expires=now + ttl_seconds
        )
        stmt = ins.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": holder,
                "heartbeat": now,
                "expires": now + ttl_seconds,
                "acquired": sa.case((leases.c.holder == holder, leases.c.acquired), else_=now),
            },
            where=sa.or_(leases.c.holder == holder, leases.c.expires < now),
        ).returning(leases.c.holder)
        with self.transaction() as conn:
            return conn.execute(stmt).first() is not None

    def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` up at once (a clean shutdown), so a standby need not wait for expiry."""
        with self.transaction() as conn:
            conn.execute(sa.delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    def lease(self, name: str) -> Lease | None:
        """Who holds lease ``name`` and its last heartbeat (None: never taken or released)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if row is None else Lease(row.name, row.holder, row.acquired, row.heartbeat, row.expires)

    # events -------------------------------------------------------------------------------------
    def add_event(self, kind: EventKind | str, payload: Mapping[str, Any] | None = None) -> int:
        """Log a decision (drift, training, gate, promotion, rollback, deployment...); return its id."""
        with self.transaction() as conn:
            return insert_event(conn, kind, payload)

    def add_drift_check(
        self, version: int | None, first_id: int, last_id: int, report: Mapping[str, Any]
    ) -> int:
        """Record one judged block (``report``: a drift report's event form); return its id."""
        drifted = (report.get("details") or {}).get("drifted_features")
        row = {"ts": time.time(), "version": version, "monitor": str(report.get("monitor") or "?"),
               "first_id": first_id, "last_id": last_id, "score": _finite(report.get("score")),
               "threshold": _finite(report.get("threshold")), "p_value": _finite(report.get("p_value")),
               "drift": bool(report.get("drift")), "drifted": len(drifted) if isinstance(drifted, list) else None}  # fmt: skip
        with self.transaction() as conn:
            return int(conn.execute(sa.insert(drift_checks).values(**row)).inserted_primary_key[0])  # type: ignore[index]

    def drift_checks(self, limit: int = 200, after_id: int | None = None) -> list[DriftCheck]:
        """Judged blocks oldest first: the ``limit`` most recent, or the ``limit`` oldest after ``after_id``."""
        return [
            DriftCheck(*r) for r in self._page(sa.select(drift_checks), drift_checks.c.id, limit, after_id)
        ]

    def events(
        self,
        kind: EventKind | str | None = None,
        *,
        since: float | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events oldest first: the ``limit`` most recent ones, or with ``after_id`` (a polling cursor)
        the ``limit`` oldest after it, so a poller that sets it to the last id it saw misses none."""
        q = sa.select(events)
        if kind is not None:
            q = q.where(events.c.kind == str(kind))
        if since is not None:
            q = q.where(events.c.ts >= since)
        return [Event(r.id, r.ts, r.kind, r.payload) for r in self._page(q, events.c.id, limit, after_id)]

    def _page(
        self, q: sa.Select[Any], key: sa.Column[Any], limit: int | None, after_id: int | None
    ) -> list[Any]:
        """Rows of ``q`` oldest first: the ``limit`` most recent, or the ``limit`` oldest after ``after_id``
        (a poller that sets it to the last id it saw misses none)."""
        if after_id is not None:
            q = q.where(key > after_id).order_by(key).limit(limit)
        else:
            q = q.order_by(key.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return list(rows) if after_id is not None else list(rows)[::-1]


def _finite(value: Any) -> float | None:
    """A number a column can hold (a report's NaN or inf, or a string, as None)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# --- helpers shared with the registry -----------------------------------------------------------
def insert_event(conn: sa.Connection, kind: EventKind | str, payload: Mapping[str, Any] | None = None) -> int:
    """Insert an event inside the caller's transaction, so it commits with the change it describes."""
    try:
        kind = EventKind(kind).value
    except ValueError:
        raise StoreError(
            f"unknown event kind {kind!r}; valid: {', '.join(k.value for k in EventKind)}"
        ) from None
    payload = check_json(dict(payload or {}), "event payload")
    return int(
        conn.execute(
            sa.insert(events).values(ts=time.time(), kind=kind, payload=payload)
        ).inserted_primary_key[0]  # type: ignore[index]
    )


def upsert(conn: sa.Connection, table: sa.Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Insert a row or update the one with the same ``key`` (SQLite and PostgreSQL)."""
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[conn.dialect.name]
    stmt = dialect.insert(table).values({**key, **values})
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=dict(values)))


def _insert_ids(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int | None]:
    """Insert sample rows and return their ids in order. On SQLite one ``executemany`` and
    ``last_insert_rowid()``: the write lock is held (BEGIN IMMEDIATE) and ids come from AUTOINCREMENT,
    so the rows got consecutive ids ending there. ``RETURNING`` with ordered ids makes SQLAlchemy
    run one INSERT per row on SQLite (profiled: about half of ``record_served``); elsewhere it is
    one statement and is kept."""
    if conn.dialect.name == "sqlite":
        conn.execute(sa.insert(samples), rows)
        last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
        return list(range(last - len(rows) + 1, last + 1))
    stmt = sa.insert(samples).returning(samples.c.id, sort_by_parameter_order=True)
    return [int(i) for i in conn.execute(stmt, rows).scalars()]


def prediction_ids(n: int) -> list[str]:
    """``n`` new prediction ids: UUIDv7 (RFC 9562) as 32 hex digits.

    A millisecond timestamp leads, so new ids land at the right edge of the unique index on
    ``predictions.id`` (and of ``request_id``'s, which defaults to it) instead of on random pages as
    uuid4 ids did: a 32-row serving commit wrote 2.5x faster. 74 random bits keep them unique.
    """
    ms = time.time_ns() // 1_000_000
    rand = os.urandom(10 * n)
    ids = []
    for i in range(n):
        r = int.from_bytes(rand[10 * i : 10 * i + 10], "big")  # 80 random bits, 74 used
        rand_a, rand_b = (r >> 68) & 0xFFF, r & ((1 << 62) - 1)
        ids.append(f"{(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b:032x}")
    return ids


def _advance(conn: sa.Connection, name: str, value: int) -> None:
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[conn.dialect.name]
    conn.execute(dialect.insert(cursors).values(name=name, value=value).on_conflict_do_nothing())
    conn.execute(
        sa.update(cursors).where(cursors.c.name == name, cursors.c.value < value).values(value=value)
    )


class _Checkpointer:
    """Copies the WAL into the database every ``every`` seconds, off the request path.

    A PASSIVE checkpoint never waits for, nor blocks, readers and the writer, and sqlite3 releases the
    GIL meanwhile, so serving threads keep running. But SQLite rewinds the WAL (the next commit writes
    it from the start) only after a checkpoint has copied all of it, which a background pass never
    does while commits keep arriving: under steady load the file grew without bound (1.45 GB in 30 s at
    64 connections). So once a pass finds ``rewind_frames`` frames in the WAL it marks a rewind due,
    and the next write transaction first copies, on the writer's own thread, the few frames committed
    since that pass (``catch_up``): no commit runs concurrently, the copy completes and the commit
    after it starts the WAL over. The writer pays for those few frames, not the whole WAL.
    """

    def __init__(self, engine: sa.Engine, every: float, rewind_frames: int = 1000) -> None:
        self.engine, self.every, self.rewind_frames = engine, every, rewind_frames
        self.rewind_due = False
        self.checkpoints = self.catch_ups = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lifelong-checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.checkpoint()

    def checkpoint(self) -> None:
        """The background pass."""
        frames = self._passive()
        if frames is not None:
            self.checkpoints += 1
            self.rewind_due = frames >= self.rewind_frames

    def catch_up(self) -> None:
        """On the writer's thread, before its transaction: copy what came after the background pass."""
        self.rewind_due = False
        if self._passive() is not None:
            self.catch_ups += 1

    def _passive(self) -> int | None:
        """Frames in the WAL, after a PASSIVE checkpoint (None if it could not run)."""
        try:
            with self.engine.connect() as conn:
                return int(conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()[1])
        except sa.exc.SQLAlchemyError:  # busy or closing: the next tick retries
            log.debug("WAL checkpoint skipped", exc_info=True)
            return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _configure_sqlite(engine: sa.Engine, synchronous: str = "NORMAL", *, autocheckpoint: bool = True) -> None:
    """WAL lets readers run beside the one writer. With synchronous=NORMAL a committed write is in the
    WAL file before the call returns, so it survives a crash or SIGKILL of the process (the tests kill
    writers to check); only an OS crash or power loss can drop the last commits. FULL (set
    LIFELONG_SQLITE_SYNCHRONOUS=FULL) fsyncs at every commit and survives power loss too, at ~0.5 ms per
    commit, measured as a quarter of the serving path's CPU. We emit BEGIN ourselves because Python's
    sqlite3 does not begin before SELECTs."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={synchronous}",
            "foreign_keys=ON",
            "busy_timeout=30000",
            "journal_size_limit=67108864",  # a checkpoint that resets the WAL cuts it back to 64 MiB
            *([] if autocheckpoint else ["wal_autocheckpoint=0"]),  # a _Checkpointer does it instead
        ):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Writers lock up front: a deferred read-then-write fails at once if another writer committed.
        write = conn.get_execution_options().get("lifelong_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _no_prediction(prediction_id: Any) -> str:
    return (
        f'no prediction with id {prediction_id!r}: use the id the prediction returned, its "id", not '
        "the request_id it was sent with (predictions "
        "answered while the store could not write are recorded once it is back, unless more than "
        "LIFELONG_UNRECORDED_BACKLOG waited: those are dropped and counted); retention (--keep-samples, "
        "--keep-days) deletes old ones, which can then take no feedback"
    )


def _id_window(q: sa.Select, since_id: int | None, until_id: int | None, labelled_only: bool) -> sa.Select:
    if since_id is not None:
        q = q.where(samples.c.id > since_id)
    if until_id is not None:
        q = q.where(samples.c.id <= until_id)
    if labelled_only:
        q = q.where(samples.c.label.is_not(None))
    return q


def _features(x: Any) -> np.ndarray:
    """Validate a batch of features and make it little-endian float32 or uint8, C-contiguous."""
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()
    x = np.asarray(x)
    if x.ndim < 2:
        raise StoreError(
            f"x must have a batch dimension and features, got shape {x.shape}; for one sample use x[None]"
        )
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise StoreError(
            f"features must be floating point or uint8, got {x.dtype}; cast with x.astype(np.float32)"
        )
    with np.errstate(over="ignore"):  # overflow to inf is caught just below
        out = np.ascontiguousarray(x, dtype="<f4")
    if not np.isfinite(out).all():
        raise StoreError(
            "features contain NaN or infinite values (or values beyond float32 range); clean them first"
        )
    return out


def _labels(y: Any, n: int | None, what: str) -> list[int]:
    """Validate integer class labels >= 0 (``n`` of them when given)."""
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1 and not (arr.ndim == 0 and n == 1):
        raise StoreError(f"{what} must be 1-D, one label per sample, got shape {arr.shape}")
    arr = arr.reshape(-1)
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
        raise StoreError(f"{what} must be integers, got dtype {arr.dtype}; cast with .astype(int)")
    if n is not None and len(arr) != n:
        raise StoreError(f"{what} has {len(arr)} labels for {n} samples")
    if arr.size and arr.min() < 0:
        raise StoreError(f"{what} must be >= 0, found {int(arr.min())}")
    return [int(v) for v in arr]


def _scores(scores: Any, n: int) -> list[list[float] | None]:
    if scores is None:
        return [None] * n
    if isinstance(scores, Tensor):
        scores = scores.detach().cpu().float().numpy()
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2 or len(arr) != n:
        raise StoreError(f"scores must have shape (n, classes) with n={n}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise StoreError("scores contain NaN or infinite values")
    return arr.tolist()


def _same_length(values: Sequence[Any] | None, n: int, what: str) -> list[Any]:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise StoreError(f"{what} has {len(values)} entries for {n} predictions")
    return list(values)


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int | np.integer) or version < 1:
        raise StoreError(f"a model version is an integer >= 1, got {version!r}")


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise StoreError(f"{what} must match [a-z][a-z0-9_-]* (at most 64 characters), got {name!r}")


def check_json(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON (finite numbers only), or raise a StoreError naming ``what``."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise StoreError(
            f"{what} must be JSON with finite numbers (convert numpy values with float()/int()): {err}"
        ) from err


def _decode(rows: Sequence[Any]) -> Samples:
    if not rows:
        return Samples(torch.empty(0, dtype=torch.int64), torch.empty(0), torch.empty(0, dtype=torch.int64))
    shapes, dtypes = {tuple(r.shape) for r in rows}, {r.dtype for r in rows}
    if len(shapes) > 1 or len(dtypes) > 1:
        raise StoreError(
            f"samples {rows[0].id}..{rows[-1].id} mix shapes {sorted(shapes)} / dtypes {sorted(dtypes)}; "
            "ask for a narrower id window"
        )
    dtype = np.dtype("<f4") if dtypes == {"float32"} else np.dtype(np.uint8)
    try:
        x = np.frombuffer(b"".join(r.features for r in rows), dtype=dtype).reshape(len(rows), *shapes.pop())
    except ValueError as err:
        raise StoreError(
            f"stored features of samples {rows[0].id}..{rows[-1].id} are corrupted: {err}"
        ) from err
    ids = torch.tensor([r.id for r in rows], dtype=torch.int64)
    y = torch.tensor([-1 if r.label is None else r.label for r in rows], dtype=torch.int64)
    return Samples(ids, torch.from_numpy(x.astype(dtype.newbyteorder("="))), y)


@dataclass(frozen=True)
class NewClasses:
    """The new classes' names a labelled write uses: ``names`` (in the classes table or not yet),
    ``first`` (the deployment's class count) and ``tentative``, the indices the labels were checked
    with (:func:`assign_indices` over :meth:`Store.class_names`). The write names them in its own
    transaction, so a refused request names nothing (an index named for nothing would later be an
    output of a grown head), and moves a tentative index that changed meanwhile (another replica
    named a class, or :meth:`Store.compact_classes` moved one) to the one the table holds."""

    names: tuple[str, ...]
    first: int
    tentative: Mapping[str, int]


def assign_indices(known: Mapping[str, int], names: Sequence[str], first: int) -> dict[str, int]:
    """``known`` names with theirs, and each new one in ``names`` the next free index from ``first`` on."""
    new = [n for n in dict.fromkeys(names) if n not in known]
    start = max([first, *(i + 1 for i in known.values())])
    return {**known, **{n: start + k for k, n in enumerate(new)}}


def _name_in(conn: sa.Connection, names: Sequence[str], first: int) -> dict[str, int]:
    """Name ``names`` in the classes table inside ``conn``'s transaction; every known name's index."""
    _lock_classes(conn)
    known = {r.name: r.label for r in conn.execute(sa.select(classes.c.name, classes.c.label))}
    named = assign_indices(known, names, first)
    rows = [{"label": i, "name": n} for n, i in named.items() if n not in known]
    if rows:
        conn.execute(sa.insert(classes), rows)
    return named


def _lock_classes(conn: sa.Connection) -> None:
    """Serialise the writers of the classes table (SQLite: its write lock already does)."""
    if conn.dialect.name == "postgresql":  # readers pass; a second namer waits for this one
        conn.execute(sa.text("LOCK TABLE classes IN SHARE ROW EXCLUSIVE MODE"))


def _named_labels(conn: sa.Connection, labels: list[int | None], new: NewClasses | None) -> list[int | None]:
    """``labels`` after naming ``new``'s classes in this transaction, each tentative index moved to the
    one the table gave (they differ only when another replica named a class in between)."""
    if new is None:
        return labels
    named = _name_in(conn, new.names, new.first)
    moved = {new.tentative[n]: named[n] for n in new.names if new.tentative[n] != named[n]}
    return [moved.get(lab, lab) if lab is not None else None for lab in labels]
