"""The worker: the one process that keeps the deployed model learning and moves aliases.

It holds the store's ``worker`` lease (a second worker waits as a standby and takes over when the
lease expires), and each poll it

1. tests the inputs that arrived for data drift against the champion's own training data,
2. feeds the champion's judged predictions to a performance-drift detector, and when its live
   accuracy falls under the policy's floor dates where its errors rose (a performance drift from there),
3. measures the world into a :class:`~lifelong.system.policy.PolicyState` (new labels since the
   last attempt or the change point, live accuracy, drift, requests) and asks the policy,
4. trains when told to (the trainer gates, publishes and promotes, checking the lease first; the
   training itself runs on ``compute.device``, in ``compute.nproc`` processes under torchrun when
   more than one: :mod:`lifelong.system.launch`),
5. applies the canary rule and the retention settings.

Detectors re-arm whenever the champion changes: the data-drift reference becomes the new champion's
training data and the error-stream detector starts afresh. Everything it must remember lives in the
store (cursors, events), so a worker killed at any moment restarts where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lifelong.data.dataset import Dataset
from lifelong.errors import ConfigError, LifelongError
from lifelong.monitor.data_drift import DRIFT_TESTS, DataDriftMonitor, KSDrift, TokenDrift
from lifelong.monitor.performance import PerformanceMonitor, locate_change
from lifelong.system.canary import apply_canary_rule, check_live_canary
from lifelong.system.events import EventKind, describe
from lifelong.system.health import one_line
from lifelong.system.launch import Compute
from lifelong.system.policy import CanaryRule, Decision, Gate, Policy, PolicyState
from lifelong.system.registry import Registry
from lifelong.system.store import STORE_DOWN, Event, RetentionPolicy, Store
from lifelong.system.trainer import CURSOR, SEEN, Interrupted, LeaseLost, TrainResult, cpu_seconds, train_once
from lifelong.system.versions import input_embedding_of

log = logging.getLogger(__name__)
LEASE = "worker"
DATA_CURSOR = "monitor-data"  # last sample id tested for data drift
FEEDBACK_CURSOR = "monitor-feedback-us"  # feedback timestamp (microseconds) fed to the detector
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 5.0, 300.0  # a failing training is tried again after 5, 10, 20 ... s
STARTING = 0  # Worker._training_event while its `started` event is being written (event ids start at 1)
MIN_REFERENCE = 10  # fewest trained samples a drift reference is built from (drift_window // 4 if more)


@dataclass
class Worker:
    """One poll at a time (:meth:`step`); :meth:`run` loops, holding the lease, until ``stop`` is set."""

    store: Store
    registry: Registry
    policy: Policy
    gate: Gate = field(default_factory=Gate)
    poll_seconds: float = 1.0
    lease_seconds: float = 15.0
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    keep_versions: int | None = 20  # artifacts kept besides aliased ones (None: keep all)
    housekeeping_seconds: float = 60.0  # how often retention and artifact collection run
    canary: CanaryRule = field(default_factory=CanaryRule)  # how a live canary is judged
    on_attempt: Callable[[dict[str, Any]], Any] | None = None  # gets each gate payload (e.g. MLflow)
    prepare: Callable[[Dataset], Dataset] | None = None  # passed to the trainer (tests corrupt labels)
    compute: Compute = field(default_factory=Compute)  # device, processes (torchrun) of a training job
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.canary.check_gate(self.gate)
        if self.keep_versions is not None and self.keep_versions < 1:  # else every housekeeping pass raised
            raise ConfigError(
                f"keep_versions={self.keep_versions}: keep at least 1 version's artifacts (the champion's), "
                "or None to keep all"
            )
        self.holder = f"{holder_prefix(os.getpid())}{uuid.uuid4().hex[:6]}"
        self._detector = PerformanceMonitor(self.policy.detector, **self.policy.detector_params)
        self._champion: int | None = None
        self._waiting: str | None = None  # the kind of reason the last poll did not train for (logged once)
        self._expected: dict[int, float | None] = {}  # per version: a lineage's metrics never change
        self._reference: np.ndarray | None = None
        self._drift_test: Callable[[], DataDriftMonitor] | None = None  # the champion's (drift_test "auto")
        self._feature_names: list[str] | None = None  # the champion's input columns, where it has names
        self._streak: list[int] = []  # first ids of consecutive drifting blocks
        self._drift_reported = False
        self._floor_reported = False  # the floor located a change for this champion
        self._holding = False
        self._standby_logged = False
        self._last_housekeeping = 0.0
        self._failures = 0  # training attempts in a row that raised
        self._retry_at = 0.0  # monotonic time before which a failing training is not tried again
        self._store_down = False  # the store was unreachable at the last try (said once per outage)
        self._training_event: int | None = None  # the `started` event of the training this worker runs
        self._lost_to: str | None = None  # the worker that took this one's lease while it held it
        self._unrecorded_end: dict[str, Any] | None = None  # a training's end the store could not take
        self._running = False  # inside run(), which holds the lease; a step on its own takes and returns it

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        """Take the lease (or wait for it as a standby), then poll until stopped; release on exit."""
        _warm_up()
        self._running = True
        heartbeat = threading.Thread(target=self._heartbeat, name="lifelong-lease", daemon=True)
        heartbeat.start()
        try:
            while not self.stop.is_set():
                if self.holds_lease():
                    try:
                        self.step()
                    except STORE_DOWN as err:  # a database outage: wait for it, as the API does
                        self._outage(err)
                    except LifelongError as err:  # an expected failure (a rank died, a refused strategy)
                        log.error("worker step failed: %s; the loop goes on (a failed training backs off)",
                                  one_line(err))  # fmt: skip
                    except Exception:  # a failing step (bad window, a bug) must not end the loop
                        log.exception("worker step failed; the loop goes on (a failed training backs off)")
                self.stop.wait(self.poll_seconds)
        finally:
            if self._holding:
                try:
                    self.store.release_lease(LEASE, self.holder)
                    self.store.add_event(EventKind.WORKER, {"state": "stopped", "holder": self.holder})
                except STORE_DOWN as err:
                    log.warning(
                        "could not release the worker lease (%s); it expires by itself", one_line(err)
                    )

    def _outage(self, err: BaseException) -> None:
        """Say once per outage that the store is unreachable (not a traceback every poll)."""
        if not self._store_down:
            log.warning("the store is unreachable (%s); waiting for it, retrying every poll", one_line(err))
        self._store_down = True

    def holds_lease(self) -> bool:
        """Take or renew the lease; log when this worker becomes the active one or a standby."""
        try:
            # whose lease a standby takes over (one that expired: its worker died, or lost the store)
            before = None if self._holding else self.store.lease(LEASE)
            held = self.store.acquire_lease(LEASE, self.holder, self.lease_seconds)
        except STORE_DOWN as err:  # nothing can be trained or recorded: wait, holding what was held
            self._outage(err)
            return False
        except Exception:
            log.exception("cannot renew the worker lease")
            return False
        if self._store_down:
            log.info("the store is reachable again")
            self._store_down = False
        if held:
            self._lost_to = None
        if self._unrecorded_end is not None:
            self._record_end(self._unrecorded_end)
        if held and not self._holding:
            try:  # the rule this worker records must be able to judge the canary already live
                check_live_canary(self.registry, self.canary)
            except STORE_DOWN as err:
                self._outage(err)
                return False
            except LifelongError:  # refused: one line from `lifelong worker`, and the lease is free again
                self.store.release_lease(LEASE, self.holder)
                raise
            after = before.holder if before is not None and before.holder != self.holder else None
            expired = f" (the lease of {after} had expired)" if after else ""
            log.info("acquired the worker lease as %s%s", self.holder, expired)
            # the canary rule it applies, so the server's evaluate button applies the same one
            payload = {"state": "acquired", "holder": self.holder, "policy": self.policy.kind,
                       "canary": asdict(self.canary)}  # fmt: skip
            if after:
                payload["took_over_from"] = after
            self.store.add_event(EventKind.WORKER, payload)
            self._close_dangling_training()
        elif not held and (self._holding or not self._standby_logged):
            lease = self.store.lease(LEASE)
            if self._holding:  # its lease expired (the store was away longer than it) and another took it
                self._lost_to = lease.holder if lease else "another worker"
                self.store.add_event(EventKind.WORKER, {"state": "lost", "holder": self.holder,
                                                        "to": lease.holder if lease else None})  # fmt: skip
            log.warning("standby: waiting for the worker lease held by %s%s", lease.holder if lease else "?",
                        self._other_policy(lease.holder if lease else None))  # fmt: skip
            self._standby_logged = True
        self._holding = held
        return held

    def _other_policy(self, holder: str | None) -> str:
        """Said to a standby whose policy is not the active worker's: a second `up` with a new --policy
        on a live directory only waits, and the change looked applied."""
        for event in reversed(self.store.events(EventKind.WORKER, limit=20)):
            if event.payload.get("holder") == holder and event.payload.get("state") == "acquired":
                theirs = event.payload.get("policy")
                if theirs is not None and theirs != self.policy.kind:
                    return (f", which runs the {theirs} policy: this {self.policy.kind} one applies only once that "
                            "worker stops (stop it to change the policy)")  # fmt: skip
                return ""
        return ""

    def _close_dangling_training(self) -> None:
        """A training whose worker was killed (or lost the lease) mid-way left a ``started`` event with
        no outcome: record that it was interrupted, so the log does not read as a training still running."""
        last = self.store.events(EventKind.TRAINING, limit=1)
        if (
            last
            and last[0].payload.get("state") == "started"
            and self._training_event != STARTING  # its own is being written
            and last[0].id != self._training_event  # its own: a step that takes the lease to publish
            and not self.store.events(EventKind.GATE, after_id=last[0].id, limit=1)
        ):
            log.warning("the training started at event %d never finished (its worker stopped, or lost its "
                        "lease); nothing was published from it", last[0].id)  # fmt: skip
            self.store.add_event(EventKind.TRAINING, {"state": "interrupted", "started": last[0].id,
                                                      "by": "its worker stopped, or lost its lease, before it "
                                                            "finished"})  # fmt: skip

    def _record_end(self, payload: dict[str, Any]) -> None:
        """Write a training's end (``interrupted`` or ``failed``) unless it is on record already (a worker that
        took the lease closed it as dangling); kept for the store's return when it cannot be reached,
        where it was lost (the log then read as a training still running)."""
        started = payload["started"]
        try:
            later = [*self.store.events(EventKind.TRAINING, after_id=started),
                     *self.store.events(EventKind.GATE, after_id=started)]  # fmt: skip
            if not any(e.payload.get("started") == started for e in later):
                self.store.add_event(EventKind.TRAINING, payload)
        except STORE_DOWN as err:
            self._unrecorded_end = payload
            self._outage(err)
            return
        self._unrecorded_end = None

    def _stop_reason(self) -> bool | str:
        """Whether the training in progress must end: SIGTERM, or this worker's lease taken by another
        (which trained on for minutes after a database outage and then closed it a second time)."""
        return self._lease_taken() or self.stop.is_set()

    def _lease_taken(self) -> str | None:
        """Why a training must not publish when another worker is known to hold this one's lease."""
        if self._lost_to is None:
            return None
        return f"this worker lost its lease to {self._lost_to} during the training; nothing was published"

    def _heartbeat(self) -> None:
        """Renew the lease while a long training step runs, so the standby does not take over."""
        while not self.stop.wait(self.lease_seconds / 3):
            if self._holding:
                self.holds_lease()

    def step(self) -> TrainResult | None:
        """Monitor, decide, maybe train, then the canary rule and housekeeping.

        Called on its own (not from :meth:`run`), a step takes the worker lease first and gives it back
        after, so one worker per step (``Worker(...).step()`` in a notebook) works every time: the
        first kept the lease, and every later worker trained in full, then discarded its candidate as
        having "lost its lease". While another worker holds the lease, the step does nothing.
        """
        if self._running:
            return self._step()
        if not self.holds_lease():
            return None
        try:
            return self._step()
        finally:
            if self._holding:
                with contextlib.suppress(*STORE_DOWN):  # it expires by itself
                    self.store.release_lease(LEASE, self.holder)
                self._holding = False

    def _step(self) -> TrainResult | None:
        self._rearm_if_new_champion()
        self.check_data_drift()
        self.check_performance()
        judged = self._champion_judged(self._champion, 4 * self.policy.floor_window) if self._champion else []
        self.check_floor(judged)
        result = None
        decision = self.decide(judged)
        if decision.train and time.monotonic() >= self._retry_at:  # else backing off after failures
            self._waiting = None
            result = self.train(decision)
        elif not decision.train and (kind := decision.reason.split(":")[0]) != self._waiting:
            self._waiting = kind  # why it does not train, once per kind (a budget spent, too few labels)
            log.info("not training: %s", decision.reason)
        # lost the lease during the training: the canary and retention are the new holder's
        if not self._holding:
            return result
        if self.registry.alias("canary") is not None:
            apply_canary_rule(self.store, self.registry, self.canary)
        if time.time() - self._last_housekeeping >= self.housekeeping_seconds:
            self.housekeeping()
        return result

    def train(self, decision: Decision) -> TrainResult | None:
        log.info("training (%s, %s)", decision.reason, decision.mode)
        since = self.change_point(self._unlearned_changes())
        # marked as starting before its event exists: the heartbeat thread re-taking a lost lease between the
        # write and the assignment would otherwise close this worker's own fresh training as interrupted
        self._training_event = STARTING
        try:
            self._training_event = self.store.add_event(
                EventKind.TRAINING,
                # where it runs: a job under torchrun spends its CPU in nproc processes
                {
                    "state": "started",
                    "reason": decision.reason,
                    "mode": decision.mode,
                    "since": since,
                    "device": self.compute.device,
                    "nproc": self.compute.nproc,
                },
            )
        except BaseException:
            self._training_event = None
            raise
        start_cpu = cpu_seconds()
        try:
            result = train_once(self.store, self.registry, self.policy, self.gate, reason=decision.reason,
                                mode=decision.mode, since=since, forget=decision.forget, prepare=self.prepare,
                                holds_lease=self.holds_lease, compute=self.compute,
                                should_stop=self._stop_reason, started=self._training_event)  # fmt: skip
        except Interrupted as stopped:  # not a failure: this worker, or the lease's holder, trains again
            taken = self._lease_taken() if isinstance(stopped, LeaseLost) else None  # names the new holder
            by = taken or str(stopped)
            log.info("training interrupted: %s", by)
            self._record_end({"state": "interrupted", "started": self._training_event, "by": by,
                              "train_cpu_seconds": cpu_seconds() - start_cpu})  # fmt: skip
            return None
        except STORE_DOWN as err:  # the database went away mid-way (reading old data for the gate): no
            # failure to back off from, and its end is recorded when the store is back (it was never)
            log.info("training interrupted: the store became unreachable (%s)", one_line(err))
            self._record_end({"state": "interrupted", "started": self._training_event,
                              "by": f"the store became unreachable during the training ({one_line(err)}); "
                                    "nothing was published",
                              "train_cpu_seconds": cpu_seconds() - start_cpu})  # fmt: skip
            raise
        except Exception as err:
            self._failures += 1
            wait = min(RETRY_FIRST_SECONDS * 2 ** (self._failures - 1), RETRY_MAX_SECONDS)
            self._retry_at = time.monotonic() + wait
            # its CPU counts against the daily budget: a training that keeps failing is not free
            self._record_end({"state": "failed", "started": self._training_event, "error": str(err)[:500],
                              "failures": self._failures, "retry_in": wait,
                              "train_cpu_seconds": cpu_seconds() - start_cpu})  # fmt: skip
            raise
        finally:
            self._training_event = None  # over: a later lease taken finds it closed, or dangling
        self._failures, self._retry_at = 0, 0.0
        if decision.reason == "data drift detected" and not result.passed:
            # refused (the first holdout after a drift is a few dozen labels) or nothing to train: a drift
            # that persists is reported again after drift_persistence more blocks, with more labels then,
            # where it was reported once per champion and never tried again
            self._streak, self._drift_reported = [], False
        attempt = result.attempt
        log.info("gate %s", describe(EventKind.GATE, attempt))  # as `lifelong events` words it
        if self.on_attempt is not None:
            try:
                self.on_attempt(attempt)
            except Exception:
                log.exception("logging the training attempt failed")
        return result

    def housekeeping(self) -> None:
        """Apply retention to raw data and collect artifacts no alias or recent version needs."""
        self._last_housekeeping = time.time()
        deleted = self.store.apply_retention(self.retention)
        gone = self.registry.collect(self.keep_versions) if self.keep_versions is not None else []
        if deleted or gone:
            self.store.add_event(EventKind.RETENTION, {"samples_deleted": deleted, "artifacts_deleted": gone})
            log.info("retention: %d samples and %d artifacts deleted", deleted, len(gone))

    # -- monitors --------------------------------------------------------------------------
    def _rearm_if_new_champion(self) -> None:
        champion = self.registry.alias("champion")
        if champion == self._champion:
            return
        self._champion = champion
        self._detector = self._detector.clone()
        self._streak, self._drift_reported, self._floor_reported = [], False, False
        contract = self.registry.get(champion).params.get("contract") if champion else None
        self._feature_names = (contract or {}).get("feature_names")  # drift reports name the features
        self._drift_test = self._test_for(champion)
        ref = self._lineage_samples(champion) if champion else None
        # a reference shorter than a block still tests (KS's p-value counts both sizes): a lineage with no
        # stored data before a 160-sample fine-tuning (a Python bootstrap) took the first shifted block
        # as its reference, and a shift every test flags went unreported (a trial)
        least = max(MIN_REFERENCE, self.policy.drift_window // 4)
        if ref is None or len(ref) < least:
            log.warning("data drift: v%s's lineage trained on %d samples, under %d: the next block of inputs "
                        "becomes the reference", champion, 0 if ref is None else len(ref), least)  # fmt: skip
            ref = None
        self._reference = ref
        if self._reference is not None:  # test only what arrives from now on against the new reference
            last = self.store.last_sample_id()
            if last is not None:
                self.store.advance_cursor(DATA_CURSOR, last)

    def _lineage_samples(self, champion: int) -> np.ndarray | None:
        """The newest samples ``champion`` was trained on (up to ``4 * drift_window``), and only while
        fewer than ``drift_window`` its ancestors' back to the last one trained from scratch: one trained
        on a short window alone left the test blind (its first block of drifted inputs became the
        normal), while filling up with the ancestors' older data mixed a shift the champion had learned
        with the inputs before it, so the same shift was reported and trained on again, 3 times."""
        window, seen = self.policy.drift_window, set()
        need = 4 * window
        parts: list[np.ndarray] = []
        version: int | None = champion
        while version is not None and version not in seen and need > 0:
            seen.add(version)
            record = self.registry.get(version, collected=True)  # a collected ancestor's data still counts
            found = self.store.trained_samples(version, limit=need)
            if not len(found.ids) and record.window is not None:  # a sample keeps its latest trainer only:
                # a retraining over the same rows took them from this version, and a rollback to it found
                # no reference ("trained on 0 samples"), so a drift under way became the normal
                first, last = record.window
                found = self.store.samples(since_id=first - 1, until_id=last, labelled_only=True)
                found = found._replace(ids=found.ids[-need:], x=found.x[-need:], y=found.y[-need:])
            if len(found.ids):
                x = _flat(found.x)
                if parts and x.shape[1] != parts[0].shape[1]:
                    break  # an ancestor of another input width (a forced contract change)
                parts.append(x)
            need = window - sum(len(p) for p in parts)  # ancestors fill a short window up to one block
            version = None if record.params.get("mode") == "scratch" else record.parent
        return np.concatenate(parts[::-1]) if parts else None

    def _test_for(self, champion: int | None) -> Callable[[], DataDriftMonitor] | None:
        """The data-drift test for ``champion``'s inputs: the policy's, or with ``"auto"`` token
        frequencies for a model that takes token ids (its padding id left out) and KS for features."""
        name, params = self.policy.drift_test, self.policy.drift_params
        if name is None or champion is None:
            return None
        if name != "auto":
            return functools.partial(DRIFT_TESTS[name], **params)
        embedding = input_embedding_of(self.registry.get(champion).path)
        if embedding is None:
            return functools.partial(KSDrift, **params)
        pad = getattr(embedding, "padding_idx", None)
        return lambda: TokenDrift(pad_id=pad, **params)

    def check_data_drift(self) -> None:
        """Test each full block of ``drift_window`` new inputs against the champion's training data;
        report drift after ``drift_persistence`` drifting blocks in a row (a false-alarm guard)."""
        if self._drift_test is None:
            return
        n = self.policy.drift_window
        while True:
            s = self.store.samples(since_id=self.store.cursor(DATA_CURSOR), limit=n)
            if len(s.ids) < n:
                return
            block = _flat(s.x)
            if self._reference is None or block.shape[1] != self._reference.shape[1]:
                self._reference = block  # no training data to compare with: the first block is the normal
            else:
                report = self._drift_test().fit(self._reference).test(block)
                judged = report.to_event()  # the block's record, and the report's if it is one
                self.store.add_drift_check(self._champion, int(s.ids[0]), int(s.ids[-1]), judged)
                self._streak = [*self._streak, int(s.ids[0])] if report.drift else []
                if len(self._streak) >= self.policy.drift_persistence and not self._drift_reported:
                    event = {**judged, "first": self._streak[0], "at": int(s.ids[-1]),
                             "version": self._champion}  # fmt: skip
                    names, drifted = self._feature_names, event["details"].get("drifted_features")
                    if names and drifted is not None and len(names) == block.shape[1]:
                        event["details"]["drifted_feature_names"] = [names[i] for i in drifted]
                    self.store.add_event(EventKind.DATA_DRIFT, event)
                    self._drift_reported = True  # once per champion: the next one re-arms
            self.store.advance_cursor(DATA_CURSOR, int(s.ids[-1]))

    def check_performance(self) -> None:
        """Feed the champion's errors, in feedback order, to the detector (re-armed per champion)."""
        since = (self.store.cursor(FEEDBACK_CURSOR) or 0) / 1e6  # stored one microsecond past the last row
        rows = self.store.judged_since(since, variant="champion")
        for r in rows:
            if r.version != self._champion:
                continue
            self._detector.update(r.predicted != r.label)
            if self._detector.drift_detected:
                report = self._detector.report(self._detector.n_seen - 1).to_event()
                event = {**report, "at": r.sample_id, "version": self._champion}
                self.store.add_event(EventKind.PERFORMANCE_DRIFT, event)
        if rows:
            self.store.advance_cursor(FEEDBACK_CURSOR, math.floor(rows[-1].ts * 1e6) + 1)

    def check_floor(self, rows: list[Any]) -> None:
        """The live-accuracy floor as a change detector (continual policy, once per champion): when the
        champion's last ``floor_window`` labelled predictions fall under the floor, date the rise of
        its errors (:func:`locate_change`) and report a performance drift starting there, so the
        window begins at the change and the memory of the old concept is dropped. A champion that was
        never better on its own labels (no change in its errors) is left to the plain floor rule.
        ``rows``: the champion's labelled predictions, oldest first (the policy reads the same ones)."""
        champion = self._champion
        if self._floor_reported or champion is None or self.policy.kind != "continual":
            return
        floor = self.policy.floor(self.expected_accuracy(champion))
        if floor is None:
            return
        recent = rows[-self.policy.floor_window :]
        if (
            len(recent) < self.policy.floor_window
            or np.mean([r.predicted == r.label for r in recent]) >= floor
        ):
            return
        change = locate_change([r.predicted != r.label for r in rows], min_segment=max(10, len(recent) // 10))
        first = rows[change.index].sample_id if change is not None else None
        if change is None or first is None:
            return
        # its score is an error rate, as the detectors' (/metrics shows the latest drift score per kind)
        self.store.add_event(EventKind.PERFORMANCE_DRIFT, {
            "detector": "floor", "drift": True, "first": first, "at": rows[-1].sample_id,
            "version": champion, "error_before": change.before, "error_after": change.after,
            "score": change.after, "statistic": change.statistic})  # fmt: skip
        self._floor_reported = True

    def _champion_judged(self, champion: int, limit: int) -> list[Any]:
        """The champion's labelled predictions since it was deployed, oldest first (the ``limit`` last)."""
        return self.store.labelled_predictions(
            champion, variant="champion", since=self.registry.deployed_since("champion"), limit=limit
        )

    # -- policy ------------------------------------------------------------------------------
    def _since_last_attempt(self) -> list[Event]:
        """Drift reports and train requests logged since the last training attempt (gate event) began.

        A drift report raised against an earlier champion (replaced since, by a canary promotion or
        by hand, before a training answered it) is left out: the monitors re-armed against the new
        champion, so an old alarm neither triggers its training nor dates its window."""
        gates = self.store.events(EventKind.GATE, limit=1)
        # answered: what was logged before the last attempt started (a request sent while it trained
        # was dropped when the gate's own id was the line)
        after = (gates[-1].payload.get("started") or gates[-1].id) if gates else None
        champion = self.registry.alias("champion")
        # a rollback of the champion withdraws the train requests before it: an interrupted training's
        # request trained again from the rolled-back champion and promoted over it 2.5 s later
        rollbacks = [e.id for e in self.store.events(EventKind.ROLLBACK, after_id=after, limit=50)
                     if e.payload.get("alias") == "champion"]  # fmt: skip
        found = []
        for kind in (EventKind.DATA_DRIFT, EventKind.PERFORMANCE_DRIFT, EventKind.TRAIN_REQUEST):
            found += [
                e
                for e in self.store.events(kind, after_id=after, limit=50)
                if (
                    e.id > max(rollbacks, default=0)
                    if kind == EventKind.TRAIN_REQUEST
                    else e.payload.get("version", champion) == champion
                )  # fmt: skip
            ]
        return found

    def _unlearned_changes(self) -> list[Event]:
        """Every drift reported against the current champion, also before the last attempt: a rejected
        attempt leaves the change unlearned, and dating the next window by the drift re-reported after
        it (a later first block each time) skipped the labels between."""
        champion = self.registry.alias("champion")
        return [
            e
            for kind in (EventKind.DATA_DRIFT, EventKind.PERFORMANCE_DRIFT)
            for e in self.store.events(kind, limit=200)
            if champion is not None and e.payload.get("version") == champion
        ]

    def change_point(self, found: list[Event] | None = None) -> int | None:
        """The first sample id of the change detected since the last attempt (None: no change).

        A dated change (the first drifting block of a data-drift test, or the floor's estimate) is
        preferred; an online detector's alarm only bounds it, by ``drift_window`` samples before."""
        found = self._since_last_attempt() if found is None else found
        drifts = [e for e in found if e.kind in (EventKind.DATA_DRIFT, EventKind.PERFORMANCE_DRIFT)]
        dated = [int(e.payload["first"]) - 1 for e in drifts if e.payload.get("first") is not None]
        alarms = [int(e.payload["at"]) - self.policy.drift_window for e in drifts
                  if e.kind == EventKind.PERFORMANCE_DRIFT and e.payload.get("at") is not None]  # fmt: skip
        points = dated or alarms
        return max(0, min(points)) if points else None

    def state(self, now: float | None = None, judged: list[Any] | None = None) -> PolicyState:
        """Measure what the policy reads, from the store alone (so a restarted worker sees the same)."""
        now = time.time() if now is None else now
        day = self.store.events(EventKind.GATE, since=now - 86400, limit=10_000)
        earlier = day or self.store.events(EventKind.GATE, limit=1)
        last = earlier[-1] if earlier else None
        found = self._since_last_attempt()
        kinds = {e.kind for e in found}
        # labels that arrived after the last attempt's whole window: its holdout, trained on next time,
        # is not new data (counted, every_samples <= the holdout retrained every poll on no new labels)
        seen = max(self.store.cursor(CURSOR) or 0, self.store.cursor(SEEN) or 0)
        start = max(seen, self.change_point(found) or 0) or None
        live = expected = None
        champion = self.registry.alias("champion")
        if champion is not None:
            if judged is None or champion != self._champion:
                judged = self._champion_judged(champion, self.policy.floor_window)
            rows = judged[-self.policy.floor_window :]
            if len(rows) >= self.policy.floor_window:
                live = float(np.mean([r.predicted == r.label for r in rows]))
            expected = self.expected_accuracy(champion)
        refused = 0
        if (
            last is not None
            and last.payload.get("passed") is False
            and last.payload.get("parent") == champion
        ):
            figures, window = last.payload.get("figures") or {}, last.payload.get("window")
            # a retry only if the next window holds it: a change dated after its start begins a new one
            since = self.change_point(self._unlearned_changes())
            if window and (since is None or since <= int(window[0])):
                refused = int(figures.get("n_train", 0)) + int(figures.get("n_holdout", 0))
        return PolicyState(
            new_samples=self.store.count_samples(start, labelled_only=True),
            seconds_since_training=None if last is None else now - last.ts,
            cpu_seconds_today=self._cpu_today(day, now),
            drift=EventKind.DATA_DRIFT in kinds,
            performance_drop=EventKind.PERFORMANCE_DRIFT in kinds,
            requested=EventKind.TRAIN_REQUEST in kinds,
            live_accuracy=live,
            expected_accuracy=expected,
            floor_trainings=self._floor_streak(),
            unmeasured=champion is not None and expected is None,
            refused_window=refused,
        )

    def _cpu_today(self, gates: list[Event], now: float) -> float:
        """Training CPU of the last 24 hours: judged attempts, and those that failed or were
        interrupted (a failing job retried every back-off spent its CPU outside the budget)."""
        ended = [
            e
            for e in self.store.events(EventKind.TRAINING, since=now - 86400, limit=10_000)
            if e.payload.get("state") in ("failed", "interrupted")
        ]
        return sum(float(e.payload.get("train_cpu_seconds", 0.0)) for e in [*gates, *ended])

    def _floor_streak(self) -> int:
        """Attempts in a row, newest first, that the live-accuracy floor triggered (the back-off's exponent)."""
        streak = 0
        for gate in reversed(self.store.events(EventKind.GATE, limit=20)):
            if not str(gate.payload.get("reason", "")).startswith("live accuracy"):
                break
            streak += 1
        return min(streak, 10)

    def expected_accuracy(self, champion: int) -> float | None:
        """The best accuracy the champion's lineage measured on held-out data: the level a drift is
        corrected back towards, so a weak first recovery does not lower the bar. A version registered
        with no figure (an untrained or bare-registered champion, ``System.bootstrap`` without metrics)
        counts with the accuracy the latest gate measured for it as the champion a candidate was
        compared with (before, only the champion itself did: a bare v1 measured at 0.85, then a v2
        passed at 0.20 set the floor at 0.10, and 1,000 labels at 0.1-0.3 trained nothing). None until
        some version of the lineage has a figure. Walked once per version while measured (the floor and
        the policy both ask every poll); while unmeasured, again each time."""
        if self._expected.get(champion) is None:
            gates = self.store.events(EventKind.GATE, limit=200)
            best: float | None = None
            version: int | None = champion
            seen: set[int] = set()
            while version is not None and version not in seen and len(seen) < 50:
                seen.add(version)
                record = self.registry.get(version, collected=True)  # retention keeps the lineage's rows
                acc = record.metrics.get("new_accuracy")
                if not isinstance(acc, int | float):
                    acc = _measured_as_champion(gates, version)
                if acc is not None:
                    best = acc if best is None else max(best, acc)
                version = record.parent
            self._expected[champion] = best
        return self._expected[champion]

    def decide(self, judged: list[Any] | None = None) -> Decision:
        """The policy's answer to the measured state; ``judged`` shares the floor's labelled predictions
        (read once per poll, so the floor's change dating and the policy see the same labels)."""
        return self.policy.decide(self.state(judged=judged))


def _measured_as_champion(gates: list[Event], version: int) -> float | None:
    """The accuracy the latest of ``gates`` measured for ``version`` as the champion of a comparison."""
    for gate in reversed(gates):
        acc = (gate.payload.get("figures") or {}).get("champion_new_accuracy")
        if gate.payload.get("parent") == version and isinstance(acc, int | float):
            return float(acc)
    return None


def holder_prefix(pid: int) -> str:
    """How the lease holders of process ``pid`` on this host start (``host:pid:nonce``)."""
    return f"{socket.gethostname()}:{pid}:"


def _warm_up() -> None:
    """Pay the process's one-time costs (torch imports its compiler stack on the first optimizer)
    before the first training, so they are not counted as that training's compute."""
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _flat(x: Any) -> np.ndarray:
    return x.reshape(len(x), -1).float().numpy()
