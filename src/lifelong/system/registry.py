"""Immutable model versions and the movable aliases (champion, canary, shadow) that point at them.

A version is a directory artifact (a learner checkpoint) plus a row: parent, data window, strategy
and its parameters, metrics, and the sha256 of the directory's content. Versions never change;
promoting or rolling back only moves an alias, and every move is logged (``deployments`` rows and
an event) in the same transaction, so rollback can walk back through earlier holders.

Publishing is crash-safe. The caller writes into a private staging directory; on success it is
fsynced, renamed atomically to ``<artifacts_dir>/v<N>`` and only then marked ``ready``. A killed
publisher leaves at most an unlocked staging directory or a ``pending`` row, which the next
``Registry(...)`` removes. Processes on one host coordinate through ``flock`` on
``<artifacts_dir>/.lock`` (POSIX only). Across hosts sharing PostgreSQL, a registry opened on one
host while another is publishing can make that publish fail, never half-register it.

Example
-------
>>> import tempfile
>>> from lifelong.checks import toy_model
>>> from lifelong.learn import Learner
>>> from lifelong.system.store import Store
>>> with tempfile.TemporaryDirectory() as tmp, Store(data_dir=tmp) as store:
...     registry = Registry(store)  # artifacts under <tmp>/artifacts
...     with registry.publish(strategy="ewc", params={"lam": 100.0}) as draft:
...         Learner(toy_model()).save(draft.path)
...     registry.set_alias("champion", draft.version)
...     registry.alias("champion")
1
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from lifelong.errors import NotFoundError, RegistryError
from lifelong.learn.checkpoint import fsync as fsync_path
from lifelong.system.events import EventKind
from lifelong.system.store import Store, _Id, check_json, insert_event, metadata, upsert

# --- the registry's tables (it is their only writer) ---------------------------------------------
model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("parent", sa.Integer, sa.ForeignKey("model_versions.version")),
    sa.Column("created", sa.Double, nullable=False),
    sa.Column("strategy", sa.String(128), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("window_first", _Id),
    sa.Column("window_last", _Id),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("artifact_path", sa.String(255), nullable=False),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column(
        "status", sa.String(16), nullable=False
    ),  # "pending" while publishing, "ready", "collected" (weights deleted)
    sqlite_autoincrement=True,
)
aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, sa.ForeignKey("model_versions.version"), nullable=False),
    sa.Column("share", sa.Double),  # canary traffic share / shadow mirroring share
    sa.Column("updated", sa.Double, nullable=False),
)
deployments = sa.Table(  # alias history: one row per move, so rollback can walk back
    "deployments",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False, index=True),  # the alias: champion|canary|shadow
    sa.Column("version", sa.Integer, sa.ForeignKey("model_versions.version"), nullable=False),
    sa.Column("share", sa.Double),
    # active|replaced|ended|rolled_back (undone) or restored (a rollback's row carries it on from then)
    sa.Column("state", sa.String(16), nullable=False),
    sqlite_autoincrement=True,
)

_ALIAS = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_STRATEGY = re.compile(r"^[A-Za-z0-9_.+-]{1,128}$")
_ARTIFACT = re.compile(r"^v[0-9]+$")
LISTED = ("ready", "collected")  # a version row a reader sees (pending ones are publishes in flight)
mv = model_versions


class Unset:
    """The type of :data:`UNSET`: no expectation given."""


UNSET = Unset()


class AliasMoved(RegistryError):
    """An alias no longer points where the caller read it (moved by hand or by another worker meanwhile)."""

    def __init__(self, alias: str, expected: int | None, now: int | None) -> None:
        def at(v: int | None) -> str:
            return "unset" if v is None else f"v{v}"

        super().__init__(f"{alias} moved from {at(expected)} to {at(now)} meanwhile")
        self.alias, self.expected, self.now = alias, expected, now


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, as read back from the store."""

    version: int
    parent: int | None
    created: float
    strategy: str
    params: dict[str, Any]
    window: tuple[int, int] | None  # (first, last) sample id trained on
    metrics: dict[str, Any]
    path: Path
    sha256: str
    collected: bool = False  # its artifact was deleted by retention: listed and in the lineage, never loaded


@dataclass(frozen=True)
class AliasState:
    version: int
    share: float | None  # canary traffic share or shadow mirroring share; None for the champion


@dataclass
class Draft:
    """Where a publisher writes its artifact. ``version`` is set once the publish has committed."""

    path: Path
    version: int | None = None

    def __fspath__(self) -> str:
        return str(self.path)


def _end_variants_of_the_champion(conn: sa.Connection) -> None:
    """End a canary or shadow that now points at the champion's version (a promotion of it by hand, a
    rollback onto it): a variant of the champion compares it with itself. In the caller's transaction."""
    rows = {r.name: r.version for r in conn.execute(sa.select(aliases.c.name, aliases.c.version))}
    champion = rows.get("champion")
    if champion is None:
        return
    for alias in ("canary", "shadow"):
        if rows.get(alias) == champion:
            d = deployments
            conn.execute(sa.update(d).where(d.c.kind == alias, d.c.state == "active").values(state="ended"))
            conn.execute(sa.delete(aliases).where(aliases.c.name == alias))
            insert_event(conn, EventKind.DEPLOYMENT, {"alias": alias, "version": None, "previous": champion,
                                                      "reason": f"v{champion} became the champion"})  # fmt: skip


class Registry:
    """Versions recorded in ``store``; artifacts live under ``artifacts_dir`` (``<data_dir>/artifacts``)."""

    def __init__(self, store: Store, artifacts_dir: str | os.PathLike[str] | None = None) -> None:
        self.store = store
        self.artifacts_dir = Path(
            artifacts_dir if artifacts_dir is not None else store.data_dir / "artifacts"
        )
        self._staging = self.artifacts_dir / ".staging"
        self._staging.mkdir(parents=True, exist_ok=True)
        if not store.opened_offline:  # else the tables are made (and drafts cleaned) by a store that answers
            metadata.create_all(store.engine, tables=[model_versions, aliases, deployments])
            self.cleanup()

    # publishing ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def publish(
        self,
        *,
        strategy: str,
        parent: int | None = None,
        params: Mapping[str, Any] | None = None,
        window: tuple[int, int] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> Iterator[Draft]:
        """Yield a :class:`Draft` to write the artifact into; register it if the body returns.

        If the body raises, the draft is deleted and nothing is registered.
        """
        row = self._validate(strategy, parent, params, window, metrics)
        token = uuid.uuid4().hex
        staging, lock_path = self._staging / token, self._staging / f"{token}.lock"
        with _flock(self._global_lock):  # so cleanup never sees the lock file without its lock held
            lock = _hold(lock_path)
            staging.mkdir()
        try:
            draft = Draft(staging)
            yield draft
            draft.version = self._commit(staging, row)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
            lock.close()

    def _commit(self, staging: Path, row: dict[str, Any]) -> int:
        sha = hash_artifact(staging, fsync=True)
        with _flock(self._global_lock):
            with self.store.transaction() as conn:
                values = {**row, "created": time.time(), "artifact_sha256": sha, "status": "pending"}
                version = int(
                    conn.execute(sa.insert(mv).values(artifact_path="", **values)).inserted_primary_key[0]  # type: ignore[index]
                )
            target, moved = self.artifacts_dir / f"v{version}", False
            try:
                if target.exists():
                    raise RegistryError(_not_in_store(self.artifacts_dir, version))
                os.replace(staging, target)
                moved = True
                fsync_path(self.artifacts_dir)
                with self.store.transaction() as conn:
                    ready = sa.update(mv).where(mv.c.version == version, mv.c.status == "pending")
                    if conn.execute(ready.values(status="ready", artifact_path=target.name)).rowcount != 1:
                        raise RegistryError(
                            f"version {version} was cleaned up by a registry opened elsewhere while it was "
                            "being published; publish again"
                        )
                    payload = {
                        "version": version,
                        "parent": row["parent"],
                        "strategy": row["strategy"],
                        "sha256": sha,
                    }
                    insert_event(conn, EventKind.REGISTRATION, payload)
            except BaseException:
                if moved:
                    shutil.rmtree(target, ignore_errors=True)
                with contextlib.suppress(Exception), self.store.transaction() as conn:
                    conn.execute(sa.delete(mv).where(mv.c.version == version))
                raise
        return version

    def cleanup(self) -> None:
        """Remove what killed publishers left: staging dirs whose lock is free, and ``pending`` versions."""
        with _flock(self._global_lock):
            for token in {p.name.removesuffix(".lock") for p in self._staging.iterdir()}:
                lock_path = self._staging / f"{token}.lock"
                if not _is_held(lock_path):
                    shutil.rmtree(self._staging / token, ignore_errors=True)
                    lock_path.unlink(missing_ok=True)
            # Delete the rows first and remove only their directories: a publisher that flips its row
            # to "ready" meanwhile keeps both, and one whose row is gone fails instead of half-registering.
            with self.store.transaction() as conn:
                stale = sa.delete(mv).where(mv.c.status == "pending").returning(mv.c.version)
                pending = conn.execute(stale).scalars().all()
            for version in pending:
                shutil.rmtree(self.artifacts_dir / f"v{version}", ignore_errors=True)

    # reading ------------------------------------------------------------------------------------
    def get(self, version: int, *, collected: bool = False) -> ModelVersion:
        """A registered version; one whose artifact retention deleted only with ``collected`` (its
        record: parent, metrics, window), since it can no longer be loaded, served or promoted."""
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(mv).where(mv.c.version == version, mv.c.status.in_(LISTED))).first()
        if row is None:
            raise NotFoundError(
                f"no model version {version}; list them with `lifelong models` (GET /v1/models)"
            )
        if row.status == "collected" and not collected:
            raise RegistryError(
                f"version {version}'s artifact was deleted by retention (--keep-versions): it stays in the "
                "lineage but cannot be loaded, served or promoted"
            )
        return self._record(row)

    def versions(self, *, collected: bool = False) -> list[ModelVersion]:
        """Registered versions, oldest first; with ``collected`` also those whose artifact was deleted."""
        statuses = LISTED if collected else ("ready",)
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(mv).where(mv.c.status.in_(statuses)).order_by(mv.c.version)).all()
        return [self._record(r) for r in rows]

    def verify(self, version: int) -> None:
        """Re-hash the artifact of ``version``; raise RegistryError if it is missing or was modified."""
        record = self.get(version)
        if not record.path.is_dir():
            raise RegistryError(
                f"artifact of version {version} is missing at {record.path}; restore it from a backup"
            )
        actual = hash_artifact(record.path)
        if actual != record.sha256:
            raise RegistryError(
                f"artifact of version {version} at {record.path} has sha256 {actual}, but {record.sha256} "
                "was registered: it was modified or corrupted; restore it from a backup, or serve another version"
            )

    # aliases ------------------------------------------------------------------------------------
    def alias(self, name: str) -> int | None:
        """The version ``name`` points at, or None if the alias is not set."""
        state = self.aliases().get(_check_alias(name))
        return None if state is None else state.version

    def aliases(self) -> dict[str, AliasState]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(aliases)).all()
        return {r.name: AliasState(r.version, r.share) for r in rows}

    def set_alias(
        self,
        alias: str,
        version: int,
        *,
        share: float | None = None,
        expected: int | None | Unset = UNSET,
        champion: int | None | Unset = UNSET,
    ) -> None:
        """Point ``alias`` at ``version`` (with a traffic ``share`` for a canary or shadow); logs an event.

        ``expected``: move it only if it still points there (None: unset), checked under the alias lock in
        the same transaction, else an :class:`AliasMoved` naming where it points now. A worker promoting
        the candidate it trained from v2 read the champion before publishing and moved it after: a
        rollback to v3 in between was undone 38 ms after it answered. ``champion``: likewise, move
        ``alias`` only while the champion is this version (a canary is judged against the champion it
        was trained from).
        """
        _check_alias(alias)
        if alias == "champion" and share is not None:
            raise RegistryError("the champion serves all traffic not sent elsewhere; it takes no share")
        if share is not None and not 0.0 < share <= 1.0:
            raise RegistryError(f"share must be in (0, 1], got {share}")
        with self.store.transaction() as conn:
            _require_ready(conn, version, f"point {alias} at it")
            _lock_aliases(conn)
            current = conn.execute(sa.select(aliases).where(aliases.c.name == alias)).first()
            now_at = None if current is None else current.version
            if not isinstance(expected, Unset) and now_at != expected:
                raise AliasMoved(alias, expected, now_at)
            if current is not None and (current.version, current.share) == (version, share):
                return
            if alias != "champion":
                serving = conn.execute(
                    sa.select(aliases.c.version).where(aliases.c.name == "champion")
                ).first()
                serving_version = None if serving is None else serving.version
                if not isinstance(champion, Unset) and serving_version != champion:
                    raise AliasMoved("champion", champion, serving_version)
                if serving_version == version:
                    raise RegistryError(
                        f"v{version} is the champion; a {alias} of it would compare it with itself: "
                        "deploy another version"
                    )
            now, d = time.time(), deployments
            if current is not None and current.version == version:  # a ramp: the same version, another share
                # keeps its deployment (and so the evidence gathered since, and what a rollback goes back to):
                # a new row dropped a canary's labelled predictions at 10% -> 50% (a trial)
                conn.execute(sa.update(d).where(d.c.kind == alias, d.c.state == "active").values(share=share))
                upsert(conn, aliases, {"name": alias}, {"version": version, "share": share, "updated": now})
                insert_event(conn, EventKind.DEPLOYMENT, {"alias": alias, "version": version, "previous": version,
                                                          "share": share, "previous_share": current.share})  # fmt: skip
                return
            conn.execute(
                sa.update(d).where(d.c.kind == alias, d.c.state == "active").values(state="replaced")
            )
            conn.execute(
                sa.insert(d).values(ts=now, kind=alias, version=version, share=share, state="active")
            )
            upsert(conn, aliases, {"name": alias}, {"version": version, "share": share, "updated": now})
            previous = None if current is None else current.version
            payload = {"alias": alias, "version": version, "previous": previous, "share": share,
                       "previous_share": None if current is None else current.share}  # fmt: skip
            insert_event(conn, EventKind.PROMOTION if alias == "champion" else EventKind.DEPLOYMENT, payload)
            _end_variants_of_the_champion(conn)

    def remove_alias(self, alias: str) -> None:
        """Unset ``alias`` (end a canary or shadow); a no-op if it is not set."""
        _check_alias(alias)
        with self.store.transaction() as conn:
            _lock_aliases(conn)
            current = conn.execute(sa.select(aliases).where(aliases.c.name == alias)).first()
            if current is None:
                return
            d = deployments
            conn.execute(sa.update(d).where(d.c.kind == alias, d.c.state == "active").values(state="ended"))
            conn.execute(sa.delete(aliases).where(aliases.c.name == alias))
            insert_event(
                conn, EventKind.DEPLOYMENT, {"alias": alias, "version": None, "previous": current.version}
            )

    def rollback(self, alias: str = "champion") -> int | None:
        """Move ``alias`` back to its previous holder and return it (None: the alias was unset before).

        Repeated rollbacks keep walking back. The champion is never left unset. The restored version
        gets a new ``deployments`` row dated now (its live figures, the worker's floor and a canary's
        comparison, start at the rollback, see :meth:`deployed_since`); the row of its first deployment
        keeps that date, marked ``restored`` so that a later rollback walks past it.
        """
        _check_alias(alias)
        d = deployments
        with self.store.transaction() as conn:
            _lock_aliases(conn)
            current, previous = _rollback_rows(conn, alias)
            conn.execute(sa.update(d).where(d.c.id == current.id).values(state="rolled_back"))
            if previous is None:
                conn.execute(sa.delete(aliases).where(aliases.c.name == alias))
            else:
                now = time.time()
                conn.execute(sa.update(d).where(d.c.id == previous.id).values(state="restored"))
                conn.execute(sa.insert(d).values(ts=now, kind=alias, version=previous.version,
                                                 share=previous.share, state="active"))  # fmt: skip
                values = {"version": previous.version, "share": previous.share, "updated": now}
                upsert(conn, aliases, {"name": alias}, values)
            restored = None if previous is None else previous.version
            insert_event(conn, EventKind.ROLLBACK, {"alias": alias, "from": current.version, "to": restored})
            _end_variants_of_the_champion(conn)
        return restored

    def rollback_target(self, alias: str = "champion") -> int | None:
        """The version :meth:`rollback` would restore (None: it would unset the alias), moving nothing:
        callers verify and load it first, so a rollback never points an alias at an artifact that
        cannot serve (a damaged one, or one this installation cannot rebuild)."""
        _check_alias(alias)
        with self.store.engine.connect() as conn:
            _, previous = _rollback_rows(conn, alias)
        return None if previous is None else int(previous.version)

    def history(self, alias: str = "champion") -> list[int]:
        """Versions ``alias`` pointed at, newest first (rolled-back ones excluded), without repeats."""
        d = deployments
        q = (
            sa.select(d.c.version)
            .where(d.c.kind == alias, d.c.state != "rolled_back")
            .order_by(d.c.id.desc())
        )
        with self.store.engine.connect() as conn:
            versions = conn.execute(q).scalars().all()
        return list(dict.fromkeys(int(v) for v in versions))

    def deployed_since(self, alias: str) -> float | None:
        """When ``alias`` last moved to its current version (None: not set); a rollback is a move, so
        a version rolled back to counts from the rollback, not from when it was first deployed."""
        d = deployments
        q = sa.select(sa.func.max(d.c.ts)).where(d.c.kind == alias, d.c.state == "active")
        with self.store.engine.connect() as conn:
            return conn.execute(q).scalar_one_or_none()

    def collect(self, keep_last: int = 5) -> list[int]:
        """Delete the artifacts of versions no alias points at, that are older than the last
        ``keep_last`` versions and not in the champion's recent history; return those versions.

        The rows stay (lineage is never lost); only the weights go, and :meth:`get` then refuses them.
        """
        if keep_last < 1:
            raise RegistryError(f"keep_last must be >= 1, got {keep_last}")
        keep = {a.version for a in self.aliases().values()}
        keep |= set(self.history("champion")[:keep_last])
        versions = [v.version for v in self.versions()]
        keep |= set(versions[-keep_last:])
        gone = [v for v in versions if v not in keep]
        with _flock(self._global_lock):
            with self.store.transaction() as conn:
                for v in gone:
                    conn.execute(sa.update(mv).where(mv.c.version == v).values(status="collected"))
            for v in gone:
                shutil.rmtree(self.artifacts_dir / f"v{v}", ignore_errors=True)
        return gone

    # internals ----------------------------------------------------------------------------------
    @property
    def _global_lock(self) -> Path:
        return self.artifacts_dir / ".lock"

    def _validate(
        self,
        strategy: str,
        parent: int | None,
        params: Mapping[str, Any] | None,
        window: tuple[int, int] | None,
        metrics: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if not isinstance(strategy, str) or not _STRATEGY.match(strategy):
            raise RegistryError(f"strategy must match [A-Za-z0-9_.+-]{{1,128}}, got {strategy!r}")
        if parent is not None:
            self.get(parent)  # NotFoundError if absent
        if window is not None:
            first, last = (int(v) for v in window)
            if not 0 <= first <= last:
                raise RegistryError(
                    f"window must be (first, last) sample ids with first <= last, got {window}"
                )
        return {
            "parent": parent,
            "strategy": strategy,
            "params": check_json(dict(params or {}), "params"),
            "metrics": check_json(dict(metrics or {}), "metrics"),
            "window_first": None if window is None else first,
            "window_last": None if window is None else last,
        }

    def _record(self, row: sa.Row[Any]) -> ModelVersion:
        if not _ARTIFACT.match(row.artifact_path):  # never follow a tampered path out of artifacts_dir
            raise RegistryError(f"version {row.version} has an invalid artifact path {row.artifact_path!r}")
        window = None if row.window_first is None else (row.window_first, row.window_last)
        return ModelVersion(
            row.version,
            row.parent,
            row.created,
            row.strategy,
            row.params,
            window,
            row.metrics,
            self.artifacts_dir / row.artifact_path,
            row.artifact_sha256,
            row.status == "collected",
        )


def hash_artifact(root: str | os.PathLike[str], *, fsync: bool = False) -> str:
    """sha256 over the sorted relative paths, sizes and bytes of every file under ``root``.

    With ``fsync`` each file and directory is also flushed to disk (before a publish is renamed).
    Symbolic links are refused: an artifact must not point outside itself.
    """
    root = Path(root)
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                raise RegistryError(f"artifact contains a symbolic link {path}; write plain files only")
            if name in filenames:
                files.append((path.relative_to(root).as_posix(), path))
        if fsync:
            fsync_path(Path(dirpath))
    if not files:
        raise RegistryError(f"artifact directory {root} is empty; write the checkpoint into draft.path")
    digest = hashlib.sha256()
    for rel, path in sorted(files):
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest.update(len(rel.encode()).to_bytes(8, "little") + rel.encode() + size.to_bytes(8, "little"))
            for chunk in iter(functools.partial(f.read, 1 << 20), b""):
                digest.update(chunk)
            if fsync:
                os.fsync(f.fileno())
    return digest.hexdigest()


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise RegistryError(f"alias must match [a-z0-9][a-z0-9_-]* (at most 64 characters), got {alias!r}")
    return alias


def _rollback_rows(conn: sa.Connection, alias: str) -> tuple[sa.Row[Any], sa.Row[Any] | None]:
    """The deployment rows a rollback of ``alias`` leaves and restores (None: the alias is unset)."""
    d = deployments
    live = sa.select(d).where(d.c.kind == alias, d.c.state.not_in(("rolled_back", "restored")))
    rows = conn.execute(live.order_by(d.c.id.desc()).limit(2)).all()
    if not rows or rows[0].state != "active":
        raise RegistryError(f"alias {alias!r} is not set; there is nothing to roll back")
    current, previous = rows[0], (rows[1] if len(rows) > 1 and rows[1].state == "replaced" else None)
    if previous is None and alias == "champion":
        raise RegistryError(
            f"champion v{current.version} has no earlier holder to roll back to; "
            "promote another version instead (`lifelong promote VERSION`, POST /v1/models/{version}/promote, "
            "or registry.set_alias('champion', version))"
        )
    if previous is not None:  # a version whose weights retention deleted cannot serve again
        _require_ready(conn, previous.version, f"roll {alias} back to it")
    return current, previous


def _lock_aliases(conn: sa.Connection) -> None:
    """Serialize alias moves (read the history, then write it) across replicas; readers are not blocked.

    SQLite needs nothing more: the store's write transactions already hold its single write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE aliases, deployments IN SHARE ROW EXCLUSIVE MODE")


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        yield


def _hold(path: Path) -> IO[str]:
    f = path.open("a")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def _is_held(path: Path) -> bool:
    try:
        with path.open("r") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True
    return False


def _require_ready(conn: sa.Connection, version: int, to: str) -> None:
    """Refuse a version that is not published, or whose artifact retention collected, naming which."""
    row = conn.execute(sa.select(mv.c.status).where(mv.c.version == version)).first()
    if row is None or row.status == "pending":
        raise NotFoundError(f"no model version {version}; publish it before pointing an alias at it")
    if row.status == "collected":
        raise RegistryError(
            f"v{version}'s model files were deleted by retention (--keep-versions), so it cannot {to}; "
            "promote a version `lifelong models` lists without (collected)"
        )


def _not_in_store(artifacts: Path, version: int) -> str:
    """Why version ``version`` cannot be written: artifacts from this number up that the store never
    registered, named all at once (publishing tried them one by one, each failure using a number)."""
    numbers = sorted(
        int(p.name[1:]) for p in artifacts.glob("v*") if p.name[1:].isdigit() and int(p.name[1:]) >= version
    )
    listed = ", ".join(f"v{n}" for n in numbers[:10]) + (" ..." if len(numbers) > 10 else "")
    return (
        f"{artifacts} holds {listed}, which the store never registered (it has no version {version}): either "
        "the store was restored from a backup taken before they were published (pg_dump, then a later copy "
        "of the artifacts), or this artifacts directory belongs to another store. Move those directories "
        "out of it (they are not in the registry: nothing serves them), or point --data-dir elsewhere"
    )
