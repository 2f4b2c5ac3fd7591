"""The canary judgement as the worker applies it: read each variant's live accuracy, ask the
pure rule in :mod:`lifelong.system.policy`, move the aliases through the registry.

Only the worker (holding the lease) runs :func:`apply_canary_rule` on its own, so with any number
of server replicas a canary is promoted or rolled back exactly once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from lifelong.errors import LifelongError
from lifelong.system.events import EventKind, describe
from lifelong.system.health import worker_alive
from lifelong.system.policy import CanaryRule, VariantStats
from lifelong.system.registry import Registry
from lifelong.system.store import Store

log = logging.getLogger(__name__)


def compare_variants(
    store: Store, registry: Registry, min_labelled: int, *, concurrent: bool = False
) -> dict[str, VariantStats]:
    """Accuracy on feedback of each live alias since the current canary/shadow was deployed (the canary
    and the champion since the later of the two moved, so both are judged over the same period).

    With little champion traffic since then, the champion's recent past fills in, unless
    ``concurrent`` (an A/B test compares arms served over the same period only)."""
    out = {}
    champion_since = registry.deployed_since("champion")
    for alias, state in registry.aliases().items():
        since = registry.deployed_since("canary" if alias == "champion" else alias)
        if alias in ("champion", "canary") and since is not None and champion_since is not None:
            # a champion promoted while the canary ran (the worker's own training): both from then on, or the
            # canary's whole period was set against the new champion's few rows (a trial: 291 against 70)
            since = max(since, champion_since)
        rows = store.labelled_predictions(state.version, variant=alias, since=since, limit=100_000)
        if alias == "champion" and len(rows) < min_labelled and not concurrent:  # the recent past
            recent = store.labelled_predictions(state.version, variant=alias, limit=min_labelled)
            rows = max(rows, recent, key=len)
        acc = float(np.mean([r.predicted == r.label for r in rows])) if rows else None
        out[alias] = VariantStats(state.version, len(rows), acc)
    return out


def rule_in_force(store: Store, fallback: CanaryRule, *, now: float | None = None) -> CanaryRule:
    """The canary rule of the worker holding the lease (recorded when it took the lease), so a
    server's evaluate button judges as the worker does; ``fallback`` (the server's own settings)
    when no worker holds the lease or it recorded no rule."""
    lease = store.lease("worker")  # lifelong.system.worker.LEASE
    if lease is None or not worker_alive(lease, time.time() if now is None else now):
        return fallback
    for event in reversed(store.events(EventKind.WORKER, limit=50)):
        if event.payload.get("holder") == lease.holder and event.payload.get("state") == "acquired":
            spec = event.payload.get("canary")
            try:
                return CanaryRule(**spec) if isinstance(spec, dict) else fallback
            except (TypeError, LifelongError):  # a rule from another release: the server's own
                return fallback
    return fallback


def check_live_canary(registry: Registry, rule: CanaryRule) -> None:
    """Refuse to judge by ``rule`` a live canary it can never judge (see :meth:`CanaryRule.check_share`):
    a canary deployed at share 1 under the threshold rule, say, that a worker with the A/B test would
    leave waiting for ever. A ConfigError naming the canary and how to fix it; nothing is changed."""
    state = registry.aliases().get("canary")
    if state is None or state.share is None:
        return
    v = state.version
    rule.check_share(state.share, f"the live canary v{v}", fix=(
        f"lower its share (lifelong promote {v} --alias canary --share 0.5), end it (lifelong undeploy "
        "canary), or judge it with the threshold rule (--canary-test threshold)"))  # fmt: skip


def apply_canary_rule(store: Store, registry: Registry, rule: CanaryRule) -> dict[str, Any]:
    """Decide on the live canary (if any) and act: promote it, remove it, or wait. Returns the figures
    (for an A/B test, the p-value that the canary is better, once both arms are complete)."""
    stats = compare_variants(store, registry, rule.min_labelled, concurrent=rule.test == "ab")
    if "canary" not in stats or "champion" not in stats:
        return {"decision": "none"}
    can, champ = stats["canary"], stats["champion"]
    decision, p_value = rule.decide(can, champ)
    result = {"decision": decision, "test": rule.test, "canary": can.version, "champion": champ.version,
              "canary_accuracy": can.accuracy, "champion_accuracy": champ.accuracy,
              "canary_labelled": can.labelled, "champion_labelled": champ.labelled}  # fmt: skip
    if p_value is not None:
        result["p_value"] = p_value
    if decision == "promote":
        registry.set_alias("champion", can.version)
        registry.remove_alias("canary")
        store.add_event(EventKind.CANARY_PROMOTION, result)
        log.info("canary promoted: %s", describe(EventKind.CANARY_PROMOTION, result))  # the log says it too
    elif decision == "rollback":
        registry.remove_alias("canary")
        store.add_event(EventKind.CANARY_ROLLBACK, result)
        log.warning("canary rolled back: %s", describe(EventKind.CANARY_ROLLBACK, result))
    return result
