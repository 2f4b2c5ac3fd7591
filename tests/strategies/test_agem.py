"""A-GEM: a conflicting gradient is projected onto the reference gradient's half-space, others pass."""

import torch

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import AGEM
from lifelong.strategies.gem import flat_grad, loss_grad, trainable, write_grad
from tests.strategies.test_gem import uint8_scenario


def _trained() -> tuple[Learner, AGEM]:
    agem = AGEM(buffer_size=40)
    learner = Learner(toy_model(), [agem], lr=0.1, batch_size=32)
    learner.learn(toy_scenario("class").experiences[0])
    return learner, agem


def _reference(learner: Learner, agem: AGEM) -> torch.Tensor:
    """The reference gradient ``after_backward`` will draw (same generator state), without consuming it."""
    state = learner.generator.get_state()
    _, ref, _ = agem.buffer_.sample(learner.batch_size, learner.generator)
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


def test_task_free() -> None:
    agem = AGEM(buffer_size=20)
    Learner(toy_model(), [agem], lr=0.1, batch_size=8).fit(toy_scenario("task-free"))
    assert len(agem.buffer_) == 20


def test_uint8_budget() -> None:
    agem = AGEM(buffer_size=20)
    Learner(toy_model(), [agem], lr=0.1, batch_size=32).fit(uint8_scenario())
    assert agem.buffer_.x.dtype == torch.uint8
    assert agem.memory_bytes() == 20 * (8 + 8 + 8)  # uint8 features, int64 label and task id
