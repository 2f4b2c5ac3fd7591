"""The proximal penalty step shared by EWC, SI and MAS: the exact implicit step, stable for any strength."""

import pytest
import torch
import torch.nn.functional as F

from lifelong.checks import toy_model, toy_scenario
from lifelong.data.dataset import Batch
from lifelong.errors import ConfigError
from lifelong.learn.learner import Learner
from lifelong.strategies import EWC, MAS, SI

LR = 0.1


def _after_first(strategy) -> tuple[Learner, list]:
    learner = Learner(toy_model(), [strategy], lr=LR, batch_size=8, seed=0)
    experiences = toy_scenario("domain").experiences
    learner.learn(experiences[0])
    return learner, experiences


def _curvature(strategy) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(anchor, k) of each strategy's penalty written as ``sum k/2 (theta - a)^2``."""
    if isinstance(strategy, EWC):
        return strategy.anchors_[0], {n: strategy.lam * f for n, f in strategy.fishers_[0].items()}
    strength = strategy.c if isinstance(strategy, SI) else strategy.lam
    return strategy.anchor_, {n: 2 * strength * w for n, w in strategy.omega_.items()}


@pytest.mark.parametrize(
    "strategy",
    [
        EWC(lam=50.0, penalty_step="proximal"),
        SI(c=5.0, penalty_step="proximal"),
        MAS(lam=5.0, penalty_step="proximal"),
    ],
    ids=["ewc", "si", "mas"],
)
def test_proximal_step_is_the_implicit_step_by_value(strategy) -> None:
    learner, experiences = _after_first(strategy)
    anchor, k = _curvature(strategy)
    model = learner.model
    with torch.no_grad():  # move off the anchor so the pull is visible
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    b = experiences[1].train.batch(torch.arange(8))
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad()
    F.cross_entropy(model(b.x), b.y).backward()  # the task loss alone: the penalty is not in the loss
    sgd = {n: theta[n] - LR * p.grad for n, p in model.named_parameters()}
    learner.train_step(Batch(b.x, b.y))
    for n, p in model.named_parameters():
        expected = anchor[n] + (sgd[n] - anchor[n]) / (1 + LR * k[n])
        assert torch.allclose(p.detach(), expected, atol=1e-6), n
        assert not torch.allclose(p.detach(), sgd[n], atol=1e-4), n  # the pull did act


@pytest.mark.parametrize(
    "make",
    [
        lambda s: EWC(lam=1e6, penalty_step=s),
        lambda s: SI(c=1e6, penalty_step=s),
        lambda s: MAS(lam=1e6, penalty_step=s),
    ],
    ids=["ewc", "si", "mas"],
)
def test_proximal_step_holds_where_the_gradient_step_diverges(make) -> None:
    drift = {}
    for step in ("gradient", "proximal"):
        learner, experiences = _after_first(make(step))
        before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
        learner.learn(experiences[1])
        drift[step] = max(
            float((p.detach() - before[n]).abs().max()) for n, p in learner.model.named_parameters()
        )
    assert not drift["gradient"] < 1e3  # blew up (or NaN): lr * k > 2 for the stiffest weights
    assert drift["proximal"] < 0.1  # held at the first experience's weights


@pytest.mark.parametrize(
    ("make", "strength"),
    [
        (lambda s: EWC(lam=1e6, penalty_step=s), "lam"),
        (lambda s: SI(c=1e6, penalty_step=s), "c"),
        (lambda s: MAS(lam=1e6, penalty_step=s), "lam"),
    ],
    ids=["ewc", "si", "mas"],
)
def test_a_run_diverged_by_the_gradient_step_says_to_try_the_proximal_one(make, strength) -> None:
    with pytest.warns(RuntimeWarning, match=r"training diverged: .*penalty_step='proximal'") as caught:
        result = Learner(toy_model(), [make("gradient")], lr=LR, batch_size=8, seed=0).fit(
            toy_scenario("domain")
        )
    assert result.diverged and f"a smaller {strength} or lr" in str(caught[0].message)
    assert "penalty_step='proximal'" in result.table().splitlines()[0]
    assert "penalty_step='proximal'" in result.to_dict()["info"]["divergence_hint"]
    assert make("proximal").divergence_hint() is None  # the stable step has no such advice


def test_unknown_penalty_step_is_refused() -> None:
    for make in (
        lambda: EWC(penalty_step="implicit"),
        lambda: SI(penalty_step="x"),
        lambda: MAS(penalty_step=""),
    ):
        with pytest.raises(ConfigError, match="penalty_step"):
            make()


@pytest.mark.parametrize("name", ["mas", "ogd", "ewc"])
def test_importances_of_a_batch_norm_model_leave_its_statistics_alone(name: str) -> None:
    """Their probe of the output size used to run one sample through batch norm in train mode (a
    ValueError) and, with more samples, to move its running statistics at the boundary."""
    from lifelong.strategies import OGD

    strategy = {"mas": MAS(), "ogd": OGD(), "ewc": EWC()}[name]
    model = toy_model(batch_norm=True)
    learner = Learner(model, [strategy], lr=LR, batch_size=8, seed=0)
    first = toy_scenario().experiences[0]
    learner._begin(first)
    learner._train_epochs(first.train)
    stats = model.features[2].running_mean.clone()
    learner.consolidate()  # the importances (or OGD's gradient basis) are computed here
    assert torch.equal(model.features[2].running_mean, stats)


def test_ewc_fisher_beside_multihead_task_heads() -> None:
    """Per-sample gradients of another task's head are zero and come back from vmap broadcast: squaring
    them in place raised 'more than one element of the written-to tensor refers to a single memory location'."""
    from lifelong.strategies import MultiHead

    ewc = EWC()
    result = Learner(toy_model(), [MultiHead(), ewc], lr=LR, batch_size=8, seed=0).fit(toy_scenario("task"))
    assert not result.diverged and len(ewc.fishers_) == len(result.accuracy_matrix)
    assert all(torch.isfinite(f).all() for fisher in ewc.fishers_ for f in fisher.values())


class _GRUNet(torch.nn.Module):
    """A GRU builds its initial hidden state unbatched, which torch.func.vmap cannot update in place."""

    def __init__(self, cell: type[torch.nn.RNNBase] = torch.nn.GRU) -> None:
        super().__init__()
        self.rnn = cell(3, 6, batch_first=True)
        self.classifier = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.rnn(x)[0][:, -1])


def _sequences(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, 3, generator=g), torch.arange(n) % 2


@pytest.mark.parametrize("strategy", [EWC(lam=1.0), MAS(lam=1.0)], ids=["ewc", "mas"])
def test_per_sample_importances_train_a_gru(strategy) -> None:
    from lifelong.data import from_tensors
    from lifelong.data.scenarios import Experience

    x, y = _sequences()
    data = from_tensors(x, y)
    learner = Learner(_GRUNet(), [strategy], lr=LR, batch_size=8)
    learner.learn(Experience(0, (0, 1), 0, data, data))  # vmap's broadcast RuntimeError before
    importance = strategy.fishers_[0] if isinstance(strategy, EWC) else strategy.omega_
    assert all(bool(torch.isfinite(v).all()) for v in importance.values())
    assert sum(float(v.sum()) for v in importance.values()) > 0


def test_looped_per_sample_gradients_equal_the_vmapped_ones(monkeypatch) -> None:
    from lifelong.data import from_tensors
    from lifelong.strategies import _importance

    x, y = _sequences()
    learner = Learner(_GRUNet(torch.nn.LSTM), lr=LR)  # an LSTM vmaps, so both paths can run
    learner.partial_fit(x, y)
    data = from_tensors(x, y)
    vmapped = _importance.fisher_diagonal(learner, data)

    def refuse(*args, **kwargs):
        def fail(*a):
            raise RuntimeError("not vmappable")

        return fail

    monkeypatch.setattr(_importance, "vmap", refuse)
    looped = _importance.fisher_diagonal(learner, data)
    for k in vmapped:
        torch.testing.assert_close(looped[k], vmapped[k])


def test_per_sample_gradients_of_some_parameters_equal_those_of_all_restricted() -> None:
    """OGD's task-incremental boundary needs no head gradients: ``only`` skips computing them."""
    from lifelong.strategies import _importance

    x, y = _sequences()
    learner = Learner(_GRUNet(torch.nn.LSTM), lr=LR)
    learner.partial_fit(x, y)

    def loss(logits, yi, mi):
        return torch.nn.functional.cross_entropy(logits, yi)

    full = _importance.per_sample_gradients(learner, x, None, y, loss)
    some = [n for n in full if "rnn" in n]
    part = _importance.per_sample_gradients(learner, x, None, y, loss, only=some)
    assert list(part) == some and len(some) < len(full)
    for k in some:
        torch.testing.assert_close(part[k], full[k])


@pytest.mark.parametrize(
    "make",
    [lambda: EWC(lam=1e6), lambda: SI(c=1e6), lambda: MAS(lam=1e6)],
    ids=["ewc", "si", "mas"],
)
def test_the_default_step_is_proximal_under_sgd_and_the_gradient_under_adam(make) -> None:
    """``auto``: ``EWC()`` diverged on split digits at lr 0.05 with the gradient step; under SGD the
    proximal step is exact and stable, under Adam its pull at the raw lr would not match the steps."""
    strategy = make()
    result = Learner(toy_model(), [strategy], lr=LR, batch_size=8, seed=0).fit(toy_scenario("domain"))
    assert strategy.penalty_step == "auto" and strategy._step == "proximal" and not result.diverged
    adam = make()
    learner = Learner(toy_model(), [adam], lr=0.001, optimizer="adam", batch_size=8, seed=0)
    learner.fit(toy_scenario("domain"))
    assert adam._step == "gradient" and adam.penalty(learner, None, None) is not None  # type: ignore[arg-type]
