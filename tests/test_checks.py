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
    with pytest.raises(
        AssertionError,
        match=r"fails 2 of the .*\n  resume: attributes \[.anchor.\] differ after a checkpoint.*\n"
        r"  fit_resume: a fit resumed .* ended with the accuracy matrix",
    ):
        run_checks(LosesState())


class Scales(Strategy):
    """Writes into the incoming batch: partial_fit's batches are views of the caller's arrays."""

    def batch(self, learner, batch):
        batch.x.mul_(2.0)
        return batch


class ForgetsTasks(Strategy):
    """A replay-like batch hook that drops the task ids: fine in class scenarios, broken in task ones."""

    def batch(self, learner, batch):
        from lifelong.data.dataset import Batch

        return Batch(batch.x.repeat(2, 1), batch.y.repeat(2), batch.t)


def test_a_strategy_writing_into_partial_fits_arrays_fails_inputs_not_mutated() -> None:
    """The check ran fit only, whose batches are copies: it passed while partial_fit changed x by 1.5."""
    with pytest.raises(AssertionError, match="inputs_not_mutated: partial_fit wrote into the caller's x"):
        run_checks(Scales())


def test_every_declared_scenario_kind_is_trained() -> None:
    """Only the first kind in supports trained; the task kind then failed with a bare size mismatch."""
    with pytest.raises(AssertionError, match="supported_kinds: declares task in supports, but a task"):
        run_checks(ForgetsTasks())


class NaNOnTasks(Strategy):
    """A penalty that is NaN whenever the batch carries task ids: every task-incremental run diverges."""

    def penalty(self, learner, batch, logits):
        return logits.sum() * float("nan") if batch.t is not None else None


def test_a_strategy_that_diverges_on_a_declared_kind_fails_and_says_it_diverged() -> None:
    """It passed: only exceptions counted; a NaN state failed the round trip as a blank 'differs'."""
    with pytest.raises(AssertionError) as e:
        run_checks(NaNOnTasks())
    report = str(e.value)
    assert "supported_kinds: declares task in supports, but training on a task scenario diverged" in report
    assert "state_dict_roundtrip" not in report and "resume" not in report


def test_an_unknown_kind_in_supports_is_refused_when_the_class_is_defined() -> None:
    from lifelong.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown scenario kinds \['task_free'\]; valid: class, task"):

        class Typo(Strategy):
            supports = frozenset({"class", "task_free"})


class OwnBatchesOnly(Strategy):
    """A penalty written for the incoming batch alone: it breaks on samples another part replays."""

    def penalty(self, learner, batch, logits):
        if len(batch.y) > learner.batch_size:
            raise ValueError(f"expected at most {learner.batch_size} rows, got {len(batch.y)}")
        return None


def test_a_hybrid_is_checked_as_one_learner() -> None:
    """run_checks([...]) failed all nine checks with "'list' object has no attribute 'get_params'" (a
    trial), and a bug that shows only beside another part was never trained through."""
    from lifelong.strategies import LwF, Replay

    assert len(run_checks([Replay(buffer_size=20), LwF()])) == 9
    assert len(run_checks(OwnBatchesOnly())) == 9  # alone it conforms
    with pytest.raises(AssertionError) as e:
        run_checks([Replay(buffer_size=20), OwnBatchesOnly()])
    assert "Replay+OwnBatchesOnly fails" in str(e.value) and "expected at most 8 rows" in str(e.value)
    with pytest.raises(AssertionError, match=r"(?s)LwF\+LosesState fails .*learned state must end in '_'"):
        run_checks([LwF(), LosesState()])


@pytest.mark.parametrize("given", [[], "ewc", Anchored, [Anchored(), "lwf"]])
def test_what_is_not_a_strategy_is_refused_with_an_example(given) -> None:
    from lifelong.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"takes a Strategy instance or a non-empty list .* run_checks\(EWC\(\)\)"
    ):
        run_checks(given)
