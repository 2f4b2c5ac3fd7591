"""The policy is a pure function of the measured state: every stage and every guard, one case each."""

from __future__ import annotations

import re

import pytest

from lifelong.errors import ConfigError
from lifelong.system.policy import KINDS, Gate, Policy, PolicyState, preset


def state(**kw: object) -> PolicyState:
    return PolicyState(**{"new_samples": 500, "seconds_since_training": 3600.0, **kw})  # type: ignore[arg-type]


def test_manual_trains_only_when_asked() -> None:
    p = Policy("manual")
    assert not p.decide(state(drift=True, performance_drop=True)).train
    d = p.decide(state(requested=True))
    assert d.train and d.reason == "requested by hand"
    # answered without new labels too (was: ignored silently until labels came; the attempt says why)
    assert p.decide(state(requested=True, new_samples=0)).train


def test_scheduled_retrain_is_scratch_and_follows_the_schedule() -> None:
    p = Policy("scheduled-retrain", every_samples=400, min_samples=10)
    assert p.decide(state(new_samples=399)).train is False
    d = p.decide(state(new_samples=400))
    assert d.train and d.mode == "scratch"
    assert p.strategies == []


def test_scheduled_by_seconds_and_first_training() -> None:
    p = Policy("scheduled-finetune", every_seconds=60, min_samples=1)
    assert not p.decide(state(new_samples=5, seconds_since_training=30)).train
    assert p.decide(state(new_samples=5, seconds_since_training=61)).train
    assert p.decide(state(new_samples=5, seconds_since_training=None)).train
    assert p.mode == "finetune"


def test_continual_fires_on_drift_or_performance_drop_only() -> None:
    p = Policy("continual", min_samples=50)
    assert not p.decide(state()).train
    assert p.decide(state(drift=True)).reason == "data drift detected"
    assert p.decide(state(performance_drop=True)).reason == "performance drop detected"
    assert p.decide(state(drift=True)).mode == "finetune"
    assert p.strategies == ["replay"]
    assert Policy("continual", every_samples=100).decide(state()).train  # optional safety net


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"new_samples": 0}, "drift detected, waiting for labelled data: 0 < 50"),
        ({"new_samples": 10}, "drift detected, waiting for labelled data: 10 < 50"),
        ({"seconds_since_training": 5.0}, "cooldown"),
        ({"cpu_seconds_today": 100.0}, "budget"),
    ],
)
def test_guards_block_training(kw: dict[str, object], words: str) -> None:
    p = Policy("continual", min_samples=50, cooldown_seconds=60, cpu_budget_per_day=100)
    d = p.decide(state(drift=True, **kw))
    assert not d.train and words in d.reason


def test_decide_is_pure() -> None:
    p = preset("scheduled-finetune", every_samples=100)
    s = state(new_samples=150)
    assert p.decide(s) == p.decide(s)


@pytest.mark.parametrize("kind", KINDS)
def test_presets_are_valid_configuration(kind: str) -> None:
    p = preset(kind)
    assert p.kind == kind and p.to_dict()["kind"] == kind


@pytest.mark.parametrize(
    "kw", [{"kind": "sometimes"}, {"kind": "scheduled-retrain"}, {"min_samples": 0}, {"every_samples": -1}]
)
def test_invalid_policies_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Policy(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"drift_test": "nosuch"}, "unknown drift_test 'nosuch'; choose auto, ks, psi, mmd, tokens"),
        ({"detector": "nosuch"}, "unknown drift detector 'nosuch'"),
        ({"detector_params": {"zzz": 1}}, "invalid parameters"),
        ({"accuracy_floor": 7}, "accuracy_floor is an accuracy, between 0 and 1"),
        ({"max_accuracy_drop": -3}, "max_accuracy_drop is an accuracy"),
    ],
)
def test_monitor_settings_are_checked_at_start_up(overrides: dict, words: str) -> None:
    """They were read only by the worker's monitors: a wrong test name failed every poll (nothing
    trained again, not even on request) while the service reported ready."""
    with pytest.raises(ConfigError, match=re.escape(words)):
        Policy.from_json("continual", overrides)


def test_the_floor_backs_off_while_it_stays_out_of_reach() -> None:
    policy = preset("continual", min_samples=100)
    low = {"live_accuracy": 0.5, "expected_accuracy": 0.9}
    assert policy.decide(PolicyState(new_samples=100, **low)).train
    assert not policy.decide(PolicyState(new_samples=100, floor_trainings=1, **low)).train
    assert policy.decide(PolicyState(new_samples=200, floor_trainings=1, **low)).train
    assert not policy.decide(PolicyState(new_samples=399, floor_trainings=2, **low)).train
    # a monitor's report is not delayed by the back-off
    assert policy.decide(PolicyState(new_samples=100, floor_trainings=3, drift=True, **low)).train


def test_a_retry_of_a_refused_window_waits_until_the_window_has_doubled() -> None:
    """Retried every ``min_samples`` labels, a refused window cost a whole window per retry: 11 of 19
    candidates refused on Fashion-MNIST, continual at 91% of scheduled retraining's compute."""
    policy = preset("continual", min_samples=100, window=2000)
    refused = {"refused_window": 600, "drift": True}
    assert not policy.decide(PolicyState(new_samples=599, **refused)).train
    assert (
        "waiting for 599 of 600 new labels" in policy.decide(PolicyState(new_samples=599, **refused)).reason
    )
    assert policy.decide(PolicyState(new_samples=600, **refused)).train
    assert policy.decide(
        PolicyState(new_samples=2000, drift=True, refused_window=5000)
    ).train  # capped at window
    assert policy.decide(
        PolicyState(new_samples=1, requested=True, refused_window=600)
    ).train  # asked by hand
    scheduled = preset("scheduled-finetune", every_samples=200, min_samples=100)  # a schedule keeps its own
    assert scheduled.decide(PolicyState(new_samples=200, refused_window=600)).train


def test_a_large_gain_on_new_data_waives_the_old_data_budgets() -> None:
    """After a concept change the old data carries the old rule: learning the new one must regress there."""
    from lifelong.system.policy import Gate, judge

    figures = {"new_accuracy": 0.73, "champion_new_accuracy": 0.30, "old_accuracy": 0.55,
               "champion_old_accuracy": 0.77, "negative_flip_rate": 0.3, "latency_ms": 1.0, "size_mb": 1.0}  # fmt: skip
    assert judge(Gate(), figures) == []
    assert len(judge(Gate(concept_change_gain=None), figures)) == 2  # old accuracy and flip rate
    small_gain = {**figures, "new_accuracy": 0.35}
    assert len(judge(Gate(), small_gain)) == 2
    # the gain must be significant: 43 points on 100 paired samples is; 2 lucky samples of 20 are not
    assert judge(Gate(), {**figures, "new_wins": 45, "new_losses": 2}) == []
    lucky = {**figures, "new_accuracy": 0.40, "champion_new_accuracy": 0.30, "new_wins": 2, "new_losses": 0}
    assert len(judge(Gate(), lucky)) == 2
    assert judge(Gate(concept_change_alpha=0.5), lucky) == []


def test_a_drift_that_costs_accuracy_forgets_the_outdated_memory() -> None:
    """Under a real concept drift the replay memory's labels are wrong: the continual policy empties it
    when accuracy fell (performance drop or under the floor), keeps it under a harmless data drift."""
    policy = preset("continual", min_samples=100)
    fine, low = (
        {"live_accuracy": 0.88, "expected_accuracy": 0.9},
        {"live_accuracy": 0.5, "expected_accuracy": 0.9},
    )
    assert not policy.decide(PolicyState(new_samples=300, drift=True, **fine)).forget  # covariate shift
    assert policy.decide(PolicyState(new_samples=300, drift=True, **low)).forget
    assert policy.decide(PolicyState(new_samples=300, performance_drop=True)).forget
    assert policy.decide(PolicyState(new_samples=300, **low)).forget  # the floor alone
    # once per drift: a second attempt under the floor keeps what the memory gathered since the first
    assert not policy.decide(PolicyState(new_samples=300, floor_trainings=1, **low)).forget
    # but a new detection after that streak is a new drift (the memory then held the previous concept)
    assert policy.decide(PolicyState(new_samples=300, floor_trainings=2, performance_drop=True)).forget
    assert policy.decide(PolicyState(new_samples=300, floor_trainings=2, drift=True, **low)).forget
    assert not policy.decide(PolicyState(new_samples=300, floor_trainings=2, drift=True, **fine)).forget
    assert (
        not preset("continual", forget_on_concept_drift=False)
        .decide(PolicyState(new_samples=300, **low))
        .forget
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"epochs": "two"}, 'epochs must be int, got "two"'),
        ({"epochs": True}, "epochs must be int"),
        ({"every_samples": 1.5}, "every_samples must be int or null"),
        ({"strategy_params": [1]}, "strategy_params must be dict"),
        ({"forget_on_concept_drift": "yes"}, "forget_on_concept_drift must be bool"),
    ],
)
def test_json_values_of_the_wrong_type_are_named(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Policy.from_json("continual", fields)


def test_gate_json_types_are_checked_and_ints_count_as_floats() -> None:
    from lifelong.system.policy import Gate

    assert Gate.from_json({"max_old_accuracy_drop": 1, "max_latency_ms": None}).max_old_accuracy_drop == 1
    with pytest.raises(ConfigError, match="gate: min_holdout must be int"):
        Gate.from_json({"min_holdout": "20"})
    with pytest.raises(ConfigError, match="gate: min_holdout must be at least 1, got 0"):
        Gate.from_json({"min_holdout": 0})  # was: an IndexError at every training (nothing trained on)


def test_the_ab_test_promotes_on_evidence_and_keeps_false_promotions_at_alpha() -> None:
    import numpy as np

    from lifelong.system.policy import CanaryRule, VariantStats, ab_p_value

    def rule(canary: float, champion: float, n: int, test: str) -> str:
        decide = CanaryRule(min_labelled=500, test=test).decide  # type: ignore[arg-type]
        return decide(VariantStats(2, n, canary), VariantStats(1, n, champion)).decision

    assert rule(0.99, 0.50, 499, "ab") == "wait"  # the horizon first, however clear the data
    assert rule(0.93, 0.90, 1000, "ab") == "promote"  # p 0.008
    verdict = CanaryRule(min_labelled=500, test="ab").decide(
        VariantStats(2, 1000, 0.93), VariantStats(1, 1000, 0.9)
    )
    assert verdict.p_value == pytest.approx(0.0081, abs=1e-4)  # the p-value it decided on, for the event
    assert rule(0.91, 0.90, 1000, "ab") == "rollback" and rule(0.91, 0.90, 1000, "threshold") == "promote"
    assert ab_p_value(VariantStats(2, 100, 1.0), VariantStats(1, 100, 1.0)) == 1.0  # no variance, no evidence
    # Two equally good versions (true accuracy 0.9, 500 judged predictions each), 4000 times: the A/B
    # test promotes the challenger about alpha of the time; the threshold rule about half the time.
    rng = np.random.default_rng(0)
    hits = rng.binomial(500, 0.9, size=(4000, 2)) / 500
    ab = np.mean([rule(a, b, 500, "ab") == "promote" for a, b in hits])
    threshold = np.mean([rule(a, b, 500, "threshold") == "promote" for a, b in hits])
    assert 0.03 < ab < 0.07 and threshold > 0.45, (ab, threshold)


@pytest.mark.parametrize(
    ("kw", "words"),
    [({"min_labelled": 0}, "at least 1"), ({"margin": 2.0}, "margin"), ({"test": "bayes"}, "threshold, ab"),
     ({"alpha": 1.0}, "significance level")],
)  # fmt: skip
def test_a_canary_rule_out_of_range_is_refused(kw: dict[str, object], words: str) -> None:
    from lifelong.system.policy import CanaryRule

    with pytest.raises(ConfigError, match=words):
        CanaryRule(**kw)  # type: ignore[arg-type]


def test_another_strategy_does_not_inherit_the_presets_strategy_params() -> None:
    """Was: ``up --policy continual --strategy ewc`` failed at the bootstrap ("strategy_params
    {'buffer_size': 1000} do not fit ewc"): the preset's replay size went to whatever strategy was named."""
    assert preset("continual").strategy_params == {"buffer_size": 1000}
    assert preset("continual", strategy="ewc").strategy_params == {}
    assert Policy.from_json("continual", {"strategy": "ewc"}).strategy_params == {}
    assert preset("continual", strategy="replay").strategy_params == {"buffer_size": 1000}
    assert preset("continual", strategy="ewc", strategy_params={"lam": 2.0}).strategy_params == {"lam": 2.0}


def test_a_champion_with_no_measured_accuracy_is_trained_once_labels_exist() -> None:
    """Was: no figure, no floor; an untrained champion at 0.3 accuracy waited for the 5,000-label net."""
    policy = preset("continual", min_samples=100)
    assert not policy.decide(PolicyState(new_samples=99, unmeasured=True)).train
    d = policy.decide(PolicyState(new_samples=100, unmeasured=True))
    assert d.train and "no measured accuracy" in d.reason
    assert not policy.decide(PolicyState(new_samples=100)).train  # measured, at its level: nothing to do
    absolute = preset("continual", min_samples=100, accuracy_floor=0.5)  # the user's floor holds it instead
    assert not absolute.decide(PolicyState(new_samples=100, unmeasured=True, live_accuracy=0.6)).train


def test_a_schedule_below_min_samples_is_kept_or_refused() -> None:
    """`--every 50` waited for the default min_samples (100): training came at 100, not 50."""
    p = preset("scheduled-finetune", every_samples=50)
    assert p.min_samples == 50 and p.decide(state(new_samples=50)).train
    with pytest.raises(ConfigError, match="every_samples=50 is below min_samples=80"):
        Policy("scheduled-finetune", every_samples=50, min_samples=80)


@pytest.mark.parametrize("schedule", [{"every_samples": 20}, {"every_seconds": 60.0}])
def test_a_schedule_on_the_manual_policy_is_refused(schedule: dict[str, object]) -> None:
    """`--policy manual --every 20` was accepted and never trained ("manual policy: train only when asked")."""
    with pytest.raises(ConfigError, match="policy manual trains only when asked, so a schedule"):
        preset("manual", **schedule)


def test_the_floor_reason_prints_figures_that_differ() -> None:
    policy = preset("continual", min_samples=100, accuracy_floor=0.88)
    reason = policy.decide(PolicyState(new_samples=100, live_accuracy=0.8798, expected_accuracy=None)).reason
    assert reason == "live accuracy 0.8798 below the floor 0.8800"


@pytest.mark.parametrize("expected", [0.9350000023841858, 0.935])  # a float32 gate figure, an exact one
def test_a_live_accuracy_on_the_floor_is_not_below_it(expected: float) -> None:
    """A trial's worker trained on "live accuracy 0.835000000 below the floor 0.835000002": the gate's float32
    0.935 less 0.1 (0.935 - 0.1 is 0.8350000000000001 in doubles too)."""
    policy = preset("continual", min_samples=100)
    on = policy.decide(PolicyState(new_samples=100, live_accuracy=0.835, expected_accuracy=expected))
    assert not on.train, on.reason
    under = policy.decide(PolicyState(new_samples=100, live_accuracy=0.83, expected_accuracy=expected))
    assert under.train and under.reason == "live accuracy 0.830 below the floor 0.835"


def test_a_drift_before_any_label_is_said_to_wait_for_labels() -> None:
    """It read "no new labelled samples" until the first label came, though the drift was reported."""
    p = Policy("continual", min_samples=50)
    assert (
        p.decide(state(drift=True, new_samples=0)).reason
        == "drift detected, waiting for labelled data: 0 < 50"
    )
    assert p.decide(state(new_samples=0)).reason == "no new labelled samples"


@pytest.mark.parametrize(
    "fields",
    [{"min_new_accuracy": 2}, {"max_new_accuracy_drop": -1}, {"max_old_accuracy_drop": 5},
     {"max_negative_flip_rate": -0.1}, {"max_latency_ms": -5}, {"old_size": -3}],
)  # fmt: skip
def test_gate_budgets_out_of_range_are_refused(fields: dict[str, object]) -> None:
    """Each was accepted: min_new_accuracy=2 refused every candidate for ever without a word."""
    with pytest.raises(ConfigError, match=f"gate: {next(iter(fields))} is"):
        Gate.from_json(fields)


def test_drift_params_reach_the_test_and_are_checked_up_front() -> None:
    """The service's alpha was fixed at 0.05 (`--policy-json '{"drift_params": ...}'`: unknown field, a trial)."""
    assert preset("continual", drift_params={"alpha": 0.01}).drift_params == {"alpha": 0.01}
    with pytest.raises(ConfigError, match=r"drift_params .* for KSDrift: alpha must lie in \(0, 1\), got 2$"):
        preset("continual", drift_params={"alpha": 2})
    with pytest.raises(
        ConfigError, match="for TokenDrift: .*correction.* name the test to pass one test's own"
    ):
        preset("continual", drift_params={"correction": "none"})  # KS's own, under auto
    assert preset("continual", drift_test="ks", drift_params={"correction": "none"}).drift_test == "ks"
