"""GPM: bases hold the asked energy, projected gradients are orthogonal to them, old outputs stay put."""

import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Dataset
from lifelong.errors import ConfigError
from lifelong.learn.learner import Learner
from lifelong.strategies import GPM
from lifelong.strategies._projection import grow_basis, layers


def _augmented_grad(module: nn.Module) -> torch.Tensor:
    g = module.weight.grad.reshape(len(module.weight), -1)
    return torch.cat([g, module.bias.grad[:, None]], 1) if module.bias is not None else g


def _old_logit_drift(strategies: list) -> float:
    learner = Learner(toy_model(), strategies, lr=0.05, batch_size=8, seed=0)
    exps = toy_scenario("task").experiences
    learner.learn(exps[0])
    x, t, old = exps[0].test.features(), exps[0].test.t, list(exps[0].classes)
    before = learner.predict_logits(x, t)[:, old]
    learner.learn(exps[1])
    return float((learner.predict_logits(x, t)[:, old] - before).abs().max())


def test_grow_basis_takes_the_fewest_directions_reaching_the_threshold_after_the_first() -> None:
    g = torch.Generator().manual_seed(0)
    r = (
        torch.randn(50, 6, generator=g, dtype=torch.float64)
        * torch.tensor([5.0, 3, 1, 0.5, 0.2, 0.1]).double()
    )
    gram = r.T @ r
    total = float(gram.trace())
    first = grow_basis(None, gram, 0.9).double()  # the authors' first task: below the threshold
    assert torch.allclose(first.T @ first, torch.eye(first.shape[1]).double(), atol=1e-5)
    assert first.shape[1] >= 1 and float((first.T @ gram @ first).trace()) < 0.9 * total
    m = grow_basis(first, gram, 0.9).double()  # later: the fewest more directions reaching it
    assert m.shape[1] == first.shape[1] + 1 and torch.equal(m[:, :-1].float(), first.float())
    assert float((m.T @ gram @ m).trace()) >= 0.9 * total
    assert grow_basis(m, gram, 0.8).shape == m.shape  # already enough: nothing added
    more = grow_basis(m, gram, 0.999).double()
    assert torch.equal(more[:, : m.shape[1]].float(), m.float())  # old directions kept, new ones appended
    assert torch.allclose(more.T @ more, torch.eye(more.shape[1]).double(), atol=1e-5)


def test_projected_gradients_are_orthogonal_to_every_layer_basis() -> None:
    gpm = GPM(threshold=0.97)
    learner = Learner(toy_model(), [gpm], lr=0.1, batch_size=8, seed=0)
    exps = toy_scenario("domain").experiences  # same classes: every row of the head is projected
    learner.learn(exps[0])
    b = exps[1].train.batch(torch.arange(16))
    learner.model.zero_grad(set_to_none=True)
    F.cross_entropy(learner.model(b.x), b.y).backward()
    modules = dict(layers(learner.model))
    raw = {n: _augmented_grad(modules[n]).clone() for n in gpm.bases_}
    gpm.after_backward(learner)
    for name, m in gpm.bases_.items():
        g = _augmented_grad(modules[name])
        assert float((raw[name] @ m).norm()) > 1e-3 * float(raw[name].norm()), name
        assert float((g @ m).abs().max()) < 1e-5 * float(raw[name].norm()), name


def test_old_task_outputs_barely_move_in_task_incremental_learning() -> None:
    naive = _old_logit_drift([])
    assert _old_logit_drift([GPM(threshold=0.97)]) < 0.25 * naive
    assert _old_logit_drift([GPM(threshold=1.0)]) < 1e-4 * max(naive, 1.0)  # full span: outputs frozen


def test_conv_layers_are_projected_through_their_patches() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    gpm = GPM(threshold=0.9, samples=20)
    learner = Learner(model, [gpm], seed=0)
    x = torch.randn(40, 2, 5, 5) + torch.linspace(0, 1, 5)  # structured inputs: a proper subspace
    gpm.after_experience(learner, SimpleNamespace(train=Dataset(x, torch.arange(40) % 4)))
    conv = model[0]
    assert gpm.bases_["0"].shape[0] == 2 * 3 * 3 + 1
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(torch.randn(8, 2, 5, 5)), torch.arange(8) % 4).backward()
    raw = _augmented_grad(conv).clone()
    gpm.after_backward(learner)
    assert float((_augmented_grad(conv) @ gpm.bases_["0"]).abs().max()) < 1e-5 * float(raw.norm())


def test_models_with_other_trainable_layers_are_refused() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.LayerNorm(4))
    with pytest.raises(ConfigError, match="LayerNorm"):
        Learner(model, [GPM()])


def test_projection_follows_a_head_that_grew_after_the_layers_were_cached() -> None:
    gpm = GPM(threshold=0.97)
    learner = Learner(toy_model(), [gpm], lr=0.1, batch_size=8, seed=0)
    exps = toy_scenario("domain").experiences
    learner.learn(exps[0])
    b = exps[1].train.batch(torch.arange(16))
    learner.train_step(b)  # the projected layers are cached here
    assert learner.grow_classes(6)  # a new head module (and optimizer)
    learner.model.zero_grad(set_to_none=True)
    F.cross_entropy(learner.model(b.x), b.y).backward()
    name, head = list(layers(learner.model))[-1]
    raw = _augmented_grad(head).clone()
    gpm.after_backward(learner)
    old = gpm.old_classes_
    m = gpm.bases_[name]
    assert float((raw[old] @ m).norm()) > 1e-3 * float(raw.norm())
    assert float((_augmented_grad(head)[old] @ m).abs().max()) < 1e-5 * float(raw.norm())


def test_momentum_or_adam_is_warned_about_since_it_lets_old_outputs_drift() -> None:
    """With momentum 0.9 GPM's BWT was -0.077 on task-incremental data (0 with plain SGD), silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Learner(toy_model(), [GPM()])  # plain SGD: nothing to say
    with pytest.warns(UserWarning, match=r"GPM projects each step's gradient, and momentum 0.9 carries"):
        Learner(toy_model(), [GPM()], momentum=0.9)
    with pytest.warns(UserWarning, match=r"and adam carries earlier unprojected steps"):
        Learner(toy_model(), [GPM()], optimizer="adam")
