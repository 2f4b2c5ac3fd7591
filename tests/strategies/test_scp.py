"""SCP: per-mini-batch sliced importances by hand, the reference's online decay, the penalty."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
from lifelong.strategies import PNN, SCP
from lifelong.strategies.scp import batch_mean_jacobians

W = "features.1.weight"


class GeneratorSpy(Strategy):
    """Placed before SCP: keeps the generator state SCP draws its slices from."""

    def after_experience(self, learner, experience):
        self.state = learner.generator.get_state()


def _learned(scp: SCP, kind: str = "class") -> tuple[Learner, GeneratorSpy, list]:
    spy = GeneratorSpy()
    learner = Learner(toy_model(), [spy, scp], lr=0.1, batch_size=8, seed=0)
    experiences = toy_scenario(kind).experiences
    learner.learn(experiences[0])
    return learner, spy, experiences


def test_jacobians_are_those_of_each_mini_batch_mean() -> None:
    learner, _, exps = _learned(SCP(slices=4))
    data = exps[0].train
    jacs = list(batch_mean_jacobians(learner, data, torch.arange(len(data)), 7))
    assert len(jacs) == -(-len(data) // 7)
    out = learner.model(data.features()[7:14]).mean(0)  # the second mini-batch's mean output, [C]
    row = torch.autograd.grad(out[2], dict(learner.model.named_parameters())[W])[0]
    assert torch.allclose(jacs[1][W][2], row, rtol=1e-4, atol=1e-7)


def test_importance_is_the_references_sum_of_squared_slice_gradients() -> None:
    scp = SCP(slices=3, batch_size=16)
    learner, spy, exps = _learned(scp)
    data, g = exps[0].train, torch.Generator().set_state(spy.state)
    params = dict(learner.model.named_parameters())
    want = torch.zeros_like(params[W])
    for i in range(0, len(data), 16):  # fresh slices per mini-batch, one backward per slice
        mean = learner.model(data.features()[i : i + 16]).mean(0)
        xi = torch.randn(3, len(mean), generator=g)
        for v in xi / xi.norm(dim=1, keepdim=True):
            want += torch.autograd.grad(mean @ v, params[W], retain_graph=True)[0] ** 2 / len(data)
    assert torch.allclose(scp.gamma_[W], 0.5 * want, rtol=1e-4, atol=1e-9)  # (1 - decay) * Gamma_1


def test_importances_decay_online() -> None:
    scp = SCP(decay=0.5)
    learner, _, exps = _learned(scp)
    first = {n: g.clone() for n, g in scp.gamma_.items()}
    fresh = {n: torch.rand_like(g) for n, g in first.items()}
    scp.importance = lambda learner, data: fresh  # type: ignore[method-assign]
    learner.learn(exps[1])
    for n in first:
        assert torch.allclose(scp.gamma_[n], 0.5 * first[n] + 0.5 * fresh[n])


def test_penalty_zero_at_anchor_and_quadratic() -> None:
    scp = SCP(lam=10.0)
    learner, _, _ = _learned(scp)
    assert float(scp.penalty(learner, None, None).detach()) == 0.0
    gamma = scp.gamma_[W]
    hi = divmod(int(gamma.argmax()), gamma.shape[1])
    with torch.no_grad():
        dict(learner.model.named_parameters())[W][hi] += 0.3
    assert float(scp.penalty(learner, None, None).detach()) == pytest.approx(
        10.0 * float(gamma[hi]) * 0.09, rel=1e-4
    )


def test_other_tasks_outputs_are_ignored() -> None:
    learner, _, exps = _learned(SCP(slices=50), "task")
    data = exps[0].train
    jac = next(batch_mean_jacobians(learner, data, torch.arange(len(data)), 8))
    other = [c for c in range(4) if c not in exps[0].classes]
    assert float(jac["classifier.weight"][other].abs().max()) == 0.0


def test_an_experience_whose_weights_were_all_frozen_gets_zero_importance_not_a_crash() -> None:
    """PNN freezes the experience's column before SCP reads it: autograd.grad raised on an output
    that depends on no trainable weight."""
    learner = Learner(toy_model(), [PNN(), SCP(samples=20)], lr=0.1, batch_size=8)
    result = learner.fit(toy_scenario("task"))
    scp = learner.strategies[1]
    assert result.metrics["acc"] > 0.5 and all(float(g.abs().sum()) == 0 for g in scp.gamma_.values())
