"""SI: path integral by hand, non-negative importances, a penalty weighted by them."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
from lifelong.strategies import SI

W = "features.1.weight"  # the weight the penalty_moved fixture displaces


class Spy(Strategy):
    """Records the start weights and every step's gradient and weight change."""

    def before_experience(self, learner, experience):
        self.start = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
        self.path = {n: torch.zeros_like(p) for n, p in learner.model.named_parameters()}

    def after_backward(self, learner):
        self.grad = {n: p.grad.clone() for n, p in learner.model.named_parameters()}
        self.before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}

    def after_step(self, learner):
        for n, p in learner.model.named_parameters():
            self.path[n] -= self.grad[n] * (p.detach() - self.before[n])


def _learned(strategy: Strategy, *extra: Strategy, momentum: float = 0.0) -> Learner:
    learner = Learner(toy_model(), [strategy, *extra], lr=0.1, momentum=momentum, batch_size=8, seed=0)
    learner.learn(toy_scenario("class").experiences[0])
    return learner


def test_omega_is_the_path_integral_over_squared_displacement() -> None:
    spy = Spy()
    si = SI(xi=1e-3)
    learner = _learned(si, spy)
    for n, p in learner.model.named_parameters():
        # plain SGD: -g * (-lr g) = lr g^2 >= 0 at every step
        assert (spy.path[n] >= -1e-7).all()
        delta = p.detach() - spy.start[n]
        expected = spy.path[n].clamp(min=0) / (delta.pow(2) + 1e-3)
        assert torch.allclose(si.omega_[n], expected, rtol=1e-4, atol=1e-7), n
    assert sum(float(o.sum()) for o in si.omega_.values()) > 0


def test_omega_is_non_negative_with_momentum() -> None:
    si = SI()
    _learned(si, momentum=0.9)
    assert all((o >= 0).all() for o in si.omega_.values())


def test_penalty_zero_at_anchor_grows_and_follows_importance(penalty_moved) -> None:
    si = SI(c=0.5, penalty_step="gradient")
    learner = _learned(si)
    assert float(si.penalty(learner, None, None).detach()) == 0.0
    omega = si.omega_[W]
    hi = divmod(int(omega.argmax()), omega.shape[1])
    lo = divmod(int(torch.where(omega > 0, omega, omega.max()).argmin()), omega.shape[1])
    assert omega[hi] > omega[lo] > 0
    p_hi, p_lo = penalty_moved(learner, si, hi, 0.3), penalty_moved(learner, si, lo, 0.3)
    assert p_hi > p_lo > 0
    assert p_hi == pytest.approx(0.5 * float(omega[hi]) * 0.09, rel=1e-4)
    assert penalty_moved(learner, si, hi, 0.6) == pytest.approx(4 * p_hi, rel=1e-4)


def test_own_penalty_is_left_out_of_the_path_integral() -> None:
    si = SI(c=1.0, penalty_step="gradient")
    learner = _learned(si)
    stream = toy_scenario("class")
    si.before_experience(learner, stream.experiences[1])
    p = dict(learner.model.named_parameters())[W]
    with torch.no_grad():
        p.add_(0.2)  # away from the anchor: only the penalty has a gradient
    learner.model.zero_grad(set_to_none=True)
    si.penalty(learner, None, None).backward()
    si.after_backward(learner)
    assert float(si._grad[W].abs().max()) < 1e-6
