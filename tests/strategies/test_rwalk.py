"""RWalk: online Fisher and path score by hand; the penalty is weighted by F + s."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
from lifelong.strategies import RWalk
from tests.strategies._penalty import W, penalty_moved


class Spy(Strategy):
    """Recomputes the running Fisher and the path integral from every step's gradient."""

    def __init__(self, alpha: float, rwalk: RWalk) -> None:
        self.alpha, self.rwalk, self.fisher = alpha, rwalk, {}

    def before_experience(self, learner, experience):
        self.start = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
        self.path = {n: torch.zeros_like(p) for n, p in learner.model.named_parameters()}

    def after_backward(self, learner):
        self.grad = {n: p.grad.clone() for n, p in learner.model.named_parameters()}
        for n, p in learner.model.named_parameters():  # the task loss's gradient: drop RWalk's own penalty
            if n in self.rwalk.importance_:
                self.grad[n] -= (
                    2 * self.rwalk.lam * self.rwalk.importance_[n] * (p.detach() - self.rwalk.anchor_[n])
                )
        self.before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
        for n, g in self.grad.items():
            f = self.fisher.get(n)
            self.fisher[n] = g.pow(2) if f is None else self.alpha * f + (1 - self.alpha) * g.pow(2)

    def after_step(self, learner):
        for n, p in learner.model.named_parameters():
            self.path[n] -= self.grad[n] * (p.detach() - self.before[n])


def _learned(strategy: Strategy, *extra: Strategy) -> Learner:
    learner = Learner(toy_model(), [strategy, *extra], lr=0.1, batch_size=8, seed=0)
    learner.learn(toy_scenario("class").experiences[0])
    return learner


def test_fisher_and_score_match_a_hand_computation() -> None:
    rwalk = RWalk(alpha=0.8, eps=0.1)
    spy = Spy(0.8, rwalk)
    learner = _learned(rwalk, spy)
    for n, p in learner.model.named_parameters():
        assert torch.allclose(rwalk.fisher_[n], spy.fisher[n], rtol=1e-5, atol=1e-9), n
        delta = p.detach() - spy.start[n]
        score = spy.path[n].clamp(min=0) / (0.5 * spy.fisher[n] * delta.pow(2) + 0.1)
        assert torch.allclose(rwalk.score_[n], score, rtol=1e-4, atol=1e-7), n
        assert torch.allclose(rwalk.importance_[n], rwalk.fisher_[n] + rwalk.score_[n])
        assert (rwalk.importance_[n] >= 0).all()


def test_scores_are_averaged_over_experiences() -> None:
    rwalk = RWalk()
    spy = Spy(0.9, rwalk)
    learner = _learned(rwalk, spy)
    first = rwalk.score_[W].clone()
    learner.learn(toy_scenario("class").experiences[1])
    assert torch.allclose(rwalk.fisher_[W], spy.fisher[W], rtol=1e-4, atol=1e-9)
    p = dict(learner.model.named_parameters())[W]
    new = spy.path[W].clamp(min=0) / (0.5 * spy.fisher[W] * (p.detach() - spy.start[W]).pow(2) + 0.1)
    assert torch.allclose(rwalk.score_[W], 0.5 * (first + new), rtol=1e-3, atol=1e-6)


def test_penalty_zero_at_anchor_grows_and_follows_importance() -> None:
    rwalk = RWalk(lam=3.0)
    learner = _learned(rwalk)
    assert float(rwalk.penalty(learner, None, None).detach()) == 0.0
    imp = rwalk.importance_[W]
    hi = divmod(int(imp.argmax()), imp.shape[1])
    lo = divmod(int(torch.where(imp > 0, imp, imp.max()).argmin()), imp.shape[1])
    assert imp[hi] > imp[lo] > 0
    p_hi, p_lo = penalty_moved(learner, rwalk, hi, 0.3), penalty_moved(learner, rwalk, lo, 0.3)
    assert p_hi > p_lo > 0
    assert p_hi == pytest.approx(3.0 * float(imp[hi]) * 0.09, rel=1e-4)
    assert penalty_moved(learner, rwalk, hi, 0.6) == pytest.approx(4 * p_hi, rel=1e-4)
