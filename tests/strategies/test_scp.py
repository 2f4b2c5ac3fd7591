"""SCP: sliced importances of the mean output; penalty zero at the anchor and weighted by them."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.learn.strategy import Strategy
from lifelong.strategies import SCP
from lifelong.strategies.scp import mean_output_jacobian
from tests.strategies._penalty import W, penalty_moved


def _learned(strategy: SCP, kind: str = "class") -> tuple[Learner, list]:
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8, seed=0)
    experiences = toy_scenario(kind).experiences
    learner.learn(experiences[0])
    return learner, experiences


def test_jacobian_is_that_of_the_mean_output_whatever_the_chunking() -> None:
    learner, exps = _learned(SCP(slices=4))
    data = exps[0].train
    index = torch.arange(len(data))
    jac = mean_output_jacobian(learner, data, index, chunk=7)
    out = learner.model(data.features()).mean(0)  # [C]
    row = torch.autograd.grad(out[2], dict(learner.model.named_parameters())[W])[0]
    assert torch.allclose(jac[W][2], row, rtol=1e-4, atol=1e-7)
    assert torch.allclose(
        mean_output_jacobian(learner, data, index, chunk=1000)[W], jac[W], rtol=1e-4, atol=1e-7
    )


def test_many_slices_average_to_the_isotropic_expectation() -> None:
    # E[xi xi^T] = I / C for unit xi uniform on the sphere, so Gamma -> mean_c J_c^2
    scp = SCP(slices=20000)
    learner, exps = _learned(scp)
    jac = mean_output_jacobian(learner, exps[0].train, torch.arange(len(exps[0].train)))
    expected = jac[W].pow(2).mean(0)
    assert float((scp.gamma_[W] - expected).abs().sum() / expected.sum()) < 0.05


class GeneratorSpy(Strategy):
    """Placed before SCP: keeps the generator state SCP draws its slices from."""

    def after_experience(self, learner, experience):
        self.state = learner.generator.get_state()


def test_few_slices_are_the_mean_of_squared_slice_gradients() -> None:
    scp, spy = SCP(slices=3), GeneratorSpy()
    learner = Learner(toy_model(), [spy, scp], lr=0.1, batch_size=8, seed=0)
    data = toy_scenario("class").experiences[0].train
    learner.learn(toy_scenario("class").experiences[0])
    jac = mean_output_jacobian(learner, data, torch.arange(len(data)))[W]  # [C, *shape]
    xi = torch.randn(3, jac.shape[0], generator=torch.Generator().set_state(spy.state))
    xi = xi / xi.norm(dim=1, keepdim=True)
    direct = torch.stack([torch.einsum("c,c...->...", v, jac).pow(2) for v in xi]).mean(0)
    assert torch.allclose(scp.gamma_[W], direct, rtol=1e-4, atol=1e-9)


def test_penalty_zero_at_anchor_grows_and_follows_importance() -> None:
    scp = SCP(lam=10.0)
    learner, _ = _learned(scp)
    assert float(scp.penalty(learner, None, None).detach()) == 0.0
    gamma = scp.gamma_[W]
    hi = divmod(int(gamma.argmax()), gamma.shape[1])
    lo = divmod(int(torch.where(gamma > 0, gamma, gamma.max()).argmin()), gamma.shape[1])
    assert gamma[hi] > gamma[lo] > 0
    p_hi, p_lo = penalty_moved(learner, scp, hi, 0.3), penalty_moved(learner, scp, lo, 0.3)
    assert p_hi > p_lo > 0
    assert p_hi == pytest.approx(0.5 * 10.0 * float(gamma[hi]) * 0.09, rel=1e-4)
    assert penalty_moved(learner, scp, hi, 0.6) == pytest.approx(4 * p_hi, rel=1e-4)


def test_importances_accumulate_and_ignore_other_tasks_outputs() -> None:
    scp = SCP(slices=50)
    learner, exps = _learned(scp, "task")
    jac = mean_output_jacobian(learner, exps[0].train, torch.arange(len(exps[0].train)))
    other = [c for c in range(4) if c not in exps[0].classes]
    assert float(jac["classifier.weight"][other].abs().max()) == 0.0
    before = {n: g.clone() for n, g in scp.gamma_.items()}
    learner.learn(exps[1])
    assert all((scp.gamma_[n] >= before[n]).all() for n in before)
