"""The canary judgement as the worker applies it (lifelong.system.canary), on a real store and registry."""

from __future__ import annotations

import time
from dataclasses import asdict

import pytest

from lifelong.errors import ConfigError
from lifelong.system.canary import apply_canary_rule, check_live_canary, compare_variants, rule_in_force
from lifelong.system.events import EventKind
from lifelong.system.policy import CanaryRule
from lifelong.system.registry import Registry
from lifelong.system.store import Store
from tests.system._system import publish


def _judged(store: Store, version: int, alias: str, right: int, wrong: int) -> None:
    """``right + wrong`` predictions of ``version`` served as ``alias``, each with its feedback."""
    truth = [1] * (right + wrong)
    ids = store.add_predictions(version, [1] * right + [0] * wrong, variant=alias)
    store.add_feedback_many(list(zip(ids, truth, strict=True)))


def _champion_and_canary(store: Store, registry: Registry, *, champion_before: int = 0) -> tuple[int, int]:
    v1, v2 = publish(registry, b"1"), publish(registry, b"2")
    registry.set_alias("champion", v1)
    if champion_before:  # the champion's past, before the canary went live
        _judged(store, v1, "champion", champion_before, 0)
        time.sleep(0.02)
    registry.set_alias("canary", v2, share=0.5)
    time.sleep(0.02)
    return v1, v2


def test_variants_are_judged_on_feedback_since_the_canary_went_live(store: Store, registry: Registry) -> None:
    v1, v2 = _champion_and_canary(store, registry, champion_before=30)
    _judged(store, v1, "champion", 6, 4)
    _judged(store, v2, "canary", 9, 1)
    # with little champion traffic since, its recent past (30 right before the canary) fills in
    stats = compare_variants(store, registry, min_labelled=20)
    assert stats["canary"] == (v2, 10, 0.9)
    assert stats["champion"].version == v1 and stats["champion"].labelled == 20
    assert stats["champion"].accuracy == pytest.approx(16 / 20)  # the 20 most recent: 10 before, 10 since
    # an A/B test compares arms over the same period only
    assert compare_variants(store, registry, min_labelled=20, concurrent=True)["champion"] == (v1, 10, 0.6)
    # enough champion traffic since the canary: the past is not read
    assert compare_variants(store, registry, min_labelled=10)["champion"] == (v1, 10, 0.6)


def test_a_champion_promoted_while_the_canary_runs_restarts_the_comparison(
    store: Store, registry: Registry
) -> None:
    """A trial: the worker promoted v5 while canary v3 ran, and the verdict set the canary's whole period
    (291 labels, mostly beside the old champion) against v5's 70."""
    v1, v2 = _champion_and_canary(store, registry)
    _judged(store, v2, "canary", 20, 0)  # beside v1
    v3 = publish(registry, b"3")
    registry.set_alias("champion", v3)  # the worker's own training, promoted
    time.sleep(0.02)
    _judged(store, v3, "champion", 8, 2)
    _judged(store, v2, "canary", 3, 2)
    stats = compare_variants(store, registry, min_labelled=5)
    assert stats["canary"] == (v2, 5, 0.6) and stats["champion"] == (v3, 10, 0.8)


def test_a_better_canary_is_promoted_once_and_recorded(store: Store, registry: Registry) -> None:
    v1, v2 = _champion_and_canary(store, registry)
    rule = CanaryRule(min_labelled=10)
    _judged(store, v1, "champion", 7, 3)
    _judged(store, v2, "canary", 5, 0)
    assert apply_canary_rule(store, registry, rule)["decision"] == "wait"  # 5 < 10 canary labels
    assert registry.aliases().keys() == {"champion", "canary"}
    _judged(store, v2, "canary", 4, 1)
    result = apply_canary_rule(store, registry, rule)
    assert result["decision"] == "promote" and result["canary_accuracy"] == 0.9, result
    assert result["champion_accuracy"] == 0.7 and "p_value" not in result
    assert registry.aliases().keys() == {"champion"} and registry.alias("champion") == v2
    (event,) = store.events(EventKind.CANARY_PROMOTION)
    assert event.payload == result
    assert apply_canary_rule(store, registry, rule) == {"decision": "none"}  # no canary left to judge
    assert len(store.events(EventKind.CANARY_PROMOTION)) == 1


def test_a_canary_worse_by_more_than_the_margin_is_rolled_back(store: Store, registry: Registry) -> None:
    v1, v2 = _champion_and_canary(store, registry)
    _judged(store, v1, "champion", 9, 1)
    _judged(store, v2, "canary", 8, 2)  # 0.1 worse: within a margin of 0.15, it keeps running
    assert apply_canary_rule(store, registry, CanaryRule(min_labelled=10, margin=0.15))["decision"] == "wait"
    result = apply_canary_rule(store, registry, CanaryRule(min_labelled=10, margin=0.05))
    assert result["decision"] == "rollback", result
    assert registry.alias("champion") == v1 and registry.alias("canary") is None
    assert [e.payload["canary"] for e in store.events(EventKind.CANARY_ROLLBACK)] == [v2]
    assert not store.events(EventKind.CANARY_PROMOTION)


def test_an_ab_test_at_its_horizon_records_its_p_value(store: Store, registry: Registry) -> None:
    v1, v2 = _champion_and_canary(store, registry)
    _judged(store, v1, "champion", 20, 20)
    _judged(store, v2, "canary", 36, 4)
    result = apply_canary_rule(store, registry, CanaryRule(min_labelled=40, test="ab"))
    assert result["decision"] == "promote" and result["test"] == "ab"
    assert 0.0 < result["p_value"] < 0.05, result


def _lease_event(store: Store, holder: str, canary: object) -> None:
    store.add_event(EventKind.WORKER, {"state": "acquired", "holder": holder, "canary": canary})


def test_the_rule_in_force_is_the_lease_holders(store: Store) -> None:
    fallback, workers = CanaryRule(min_labelled=50), CanaryRule(min_labelled=7, test="ab")
    now = time.time()
    _lease_event(store, "w1", asdict(workers))
    assert rule_in_force(store, fallback, now=now) == fallback  # no worker holds the lease
    assert store.acquire_lease("worker", "w1", ttl_seconds=15, now=now)
    assert rule_in_force(store, fallback, now=now) == workers
    assert rule_in_force(store, fallback, now=now + 60) == fallback  # its lease expired: a dead worker
    _lease_event(store, "w2", asdict(CanaryRule(min_labelled=3)))  # another worker's, not the holder's
    assert rule_in_force(store, fallback, now=now) == workers


@pytest.mark.parametrize("recorded", [{"margin": 5.0}, {"no_such_field": 1}, "threshold", None])
def test_a_rule_this_release_cannot_read_falls_back_to_the_servers(store: Store, recorded: object) -> None:
    fallback, now = CanaryRule(min_labelled=50), time.time()
    assert store.acquire_lease("worker", "w1", ttl_seconds=15, now=now)
    _lease_event(store, "w1", recorded)
    assert rule_in_force(store, fallback, now=now) == fallback


def test_a_live_canary_the_rule_can_never_judge_is_refused(registry: Registry) -> None:
    check_live_canary(registry, CanaryRule(test="ab"))  # no canary: nothing to refuse
    v1, v2 = publish(registry, b"1"), publish(registry, b"2")
    registry.set_alias("champion", v1)
    registry.set_alias("canary", v2, share=1.0)
    check_live_canary(registry, CanaryRule())  # the threshold rule judges a canary at share 1
    with pytest.raises(ConfigError, match="the live canary v2") as err:
        check_live_canary(registry, CanaryRule(test="ab"))
    assert "--share 0.5" in str(err.value) and "lifelong undeploy canary" in str(err.value)
    assert registry.aliases()["canary"].share == 1.0  # nothing changed
