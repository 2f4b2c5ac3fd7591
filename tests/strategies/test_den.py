"""DEN: hidden layers expand when the loss stays above the threshold, and only then; drifted units split."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import DEN


def _fit(strategy: DEN) -> Learner:
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner.fit(toy_scenario("task"))
    return learner


def test_grows_when_the_loss_threshold_is_exceeded() -> None:
    strategy = DEN(loss_threshold=0.0, grow_units=4, split_threshold=1e9)
    learner = _fit(strategy)
    assert strategy.grew_ == [False, True]  # the first experience only trains, as the authors' code
    assert learner.model.features[1].out_features == 16 + 4
    assert learner.extra_parameters() == 4 * (8 + 1 + 4)  # new rows (8 in + bias) and columns (4 out)
    assert strategy.born_[0].tolist() == [-1] * 16 + [1] * 4


def test_does_not_grow_below_the_threshold() -> None:
    strategy = DEN(loss_threshold=1e9, split_threshold=1e9)
    learner = _fit(strategy)
    assert strategy.grew_ == [False, False] and learner.extra_parameters() == 0


def test_drifted_units_split_into_an_old_and_a_new_copy() -> None:
    first, second = toy_scenario("task").experiences
    strategy = DEN(loss_threshold=1e9, split_threshold=0.0)
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8)
    learner.learn(first)
    after_first = learner.model.features[1].weight.detach().clone()
    learner.learn(second)
    split = strategy.died_[0][:16] == 1  # originals retired from experience 1 on
    n_split = int(split.sum())
    assert n_split > 0 and learner.model.features[1].out_features == 16 + n_split
    assert (strategy.born_[0] == 1).sum() == n_split
    # the originals got their weights back for the first task; the copies keep the new ones
    assert torch.equal(learner.model.features[1].weight[:16][split], after_first[split])


def test_grown_units_survive_a_checkpoint(tmp_path) -> None:
    first, second = toy_scenario("task").experiences
    a = Learner(
        toy_model(), [DEN(loss_threshold=0.0, grow_units=4, split_threshold=1e9)], lr=0.1, batch_size=8
    )
    a.learn(first)
    a.learn(second)
    a.save(tmp_path)
    b = Learner.load(tmp_path)
    x, t = first.test.features(), first.test.t
    assert b.model.features[1].out_features == 20
    assert torch.equal(a.predict_logits(x, t), b.predict_logits(x, t))
