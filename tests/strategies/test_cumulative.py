"""Cumulative: every experience retrains on all the data seen so far, which it keeps."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import StrategyMismatchError
from lifelong.learn import Learner
from lifelong.strategies import Cumulative, Joint, Naive


def test_each_experience_trains_on_everything_seen_so_far() -> None:
    scenario = toy_scenario()
    strategy = Cumulative()
    learner = Learner(toy_model(), [strategy], batch_size=8)
    first = strategy.train_data(learner, scenario[0], scenario[0].train)
    second = strategy.train_data(learner, scenario[1], scenario[1].train)
    assert torch.equal(first.y, scenario[0].train.y)
    assert torch.equal(second.y, torch.cat([scenario[0].train.y, scenario[1].train.y]))
    assert (
        strategy.memory_bytes() == second.x.numel() * 4 + second.y.numel() * 8
    )  # float inputs, int64 labels


def test_stored_images_keep_their_scale(uint8_scenario) -> None:
    strategy = Cumulative()
    learner = Learner(toy_model(), [strategy], batch_size=8)
    for e in uint8_scenario:
        data = strategy.train_data(learner, e, e.train)
    assert data.x.dtype == torch.uint8 and data.scale == 1 / 255
    assert strategy.memory_bytes() == data.x.numel() + data.y.numel() * 8


def test_it_remembers_the_first_experience_where_fine_tuning_forgets_it() -> None:
    def acc_on_first(strategy) -> float:
        result = Learner(toy_model(), [strategy], lr=0.1, batch_size=8, epochs=3, seed=0).fit(toy_scenario())
        return result.accuracy_matrix[-1][0]

    assert acc_on_first(Cumulative()) > 0.9 > 0.5 > acc_on_first(Naive())


def test_a_fresh_strategy_holds_nothing() -> None:
    assert Cumulative().memory_bytes() == 0


@pytest.mark.parametrize("strategy", [Cumulative, Joint])
def test_partial_fit_is_refused(strategy) -> None:
    """partial_fit never formed the training set they rewrite: Cumulative trained exactly as naive."""
    learner = Learner(toy_model(), [strategy()], lr=0.1, batch_size=8)
    with pytest.raises(StrategyMismatchError, match="learn\\(experience\\) or fit"):
        learner.partial_fit(torch.randn(8, 8), torch.tensor([0, 1] * 4))
