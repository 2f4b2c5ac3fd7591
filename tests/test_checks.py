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
