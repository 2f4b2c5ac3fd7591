"""RWalk: per-interval Fisher and score by hand, min-max normalisation, averaging over experiences."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
from lifelong.strategies import RWalk
from lifelong.strategies.rwalk import minmax

W = "features.1.weight"


class Spy(Strategy):
    """Recomputes the authors' per-interval updates from every step's gradient."""

    def __init__(self, rwalk: RWalk) -> None:
        self.rwalk, self.fisher, self.score = rwalk, {}, {}

    def before_experience(self, learner, experience):
        self.riemann = {}
        self._restart(learner)
        self.squares = {n: torch.zeros_like(p) for n, p in learner.model.named_parameters()}

    def _restart(self, learner):
        self.start = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
        self.path = {n: torch.zeros_like(p) for n, p in learner.model.named_parameters()}

    def after_backward(self, learner):
        r = self.rwalk
        self.grad = {n: p.grad.clone() for n, p in learner.model.named_parameters()}
        for n, p in learner.model.named_parameters():  # the task loss's gradient: drop RWalk's own penalty
            if n in r.importance_:
                self.grad[n] -= 2 * r.lam * r.importance_[n] * (p.detach() - r.anchor_[n])
            self.squares[n] += self.grad[n] ** 2
        self.before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}

    def after_step(self, learner):
        r = self.rwalk
        for n, p in learner.model.named_parameters():
            self.path[n] -= self.grad[n] * (p.detach() - self.before[n])
        if (learner.step + 1) % r.interval:
            return
        for n, p in learner.model.named_parameters():
            f = self.fisher.get(n, torch.zeros_like(p))
            s = torch.relu(self.path[n] / (r.eps + f * (p.detach() - self.start[n]) ** 2))
            self.riemann[n] = self.riemann.get(n, 0) + s
            self.fisher[n] = r.alpha * self.squares[n] / r.interval + (1 - r.alpha) * f
            self.squares[n] = torch.zeros_like(p)
        self._restart(learner)

    def after_experience(self, learner, experience):
        for n, s in self.riemann.items():
            self.score[n] = 0.5 * (self.score[n] + s) if n in self.score else s


def _fit(n: int = 1, **kw) -> tuple[Learner, RWalk, Spy]:
    rwalk = RWalk(**kw)
    spy = Spy(rwalk)
    learner = Learner(toy_model(), [rwalk, spy], lr=0.1, batch_size=8, seed=0)
    for e in toy_scenario("class").experiences[:n]:
        learner.learn(e)
    return learner, rwalk, spy


@pytest.mark.parametrize("n", [1, 2])
def test_fisher_and_score_match_a_hand_computation(n: int) -> None:
    learner, rwalk, spy = _fit(n, alpha=0.8, eps=1e-3, interval=3)
    for name in rwalk.fisher_:
        assert torch.allclose(rwalk.fisher_[name], spy.fisher[name], rtol=1e-5, atol=1e-9), name
        assert torch.allclose(rwalk.score_[name], spy.score[name], rtol=1e-4, atol=1e-6), name
    f, s = minmax(spy.fisher), minmax(spy.score)
    lo = min(float(v.min()) for v in spy.fisher.values())
    hi = max(float(v.max()) for v in spy.fisher.values())
    assert lo >= 0 and torch.allclose(f[W], (spy.fisher[W] - lo) / (hi - lo))  # over every parameter together
    for name in rwalk.importance_:
        assert torch.allclose(rwalk.importance_[name], f[name] + s[name], rtol=1e-4, atol=1e-6)
        assert float(rwalk.importance_[name].min()) >= 0 and float(rwalk.importance_[name].max()) <= 2


def test_penalty_zero_at_anchor_and_quadratic() -> None:
    learner, rwalk, _ = _fit(lam=3.0)
    assert float(rwalk.penalty(learner, None, None).detach()) == 0.0
    p = dict(learner.model.named_parameters())[W]
    imp = rwalk.importance_[W]
    hi = divmod(int(imp.argmax()), imp.shape[1])
    with torch.no_grad():
        p[hi] += 0.3
    assert float(rwalk.penalty(learner, None, None).detach()) == pytest.approx(
        3.0 * float(imp[hi]) * 0.09, rel=1e-4
    )
