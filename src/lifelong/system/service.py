"""``System``: the serving side of the production loop as a Python API (the HTTP app is a thin shell).

Notebooks, tests and the HTTP layer call the same methods. Predictions go through a micro-batcher:
one forward pass per model and one store transaction (inputs as samples + predictions) per batch
of concurrent requests. The trainer runs in another process and only moves aliases in the
registry, so the server picks up new versions by polling the aliases table (:meth:`reload`).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lifelong.errors import ConfigError, DataError, LifelongError, NotFoundError
from lifelong.learn.learner import Learner
from lifelong.system.canary import apply_canary_rule, compare_variants
from lifelong.system.contract import Contract
from lifelong.system.events import EventKind
from lifelong.system.registry import Registry
from lifelong.system.router import Live, Loaded, MicroBatcher, ModelHolder, Routed, route
from lifelong.system.schemas import to_array
from lifelong.system.settings import Settings
from lifelong.system.store import Event, Store
from lifelong.system.versions import contract_of, publish_learner

log = logging.getLogger(__name__)
DRIFT_KINDS = (EventKind.DATA_DRIFT, EventKind.PERFORMANCE_DRIFT)
_CACHE = 8  # loaded versions kept in memory (the live ones plus recent, for quick swaps back)


@dataclass(frozen=True)
class _Request:
    x: np.ndarray  # float32 [B, *shape]
    ids: list[str] | None


class System:
    """Serve, record and govern model versions held in a store and registry.

    Parameters
    ----------
    settings : the configuration; ``data_dir``, ``db_url`` and other keywords override its fields.

    Examples
    --------
    >>> system = System(data_dir="/tmp/lifelong-doc")             # doctest: +SKIP
    >>> system.bootstrap(learner)                                  # doctest: +SKIP
    >>> system.predict([[0.0] * 8])[0]["label"]                    # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if settings is not None and overrides:  # re-validate, so data_dir="..." becomes a Path again
            settings = type(settings)(**{**settings.model_dump(), **overrides})
        self.settings = settings if settings is not None else Settings(**overrides)
        s = self.settings
        self.store = Store(s.db_url, data_dir=s.data_dir)
        self.registry = Registry(self.store)
        self.holder = ModelHolder()
        self.counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._cache: dict[int, Loaded] = {}
        self._reload_lock = threading.Lock()
        self._shadow = ThreadPoolExecutor(1, thread_name_prefix="lifelong-shadow")
        self._shadow_pending = 0
        self._batcher: MicroBatcher[_Request, list[dict[str, Any]]] = MicroBatcher(
            self._predict_batch, max_items=64, max_wait_s=s.max_batch_wait_ms / 1000
        )
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._wanted: dict[str, tuple[int, float | None]] | None = None  # aliases last swapped in
        self.degraded: list[str] = []  # why this server is not fully ready (shown by /readyz)
        self.reload()

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
        self.store.close()

    def start_polling(self) -> None:
        """Re-read the aliases every ``poll_seconds``: the server calls this (the worker moves them)."""
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="lifelong-poller", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.settings.poll_seconds):
            try:
                self.reload()
            except Exception:  # keep serving the current models; the next tick retries
                log.exception("polling the registry failed")

    # -- serving ---------------------------------------------------------------------------
    def predict(self, x: Any, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Predict a batch; one dict per sample: ``{id, label, scores, version, variant}``."""
        return self.submit(x, ids).result()

    def submit(self, x: Any, ids: Sequence[str] | None = None) -> Future[list[dict[str, Any]]]:
        """Validate and queue a batch for the micro-batcher; the HTTP layer awaits the future."""
        if self._stop.is_set():
            raise ConfigError("this System is closed; create a new one")
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        arr = to_array(x, None, self.settings.max_batch)
        if ids is not None:
            ids = list(ids)
            if len(ids) != len(arr) or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
                raise DataError(f"ids must be {len(arr)} strings of 1 to 64 characters, one per sample")
        return self._batcher.submit(_Request(arr, ids))

    def _predict_batch(self, requests: list[_Request]) -> list[list[dict[str, Any]] | BaseException]:
        try:
            live = self.holder.live  # one snapshot for the whole batch: a swap never splits it
        except LifelongError as err:
            return [err] * len(requests)
        results: list[list[dict[str, Any]] | BaseException] = [DataError("not processed")] * len(requests)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, r in enumerate(requests):
            want = live.champion.input_shape
            if want is not None and r.x.shape[1:] != want:
                results[i] = DataError(f"each sample must have shape {list(want)}, got {list(r.x.shape[1:])}")
            else:
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
        pids = [uuid.uuid4().hex for _ in range(len(x_np))]
        given: list[str | None] = []
        for r in requests:
            given.extend(r.ids if r.ids else [None] * len(r.x))
        rids = [rid or pid for rid, pid in zip(given, pids)]
        x = torch.from_numpy(x_np)
        routed = route(live, x, rids)
        sample_ids = self._record(x_np, routed, pids, rids)
        self._count(routed.variants)
        if live.shadow is not None and bool(routed.mirror.any()):
            self._mirror(live.shadow, x, routed.mirror, rids, sample_ids)
        scores = routed.scores.tolist()
        rows = [
            {"id": pid, "label": lab, "scores": sc, "version": ver, "variant": var}
            for pid, lab, sc, ver, var in zip(pids, routed.labels, scores, routed.versions, routed.variants)
        ]
        out, start = [], 0
        for r in requests:
            out.append(rows[start : start + len(r.x)])
            start += len(r.x)
        return out

    def _record(self, x: np.ndarray, routed: Routed, pids: list[str], rids: list[str]) -> list[int | None]:
        """Inputs (as samples, so feedback can label them) and outputs, in one transaction."""
        return self.store.record_served(
            x if self.settings.store_inputs else None, pids, rids, routed.versions, routed.variants,
            routed.labels, routed.scores.tolist(),
        )  # fmt: skip

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
    def feedback(self, prediction_id: str, label: int) -> None:
        """The true label of a prediction's request; it also labels the stored input for training."""
        self.store.add_feedback(prediction_id, label)

    def add_samples(self, x: Any, y: Sequence[int] | None = None) -> list[int]:
        """Store training samples (labelled or not) with the champion's input shape; return their ids."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        shape = self.holder.live.champion.input_shape if self.holder.ready else None
        return self.store.add_samples(to_array(x, shape, self.settings.max_batch), y, source="api")

    # -- versions and deployments ---------------------------------------------------------
    def bootstrap(
        self, learner: Learner, *, contract: Contract | None = None, metrics: dict[str, Any] | None = None
    ) -> int:
        """Register ``learner`` as a new version and make it the champion; return the version.

        ``contract`` (label space, input schema) defaults to what the model tells: its output units
        and input shape. The artifact is reloaded before it is registered, so a model that cannot be
        rebuilt from its checkpoint (a module not registered by name) is refused and nothing is left
        behind.
        """
        strategy = "+".join(s.name for s in learner.strategies) or "none"
        contract = contract or contract_of(learner)
        with self.registry.publish(
            strategy=strategy, metrics=metrics, params={"contract": contract.to_dict()}
        ) as draft:
            publish_learner(learner, contract, draft.path)
        assert draft.version is not None
        self.promote(draft.version)
        return draft.version

    def contract(self) -> Contract | None:
        """The champion's deployment contract (label space, input schema); None before a champion."""
        return self.holder.live.champion.contract if self.holder.ready else None

    def models(self) -> list[dict[str, Any]]:
        """Every registered version with the aliases pointing at it, oldest first."""
        by_version: dict[int, list[str]] = {}
        for name, state in self.registry.aliases().items():
            by_version.setdefault(state.version, []).append(name)
        return [
            {"version": v.version, "parent": v.parent, "created": v.created, "strategy": v.strategy,
             "params": v.params, "metrics": v.metrics, "aliases": sorted(by_version.get(v.version, []))}
            for v in self.registry.versions()
        ]  # fmt: skip

    def deployments(self) -> dict[str, dict[str, Any]]:
        return {k: {"version": a.version, "share": a.share} for k, a in self.registry.aliases().items()}

    def promote(self, version: int, alias: str = "champion") -> None:
        """Point ``alias`` at ``version`` (loaded first, so a broken artifact is never promoted)."""
        if alias != "champion":
            self.deploy(version, alias)
            return
        self._load(version)
        self.registry.set_alias("champion", version)
        if self.registry.alias("canary") == version:  # a canary promoted by hand stops being a canary
            self.registry.remove_alias("canary")
        self.reload()

    def rollback(self, alias: str = "champion") -> int | None:
        """Move ``alias`` back to its previous holder; return the version it now points at."""
        restored = self.registry.rollback(alias)
        self.reload()
        return restored

    def deploy(self, version: int, mode: str = "canary", share: float = 0.1) -> None:
        """Send ``share`` of traffic to ``version`` as a canary, or mirror that share to it as a shadow."""
        if mode not in ("canary", "shadow"):
            raise ConfigError(f"mode must be 'canary' or 'shadow', got {mode!r}")
        self._load(version)
        self.registry.set_alias(mode, version, share=share)
        self.reload()

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
        event and reports itself degraded (``/readyz``) until the champion alias moves again.
        """
        with self._reload_lock:
            aliases = self.registry.aliases()
            want = {
                k: (a.version, a.share) for k, a in aliases.items() if k in ("champion", "canary", "shadow")
            }
            if "champion" not in want or want == self._wanted:
                return False
            champion = self._load_champion(want["champion"][0])
            if champion is None:
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
            self.holder.swap(live)
            keep = {v for v, _ in want.values()}
            for v in [v for v in self._cache if v not in keep][: max(0, len(self._cache) - _CACHE)]:
                del self._cache[v]
            return True

    def _load(self, version: int) -> Loaded:
        loaded = self._cache.get(version)
        if loaded is None:
            record = self.registry.get(version)  # NotFoundError for an unknown version
            if self.settings.verify_artifacts:
                self.registry.verify(version)
            learner = Learner.load(record.path)
            loaded = self._cache[version] = Loaded.of(version, learner, Contract.load(record.path))
        return loaded

    def _load_champion(self, version: int) -> Loaded | None:
        """The champion, or the newest intact earlier champion when its artifact is broken."""
        try:
            loaded = self._load(version)
            self.degraded = []
            return loaded
        except LifelongError as err:
            failure = str(err)
        for earlier in self.registry.history("champion"):
            if earlier == version:
                continue
            try:
                loaded = self._load(earlier)
            except LifelongError:
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
        """Apply the canary rule now (the worker applies it every poll; this is the operator's button)."""
        result = apply_canary_rule(
            self.store, self.registry, self.settings.canary_min_labelled, self.settings.canary_margin
        )
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
        if not self.holder.ready:
            raise NotFoundError("no champion is deployed; register one with System.bootstrap(learner)")
        return self.holder.live.versions()
