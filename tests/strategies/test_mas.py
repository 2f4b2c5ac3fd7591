"""MAS: importances are mean |d ||f(x)||^2 / d theta|, summed over experiences; penalty weighted by them."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import MAS

W = "features.1.weight"  # the weight the penalty_moved fixture displaces


def _learned(strategy: MAS, kind: str = "class", n: int = 1) -> tuple[Learner, list]:
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8, seed=0)
    experiences = toy_scenario(kind).experiences
    for e in experiences[:n]:
        learner.learn(e)
    return learner, experiences


def _brute_force(learner: Learner, x: torch.Tensor, keep: list[int] | None = None) -> dict[str, torch.Tensor]:
    total = {n: torch.zeros_like(p) for n, p in learner.model.named_parameters()}
    for xi in x:
        learner.model.zero_grad()
        out = learner.model(xi[None])
        (out if keep is None else out[:, keep]).pow(2).sum().backward()
        for n, p in learner.model.named_parameters():
            total[n] += p.grad.abs()
    return {n: v / len(x) for n, v in total.items()}


def test_importance_matches_per_sample_loop_and_accumulates() -> None:
    mas = MAS()
    learner, exps = _learned(mas)
    first = _brute_force(learner, exps[0].train.features())
    for n, v in first.items():
        assert torch.allclose(mas.omega_[n], v, rtol=1e-4, atol=1e-6), n
    learner.learn(exps[1])
    second = _brute_force(learner, exps[1].train.features())
    for n, v in second.items():
        assert torch.allclose(mas.omega_[n], first[n] + v, rtol=1e-4, atol=1e-6), n


def test_task_incremental_uses_only_the_task_outputs() -> None:
    mas = MAS()
    learner, exps = _learned(mas, "task")
    own = _brute_force(learner, exps[0].train.features(), keep=list(exps[0].classes))
    full = _brute_force(learner, exps[0].train.features())
    assert torch.allclose(mas.omega_[W], own[W], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(mas.omega_[W], full[W], rtol=0.05)  # the other task's head is ignored


def test_penalty_zero_at_anchor_grows_and_follows_importance(penalty_moved) -> None:
    mas = MAS(lam=2.0, penalty_step="gradient")
    learner, _ = _learned(mas)
    assert float(mas.penalty(learner, None, None).detach()) == 0.0
    omega = mas.omega_[W]
    hi = divmod(int(omega.argmax()), omega.shape[1])
    lo = divmod(int(torch.where(omega > 0, omega, omega.max()).argmin()), omega.shape[1])
    assert omega[hi] > omega[lo] > 0
    p_hi, p_lo = penalty_moved(learner, mas, hi, 0.3), penalty_moved(learner, mas, lo, 0.3)
    assert p_hi > p_lo > 0
    assert p_hi == pytest.approx(2.0 * float(omega[hi]) * 0.09, rel=1e-4)
    assert penalty_moved(learner, mas, hi, 0.6) == pytest.approx(4 * p_hi, rel=1e-4)
