"""Fixtures shared by the strategy tests (tests never import each other's helpers)."""

from collections.abc import Callable

import pytest
import torch

from lifelong.checks import toy_data
from lifelong.data.dataset import Dataset, Split
from lifelong.data.scenarios import Scenario, class_incremental
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy

#: the weight the penalty probes displace: the first hidden layer of ``toy_model``
W = "features.1.weight"


@pytest.fixture
def uint8_scenario() -> Scenario:
    """The toy stream with inputs stored as uint8 (scale 1/255), as images are."""

    def as_uint8(d: Dataset) -> Dataset:
        u = (d.x - d.x.min()).div(d.x.max() - d.x.min()).mul(255).round().to(torch.uint8)
        return Dataset(u, d.y, scale=1 / 255)

    data = toy_data()
    return class_incremental(Split(as_uint8(data.train), as_uint8(data.test)), n_experiences=2)


@pytest.fixture
def penalty_moved() -> Callable[[Learner, Strategy, tuple[int, int], float], float]:
    """``probe(learner, strategy, index, delta)``: the penalty with ``W[index]`` displaced by ``delta``."""

    def probe(learner: Learner, strategy: Strategy, index: tuple[int, int], delta: float) -> float:
        p = dict(learner.model.named_parameters())[W]
        with torch.no_grad():
            p[index] += delta
        value = float(strategy.penalty(learner, None, None).detach())  # type: ignore[arg-type]
        with torch.no_grad():
            p[index] -= delta
        return value

    return probe


class _NormedInput(torch.nn.Module):
    """An MLP's features and classifier behind a LayerNorm: a method computing classifier(features(x))
    itself would skip the norm (an embedding there: a raw shape error)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(8)
        self.features = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
        self.classifier = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.norm(x)))


@pytest.fixture
def normed_input() -> Callable[[], torch.nn.Module]:
    """Builds the toy MLP behind a LayerNorm (8 features, 4 classes)."""
    return _NormedInput
