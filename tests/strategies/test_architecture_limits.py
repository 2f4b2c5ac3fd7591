"""The architectural limits the README lists: which models each method refuses, when, and with what."""

import pytest
import torch
from torch import nn

from lifelong.checks import toy_data, toy_model
from lifelong.data.scenarios import task_incremental
from lifelong.errors import ConfigError, StrategyMismatchError
from lifelong.learn import Learner
from lifelong.learn.models import CNN, MLP
from lifelong.learn.strategy import get_strategy
from lifelong.strategies import CPG, DEN, GPM, HAT, MER, PNN, Adapters


def NormedMLP() -> nn.Module:
    return toy_model(batch_norm=True)


@pytest.mark.parametrize("strategy", [HAT, PNN, CPG, DEN])
@pytest.mark.parametrize("model", [lambda: CNN(image_size=8, width=4), NormedMLP])
def test_hat_pnn_cpg_and_den_refuse_anything_but_an_mlp_when_the_learner_is_built(strategy, model) -> None:
    with pytest.raises(StrategyMismatchError, match=f"{strategy.__name__} needs an MLP"):
        Learner(model(), [strategy()])


@pytest.mark.parametrize("strategy", [HAT, PNN, CPG, DEN])
def test_an_mlp_behind_another_layer_with_weights_is_refused_by_name(strategy, normed_input) -> None:
    """It passed the MLP check: training then skipped the norm (an embedding: a raw shape error)."""
    with pytest.raises(StrategyMismatchError, match=f"{strategy.__name__} needs an MLP.*outside them: norm"):
        Learner(normed_input(), [strategy()])


class _Scaled(nn.Module):
    """An MLP whose forward scales its input first: a layer without weights outside .features."""

    def __init__(self, before: nn.Module) -> None:
        super().__init__()
        self.before = before
        self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.classifier = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.before(x)))


class _Half(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / 2


@pytest.mark.parametrize("strategy", [HAT, PNN, CPG, DEN])
def test_a_layer_without_weights_outside_features_is_refused_by_name(strategy) -> None:
    """It has no weights, so it passed the check; the method then skipped it and trained another function."""
    with pytest.raises(StrategyMismatchError, match="outside them: before; move them into .features"):
        Learner(_Scaled(_Half()), [strategy()])


@pytest.mark.parametrize("strategy", [HAT, PNN, CPG, DEN])
def test_a_flatten_outside_features_is_what_the_mlp_methods_do_anyway(strategy) -> None:
    """HAT and DEN used to feed the unflattened images to the first Linear: a raw shape error."""
    learner = Learner(_Scaled(nn.Flatten()), [strategy()], batch_size=4)
    x, y = torch.randn(8, 2, 2), torch.arange(8) % 3
    learner.partial_fit(x, y, 0)
    assert learner.predict(x, 0).shape == (8,)


def test_gpm_refuses_trainable_layers_other_than_linear_and_conv() -> None:
    with pytest.raises(ConfigError, match=r"GPM projects Linear and Conv2d gradients only.*BatchNorm1d"):
        Learner(NormedMLP(), [GPM()])
    Learner(CNN(image_size=8, width=4), [GPM()])  # conv layers are projected
    frozen = NormedMLP()
    frozen.features[2].requires_grad_(False)
    Learner(frozen, [GPM()])  # a batch norm without trainable weights is not refused


def test_mer_refuses_batch_norm_only_at_group_size_one() -> None:
    with pytest.raises(StrategyMismatchError, match="batch norm"):
        Learner(NormedMLP(), [MER()])
    Learner(NormedMLP(), [MER(group_size=2)])
    Learner(MLP(8, (16,), 4), [MER()])


@pytest.mark.parametrize("name", ["pnn", "multihead", "per-experience"])
def test_copies_made_before_the_head_grew_answer_with_the_grown_width(name: str) -> None:
    """With allow_new_classes, PNN's columns, MultiHead's heads and the per-experience models kept
    their old width: predicting an earlier task raised a raw RuntimeError or blamed the layout."""
    data = toy_data(n_classes=6, per_class=40)
    torch.manual_seed(0)
    learner = Learner(MLP(in_features=8, hidden=(16,), n_classes=2), [get_strategy(name)()], lr=0.1,
                      batch_size=8, epochs=1, allow_new_classes=True)  # fmt: skip
    for task in range(3):
        idx = ((data.train.y // 2) == task).nonzero().squeeze(1)
        for _ in range(5):
            learner.partial_fit(data.train.x[idx], data.train.y[idx], torch.full((len(idx),), task))
        learner.consolidate()
    assert learner.n_outputs == 6
    for task in range(3):
        idx = ((data.test.y // 2) == task).nonzero().squeeze(1)
        probs = learner.predict_proba(data.test.x[idx], torch.full((len(idx),), task))
        assert probs.shape == (len(idx), 6)
        assert (probs.argmax(1) == data.test.y[idx]).float().mean() > 0.8, task


@pytest.mark.parametrize("name", ["multihead", "packnet", "hat"])
def test_predicting_no_rows_with_task_ids_answers_no_rows(name: str) -> None:
    """Routing by task raised a raw StopIteration on an empty batch."""
    learner = Learner(toy_model(), [get_strategy(name)()], lr=0.1)
    learner.partial_fit(torch.randn(20, 8), torch.arange(20) % 2, t=0)
    learner.consolidate()
    assert learner.predict_proba(torch.randn(0, 8), t=0).shape == (0, 4)


class _Plain(nn.Module):
    def __init__(self, features: nn.Sequential, classifier: nn.Linear) -> None:
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@pytest.mark.parametrize("strategy", [HAT, PNN, CPG, DEN])
def test_two_linears_in_a_row_are_refused_when_the_learner_is_built(strategy) -> None:
    """They passed the layout check, then HAT and DEN failed mid-training on a unit with no ReLU."""
    model = _Plain(nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 8), nn.ReLU()), nn.Linear(8, 3))
    with pytest.raises(StrategyMismatchError, match="Linear-ReLU pairs"):
        Learner(model, [strategy()])


@pytest.mark.parametrize("strategy", [HAT, CPG, DEN])
def test_linears_without_bias_are_refused_by_the_methods_that_mask_units(strategy) -> None:
    model = _Plain(nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU()), nn.Linear(8, 3, bias=False))
    with pytest.raises(StrategyMismatchError, match="to have a bias"):
        Learner(model, [strategy()])


@pytest.mark.parametrize("strategy", [PNN, Adapters])
def test_pnn_and_adapters_train_an_mlp_without_biases(strategy) -> None:
    model = _Plain(nn.Sequential(nn.Linear(8, 8, bias=False), nn.ReLU()), nn.Linear(8, 4, bias=False))
    learner = Learner(model, [strategy()], lr=0.1, batch_size=8)
    result = learner.fit(task_incremental(toy_data(), n_experiences=2))
    assert len(result.accuracy_matrix) == 2 and not result.diverged
