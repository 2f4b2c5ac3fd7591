"""The strategy registry: one class per name, and checkpoints that rebuild the class they saved."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import CheckpointError, ConfigError
from lifelong.learn import strategy
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy, get_strategy
from lifelong.strategies import EWC, Replay


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private copy of the strategy registry, so test registrations do not leak."""
    get_strategy("replay")  # the built-ins are in the copy
    monkeypatch.setattr(strategy, "REGISTRY", dict(strategy.REGISTRY))
    return strategy.REGISTRY


def test_a_name_another_class_holds_is_refused(registry: dict) -> None:
    """`name = "ewc"` silently replaced the built-in EWC for the CLI and for checkpoints."""
    with pytest.raises(
        ConfigError, match=r"'ewc' of .*MyEWC is already taken by lifelong\..*EWC; pick another"
    ):

        class MyEWC(Strategy):
            name = "ewc"

    assert get_strategy("ewc") is EWC


MODULE = """
from lifelong.learn.strategy import Strategy

class Mine(Strategy):
    name = "llstrat-mine"
"""


def test_the_same_class_imported_again_replaces_itself(
    registry: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "llstrat_one.py").write_text(MODULE)
    (tmp_path / "llstrat_two.py").write_text(MODULE)
    try:
        first = importlib.import_module("llstrat_one").Mine
        again = importlib.reload(sys.modules["llstrat_one"]).Mine
        assert again is not first and get_strategy("llstrat-mine") is again
        with pytest.raises(
            ConfigError, match="'llstrat-mine' of llstrat_two.Mine is already taken by llstrat_one"
        ):
            importlib.import_module("llstrat_two")
    finally:
        for name in ("llstrat_one", "llstrat_two"):
            sys.modules.pop(name, None)


class DoubleReplay(Replay):
    """A subclass with no name of its own: it records as "replay" and must still load as itself."""

    def batch(self, learner, batch):  # type: ignore[no-untyped-def]
        return super().batch(learner, super().batch(learner, batch))


def test_a_subclass_without_a_name_loads_back_as_itself(tmp_path: Path) -> None:
    learner = Learner(toy_model(), [DoubleReplay(buffer_size=20)], lr=0.1, batch_size=8)
    learner.fit(toy_scenario("class"))
    learner.save(tmp_path)
    entry = json.loads((tmp_path / "manifest.json").read_text())["strategies"][0]
    assert entry["name"] == "replay" and entry["class"] == f"{__name__}.DoubleReplay"
    loaded = Learner.load(tmp_path)
    assert type(loaded.strategies[0]) is DoubleReplay  # was plain Replay, the override silently lost
    assert loaded.strategies[0].get_params() == learner.strategies[0].get_params()


def test_a_registered_class_records_no_class_and_an_undefined_subclass_is_a_clear_error(
    tmp_path: Path,
) -> None:
    learner = Learner(toy_model(), [Replay(buffer_size=20)], lr=0.1, batch_size=8)
    learner.save(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "class" not in manifest["strategies"][0]  # as before: checkpoints of built-ins are unchanged
    manifest["strategies"][0]["class"] = "gone.Elsewhere"  # saved by a process that had it imported
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"gone\.Elsewhere, a subclass of .*Replay .*--plugin"):
        Learner.load(tmp_path)


class Renamed(Strategy):
    def __init__(self, lam: float = 1.0) -> None:
        self.strength = lam  # stored under another name: get_params cannot find it


def test_an_argument_stored_under_another_name_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"constructor argument 'lam' is not stored as self\.lam"):
        Renamed().get_params()
    assert repr(Renamed()) == "Renamed(...)"  # a repr never raises


def test_a_subclass_passing_kwargs_on_keeps_its_parents_hyperparameters() -> None:
    """get_params read only the subclass's own arguments: clone and checkpoints rebuilt the parent
    part with its defaults (buffer_size 500 where 20 was given, the memory's capacity still 20)."""
    from lifelong.strategies import Replay

    class WeightedReplay(Replay):
        def __init__(self, weight: float = 2.0, **kwargs) -> None:
            super().__init__(**kwargs)
            self.weight = weight

    s = WeightedReplay(weight=0.5, buffer_size=20)
    assert s.get_params()["buffer_size"] == 20 and s.get_params()["weight"] == 0.5
    assert s.clone().buffer_size == 20


class PerSamplePenalty(Strategy):
    def penalty(self, learner, batch, logits):
        return logits.square().mean(1)  # one value per sample, not reduced


class PerSampleLoss(Strategy):
    def loss(self, learner, batch, logits):
        return torch.nn.functional.cross_entropy(logits, batch.y, reduction="none")


@pytest.mark.parametrize(("strategy", "hook"), [(PerSamplePenalty, "penalty"), (PerSampleLoss, "loss")])
def test_a_hook_returning_one_value_per_sample_is_named(strategy, hook) -> None:
    """It failed in backward() with torch's "grad can be implicitly created only for scalar outputs",
    naming neither the strategy nor the hook (a trial); the weights stay as they were."""
    learner = Learner(toy_model(), [strategy()], batch_size=8)
    before = [p.detach().clone() for p in learner.model.parameters()]
    with pytest.raises(
        ConfigError, match=rf"{strategy.__name__}\.{hook} returned a tensor of shape \(8,\); .*\.mean\(\)"
    ):
        learner.fit(toy_scenario())
    assert all(torch.equal(a, b) for a, b in zip(before, learner.model.parameters()))
