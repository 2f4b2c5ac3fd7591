"""The conformance checks on user strategies: a report of failed checks, never a raw error."""

from __future__ import annotations

import pytest

from lifelong.checks import run_checks
from lifelong.learn.strategy import Strategy


class Renamed(Strategy):
    def __init__(self, lam: float = 1.0) -> None:
        self.strength = lam


class Anchored(Strategy):
    """Stores its argument by name and has no `name`: saved and loaded as itself."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam


def test_an_argument_stored_under_another_name_fails_the_params_check() -> None:
    """run_checks raised AttributeError from clone() before any check ran."""
    with pytest.raises(AssertionError) as e:
        run_checks(Renamed())
    report = str(e.value)
    assert "Renamed fails 1 of the" in report and "params: " in report and "self.lam = lam" in report


def test_an_unnamed_strategy_that_conforms_passes_every_check() -> None:
    run_checks(Anchored(lam=0.5))  # the state_dict round-trip loads it back by its class


class Raises(Strategy):
    """A hook with a bug: the report names it in every check that trains, the run goes on (no ``name``:
    a registered one would join every test that walks the registry)."""

    def penalty(self, learner, batch, logits):
        raise TypeError("bug in my penalty")


class LosesState(Strategy):
    """Learned state in an attribute without the trailing underscore: a checkpoint drops it."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam
        self.anchor = None

    def penalty(self, learner, batch, logits):
        if self.anchor is None:
            return None
        return self.lam * sum(((p - self.anchor[n]) ** 2).sum() for n, p in learner.model.named_parameters())

    def after_experience(self, learner, experience):
        self.anchor = {n: p.detach().clone() for n, p in learner.model.named_parameters()}


def test_a_hook_that_raises_is_reported_by_check_not_raised() -> None:
    """The TypeError escaped run_checks, and the checks after it never ran."""
    with pytest.raises(AssertionError) as e:
        run_checks(Raises())
    report = str(e.value)
    assert "clone: raised TypeError: bug in my penalty" in report and "inputs_not_mutated: raised" in report


def test_state_a_checkpoint_loses_fails_the_resume_check() -> None:
    """It passed every check: the round trip compares state_dict (empty on both sides) and predictions."""
    with pytest.raises(AssertionError, match="fails 1 of the .*\n  resume: weights/.* differs"):
        run_checks(LosesState())
