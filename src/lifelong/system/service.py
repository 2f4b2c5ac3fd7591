"""``System``: the serving side of the production loop as a Python API (the HTTP app is a thin shell).

Notebooks, tests and the HTTP layer call the same methods. Predictions go through a micro-batcher:
one forward pass per model and one store transaction (inputs as samples + predictions) per batch
of concurrent requests. The trainer runs in another process and only moves aliases in the
registry, so the server picks up new versions by polling the aliases table (:meth:`reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
import torch

from lifelong.data.files import integer_label
from lifelong.errors import (
    ConfigError,
    DataError,
    LifelongError,
    NotFoundError,
    RegistryError,
    StoreError,
)
from lifelong.learn.learner import Learner
from lifelong.system.backlog import JOURNAL_DIR, Backlog, Served, adopt_journals, journaled_elsewhere
from lifelong.system.canary import apply_canary_rule, compare_variants, rule_in_force
from lifelong.system.contract import Contract, check_replaces, unstorable
from lifelong.system.events import EventKind
from lifelong.system.health import (
    ChampionUnavailableError,
    Facts,
    NotRecordedYetError,
    StorageFullError,
    WriteHealth,
    is_storage_full,
    one_line,
    readiness_reasons,
    worker_alive,
)
from lifelong.system.registry import Registry, hash_artifact
from lifelong.system.router import Live, Loaded, MicroBatcher, ModelHolder, route
from lifelong.system.schemas import to_array
from lifelong.system.settings import Settings
from lifelong.system.snapshot import ServedAlias, read_snapshot, snapshot_path, verify_served, write_snapshot
from lifelong.system.store import STORE_DOWN, Event, Lease, NewClasses, Store, assign_indices, prediction_ids
from lifelong.system.versions import check_registrable, contract_for, contract_of, register_learner

log = logging.getLogger(__name__)
DRIFT_KINDS = (EventKind.DATA_DRIFT, EventKind.PERFORMANCE_DRIFT)
T = TypeVar("T")
_CACHE = 8  # loaded versions kept in memory (the live ones plus recent, for quick swaps back)
RETRY_CHAMPION_SECONDS = 5.0  # while serving a fallback, how often to try the champion's artifact again


@dataclass(frozen=True)
class _Request:
    x: np.ndarray  # float32 [B, *shape]
    ids: list[str] | None


def _text64(value: object) -> bool:
    """An id the store keeps: 1 to 64 characters of storable text."""
    return isinstance(value, str) and 0 < len(value) <= 64 and unstorable(value) is None


class System:
    """Serve, record and govern model versions held in a store and registry.

    Parameters
    ----------
    settings : the configuration; ``data_dir``, ``db_url`` and other keywords override its fields.

    Examples
    --------
    >>> import tempfile
    >>> from lifelong.checks import toy_model, toy_scenario
    >>> from lifelong.learn import Learner
    >>> learner = Learner(toy_model())
    >>> _ = learner.fit(toy_scenario())
    >>> with tempfile.TemporaryDirectory() as tmp, System(data_dir=tmp) as system:
    ...     version = system.bootstrap(learner)
    ...     prediction = system.predict([[0.0] * 8])[0]
    >>> version, prediction["variant"], prediction["label"] in range(4)
    (1, 'champion', True)
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if settings is not None and overrides:  # re-validate, so data_dir="..." becomes a Path again
            settings = type(settings)(**{**settings.model_dump(), **overrides})
        self.settings = settings if settings is not None else Settings(**overrides)
        s = self.settings
        snapshot = read_snapshot(s.data_dir)  # what this data directory last served, if anything
        self.store = Store(
            s.db_url,
            data_dir=s.data_dir,
            checkpoint_every=s.checkpoint_seconds,
            offline_ok=snapshot is not None,
        )
        self.registry = Registry(self.store)
        self.holder = ModelHolder()
        self.counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._cache: dict[int, Loaded] = {}
        self._artifacts: dict[int, tuple[Path, str]] = {}  # version -> (artifact path, registered sha256)
        self._reload_lock = threading.Lock()
        self._shadow = ThreadPoolExecutor(1, thread_name_prefix="lifelong-shadow")
        self._shadow_pending = 0
        self._batcher: MicroBatcher[_Request, list[dict[str, Any]]] = MicroBatcher(
            self._predict_batch, max_items=64, max_wait_s=s.max_batch_wait_ms / 1000
        )
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._shadow_store_down = False  # the shadow's last write found the store down (said once)
        self._wanted: dict[str, tuple[int, float | None]] | None = None  # aliases last swapped in
        self.degraded: list[str] = []  # why this server is not fully ready (shown by /readyz)
        self.damaged_on_disk: dict[int, str] = {}  # served versions whose artifact changed on disk
        self._rechecked = time.monotonic()  # when the served artifacts were last re-hashed
        self._retry_at = 0.0  # when a degraded server next tries its champion's artifact
        self.write_health = WriteHealth()  # store write failures of this replica (/readyz, /metrics)
        # answered while the store could not write, journaled to disk
        self.backlog = Backlog(s.unrecorded_backlog, self.unrecorded_dir)
        self._probe: tuple[float, str | None] = (0.0, None)  # (when, error) of the last write probe
        try:
            try:
                self.reload()
            except STORE_DOWN as err:
                if snapshot is None:
                    raise StoreError(
                        f"cannot reach the database at {self.store!r} ({one_line(err)}) and {s.data_dir} has "
                        "no snapshot of what it served; start the server once the database answers"
                    ) from err
                self._serve_snapshot(snapshot, err)
        except BaseException:  # nothing half-started stays behind: threads, connections
            self._batcher.close()
            self._shadow.shutdown(wait=False)
            self.store.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=10)
        self._batcher.close()
        self._shadow.shutdown(wait=True)
        self._catch_up()
        self._let_go_of_backlog()
        self.store.close()

    @property
    def unrecorded_dir(self) -> Path:
        """Where the predictions this server could not record are kept (journaled), for it or the next."""
        return Path(self.settings.data_dir) / JOURNAL_DIR

    def _let_go_of_backlog(self) -> None:
        n = len(self.backlog)
        kept = self.backlog.close()
        if kept is not None:
            log.warning("%d predictions answered while the store could not write are kept in %s; the next "
                        "server running or started on this data directory records them", n, kept)  # fmt: skip
        elif n:
            log.error("%d predictions answered while the store could not write were lost: they could not be "
                      "kept on disk in %s", n, self.unrecorded_dir)  # fmt: skip

    def start_polling(self) -> None:
        """Re-read the aliases every ``poll_seconds``: the server calls this (the worker moves them)."""
        if self._poller is None:
            self._take_back()
            self._poller = threading.Thread(target=self._poll, name="lifelong-poller", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        # said once per outage or failure, as the worker does: not a traceback every poll
        store_down, failing = False, ""  # failing: the last other failure, in one line
        while not self._stop.wait(self.settings.poll_seconds):
            try:
                self.reload()
            except STORE_DOWN as err:  # keep serving the current models; the next tick retries
                if not store_down:
                    log.warning("polling the registry failed: the store is unreachable (%s); serving the "
                                "loaded models and retrying every poll", one_line(err))  # fmt: skip
                store_down = True
            except Exception as err:  # e.g. a wiped database: its tables are gone
                if one_line(err) != failing:  # a new failure: its traceback once; a repeat is not news
                    failing = one_line(err)
                    log.exception("polling the registry failed; serving the loaded models and retrying "
                                  "every poll (said again only when the failure changes)")  # fmt: skip
            else:
                if store_down:
                    log.info("the store is reachable again: polling the registry resumed")
                elif failing:
                    log.info("polling the registry works again")
                store_down, failing = False, ""
            self._take_back()
            self._catch_up()
            every = self.settings.recheck_seconds
            if every and time.monotonic() - self._rechecked >= every:
                self._rechecked = time.monotonic()
                self.recheck_artifacts()

    def recheck_artifacts(self) -> dict[int, str]:
        """Re-hash the served versions' artifacts on disk (every ``recheck_seconds``, in the poller): a
        damaged one keeps serving from memory, but a restart or another replica could not load it, and an
        alias moved back to it would fail; it was noticed only then. Reported by ``/readyz`` (scope all) and
        a ``server`` event, once per damage; an artifact restored clears it."""
        live = {v for v, _ in self.live_versions().values()} if self.holder.ready else set()
        found = {}
        for version in sorted(live):
            path, sha = self._artifacts.get(version, (None, None))
            if path is None:
                continue
            try:
                actual = hash_artifact(path)
            except (OSError, RegistryError) as err:
                actual = f"unreadable: {one_line(err)}"
            if actual != sha:
                found[version] = (f"the artifact of served v{version} at {path} no longer matches its registered "
                                  "sha256 (this replica serves it from memory; a restart or another replica could "
                                  "not load it): restore it from a backup")  # fmt: skip
        for version in found.keys() - self.damaged_on_disk.keys():
            log.error(found[version])
            self._quiet(self.store.add_event, EventKind.SERVER,
                        {"state": "artifact_damaged", "version": version, "path": str(self._artifacts[version][0])})  # fmt: skip
        self.damaged_on_disk = found
        return found

    def _take_back(self) -> None:
        """Adopt what stopped or killed servers on this data directory could not record (at start and
        every poll, so a sibling replica's journal does not wait for a restart); the poller records it."""
        try:
            taken = adopt_journals(self.unrecorded_dir, self.backlog)
        except OSError as err:
            log.warning(
                "could not read %s for predictions other servers left unrecorded: %s",
                self.unrecorded_dir,
                err,
            )
            return
        if taken:
            log.info("took back %d predictions a stopped or killed server could not record", taken)

    # -- serving ---------------------------------------------------------------------------
    def predict(self, x: Any, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Predict a batch; one dict per sample: ``{id, label, scores, version, variant}``."""
        return self.submit(x, ids).result()

    def submit(self, x: Any, ids: Sequence[str] | None = None) -> Future[list[dict[str, Any]]]:
        """Validate and queue a batch for the micro-batcher; return a future of its answers."""
        return self._batcher.submit(self._request(x, ids))

    def submit_async(self, x: Any, ids: Sequence[str] | None = None) -> asyncio.Future[list[dict[str, Any]]]:
        """:meth:`submit` from a coroutine (the HTTP layer): an asyncio future of the running loop."""
        return self._batcher.submit_async(self._request(x, ids))

    def _request(self, x: Any, ids: Sequence[str] | None) -> _Request:
        if self._stop.is_set():
            raise ConfigError("this System is closed; create a new one")
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        contract = self.contract()
        arr = self._rows(x, contract)
        if ids is not None:
            ids = list(ids)
            if len(ids) != len(arr):
                raise DataError(
                    f"{len(ids)} ids came for {len(arr)} samples: send one id per sample, or none"
                )
            if not all(_text64(i) for i in ids):
                raise DataError("ids must be strings of 1 to 64 characters (no NUL), one per sample")
        return _Request(arr, ids)

    def _predict_batch(self, requests: list[_Request]) -> list[list[dict[str, Any]] | BaseException]:
        try:
            live = self._live()  # one snapshot for the whole batch: a swap never splits it
        except LifelongError as err:
            return [err] * len(requests)
        results: list[list[dict[str, Any]] | BaseException] = [DataError("not processed")] * len(requests)
        groups: dict[tuple[int, ...], list[int]] = {}
        contract, requests = live.champion.contract, list(requests)
        for i, r in enumerate(requests):
            if contract is not None:  # the one input check (samples too): a flat row fits any shape
                try:
                    requests[i] = r = _Request(contract.check_inputs(r.x), r.ids)
                    contract.check_scale(r.x)
                except DataError as err:
                    results[i] = err
                    continue
            groups.setdefault(r.x.shape[1:], []).append(i)
        for members in groups.values():
            outs: list[list[dict[str, Any]] | BaseException]
            try:
                outs = list(self._serve(live, [requests[i] for i in members]))
            except Exception as err:  # isolate the failing request: serve each one alone
                outs = [err] if len(members) == 1 else [self._serve_one(live, requests[i]) for i in members]
            for i, out in zip(members, outs):
                results[i] = out
        return results

    def _serve_one(self, live: Live, request: _Request) -> list[dict[str, Any]] | BaseException:
        try:
            return self._serve(live, [request])[0]
        except Exception as err:
            return err

    def _serve(self, live: Live, requests: list[_Request]) -> list[list[dict[str, Any]]]:
        x_np = np.concatenate([r.x for r in requests]) if len(requests) > 1 else requests[0].x
        pids = prediction_ids(len(x_np))
        given: list[str | None] = []
        for r in requests:
            given.extend(r.ids if r.ids else [None] * len(r.x))
        rids = [rid or pid for rid, pid in zip(given, pids)]  # routing keys: a client's id, reused at will
        x = torch.from_numpy(x_np)
        routed = route(live, x, rids)
        scores = routed.scores.tolist()  # once: for the record and the answer
        # recorded under the answer's own id, which a shadow's answer to the same input shares: a client
        # id sent with two inputs (one user's requests) made their labels overwrite each other
        served = Served(time.time(), x_np if self.settings.store_inputs else None, pids, pids,
                        routed.versions, routed.variants, routed.labels, scores)  # fmt: skip
        try:
            self._flush_backlog()  # older answers first, so that their feedback can land
            sample_ids = self._record(served)
        except Exception as err:  # the store is down or full: the answer matters more than its record
            sample_ids = [None] * len(x_np)
            self.backlog.add(served)
            self._logging_failed(err, len(x_np))
        else:
            self.write_health.succeeded()
        self._count(routed.variants)
        if live.shadow is not None and bool(routed.mirror.any()):
            self._mirror(live.shadow, x, routed.mirror, pids, sample_ids)
        rows = [
            {"id": pid, "label": lab, "scores": sc, "version": ver, "variant": var}
            for pid, lab, sc, ver, var in zip(pids, routed.labels, scores, routed.versions, routed.variants)
        ]
        # what the client calls the class, by the answering version's contract (a canary may know more)
        named = {v: m.contract for v, m in (("champion", live.champion), ("canary", live.canary))
                 if m is not None and m.contract is not None and m.contract.class_names is not None}  # fmt: skip
        for row, rid in zip(rows, given):
            if rid is not None:  # what the client sent it as: the answers' own ids are new
                row["request_id"] = rid
        if named:
            for row in rows:
                if (c := named.get(row["variant"])) is not None:
                    row["class_name"] = c.class_name(row["label"])
        out, start = [], 0
        for r in requests:
            out.append(rows[start : start + len(r.x)])
            start += len(r.x)
        return out

    def _record(self, served: Served) -> list[int | None]:
        """Inputs (as samples, so feedback can label them) and outputs, in one transaction."""
        return self.store.record_served(
            served.x, served.prediction_ids, served.request_ids, served.versions, served.variants,
            served.labels, served.scores, ts=served.ts,
        )  # fmt: skip

    def _record_late(self, served: Served) -> None:
        """:meth:`_record` for a kept batch, which may be in the store already: its server was killed
        between the write and the journal file's removal, and the journal was taken back (or a write's
        acknowledgement was lost). A batch is written in one transaction, so its first id tells."""
        try:
            self._record(served)
        except sa.exc.IntegrityError:
            if not served.prediction_ids or not self.store.has_prediction(served.prediction_ids[0]):
                raise  # another conflict: the backlog drops it and says why
            log.info("%d predictions kept to record late were recorded already; not recorded twice",
                     len(served))  # fmt: skip

    def _catch_up(self) -> None:
        """Try the backlog now (the poller, feedback, close); if the store still cannot write, a later try will."""
        with contextlib.suppress(Exception):  # the write that follows (or the next tick) reports it
            self._flush_backlog()

    def _flush_backlog(self) -> None:
        """Record what was answered while the store could not write; raises if it still cannot."""
        if len(self.backlog) and self.backlog.flush(self._record_late, transient=STORE_DOWN):
            log.info("recorded the predictions answered while the store could not write")

    def _mirror(self, shadow: Loaded, x: torch.Tensor, mask: torch.Tensor, rids: list[str],
                sample_ids: list[int | None]) -> None:  # fmt: skip
        """Queue the shadow's answers after the response; drop (and count) when it falls behind."""
        with self._count_lock:
            if self._shadow_pending >= self.settings.shadow_queue:
                self.counts["shadow_dropped"] += int(mask.sum())
                return
            self._shadow_pending += 1
        idx = mask.nonzero().flatten().tolist()
        self._shadow.submit(
            self._run_shadow, shadow, x[mask], [rids[i] for i in idx], [sample_ids[i] for i in idx]
        )

    def _run_shadow(
        self, shadow: Loaded, x: torch.Tensor, rids: list[str], sample_ids: list[int | None]
    ) -> None:
        try:
            probs = shadow.logits(x).softmax(1)
            self.store.add_predictions(shadow.version, probs.argmax(1), probs, sample_ids=sample_ids,
                                       variant="shadow", request_ids=rids)  # fmt: skip
            self._count(["shadow"] * len(rids))
            self._shadow_store_down = False
        except STORE_DOWN as err:  # not the shadow's fault: its answers go unrecorded, said once per outage
            if not self._shadow_store_down:
                log.warning("shadow v%s: its answers are not recorded while the store is unreachable (%s); "
                            "they are dropped and counted in lifelong_shadow_dropped_total",
                            shadow.version, one_line(err))  # fmt: skip
            self._shadow_store_down = True
            self._count([], shadow_dropped=len(rids))
        except Exception:
            log.exception("shadow version %s failed", shadow.version)
            self._count([], shadow_errors=1)
        finally:
            with self._count_lock:
                self._shadow_pending -= 1

    def _count(self, variants: Sequence[str], **extra: int) -> None:
        with self._count_lock:
            self.counts.update(f"predictions_{v}" for v in variants)
            self.counts.update(extra)

    # -- data and feedback -----------------------------------------------------------------
    def feedback(
        self,
        prediction_id: str | Sequence[tuple[str, int | str]] | Sequence[Mapping[str, Any]],
        label: int | str | None = None,
    ) -> None:
        """True labels of earlier predictions; they also label the stored inputs for training.

        Pass one ``(prediction_id, label)`` or a sequence of pairs, or of ``{"prediction_id", "label"}``
        dicts as ``POST /v1/feedback`` takes them. A batch is one transaction: if any item is invalid
        (label outside the deployment's classes, unknown prediction id) nothing is stored and the error
        names the item.
        """
        items = [(prediction_id, label)] if isinstance(prediction_id, str) else _pairs(prediction_id)
        if not items:
            raise DataError("feedback is empty; send at least one {prediction_id, label}")
        check, new_classes = self._label_check([lab for _, lab in items])
        checked = []
        for i, (pid, lab) in enumerate(items):
            where = "" if len(items) == 1 else f"feedback item {i}: "
            if not _text64(pid):
                raise DataError(f"{where}prediction_id must be a string of 1 to 64 characters (no NUL)")
            try:
                (lab,) = check([lab])
            except DataError as err:
                raise DataError(f"{where}{err}") from None
            checked.append((pid, lab))
        if self.backlog.holds([pid for pid, _ in checked]):  # answered while the store could not write:
            self._write(self._flush_backlog)  # record it first, or say why the label cannot land yet
        else:
            self._catch_up()
        try:
            self._write(self.store.add_feedback_many, checked, new_classes)
        except NotFoundError as err:
            if journaled_elsewhere(self.unrecorded_dir, self.backlog.journal):
                raise NotRecordedYetError(
                    f"{err}; another replica answered predictions while the store could not write and is "
                    "recording them now: send this feedback again in a few seconds"
                ) from err
            raise

    def add_samples(self, x: Any, y: Sequence[int | str] | None = None) -> list[int]:
        """Store training samples (labelled or not) with the champion's input shape; return their ids.

        Labels outside the deployment's label space are refused (nothing is stored), so a bad label
        can never break the trainings that follow."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        contract = self.contract()
        arr = self._rows(x, contract)
        if contract is not None:
            arr = contract.check_inputs(arr)
            contract.check_scale(arr)
            # values so large that the champion's outputs overflow would make every training diverge
            self._live().champion.logits(torch.from_numpy(arr))
        if y is not None:
            y = list(y.tolist() if isinstance(y, np.ndarray | torch.Tensor) else y)
            if len(y) != len(arr):
                raise DataError(f"labels has {len(y)} entries for {len(arr)} samples; send one per sample")
            check, new_classes = self._label_check(y)
            y = check(y)
        else:
            new_classes = None
        return self._write(self.store.add_samples, arr, y, source="api", new_classes=new_classes)

    def _label_check(
        self, labels: Sequence[Any]
    ) -> tuple[Callable[[Sequence[Any]], list[int]], NewClasses | None]:
        """The check of ``labels`` against the label space, and the new classes their names bring.

        With ``allow_new_classes`` and named classes, a name the deployment does not know becomes a
        new class at the next free index; the store names it in the transaction that stores the
        labels, so a request refused for any reason names nothing."""
        contract = self.contract()
        if contract is None:
            return _check_labels, None
        names: dict[str, int] | None = None
        new_classes = None
        known = contract.class_names
        unknown = known is not None and any(isinstance(lab, str) and lab not in known for lab in labels)
        if contract.allow_new_classes and unknown:  # only then is the store read
            added = self.store.class_names()
            new = contract.new_class_names(labels, added)
            names = assign_indices(added, new, len(contract.classes)) if new else added
            if new:
                new_classes = NewClasses(tuple(new), len(contract.classes), names)
        check = functools.partial(contract.check_labels, names=names, max_new=self.settings.max_new_classes)
        return check, new_classes

    def _write(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store write the client waits for; a full store is a StorageFullError (HTTP 507)."""
        try:
            out = method(*args, **kwargs)
        except LifelongError:
            raise
        except Exception as err:
            if not is_storage_full(err):
                raise
            self.write_health.failed(err)
            raise StorageFullError(
                "the store cannot write: the disk or database is full; nothing was stored. Free space "
                "(or enable retention) and send it again; the server recovers without a restart"
            ) from err
        self.write_health.succeeded()
        return out

    def _logging_failed(self, err: BaseException, n: int) -> None:
        first = self.write_health.failed_since is None
        self.write_health.failed(err, unlogged=n)
        if first:  # once per run of failures, not once per request
            log.error("recording predictions failed (%s); keeping them (in %s) to record once the store "
                      "recovers", self.write_health.last_error, self.unrecorded_dir,
                      exc_info=not isinstance(err, STORE_DOWN))  # fmt: skip

    # -- data management -----------------------------------------------------------------
    def relabel_sample(self, sample_id: int, label: int | str | None) -> int | None:
        """Set (or, with None, clear) the label of a stored sample; return it as the class index stored.

        The label is checked against the label space (a class name becomes its index)."""
        index = None
        if label is not None:
            check, new_classes = self._label_check([label])
            (index,) = check([label])
        else:
            new_classes = None
        self._write(self.store.relabel_sample, _check_id(sample_id), index, new_classes)
        return index

    def delete_sample(self, sample_id: int) -> None:
        """Delete a stored sample (predictions made on it keep their outputs, without the input)."""
        self._write(self.store.delete_sample, _check_id(sample_id))

    def request_training(self, reason: str = "requested") -> int:
        """Ask the worker to train now (the manual stage, or "train now" in any stage); return the event id."""
        if not isinstance(reason, str) or not reason.isprintable() or len(reason) > 200:
            raise DataError("reason must be printable text of at most 200 characters")
        return self._write(self.store.add_event, EventKind.TRAIN_REQUEST, {"reason": reason})

    def worker_running(self) -> bool:
        """Whether a worker holds the lease now (one that picks up a training request at its next poll)."""
        return worker_alive(self.store.lease("worker"), time.time())  # lifelong.system.worker.LEASE

    # -- versions and deployments ---------------------------------------------------------
    def bootstrap(
        self,
        learner: Learner,
        *,
        contract: Contract | None = None,
        metrics: dict[str, Any] | None = None,
        force: bool = False,
    ) -> int:
        """Register ``learner`` as a new version and make it the champion; return the version.

        ``contract`` (label space, input schema) defaults to what the model tells: its output units
        and input shape. The artifact is reloaded before it is registered, so a model that cannot be
        rebuilt from its checkpoint (a module not registered by name) is refused and nothing is left
        behind. A champion already serving clients of another schema is not replaced unless ``force``
        (see :meth:`promote`); the checks run before anything is registered.
        """
        check_registrable(learner, "bootstrap")  # what no server could serve, said first
        contract = contract or contract_of(learner)
        check_replaces(self.registry, contract, "this model", force)
        version = register_learner(self.registry, learner, contract, metrics)
        self.promote(version, force=True)  # checked above
        return version

    def register(self, learner: Learner, *, contract: Contract | None = None,
                 metrics: dict[str, Any] | None = None) -> int:  # fmt: skip
        """Register ``learner`` (trained outside the loop: offline, on your own data) as a new version
        without serving it; return the version, to roll out with :meth:`deploy` (a canary, a shadow) or
        :meth:`promote`. Its contract is the champion's when the learner reads the same inputs and
        answers its classes (feature names, standardisation and class names carry over: train it on
        inputs as the contract gives them), else what the model tells (see :meth:`bootstrap`)."""
        check_registrable(learner, "register")
        contract = contract or contract_for(self.registry, learner)
        return register_learner(self.registry, learner, contract, metrics)

    def _rows(self, x: Any, contract: Contract | None) -> np.ndarray:
        """A request's samples as one float32 array (by feature name where sent so), checked for size."""
        named = _named(x, contract, self.settings.require_named_inputs)
        return to_array(named, self.settings.max_batch, _names(contract))

    def contract(self) -> Contract | None:
        """The champion's deployment contract (label space, input schema); None before a champion."""
        return self.holder.live.champion.contract if self.holder.ready else None

    def models(self) -> list[dict[str, Any]]:
        """Every registered version with the aliases pointing at it, oldest first (``collected``: its
        artifact was deleted by retention; the record and the lineage stay)."""
        by_version: dict[int, list[str]] = {}
        for name, state in self.registry.aliases().items():
            by_version.setdefault(state.version, []).append(name)
        return [
            {"version": v.version, "parent": v.parent, "created": v.created, "strategy": v.strategy,
             "window": list(v.window) if v.window else None, "params": v.params, "metrics": v.metrics,
             "sha256": v.sha256, "collected": v.collected, "aliases": sorted(by_version.get(v.version, []))}
            for v in self.registry.versions(collected=True)
        ]  # fmt: skip

    def deployments(self) -> dict[str, dict[str, Any]]:
        return {k: {"version": a.version, "share": a.share} for k, a in self.registry.aliases().items()}

    def promote(self, version: int, alias: str = "champion", force: bool = False) -> None:
        """Point ``alias`` at ``version`` (loaded first, so a broken artifact is never promoted). A
        champion or canary whose contract would break the champion's clients (other inputs, a class
        dropped or renamed) is refused unless ``force``."""
        if alias != "champion":
            self.deploy(version, alias, force=force)
            return
        loaded = self._moved_to(version)
        check_replaces(self.registry, loaded.contract, f"v{version}", force)
        self.registry.set_alias("champion", version)  # a canary or shadow of it ends there
        self.reload()

    def rollback(self, alias: str = "champion") -> int | None:
        """Move ``alias`` back to its previous holder; return the version it now points at. The holder is
        loaded first (its artifact verified), as a promotion's is: a damaged one is refused, nothing moved."""
        target = self.registry.rollback_target(alias)
        if target is not None:
            self._moved_to(target)
        restored = self.registry.rollback(alias)
        self.reload()
        return restored

    def deploy(self, version: int, mode: str = "canary", share: float = 0.1, force: bool = False) -> None:
        """Send ``share`` of traffic to ``version`` as a canary, or mirror that share to it as a shadow
        (a canary answers the champion's clients: its contract is checked as a champion's)."""
        if mode not in ("canary", "shadow"):
            raise ConfigError(f"mode must be 'canary' or 'shadow', got {mode!r}")
        self.check_deployment(mode, share)
        loaded = self._moved_to(version)
        if mode == "canary":
            check_replaces(self.registry, loaded.contract, f"v{version}", force)
        self.registry.set_alias(mode, version, share=share)
        self.reload()

    def check_deployment(self, mode: str, share: float) -> None:
        """Refuse a canary the rule in force could never judge (an A/B test's canary at share 1): the
        rule of the worker holding the lease, as :meth:`evaluate_canary` applies, else the settings'."""
        if mode == "canary":
            rule_in_force(self.store, self.settings.canary_rule).check_share(share)

    def undeploy(self, mode: str) -> None:
        """End a canary or shadow deployment."""
        if mode not in ("canary", "shadow"):
            raise ConfigError(f"mode must be 'canary' or 'shadow', got {mode!r}")
        self.registry.remove_alias(mode)
        self.reload()

    def reload(self) -> bool:
        """Load what the aliases point at and swap it in if it changed; return whether it swapped.

        A champion whose artifact is corrupted or cannot be rebuilt is not served: the server falls
        back to the newest intact version in the champion's alias history, records a ``server``
        event and reports itself degraded (``/readyz``) until the champion alias moves again or
        its artifact is restored (tried again every ``RETRY_CHAMPION_SECONDS``).
        """
        with self._reload_lock:
            aliases = self.registry.aliases()
            want = {
                k: (a.version, a.share) for k, a in aliases.items() if k in ("champion", "canary", "shadow")
            }
            retry = bool(self.degraded) and time.monotonic() >= self._retry_at
            if "champion" not in want or (want == self._wanted and not retry):
                return False
            was_degraded = bool(self.degraded)
            champion = self._load_champion(want["champion"][0])
            self._retry_at = time.monotonic() + RETRY_CHAMPION_SECONDS
            if was_degraded and not self.degraded:
                log.info("champion v%s loads again; serving it", want["champion"][0])
                self.store.add_event(EventKind.SERVER, {"state": "recovered", "version": want["champion"][0]})
            if champion is None or (want == self._wanted and self.holder.live.champion is champion):
                return False
            self._wanted = want
            canary, shadow = want.get("canary"), want.get("shadow")
            live = Live(
                champion=champion,
                canary=self._load(canary[0]) if canary else None,
                canary_share=(canary[1] or 0.0) if canary else 0.0,
                shadow=self._load(shadow[0]) if shadow else None,
                shadow_share=(shadow[1] or 1.0) if shadow else 0.0,
            )
            before = self.holder.swap(live)
            log.info("serving %s (was %s)", _serving(live), "nothing" if before is None else _serving(before))
            self._write_snapshot(live)
            keep = {v for v, _ in want.values()}
            for v in [v for v in self._cache if v not in keep][: max(0, len(self._cache) - _CACHE)]:
                del self._cache[v]
            return True

    def _moved_to(self, version: int) -> Loaded:
        """``version`` loaded, its artifact re-hashed first even when this replica holds it in memory: an
        alias moved to a damaged artifact (rolled back to from the cache) left every other replica, and
        this one's next start, unable to serve it."""
        if version in self._cache or not self.settings.verify_artifacts:  # else _load re-hashes it anyway
            self.registry.verify(version)
        return self._load(version)

    def _load(self, version: int) -> Loaded:
        loaded = self._cache.get(version)
        if loaded is None:
            record = self.registry.get(version)  # NotFoundError for an unknown version
            if self.settings.verify_artifacts:
                self.registry.verify(version)
            learner = Learner.load(record.path, device=self.settings.device)
            loaded = self._cache[version] = Loaded.of(version, learner, Contract.load(record.path))
            self._artifacts[version] = (record.path, record.sha256)
        return loaded

    def _write_snapshot(self, live: Live) -> None:
        """Keep what is served now beside the artifacts, for a replica started while the store is down."""
        served = {
            alias: ServedAlias(version, share, *self._artifacts[version])
            for alias, (version, share) in live.versions().items()
            if version in self._artifacts
        }
        try:
            write_snapshot(self.settings.data_dir, served)
        except OSError as err:
            log.warning("could not write %s: %s", snapshot_path(self.settings.data_dir), err)

    def _serve_snapshot(self, snapshot: dict[str, ServedAlias], down: BaseException) -> None:
        """Serve what this data directory last served (each artifact re-hashed first) while the store
        is down; the poller swaps in the registry's aliases once it answers."""
        loaded: dict[str, Loaded] = {}
        for alias, served in snapshot.items():
            try:
                if self.settings.verify_artifacts:
                    verify_served(served)
                learner = Learner.load(served.path, device=self.settings.device)
                loaded[alias] = Loaded.of(served.version, learner, Contract.load(served.path))
            except Exception as err:
                if alias == "champion":
                    raise StoreError(
                        f"cannot reach the database at {self.store!r} ({one_line(down)}), and champion "
                        f"v{served.version} of the snapshot in {self.settings.data_dir} cannot be loaded "
                        f"({one_line(err)}); start the server once the database answers"
                    ) from err
                log.warning("not serving %s v%s from the snapshot: %s", alias, served.version, one_line(err))
                continue
            self._cache[served.version] = loaded[alias]
            self._artifacts[served.version] = (served.path, served.sha256)
        canary, shadow = snapshot.get("canary"), snapshot.get("shadow")
        self.holder.swap(
            Live(
                champion=loaded["champion"],
                canary=loaded.get("canary"),
                canary_share=(canary.share or 0.0) if canary and "canary" in loaded else 0.0,
                shadow=loaded.get("shadow"),
                shadow_share=(shadow.share or 1.0) if shadow and "shadow" in loaded else 0.0,
            )
        )
        log.warning("the database at %r is unreachable (%s): serving %s from %s until it answers",
                    self.store, one_line(down), ", ".join(f"{a} v{loaded[a].version}" for a in loaded),
                    snapshot_path(self.settings.data_dir))  # fmt: skip

    def _load_champion(self, version: int) -> Loaded | None:
        """The champion, or the newest intact earlier champion when its artifact is broken."""
        try:
            loaded = self._load(version)
            self.degraded = []
            return loaded
        except Exception as err:  # whatever is wrong with the artifact, serve an intact earlier one
            failure = str(err)[:500]
        for earlier in self.registry.history("champion"):
            if earlier == version:
                continue
            try:
                loaded = self._load(earlier)
            except Exception:
                continue
            reason = f"champion v{version} cannot be loaded ({failure}); serving v{earlier} instead"
            if self.degraded != [reason]:
                log.error(reason)
                self.degraded = [reason]
                self.store.add_event(
                    EventKind.SERVER, {"state": "fallback", "version": version, "serving": earlier,
                                       "error": failure[:500]},
                )  # fmt: skip
            return loaded
        reason = f"champion v{version} cannot be loaded ({failure}) and no earlier version is intact"
        if self.degraded != [reason]:
            log.error(reason)
            self.degraded = [reason]
        return None

    # -- comparing variants ---------------------------------------------------------------
    def compare(self) -> dict[str, dict[str, Any]]:
        """Accuracy on feedback of each live alias since the current canary/shadow was deployed."""
        stats = compare_variants(self.store, self.registry, self.settings.canary_min_labelled)
        return {k: v._asdict() for k, v in stats.items()}

    def evaluate_canary(self) -> dict[str, Any]:
        """Apply the canary rule now (the worker applies it every poll; this is the operator's button):
        the rule of the worker holding the lease, else this server's settings."""
        rule = rule_in_force(self.store, self.settings.canary_rule)
        result = apply_canary_rule(self.store, self.registry, rule)
        if result["decision"] in ("promote", "rollback"):
            self.reload()
        return result

    # -- monitoring ------------------------------------------------------------------------
    def drift(self, limit: int = 20) -> list[Event]:
        """The latest drift reports the monitors stored (newest last)."""
        found = [e for kind in DRIFT_KINDS for e in self.store.events(kind, limit=limit)]
        return sorted(found, key=lambda e: e.id)[-limit:]

    def events(
        self, kind: str | None = None, *, after_id: int | None = None, limit: int = 100
    ) -> list[Event]:
        """Decisions the loop logged (registration, promotion, rollback, canary, drift), oldest first."""
        return self.store.events(kind, after_id=after_id, limit=limit)

    def batcher_stats(self) -> dict[str, int]:
        return {"batches": self._batcher.batches, "requests": self._batcher.items}

    def live_versions(self) -> dict[str, tuple[int, float | None]]:
        """What this replica serves right now (may lag the registry by up to ``poll_seconds``)."""
        return self._live().versions()

    def _live(self) -> Live:
        """The live set; a champion whose artifact cannot be loaded is a 503 naming why, not a 404
        saying nothing is deployed (re-bootstrapping is not the fix)."""
        if not self.holder.ready and self.degraded:
            raise ChampionUnavailableError(
                f"{self.degraded[0]}; restore the artifact or promote an intact version (/readyz says the same)"
            )
        return self.holder.live

    # -- health ----------------------------------------------------------------------------
    def readiness(self, scope: str = "all") -> list[str]:
        """Why this replica should not get traffic now; an empty list means ready (``/readyz``).

        Ready means: a champion is loaded, the store takes writes (probed at most once a second),
        this replica's last store write succeeded, a worker holds an unexpired lease (a killed one is
        reported once its lease expires) whose heartbeat is fresh (else it is stuck), the latest
        training attempt did not fail, and nothing degraded the server (e.g. a champion fallback).
        ``scope="serving"`` leaves the worker, its trainings and the store out: what a load balancer
        should ask, so a stopped worker, a failed training or a database restart does not take every
        replica out of rotation while each can answer from its loaded champion
        (:func:`~lifelong.system.health.readiness_reasons`).
        """
        if scope not in ("all", "serving"):
            raise ConfigError(f"scope must be 'all' or 'serving', got {scope!r}")
        now = time.time()
        serving = scope == "serving"
        lease, lease_error = (None, None) if serving else self._worker_lease()
        return readiness_reasons(
            Facts(
                now=now,
                champion_loaded=self.holder.ready,
                store_error=None if serving else self._store_writable(now),
                write_failure=self.write_health.last_error,
                unlogged_predictions=self.write_health.unlogged_predictions,
                worker_lease=lease,
                worker_stale_seconds=self.settings.worker_stale_seconds,
                failed_training=None if serving else self._quiet(self._failed_training),
                degraded=tuple(self.degraded),
                lease_error=lease_error,
                damaged_on_disk=tuple(self.damaged_on_disk.values()),
            ),
            serving_only=serving,
        )

    def _worker_lease(self) -> tuple[Lease | None, str | None]:
        """The worker's lease (None: no worker holds it), or why it could not be read (the store may
        be down: then nobody knows whether a worker runs, and health says so rather than "none")."""
        try:
            return self.store.lease("worker"), None  # lifelong.system.worker.LEASE
        except Exception as err:
            log.debug("reading the worker's lease failed", exc_info=True)
            return None, one_line(err)

    def health_metrics(self) -> dict[str, Any]:
        """The loop's figures for ``/metrics``: worker, trainings, live accuracy, drift, storage."""
        lease, lease_error = self._worker_lease()  # unreadable: whether a worker runs is unknown, not "no"
        worker_up = None if lease_error is not None else int(worker_alive(lease, time.time()))
        attempts = [e for e in (self._current_training(), self._latest(EventKind.GATE)) if e]
        last = max(attempts, key=lambda e: e.id, default=None)
        outcome = None
        if last is not None and last.kind == EventKind.GATE:
            trained = last.payload.get("trained", True)  # false: the window was too small, nothing judged
            outcome = "passed" if last.payload.get("passed") else "rejected" if trained else "skipped"
        elif last is not None:  # a training that ended without a verdict says how; "started" is running
            state = last.payload.get("state")
            outcome = state if state in ("failed", "interrupted") else "running"
        accuracy = {}
        aliases = self._quiet(self.registry.aliases) or {}
        for variant in ("champion", "canary", "shadow"):
            if variant not in aliases:  # an ended canary has no live accuracy (was its last figure, forever)
                continue
            since = self._quiet(self.registry.deployed_since, variant)  # this deployment's answers only
            if variant == "champion" and "canary" in aliases:  # the period the canary is compared over
                canary_since = self._quiet(self.registry.deployed_since, "canary")
                since = max(since or 0.0, canary_since or 0.0) or None
            rows = self._quiet(self.store.labelled_predictions, aliases[variant].version, variant=variant,
                               since=since, limit=self.settings.metrics_window) or []  # fmt: skip
            if rows:
                accuracy[variant] = (sum(r.predicted == r.label for r in rows) / len(rows), len(rows))
        drift = {}
        champion = aliases.get("champion")
        for kind in DRIFT_KINDS:  # the serving champion's: an earlier one's report read as current for ever
            event = self._latest(kind)
            score = None if event is None else event.payload.get("score")
            against = None if event is None else event.payload.get("version")
            if isinstance(score, int | float) and (
                against is None or champion is None or against == champion.version
            ):
                drift[kind] = float(score)
        counts = self._quiet(self.store.count_events)  # None: the store is down, the totals unknown

        def total(*kinds: EventKind) -> int | None:  # None, not 0: Prometheus would read a counter reset
            return None if counts is None else sum(counts.get(k.value, 0) for k in kinds)

        judged = total(EventKind.GATE)  # every attempt that ended: judged by the gate, or too small to train
        failures = self._quiet(self.store.count_failed_trainings)  # and those that raised; None: store down
        return {
            "worker_up": worker_up,
            "worker_heartbeat_age_seconds": None
            if lease is None
            else max(0.0, time.time() - lease.heartbeat),
            "training_outcome": "unknown" if counts is None else outcome,
            "training_timestamp_seconds": None if last is None else last.ts,
            "live_accuracy": accuracy,
            "drift_score": drift,
            "store_size_bytes": self._quiet(self.store.size_bytes),
            "predictions_unlogged_total": self.write_health.unlogged_predictions,
            "predictions_pending": len(self.backlog),
            "predictions_dropped_total": self.backlog.dropped,
            "store_write_failing": self.write_health.failed_since is not None,
            "training_cpu_seconds": _cpu_seconds(attempts),
            "drift_detections_total": {} if counts is None else {k.value: total(k) for k in DRIFT_KINDS},
            "trainings_total": None if judged is None or failures is None else judged + failures,
            "trainings_skipped_total": self._quiet(self.store.count_untrained_attempts),  # None: store down
            "training_failures_total": failures,
            "gate_rejections_total": self._quiet(self.store.count_gate_rejections),  # None: store down
            "promoted_total": total(EventKind.PROMOTION),
            "rolled_back_total": total(EventKind.ROLLBACK, EventKind.CANARY_ROLLBACK),
        }

    def _store_writable(self, now: float) -> str | None:
        """None if the store took a probe write within the last second, else why it did not."""
        when, error = self._probe
        if now - when < 1.0:
            return error
        try:
            self.store.probe_write()
            error = None
            self.write_health.succeeded()  # a write went through: traffic need not come first to clear it
        except Exception as err:  # any failure: the reason is what readiness shows
            error = ("the disk or database is full; " if is_storage_full(err) else "") + one_line(err)
        self._probe = (now, error)
        return error

    def _failed_training(self) -> str | None:
        """The error of the latest training attempt that ended, if it failed and no candidate was judged
        since: a retry running meanwhile does not clear it (readiness went back to ready for each retry's
        few seconds of training, and an alert on it flapped while every attempt failed)."""
        recent = self.store.events(EventKind.TRAINING, limit=8)
        ended = [e for e in recent if e.payload.get("state") != "started"]
        if not ended or ended[-1].payload.get("state") != "failed":
            return None
        training = ended[-1]
        gate = self._latest(EventKind.GATE, quiet=False)
        if gate is not None and gate.id > training.id:
            return None
        error = str(training.payload.get("error") or training.payload.get("reason") or "see the worker log")
        return error + ("; a retry is running" if recent[-1].id > training.id else "")

    def _current_training(self) -> Event | None:
        """The latest ``training`` event, unless it closes an older training than the latest one
        started (a worker that lost its lease records its own end after the new holder started):
        then that start, still running."""
        recent = self._quiet(self.store.events, EventKind.TRAINING, limit=8) or []
        if not recent:
            return None
        last = recent[-1]
        started = [e for e in recent if e.payload.get("state") == "started"]
        closes = last.payload.get("started")
        if started and isinstance(closes, int) and closes < started[-1].id:
            return started[-1]
        return last

    def _latest(self, kind: EventKind | str, *, quiet: bool = True) -> Event | None:
        if not quiet:
            return next(iter(self.store.events(kind, limit=1)), None)
        return next(iter(self._quiet(self.store.events, kind, limit=1) or []), None)

    @staticmethod
    def _quiet(read: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """A health read that must not fail the health endpoint (the store may be down): None then."""
        try:
            return read(*args, **kwargs)
        except Exception:
            log.debug("health read failed", exc_info=True)
            return None


def _named(x: Any, contract: Contract | None, required: bool = False) -> Any:
    """Samples by feature name (JSON objects, a pandas frame) in the champion's column order; rows as sent,
    unless ``required`` (LIFELONG_REQUIRE_NAMED_INPUTS) and the deployment names its features: a trial's
    client sent its columns in alphabetical order, answered 200 with 14 of 20 labels changed."""
    if contract is None:
        return x
    named = contract.named_rows(x)
    if required and contract.feature_names and named is x:  # not objects nor a frame: positional rows
        listed = ", ".join(contract.feature_names[:4]) + (", ..." if len(contract.feature_names) > 4 else "")
        raise DataError(
            f"this deployment takes samples by feature name (LIFELONG_REQUIRE_NAMED_INPUTS): send each as an "
            f"object of its features ({listed}), not a list, whose column order cannot be checked"
        )
    return named


def _serving(live: Live) -> str:
    """``champion v4, canary v5 at 10%``: a replica's log line at each hot swap."""
    parts = [f"champion v{live.champion.version}"]
    if live.canary is not None:
        parts.append(f"canary v{live.canary.version} at {live.canary_share:.0%}")
    if live.shadow is not None:
        parts.append(f"shadow v{live.shadow.version}")
    return ", ".join(parts)


def _names(contract: Contract | None) -> tuple[str, ...] | None:
    return None if contract is None else contract.feature_names


def _check_labels(labels: Sequence[Any]) -> list[int]:
    """Labels as class indices when no deployment contract says more (no champion yet)."""
    out = []
    for lab in labels:
        if isinstance(lab, str) and (index := integer_label(lab)) is not None:  # "10": as in a file
            lab = index
        if isinstance(lab, bool) or not isinstance(lab, int | np.integer) or not 0 <= int(lab) < 2**31:
            raise DataError(f"label {lab!r} is not a class index (an integer from 0 to 2**31 - 1)")
        out.append(int(lab))
    return out


def _check_id(sample_id: int) -> int:
    if (
        isinstance(sample_id, bool)
        or not isinstance(sample_id, int | np.integer)
        or not 0 < sample_id < 2**63
    ):
        raise DataError(f"a sample id is an integer from 1 to 2**63 - 1, got {sample_id!r}")
    return int(sample_id)


def _cpu_seconds(attempts: list[Event]) -> float | None:
    """CPU seconds of the latest training attempt that ended: its gate record, or the training event
    of one that failed or was interrupted (their CPU was left out)."""
    ended = [e for e in attempts if isinstance(e.payload.get("train_cpu_seconds"), int | float)]
    return float(max(ended, key=lambda e: e.id).payload["train_cpu_seconds"]) if ended else None


def _pairs(items: Any) -> list[tuple[Any, Any]]:
    """Feedback items as ``(prediction_id, label)`` pairs: pairs, or the HTTP API's dicts (a dict was
    unpacked as its two keys, and read as a prediction named "prediction_id")."""
    if isinstance(items, Mapping):
        items = [items]
    pairs = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and set(item) == {"prediction_id", "label"}:
            pairs.append((item["prediction_id"], item["label"]))
        elif isinstance(item, tuple | list) and len(item) == 2:
            pairs.append((item[0], item[1]))
        else:
            raise DataError(
                f"feedback item {i}: give a (prediction_id, label) pair or a {{'prediction_id': ..., 'label': ...}} "
                f"dict, got {str(item)[:80]}"
            )
    return pairs
