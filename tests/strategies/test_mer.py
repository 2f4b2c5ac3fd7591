"""MER: sequential steps on single samples, then Reptile interpolations (beta within, gamma across)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.data.dataset import Batch
from lifelong.learn.learner import Learner
from lifelong.strategies import MER


def sgd_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, steps: int) -> dict:
    """Reference: ``steps`` plain SGD steps on one sample."""
    model = copy.deepcopy(model)
    for _ in range(steps):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return {k: v.detach() for k, v in model.state_dict().items()}


def one_sample() -> Batch:
    data = toy_data()
    return Batch(data.train.x[:1], data.train.y[:1])


def test_within_batch_meta_update_keeps_a_beta_fraction_of_the_step() -> None:
    batch = one_sample()
    learner = Learner(toy_model(), [MER(beta=0.25)], lr=0.1)
    theta0 = {k: v.clone() for k, v in learner.model.state_dict().items()}
    inner = sgd_steps(learner.model, batch.x, batch.y, lr=0.1, steps=1)
    learner.train_step(batch)
    for k, v in learner.model.state_dict().items():
        expected = theta0[k] + 0.25 * (inner[k] - theta0[k])
        assert torch.allclose(v, expected, atol=1e-6), k
        assert not torch.allclose(v, inner[k]), "the meta update did not interpolate"


def test_across_batch_meta_update_keeps_a_gamma_fraction() -> None:
    # beta=1: the inner batches are plain sequential SGD; the memory is empty until the step ends,
    # so both inner batches are the single incoming sample: two SGD steps, then gamma interpolation
    batch = one_sample()
    learner = Learner(toy_model(), [MER(beta=1.0, gamma=0.5, n_batches=2)], lr=0.1)
    theta0 = {k: v.clone() for k, v in learner.model.state_dict().items()}
    inner = sgd_steps(learner.model, batch.x, batch.y, lr=0.1, steps=2)
    learner.train_step(batch)
    for k, v in learner.model.state_dict().items():
        assert torch.allclose(v, theta0[k] + 0.5 * (inner[k] - theta0[k]), atol=1e-6), k


def test_reservoir_memory_is_filled_and_replayed() -> None:
    mer = MER(buffer_size=20, replay_size=4)
    learner = Learner(toy_model(), [mer], lr=0.1, batch_size=8)
    result = learner.fit(toy_scenario("task-free"))
    assert len(mer.buffer_) == 20 and mer.buffer_.seen == 240
    assert set(mer.buffer_.y.tolist()) == {0, 1, 2, 3}  # reservoir: both experiences are kept
    assert result.accuracy_matrix[-1][0] > 0.5  # replay keeps the first experience alive


def test_mer_refuses_a_batch_norm_model_it_would_step_one_sample_at_a_time() -> None:
    from torch import nn

    from lifelong.errors import StrategyMismatchError
    from lifelong.learn.learner import Learner
    from lifelong.strategies import MER

    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(StrategyMismatchError, match="batch norm"):
        Learner(model, [MER()])
    Learner(model, [MER(group_size=2)])  # groups of two are fine
