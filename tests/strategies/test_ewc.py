"""EWC: the three Fishers and the online decay checked by value against a hand computation."""

import pytest
import torch
from torch import nn

from lifelong.checks import toy_data, toy_model, toy_scenario
from lifelong.data.dataset import Dataset
from lifelong.data.scenarios import Experience, task_incremental
from lifelong.errors import ConfigError
from lifelong.learn.learner import Learner
from lifelong.learn.models import MLP
from lifelong.learn.strategy import get_strategy
from lifelong.strategies import EWC, OnlineEWC
from lifelong.strategies._importance import fisher_diagonal


def _linear() -> Learner:
    torch.manual_seed(0)
    return Learner(nn.Sequential(nn.Linear(3, 4)), [], batch_size=4)


def _data(seed: int = 0, n: int = 6) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    return Dataset(torch.randn(n, 3, generator=g), torch.randint(0, 4, (n,), generator=g))


def _by_hand(model: nn.Module, data: Dataset, kind: str) -> dict[str, torch.Tensor]:
    """Softmax regression: d(-log p_c)/dW = (p - e_c) x^T and d/db = p - e_c, per sample."""
    lin = model[0]
    fw, fb = torch.zeros_like(lin.weight), torch.zeros_like(lin.bias)
    with torch.no_grad():
        for x, y in zip(data.x, data.y):
            p = torch.softmax(lin(x), 0)
            labels = [(int(y), 1.0)] if kind == "empirical" else [(c, float(p[c])) for c in range(4)]
            for c, w in labels:
                e = torch.nn.functional.one_hot(torch.tensor(c), 4).float()
                fw += w * torch.outer(p - e, x) ** 2
                fb += w * (p - e) ** 2
    return {"0.weight": fw / len(data), "0.bias": fb / len(data)}


@pytest.mark.parametrize("kind", ["true", "empirical"])
def test_fisher_matches_the_hand_computation(kind: str) -> None:
    learner, data = _linear(), _data()
    got = fisher_diagonal(learner, data, kind, budget_bytes=4 * 16 * 2)  # chunks of 2: chunking is exact
    want = _by_hand(learner.model, data, kind)
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-6), k


def test_sampled_fisher_estimates_the_true_one() -> None:
    learner, data = _linear(), _data(n=400)
    true = fisher_diagonal(learner, data, "true")["0.weight"]
    sampled = fisher_diagonal(learner, data, "sampled")["0.weight"]
    assert torch.allclose(sampled, true, rtol=0.25, atol=1e-3)


def test_minibatch_estimator_squares_batch_mean_gradients() -> None:
    learner, data = _linear(), _data(n=8)
    got = fisher_diagonal(learner, data, "empirical", batch_size=4)["0.bias"]
    want = torch.zeros(4)
    for i in (0, 4):
        loss = nn.functional.cross_entropy(learner.model(data.x[i : i + 4]), data.y[i : i + 4])
        want += torch.autograd.grad(loss, learner.model[0].bias)[0] ** 2
    assert torch.allclose(got, want / 2, atol=1e-7)


def test_online_decay_by_value() -> None:
    learner, ewc = _linear(), OnlineEWC(lam=1.0, decay=0.5, fisher="empirical")
    a, b = _data(0), _data(1)
    ewc.after_experience(learner, Experience(0, (0, 1, 2, 3), 0, a, a))
    first = _by_hand(learner.model, a, "empirical")
    with torch.no_grad():
        learner.model[0].weight.add_(0.3)
    ewc.after_experience(learner, Experience(1, (0, 1, 2, 3), 0, b, b))
    second = _by_hand(learner.model, b, "empirical")
    assert len(ewc.fishers_) == 1
    for k in first:
        assert torch.allclose(ewc.fishers_[0][k], 0.5 * first[k] + second[k], atol=1e-6)
    assert torch.equal(ewc.anchors_[0]["0.weight"], learner.model[0].weight.detach())


def test_fused_separate_penalty_equals_the_sum_over_experiences() -> None:
    learner, ewc = _linear(), EWC(lam=2.0, penalty_step="gradient")
    for i in range(3):
        d = _data(i)
        ewc.after_experience(learner, Experience(i, (0, 1, 2, 3), 0, d, d))
        with torch.no_grad():
            learner.model[0].weight.add_(0.1 * (i + 1))
    got = ewc.penalty(learner, None, None)  # type: ignore[arg-type]
    params = dict(learner.model.named_parameters())
    want = sum((f[n] * (params[n] - a[n]) ** 2).sum() for f, a in zip(ewc.fishers_, ewc.anchors_) for n in f)
    assert torch.allclose(got, 0.5 * 2.0 * want, rtol=1e-5)
    (g,) = torch.autograd.grad(got, [params["0.weight"]])
    (h,) = torch.autograd.grad(0.5 * 2.0 * want, [params["0.weight"]])
    assert torch.allclose(g, h, rtol=1e-5, atol=1e-7)


def test_configuration_is_checked_and_ewc_trains() -> None:
    with pytest.raises(ConfigError, match="fisher"):
        EWC(fisher="diagonal")
    with pytest.raises(ConfigError, match="per-sample"):
        EWC(fisher="true", fisher_batch_size=32)
    result = Learner(toy_model(), [EWC(lam=10.0)], lr=0.1, batch_size=8).fit(toy_scenario("domain"))
    assert not result.diverged and result.metrics["acc"] > 0.5


def test_penalty_follows_a_grown_head() -> None:
    ewc = EWC(lam=1.0, penalty_step="gradient")
    learner = Learner(toy_model(), [ewc], lr=0.1, batch_size=8)
    learner.learn(toy_scenario("class")[0])
    with torch.no_grad():
        learner.model.classifier.weight.add_(0.5)
    before = ewc.penalty(learner, None, None)  # type: ignore[arg-type]
    assert learner.grow_classes(6)
    after = ewc.penalty(learner, None, None)  # type: ignore[arg-type]
    assert float(before.detach()) > 0 and torch.allclose(before, after)  # new rows: no importance, same value


@pytest.mark.parametrize("owner", ["hat", "pnn", "adapters", "per-experience"])
def test_ewc_penalises_the_parameters_it_anchored_while_a_method_adds_or_freezes_others(owner: str) -> None:
    """HAT's per-task embeddings, adapters and PNN's frozen columns changed the parameter set after
    EWC's first anchor: a raw KeyError mid-training, or torch.cat of nothing."""

    torch.manual_seed(0)
    model = MLP(in_features=8, hidden=(16,), n_classes=6)
    learner = Learner(model, [get_strategy(owner)(), EWC(lam=10.0)], lr=0.1, batch_size=8)
    result = learner.fit(task_incremental(toy_data(n_classes=6), n_experiences=3))  # anchors at 2 boundaries
    assert result.metrics["acc"] > 0.5 and not result.diverged


def test_the_fisher_of_a_token_model_is_computed_without_torchs_batching_warnings() -> None:
    """Was: torch's vmap has no batching rule for EmbeddingBag and warned "There is a performance drop"
    on every chunk of a text model's Fisher (a user trial: dozens of lines). The values are right: torch
    loops that op itself."""
    import warnings

    from lifelong.data.scenarios import class_incremental

    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.EmbeddingBag(300, 8, padding_idx=0)
            self.classifier = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 300, (200, 12), generator=g).float()
    scenario = class_incremental(Dataset(x, torch.arange(200) % 4, None, 1.0, "bag"), n_experiences=2)
    ewc = EWC()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Learner(Bag(), [ewc], lr=0.1).fit(scenario)
    assert ewc.fishers_ and all(bool(f.isfinite().all()) for f in ewc.fishers_[0].values())
