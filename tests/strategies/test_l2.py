"""L2: zero penalty at the anchor, quadratic in the displacement, the same for every weight."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import L2

W = "features.1.weight"  # the weight the penalty_moved fixture displaces


def _learned(strategy: L2) -> Learner:
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8, seed=0)
    learner.learn(toy_scenario("class").experiences[0])
    return learner


def test_no_penalty_before_the_first_boundary() -> None:
    assert L2().penalty(Learner(toy_model()), None, None) is None


def test_penalty_is_zero_at_anchor_and_quadratic_and_uniform(penalty_moved) -> None:
    strategy = L2(lam=2.0)
    learner = _learned(strategy)
    assert float(strategy.penalty(learner, None, None).detach()) == 0.0
    a, b = penalty_moved(learner, strategy, (0, 0), 0.5), penalty_moved(learner, strategy, (3, 5), 0.5)
    assert a == pytest.approx(0.5 * 2.0 * 0.25, rel=1e-4)
    assert a == pytest.approx(b, rel=1e-4)  # every weight is equally important
    assert penalty_moved(learner, strategy, (0, 0), 1.0) == pytest.approx(4 * a, rel=1e-4)


def test_penalty_pulls_towards_anchor() -> None:
    strategy = L2(lam=1.0)
    learner = _learned(strategy)
    p = dict(learner.model.named_parameters())[W]
    with torch.no_grad():
        p.add_(0.1)
    p.grad = None
    strategy.penalty(learner, None, None).backward()
    assert torch.allclose(p.grad, torch.full_like(p, 0.1), atol=1e-6)  # d/dtheta lam/2 (theta - a)^2


def test_a_grown_head_new_rows_are_not_pulled_towards_zero() -> None:
    """The anchors were padded with zero rows, so L2 pulled the new classes' weights to zero (newest
    classes 0.501 against 0.928 with the head sized for them up front)."""
    from lifelong.learn.models import MLP

    torch.manual_seed(0)
    learner = Learner(MLP(in_features=8, hidden=(16,), n_classes=2), [L2(lam=1.0)], lr=0.1,
                      allow_new_classes=True)  # fmt: skip
    learner.partial_fit(torch.randn(20, 8), torch.arange(20) % 2)
    learner.consolidate()
    learner.grow_classes(4)
    with torch.no_grad():  # new rows far from zero: a zero anchor would pull them hard
        learner.model.classifier.weight[2:] = 5.0
    penalty = learner.strategies[0].penalty(learner, None, None)  # type: ignore[arg-type]
    assert float(penalty.detach()) == 0.0
