"""A-GEM: a conflicting gradient is projected onto the reference gradient's half-space, others pass."""

import pytest
import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.errors import StrategyMismatchError
from lifelong.learn.learner import Learner
from lifelong.strategies import AGEM
from lifelong.strategies.agem import project
from lifelong.strategies.gem import flat_grad, loss_grad, trainable, write_grad


def _trained() -> tuple[Learner, AGEM]:
    agem = AGEM(buffer_size=40)
    learner = Learner(toy_model(), [agem], lr=0.1, batch_size=32)
    learner.learn(toy_scenario("class").experiences[0])
    return learner, agem


def _reference(learner: Learner, agem: AGEM) -> torch.Tensor:
    """The reference gradient ``after_backward`` will draw (same generator state), without consuming it."""
    state = learner.generator.get_state()
    _, ref, _ = agem.buffer_.sample(agem.batch_size, learner.generator)
    learner.generator.set_state(state)
    return loss_grad(learner, trainable(learner.model), ref.x, ref.y, ref.t)


def test_conflicting_gradient_is_projected() -> None:
    learner, agem = _trained()
    params = trainable(learner.model)
    g_ref = _reference(learner, agem)
    g = -g_ref + 0.3 * torch.randn(len(g_ref), generator=torch.Generator().manual_seed(0))
    assert g @ g_ref < 0
    write_grad(params, g)
    agem.after_backward(learner)
    new = flat_grad(params)
    assert torch.allclose(new, g - (g @ g_ref) / (g_ref @ g_ref) * g_ref, atol=1e-6)
    assert new @ g_ref >= -1e-6


def test_agreeing_gradient_is_unchanged() -> None:
    learner, agem = _trained()
    params = trainable(learner.model)
    g = _reference(learner, agem) * 2
    write_grad(params, g)
    agem.after_backward(learner)
    assert torch.equal(flat_grad(params), g)


def test_the_projection_without_a_host_branch_is_the_same() -> None:
    """On an accelerator A-GEM projects by a clamped coefficient (no sign read on the host)."""
    g_ref = torch.randn(50, generator=torch.Generator().manual_seed(1))
    conflicting, agreeing = -g_ref + 0.1, g_ref + 0.1
    assert conflicting @ g_ref < 0 < agreeing @ g_ref
    assert torch.allclose(project(conflicting, g_ref, branch=False), project(conflicting, g_ref), atol=1e-6)
    assert project(agreeing, g_ref) is None and torch.equal(project(agreeing, g_ref, branch=False), agreeing)


def test_reference_holds_only_past_experiences() -> None:
    agem = AGEM(buffer_size=40)
    drawn: list[tuple[int, torch.Tensor]] = []
    sample = agem.buffer_.sample

    def spy(n, generator):
        out = sample(n, generator)
        drawn.append((learner.experience_index, out[1].y))
        return out

    agem.buffer_.sample = spy  # type: ignore[method-assign]
    learner = Learner(toy_model(), [agem], lr=0.1, batch_size=8)
    stream = toy_scenario("class")
    learner.fit(stream)
    assert drawn and all(e == 1 for e, _ in drawn)  # no projection during the first experience
    current = torch.tensor(stream.experiences[1].classes)
    assert all(not torch.isin(y, current).any() for _, y in drawn)  # never a current-experience sample
    assert all(len(y) == 40 for _, y in drawn)  # min(256, memory): the authors' 256-sample reference
    assert len(agem.buffer_) == 40 and set(agem.buffer_.y.tolist()) == {0, 1, 2, 3}  # filled at boundaries


def test_task_free_is_refused() -> None:
    with pytest.raises(StrategyMismatchError, match="task-free"):
        Learner(toy_model(), [AGEM(20)]).fit(toy_scenario("task-free"))


def test_uint8_budget(uint8_scenario) -> None:
    agem = AGEM(buffer_size=20)
    Learner(toy_model(), [agem], lr=0.1, batch_size=32).fit(uint8_scenario)
    assert agem.buffer_.x.dtype == torch.uint8
    assert agem.memory_bytes() == 20 * (8 + 8 + 8)  # uint8 features, int64 label and task id
