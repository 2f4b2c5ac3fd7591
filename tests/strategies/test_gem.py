"""GEM: the projected gradient never conflicts with a stored experience's gradient."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import ConfigError
from lifelong.learn.learner import Learner
from lifelong.strategies import GEM
from lifelong.strategies.gem import flat_grad, loss_grad, project, trainable, write_grad


def _trained(buffer_size: int = 40) -> tuple[Learner, GEM]:
    gem = GEM(buffer_size=buffer_size)
    learner = Learner(toy_model(), [gem], lr=0.1, batch_size=32)
    learner.fit(toy_scenario("class"))  # two experiences: two memories
    return learner, gem


def _memory_grads(learner: Learner, gem: GEM) -> torch.Tensor:
    params = trainable(learner.model)
    return torch.stack(
        [
            loss_grad(learner, params, x.float() * s, y, t)
            for x, y, t, s in zip(gem.x_, gem.y_, gem.t_, gem.scale_)
        ]
    )


def test_projection_satisfies_every_constraint() -> None:
    learner, gem = _trained()
    mem = _memory_grads(learner, gem)  # [2, P]
    params = trainable(learner.model)
    unit = mem / mem.norm(dim=1, keepdim=True)  # g . m_e = -(|m_e| + m_e . m_f / |m_f|) < 0 for both
    violating = -unit.sum(0) + 0.01 * torch.randn(mem.shape[1], generator=torch.Generator().manual_seed(0))
    assert (mem @ violating < 0).all()  # so the QP must run
    write_grad(params, violating)
    gem.after_backward(learner)
    g = flat_grad(params)
    assert not torch.allclose(g, violating)
    assert (mem @ g >= -1e-6).all()


def test_no_violation_leaves_gradient_unchanged() -> None:
    learner, gem = _trained()
    mem = _memory_grads(learner, gem)
    params = trainable(learner.model)
    agreeing = (mem / mem.norm(dim=1, keepdim=True)).sum(0)
    assert (mem @ agreeing > 0).all()
    write_grad(params, agreeing)
    gem.after_backward(learner)
    assert torch.equal(flat_grad(params), agreeing)


def test_project_on_a_hand_made_case() -> None:
    g = torch.tensor([1.0, -0.1])
    mem = torch.tensor([[0.0, 1.0]])
    # without margin: the closest gradient with a non-negative dot product drops the conflicting part
    assert torch.allclose(project(g, mem, margin=0.0), torch.tensor([1.0, 0.0]), atol=1e-6)
    # the dual variable is at least the margin: 0.5 of the memory's gradient is added to g
    assert torch.allclose(project(g, mem, margin=0.5), torch.tensor([1.0, 0.4]), atol=1e-6)


def test_memory_is_split_across_experiences_and_costs_uint8_bytes(uint8_scenario) -> None:
    gem = GEM(buffer_size=30)
    Learner(toy_model(), [gem], lr=0.1, batch_size=32).fit(uint8_scenario)
    assert [len(y) for y in gem.y_] == [15, 15]
    assert all(x.dtype == torch.uint8 for x in gem.x_)
    assert gem.memory_bytes() == 30 * (8 + 8 + 8)  # 8 uint8 features, int64 label and task id


def test_per_experience_memory_keeps_every_experience_whole_as_the_authors_code(uint8_scenario) -> None:
    gem = GEM(buffer_size=30, per_experience=12)
    Learner(toy_model(), [gem], lr=0.1, batch_size=32).fit(uint8_scenario)
    assert [len(y) for y in gem.y_] == [12, 12]  # not shrunk when the second arrives; buffer_size unused
    assert gem.memory_bytes() == 24 * (8 + 8 + 8)


def test_per_experience_must_keep_a_sample() -> None:
    with pytest.raises(ConfigError, match="per_experience"):
        GEM(per_experience=0)


def test_a_budget_smaller_than_the_experiences_is_refused_before_the_one_it_cannot_keep() -> None:
    """Every share was 0 rows: GEM silently became naive fine-tuning."""
    learner = Learner(toy_model(), [GEM(buffer_size=1)], lr=0.1, batch_size=8)
    scenario = toy_scenario()
    learner.fit(scenario[:1])
    with pytest.raises(
        ConfigError, match=r"GEM\(buffer_size=1\) cannot keep a sample of each of 2 experiences"
    ):
        learner.fit(scenario[1:])
