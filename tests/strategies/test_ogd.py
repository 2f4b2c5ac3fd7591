"""OGD: an orthonormal basis of stored logit gradients; projected gradients are orthogonal to it."""

import torch
import torch.nn.functional as F

from lifelong.checks import toy_model, toy_scenario
from lifelong.learn.learner import Learner
from lifelong.strategies import OGD
from lifelong.strategies._projection import extend_rows


def _learned(strategy: OGD) -> tuple[Learner, list]:
    learner = Learner(toy_model(), [strategy], lr=0.1, batch_size=8, seed=0)
    experiences = toy_scenario("class").experiences
    learner.learn(experiences[0])
    return learner, experiences


def _flat_grad(learner: Learner) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in learner.model.parameters()])


def test_basis_is_orthonormal_and_spans_the_stored_logit_gradients() -> None:
    ogd = OGD(memory_per_experience=1000)  # every training sample of the experience
    learner, exps = _learned(ogd)
    basis = ogd.basis_
    assert torch.allclose(basis @ basis.T, torch.eye(len(basis)), atol=1e-5)
    b = exps[0].train.batch(torch.tensor([0, 70]))
    for x, y in zip(b.x, b.y):
        learner.model.zero_grad(set_to_none=True)
        learner.model(x[None])[0, y].backward()
        g = _flat_grad(learner)
        residual = g - basis.T @ (basis @ g)
        assert float(residual.norm() / g.norm()) < 1e-3


def test_projected_gradient_is_orthogonal_to_every_stored_direction() -> None:
    ogd = OGD(memory_per_experience=30)
    learner, exps = _learned(ogd)
    b = exps[1].train.batch(torch.arange(16))
    learner.model.zero_grad(set_to_none=True)
    F.cross_entropy(learner.model(b.x), b.y).backward()
    raw = _flat_grad(learner)
    ogd.after_backward(learner)
    g = _flat_grad(learner)
    assert float((ogd.basis_ @ raw).abs().max() / raw.norm()) > 1e-2  # there was something to remove
    assert float((ogd.basis_ @ g).abs().max() / raw.norm()) < 1e-5
    assert torch.allclose(raw - g, ogd.basis_.T @ (ogd.basis_ @ raw), atol=1e-6)  # only that was removed


def test_extend_rows_keeps_only_new_directions() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 10, generator=g)
    basis = extend_rows(None, a)
    assert basis.shape == (3, 10)
    again = extend_rows(basis, torch.cat([a[:2] * 2, torch.randn(1, 10, generator=g)]))
    assert again.shape == (4, 10)  # multiples of stored vectors add nothing
    assert torch.allclose(again @ again.T, torch.eye(4), atol=1e-5)


def test_old_logits_move_less_than_with_plain_sgd() -> None:
    def drift(strategy: list) -> float:
        learner = Learner(toy_model(), strategy, lr=0.05, batch_size=8, seed=0)
        exps = toy_scenario("task").experiences
        learner.learn(exps[0])
        x, t = exps[0].test.features(), exps[0].test.t
        before = learner.predict_logits(x, t)[:, list(exps[0].classes)]
        learner.learn(exps[1])
        return float((learner.predict_logits(x, t)[:, list(exps[0].classes)] - before).abs().mean())

    assert drift([OGD(memory_per_experience=100)]) < 0.5 * drift([])


def test_task_incremental_leaves_the_head_out_of_storage_and_projection() -> None:
    """As the authors' multi-head runs: old tasks' head rows moved (up to 0.011) while later tasks
    trained, since the stored directions included the shared, task-masked head."""
    ogd = OGD(memory_per_experience=30)
    learner = Learner(toy_model(), [ogd], lr=0.1, batch_size=8, seed=0)
    first, second = toy_scenario("task").experiences
    learner.learn(first)
    n_shared = sum(p.numel() for n, p in learner.model.named_parameters() if not n.startswith("classifier."))
    assert ogd.shared_only_ and ogd.basis_.shape[1] == n_shared
    head = learner.model.classifier
    old = list(first.classes)
    before = head.weight.detach()[old].clone(), head.bias.detach()[old].clone()
    learner.learn(second)
    assert torch.equal(head.weight[old], before[0]) and torch.equal(head.bias[old], before[1])
    assert min(learner.evaluate(toy_scenario("task"))) > 0.6
    class_il = OGD(memory_per_experience=30)
    _learned(class_il)
    assert not class_il.shared_only_ and class_il.basis_.shape[1] == sum(
        p.numel() for p in toy_model().parameters()
    )
